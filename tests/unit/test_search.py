"""Greedy and beam search against a fake decoder whose probabilities can be worked out on paper,
then the same properties on a tiny random model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from s2s.data.vocab import BOS, EOS
from s2s.decoding.decoder import ModelDecoder
from s2s.models.contract import select
from s2s.search import loops
from s2s.search.constraints import Constraints
from s2s.search.hypotheses import SpecialIds, gnmt_length_penalty, normalized_score

torch.set_num_threads(1)

A, B, C, D, E = 4, 5, 6, 7, 8
V = 10
ln = math.log

# P(next | prev), one row per previous token; a row left out means "EOS with probability 1".
# Tokens missing from a row have probability 0.

# Greedy takes A (0.5) and then has to stop (A EOS = 0.2); B EOS (0.4 * 0.9 = 0.36) is better.
CLASSIC = {
    BOS: {A: 0.5, B: 0.4, C: 0.1},
    A: {EOS: 0.4, C: 0.35, D: 0.25},
    B: {EOS: 0.9, C: 0.1},
    C: {EOS: 0.7, D: 0.3},
    D: {EOS: 1.0},
}
# Short [A] (0.55 * 0.8 = 0.44) beats long [B C E] (0.45 * 0.95^3 = 0.3858) on log-probability;
# divided by the GNMT penalty with alpha 1 (lengths 2 and 4 with EOS) the long one wins.
LENGTH = {
    BOS: {A: 0.55, B: 0.45},
    A: {EOS: 0.8, D: 0.2},
    B: {C: 0.95, EOS: 0.05},
    C: {E: 0.95, EOS: 0.05},
    E: {EOS: 0.95, E: 0.05},
    D: {D: 0.9, EOS: 0.1},
}
# Left alone, the model says A B A B A B ... until the length limit.
NGRAM = {
    BOS: {A: 0.6, B: 0.3, EOS: 0.1},
    A: {B: 0.7, EOS: 0.2, A: 0.1},
    B: {A: 0.7, EOS: 0.25, B: 0.05},
}
# Would rather stop at once (EOS 0.7 everywhere).
EAGER = {
    BOS: {EOS: 0.7, A: 0.2, B: 0.1},
    A: {EOS: 0.7, A: 0.2, B: 0.1},
    B: {EOS: 0.6, A: 0.25, B: 0.15},
}
# Would rather never stop (EOS 0.05 everywhere): the length limit decides.
ENDLESS = {
    BOS: {A: 0.6, B: 0.35, EOS: 0.05},
    A: {A: 0.6, B: 0.35, EOS: 0.05},
    B: {A: 0.55, B: 0.4, EOS: 0.05},
}
TABLES = {"classic": CLASSIC, "length": LENGTH, "ngram": NGRAM, "eager": EAGER, "endless": ENDLESS}


def path_log_prob(table: dict, tokens: list[int]) -> float:
    """ln P(tokens EOS | BOS) under a table, worked out by hand's rule: a product of its rows."""
    total, prev = 0.0, BOS
    for token in [*tokens, EOS]:
        total += ln(table.get(prev, {EOS: 1.0})[token])
        prev = token
    return total


class TableModel:
    """A fake model on the decoding contract: the next-token distribution of sentence i is row
    ``prev_token`` of ``tables[src[i, 0]]``. The state counts steps, so the fake can check that
    the search keeps memory, state and tokens row-aligned (finished sentences leaving included)."""

    def __init__(self, *tables: dict):
        self.table = torch.full((len(tables), V, V), float("-inf"))  # log-probabilities
        for k, table in enumerate(tables):
            for prev in range(V):
                for token, p in table.get(prev, {EOS: 1.0}).items():
                    self.table[k, prev, token] = ln(p)
        self.steps_taken = 0
        self.rows_per_step: list[int] = []

    def encode(self, src, src_lengths):
        batch = src.size(0)
        return {"table": src[:, 0].clone()}, {"steps": torch.zeros(batch, dtype=torch.long)}

    def step(self, prev_tokens, state, memory):
        rows = prev_tokens.size(0)
        assert prev_tokens.shape == (rows,) and memory["table"].shape == (rows,) and state["steps"].shape == (rows,)
        assert bool((state["steps"] == state["steps"][0]).all()), "state rows out of step"
        self.steps_taken += 1
        self.rows_per_step.append(rows)
        logits = self.table[memory["table"], prev_tokens]
        return logits, {"steps": state["steps"] + 1}, torch.ones(rows, 1)

    def log_probs(self, prev_tokens, state, memory):
        """The contract's log-probabilities: the tables' rows are already normalised."""
        logits, state, attn = self.step(prev_tokens, state, memory)
        return torch.log_softmax(logits, -1), state, attn

    @staticmethod
    def reorder(state, index):
        return select(state, index)


