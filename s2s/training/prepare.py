"""Corpora -> sentencepiece -> ids -> length-filtered, bucketed batches, for one run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from s2s.config import Recipe
from s2s.data.batching import TokenBatcher, filter_by_length
from s2s.data.corpus import Parallel, read_split
from s2s.data.vocab import Vocabs, build_vocabs

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    vocabs: Vocabs
    train: TokenBatcher
    valid: TokenBatcher
    valid_text: Parallel


def prepare_data(recipe: Recipe, run_dir: Path) -> PreparedData:
    """Read train/valid, train (or reuse) the run's vocabularies, and build the batchers."""
    train = read_split(recipe.data, "train")
    valid = read_split(recipe.data, "valid")
    log.info("train: %d pairs from %s (%d empty skipped)", len(train), train.origin, train.skipped_empty)
    log.info("valid: %d pairs from %s (%d empty skipped)", len(valid), valid.origin, valid.skipped_empty)
    vocabs = build_vocabs(run_dir / "vocab", train.src, train.tgt, recipe.vocab, recipe.seed)
    src, tgt = vocabs.src.encode(train.src), vocabs.tgt.encode(train.tgt)
    keep = filter_by_length(src, tgt, recipe.data.max_src_len, recipe.data.max_tgt_len)
    if len(keep) < len(src):
        log.info("length filter (src <= %d, tgt <= %d tokens) dropped %d of %d training pairs",
                 recipe.data.max_src_len, recipe.data.max_tgt_len, len(src) - len(keep), len(src))
    if not len(keep):
        raise ValueError("no training pair survives the length filter; raise data.max_src_len/max_tgt_len")
    batcher = TokenBatcher(src, tgt, recipe.train.batch_tokens, recipe.seed, keep)
    valid_batcher = TokenBatcher(vocabs.src.encode(valid.src), vocabs.tgt.encode(valid.tgt),
                                 recipe.train.batch_tokens, recipe.seed)
    log.info("vocabulary: %d source, %d target pieces (%s); %d training target tokens",
             len(vocabs.src), len(vocabs.tgt), "joint" if vocabs.joint else "separate", batcher.num_tokens)
    return PreparedData(vocabs, batcher, valid_batcher, valid)
