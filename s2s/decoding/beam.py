"""Batched beam search over the decoding contract.

All sentences and their K beams advance together as one (N*K)-row batch. At each step the 2K best
continuations of each sentence are taken; EOS candidates ranked within the top K become finished
hypotheses (scored with the GNMT length penalty), and the K best others continue. A sentence is
done once it has K finished hypotheses; done sentences leave the batch, so their rows stop costing.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from s2s.data.vocab import BOS, EOS
from s2s.decoding.common import Hypothesis, empty_history
from s2s.decoding.penalties import normalized_score
from s2s.decoding.processors import MaxLength, Processor, apply
from s2s.models.contract import select


@torch.inference_mode()
def beam_search(model, src: Tensor, src_lengths: Tensor, max_lens: Tensor, beam: int = 5,
                n_best: int = 1, length_penalty: float = 0.0,
                processors: Sequence[Processor] = ()) -> list[list[Hypothesis]]:
    """src: (B, S); max_lens: (B,) -> for each sentence its ``n_best`` hypotheses, best first."""
    if not 1 <= n_best <= beam:
        raise ValueError(f"n_best must be within 1..beam ({beam}), got {n_best}")
    batch, device = src.size(0), src.device
    memory, state = model.encode(src, src_lengths)
    limit = MaxLength(max_lens.to(device), EOS)
    # Every sentence starts from one live hypothesis, so the first step runs on one row per
    # sentence (width 1) and its survivors then fill K rows each: the K - 1 rows the first step
    # would score at -inf are never computed.
    width = 1
    alive = torch.arange(batch, device=device)  # sentence id of each active block of rows
    scores = torch.zeros((batch, 1), device=device)
    history = empty_history(batch, device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    tokens = torch.full((batch,), BOS, dtype=torch.long, device=device)
    for step in range(int(max_lens.max()) + 1):
        logits, state, _ = model.step(tokens, state, memory)
        log_probs = apply([*processors, limit], torch.log_softmax(logits.float(), -1), step, history)
        vocab = log_probs.size(-1)
        if width == 1 and vocab < 2 * beam:  # too few candidates in one row: K copies, K - 1 of them at -inf
            expand = torch.arange(batch, device=device).repeat_interleave(beam)
            log_probs, history, limit = log_probs.index_select(0, expand), history.index_select(0, expand), limit.select(expand)
            state, memory = select(state, expand), select(memory, expand)
            scores = torch.full((batch, beam), float("-inf"), device=device)
            scores[:, 0] = 0.0
            width = beam
        candidates = (scores.view(-1, 1) + log_probs).view(len(alive), width * vocab)
        top_scores, top_index = candidates.topk(2 * beam, dim=1)
        top_beam, top_token = top_index // vocab, top_index % vocab
        is_eos = (top_token == EOS) | torch.isinf(top_scores)
        _finish(finished, alive, history, beam, width, top_scores, top_beam, top_token, step, length_penalty)
        done = torch.tensor([len(finished[s]) >= beam for s in alive.tolist()], device=device)
        # The K best non-EOS continuations of every sentence.
        keep_scores, keep = top_scores.masked_fill(is_eos, float("-inf")).topk(beam, dim=1)
        rows = (torch.arange(len(alive), device=device).unsqueeze(1) * width
                + top_beam.gather(1, keep)).view(-1)
        tokens, scores = top_token.gather(1, keep).view(-1), keep_scores
        if bool(done.all()):
            break
        if bool(done.any()):  # finished sentences leave the batch
            live = (~done).nonzero().squeeze(1)
            alive, scores = alive.index_select(0, live), scores.index_select(0, live)
            rows = rows.view(-1, beam).index_select(0, live).view(-1)
            tokens = tokens.view(-1, beam).index_select(0, live).view(-1)
            memory = select(memory, live if width == 1 else
                            (live.unsqueeze(1) * beam + torch.arange(beam, device=device)).view(-1))
        if width == 1:  # memory rows follow the state rows from now on
            memory = select(memory, torch.arange(len(alive), device=device).repeat_interleave(beam))
        width = beam
        state, limit = model.reorder(state, rows), limit.select(rows)
        history = torch.cat([history.index_select(0, rows), tokens.unsqueeze(1)], 1)
    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]


def _finish(finished, alive, history, beam, width, top_scores, top_beam, top_token, step, alpha) -> None:
    """Turn EOS candidates ranked within the top K into finished hypotheses."""
    eos = (top_token[:, :beam] == EOS) & torch.isfinite(top_scores[:, :beam])
    if not bool(eos.any()):
        return
    for block, rank in eos.nonzero().tolist():
        sentence = int(alive[block])
        if len(finished[sentence]) >= beam:
            continue
        row = block * width + int(top_beam[block, rank])
        log_prob = float(top_scores[block, rank])
        finished[sentence].append(Hypothesis(history[row].tolist(), normalized_score(log_prob, step + 1, alpha), log_prob))
