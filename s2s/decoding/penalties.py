"""Length normalisation for finished hypotheses."""

from __future__ import annotations


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016, eq. 14); alpha = 0 gives 1."""
    return ((5.0 + length) / 6.0) ** alpha


def normalized_score(log_prob: float, length: int, alpha: float) -> float:
    """Score used to rank finished hypotheses: log P(Y|X) / lp(Y)."""
    return log_prob / gnmt_length_penalty(length, alpha)
