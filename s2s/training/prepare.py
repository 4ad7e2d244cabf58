"""Corpora -> sentencepiece -> ids -> length-filtered (or truncated), bucketed batches, for one run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from s2s.config import Recipe
from s2s.data.batching import TokenBatcher, filter_by_length, truncate
from s2s.data.corpus import Parallel, read_split
from s2s.data.vocab import Vocabs, build_vocabs
from s2s.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    vocabs: Vocabs
    train: TokenBatcher
    valid: TokenBatcher
    valid_text: Parallel  # as read: the validation decode cuts sources itself (decode.max_src_len)


def prepare_data(recipe: Recipe, run_dir: Path) -> PreparedData:
    """Read train/valid, train (or reuse) the run's vocabularies, and build the batchers.

    Training pairs longer than ``data.max_src_len``/``max_tgt_len`` are dropped; with
    ``data.truncate_src`` a long source is cut to ``max_src_len`` tokens instead and its pair kept
    (its target whole, still filtered by ``max_tgt_len``). Validation pairs are never dropped and
    their targets never cut; with ``truncate_src`` their sources are cut like the training ones,
    so the validation loss sees sources as the model was trained on them.
    """
    data = recipe.data
    train = read_split(data, "train")
    valid = read_split(data, "valid")
    log.info("train: %d pairs from %s (%d empty skipped)", len(train), train.origin, train.skipped_empty)
    log.info("valid: %d pairs from %s (%d empty skipped)", len(valid), valid.origin, valid.skipped_empty)
    vocabs = build_vocabs(run_dir / "vocab", train.src, train.tgt, recipe.vocab, recipe.seed)
    src, tgt = vocabs.src.encode(train.src), vocabs.tgt.encode(train.tgt)
    valid_src = vocabs.src.encode(valid.src)
    if data.truncate_src:
        src, cut = truncate(src, data.max_src_len)
        log.info("truncated %d of %d training sources to %d tokens", cut, len(src), data.max_src_len)
        valid_src, cut = truncate(valid_src, data.max_src_len)
        log.info("truncated %d of %d validation sources to %d tokens", cut, len(valid_src), data.max_src_len)
    keep = filter_by_length(src, tgt, data.max_src_len, data.max_tgt_len)
    limits = (f"tgt <= {data.max_tgt_len}" if data.truncate_src
              else f"src <= {data.max_src_len}, tgt <= {data.max_tgt_len}")
    if len(keep) < len(src):
        log.info("length filter (%s tokens) dropped %d of %d training pairs", limits, len(src) - len(keep), len(src))
    if not len(keep):
        raise DataError(f"{train.origin}: no training pair survives the length filter ({limits} tokens); "
                        "raise data.max_src_len/max_tgt_len")
    batcher = TokenBatcher(src, tgt, recipe.train.batch_tokens, recipe.seed, keep)
    valid_batcher = TokenBatcher(valid_src, vocabs.tgt.encode(valid.tgt), recipe.train.batch_tokens, recipe.seed)
    log.info("vocabulary: %d source, %d target pieces (%s); %d training target tokens",
             len(vocabs.src), len(vocabs.tgt), "joint" if vocabs.joint else "separate", batcher.num_tokens)
    return PreparedData(vocabs, batcher, valid_batcher, valid)
