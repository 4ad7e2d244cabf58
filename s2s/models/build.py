"""The one place where recipe names become modules."""

from __future__ import annotations

import numpy as np

from s2s import registry
from s2s.config import ModelConfig
from s2s.errors import ConfigError
from s2s.models.attention.base import Attention
from s2s.models.contract import Seq2Seq
from s2s.models.copy import Copy
from s2s.models.embeddings import OutputProjection, TokenEmbedding


def _entry(kind: str, name: str):
    entry = registry.lookup(kind, name)
    if entry is None:
        raise ConfigError(f"model.{kind}.type = {name!r} is not a registered {kind}; "
                          f"expected one of {registry.names(kind)}")
    return entry


def build_model(config: ModelConfig, src_vocab_size: int, tgt_vocab_size: int,
                source_to_target: np.ndarray | None = None, unk: int = 1) -> Seq2Seq:
    """Assemble embeddings, encoder, attention, decoder and output projection from a recipe.

    A decoder with ``copy: true`` also needs ``source_to_target``, the target id of each source
    piece or -1 (:meth:`s2s.data.vocab.Vocabs.source_to_target`), and the target UNK id ``unk``
    that extended ids read as when fed back."""
    emb = config.embeddings
    if emb.share_src_tgt and src_vocab_size != tgt_vocab_size:
        raise ConfigError("model.embeddings.share_src_tgt needs one joint vocabulary (vocab.joint: true)")
    src_embed = TokenEmbedding(src_vocab_size, emb.dim)
    tgt_embed = src_embed if emb.share_src_tgt else TokenEmbedding(tgt_vocab_size, emb.dim)
    decoder_cls = _entry("decoder", config.decoder.type).cls
    attention_cls = _entry("attention", config.attention.type).cls
    allowed = getattr(decoder_cls, "attention_types", None)
    if allowed is not None and config.attention.type not in allowed:
        raise ConfigError(f"model.decoder.type = {config.decoder.type!r} attends with model.attention.type in "
                          f"{list(allowed)}, got {config.attention.type!r}")
    try:
        encoder = _entry("encoder", config.encoder.type).cls.from_config(config.encoder, emb.dim)

        def make_attention(**extra):  # decoders make one scorer, or one per layer
            return attention_cls.from_config(config.attention, config.decoder.hidden, encoder.output_dim, **extra)

        decoder = decoder_cls.from_config(config.decoder, emb.dim, encoder.output_dim, encoder.summary_dim,
                                          make_attention)
        output = OutputProjection(decoder.output_dim, tgt_vocab_size, tgt_embed if emb.tie_output else None)
    except ValueError as err:
        raise ConfigError(f"model: {err}") from None
    copy = None
    if getattr(config.decoder, "copy", False):
        if source_to_target is None or len(source_to_target) != src_vocab_size:
            raise ValueError("model.decoder.copy needs the source-to-target id table of the vocabularies "
                             f"({src_vocab_size} source ids)")
        copy = Copy(decoder.output_dim, encoder.output_dim, tgt_vocab_size, source_to_target, unk)
    return Seq2Seq(src_embed, tgt_embed, encoder, decoder, output, emb.dropout, copy)


def count_parameters(model: Seq2Seq) -> int:
    return sum(p.numel() for p in model.parameters())


def count_parameters_by_part(model: Seq2Seq) -> dict[str, int]:
    """Parameters of ``embeddings``, ``encoder``, ``attention`` (encoder-decoder attention, in
    every decoder layer that has one), ``decoder`` (the rest of it), ``output`` (the projection,
    less a tied matrix), ``copy`` (with copy attention) and ``total``. A shared or tied matrix
    counts once, in the first part that holds it, so the parts add up to the total."""
    attention = [m for m in model.decoder.modules() if isinstance(m, Attention)]
    parts = {"embeddings": [model.src_embed, model.tgt_embed], "encoder": [model.encoder], "attention": attention,
             "decoder": [model.decoder], "output": [model.output], "copy": [model.copy] if model.copy else []}
    seen: set[int] = set()
    counts = {}
    for name, modules in parts.items():
        fresh = {id(p): p for m in modules for p in m.parameters() if id(p) not in seen}
        seen.update(fresh)
        counts[name] = sum(p.numel() for p in fresh.values())
    if model.copy is None:
        del counts["copy"]
    counts["total"] = count_parameters(model)
    return counts
