"""Copy attention (pointer-generator) and coverage: the mixture, extended ids, the coverage state
and loss, and their training loss against the step's log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import s2s.models  # noqa: F401  (registers every part)
from s2s.models.contract import TeacherForced
from s2s.search.copying import copied_pieces

from tests.unit.test_models import _batch

TRANSFORMER = {"type": "transformer", "hidden": 16, "layers": 2, "heads": 2, "ffn": 32}
ENCODER = {"type": "lstm", "hidden": 8, "layers": 1, "bidirectional": True}
# every decoder over every attention type it takes: RNN decoders with each scorer, the transformer
DECODERS = [({"type": cell}, {"type": attention}) for cell in ("lstm", "gru")
            for attention in ("bahdanau", "luong-dot", "luong-general", "luong-concat", "multihead")]
DECODERS += [(dict(TRANSFORMER), {"type": "multihead", "heads": 2}),
             ({**TRANSFORMER, "attention_head": 1}, {"type": "multihead", "heads": 2})]
IDS = [f"{d['type']}-{a['type']}" + ("-head1" if d.get("attention_head") else "") for d, a in DECODERS]
MISSING = [5, 9, 11]  # source ids the target vocabulary lacks in the separate-vocabulary tables


def _table(vocab: int = 40) -> np.ndarray:
    table = np.arange(vocab)
    table[MISSING] = -1
    return table


def _model(factory, decoder, attention, table=None, **flags):
    return factory(encoder=dict(ENCODER), decoder={**decoder, **flags}, attention=attention, source_to_target=table)


def _stepped(model, src, src_lengths, tgt_in):
    """log_probs of encode + step over tgt_in: (B, T, width), attention (B, T, S), and the
    coverage state after each step (B, T, S) when the decoder keeps one."""
    memory, state = model.encode(src, src_lengths)
    outs, attns, covers = [], [], []
    for t in range(tgt_in.size(1)):
        log_probs, state, attn = model.log_probs(tgt_in[:, t], state, memory)
        outs.append(log_probs)
        attns.append(attn)
        covers.append(state.get("coverage", attn))
    return torch.stack(outs, 1), torch.stack(attns, 1), torch.stack(covers, 1)


@pytest.mark.parametrize("decoder,attention", DECODERS, ids=IDS)
def test_copy_mixture_sums_to_one_and_copies_pieces_missing_from_the_target_vocabulary(
        tiny_model_factory, decoder, attention):
    model = _model(tiny_model_factory, decoder, attention, _table(), copy=True, coverage=True)
    src, src_lengths, tgt_in = _batch()
    src[0, :3] = torch.tensor(MISSING)  # sentence 0 starts with the three missing pieces
    with torch.no_grad():
        log_probs, attns, _ = _stepped(model, src, src_lengths, tgt_in)
    assert log_probs.size(-1) == 40 + src.size(1)  # V + S columns: room for every source piece
    probs = log_probs.double().exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:2], dtype=torch.double), atol=1e-5, rtol=0)
    # sentence 0's three missing pieces got extended ids 40, 41, 42, and copying puts mass there
    assert (probs[0, :, 40:43] > 0).all()
    assert (probs[0, :, 43:] == 0).all()  # extended ids no piece of the sentence names
    memory, _ = model.encode(src, src_lengths)
    ids = memory["copy_ids"]
    for row in range(src.size(0)):
        real = src[row, : src_lengths[row]].tolist()
        named = copied_pieces(real, _table())  # the host's numbering of the extended ids
        want = [40 + named.index(t) if t in MISSING else t for t in real]
        assert ids[row, : src_lengths[row]].tolist() == want


@pytest.mark.parametrize("decoder,attention", DECODERS, ids=IDS)
def test_copy_with_p_gen_one_is_the_plain_decoder(tiny_model_factory, decoder, attention):
    plain = _model(tiny_model_factory, decoder, attention)
    copying = _model(tiny_model_factory, decoder, attention, copy=True)
    missing = set(copying.state_dict()) - set(plain.state_dict())
    assert missing == {"copy.p_gen.weight", "copy.p_gen.bias", "copy.source_to_target"}
    copying.load_state_dict({**copying.state_dict(), **plain.state_dict()})
    with torch.no_grad():
        copying.copy.p_gen.weight.zero_()
        copying.copy.p_gen.bias.fill_(100.0)  # sigmoid(100) == 1 in float32
        src, src_lengths, tgt_in = _batch()
        want = torch.log_softmax(plain(src, src_lengths, tgt_in), -1)
        torch.testing.assert_close(_stepped(copying, src, src_lengths, tgt_in)[0], want, atol=1e-5, rtol=0)
        torch.testing.assert_close(copying(src, src_lengths, tgt_in), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("decoder,attention", DECODERS, ids=IDS)
def test_coverage_state_is_the_running_sum_of_attention_and_teacher_forcing_steps_the_same(
        tiny_model_factory, decoder, attention):
    model = _model(tiny_model_factory, decoder, attention, _table(), copy=True, coverage=True)
    with torch.no_grad():  # coverage weights start at zero: make them matter
        for module in model.modules():  # additive scorers take it inside tanh, the others add it to scores
            if getattr(module, "coverage_weight", None) is not None:
                module.coverage_weight.fill_(3.0 if hasattr(module, "v") else 50.0)
    src, src_lengths, tgt_in = _batch()
    with torch.no_grad():
        stepped, attns, covers = _stepped(model, src, src_lengths, tgt_in)
        torch.testing.assert_close(covers, torch.cumsum(attns, 1), atol=1e-5, rtol=0)
        forced = model.teacher_forced(src, src_lengths, tgt_in)
        torch.testing.assert_close(forced.attention, attns, atol=1e-5, rtol=0)
        torch.testing.assert_close(model(src, src_lengths, tgt_in), stepped, atol=1e-4, rtol=0)
    plain = _model(tiny_model_factory, decoder, attention, _table(), copy=True)
    with torch.no_grad():  # coverage changed the attention (a tiny random model attends almost uniformly)
        assert (plain.teacher_forced(src, src_lengths, tgt_in).attention - attns).abs().max() > 1e-3


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("decoder,attention", DECODERS[:1] + DECODERS[-2:-1], ids=[IDS[0], IDS[-2]])
def test_copy_training_loss_is_the_cross_entropy_of_the_stepped_mixture(tiny_model_factory, decoder, attention,
                                                                         smoothing):
    model = _model(tiny_model_factory, decoder, attention, _table(), copy=True, coverage=True)
    src, src_lengths, tgt_in = _batch()
    tgt_out = torch.cat([tgt_in[:, 1:], torch.zeros_like(tgt_in[:, :1])], 1)
    tgt_out[torch.arange(len(tgt_in)), (tgt_in != 0).sum(1) - 1] = 3  # EOS closes each target
    src[1, :2] = torch.tensor([5, 9])
    tgt_out[1, 0] = 4  # a gold token that sentence 1 can also copy (its first source token is 4 or not)
    with torch.no_grad():
        loss, coverage = model.loss(model.teacher_forced(src, src_lengths, tgt_in), tgt_out, smoothing, True)
        log_probs = _stepped(model, src, src_lengths, tgt_in)[0]
        keep = tgt_out != 0
        gold = log_probs.gather(2, tgt_out.unsqueeze(2)).squeeze(2)[keep]
        memory, state = model.encode(src, src_lengths)
        vocab_logs = []
        for t in range(tgt_in.size(1)):
            logits, state, _ = model.step(tgt_in[:, t], state, memory)
            vocab_logs.append(torch.log_softmax(logits, -1))
        vocab_mean = torch.stack(vocab_logs, 1).mean(-1)[keep]
    want = -(1 - smoothing) * gold.sum() - smoothing * vocab_mean.sum()
    torch.testing.assert_close(loss, want, atol=1e-3, rtol=1e-5)
    assert coverage is not None and coverage > 0


def test_coverage_loss_matches_a_hand_computed_example(tiny_model_factory):
    model = _model(tiny_model_factory, {"type": "lstm"}, {"type": "bahdanau"}, coverage=True)
    attention = torch.tensor([[[0.5, 0.5, 0.0], [0.9, 0.1, 0.0], [0.2, 0.2, 0.6]],
                              [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]]])
    tgt_out = torch.tensor([[4, 5, 3], [4, 3, 0]])  # the second target has 2 tokens: step 3 is padding
    forced = TeacherForced(torch.zeros(2, 3, 16), attention, {})
    _, coverage = model.loss(forced, tgt_out, 0.0, coverage=True)
    # sentence 0: step 2 min([.9, .1], [.5, .5]) = .6; step 3 min([.2, .2, .6], [1.4, .6, 0]) = .4
    # sentence 1: step 2 min([1, 0], [1, 0]) = 1; step 3 is padding
    assert coverage.item() == pytest.approx(0.6 + 0.4 + 1.0, abs=1e-6)
    assert model.loss(forced, tgt_out, 0.0, coverage=False)[1] is None


# --------------------------------------------------------------------------- exported: runtime == PyTorch
SHARED = ["ein", "hund", "der", "mann", "rot", "geht", "im", "park"]
SOURCE_ONLY = ["zebra", "quokka", "walross"]  # pieces the target vocabulary lacks: copied by extended ids
TARGET_ONLY = ["katze", "blau"]


def _vocabs(folder):
    """Separate sentencepiece models (word pieces) whose source side has words the target lacks."""
    import random

    import sentencepiece as spm

    rng = random.Random(0)
    for side, words in (("src", SHARED + SOURCE_ONLY), ("tgt", SHARED + TARGET_ONLY)):
        lines = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(300)]
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(folder / side),
                                       vocab_size=len(words) + 5, model_type="word", pad_id=0, unk_id=1, bos_id=2,
                                       eos_id=3, hard_vocab_limit=False, minloglevel=2, num_threads=1)


def copy_bundle(folder, tiny_model_factory, decoder, attention):
    """A bundle in ``folder`` of a tiny random model with copy attention and coverage over
    separate vocabularies (so extended ids come out), with its search graph; returns the model
    and its vocabularies."""
    from s2s.bundle import bundle_meta, write_bundle_json
    from s2s.data.vocab import SPECIAL_IDS, Vocab, Vocabs
    from s2s.export.bundle import add_search_graphs
    from s2s.export.onnx import add_search_head, export_graphs
    from s2s.search.options import DecodeOptions

    _vocabs(folder)
    vocabs = Vocabs(Vocab(folder / "src.model"), Vocab(folder / "tgt.model"))
    table = vocabs.source_to_target()
    assert (table[[vocabs.src.sp.piece_to_id(f"▁{w}") for w in SOURCE_ONLY]] == -1).all()
    model = tiny_model_factory(encoder=dict(ENCODER), decoder={**decoder, "copy": True, "coverage": True},
                               attention=attention, vocab=len(vocabs.tgt), source_to_target=table)
    with torch.no_grad():  # copy most of the time, so that extended ids come out
        model.copy.p_gen.bias.fill_(-3.0)
        for module in model.modules():
            if getattr(module, "coverage_weight", None) is not None:
                module.coverage_weight.fill_(1.0)
    spec = export_graphs(model, folder)
    add_search_head(folder / "decoder_step.onnx")
    files = {"encoder": "encoder.onnx", "decoder_step": "decoder_step.onnx"}
    write_bundle_json(bundle_meta(
        model_family="rnn", architecture={}, special=SPECIAL_IDS, max_lengths={}, decode=DecodeOptions(),
        vocab={"source": "src.model", "target": "tgt.model", "source_size": len(vocabs.src),
               "target_size": len(vocabs.tgt)},
        graphs={"memory": spec.memory_specs, "state": spec.state_specs, "variants": {"fp32": files},
                "search_head": True, "memory_per_sentence": model.decoder.memory_per_sentence,
                "copy_extends": True}, provenance={}), folder)
    add_search_graphs(folder, ["ein zebra geht im park", "der quokka und das walross"])
    return model, vocabs


@pytest.mark.parametrize("decoder,attention", [DECODERS[0], DECODERS[6], DECODERS[2], DECODERS[3], DECODERS[4],
                                               DECODERS[-2], DECODERS[-1]],
                         ids=[IDS[0], IDS[6], IDS[2], IDS[3], IDS[4], IDS[-2], IDS[-1]])
def test_copy_coverage_bundle_decodes_pytorchs_tokens_and_copies_source_only_words(tmp_path, tiny_model_factory,
                                                                                   decoder, attention):
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.parity import check_steps
    from s2s.runtime import Translator
    from s2s.search.options import DecodeOptions

    model, vocabs = copy_bundle(tmp_path, tiny_model_factory, decoder, attention)
    ours = TorchTranslator(model, vocabs, DecodeOptions())
    theirs = Translator.load(tmp_path, providers=["CPUExecutionProvider"], tune_allocator=False)
    graph = Translator.load(tmp_path, providers=["CPUExecutionProvider"], search="graph")
    assert theirs.copy_extends and ours.copy_extends
    src, lengths = torch.tensor([[4, 9, 12, 3, 0], [10, 11, 3, 0, 0]]), torch.tensor([4, 3])
    assert check_steps(model, theirs, src, lengths) <= 1e-4
    lines = ["ein zebra geht im park", "der quokka und das walross", "mann rot", "walross walross zebra hund"]
    for options in ({"beam": 1, "max_len": 8}, {"beam": 3, "max_len": 8}, {"beam": 3, "max_len": 8, "n_best": 2},
                    {"beam": 3, "max_len": 8, "coverage_penalty": 0.5, "no_repeat_ngram": 2}):
        with torch.inference_mode():
            a = ours.hypotheses(lines, **options)
        b = theirs.hypotheses(lines, **options)
        assert [[h.tokens for h in hyps] for hyps in a] == [[h.tokens for h in hyps] for hyps in b], options
        assert [[ours.text(h) for h in hyps] for hyps in a] == [[theirs.text(h) for h in hyps] for hyps in b]
        c = graph.hypotheses(lines, **options)  # search.onnx, extended ids and coverage included
        assert [[h.tokens for h in hyps] for hyps in b] == [[h.tokens for h in hyps] for hyps in c], options
        assert [[theirs.text(h) for h in hyps] for hyps in b] == [[graph.text(h) for h in hyps] for hyps in c]
    # a source of source-only words: whatever is copied from it comes through extended ids
    words = ours.translate(["zebra quokka walross zebra"], beam=3, max_len=4, min_len=2)[0].split()
    assert len(words) >= 2 and set(words) <= set(SOURCE_ONLY), words