def _start(model, src, src_lengths, limits, min_len, no_repeat_ngram):
    """The PyTorch backend of the one search loop, the batch encoded, and its constraints."""
    vocab = model.tgt_embed.num_embeddings if hasattr(model, "tgt_embed") else V
    memory, state = model.encode(src, src_lengths)
    constraints = Constraints(limits.numpy(), EOS, min_len, no_repeat_ngram)
    return ModelDecoder(model, SpecialIds(0, 1, BOS, EOS)), memory, state, constraints, vocab


@torch.no_grad()
def greedy_search(model, src, src_lengths, limits, min_len=0, no_repeat_ngram=0, length_penalty=0.0):
    decoder, memory, state, constraints, vocab = _start(model, src, src_lengths, limits, min_len, no_repeat_ngram)
    return loops.greedy(decoder, memory, state, constraints, vocab, length_penalty=length_penalty)


@torch.no_grad()
def beam_search(model, src, src_lengths, limits, beam=5, n_best=1, length_penalty=0.0, min_len=0, no_repeat_ngram=0):
    decoder, memory, state, constraints, vocab = _start(model, src, src_lengths, limits, min_len, no_repeat_ngram)
    return loops.beam(decoder, memory, state, constraints, vocab, beam_size=beam, n_best=n_best,
                      length_penalty=length_penalty)


def fake(*tables: dict):
    """The fake model and a batch whose sentence i reads tables[i]."""
    src = torch.arange(len(tables)).unsqueeze(1)
    return TableModel(*tables), src, torch.ones(len(tables), dtype=torch.long)


def lens(*values: int) -> torch.Tensor:
    return torch.tensor(values)


def has_repeated_bigram(tokens: list[int]) -> bool:
    bigrams = list(zip(tokens, tokens[1:]))
    return len(bigrams) != len(set(bigrams))


# --------------------------------------------------------------------------- greedy vs beam, by hand
def test_greedy_follows_the_locally_best_token():
    model, src, src_lengths = fake(CLASSIC)
    [hyp] = greedy_search(model, src, src_lengths, lens(5))
    assert hyp.tokens == [A]
    assert hyp.log_prob == pytest.approx(ln(0.5) + ln(0.4), abs=1e-5)
    assert hyp.score == pytest.approx(hyp.log_prob, abs=1e-6)  # alpha 0


def test_beam_two_finds_the_sequence_greedy_misses():
    model, src, src_lengths = fake(CLASSIC)
    [hyps] = beam_search(model, src, src_lengths, lens(5), beam=2, n_best=2)
    assert [h.tokens for h in hyps] == [[B], [A]]
    assert hyps[0].log_prob == pytest.approx(ln(0.4) + ln(0.9), abs=1e-5)
    assert hyps[1].log_prob == pytest.approx(ln(0.5) + ln(0.4), abs=1e-5)
    assert model.steps_taken == 2  # both beams ended with EOS at the second step: the search stopped


def test_n_best_returns_distinct_hypotheses_sorted_by_score():
    """Beam 3 on CLASSIC: step 2 finishes B (0.36) and A (0.2); step 3 finishes A D (0.5*0.25*1)."""
    model, src, src_lengths = fake(CLASSIC)
    [hyps] = beam_search(model, src, src_lengths, lens(5), beam=3, n_best=3)
    assert [h.tokens for h in hyps] == [[B], [A], [A, D]]
    for hyp, p in zip(hyps, (0.36, 0.2, 0.125)):
        assert hyp.log_prob == pytest.approx(ln(p), abs=1e-5)
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 3


def test_n_best_larger_than_the_beam_is_refused():
    model, src, src_lengths = fake(CLASSIC)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, src_lengths, lens(5), beam=2, n_best=3)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, src_lengths, lens(5), beam=2, n_best=0)


