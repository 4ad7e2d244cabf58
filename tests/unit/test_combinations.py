"""Every valid encoder x attention x decoder combination builds, trains, decodes and exports
with runtime parity; invalid ones fail with a message naming the allowed choices. The lists
come from the registry, so a newly registered part is covered without edits here."""

from __future__ import annotations

import itertools

import pytest
import torch

import s2s.models  # noqa: F401  (registers every part)
from s2s import registry
from s2s.errors import ConfigError

TRANSFORMER = {"type": "transformer", "hidden": 16, "layers": 2, "heads": 2, "ffn": 32, "dropout": 0.1}


def _part(kind: str, name: str) -> dict:
    if name == "transformer":
        return dict(TRANSFORMER)
    if kind == "encoder":
        return {"type": name, "hidden": 8, "layers": 2, "bidirectional": True, "dropout": 0.1}
    if kind == "decoder":
        return {"type": name, "hidden": 16, "layers": 2, "dropout": 0.1}
    return {"type": name, "heads": 2} if name == "multihead" else {"type": name}


def _valid(decoder: str, attention: str) -> bool:
    allowed = getattr(registry.lookup("decoder", decoder).cls, "attention_types", None)
    return allowed is None or attention in allowed


ALL = list(itertools.product(registry.names("encoder"), registry.names("attention"), registry.names("decoder")))
VALID = [c for c in ALL if _valid(c[2], c[1])]
INVALID = [c for c in ALL if not _valid(c[2], c[1])]


def _model_section(encoder: str, attention: str, decoder: str) -> dict:
    return {"embeddings": {"dim": 16, "dropout": 0.1, "share_src_tgt": True, "tie_output": True},
            "encoder": _part("encoder", encoder), "attention": _part("attention", attention),
            "decoder": _part("decoder", decoder)}


def test_the_registry_offers_the_combinations_the_recipes_promise():
    assert {"lstm", "gru", "transformer"} <= set(registry.names("encoder"))
    assert {"lstm", "gru", "transformer"} <= set(registry.names("decoder"))
    assert ("transformer", "multihead", "transformer") in VALID and ("lstm", "bahdanau", "transformer") in INVALID


@pytest.mark.parametrize("encoder,attention,decoder", INVALID, ids=["-".join(c) for c in INVALID])
def test_invalid_combinations_name_the_allowed_attention(encoder, attention, decoder):
    """The recipe loader refuses the pair before any work; the model builder, handed such a
    config anyway, refuses it with the same words."""
    import dataclasses

    from s2s.config import recipe_from_dict
    from s2s.models.build import build_model

    named = rf"model.decoder.type = '{decoder}' attends with model.attention.type in \['multihead'\], got '{attention}'"
    with pytest.raises(ConfigError, match=named):
        recipe_from_dict({"model": _model_section(encoder, attention, decoder)})
    model = recipe_from_dict({"model": _model_section(encoder, "multihead", decoder)}).model
    unchecked = dataclasses.replace(model, attention=registry.lookup("attention", attention).config(type=attention))
    with pytest.raises(ConfigError, match=named):
        build_model(unchecked, 40, 40)


@pytest.mark.parametrize("encoder,attention,decoder", VALID, ids=["-".join(c) for c in VALID])
def test_combination_trains_decodes_and_exports_with_parity(multi30k_slice, tmp_path, encoder, attention, decoder):
    from s2s.config import recipe_from_dict
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator
    from s2s.training.loop import train

    from tests.conftest import tiny_recipe_dict

    recipe = recipe_from_dict(tiny_recipe_dict(
        multi30k_slice, model=_model_section(encoder, attention, decoder),
        train={"max_steps": 20, "valid_every": 20, "valid_bleu": False, "best_metric": "loss", "lr": 0.02}))
    position = train(recipe, tmp_path / "run")
    assert position.step == 20
    meta = export_bundle(tmp_path / "run", tmp_path / "bundle", search=True)
    assert meta["verification"]["max_abs_diff"] <= 1e-4
    lines = multi30k_slice["test.en"].read_text(encoding="utf-8").splitlines()[:8]
    ours, theirs = TorchTranslator.from_run(tmp_path / "run"), Translator.load(tmp_path / "bundle")
    graph = Translator.load(tmp_path / "bundle", search="graph")  # search.onnx: the search in one graph
    # A tiny model trained for 20 updates repeats tokens with near-tied scores; a length cap keeps
    # the comparison about the graphs, not about ties accumulated over 60 repeated tokens.
    for options in ({"beam": 1, "max_len": 12}, {"beam": 3, "max_len": 12},
                    {"beam": 3, "max_len": 12, "n_best": 2, "no_repeat_ngram": 2}):
        a, b, c = (t.hypotheses(lines, **options) for t in (ours, theirs, graph))
        assert [[h.tokens for h in hyps] for hyps in a] == [[h.tokens for h in hyps] for hyps in b], options
        assert [[h.tokens for h in hyps] for hyps in b] == [[h.tokens for h in hyps] for hyps in c], options


