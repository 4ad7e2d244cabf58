"""Attention kept by the searches, and word alignments from it.

The attention a search keeps for a hypothesis must be the attention that teacher forcing that
hypothesis gives, step for step (the rows were reordered with the beam correctly); the runtime
must keep the same attention as PyTorch; alignments are checked on hand-built matrices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import s2s.models  # noqa: F401  (registers every part)
from s2s.decoding.decoder import ModelDecoder
from s2s.search import loops
from s2s.search.alignment import merge_words, pharaoh, word_alignment, word_ids
from s2s.search.hypotheses import SpecialIds
from s2s.search.options import DecodeOptions

from tests.unit.test_copy import DECODERS, ENCODER, IDS

SPECIAL = SpecialIds(pad=0, unk=1, bos=2, eos=3)
W = "\u2581"


def _sources(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([7, 4, 6], dtype=np.int64)  # EOS included
    src = np.zeros((3, 7), dtype=np.int64)
    for i, n in enumerate(lengths):
        src[i, : n - 1] = rng.integers(4, 40, n - 1)
        src[i, n - 1] = SPECIAL.eos
    return src, lengths


def _forced_attention(model, src_row: np.ndarray, length: int, tokens: list[int]) -> np.ndarray:
    """Teacher forcing BOS + tokens on one sentence alone: its attention (T + 1, S)."""
    src = torch.from_numpy(src_row[None, :length])
    tgt_in = torch.tensor([[SPECIAL.bos, *tokens]])
    with torch.no_grad():
        return model.teacher_forced(src, torch.tensor([length]), tgt_in).attention[0].numpy()


@pytest.mark.parametrize("mode", ["beam", "greedy", "sample"])
@pytest.mark.parametrize("decoder,attention", DECODERS, ids=IDS)
def test_kept_attention_is_teacher_forcings_on_the_chosen_hypothesis(tiny_model_factory, decoder, attention, mode):
    model = tiny_model_factory(encoder=dict(ENCODER), decoder=dict(decoder), attention=attention)
    src, lengths = _sources(np.random.default_rng(0))
    options = DecodeOptions(beam={"beam": 4, "greedy": 1, "sample": 1}[mode], n_best={"beam": 3}.get(mode, 2 if
                            mode == "sample" else 1), sample=mode == "sample", max_len=8, length_penalty=0.6)
    decoder_ = ModelDecoder(model, SPECIAL)
    with torch.no_grad():
        memory, state = decoder_.start(src, lengths)
        found = loops.search(decoder_, memory, state, loops.limits_of(lengths, options, SPECIAL.eos), 40, options,
                             src_lengths=lengths, rng=np.random.default_rng(1), keep_attention=True)
    for i, hyps in enumerate(found):
        for hyp in hyps:
            assert hyp.attention.shape == (len(hyp.tokens) + 1, src.shape[1])
            want = _forced_attention(model, src[i], int(lengths[i]), hyp.tokens)
            np.testing.assert_allclose(hyp.attention[:, : lengths[i]], want, atol=1e-5)
            assert np.abs(hyp.attention[:, lengths[i]:]).max(initial=0) < 1e-6  # padding gets none


def test_searches_keep_no_attention_unless_asked(tiny_model_factory):
    model = tiny_model_factory()
    src, lengths = _sources(np.random.default_rng(0))
    asked = []

    class Watching(ModelDecoder):
        def select(self, *args, attention=False, **kwargs):
            asked.append(attention)
            return super().select(*args, attention=attention, **kwargs)

    decoder = Watching(model, SPECIAL)
    for beam in (1, 3):
        options = DecodeOptions(beam=beam, max_len=5)
        with torch.no_grad():
            memory, state = decoder.start(src, lengths)
            found = loops.search(decoder, memory, state, loops.limits_of(lengths, options, SPECIAL.eos), 40, options,
                                 src_lengths=lengths, rng=np.random.default_rng(0))
        assert all(h.attention is None for hyps in found for h in hyps)
    assert asked and not any(asked)  # never fetched from the backend


def test_word_ids_follow_sentencepiece_word_starts():
    assert word_ids([f"{W}The", f"{W}bi", "cy", "cle", f"{W}.", "!"]) == [0, 1, 1, 1, 2, 2]
    assert word_ids(["un", f"{W}marked"]) == [0, 1]  # the first piece starts a word, marked or not
    assert word_ids([]) == []


def test_merge_sums_source_pieces_and_averages_target_pieces():
    # target pieces: "▁Fahr" "rad" "▁." ; source pieces: "▁bi" "cycle" "▁."
    weights = np.array([[0.6, 0.3, 0.1],
                        [0.2, 0.6, 0.2],
                        [0.1, 0.1, 0.8]])
    merged = merge_words(weights, [f"{W}bi", "cycle", f"{W}."], [f"{W}Fahr", "rad", f"{W}."])
    np.testing.assert_allclose(merged, [[(0.9 + 0.8) / 2, (0.1 + 0.2) / 2], [0.2, 0.8]])


def test_word_alignment_by_hand():
    # source words: 0 "▁A" 1 "▁big" 2 "▁dog" (two pieces "▁do" "g") ; target: "▁Ein" "▁großer" "▁Hund" "</s>"
    src = [f"{W}A", f"{W}big", f"{W}do", "g"]
    tgt = [f"{W}Ein", f"{W}großer", f"{W}Hund"]
    attention = np.array([[0.7, 0.1, 0.1, 0.05, 0.05],
                          [0.1, 0.3, 0.25, 0.25, 0.1],  # "dog"'s pieces sum to 0.5 > "big"'s 0.3
                          [0.0, 0.1, 0.45, 0.4, 0.05],
                          [0.0, 0.0, 0.0, 0.1, 0.9]])  # EOS's row and column are dropped
    pairs = word_alignment(attention, src, tgt)
    assert pairs == [(0, 0), (2, 1), (2, 2)]
    assert pharaoh(pairs) == "0-0 2-1 2-2"
    assert word_alignment(np.zeros((1, 3)), src[:2], []) == []
    assert word_alignment(np.array([[0.5, 0.5]]), [f"{W}x", f"{W}y"], [f"{W}z"]) == [(0, 0)]  # ties: earlier word
    with pytest.raises(ValueError, match="does not cover 3 target and 4 source pieces"):
        word_alignment(np.zeros((2, 2)), src, tgt)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, multi30k_slice):
    from s2s.config import recipe_from_dict
    from s2s.training.loop import train

    from tests.conftest import tiny_recipe_dict

    runs = {}

    def make(kind: str):
        if kind not in runs:
            model = ({"encoder": {"type": "transformer", "hidden": 16, "layers": 1, "heads": 2, "ffn": 32},
                      "attention": {"type": "multihead", "heads": 2},
                      "decoder": {"type": "transformer", "hidden": 16, "layers": 1, "heads": 2, "ffn": 32}}
                     if kind == "transformer" else
                     {"encoder": {"type": "lstm", "hidden": 8, "layers": 1, "bidirectional": True},
                      "attention": {"type": kind}, "decoder": {"type": "gru", "hidden": 16, "layers": 1}})
            recipe = recipe_from_dict(tiny_recipe_dict(
                multi30k_slice, model={"embeddings": {"dim": 16, "dropout": 0.0}, **model},
                train={"max_steps": 20, "valid_every": 20, "valid_bleu": False, "best_metric": "loss", "lr": 0.02}))
            runs[kind] = tmp_path_factory.mktemp(f"attention-{kind}")
            train(recipe, runs[kind])
        return runs[kind]

    return make


@pytest.mark.parametrize("kind", ["bahdanau", "luong-general", "transformer"])
def test_runtime_keeps_the_attention_pytorch_keeps(tiny_run, multi30k_slice, tmp_path, kind):
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    run = tiny_run(kind)
    export_bundle(run, tmp_path / "b")
    lines = multi30k_slice["test.en"].read_text(encoding="utf-8").splitlines()[:6] + [""]
    torch_t, runtime = TorchTranslator.from_run(run), Translator.load(tmp_path / "b")
    for options in ({"beam": 3, "n_best": 2}, {"beam": 1}):
        want = torch_t.hypotheses(lines, attention=True, **options)
        got = runtime.hypotheses(lines, attention=True, **options)
        for line, w_hyps, g_hyps in zip(lines, want, got):
            for w, g in zip(w_hyps, g_hyps):
                assert g.tokens == w.tokens
                if not line:
                    assert w.attention is None and g.attention is None
                    continue
                n_src = len(torch_t.encode_lines([line])[0]) + 1
                assert w.attention.shape == g.attention.shape == (len(w.tokens) + 1, n_src)
                np.testing.assert_allclose(g.attention, w.attention, atol=1e-5)
                labelled = runtime.attention_of(line, g)
                assert len(labelled["source"]) == n_src and labelled["source"][-1] == "</s>"
                assert len(labelled["target"]) == len(g.tokens) + 1
                pairs = runtime.alignment_of(line, g).split()
                n_tgt_words = len(runtime.detokenize(g.tokens).split())
                assert len(pairs) == n_tgt_words
                assert all(0 <= int(p.split("-")[0]) < len(line.split()) + 1 for p in pairs)
                assert [int(p.split("-")[1]) for p in pairs] == list(range(n_tgt_words))