@pytest.mark.parametrize("beam", [2, 3])
@pytest.mark.parametrize("name", list(TABLES))
def test_beam_is_never_worse_than_greedy_and_reports_true_log_probs(name, beam):
    """With alpha 0 the score is the log-probability; every hypothesis's log-probability is the
    one the table gives its tokens."""
    table = TABLES[name]
    model, src, src_lengths = fake(table)
    [greedy] = greedy_search(model, src, src_lengths, lens(6))
    hyps = beam_search(model, src, src_lengths, lens(6), beam=beam, n_best=beam)[0]
    assert hyps[0].score >= greedy.score - 1e-6
    for hyp in [greedy, *hyps]:
        assert hyp.log_prob == pytest.approx(path_log_prob(table, hyp.tokens), abs=1e-5)
        assert len(hyp.tokens) <= 6 and EOS not in hyp.tokens and BOS not in hyp.tokens


# --------------------------------------------------------------------------- length penalty
def test_gnmt_length_penalty_hand_values():
    assert [gnmt_length_penalty(n, 0.0) for n in (1, 5, 40)] == [1.0, 1.0, 1.0]
    assert gnmt_length_penalty(1, 1.0) == pytest.approx(1.0)
    assert gnmt_length_penalty(7, 1.0) == pytest.approx(2.0)
    assert gnmt_length_penalty(7, 0.5) == pytest.approx(math.sqrt(2.0))
    assert normalized_score(-3.0, 7, 1.0) == pytest.approx(-1.5)


@pytest.mark.parametrize("alpha, best", [(0.0, [A]), (1.0, [B, C, E])])
def test_length_penalty_decides_between_short_and_long(alpha, best):
    """Both searches finish [A] (ln 0.44, length 2 with EOS) and [B C E] (ln 0.3858, length 4):
    alpha 0 ranks by log-probability, alpha 1 divides by 7/6 and 9/6 respectively."""
    model, src, src_lengths = fake(LENGTH)
    [hyps] = beam_search(model, src, src_lengths, lens(6), beam=2, n_best=2, length_penalty=alpha)
    assert hyps[0].tokens == best
    short, long = sorted(hyps, key=lambda h: len(h.tokens))
    assert (short.tokens, long.tokens) == ([A], [B, C, E])
    assert short.log_prob == pytest.approx(ln(0.44), abs=1e-5)
    assert long.log_prob == pytest.approx(ln(0.45 * 0.95 ** 3), abs=1e-5)
    assert short.score == pytest.approx(ln(0.44) / ((5 + 2) / 6) ** alpha, abs=1e-5)
    assert long.score == pytest.approx(ln(0.45 * 0.95 ** 3) / ((5 + 4) / 6) ** alpha, abs=1e-5)


def test_greedy_score_uses_the_length_penalty_but_not_its_choice():
    model, src, src_lengths = fake(LENGTH)
    [hyp] = greedy_search(model, src, src_lengths, lens(6), length_penalty=1.0)
    assert hyp.tokens == [A]
    assert hyp.score == pytest.approx(ln(0.44) / (7 / 6), abs=1e-5)


# --------------------------------------------------------------------------- constraints
def test_min_length_bans_eos_until_enough_tokens():
    model, src, src_lengths = fake(EAGER)
    [free] = greedy_search(model, src, src_lengths, lens(6))
    assert free.tokens == []  # the constraint below has something to change
    [greedy] = greedy_search(model, src, src_lengths, lens(6), min_len=3)
    assert greedy.tokens == [A, A, A]
    assert greedy.log_prob == pytest.approx(3 * ln(0.2) + ln(0.7), abs=1e-5)
    [hyps] = beam_search(model, src, src_lengths, lens(6), beam=2, n_best=2, min_len=3)
    # Step 2 keeps A A A (0.008) and B A A (0.1 * 0.25 * 0.2 = 0.005); step 3 ends both.
    assert [h.tokens for h in hyps] == [[A, A, A], [B, A, A]]
    assert hyps[1].log_prob == pytest.approx(ln(0.1 * 0.25 * 0.2 * 0.7), abs=1e-5)
    assert all(len(h.tokens) >= 3 for h in hyps)


