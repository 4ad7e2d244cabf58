"""Models: the decoding contract (stepping == teacher forcing), recurrent layers, padding,
reordering, attention masks, tying, and the fused output loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import s2s.models  # noqa: F401  (registers every part)
from s2s import registry
from s2s.data.vocab import BOS, PAD
from s2s.errors import ConfigError
from s2s.models.encoders.rnn import _CustomLayer, _FusedLayer
from s2s.training import losses

torch.set_num_threads(1)

VOCAB = 40
SRC_LENGTHS = [7, 4, 5, 2]  # unsorted, so padding sits at different places in every row
TGT_LENGTHS = [5, 3, 6, 2]

# Option sets for stepping == teacher forcing. The model is in eval mode, so recurrent dropout
# and weight drop are inactive, but setting them routes the encoder through the custom layers.
REGULARIZED = {"layer_norm": True, "residual": True, "recurrent_dropout": 0.3, "weight_drop": 0.3}
OPTION_SETS = {
    "defaults": ({}, {}),
    "regularized": (REGULARIZED, REGULARIZED),
    "no-input-feeding": ({}, {"input_feeding": False}),
    "zero-bridge": ({}, {"bridge": "zero"}),
}


def _padded(lengths: list[int], seed: int, low: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids in [low, VOCAB) of the given lengths, right-padded with PAD: (B, max), (B,)."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.full((len(lengths), max(lengths)), PAD, dtype=torch.long)
    for i, n in enumerate(lengths):
        rows[i, :n] = torch.randint(low, VOCAB, (n,), generator=gen)
    return rows, torch.tensor(lengths)


def _batch(src_lengths=SRC_LENGTHS, tgt_lengths=TGT_LENGTHS, seed=0):
    """src (B, S), src_lengths (B,), tgt_in (B, T): BOS-prefixed, PAD after each target."""
    src, lengths = _padded(src_lengths, seed)
    tgt, _ = _padded([n - 1 for n in tgt_lengths], seed + 1)
    tgt_in = torch.cat([torch.full((len(tgt_lengths), 1), BOS), tgt], 1)
    return src, lengths, tgt_in


def _step_logits(model, src, src_lengths, tgt_in):
    """Feed tgt_in one token at a time through encode + step: (B, T, V) and attention (B, T, S)."""
    memory, state = model.encode(src, src_lengths)
    logits, attns = [], []
    for t in range(tgt_in.size(1)):
        out, state, attn = model.step(tgt_in[:, t], state, memory)
        logits.append(out)
        attns.append(attn)
    return torch.stack(logits, 1), torch.stack(attns, 1)


# --------------------------------------------------------------------------- stepping == teacher forcing
@pytest.mark.parametrize("options", list(OPTION_SETS), ids=list(OPTION_SETS))
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", registry.names("attention"))
def test_stepping_gives_the_teacher_forced_logits(tiny_model_factory, attention, cell, options):
    """Encoder hidden 8 bidirectional -> memory 16 == decoder hidden 16 (luong-dot needs it)."""
    enc_opts, dec_opts = OPTION_SETS[options]
    model = tiny_model_factory(encoder={"type": cell, "hidden": 8, "bidirectional": True, **enc_opts},
                               decoder={"type": cell, "hidden": 16, **dec_opts},
                               attention={"type": attention})
    src, src_lengths, tgt_in = _batch()
    with torch.no_grad():
        forced = model(src, src_lengths, tgt_in)
        stepped, _ = _step_logits(model, src, src_lengths, tgt_in)
    assert forced.shape == (4, tgt_in.size(1), VOCAB)
    torch.testing.assert_close(stepped, forced, atol=1e-5, rtol=0)


def test_every_registered_attention_is_covered():
    """The loop above reads the registry: a newly registered scorer is tested without edits."""
    assert {"bahdanau", "luong-dot", "luong-general", "luong-concat", "multihead"} <= set(registry.names("attention"))


# --------------------------------------------------------------------------- deferred weight gradients
def test_step_linears_give_autograds_gradients_even_for_unused_steps():
    """Three steps share W (one of them feeds nothing downstream) and a bias; W also has a
    direct use outside the loop. Gradients equal plain F.linear's."""
    from s2s.cpu.steplinear import StepLinears

    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(5, 4, generator=gen, requires_grad=True) for _ in range(3)]
    weight = torch.randn(6, 4, generator=gen, requires_grad=True)
    bias = torch.randn(6, generator=gen, requires_grad=True)
    row_bias = torch.randn(5, 6, generator=gen, requires_grad=True)

    def loss(linear):
        outs = [linear(xs[0], weight, bias), linear(xs[1], weight, row_bias), linear(xs[2], weight)]
        return (outs[0].tanh() * outs[1]).sum() + weight.square().sum()  # outs[2] unused

    leaves = [*xs, weight, bias, row_bias]
    deferred = torch.autograd.grad(loss(StepLinears(deferred=True)), leaves, allow_unused=True)
    plain = torch.autograd.grad(loss(StepLinears(deferred=False)), leaves, allow_unused=True)
    for got, want in zip(deferred, plain):
        if want is None:
            assert got is None or not got.any()
        else:
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("options", ["defaults", "regularized", "no-input-feeding"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", registry.names("attention"))
def test_teacher_forced_gradients_do_not_depend_on_deferring_weight_gradients(
        tiny_model_factory, monkeypatch, attention, cell, options):
    """The decoder's training pass forms each weight's gradient once for all steps; every
    parameter's gradient must equal the one autograd forms step by step."""
    import s2s.models.decoders.rnn as rnn_decoder
    from s2s.cpu.steplinear import StepLinears

    enc_opts, dec_opts = OPTION_SETS[options]
    model = tiny_model_factory(encoder={"type": cell, "hidden": 8, **enc_opts},
                               decoder={"type": cell, "hidden": 16, **dec_opts}, attention={"type": attention})
    src, src_lengths, tgt_in = _batch()

    def grads():
        model.zero_grad()
        torch.manual_seed(1)  # same dropout masks in both passes
        model.train()(src, src_lengths, tgt_in).log_softmax(-1)[..., 5].sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    deferred = grads()
    monkeypatch.setattr(rnn_decoder, "StepLinears", lambda deferred: StepLinears(False))
    plain = grads()
    assert deferred.keys() == plain.keys() and any("decoder" in name for name in plain)
    for name, want in plain.items():
        torch.testing.assert_close(deferred[name], want, atol=1e-5, rtol=1e-4, msg=name)


# --------------------------------------------------------------------------- custom == fused recurrent layers
def _copy_fused_into_custom(fused: _FusedLayer, custom: _CustomLayer) -> None:
    directions = [("", custom.forward_rnn)]
    if custom.backward_rnn is not None:
        directions.append(("_reverse", custom.backward_rnn))
    with torch.no_grad():
        for suffix, layer in directions:
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer.cell, name).copy_(getattr(fused.rnn, f"{name}_l0{suffix}"))


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_custom_recurrent_layer_computes_what_the_fused_kernel_computes(kind, bidirectional):
    """Same weights, no layer norm, no dropouts: outputs (zero at padding) and final states agree,
    the backward direction included, on a padded batch."""
    torch.manual_seed(0)
    fused = _FusedLayer(kind, 6, 8, bidirectional).eval()
    custom = _CustomLayer(kind, 6, 8, bidirectional, layer_norm=False, recurrent_dropout=0.0, weight_drop=0.0).eval()
    _copy_fused_into_custom(fused, custom)
    lengths = torch.tensor([5, 2, 7, 1])
    x = torch.randn(4, 7, 6) * (torch.arange(7) < lengths.unsqueeze(1)).unsqueeze(-1)
    with torch.no_grad():
        out_fused, h_fused = fused(x, lengths)
        out_custom, h_custom = custom(x, lengths)
    dirs = 2 if bidirectional else 1
    assert out_custom.shape == out_fused.shape == (4, 7, dirs * 8)
    assert h_custom.shape == h_fused.shape == (4, dirs * 8)
    torch.testing.assert_close(out_custom, out_fused, atol=1e-5, rtol=0)
    torch.testing.assert_close(h_custom, h_fused, atol=1e-5, rtol=0)
    assert not out_custom[1, 2:].any() and not out_custom[3, 1:].any()  # zero at padding


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_fused_layer_on_padded_input_matches_packed_sequences(kind, bidirectional):
    """The fused layer runs the padded batch unpacked; outputs, final states and input gradients
    must equal PyTorch's packed-sequence path, even with garbage at the padded positions."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    layer = _FusedLayer(kind, 6, 8, bidirectional).train()
    lengths = torch.tensor([5, 2, 7, 1])
    x = torch.randn(4, 7, 6, requires_grad=True)  # padding holds random values on purpose
    out, h = layer(x, lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_out, ref_final = layer.rnn(packed)
    ref_out, _ = pad_packed_sequence(ref_out, batch_first=True, total_length=7)
    ref_h = (ref_final[0] if kind == "lstm" else ref_final).transpose(0, 1).reshape(4, -1)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-5, rtol=0)
    weights = torch.randn_like(out)
    (grad,) = torch.autograd.grad((out * weights).sum() + h.square().sum(), x)
    (ref_grad,) = torch.autograd.grad((ref_out * weights).sum() + ref_h.square().sum(), x)
    torch.testing.assert_close(grad, ref_grad, atol=1e-5, rtol=0)
    assert not grad[1, 2:].any() and not grad[3, 1:].any()  # padding gets no gradient


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stacked_residual_encoder_gives_the_same_memory_and_summary_on_either_path(kind):
    """Whole RNNEncoder, 2 bidirectional layers with residual: weight drop (inactive in eval mode)
    only switches it to the custom layers, which must then agree with the fused ones."""
    from s2s.models.encoders.rnn import RNNEncoder

    base = dict(hidden=8, layers=2, bidirectional=True, dropout=0.0, residual=True)
    torch.manual_seed(0)
    fused = RNNEncoder(kind, 6, **base).eval()
    custom = RNNEncoder(kind, 6, **base, weight_drop=0.5).eval()
    assert all(isinstance(layer, _FusedLayer) for layer in fused.layers)
    assert all(isinstance(layer, _CustomLayer) for layer in custom.layers)
    for fused_layer, custom_layer in zip(fused.layers, custom.layers):
        _copy_fused_into_custom(fused_layer, custom_layer)
    lengths = torch.tensor([3, 6, 1])
    pad = torch.arange(6) >= lengths.unsqueeze(1)
    x = torch.randn(3, 6, 6).masked_fill(pad.unsqueeze(-1), 0.0)
    with torch.no_grad():
        bank_fused, summary_fused = fused(x, lengths, pad)
        bank_custom, summary_custom = custom(x, lengths, pad)
    assert summary_custom.shape == (3, fused.summary_dim) == (3, 2 * 2 * 8)
    torch.testing.assert_close(bank_custom, bank_fused, atol=1e-5, rtol=0)
    torch.testing.assert_close(summary_custom, summary_fused, atol=1e-5, rtol=0)


def test_custom_layer_backward_direction_reads_each_sentence_from_its_own_end():
    """Property independent of the fused kernel: the backward output at position 0 of a padded
    sentence equals the forward output at the last position of the same sentence reversed."""
    torch.manual_seed(1)
    layer = _CustomLayer("gru", 6, 8, True).eval()
    layer.backward_rnn.load_state_dict(layer.forward_rnn.state_dict())  # same cell both ways
    x = torch.randn(1, 5, 6)
    padded = torch.cat([x, torch.zeros(1, 2, 6)], 1)
    with torch.no_grad():
        out, h = layer(padded, torch.tensor([5]))
        reversed_out, _ = layer(x.flip(1), torch.tensor([5]))
    torch.testing.assert_close(out[0, 0, 8:], reversed_out[0, 4, :8], atol=1e-6, rtol=0)
    torch.testing.assert_close(h[0, 8:], out[0, 0, 8:], atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- padding invariance
@pytest.mark.parametrize("encoder", [{}, {"layer_norm": True, "residual": True}], ids=["fused", "custom"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_sentence_does_not_change_when_batched_with_longer_ones(tiny_model_factory, cell, encoder):
    model = tiny_model_factory(encoder={"type": cell, **encoder}, decoder={"type": cell})
    src, src_lengths, tgt_in = _batch(src_lengths=[9, 3, 6], tgt_lengths=[7, 3, 5], seed=3)
    alone = 1  # the shortest sentence, with the shortest target
    s, t = int(src_lengths[alone]), 3
    with torch.no_grad():
        memory, state = model.encode(src, src_lengths)
        memory_1, state_1 = model.encode(src[alone:alone + 1, :s], src_lengths[alone:alone + 1])
        logits = model(src, src_lengths, tgt_in)
        logits_1 = model(src[alone:alone + 1, :s], src_lengths[alone:alone + 1], tgt_in[alone:alone + 1, :t])
    torch.testing.assert_close(memory["memory_bank"][alone, :s], memory_1["memory_bank"][0], atol=1e-5, rtol=0)
    assert not memory["memory_bank"][alone, s:].any()  # padding rows of the memory are zero
    for name in state:
        torch.testing.assert_close(state[name][alone], state_1[name][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[alone, :t], logits_1[0], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- reorder
def _state_after_two_steps(model):
    src, src_lengths, tgt_in = _batch()
    memory, state = model.encode(src, src_lengths)
    for t in range(2):
        _, state, _ = model.step(tgt_in[:, t], state, memory)
    return state


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_reorder_by_identity_changes_nothing_and_a_permutation_permutes_rows(tiny_model_factory, cell):
    model = tiny_model_factory(encoder={"type": cell}, decoder={"type": cell})
    with torch.no_grad():
        state = _state_after_two_steps(model)
    assert set(state) >= {"hidden", "feed"} and (("cell" in state) == (cell == "lstm"))
    same = model.reorder(state, torch.arange(4))
    assert same.keys() == state.keys()
    for name in state:
        assert torch.equal(same[name], state[name]), name
    perm = torch.tensor([2, 0, 3, 1])
    moved = model.reorder(state, perm)
    for name in state:
        for row, source in enumerate(perm.tolist()):
            assert torch.equal(moved[name][row], state[name][source]), name
    # Rows differ from each other, so the check above could not pass by accident.
    assert not torch.equal(moved["hidden"], state["hidden"])
    grown = model.reorder(state, torch.tensor([1, 1, 1]))  # beam expansion: repeating a row
    assert all(torch.equal(grown[name][2], state[name][1]) for name in state)


# --------------------------------------------------------------------------- attention weights
@pytest.mark.parametrize("attention", registry.names("attention"))
def test_step_attention_is_zero_at_padding_and_sums_to_one(tiny_model_factory, attention):
    model = tiny_model_factory(attention={"type": attention})
    src, src_lengths, tgt_in = _batch()
    with torch.no_grad():
        _, attns = _step_logits(model, src, src_lengths, tgt_in)
    pad = torch.arange(src.size(1)) >= src_lengths.unsqueeze(1)  # (B, S)
    assert attns.shape == (4, tgt_in.size(1), src.size(1))
    at_pad = pad.unsqueeze(1).expand_as(attns)
    assert not attns.masked_select(at_pad).any()  # exactly zero at every padded position
    torch.testing.assert_close(attns.sum(-1), torch.ones(4, tgt_in.size(1)), atol=1e-6, rtol=0)
    assert (attns.masked_select(~at_pad) > 0).all()


# --------------------------------------------------------------------------- tying
def test_tied_output_shares_the_target_embedding_storage(tiny_model_factory):
    model = tiny_model_factory(tie_output=True)
    assert model.output.matrix is model.tgt_embed.weight
    assert model.output.matrix.data_ptr() == model.tgt_embed.weight.data_ptr()
    names = [name for name, _ in model.named_parameters()]
    assert "output.weight" not in names  # no second copy of the matrix
    with torch.no_grad():
        model.tgt_embed.weight[5].fill_(0.25)
    hidden = torch.randn(2, 16)
    torch.testing.assert_close(model.output(hidden)[:, 5], hidden.sum(-1) * 0.25 + model.output.bias[5])


def test_untied_output_has_its_own_matrix(tiny_model_factory):
    model = tiny_model_factory(tie_output=False)
    assert model.output.matrix.data_ptr() != model.tgt_embed.weight.data_ptr()


def test_share_src_tgt_uses_one_embedding(tiny_model_factory):
    shared = tiny_model_factory(share_src_tgt=True)
    assert shared.src_embed is shared.tgt_embed
    separate = tiny_model_factory(share_src_tgt=False)
    assert separate.src_embed.weight.data_ptr() != separate.tgt_embed.weight.data_ptr()


def test_tying_a_decoder_whose_size_differs_from_the_embeddings_is_a_config_error(tiny_model_factory):
    with pytest.raises(ConfigError, match="tie_output"):
        tiny_model_factory(decoder={"hidden": 24}, tie_output=True)
    assert tiny_model_factory(decoder={"hidden": 24}, tie_output=False).output.matrix.shape == (VOCAB, 24)


def test_luong_dot_with_mismatched_sizes_is_a_config_error(tiny_model_factory):
    with pytest.raises(ConfigError, match="luong-dot"):
        tiny_model_factory(encoder={"hidden": 12}, attention={"type": "luong-dot"})


# --------------------------------------------------------------------------- fused output loss
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_chunked_output_loss_equals_projection_then_cross_entropy(monkeypatch, smoothing):
    """Value and gradients w.r.t. hidden, weight and bias; 23 rows of V=11 in chunks of 3 rows."""
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 33)  # 3 rows per chunk -> 8 chunks, last one short
    gen = torch.Generator().manual_seed(0)
    n, d, v = 23, 8, 11
    hidden = torch.randn(n, d, generator=gen)
    weight = torch.randn(v, d, generator=gen)
    bias = torch.randn(v, generator=gen)
    target = torch.randint(1, v, (n,), generator=gen)  # non-pad targets, as the training loop passes

    def value_and_grads(fn):
        leaves = [t.clone().requires_grad_(True) for t in (hidden, weight, bias)]
        loss = fn(*leaves)
        (loss * 1.5).backward()  # a non-unit upstream gradient must scale the saved ones
        return loss.detach(), [leaf.grad for leaf in leaves]

    fused, fused_grads = value_and_grads(lambda h, w, b: losses.output_loss(h, w, b, target, smoothing))
    plain, plain_grads = value_and_grads(lambda h, w, b: losses.sequence_loss(F.linear(h, w, b), target, smoothing))
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)
    for name, got, want in zip(("hidden", "weight", "bias"), fused_grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=name)


def test_output_loss_of_a_uniform_two_way_choice_is_ln_2_per_token():
    hidden = torch.zeros(3, 4)
    weight, bias = torch.randn(2, 4), torch.zeros(2)  # zero hidden -> logits [0, 0]
    target = torch.tensor([1, 1, 1])
    assert losses.output_loss(hidden, weight, bias, target, 0.0).item() == pytest.approx(3 * math.log(2), rel=1e-6)
    assert losses.sequence_loss(torch.zeros(3, 2), target).item() == pytest.approx(3 * math.log(2), rel=1e-6)


# --------------------------------------------------------------------------- plain arguments == from_config
EMBED_DIM, QUERY_DIM, MEMORY_DIM, SUMMARY_DIM = 10, 8, 12, 24
# Recipe sections with no default values, so a field that from_config fails to pass shows.
RNN_ENCODER = {"hidden": 6, "layers": 3, "bidirectional": False, "dropout": 0.3, "residual": True,
               "layer_norm": True, "recurrent_dropout": 0.1, "weight_drop": 0.2}
RNN_DECODER = {"hidden": QUERY_DIM, "layers": 3, "dropout": 0.3, "input_feeding": False, "bridge": "zero",
               "residual": True, "layer_norm": True, "recurrent_dropout": 0.1, "weight_drop": 0.2}
TRANSFORMER = {"hidden": QUERY_DIM, "layers": 2, "heads": 2, "ffn": 12, "dropout": 0.3, "attention_dropout": 0.1,
               "activation_dropout": 0.2, "activation": "gelu", "pre_norm": False, "positions": "learned",
               "max_positions": 16, "scale_embeddings": False}
MULTIHEAD = {"heads": 3, "hidden": 6, "dropout": 0.1}


def _decoder_attention(**extra):
    """The scorer both paths give a decoder: luong-general for the RNN, multihead for the transformer."""
    from s2s.models.attention.luong import LuongGeneralAttention
    from s2s.models.attention.multihead import MultiHeadAttention

    if "out_dim" in extra:
        return MultiHeadAttention(QUERY_DIM, MEMORY_DIM, heads=2, **extra)
    return LuongGeneralAttention(QUERY_DIM, MEMORY_DIM)


def _plain_builders() -> dict:
    """(kind, name) -> (recipe section, the module built from plain keyword arguments alone)."""
    from s2s.models.attention.bahdanau import BahdanauAttention
    from s2s.models.attention.luong import LuongConcatAttention, LuongDotAttention, LuongGeneralAttention
    from s2s.models.attention.multihead import MultiHeadAttention
    from s2s.models.decoders.rnn import RNNDecoder
    from s2s.models.decoders.transformer import TransformerDecoder
    from s2s.models.encoders.rnn import RNNEncoder
    from s2s.models.encoders.transformer import TransformerEncoder

    rnn_decoder = lambda kind: RNNDecoder(kind, EMBED_DIM, MEMORY_DIM, SUMMARY_DIM,  # noqa: E731
                                          _decoder_attention(), **RNN_DECODER)
    return {
        ("encoder", "lstm"): (RNN_ENCODER, lambda: RNNEncoder("lstm", EMBED_DIM, **RNN_ENCODER)),
        ("encoder", "gru"): (RNN_ENCODER, lambda: RNNEncoder("gru", EMBED_DIM, **RNN_ENCODER)),
        ("encoder", "transformer"): (TRANSFORMER, lambda: TransformerEncoder(EMBED_DIM, **TRANSFORMER)),
        ("decoder", "lstm"): (RNN_DECODER, lambda: rnn_decoder("lstm")),
        ("decoder", "gru"): (RNN_DECODER, lambda: rnn_decoder("gru")),
        ("decoder", "transformer"): (TRANSFORMER, lambda: TransformerDecoder(EMBED_DIM, _decoder_attention,
                                                                             **TRANSFORMER)),
        ("attention", "bahdanau"): ({"hidden": 5}, lambda: BahdanauAttention(QUERY_DIM, MEMORY_DIM, hidden=5)),
        ("attention", "luong-dot"): ({}, lambda: LuongDotAttention(MEMORY_DIM, MEMORY_DIM)),
        # attention.hidden sizes the additive scorers only; luong-general has none
        ("attention", "luong-general"): ({"hidden": 5}, lambda: LuongGeneralAttention(QUERY_DIM, MEMORY_DIM)),
        ("attention", "luong-concat"): ({"hidden": 5}, lambda: LuongConcatAttention(QUERY_DIM, MEMORY_DIM,
                                                                                     hidden=5)),
        ("attention", "multihead"): (MULTIHEAD, lambda: MultiHeadAttention(QUERY_DIM, MEMORY_DIM, **MULTIHEAD)),
    }


PARTS = sorted((kind, name) for kind in registry.KINDS for name in registry.names(kind))


def _from_config(kind: str, name: str, section: dict) -> torch.nn.Module:
    entry = registry.lookup(kind, name)
    config = entry.config(type=name, **section)
    if kind == "encoder":
        return entry.cls.from_config(config, EMBED_DIM)
    if kind == "decoder":
        return entry.cls.from_config(config, EMBED_DIM, MEMORY_DIM, SUMMARY_DIM, _decoder_attention)
    return entry.cls.from_config(config, MEMORY_DIM if name == "luong-dot" else QUERY_DIM, MEMORY_DIM)


def _plain_attributes(module: torch.nn.Module) -> dict:
    """Every submodule's scalar attributes (sizes, flags, dropout rates): what state_dicts miss."""
    return {(path, key): value for path, sub in module.named_modules() for key, value in vars(sub).items()
            if isinstance(value, (bool, int, float, str, type(None)))}


def test_every_registered_part_is_built_from_plain_arguments_below():
    assert set(_plain_builders()) == set(PARTS)


@pytest.mark.parametrize("kind,name", PARTS, ids=[f"{k}-{n}" for k, n in PARTS])
def test_a_part_built_from_plain_arguments_equals_the_one_from_config(kind, name):
    """Constructors take plain keyword arguments (no config object); ``from_config`` maps the
    recipe section onto them. Same seed: same parameters, same initial values, same options."""
    section, build = _plain_builders()[(kind, name)]
    torch.manual_seed(0)
    plain = build()
    torch.manual_seed(0)
    mapped = _from_config(kind, name, section)
    assert type(plain) is type(mapped)
    want, got = mapped.state_dict(), plain.state_dict()
    assert list(got) == list(want) and (got or name == "luong-dot")  # luong-dot has no parameters
    for key in want:
        assert torch.equal(got[key], want[key]), key
    assert _plain_attributes(plain) == _plain_attributes(mapped)


def test_no_model_module_takes_a_config_object():
    """House style: modules take plain arguments; only ``from_config`` reads a config."""
    import importlib
    import inspect
    import pkgutil

    offenders = []
    for info in pkgutil.walk_packages(s2s.models.__path__, "s2s.models."):
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and issubclass(cls, torch.nn.Module) and cls.__module__ == info.name):
                continue
            for param in inspect.signature(cls.__init__).parameters.values():
                if param.name == "config" or "Config" in str(param.annotation):
                    offenders.append(f"{cls.__qualname__}({param.name}: {param.annotation})")
    assert not offenders


def test_plain_arguments_are_checked_as_the_config_is():
    from s2s.models.decoders.rnn import RNNDecoder
    from s2s.models.encoders.rnn import RNNEncoder
    from s2s.models.encoders.transformer import TransformerEncoder

    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        RNNEncoder("lstm", EMBED_DIM, hidden=8, dropout=1.0)
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNEncoder("rnn", EMBED_DIM, hidden=8)
    with pytest.raises(ValueError, match="bridge must be 'dense' or 'zero'"):
        RNNDecoder("gru", EMBED_DIM, MEMORY_DIM, SUMMARY_DIM, _decoder_attention(), hidden=QUERY_DIM, bridge="mean")
    with pytest.raises(ValueError, match=r"hidden \(10\) must be divisible by heads \(4\)"):
        TransformerEncoder(EMBED_DIM, hidden=10, heads=4)
