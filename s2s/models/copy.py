"""Copy attention: the pointer-generator of See, Liu and Manning (2017), section 2.2.

At each step a generation probability ``p_gen = sigmoid(w . [out; context] + b)`` (``out`` the
decoder output, ``context`` the attention-weighted encoder memory) mixes the vocabulary
distribution with the attention distribution scattered onto the target ids of the source tokens::

    P(w) = p_gen * P_vocab(w) + (1 - p_gen) * sum over source positions i with id(i) = w of a_i

The source ids are part of the memory (``copy_ids``, made once by :meth:`Copy.copy_ids`), and
p_gen and the mixture stay inside the step, so the search and the exported graphs see the usual
log-probabilities.

Target ids of source tokens: with one joint vocabulary a source piece is its own target id.
With separate vocabularies a source piece missing from the target vocabulary gets an *extended*
id ``V + j``, j counting the distinct such pieces of the sentence in order of first occurrence
(:func:`s2s.search.copying.copied_pieces` lists them, so a translator can map ``V + j`` back to
text). The step's output then has ``V + S`` columns for a source of S tokens; the extended
columns a sentence does not use stay at probability 0 (log-probability -inf's stand-in
:data:`LOG_FLOOR`). Extended ids fed back as the next input are read as UNK.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

LOG_FLOOR = -1e4  # log-probability of a token with probability 0: never chosen, and finite for the loss


def at_least_float32(dtype: torch.dtype) -> torch.dtype:
    """float32 for half precision (autocast), the dtype itself for float32 and float64."""
    return torch.promote_types(dtype, torch.float32)


class Copy(nn.Module):
    """p_gen and the copy mixture. ``source_to_target``: for each source id, the target id of the
    same piece, or -1 when the target vocabulary lacks it (:func:`s2s.search.copying.source_to_target`)."""

    def __init__(self, decoder_dim: int, memory_dim: int, tgt_vocab_size: int, source_to_target: np.ndarray,
                 unk: int):
        super().__init__()
        self.p_gen = nn.Linear(decoder_dim + memory_dim, 1)
        self.register_buffer("source_to_target", torch.as_tensor(np.asarray(source_to_target), dtype=torch.long))
        self.vocab, self.unk = tgt_vocab_size, unk
        self.extends = bool((self.source_to_target < 0).any())  # some source pieces need extended ids

    def copy_ids(self, src: Tensor, src_pad_mask: Tensor) -> Tensor:
        """src: (B, S) -> the target id of each source token (B, S), extended ids for the pieces
        the target vocabulary lacks (numbered per sentence in order of first occurrence)."""
        mapped = self.source_to_target[src]
        if not self.extends:
            return mapped
        missing = (mapped < 0) & ~src_pad_mask
        positions = torch.arange(src.size(1), device=src.device)
        # the first position holding each token's id: argmax returns the first of equal maxima
        first = (src.unsqueeze(2) == src.unsqueeze(1)).to(torch.uint8).argmax(2)  # (B, S)
        new = missing & (first == positions)  # first occurrences of missing pieces
        rank = torch.cumsum(new.long(), 1) - 1  # j of each first occurrence
        extended = self.vocab + rank.gather(1, first)
        return torch.where(missing, extended, mapped.clamp(min=0))

    def inputs(self, tokens: Tensor) -> Tensor:
        """Extended ids read as UNK where they are fed back as decoder inputs."""
        return tokens.masked_fill(tokens >= self.vocab, self.unk) if self.extends else tokens

    def width(self, src_len: int) -> int:
        """Columns of the mixed distribution for a source of ``src_len`` tokens."""
        return self.vocab + (src_len if self.extends else 0)

    def gate(self, out: Tensor, attn: Tensor, bank: Tensor) -> Tensor:
        """p_gen (N, 1) from the decoder output (N, D) and the context of attention (N, S) over
        ``bank`` (B, S, Hm); N may be B * K (K rows per sentence, the memory kept per sentence)."""
        grouped = attn.view(bank.size(0), -1, attn.size(-1))  # (B, K, S)
        context = torch.bmm(grouped, bank.to(attn.dtype)).view(attn.shape[0], -1)
        return torch.sigmoid(self.p_gen(torch.cat([out, context.to(out.dtype)], -1)))

    @staticmethod
    def rows(copy_ids: Tensor, rows: int) -> Tensor:
        """copy_ids (B, S) -> (N, S) for N = B * K rows, K consecutive rows per sentence."""
        batch, length = copy_ids.shape
        return copy_ids.unsqueeze(1).expand(batch, rows // batch, length).reshape(rows, length)

    def log_probs(self, logits: Tensor, out: Tensor, attn: Tensor, memory: dict) -> Tensor:
        """The mixture's log-probabilities (N, width). logits: (N, V), out: (N, D), attn: (N, S)."""
        dtype = at_least_float32(logits.dtype)
        gate = self.gate(out, attn, memory["memory_bank"]).to(dtype)
        generated = torch.softmax(logits.to(dtype), -1) * gate
        ids = self.rows(memory["copy_ids"], attn.size(0))
        if self.extends:
            generated = torch.cat([generated, generated.new_zeros(attn.shape)], -1)
        mixed = generated.scatter_add(1, ids, attn.to(dtype) * (1 - gate))
        return torch.log(mixed).clamp(min=LOG_FLOOR)

    def gold_terms(self, out: Tensor, attn: Tensor, memory: dict, target: Tensor) -> tuple[Tensor, Tensor]:
        """For training, without any (B, T, width) mixture: p_gen (B, T) and the attention mass
        that copying puts on each gold token (B, T). out: (B, T, D), attn: (B, T, S), target (B, T)."""
        gate = self.gate(out.flatten(0, 1), attn.flatten(0, 1), memory["memory_bank"]).view(target.shape)
        copied = (attn * (memory["copy_ids"].unsqueeze(1) == target.unsqueeze(2))).sum(-1)
        return gate.float(), copied.float()


def mixture_loss(log_vocab: Tensor, gate: Tensor, copied: Tensor, target: Tensor, smoothing: float) -> Tensor:
    """Summed loss of the copy mixture over N target tokens: -(1 - eps) log P(gold) - eps * the mean
    of the vocabulary distribution's log-probabilities (label smoothing on the generator).

    log_vocab: (N, V) log-softmax of the logits; gate (N,) p_gen; copied (N,) the attention mass on
    the gold token; target (N,)."""
    generated = log_vocab.gather(1, target.unsqueeze(1)).squeeze(1).exp() * gate
    gold = (generated + copied * (1 - gate)).clamp(min=1e-30).log()  # finite, and no NaN gradient at 0
    loss = -(1 - smoothing) * gold.sum()
    if smoothing:
        loss = loss - smoothing * log_vocab.mean(1).sum()
    return loss
