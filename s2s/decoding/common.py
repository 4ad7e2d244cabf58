"""What greedy, beam and sampling searches share: hypotheses and length limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Hypothesis:
    """A finished translation: ``tokens`` exclude BOS and EOS; ``score`` is length-normalised."""

    tokens: list[int]
    score: float
    log_prob: float
    attention: list[list[float]] | None = field(default=None, repr=False)


def max_lengths(src_lengths: Tensor, ratio: float, offset: int, cap: int = 1024,
                minimum: int = 0, maximum: int = 0) -> Tensor:
    """Per-sentence limit on generated tokens before EOS: ratio * |src| + offset, within
    [minimum, cap] (at least 1); ``maximum`` > 0 lowers the cap to it. With minimum == maximum
    every sentence gets exactly that many tokens (a fixed-length mode for benchmarks)."""
    if maximum > 0:
        cap = min(cap, maximum)
    limit = (src_lengths.float() * ratio).floor().long() + offset
    return limit.clamp(min=min(max(minimum, 1), cap), max=cap)


def search_processors(min_len: int, no_repeat_ngram: int, eos: int) -> list:
    from s2s.decoding.processors import MinLength, NoRepeatNGram

    processors = []
    if min_len > 0:
        processors.append(MinLength(min_len, eos))
    if no_repeat_ngram > 0:
        processors.append(NoRepeatNGram(no_repeat_ngram))
    return processors


def empty_history(rows: int, device: torch.device) -> Tensor:
    return torch.empty(rows, 0, dtype=torch.long, device=device)
