"""Token-budget batches bucketed by length, deterministic for a seed and resumable by position.

Each epoch's batches are a pure function of ``(seed, epoch)``: sentences are shuffled, sorted
by (target length, source length) so that a batch holds sentences of nearly equal length (little
padding), cut into batches of about ``batch_tokens`` target tokens, and the batch order is
shuffled. A resumed run rebuilds the same epoch and skips the batches it has already seen.
:mod:`s2s.data.streaming` applies the same :func:`bucket` to one window of a stream at a time;
the training loop sees either through :class:`Batches`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Protocol

import numpy as np

from s2s.data.vocab import BOS, EOS, PAD


@dataclass
class Batch:
    """One padded batch (numpy; the training loop moves it to a device).

    ``src``: (B, S) ids ending in EOS; ``src_lengths``: (B,);
    ``tgt_in``: (B, T) BOS + target; ``tgt_out``: (B, T) target + EOS;
    ``num_tokens``: non-pad target tokens (incl. EOS); ``index``: corpus positions (B,).
    """

    src: np.ndarray
    src_lengths: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    num_tokens: int
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.src_lengths)


def with_eos(ids: list[list[int]]) -> list[np.ndarray]:
    return [np.asarray(list(s) + [EOS], dtype=np.int64) for s in ids]


def pad(rows: list[np.ndarray], value: int = PAD) -> np.ndarray:
    out = np.full((len(rows), max(len(r) for r in rows)), value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def filter_by_length(src: list[list[int]], tgt: list[list[int]], max_src: int, max_tgt: int) -> np.ndarray:
    """Indices of pairs within both limits (counted without the added EOS)."""
    return np.asarray([i for i, (s, t) in enumerate(zip(src, tgt))
                       if 0 < len(s) <= max_src and 0 < len(t) <= max_tgt], dtype=np.int64)


def truncate(ids: list[list[int]], max_len: int) -> tuple[list[list[int]], int]:
    """Each row cut to its first ``max_len`` ids (before the EOS that batching adds), and how
    many rows were longer; ``ids`` itself is left as it is."""
    return [row[:max_len] for row in ids], sum(len(row) > max_len for row in ids)


class Batches(Protocol):
    """What the training loop asks of its batches, in memory (:class:`TokenBatcher`) or streamed
    (:class:`s2s.data.streaming.StreamingBatcher`): an epoch's batches in order, a function of
    ``(seed, epoch)``, each counted and collated by the batcher that made it."""

    seed: int

    def epoch(self, epoch: int) -> Iterable[Any]: ...

    def count_tokens(self, batch: Any) -> int: ...

    def collate(self, batch: Any) -> Batch: ...


def updates(batches: Iterable[Any], start: int, size: int) -> Iterator[list[Any]]:
    """An epoch's updates from its batch ``start`` on: ``size`` consecutive batches each (the
    last one may hold fewer). The batches before ``start`` are drawn and dropped, so a stream is
    re-read up to a resumed run's position."""
    rest = itertools.islice(batches, start, None)
    while update := list(itertools.islice(rest, size)):
        yield update


def bucket(src_len: np.ndarray, tgt_len: np.ndarray, batch_tokens: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Positions 0..N-1 cut into batches of about ``batch_tokens`` target tokens (``tgt_len``:
    (N,), EOS included): shuffled, sorted by (target, source) length so that a batch holds
    sentences of nearly equal length, cut, and the batches shuffled. A sentence longer than the
    budget gets a batch of its own."""
    if not len(tgt_len):
        return []
    order = rng.permutation(len(tgt_len))
    order = order[np.lexsort((src_len[order], tgt_len[order]))]
    batches, start, tokens = [], 0, 0
    for pos, i in enumerate(order):
        if tokens and tokens + tgt_len[i] > batch_tokens:
            batches.append(order[start:pos])
            start, tokens = pos, 0
        tokens += tgt_len[i]
    batches.append(order[start:])
    return [batches[k] for k in rng.permutation(len(batches))]


def collate_rows(src: list[np.ndarray], tgt: list[np.ndarray], index: np.ndarray) -> Batch:
    """One padded :class:`Batch` of sources ending in EOS and targets without BOS/EOS."""
    return Batch(
        src=pad(src),
        src_lengths=np.asarray([len(s) for s in src], dtype=np.int64),
        tgt_in=pad([np.concatenate(([BOS], t)) for t in tgt]),
        tgt_out=pad([np.concatenate((t, [EOS])) for t in tgt]),
        num_tokens=sum(len(t) + 1 for t in tgt),
        index=np.asarray(index),
    )


class TokenBatcher:
    """Bucketed token-budget batching over pre-encoded ids."""

    def __init__(self, src: list[list[int]], tgt: list[list[int]], batch_tokens: int, seed: int,
                 index: np.ndarray | None = None):
        self.index = np.arange(len(src)) if index is None else np.asarray(index)
        self.src = with_eos([src[i] for i in self.index])
        self.tgt = [np.asarray(tgt[i], dtype=np.int64) for i in self.index]
        self.src_len = np.asarray([len(s) for s in self.src])
        self.tgt_len = np.asarray([len(t) + 1 for t in self.tgt])  # + EOS
        self.batch_tokens, self.seed = batch_tokens, seed

    def __len__(self) -> int:
        return len(self.src)

    @property
    def num_tokens(self) -> int:
        return int(self.tgt_len.sum())

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The batches of ``epoch`` as arrays of positions into this batcher."""
        rng = np.random.default_rng([self.seed, epoch])
        return bucket(self.src_len, self.tgt_len, self.batch_tokens, rng)

    def count_tokens(self, positions: np.ndarray) -> int:
        """The ``num_tokens`` of the batch at ``positions``, without collating it."""
        return int(self.tgt_len[positions].sum())

    def collate(self, positions: np.ndarray) -> Batch:
        return collate_rows([self.src[i] for i in positions], [self.tgt[i] for i in positions],
                            self.index[positions])

    def sequential(self, max_sentences: int = 128) -> list[np.ndarray]:
        """Batches in length order for evaluation (no shuffling, no budget surprises)."""
        order = np.argsort(self.src_len, kind="stable")
        return [order[i: i + max_sentences] for i in range(0, len(order), max_sentences)]
