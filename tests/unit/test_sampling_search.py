"""Sampling, the GNMT coverage penalty and long sources (:mod:`s2s.search`): fake decoders whose
numbers can be worked out by hand, a tiny random model decoded by PyTorch and by its exported
bundle (the same tokens), and properties over random tables (``hypothesis``)."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s.data.vocab import BOS, EOS, SPECIAL_IDS
from s2s.decoding.decoder import ModelDecoder
from s2s.search import candidates, loops
from s2s.search.arrays import ArrayDecoder
from s2s.search.constraints import Constraints
from s2s.search.hypotheses import CoveragePenalty, gnmt_length_penalty
from s2s.search.options import DecodeOptions
from s2s.search.sampling import draw

from tests.unit.test_search import (CLASSIC, EAGER, ENDLESS, NGRAM, TABLES, V, A, B, C, D, TableModel, fake,
                                    path_log_prob)

torch.set_num_threads(1)
ln = math.log


def repeats_an_ngram(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


def torch_and_numpy(model: TableModel, src: torch.Tensor):
    """The two kinds of backend over the same tables: PyTorch (EOS banned in place below min_len)
    and numpy (EOS dropped from a widened top list), each with its memory and state."""
    memory, state = model.encode(src, None)
    table = model.table.numpy()

    def step(tokens, state, memory):
        return table[memory["table"], tokens], state, None

    return [(ModelDecoder(model, SPECIAL_IDS), memory, state),
            (ArrayDecoder(step, BOS), {"table": src[:, 0].numpy()}, {})]


def sample(decoder, memory, state, limits, *, n_best, seed=0, temperature=1.0, top_k=0, top_p=1.0, min_len=0,
           no_repeat_ngram=0, length_penalty=0.0):
    constraints = Constraints(np.asarray(limits), EOS, min_len, no_repeat_ngram)
    with torch.no_grad():
        return loops.sample(decoder, memory, state, constraints, V, n_best=n_best, temperature=temperature,
                            top_k=top_k, top_p=top_p, length_penalty=length_penalty, rng=np.random.default_rng(seed))


# --------------------------------------------------------------------------- one draw
def test_draw_follows_the_temperature_and_the_nucleus():
    """Over many rows of the same sorted log-probabilities (0.5, 0.3, 0.2; EOS-like -inf last),
    positions come up as often as softmax(values / T) within the nucleus says; -inf never does."""
    n = 20000
    values = np.repeat(np.array([[ln(0.5), ln(0.3), ln(0.2), -np.inf]], dtype=np.float32), n, axis=0)
    for temperature, top_p, want in ((1.0, 1.0, [0.5, 0.3, 0.2]),
                                     (2.0, 1.0, np.sqrt([0.5, 0.3, 0.2]) / np.sqrt([0.5, 0.3, 0.2]).sum()),
                                     (0.5, 1.0, np.square([0.5, 0.3, 0.2]) / np.square([0.5, 0.3, 0.2]).sum()),
                                     (1.0, 0.7, [0.5 / 0.8, 0.3 / 0.8, 0.0]),  # 0.5 < 0.7 <= 0.8: two tokens
                                     (1.0, 0.45, [1.0, 0.0, 0.0])):
        picked = draw(values, temperature, top_p, np.random.default_rng(0))
        freq = np.bincount(picked, minlength=4) / n
        assert freq[3] == 0.0
        np.testing.assert_allclose(freq[:3], want, atol=0.015)  # about 4 standard deviations


def test_draw_is_repeatable_and_quiet_on_rows_without_any_allowed_token():
    values = np.log(np.random.default_rng(1).dirichlet(np.ones(6), size=50)).astype(np.float32)
    values = -np.sort(-values, axis=1)
    values[7] = -np.inf  # a finished row under a full ban: never read, but must not turn into NaN
    with np.errstate(all="raise"):
        first = draw(values, 0.7, 0.9, np.random.default_rng(3))
    assert np.array_equal(first, draw(values, 0.7, 0.9, np.random.default_rng(3)))
    assert not np.array_equal(first, draw(values, 0.7, 0.9, np.random.default_rng(4)))
    assert first[7] == 0 and first.dtype == np.int64


# --------------------------------------------------------------------------- the sampling loop, by hand
def transformed_paths(table: dict, temperature: float, top_k: int, top_p: float, limit: int) -> dict:
    """P(tokens) when each token is drawn from its table row after temperature, top-k and the
    nucleus, worked out row by row (the rule the sampler must follow, written independently)."""
    out = {}

    def walk(prefix: list[int], p: float) -> None:
        row = table.get(prefix[-1] if prefix else BOS, {EOS: 1.0})
        if len(prefix) == limit:
            row = {EOS: 1.0}
        ranked = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))[: top_k or None]
        weights = [(token, q ** (1.0 / temperature)) for token, q in ranked]
        total, kept, running = sum(w for _, w in weights), [], 0.0
        for token, w in weights:
            kept.append((token, w))
            running += w
            if running >= top_p * total - 1e-12:
                break
        norm = sum(w for _, w in kept)
        for token, w in kept:
            if token == EOS:
                out[tuple(prefix)] = out.get(tuple(prefix), 0.0) + p * w / norm
            else:
                walk(prefix + [token], p * w / norm)

    walk([], 1.0)
    return out


@pytest.mark.parametrize("temperature, top_k, top_p", [(1.0, 0, 1.0), (0.5, 2, 1.0), (1.5, 0, 0.8)])
def test_samples_come_as_often_as_the_transformed_model_says(temperature, top_k, top_p):
    """4,000 samples of one CLASSIC sentence: each path's frequency is within 4.5 standard
    deviations of its probability under temperature / top-k / top-p; each sample reports the
    model's own log-probability (not the transformed one) and the samples come best score first."""
    n = 4000
    model, src, _ = fake(CLASSIC)
    decoder, memory, state = torch_and_numpy(model, src)[0]
    [samples] = sample(decoder, memory, state, [5], n_best=n, temperature=temperature, top_k=top_k, top_p=top_p,
                       length_penalty=1.0, seed=7)
    want = transformed_paths(CLASSIC, temperature, top_k, top_p, 5)
    assert len(samples) == n and sum(want.values()) == pytest.approx(1.0)
    counts = Counter(tuple(h.tokens) for h in samples)
    assert set(counts) <= set(want)
    for path, p in want.items():
        assert abs(counts[path] / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1e-9, (path, counts[path] / n, p)
    for h in samples[:50]:
        assert h.log_prob == pytest.approx(path_log_prob(CLASSIC, h.tokens), abs=1e-5)
        assert h.score == pytest.approx(h.log_prob / gnmt_length_penalty(len(h.tokens) + 1, 1.0), abs=1e-5)
    assert [h.score for h in samples] == sorted((h.score for h in samples), reverse=True)


@pytest.mark.parametrize("backend", [0, 1], ids=["torch", "numpy"])
@pytest.mark.parametrize("name", list(TABLES))
def test_sampling_among_the_top_token_only_is_greedy(name, backend):
    model, src, src_lengths = fake(TABLES[name])
    decoder, memory, state = torch_and_numpy(model, src)[backend]
    for min_len, n in ((0, 0), (3, 0), (0, 2)):
        constraints = Constraints(np.array([6]), EOS, min_len, n)
        with torch.no_grad():
            [greedy] = loops.greedy(decoder, memory, state, constraints, V, length_penalty=0.6)
        samples = sample(decoder, memory, state, [6], n_best=3, top_k=1, min_len=min_len, no_repeat_ngram=n,
                         length_penalty=0.6)[0]
        assert [h.tokens for h in samples] == [greedy.tokens] * 3
        assert [h.score for h in samples] == pytest.approx([greedy.score] * 3, abs=1e-6)


def test_sampling_keeps_min_len_max_len_and_no_repeat_ngram():
    """200 samples per sentence, with each constraint that would otherwise be broken."""
    model, src, _ = fake(EAGER, ENDLESS, NGRAM)
    for backend in torch_and_numpy(model, src):
        free = sample(*backend, [6, 4, 8], n_best=200)
        assert any(len(h.tokens) < 3 for h in free[0]) and any(len(h.tokens) == 4 for h in free[1])
        assert any(repeats_an_ngram(h.tokens, 2) for h in free[2])
        bound = sample(*backend, [6, 4, 8], n_best=200, min_len=3, no_repeat_ngram=2)
        for hyps, limit in zip(bound, (6, 4, 8)):
            assert len(hyps) == 200
            assert all(3 <= len(h.tokens) <= limit and not repeats_an_ngram(h.tokens, 2) for h in hyps)


def test_samples_depend_on_the_seed_only_and_agree_across_backends():
    model, src, _ = fake(CLASSIC, NGRAM, ENDLESS)
    runs = {}
    for name, backend in zip(("torch", "numpy"), torch_and_numpy(model, src)):
        for seed in (0, 1):
            runs[name, seed] = sample(*backend, [5, 6, 4], n_best=8, seed=seed, min_len=1, no_repeat_ngram=2, top_p=0.9)
    for seed in (0, 1):
        for ours, theirs in zip(runs["torch", seed], runs["numpy", seed]):
            assert [h.tokens for h in ours] == [h.tokens for h in theirs]
            assert [h.log_prob for h in ours] == pytest.approx([h.log_prob for h in theirs], abs=1e-5)
    assert [[h.tokens for h in x] for x in runs["torch", 0]] != [[h.tokens for h in x] for x in runs["torch", 1]]


# --------------------------------------------------------------------------- coverage penalty, by hand
# [A] (P = 0.6 * 0.9) beats [B C] (0.4 * 0.9 * 0.9) on log-probability, but attends to source
# position 0 only; [B C] reads all three. The source has 3 real positions (EOS included) and one
# of padding, which receives no attention and must not count.
COVER = {BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.9, D: 0.1}, B: {C: 0.9, EOS: 0.1}, C: {EOS: 0.9, D: 0.1}, D: {EOS: 1.0}}
ATTENTION = {BOS: [0.5, 0.25, 0.25, 0.0], A: [0.8, 0.1, 0.1, 0.0], B: [0.1, 0.8, 0.1, 0.0],
             C: [0.1, 0.1, 0.8, 0.0], D: [0.3, 0.3, 0.4, 0.0]}


