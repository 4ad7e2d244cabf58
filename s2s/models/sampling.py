"""Scheduled sampling inside one training pass: which decoder inputs are gold, which predicted.

Bengio et al. (2015) flip a coin for every target position of every sentence: with probability
``gold_prob`` the decoder is fed the gold previous token, otherwise the model's own prediction
of it. Two ways of getting that prediction, chosen by the decoder's ``sampling`` attribute:

* ``stepwise`` (recurrent decoders): inside the step loop, from the output of the previous
  step of this same pass, so a prediction may follow earlier predictions (the paper's method).
* ``two-pass`` (transformer decoders, whose training pass is parallel over positions): a first
  pass over the gold inputs predicts every position; the predictions are mixed into the inputs
  of a second pass, which carries the loss (Mihaylova and Martins, 2019; Duckworth et al., 2019).

Predictions are the argmax of the logits or a sample from softmax(logits / temperature). The
choice of token is not differentiable; with ``first_pass_gradient`` the two-pass method feeds
the straight-through embedding (Bengio, Leonard and Courville, 2013): the predicted token's
embedding forward, the gradient of the softmax-weighted embedding backward, so the loss of the
second pass also trains the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from s2s.models.embeddings import TokenEmbedding


@dataclass(frozen=True)
class TokenMixing:
    """What one training pass feeds: gold with probability ``gold_prob``, else predictions."""

    gold_prob: float
    predictions: Literal["argmax", "sample"] = "argmax"
    temperature: float = 1.0
    first_pass_gradient: bool = False

    def gold_mask(self, tgt_in: Tensor, pad_id: int) -> Tensor:
        """tgt_in: (B, T) -> (B, T) bool, True where the gold token is fed. Position 0 (BOS) and
        padding are always gold: BOS has no prediction, and padding feeds no loss."""
        mask = torch.rand(tgt_in.shape, device=tgt_in.device) < self.gold_prob
        mask[:, 0] = True
        return mask | (tgt_in == pad_id)

    def predict(self, logits: Tensor) -> Tensor:
        """logits: (..., V) -> token ids (...,)."""
        if self.predictions == "argmax":
            return logits.argmax(-1)
        return sample(logits, self.temperature)

    def embed(self, logits: Tensor, embedding: TokenEmbedding) -> Tensor:
        """logits: (N, V) -> embeddings (N, E) of the predicted tokens; straight-through (the
        softmax's gradient) when ``first_pass_gradient`` and gradients are on."""
        hard = embedding(self.predict(logits.detach()))
        if not (self.first_pass_gradient and logits.requires_grad):
            return hard
        soft = torch.softmax(logits / self.temperature, -1) @ embedding.weight * embedding.scale
        return hard + (soft - soft.detach())


def sample(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """One token per row from softmax(logits / temperature): logits (..., V) -> ids (...,).

    Inverse-CDF sampling: one uniform number per row located in the running sum of the
    probabilities. ``torch.multinomial`` draws V exponential numbers per row on CPU instead,
    an order of magnitude slower for a vocabulary of 8,000 (measured effect: ``exported/README.md``, "Where the speed code's figures live").
    """
    probs = torch.softmax(logits.detach().float() / temperature, -1)
    cdf = probs.reshape(-1, probs.size(-1)).cumsum(-1)
    u = torch.rand(cdf.size(0), 1, device=cdf.device) * cdf[:, -1:]  # the sum is 1 up to rounding
    # right=True: the first token whose cumulative probability exceeds u, never one of probability 0
    ids = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.size(1) - 1)
    return ids.view(probs.shape[:-1])


def two_pass_inputs(first_out: Tensor, gold_emb: Tensor, gold_mask: Tensor, mixing: TokenMixing,
                    project, embedding: TokenEmbedding, dropout) -> Tensor:
    """The second pass's inputs (B, T, E): gold embeddings where ``gold_mask``, elsewhere the
    (dropped-out) embedding of the token the first pass predicted there.

    first_out: (B, T, H) first-pass decoder outputs; output t predicts the input at t + 1.
    project: decoder outputs (N, H) -> logits (N, V). Only predicted positions are projected.
    """
    fed = ~gold_mask  # (B, T); column 0 is always gold
    if not bool(fed.any()):
        return gold_emb
    predicting = F.pad(fed[:, 1:], (0, 1))  # output t predicts input t + 1
    with torch.set_grad_enabled(first_out.requires_grad):  # no graph for a first pass without one
        logits = project(first_out[predicting])
    predicted = dropout(mixing.embed(logits, embedding))
    return gold_emb.masked_scatter(fed.unsqueeze(-1), predicted.to(gold_emb.dtype))


def stepwise_feedback(gold_mask: Tensor, mixing: TokenMixing, project, embedding: TokenEmbedding, dropout):
    """For a recurrent decoder's step loop: ``feedback(t, out) -> (rows, embeddings) | None``,
    the rows (N,) whose input at step t is the prediction made from ``out`` (B, H), the output
    of step t - 1, and those predictions' (dropped-out) embeddings (N, E). No gradient flows
    through the choice of token (Bengio et al., 2015)."""
    fed = ~gold_mask

    def feedback(t: int, out: Tensor) -> tuple[Tensor, Tensor] | None:
        rows = fed[:, t].nonzero().squeeze(1)
        if rows.numel() == 0:
            return None
        with torch.no_grad():
            tokens = mixing.predict(project(out.index_select(0, rows)))
        return rows, dropout(embedding(tokens))

    return feedback