def test_no_repeat_bigram_stops_the_a_b_a_b_loop():
    model, src, src_lengths = fake(NGRAM)
    [free] = greedy_search(model, src, src_lengths, lens(6))
    assert free.tokens == [A, B, A, B, A, B] and has_repeated_bigram(free.tokens)
    assert free.log_prob == pytest.approx(ln(0.6) + 5 * ln(0.7) + ln(0.25), abs=1e-5)

    [greedy] = greedy_search(model, src, src_lengths, lens(6), no_repeat_ngram=2)
    assert greedy.tokens == [A, B, A]  # then B would repeat "A B": EOS (0.2) beats A (0.1)
    assert greedy.log_prob == pytest.approx(ln(0.6 * 0.7 * 0.7 * 0.2), abs=1e-5)

    [free_beam] = beam_search(model, src, src_lengths, lens(6), beam=2, n_best=2)
    assert all(has_repeated_bigram(h.tokens) for h in free_beam)
    [hyps] = beam_search(model, src, src_lengths, lens(6), beam=2, n_best=2, no_repeat_ngram=2)
    assert [h.tokens for h in hyps] == [[A, B, A], [B, A, B]]
    assert hyps[1].log_prob == pytest.approx(ln(0.3 * 0.7 * 0.7 * 0.25), abs=1e-5)


def test_max_length_forces_eos_at_the_limit():
    model, src, src_lengths = fake(ENDLESS)
    [greedy] = greedy_search(model, src, src_lengths, lens(4))
    assert greedy.tokens == [A] * 4
    assert greedy.log_prob == pytest.approx(4 * ln(0.6) + ln(0.05), abs=1e-5)
    [hyps] = beam_search(model, src, src_lengths, lens(4), beam=2, n_best=2)
    assert [h.tokens for h in hyps] == [[A] * 4, [A, A, A, B]]
    assert hyps[1].log_prob == pytest.approx(3 * ln(0.6) + ln(0.35) + ln(0.05), abs=1e-5)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_each_sentence_keeps_its_own_max_length_in_a_batch(search):
    """Limits 1, 5, 3 in one batch: the first sentence is done (and leaves) while others go on."""
    limits = lens(1, 5, 3)
    model, src, src_lengths = fake(ENDLESS, ENDLESS, ENDLESS)
    if search == "greedy":
        best = greedy_search(model, src, src_lengths, limits)
    else:
        results = beam_search(model, src, src_lengths, limits, beam=2, n_best=2)
        assert [[len(h.tokens) for h in hyps] for hyps in results] == [[1, 1], [5, 5], [3, 3]]
        best = [hyps[0] for hyps in results]
    for hyp, limit in zip(best, limits.tolist()):
        assert hyp.tokens == [A] * limit
        assert hyp.log_prob == pytest.approx(limit * ln(0.6) + ln(0.05), abs=1e-5)
    assert model.steps_taken == 6  # steps 0..5: the longest limit, then its forced EOS


@pytest.mark.parametrize("beam", [1, 2, 3])
def test_fake_batch_of_different_tables_decodes_as_each_alone(beam):
    """Sentences that finish at different steps leave the batch without disturbing the rest."""
    tables = [CLASSIC, ENDLESS, NGRAM, LENGTH, EAGER]
    limits = lens(5, 4, 6, 6, 2)
    model, src, src_lengths = fake(*tables)
    batched = beam_search(model, src, src_lengths, limits, beam=beam, n_best=beam)
    for i, table in enumerate(tables):
        alone_model, alone_src, alone_lengths = fake(table)
        alone = beam_search(alone_model, alone_src, alone_lengths, limits[i:i + 1], beam=beam, n_best=beam)[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in alone]
        assert [h.score for h in batched[i]] == pytest.approx([h.score for h in alone], abs=1e-6)


def test_first_beam_step_scores_one_row_per_sentence():
    """All K hypotheses of a sentence start identical, so the first step runs on its one live row
    and the K rows exist only from the second step on."""
    model, src, src_lengths = fake(ENDLESS, NGRAM, LENGTH)
    beam_search(model, src, src_lengths, lens(4, 4, 4), beam=3)
    assert model.rows_per_step[:2] == [3, 9]


@pytest.mark.parametrize("beam", [5, 6, 9])
def test_beam_wider_than_half_the_vocabulary_still_searches_every_row(beam):
    """2K candidates cannot come from one row of V = 10 when K > 5: the search then starts from K
    copies of each sentence's row (K - 1 at -inf), and gives the exhaustive n-best (K = 5 still starts from
    one row)."""
    model, src, src_lengths = fake(CLASSIC)
    hyps = beam_search(model, src, src_lengths, lens(3), beam=beam, n_best=3)[0]
    assert [h.tokens for h in hyps] == [[B], [A], [A, D]]
    for hyp in hyps:
        assert hyp.log_prob == pytest.approx(path_log_prob(CLASSIC, hyp.tokens), abs=1e-5)
    assert model.rows_per_step[:2] == [1 if 2 * beam <= V else beam, beam]