class AttendingTables(TableModel):
    """TableModel whose step attends to the source as ``ATTENTION[prev_token]`` says."""

    def __init__(self, *tables: dict):
        super().__init__(*tables)
        self.attention = torch.full((V, 4), 1 / 3)
        self.attention[:, 3] = 0.0
        for token, row in ATTENTION.items():
            self.attention[token] = torch.tensor(row)

    def step(self, prev_tokens, state, memory):
        logits, state, _ = super().step(prev_tokens, state, memory)
        return logits, state, self.attention[prev_tokens]


def coverage_backends(model: AttendingTables, src: torch.Tensor):
    memory, state = model.encode(src, None)
    table, attention = model.table.numpy(), model.attention.numpy()

    def step(tokens, state, memory):
        return table[memory["table"], tokens], state, attention[tokens]

    return [(ModelDecoder(model, SPECIAL_IDS), memory, state),
            (ArrayDecoder(step, BOS), {"table": src[:, 0].numpy()}, {})]


@pytest.mark.parametrize("small_rows", [0, 1000])  # beam steps chosen in numpy, or in plain Python
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("beta", [0.0, 0.2, 1.0])
def test_coverage_penalty_reranks_by_the_attention_of_every_step(beta, alpha, small_rows, monkeypatch):
    """cp = beta * sum_i log min(sum_t a_ti, 1) over the 3 real positions, t over every step
    including the one that produced EOS: [A] sums to (1.3, 0.35, 0.35), [B C] to (0.7, 1.15, 1.15).
    Without length penalty beta 0.2 keeps [A] first and beta 1 puts [B C] first; with beta 0 (off)
    no attention is fetched."""
    monkeypatch.setattr(candidates, "SMALL_ROWS", small_rows)
    model = AttendingTables(COVER)
    src = torch.zeros(1, 1, dtype=torch.long)
    short = ln(0.6 * 0.9) / gnmt_length_penalty(2, alpha) + beta * 2 * ln(0.35)
    long = ln(0.4 * 0.9 * 0.9) / gnmt_length_penalty(3, alpha) + beta * ln(0.7)
    for decoder, memory, state in coverage_backends(model, src):
        asked = []
        original = decoder.select

        def select(*args, attention=False, **kwargs):
            asked.append(attention)
            return original(*args, attention=attention, **kwargs)

        decoder.select = select
        coverage = CoveragePenalty(beta, np.array([3])) if beta else None
        with torch.no_grad():
            [hyps] = loops.beam(decoder, memory, state, Constraints(np.array([5]), EOS, 0, 0), V, beam_size=2, n_best=2,
                                length_penalty=alpha, coverage=coverage)
        by_tokens = {tuple(h.tokens): h for h in hyps}
        assert set(by_tokens) == {(A,), (B, C)}
        assert by_tokens[A,].score == pytest.approx(short, abs=1e-5)
        assert by_tokens[B, C].score == pytest.approx(long, abs=1e-5)
        assert by_tokens[B, C].log_prob == pytest.approx(ln(0.4 * 0.9 * 0.9), abs=1e-5)  # log P itself unchanged
        assert hyps[0].tokens == ([A] if short > long else [B, C])
    if alpha == 0.0:  # log-probability alone prefers [A]; a strong enough penalty turns the ranking over
        assert (short > long) == (beta < 1.0)
        assert set(asked) == {beta > 0}


