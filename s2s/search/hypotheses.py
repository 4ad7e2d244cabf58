"""What a search returns, the ids it needs, and how finished hypotheses are ranked."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SpecialIds:
    """The special token ids of a model: from its vocabulary (a run) or ``bundle.json``."""

    pad: int
    unk: int
    bos: int
    eos: int


@dataclass
class Hypothesis:
    """A finished translation: ``tokens`` exclude BOS and EOS; ``score`` is length-normalised;
    ``attention`` is left None by the search (filled only when a caller asks for it)."""

    tokens: list[int]
    score: float
    log_prob: float
    attention: list[list[float]] | None = field(default=None, repr=False)


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016, eq. 14); alpha = 0 gives 1."""
    return ((5.0 + length) / 6.0) ** alpha


def normalized_score(log_prob: float, length: int, alpha: float) -> float:
    """The score that ranks finished hypotheses: log P(Y|X) / lp(Y), |Y| counting EOS."""
    return log_prob / gnmt_length_penalty(length, alpha)
