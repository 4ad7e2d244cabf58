"""Word alignments from attention (numpy only).

A hypothesis that kept its attention (:attr:`~s2s.search.hypotheses.Hypothesis.attention`,
(T + 1, S + 1): each target step, EOS's last, over the source pieces, EOS last) is read as a
soft alignment of subword pieces. :func:`word_alignment` merges the pieces back into words on
both sides (sentencepiece marks a word's first piece with U+2581): a source word receives the
attention of its pieces summed, a target word the mean over its pieces; then each target word is
aligned to the source word it attends to most (hard argmax alignment, as in Luong et al. 2015,
section 5.4, and the attention-based aligners compared by Garg et al. 2019). EOS on either side
is left out. :func:`pharaoh` writes the pairs in the Pharaoh ``i-j`` format of Moses and
fast_align: source word index, dash, target word index, 0-based.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

WORD_START = "\u2581"


def word_ids(pieces: Sequence[str]) -> list[int]:
    """The 0-based word each piece belongs to: a piece starting with U+2581 starts a new word
    (the first piece always does, marked or not)."""
    out, word = [], -1
    for i, piece in enumerate(pieces):
        if i == 0 or piece.startswith(WORD_START):
            word += 1
        out.append(word)
    return out


def words(pieces: Sequence[str]) -> list[str]:
    """The words that ``pieces`` spell, in order (:func:`word_ids`), without the U+2581 marks."""
    out: list[str] = []
    for word, piece in zip(word_ids(pieces), pieces):
        if word == len(out):
            out.append("")
        out[word] += piece.replace(WORD_START, "")
    return out


def merge_words(weights: np.ndarray, src_pieces: Sequence[str], tgt_pieces: Sequence[str]) -> np.ndarray:
    """(T, S) piece attention -> (target words, source words): sums over a source word's pieces,
    means over a target word's pieces."""
    src_words, tgt_words = word_ids(src_pieces), word_ids(tgt_pieces)
    by_src = np.zeros((len(tgt_pieces), max(src_words, default=-1) + 1), dtype=np.float64)
    np.add.at(by_src.T, np.array(src_words, dtype=np.int64), np.asarray(weights, dtype=np.float64).T)
    merged = np.zeros((max(tgt_words, default=-1) + 1, by_src.shape[1]), dtype=np.float64)
    np.add.at(merged, np.array(tgt_words, dtype=np.int64), by_src)
    return merged / np.bincount(tgt_words, minlength=len(merged))[:, None] if len(tgt_words) else merged


def word_alignment(attention: np.ndarray, src_pieces: Sequence[str], tgt_pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Hard word alignment (source word, target word) pairs, one per target word, in target order.

    ``attention``: (len(tgt_pieces) [+ 1], len(src_pieces) [+ 1]), where the optional last row
    and column are EOS's and are dropped. Ties go to the earlier source word."""
    weights = np.asarray(attention)[: len(tgt_pieces), : len(src_pieces)]
    if weights.shape != (len(tgt_pieces), len(src_pieces)):
        raise ValueError(f"attention {np.shape(attention)} does not cover {len(tgt_pieces)} target "
                         f"and {len(src_pieces)} source pieces")
    if not len(tgt_pieces) or not len(src_pieces):
        return []
    merged = merge_words(weights, src_pieces, tgt_pieces)
    return [(int(i), j) for j, i in enumerate(merged.argmax(1))]


def pharaoh(pairs: Sequence[tuple[int, int]]) -> str:
    """``[(0, 0), (2, 1)]`` -> ``"0-0 2-1"``."""
    return " ".join(f"{i}-{j}" for i, j in pairs)