def test_coverage_penalty_counts_each_sentences_own_source_positions():
    """Two sentences in one batch with 3 and 2 real source positions: each penalty reads its own
    (the second's position 2 is padding for it, attention there is not counted)."""
    penalty = CoveragePenalty(0.5, np.array([3, 2]))
    attended = np.array([1.3, 0.35, 0.35, 0.0], dtype=np.float32)
    assert penalty(0, attended) == pytest.approx(0.5 * 2 * ln(0.35))
    assert penalty(1, attended) == pytest.approx(0.5 * ln(0.35))
    assert penalty(0, np.array([2.0, 1.0, 1.5, 0.0], np.float32)) == 0.0  # every position read at least once
    assert penalty(0, np.array([2.0, 0.0, 1.5, 0.0], np.float32)) == -math.inf  # one never read: log 0


# --------------------------------------------------------------------------- a tiny model, exported
WORDS = ["ein", "hund", "der", "die", "mann", "frau", "rot", "blau", "geht", "sitzt", "im", "park"]


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """The same tiny random model (vocab 40, weights tripled so that distributions are peaked,
    EOS favoured a little, as in test_search) behind the PyTorch translator and behind the
    runtime of a bundle exported from it, with a sentencepiece model of a few made-up words."""
    import sentencepiece as spm

    import s2s.models  # noqa: F401  (registers the parts the model section names)
    from s2s.bundle import bundle_meta, write_bundle_json
    from s2s.config import recipe_from_dict
    from s2s.data.vocab import Vocab, Vocabs
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.onnx import add_search_head, export_graphs
    from s2s.models.build import build_model
    from s2s.runtime import Translator

    folder = tmp_path_factory.mktemp("bundle")
    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(200)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(folder / "sp"), vocab_size=36,
                                   pad_id=0, unk_id=1, bos_id=BOS, eos_id=EOS, hard_vocab_limit=False,
                                   minloglevel=2, num_threads=1)
    torch.manual_seed(0)
    section = {"embeddings": {"dim": 16, "dropout": 0.0}, "attention": {"type": "bahdanau"},
               "encoder": {"type": "lstm", "hidden": 8, "layers": 2, "dropout": 0.0},
               "decoder": {"type": "lstm", "hidden": 16, "layers": 2, "dropout": 0.0}}
    model = build_model(recipe_from_dict({"model": section}).model, 40, 40).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
        model.output.bias[EOS] = 1.0
    spec = export_graphs(model, folder)
    add_search_head(folder / "decoder_step.onnx")
    files = {"encoder": "encoder.onnx", "decoder_step": "decoder_step.onnx"}
    write_bundle_json(bundle_meta(
        model_family="rnn", architecture={}, special=SPECIAL_IDS, max_lengths={}, decode=DecodeOptions(),
        vocab={"source": "sp.model", "target": "sp.model", "source_size": 40, "target_size": 40},
        graphs={"memory": spec.memory_specs, "state": spec.state_specs, "variants": {"fp32": files},
                "search_head": True, "memory_per_sentence": False}, provenance={}), folder)
    vocab = Vocab(folder / "sp.model")
    ours = TorchTranslator(model, Vocabs(vocab, vocab), DecodeOptions())
    theirs = Translator.load(folder, providers=["CPUExecutionProvider"], tune_allocator=False)
    assert theirs.has_search_head and theirs.vocab_size == ours.vocab_size == 40
    return ours, theirs


