"""Batched greedy search over the decoding contract."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from s2s.data.vocab import BOS, EOS
from s2s.decoding.common import Hypothesis, empty_history
from s2s.decoding.penalties import normalized_score
from s2s.decoding.processors import MaxLength, Processor, apply


@torch.inference_mode()
def greedy_search(model, src: Tensor, src_lengths: Tensor, max_lens: Tensor,
                  processors: Sequence[Processor] = (), length_penalty: float = 0.0) -> list[Hypothesis]:
    """Pick the most probable token at each step. src: (B, S); max_lens: (B,) -> B hypotheses."""
    memory, state = model.encode(src, src_lengths)
    batch = src.size(0)
    tokens = torch.full((batch,), BOS, dtype=torch.long, device=src.device)
    history = empty_history(batch, src.device)
    log_prob = torch.zeros(batch, device=src.device)
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    limit = MaxLength(max_lens.to(src.device), EOS)
    for step in range(int(max_lens.max()) + 1):
        logits, state, _ = model.step(tokens, state, memory)
        log_probs = apply([*processors, limit], torch.log_softmax(logits.float(), -1), step, history)
        best, tokens = log_probs.max(-1)
        tokens = tokens.masked_fill(done, EOS)
        log_prob = log_prob + best.masked_fill(done, 0.0)
        history = torch.cat([history, tokens.unsqueeze(1)], 1)
        done = done | (tokens == EOS)
        if bool(done.all()):
            break
    out = []
    for row, lp in zip(history.tolist(), log_prob.tolist()):
        length = row.index(EOS) if EOS in row else len(row)
        out.append(Hypothesis(row[:length], normalized_score(lp, length + 1, length_penalty), lp))
    return out
