"""Corpora -> sentencepiece -> ids -> length-filtered (or truncated), bucketed batches, for one run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from s2s.config import Recipe
from s2s.data.batching import Batches, TokenBatcher, filter_by_length, truncate
from s2s.data.corpus import Parallel, read_split, stream_split
from s2s.data.streaming import LengthRules, StreamingBatcher, sample_pairs
from s2s.data.vocab import Vocabs, build_vocabs, cached_vocabs
from s2s.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    vocabs: Vocabs
    train: Batches  # a TokenBatcher, or a StreamingBatcher with data.streaming
    valid: TokenBatcher
    valid_text: Parallel  # as read: the validation decode cuts sources itself (decode.max_src_len)


def prepare_data(recipe: Recipe, run_dir: Path) -> PreparedData:
    """Read train/valid, train (or reuse) the run's vocabularies, and build the batchers.

    Training pairs longer than ``data.max_src_len``/``max_tgt_len`` are dropped; with
    ``data.truncate_src`` a long source is cut to ``max_src_len`` tokens instead and its pair kept
    (its target whole, still filtered by ``max_tgt_len``). Validation pairs are never dropped and
    their targets never cut; with ``truncate_src`` their sources are cut like the training ones,
    so the validation loss sees sources as the model was trained on them.

    With ``data.streaming`` the training split is not read here: :mod:`s2s.data.streaming` reads,
    encodes and filters it by the same rules at each epoch, and the vocabulary trains on a sample.
    """
    data = recipe.data
    valid = read_split(data, "valid")  # small, and read first: a missing file fails before any training
    log.info("valid: %d pairs from %s (%d empty skipped)", len(valid), valid.origin, valid.skipped_empty)
    if data.streaming:
        vocabs, batcher = _prepare_streaming(recipe, run_dir)
    else:
        vocabs, batcher = _prepare_in_memory(recipe, run_dir)
    valid_src = vocabs.src.encode(valid.src)
    if data.truncate_src:
        valid_src, cut = truncate(valid_src, data.max_src_len)
        log.info("truncated %d of %d validation sources to %d tokens", cut, len(valid_src), data.max_src_len)
    valid_batcher = TokenBatcher(valid_src, vocabs.tgt.encode(valid.tgt), recipe.train.batch_tokens, recipe.seed)
    return PreparedData(vocabs, batcher, valid_batcher, valid)


def _prepare_in_memory(recipe: Recipe, run_dir: Path) -> tuple[Vocabs, TokenBatcher]:
    data = recipe.data
    train = read_split(data, "train")
    log.info("train: %d pairs from %s (%d empty skipped)", len(train), train.origin, train.skipped_empty)
    vocabs = build_vocabs(run_dir / "vocab", train.src, train.tgt, recipe.vocab, recipe.seed)
    src, tgt = vocabs.src.encode(train.src), vocabs.tgt.encode(train.tgt)
    if data.truncate_src:
        src, cut = truncate(src, data.max_src_len)
        log.info("truncated %d of %d training sources to %d tokens", cut, len(src), data.max_src_len)
    keep = filter_by_length(src, tgt, data.max_src_len, data.max_tgt_len)
    limits = LengthRules.from_config(data).describe()
    if len(keep) < len(src):
        log.info("length filter (%s tokens) dropped %d of %d training pairs", limits, len(src) - len(keep), len(src))
    if not len(keep):
        raise DataError(f"{train.origin}: no training pair survives the length filter ({limits} tokens); "
                        "raise data.max_src_len/max_tgt_len")
    batcher = TokenBatcher(src, tgt, recipe.train.batch_tokens, recipe.seed, keep)
    log.info("vocabulary: %d source, %d target pieces (%s); %d training target tokens",
             len(vocabs.src), len(vocabs.tgt), "joint" if vocabs.joint else "separate", batcher.num_tokens)
    return vocabs, batcher


def _prepare_streaming(recipe: Recipe, run_dir: Path) -> tuple[Vocabs, StreamingBatcher]:
    """The vocabulary (cached, or trained on a reservoir sample of the stream) and the streaming
    batcher; the training split is read lazily, never held."""
    data = recipe.data
    stream = stream_split(data, "train")
    log.info("train: streamed from %s in windows of %d pairs", stream.origin, data.shuffle_window)
    vocabs = cached_vocabs(run_dir / "vocab", recipe.vocab.joint)
    if vocabs is None:
        src, tgt = sample_pairs(stream, recipe.vocab.max_sentences, recipe.seed)
        if not src:
            raise DataError(f"{stream.origin}: no training pair with a non-empty source and target")
        log.info("vocabulary sample: %d pairs (vocab.max_sentences %d)", len(src), recipe.vocab.max_sentences)
        vocabs = build_vocabs(run_dir / "vocab", src, tgt, recipe.vocab, recipe.seed)
    log.info("vocabulary: %d source, %d target pieces (%s)",
             len(vocabs.src), len(vocabs.tgt), "joint" if vocabs.joint else "separate")
    batcher = StreamingBatcher(stream, vocabs, LengthRules.from_config(data), recipe.train.batch_tokens,
                               recipe.seed, data.shuffle_window, stream.origin)
    return vocabs, batcher