@pytest.mark.parametrize("encoder,attention,decoder", VALID, ids=["-".join(c) for c in VALID])
def test_stepping_gives_the_teacher_forced_logits_for_every_combination(encoder, attention, decoder):
    from s2s.config import recipe_from_dict
    from s2s.models.build import build_model

    from tests.unit.test_models import _batch, _step_logits

    torch.manual_seed(0)
    model = build_model(recipe_from_dict({"model": _model_section(encoder, attention, decoder)}).model, 40, 40)
    src, src_lengths, tgt_in = _batch()
    with torch.no_grad():
        forced = model.eval()(src, src_lengths, tgt_in)
        stepped, attns = _step_logits(model, src, src_lengths, tgt_in)
    torch.testing.assert_close(stepped, forced, atol=1e-5, rtol=0)
    pad = (torch.arange(src.size(1)) >= src_lengths.unsqueeze(1)).unsqueeze(1).expand_as(attns)
    assert not attns.masked_select(pad).any()
    torch.testing.assert_close(attns.sum(-1), torch.ones(attns.shape[:2]), atol=1e-5, rtol=0)


TRANSFORMER_OPTIONS = {
    "post-norm": {"pre_norm": False},
    "learned-positions": {"positions": "learned", "max_positions": 32},
    "gelu-unscaled": {"activation": "gelu", "scale_embeddings": False},
    "one-layer-8-heads": {"layers": 1, "heads": 8},
}


@pytest.mark.parametrize("options", list(TRANSFORMER_OPTIONS), ids=list(TRANSFORMER_OPTIONS))
def test_transformer_options_keep_stepping_equal_to_teacher_forcing(options):
    from s2s.config import recipe_from_dict
    from s2s.models.build import build_model

    from tests.unit.test_models import _batch, _step_logits

    section = _model_section("transformer", "multihead", "transformer")
    for side in ("encoder", "decoder"):
        section[side].update(TRANSFORMER_OPTIONS[options])
    section["embeddings"] = {"dim": 24, "dropout": 0.0, "tie_output": False}  # 24 != 16: input projection
    torch.manual_seed(0)
    model = build_model(recipe_from_dict({"model": section}).model, 40, 40).eval()
    src, src_lengths, tgt_in = _batch()
    with torch.no_grad():
        torch.testing.assert_close(_step_logits(model, src, src_lengths, tgt_in)[0],
                                   model(src, src_lengths, tgt_in), atol=1e-5, rtol=0)


def test_transformer_memory_is_zero_at_padding_and_batching_does_not_change_a_sentence():
    from s2s.config import recipe_from_dict
    from s2s.models.build import build_model

    from tests.unit.test_models import _batch

    torch.manual_seed(0)
    model = build_model(recipe_from_dict({"model": _model_section("transformer", "multihead", "transformer")})
                        .model, 40, 40).eval()
    src, src_lengths, tgt_in = _batch()
    with torch.no_grad():
        memory, _ = model.encode(src, src_lengths)
        pad = torch.arange(src.size(1)) >= src_lengths.unsqueeze(1)
        assert not memory["memory_bank"][pad].any()
        alone = model(src[3:, : src_lengths[3]], src_lengths[3:], tgt_in[3:, :2])
        batched = model(src, src_lengths, tgt_in)[3:, :2]
    torch.testing.assert_close(alone, batched, atol=1e-5, rtol=0)


@pytest.mark.parametrize("encoder", ["transformer", "lstm"])
def test_transformer_step_over_one_memory_row_per_sentence_equals_the_expanded_memory(encoder):
    """``memory_per_sentence``: with K hypotheses per sentence in the state, a step over the
    memory of B sentences gives what the step over the memory repeated K times gives."""
    from s2s.config import recipe_from_dict
    from s2s.models.build import build_model
    from s2s.models.contract import select

    from tests.unit.test_models import _batch

    torch.manual_seed(0)
    model = build_model(recipe_from_dict({"model": _model_section(encoder, "multihead", "transformer")})
                        .model, 40, 40).eval()
    assert model.decoder.memory_per_sentence
    src, src_lengths, _ = _batch()
    k = 3
    expand = torch.arange(src.size(0)).repeat_interleave(k)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        memory, state = model.encode(src, src_lengths)
        shared_state = state = select(state, expand)
        expanded = select(memory, expand)
        for _ in range(4):  # caches of different contents per hypothesis
            tokens = torch.randint(4, 40, (expand.numel(),), generator=gen)
            want, state, want_attn = model.step(tokens, state, expanded)
            got, shared_state, got_attn = model.step(tokens, shared_state, memory)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
            torch.testing.assert_close(got_attn, want_attn, atol=1e-6, rtol=0)
            for name in state:
                torch.testing.assert_close(shared_state[name], state[name], atol=1e-5, rtol=0)


def test_a_source_longer_than_max_positions_is_refused_by_name():
    from s2s.config import recipe_from_dict
    from s2s.models.build import build_model

    section = _model_section("transformer", "multihead", "transformer")
    section["encoder"]["max_positions"] = 4
    model = build_model(recipe_from_dict({"model": section}).model, 40, 40).eval()
    with pytest.raises(ValueError, match="a source of 6 tokens exceeds max_positions \\(4\\)"):
        model.encode(torch.randint(4, 40, (1, 6)), torch.tensor([6]))