def random_sources(lengths: list[int], seed: int) -> list[list[int]]:
    """Source id lists (4..39, no EOS: the translator appends it)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(4, 40, n - 1).tolist() for n in lengths]


def both(engines, ids: list[list[int]], seed: int = 0, **options):
    """The hypotheses of PyTorch and of the runtime for the same batch, options and seed."""
    opts = DecodeOptions(**options)
    ours, theirs = engines
    with torch.inference_mode():
        a = ours.search_batch(ids, opts, np.random.default_rng(seed))
    return a, theirs.search_batch(ids, opts, np.random.default_rng(seed))


def assert_same(a, b, score_tol=1e-3):
    assert [[h.tokens for h in hyps] for hyps in a] == [[h.tokens for h in hyps] for hyps in b]
    for x, y in zip(a, b):
        assert [h.score for h in x] == pytest.approx([h.score for h in y], abs=score_tol)


def test_runtime_samples_what_pytorch_samples_and_the_seed_decides(engines):
    """Through ``hypotheses`` (one generator per call, seeded with ``seed``): the two backends
    draw the same samples; the same call again gives them again, another seed others."""
    ours, theirs = engines
    rng = random.Random(1)
    lines = [" ".join(rng.choice(WORDS) for _ in range(3 + i % 5)) for i in range(6)] + [""]
    options = {"sample": True, "n_best": 4, "top_k": 0, "top_p": 0.95, "temperature": 0.9, "max_len": 15,
               "batch_size": 4}
    with torch.inference_mode():
        a = ours.hypotheses(lines, **options, seed=11)
        again = ours.hypotheses(lines, **options, seed=11)
        other = ours.hypotheses(lines, **options, seed=12)
    b = theirs.hypotheses(lines, **options, seed=11)
    assert_same(a, b)
    assert [[h.tokens for h in x] for x in a] == [[h.tokens for h in x] for x in again]
    assert [[h.tokens for h in x] for x in a] != [[h.tokens for h in x] for x in other]
    assert all(len(x) == 4 for x in a[:-1]) and a[-1][0].tokens == []
    assert len({tuple(h.tokens) for x in a[:-1] for h in x}) > 6  # diverse: not one sample repeated


def test_coverage_penalty_same_in_both_backends_and_equal_to_the_stepped_attention(engines):
    """With beta > 0 both backends give the same n-best, and each hypothesis's score is
    log P / lp(Y) + cp, cp recomputed here by stepping the model through the hypothesis (EOS
    step included) and summing its attention over the sentence's real source positions."""
    ours, theirs = engines
    ids = random_sources([9, 14, 5, 11], seed=3)
    plain = both(engines, ids, beam=4, n_best=4, length_penalty=0.6)
    a, b = both(engines, ids, beam=4, n_best=4, length_penalty=0.6, coverage_penalty=0.5)
    assert_same(a, b)
    assert [[h.tokens for h in x] for x in a] != [[h.tokens for h in x] for x in plain[0]]  # reranked somewhere
    model = ours.model
    for sentence, hyps in zip(ids, a):
        src = torch.tensor([sentence + [EOS]])
        for hyp in hyps:
            with torch.inference_mode():
                memory, state = model.encode(src, torch.tensor([src.size(1)]))
                attended = torch.zeros(src.size(1))
                for token in [BOS, *hyp.tokens]:
                    _, state, attn = model.step(torch.tensor([token]), state, memory)
                    attended += attn[0]
            cp = 0.5 * float(torch.log(attended.clamp(max=1.0)).sum())
            assert hyp.score == pytest.approx(hyp.log_prob / gnmt_length_penalty(len(hyp.tokens) + 1, 0.6) + cp,
                                              abs=1e-4)


