"""The choice of one sampling step: a token drawn from each row's sorted candidates.

A backend returns each row's k most probable tokens sorted, largest first (k = top_k, or the
whole vocabulary), which is all that top-k and nucleus sampling (Holtzman et al., 2020) need:
the nucleus is a prefix of that list.
"""

from __future__ import annotations

import numpy as np


def draw(values: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> np.ndarray:
    """One position per row of ``values`` (N, k), each row log-probabilities sorted largest first
    (-inf where a constraint bans the token): position j is drawn with probability
    proportional to exp(values[j] / temperature), among the fewest first positions whose
    probability so reaches ``top_p`` (all of them when top_p is 1), renormalised. A -inf
    candidate is never drawn. One uniform number per row is taken from ``rng``. -> (N,) int64.
    """
    logits = values.astype(np.float64)
    best = logits[:, :1]
    # shifted by each row's largest value, so that exp() neither overflows nor underflows to an
    # all-zero row; a row of -inf only (a finished row under a full ban) keeps weights 0
    weights = np.exp((logits - np.where(np.isfinite(best), best, 0.0)) / temperature)
    cumulative = np.cumsum(weights, axis=1)
    if top_p < 1.0:
        # the nucleus ends at the first position where the cumulative probability reaches top_p
        last = np.sum(cumulative < top_p * cumulative[:, -1:], axis=1, keepdims=True)
        cumulative = np.cumsum(np.where(np.arange(values.shape[1]) <= last, weights, 0.0), axis=1)
    # position j is drawn when the uniform point falls in (cumulative[j - 1], cumulative[j]]
    point = rng.random(len(values))[:, None] * cumulative[:, -1:]
    return np.sum(cumulative < point, axis=1)
