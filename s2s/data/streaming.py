"""Training batches streamed from a corpus larger than memory (``data.streaming``).

Each epoch reads the training split again from the start (:class:`s2s.data.corpus.PairStream`),
one window of ``data.shuffle_window`` non-empty pairs at a time. A window is encoded with the
run's sentencepiece model, truncated and length-filtered by the rules of
:func:`s2s.training.prepare.prepare_data`, and cut into batches by the in-memory batcher's own
:func:`s2s.data.batching.bucket`: shuffled, sorted by (target length, source length), cut at
``train.batch_tokens`` target tokens, the batch order shuffled. Batches never mix windows, and
the windows follow the order of the files, so a corpus sorted by anything should be shuffled
once beforehand.

Memory holds one window of pairs (and the batches of one update), never the corpus. A window
is encoded a chunk at a time and packed into a few flat arrays (:class:`Window`), not two small
arrays per pair: on a heap that keeps freed memory (:mod:`s2s.cpu.allocator`), a window's
worth of small blocks scattered between the training step's tensors would raise the peak. Every
window of an epoch draws from one generator seeded with ``(seed, epoch)``, so an epoch is a
pure function of the seed, the epoch and the files: a resumed run reads the epoch again and
skips the batches it has trained on, and every DDP rank reads the same batches and keeps its
share. A window that holds the whole corpus gives exactly the in-memory batches.

The vocabulary is trained on a reservoir sample (Vitter's algorithm R) of ``vocab.max_sentences``
pairs drawn in one pass (:func:`sample_pairs`), so that it, too, holds no more than that.
"""

from __future__ import annotations

import itertools
import logging
import random
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from s2s.config import DataConfig
from s2s.data.batching import EOS, Batch, bucket, collate_rows, filter_by_length, truncate
from s2s.data.corpus import non_empty
from s2s.data.vocab import Vocabs
from s2s.errors import DataError

log = logging.getLogger(__name__)
CHUNK = 4096  # pairs encoded at a time: bounds the Python lists that sentencepiece returns


@dataclass(frozen=True)
class LengthRules:
    """Which training pairs are kept, and how long sources are cut (``data`` settings of the same names)."""

    max_src_len: int
    max_tgt_len: int
    truncate_src: bool = False

    @classmethod
    def from_config(cls, data: DataConfig) -> LengthRules:
        return cls(data.max_src_len, data.max_tgt_len, data.truncate_src)

    def describe(self) -> str:
        if self.truncate_src:
            return f"tgt <= {self.max_tgt_len}"
        return f"src <= {self.max_src_len}, tgt <= {self.max_tgt_len}"


@dataclass
class PassCounts:
    """What one pass over the stream read and kept."""

    pairs: int = 0  # non-empty pairs read
    empty: int = 0  # pairs skipped for an empty source or target
    truncated: int = 0  # sources cut to max_src_len (truncate_src)
    kept: int = 0  # pairs within the length limits
    tokens: int = 0  # target tokens (incl. EOS) of the kept pairs


class Window:
    """The encoded pairs of one window packed end to end: ``src_ids`` holds every source
    (without EOS) and ``src_len[i]`` the length of source i, EOS included, as :func:`bucket`
    counts it; likewise the targets; ``index``: (N,) stream positions."""

    def __init__(self, parts: list[tuple[np.ndarray, ...]]):
        """``parts``: (src_ids, src_len, tgt_ids, tgt_len, index) of each chunk (:func:`pack`)."""
        columns = [np.concatenate(column) for column in zip(*parts)]
        self.src_ids, self.src_len, self.tgt_ids, self.tgt_len, self.index = columns
        self.src_end, self.tgt_end = np.cumsum(self.src_len - 1), np.cumsum(self.tgt_len - 1)

    def __len__(self) -> int:
        return len(self.index)

    def source(self, i: int) -> np.ndarray:
        """Source ``i`` ending in EOS, as :func:`s2s.data.batching.with_eos` makes it."""
        end = self.src_end[i]
        return np.append(self.src_ids[end - self.src_len[i] + 1:end], EOS).astype(np.int64)

    def target(self, i: int) -> np.ndarray:
        end = self.tgt_end[i]
        return self.tgt_ids[end - self.tgt_len[i] + 1:end].astype(np.int64)


def pack(src: list[list[int]], tgt: list[list[int]], index: np.ndarray) -> tuple[np.ndarray, ...]:
    """Encoded rows as a :class:`Window` part: flat ids and lengths (+ EOS) of each side, and positions."""
    def flat(rows: list[list[int]]) -> np.ndarray:
        return np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32)

    def lengths(rows: list[list[int]]) -> np.ndarray:
        return np.fromiter((len(r) + 1 for r in rows), dtype=np.int64, count=len(rows))

    return flat(src), lengths(src), flat(tgt), lengths(tgt), np.asarray(index, dtype=np.int64)


@dataclass(frozen=True)
class StreamBatch:
    """One streamed batch before collation: its rows (sources ending in EOS, targets without
    BOS/EOS) and their stream positions; it holds its own rows, not its window."""

    src: list[np.ndarray]
    tgt: list[np.ndarray]
    index: np.ndarray
    num_tokens: int  # target tokens incl. EOS

    @classmethod
    def take(cls, window: Window, positions: np.ndarray) -> StreamBatch:
        return cls([window.source(i) for i in positions], [window.target(i) for i in positions],
                   window.index[positions], int(window.tgt_len[positions].sum()))

    def __len__(self) -> int:
        return len(self.src)