def test_the_runtimes_numpy_selection_samples_and_penalises_alike(engines, monkeypatch):
    """A bundle without the search head (top k in numpy, attention from the plain step) gives
    the same samples and coverage-penalised beams as PyTorch too."""
    ids = random_sources([12, 7, 9], seed=4)
    for options in ({"sample": True, "n_best": 3, "top_k": 8, "temperature": 1.2, "min_len": 3},
                    {"beam": 3, "n_best": 3, "coverage_penalty": 0.4, "min_len": 3}):
        with_head = both(engines, ids, seed=9, **options)
        monkeypatch.setattr(engines[1], "has_search_head", False)
        a, b = both(engines, ids, seed=9, **options)
        monkeypatch.undo()
        assert_same(a, b)
        assert_same(with_head[1], b)


def test_the_runtime_fetches_attention_only_for_the_coverage_penalty(engines, monkeypatch):
    _, theirs = engines
    fetched = []
    run = theirs._run_step
    monkeypatch.setattr(theirs, "_run_step",
                        lambda names, feeds: (fetched.append("attention" in names), run(names, feeds))[1])
    ids = random_sources([6, 4], seed=1)
    for options, want in (({"beam": 3}, False), ({"beam": 1}, False), ({"sample": True, "n_best": 2}, False),
                          ({"beam": 3, "coverage_penalty": 0.2}, True)):
        fetched.clear()
        theirs.search_batch(ids, DecodeOptions(**options))
        assert fetched and set(fetched) == {want}, options


