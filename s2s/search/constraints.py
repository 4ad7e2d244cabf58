"""Length limits, minimum length and no-repeat n-grams, as one additive mask over the vocabulary.

The mask is 0 where a token is allowed and -inf where it is banned, so ``log_probs + mask``
bans exactly the tokens the constraints forbid and changes no other value. The mask is numpy;
a backend adds it where its log-probabilities are (on the device, or inside the step graph).
"""

from __future__ import annotations

import numpy as np

NEG_INF = np.float32(-np.inf)


CAP = 1024  # no hypothesis grows longer than this, whatever the options say


def max_lengths(src_lengths: np.ndarray, ratio: float, offset: int, *, minimum: int, maximum: int,
                cap: int = CAP) -> np.ndarray:
    """Tokens allowed before EOS, per sentence: floor(ratio * |src|) + offset, within
    [minimum, cap] (at least 1); ``maximum`` > 0 lowers the cap to it. With minimum == maximum
    every sentence gets exactly that many tokens (a fixed-length mode for benchmarks).
    src_lengths: (B,) -> (B,) int64."""
    if maximum > 0:
        cap = min(cap, maximum)
    limit = np.floor(np.asarray(src_lengths).astype(np.float32) * np.float32(ratio)).astype(np.int64) + offset
    return np.clip(limit, min(max(minimum, 1), cap), cap)


class Constraints:
    """Minimum and maximum length and no-repeat n-grams (Paulus et al., 2018) of the live rows.

    ``max_lens`` (N,) holds each row's limit: at it, only EOS is allowed. Rows are reordered with
    the beam through :meth:`select`.
    """

    def __init__(self, max_lens: np.ndarray, eos: int, min_len: int, no_repeat_ngram: int):
        if min_len > int(max_lens.min(initial=min_len)):
            raise ValueError(f"min_len ({min_len}) exceeds a maximum length ({int(max_lens.min())})")
        self.max_lens, self.eos, self.min_len, self.n = max_lens, eos, min_len, no_repeat_ngram
        # the smallest limit: below it no row is at its limit, which plan() checks without numpy
        self.lowest = int(max_lens.min()) if len(max_lens) else 0
        self.uniform = len(max_lens) > 0 and self.lowest == int(max_lens.max())

    def select(self, rows: np.ndarray) -> "Constraints":
        if self.uniform and len(rows) == len(self.max_lens):  # every row has the same limit: reordering changes nothing
            return self
        return Constraints(self.max_lens[rows], self.eos, self.min_len, self.n)

    def ngram_bans(self, step: int, history: np.ndarray) -> dict[int, list[int]]:
        """row -> the tokens that would complete an n-gram the row already holds."""
        n, bans = self.n, {}
        if n <= 0 or step + 1 < n:
            return bans
        for row, tokens in enumerate(history.tolist()):
            prefix = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
            banned = {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == prefix}
            if banned:
                bans[row] = sorted(banned)
        return bans

    def mask(self, step: int, history: np.ndarray, vocab: int) -> np.ndarray | None:
        """(1, V) when every row shares the mask, (N, V) when rows differ, None when nothing is banned.
        ``step`` counts the tokens generated so far; ``history`` (N, step) holds them."""
        return self._mask(step, self.max_lens <= step, self.ngram_bans(step, history), vocab)

    def plan(self, step: int, history: np.ndarray, vocab: int) -> tuple[np.ndarray | None, bool]:
        """(mask, eos_only) for this step. When EOS is the only banned token (below ``min_len``, no
        row at its limit, no n-gram ban) no mask is built and ``eos_only`` is True: the search
        then widens its top list by one candidate per row and drops EOS from it (:func:`drop_eos`),
        instead of adding an (N, V) mask whose only -inf is one column."""
        if step < self.lowest and (self.n <= 0 or step + 1 < self.n):  # no row at its limit, no n-gram
            return None, step < self.min_len  # the common cases, decided without touching arrays
        at_limit, bans = self.max_lens <= step, self.ngram_bans(step, history)
        if step < self.min_len and not at_limit.any() and not bans:
            return None, True
        return self._mask(step, at_limit, bans, vocab), False

    def _mask(self, step: int, at_limit: np.ndarray, bans: dict, vocab: int) -> np.ndarray | None:
        if step >= self.min_len and not at_limit.any() and not bans:
            return None
        per_row = bool(bans) or not (at_limit.all() or not at_limit.any())
        mask = np.zeros((len(at_limit) if per_row else 1, vocab), dtype=np.float32)
        if step < self.min_len:
            mask[:, self.eos] = NEG_INF
        for row, banned in bans.items():
            mask[row, banned] = NEG_INF
        if at_limit.any():
            limited = at_limit if per_row else slice(None)
            mask[limited] = NEG_INF
            mask[limited, self.eos] = 0.0
        return mask
