"""Extended ids of copy attention, on the host: which source pieces they name (numpy only).

A model with copy attention over separate vocabularies (:mod:`s2s.models.copy`) may emit the id
``V + j`` for the j-th distinct source piece, in order of first occurrence, that the target
vocabulary lacks. The model numbers them inside its graph; a translator needs the same numbering
to turn such an id back into text, and both follow :func:`copied_pieces`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def source_to_target(src_pieces: Sequence[str], target_id: Callable[[str], int | None]) -> np.ndarray:
    """For each source id, the target id of the same piece, or -1 when the target vocabulary
    lacks it. ``target_id(piece)`` returns the piece's target id or None."""
    table = np.full(len(src_pieces), -1, dtype=np.int64)
    for i, piece in enumerate(src_pieces):
        found = target_id(piece)
        if found is not None:
            table[i] = found
    return table


def piece_table(src, tgt) -> np.ndarray:
    """:func:`source_to_target` of two ``sentencepiece.SentencePieceProcessor``: a piece is in the
    target vocabulary when its id there is not UNK's (or it is UNK itself)."""
    unk = tgt.unk_id()

    def target_id(piece: str) -> int | None:
        found = tgt.piece_to_id(piece)
        return found if found != unk or piece == tgt.id_to_piece(unk) else None

    return source_to_target([src.id_to_piece(i) for i in range(src.get_piece_size())], target_id)


def copied_pieces(src_ids: Sequence[int], table: np.ndarray) -> list[int]:
    """The source ids named by extended ids ``V + 0, V + 1, ...`` in one sentence: its distinct
    source ids without a target id (``table`` < 0), in order of first occurrence."""
    seen: dict[int, None] = {}
    for token in src_ids:
        if table[token] < 0 and token not in seen:
            seen[token] = None
    return list(seen)


def copied_text(tokens: Sequence[int], vocab_size: int, copied: Sequence[int], target_piece: Callable[[int], str],
                source_piece: Callable[[int], str], unknown: str) -> str:
    """Target tokens as text: ids below ``vocab_size`` are pieces of the target vocabulary, an
    extended id ``vocab_size + j`` the source piece ``copied[j]`` (``unknown`` past them); the
    pieces are joined with sentencepiece's word marker U+2581 read as a space, as its decoder
    does for vocabularies without byte fallback (those s2s trains)."""
    out = []
    for token in tokens:
        j = token - vocab_size
        out.append(target_piece(token) if j < 0 else source_piece(copied[j]) if j < len(copied) else unknown)
    return "".join(out).replace("\u2581", " ").removeprefix(" ")