# --------------------------------------------------------------------------- long sources
LONG = [300, 270, 140]


@pytest.mark.parametrize("options", [
    {"beam": 1},
    {"beam": 4, "n_best": 2, "length_penalty": 1.0},
    {"beam": 4, "n_best": 2, "coverage_penalty": 0.3},
    {"sample": True, "n_best": 3, "top_k": 10, "top_p": 0.9},
], ids=["greedy", "beam", "coverage", "sample"])
def test_long_sources_keep_the_limits_in_both_backends(engines, options):
    """300-token sources (a summary's input): the maximum length counts target tokens (the ratio
    alone would allow 460), the minimum length and the no-repeat trigram hold, and the runtime
    gives PyTorch's tokens."""
    ids = random_sources(LONG, seed=5)
    for limits in ({"min_len": 12, "max_len": 40, "no_repeat_ngram": 3}, {"min_len": 25, "max_len": 25}):
        a, b = both(engines, ids, seed=2, **options, **limits)
        assert_same(a, b)
        for hyps in a:
            assert len(hyps) == options.get("n_best", 1)
            for h in hyps:
                assert limits["min_len"] <= len(h.tokens) <= limits["max_len"] and EOS not in h.tokens
                assert not repeats_an_ngram(h.tokens, limits.get("no_repeat_ngram") or 99)