class NumpyTables:
    """TableModel's step for a numpy backend: same tables, numpy in and out."""

    def __init__(self, model: TableModel):
        self.log_probs = model.table.numpy()
        self.rows_per_step: list[int] = []

    def __call__(self, tokens, state, memory):
        self.rows_per_step.append(len(tokens))
        assert len(memory["table"]) == len(tokens) == len(state["steps"])
        return self.log_probs[memory["table"], tokens], {"steps": state["steps"] + 1}, np.ones((len(tokens), 1))


@pytest.mark.parametrize("small_rows", [0, 1000])
@pytest.mark.parametrize("min_len", [0, 3])
@pytest.mark.parametrize("beam", [1, 2, 3, 5, 6])
def test_numpy_and_torch_backends_give_the_same_search(beam, min_len, small_rows, monkeypatch):
    """The one search loop gives the same n-best hypotheses and scores whether a torch backend
    (top k by torch, state reordered by the model) or a numpy one (top k and reordering in
    numpy, as the runtime does) drives it, on a batch whose sentences finish at different steps;
    the beam first scores one row per sentence. Below min_len the search bans EOS without a mask,
    by widening its top list. Each beam step chooses in numpy (small_rows 0) or in plain Python
    (small_rows 1000)."""
    from s2s.search import candidates
    from s2s.search.arrays import ArrayDecoder

    monkeypatch.setattr(candidates, "SMALL_ROWS", small_rows)
    chosen_by = []
    for name in ("choose", "choose_small"):
        monkeypatch.setattr(candidates, name, (lambda f, name: lambda *a: (chosen_by.append(name), f(*a))[1])(
            getattr(candidates, name), name))

    tables = [CLASSIC, NGRAM, LENGTH, EAGER]  # not ENDLESS: its equally probable paths tie exactly
    limits = lens(5, 6, 6, 4)
    model, src, src_lengths = fake(*tables)
    if beam == 1:
        ours = [[h] for h in greedy_search(model, src, src_lengths, limits, min_len=min_len, length_penalty=0.6)]
    else:
        ours = beam_search(model, src, src_lengths, limits, beam=beam, n_best=beam, length_penalty=0.6,
                           min_len=min_len)
    step = NumpyTables(model)
    calls = []

    class Counting(ArrayDecoder):
        def select(self, tokens, state, memory, scores, blocks, k, mask, ban_eos=False, attention=False):
            calls.append((k, mask is None))
            return super().select(tokens, state, memory, scores, blocks, k, mask, ban_eos, attention)

    decoder = Counting(step, BOS)
    memory, state = {"table": src[:, 0].numpy()}, {"steps": np.zeros(len(tables), np.int64)}
    constraints = Constraints(limits.numpy(), EOS, min_len, 0)
    if beam == 1:
        theirs = [[h] for h in loops.greedy(decoder, memory, state, constraints, V, length_penalty=0.6)]
    else:
        theirs = loops.beam(decoder, memory, state, constraints, V, beam_size=beam, n_best=beam, length_penalty=0.6)
    for a, b in zip(ours, theirs):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    if min_len:  # no mask below min_len, and one more candidate per row
        first = 2 if beam == 1 else min(2 * beam + 1, V) if 2 * beam <= V else 3 * beam
        assert calls[0] == (first, True) and all(c[1] for c in calls[:min_len])
    if beam > 1:
        assert step.rows_per_step[0] == len(tables) * (1 if 2 * beam <= V else beam)
        assert step.rows_per_step[1] == len(tables) * beam
        assert chosen_by and set(chosen_by) == {"choose_small" if small_rows else "choose"}


# --------------------------------------------------------------------------- a tiny random model
@pytest.fixture
def tiny_model(tiny_model_factory):
    """The conftest's tiny random model (vocab 40) with every weight tripled, so that its
    distributions are peaked rather than near-uniform (no near-ties between candidates), and
    EOS favoured a little, so that some sentences stop by choice and others at their limit."""
    model = tiny_model_factory(vocab=40, seed=0)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(3.0)
        model.output.bias[EOS] = 1.0
    return model


def _random_batch(lengths: list[int], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, 40, (n,), generator=gen)
        src[i, n - 1] = EOS
    return src, torch.tensor(lengths)


LENGTHS = [6, 2, 9, 4, 7, 3]
LIMITS = lens(7, 3, 10, 5, 8, 4)


