"""Subword vocabularies: sentencepiece BPE or unigram, joint or one per side, trained once per run.

Special ids are fixed for every model s2s trains, so bundles and runtimes can rely on them:
``pad = 0``, ``unk = 1``, ``bos = 2``, ``eos = 3``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm

from s2s.config import VocabConfig
from s2s.errors import DataError
from s2s.search.copying import piece_table
from s2s.search.hypotheses import SpecialIds

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIAL_IDS = SpecialIds(pad=PAD, unk=UNK, bos=BOS, eos=EOS)
log = logging.getLogger(__name__)


class Vocab:
    """A sentencepiece model with s2s's fixed special ids."""

    def __init__(self, model_path: str | Path):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: sentencepiece model not found")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (PAD, UNK, BOS, EOS):
            raise DataError(f"{self.path}: special ids must be pad=0 unk=1 bos=2 eos=3")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, lines: list[str]) -> list[list[int]]:
        """Token ids of each line (no BOS/EOS)."""
        return self.sp.encode(lines, out_type=int)

    def decode(self, ids: list[int]) -> str:
        """Detokenized text; stops at the first EOS and drops padding."""
        out = []
        for token in ids:
            if token == EOS:
                break
            if token not in (PAD, BOS):
                out.append(int(token))
        return self.sp.decode(out)

    def pieces(self, ids: list[int]) -> list[str]:
        return [self.sp.id_to_piece(int(i)) for i in ids]


@dataclass
class Vocabs:
    src: Vocab
    tgt: Vocab

    @property
    def joint(self) -> bool:
        return self.src.path == self.tgt.path

    def source_to_target(self) -> np.ndarray:
        """For each source id, the target id of the same piece or -1 (copy attention's table,
        :func:`s2s.search.copying.source_to_target`): the identity for a joint vocabulary."""
        if self.joint:
            return np.arange(len(self.src), dtype=np.int64)
        return piece_table(self.src.sp, self.tgt.sp)

    @property
    def special(self) -> SpecialIds:
        """The special ids, checked equal on both sides when each model was loaded."""
        return SPECIAL_IDS


def _train_one(lines: list[str], prefix: Path, config: VocabConfig, seed: int) -> None:
    sample = lines
    if len(lines) > config.max_sentences:
        sample = random.Random(seed).sample(lines, config.max_sentences)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sample), model_prefix=str(prefix), vocab_size=config.size,
        model_type=config.model_type, character_coverage=config.character_coverage,
        pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS, hard_vocab_limit=False,
        num_threads=2, minloglevel=2,
    )


def vocab_paths(directory: Path, joint: bool) -> tuple[Path, Path]:
    if joint:
        return directory / "joint.model", directory / "joint.model"
    return directory / "src.model", directory / "tgt.model"


def load_vocabs(directory: str | Path, joint: bool) -> Vocabs:
    src, tgt = vocab_paths(Path(directory), joint)
    vocab = Vocab(src)
    return Vocabs(vocab, vocab if joint else Vocab(tgt))


def cached_vocabs(directory: str | Path, joint: bool) -> Vocabs | None:
    """The run's vocabularies when ``directory`` already holds them, else None."""
    src_path, tgt_path = vocab_paths(Path(directory), joint)
    return load_vocabs(directory, joint) if src_path.is_file() and tgt_path.is_file() else None


def build_vocabs(directory: str | Path, src_lines: list[str], tgt_lines: list[str],
                 config: VocabConfig, seed: int = 1) -> Vocabs:
    """Train the run's sentencepiece model(s) unless they are already cached in ``directory``."""
    directory = Path(directory)
    cached = cached_vocabs(directory, config.joint)
    if cached is not None:
        return cached
    src_path, tgt_path = vocab_paths(directory, config.joint)
    if config.joint:
        log.info("training joint sentencepiece %s model, size %d", config.model_type, config.size)
        _train_one(src_lines + tgt_lines, src_path.with_suffix(""), config, seed)
    else:
        log.info("training source and target sentencepiece models, size %d each", config.size)
        _train_one(src_lines, src_path.with_suffix(""), config, seed)
        _train_one(tgt_lines, tgt_path.with_suffix(""), config, seed)
    return load_vocabs(directory, config.joint)