def test_length_penalty_on_long_sources_only_reranks_the_same_finished_hypotheses(engines):
    """Beam search finishes the same hypotheses whatever alpha (which scores only finished ones);
    the larger alpha, the longer (or as long) the best of them, each scored log P / lp(Y)."""
    ids = random_sources(LONG, seed=8)
    results = {alpha: both(engines, ids, beam=4, n_best=4, no_repeat_ngram=3, max_len=60, length_penalty=alpha)
               for alpha in (0.0, 0.6, 2.0)}
    for alpha, (a, b) in results.items():
        assert_same(a, b)
        for hyps in a:
            for h in hyps:
                assert h.score == pytest.approx(h.log_prob / gnmt_length_penalty(len(h.tokens) + 1, alpha), abs=1e-5)
    for sentence in range(len(LONG)):
        finished = [sorted(tuple(h.tokens) for h in results[alpha][0][sentence]) for alpha in results]
        assert finished[0] == finished[1] == finished[2]
        best = [len(results[alpha][0][sentence][0].tokens) for alpha in results]
        assert best == sorted(best)
    assert len({len(h.tokens) for hyps in results[0.0][0] for h in hyps}) > 1  # lengths differ: alpha has a choice


# --------------------------------------------------------------------------- properties over random tables
@st.composite
def problems(draw_from):
    """A batch of 1-3 sentences, each over its own dense random table (every token possible),
    vocabulary 6-10, limits and constraints that always leave a hypothesis."""
    vocab = draw_from(st.integers(6, 10))
    batch = draw_from(st.integers(1, 3))
    seed = draw_from(st.integers(0, 2 ** 16))
    ngram = draw_from(st.integers(1, 3))
    min_len = draw_from(st.integers(0, 4))
    limits = draw_from(st.lists(st.integers(max(min_len, 1), 12), min_size=batch, max_size=batch))
    peak = draw_from(st.sampled_from([1.0, 4.0]))  # flat, or peaked tables that like to repeat themselves
    logits = np.random.default_rng(seed).standard_normal((batch, vocab, vocab)) * peak
    log_probs = (logits - np.log(np.exp(logits).sum(-1, keepdims=True))).astype(np.float32)
    return vocab, log_probs, np.array(limits), min_len, ngram, seed


@settings(max_examples=60, deadline=None, database=None)  # no example folder left in the checkout
@given(problem=problems(), search=st.sampled_from(["greedy", "beam", "sample"]), torch_backend=st.booleans(),
       k=st.integers(1, 3))
def test_no_hypothesis_repeats_an_ngram_or_stops_before_min_len(problem, search, torch_backend, k):
    vocab, log_probs, limits, min_len, ngram, seed = problem
    batch = len(limits)
    constraints = Constraints(limits, EOS, min_len, ngram)
    if torch_backend:
        tables = torch.from_numpy(log_probs)

        class Tables:  # the decoding contract over the tables, for the PyTorch backend
            table = tables

            def encode(self, src, src_lengths):
                return {"table": src[:, 0].clone()}, {}

            def log_probs(self, prev_tokens, state, memory):
                return self.table[memory["table"], prev_tokens], state, torch.ones(len(prev_tokens), 1)

            reorder = staticmethod(lambda state, index: state)

        decoder = ModelDecoder(Tables(), SPECIAL_IDS)
        memory, state = decoder.start(np.arange(batch)[:, None], np.ones(batch, np.int64))
    else:
        decoder = ArrayDecoder(lambda tokens, state, memory: (log_probs[memory["table"], tokens], state, None), BOS)
        memory, state = {"table": np.arange(batch)}, {}
    with torch.no_grad():
        if search == "greedy":
            results = [[h] for h in loops.greedy(decoder, memory, state, constraints, vocab, length_penalty=0.6)]
        elif search == "beam":
            results = loops.beam(decoder, memory, state, constraints, vocab, beam_size=k, n_best=k, length_penalty=0.6)
        else:
            results = loops.sample(decoder, memory, state, constraints, vocab, n_best=k, temperature=1.5, top_k=0,
                                   top_p=0.95, length_penalty=0.6, rng=np.random.default_rng(seed))
    assert len(results) == batch
    for hyps, limit in zip(results, limits.tolist()):
        assert len(hyps) == (1 if search == "greedy" else k)
        for h in hyps:
            assert min_len <= len(h.tokens) <= limit and EOS not in h.tokens, (search, h.tokens)
            assert not repeats_an_ngram(h.tokens, ngram), (search, ngram, h.tokens)