def _teacher_forced_log_prob(model, src, src_lengths, tokens: list[int]) -> float:
    tgt = torch.tensor([[BOS, *tokens]])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(src, src_lengths, tgt), -1)[0]
    return float(log_probs.gather(1, torch.tensor([*tokens, EOS]).unsqueeze(1)).sum())


def test_tiny_model_beam_one_equals_greedy(tiny_model):
    src, src_lengths = _random_batch(LENGTHS)
    greedy = greedy_search(tiny_model, src, src_lengths, LIMITS)
    beam = beam_search(tiny_model, src, src_lengths, LIMITS, beam=1)
    ended = [len(h.tokens) < limit for h, limit in zip(greedy, LIMITS.tolist())]
    assert any(ended) and not all(ended)  # some stop by choice, others at their limit
    for g, [b] in zip(greedy, beam):
        assert b.tokens == g.tokens
        assert b.log_prob == pytest.approx(g.log_prob, abs=1e-4)


def test_tiny_model_beam_search_of_a_sentence_does_not_depend_on_its_batch(tiny_model):
    src, src_lengths = _random_batch(LENGTHS)
    batched = beam_search(tiny_model, src, src_lengths, LIMITS, beam=3, n_best=3)
    for i, n in enumerate(LENGTHS):
        alone = beam_search(tiny_model, src[i:i + 1, :n], src_lengths[i:i + 1], LIMITS[i:i + 1], beam=3, n_best=3)[0]
        assert [h.tokens for h in batched[i]] == [h.tokens for h in alone]
        assert [h.score for h in batched[i]] == pytest.approx([h.score for h in alone], abs=1e-4)


def test_tiny_model_search_log_probs_match_teacher_forcing(tiny_model):
    """What the searches report is what the model assigns to the tokens they return."""
    src, src_lengths = _random_batch(LENGTHS[:3], seed=1)
    limits = LIMITS[:3]
    greedy = greedy_search(tiny_model, src, src_lengths, limits)
    beams = beam_search(tiny_model, src, src_lengths, limits, beam=3, n_best=2)
    for i, n in enumerate(LENGTHS[:3]):
        one, length = src[i:i + 1, :n], src_lengths[i:i + 1]
        for hyp in [greedy[i], *beams[i]]:
            assert len(hyp.tokens) <= int(limits[i])
            forced = _teacher_forced_log_prob(tiny_model, one, length, hyp.tokens)
            assert hyp.log_prob == pytest.approx(forced, abs=1e-4)
        assert beams[i][0].score >= greedy[i].score - 1e-5


@pytest.mark.parametrize("beam", [1, 3])
def test_the_search_takes_bos_and_eos_from_its_caller(beam):
    """The same tables with every token id permuted (BOS and EOS moved to 5 and 6): the search,
    told the new ids, finds the same hypotheses, permuted; nothing assumes BOS = 2 or EOS = 3."""
    from s2s.search.arrays import ArrayDecoder

    perm = np.roll(np.arange(V), 3)  # old id i -> (i + 3) % V: BOS 2 -> 5, EOS 3 -> 6, A 4 -> 7
    model, src, src_lengths = fake(CLASSIC, NGRAM, LENGTH)
    limits = lens(5, 6, 6)
    table = model.table.numpy()
    moved = np.empty_like(table)
    moved[:, perm[:, None], perm[None, :]] = table

    def step(tokens, state, memory):
        return moved[memory["table"], tokens], state, None

    decoder = ArrayDecoder(step, bos=int(perm[BOS]))
    memory, state = {"table": src[:, 0].numpy()}, {}
    constraints = Constraints(limits.numpy(), int(perm[EOS]), 0, 0)
    if beam == 1:
        moved_hyps = [[h] for h in loops.greedy(decoder, memory, state, constraints, V, length_penalty=0.0)]
        plain = [[h] for h in greedy_search(model, src, src_lengths, limits)]
    else:
        moved_hyps = loops.beam(decoder, memory, state, constraints, V, beam_size=beam, n_best=beam, length_penalty=0.0)
        plain = beam_search(model, src, src_lengths, limits, beam=beam, n_best=beam)
    for a, b in zip(plain, moved_hyps):
        assert [[int(perm[t]) for t in h.tokens] for h in a] == [h.tokens for h in b]
        assert [h.log_prob for h in a] == pytest.approx([h.log_prob for h in b], abs=1e-6)
