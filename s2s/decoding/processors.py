"""Constraints on the next-token distribution, as small composable processors.

A processor takes ``(log_probs (N, V), step, history (N, t))`` and returns log-probs with banned
tokens at ``-inf``. ``step`` counts tokens generated so far (0 for the first); ``history``
holds them, BOS excluded. Searches apply them in order before choosing.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

Processor = Callable[[Tensor, int, Tensor], Tensor]


class MinLength:
    """Ban EOS until ``min_len`` tokens have been generated."""

    def __init__(self, min_len: int, eos: int):
        self.min_len, self.eos = min_len, eos

    def __call__(self, log_probs: Tensor, step: int, history: Tensor) -> Tensor:
        if step < self.min_len:
            log_probs[:, self.eos] = float("-inf")
        return log_probs


class MaxLength:
    """Force EOS at each row's last allowed position. max_lens: (N,) tokens before EOS."""

    def __init__(self, max_lens: Tensor, eos: int):
        self.max_lens, self.eos = max_lens, eos

    def select(self, index: Tensor) -> "MaxLength":
        return MaxLength(self.max_lens.index_select(0, index), self.eos)

    def __call__(self, log_probs: Tensor, step: int, history: Tensor) -> Tensor:
        at_limit = self.max_lens <= step
        if bool(at_limit.any()):
            eos_column = log_probs[:, self.eos].clone()
            log_probs = log_probs.masked_fill(at_limit.unsqueeze(1), float("-inf"))
            log_probs[:, self.eos] = torch.where(at_limit, eos_column.clamp(min=-1e9), eos_column)
        return log_probs


class NoRepeatNGram:
    """Ban any token that would repeat an n-gram already in the hypothesis (Paulus et al., 2018)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, log_probs: Tensor, step: int, history: Tensor) -> Tensor:
        if self.n <= 0 or step + 1 < self.n:
            return log_probs
        rows = history.tolist()
        for row, tokens in enumerate(rows):
            prefix = tuple(tokens[len(tokens) - self.n + 1:]) if self.n > 1 else ()
            banned = {tokens[i + self.n - 1] for i in range(len(tokens) - self.n + 1)
                      if tuple(tokens[i:i + self.n - 1]) == prefix}
            if banned:
                log_probs[row, list(banned)] = float("-inf")
        return log_probs


def apply(processors: Sequence[Processor], log_probs: Tensor, step: int, history: Tensor) -> Tensor:
    for processor in processors:
        log_probs = processor(log_probs, step, history)
    return log_probs
