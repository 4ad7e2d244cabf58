"""What a search returns, the ids it needs, and how finished hypotheses are ranked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence


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
    ``attention``: None unless the caller asked the search to keep it, then (T + 1, S) float32,
    each step's attention (EOS's step last) over the sentence's source positions (EOS's last).
    ``copied``: with copy attention over separate vocabularies, the source ids that the extended
    ids ``V + j`` among the tokens name (:func:`s2s.search.copying.copied_pieces`)."""

    tokens: list[int]
    score: float
    log_prob: float
    attention: Any = field(default=None, repr=False)  # numpy array when kept
    copied: tuple[int, ...] = ()


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al., 2016, eq. 14); alpha = 0 gives 1."""
    return ((5.0 + length) / 6.0) ** alpha


def normalized_score(log_prob: float, length: int, alpha: float) -> float:
    """The score that ranks finished hypotheses: log P(Y|X) / lp(Y), |Y| counting EOS."""
    return log_prob / gnmt_length_penalty(length, alpha)


@dataclass(frozen=True)
class CoveragePenalty:
    """The GNMT coverage penalty (Wu et al., 2016, eq. 14), added by beam search to the score of
    each finished hypothesis: cp(X; Y) = beta * sum_i log(min(sum_t a_{t,i}, 1.0)), i over the
    real positions of the sentence's source (EOS included, padding not), t over every step of the
    hypothesis (the one that produced EOS included). It is 0 when every source position received
    a total attention of at least 1, and lowers hypotheses that left part of the source unread.
    A position that received no attention at all gives log 0 = -inf, as the equation says.
    Plain Python (it runs once per finished hypothesis), so that this module, which the bundle
    reader imports, needs no numpy.

    ``beta`` > 0; ``src_lengths`` (B,): the source length of each sentence of the batch, EOS included.
    """

    beta: float
    src_lengths: Sequence[int]

    def __call__(self, sentence: int, attended: Any) -> float:
        """cp of a hypothesis of ``sentence`` whose steps' attention sums to ``attended``, a numpy
        row (S,) over the batch's padded source positions."""
        sums = attended[: int(self.src_lengths[sentence])].tolist()
        if min(sums, default=1.0) <= 0.0:
            return -math.inf
        return self.beta * sum(math.log(total) for total in sums if total < 1.0)