class StreamingBatcher:
    """Token-budget batches of a stream of (source, target) text pairs, window by window.

    ``pairs`` is read from the start at each :meth:`epoch` (a :class:`s2s.data.corpus.PairStream`
    or any re-iterable). ``held`` is the number of pairs of the window now being batched (0
    between windows) and ``peak_held`` the largest it has been: never more than ``window``.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]], vocabs: Vocabs, rules: LengthRules, batch_tokens: int,
                 seed: int, window: int, origin: str = "the training stream"):
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.pairs, self.vocabs, self.rules = pairs, vocabs, rules
        self.batch_tokens, self.seed, self.window, self.origin = batch_tokens, seed, window, origin
        self.held = self.peak_held = 0
        self.counts: PassCounts | None = None  # of the first whole pass

    def epoch(self, epoch: int) -> Iterator[StreamBatch]:
        """The batches of ``epoch``, read, encoded and bucketed one window at a time."""
        rng = np.random.default_rng([self.seed, epoch])
        counts = PassCounts()
        reader = self._non_empty(counts)
        while (window := self._next_window(reader, counts)) is not None:
            for positions in bucket(window.src_len, window.tgt_len, self.batch_tokens, rng):
                yield StreamBatch.take(window, positions)
            window, self.held = None, 0  # let this window go before the next one is read
        self._finish_pass(counts)

    def count_tokens(self, batch: StreamBatch) -> int:
        return batch.num_tokens

    def collate(self, batch: StreamBatch) -> Batch:
        return collate_rows(batch.src, batch.tgt, batch.index)

    def _non_empty(self, counts: PassCounts) -> Iterator[tuple[str, str]]:
        for src, tgt in self.pairs:
            if non_empty(src, tgt):
                counts.pairs += 1
                yield src, tgt
            else:
                counts.empty += 1

    def _next_window(self, reader: Iterator[tuple[str, str]], counts: PassCounts) -> Window | None:
        """The next ``window`` pairs of ``reader``, encoded, truncated and length-filtered a chunk at
        a time; None at the end of the pass."""
        first, parts = counts.pairs, []
        while (room := first + self.window - counts.pairs) > 0:
            rows = list(itertools.islice(reader, min(CHUNK, room)))
            if not rows:
                break
            parts.append(self._encode(rows, counts.pairs - len(rows), counts))
            self.held = counts.pairs - first
        if not parts:
            return None
        self.peak_held = max(self.peak_held, self.held)
        return Window(parts)

    def _encode(self, rows: list[tuple[str, str]], first: int, counts: PassCounts) -> tuple[np.ndarray, ...]:
        """The pairs of ``rows`` (stream positions from ``first``) that the rules keep, packed."""
        src = self.vocabs.src.encode([s for s, _ in rows])
        tgt = self.vocabs.tgt.encode([t for _, t in rows])
        if self.rules.truncate_src:
            src, cut = truncate(src, self.rules.max_src_len)
            counts.truncated += cut
        keep = filter_by_length(src, tgt, self.rules.max_src_len, self.rules.max_tgt_len)
        counts.kept += len(keep)
        counts.tokens += sum(len(tgt[i]) + 1 for i in keep)
        return pack([src[i] for i in keep], [tgt[i] for i in keep], first + keep)

    def _finish_pass(self, counts: PassCounts) -> None:
        """Log the first whole pass's counts; a pass that kept nothing is an error."""
        if not counts.kept:
            raise DataError(f"{self.origin}: no training pair survives the length filter "
                            f"({self.rules.describe()} tokens) of {counts.pairs} non-empty pairs; "
                            "raise data.max_src_len/max_tgt_len")
        if self.counts is not None:
            return
        self.counts = counts
        if counts.empty:
            log.warning("%s (data.train): skipped %d of %d pairs with an empty source or target",
                        self.origin, counts.empty, counts.pairs + counts.empty)
        log.info("streamed pass over %s: %d pairs, %d kept (%s tokens), %d sources truncated, "
                 "%d target tokens, windows of %d", self.origin, counts.pairs, counts.kept,
                 self.rules.describe(), counts.truncated, counts.tokens, self.window)


def sample_pairs(pairs: Iterable[tuple[str, str]], size: int, seed: int) -> tuple[list[str], list[str]]:
    """Sources and targets of up to ``size`` non-empty pairs drawn uniformly in one pass,
    holding no more than ``size`` at any time (reservoir sampling, Vitter's algorithm R); every
    non-empty pair, in order, when there are no more than ``size``."""
    rng = random.Random(seed)
    kept: list[tuple[str, str]] = []
    seen = 0
    for pair in pairs:
        if not non_empty(*pair):
            continue
        if seen < size:
            kept.append(pair)
        elif (slot := rng.randrange(seen + 1)) < size:
            kept[slot] = pair
        seen += 1
    return [s for s, _ in kept], [t for _, t in kept]
