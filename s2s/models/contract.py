"""The encoder-decoder model behind the decoding contract of ARCHITECTURE.md::

    memory, state = model.encode(src, src_lengths)
    logits, state, attn = model.step(prev_tokens, state, memory)
    state = model.reorder(state, beam_indices)

``memory`` and ``state`` are flat dicts of named, batch-first tensors. Nothing is cached on
the module between calls, so the same step exports to one ONNX graph and any search (torch
here, numpy in the runtime) can drive it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.models.decoders.base import Decoder, State
from s2s.models.embeddings import OutputProjection, TokenEmbedding
from s2s.models.encoders.base import Encoder
from s2s.models.sampling import TokenMixing, stepwise_feedback, two_pass_inputs


def select(tensors: State, index: Tensor) -> State:
    """Pick rows of every batch-first tensor: beam reordering, finished sentences leaving."""
    return {name: value.index_select(0, index) for name, value in tensors.items()}


class Seq2Seq(nn.Module):
    def __init__(self, src_embed: TokenEmbedding, tgt_embed: TokenEmbedding, encoder: Encoder,
                 decoder: Decoder, output: OutputProjection, embed_dropout: float = 0.0):
        super().__init__()
        self.src_embed, self.tgt_embed = src_embed, tgt_embed
        self.encoder, self.decoder, self.output = encoder, decoder, output
        self.embed_dropout = fn.Dropout(embed_dropout)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[State, State]:
        """src: (B, S) ids, src_lengths: (B,) -> memory, initial decoder state."""
        src_pad_mask = torch.arange(src.size(1), device=src.device).unsqueeze(0) >= src_lengths.unsqueeze(1)
        bank, summary = self.encoder(self.embed_dropout(self.src_embed(src)), src_lengths, src_pad_mask)
        memory = {"memory_bank": bank, "src_pad_mask": src_pad_mask}
        memory.update(self.decoder.precompute(memory))
        return memory, self.decoder.init_state(summary, memory)

    def step(self, prev_tokens: Tensor, state: State, memory: State) -> tuple[Tensor, State, Tensor]:
        """prev_tokens: (B,) -> logits (B, V), next state, attention (B, S)."""
        out, state, attn = self.decoder.step(self.embed_dropout(self.tgt_embed(prev_tokens)), state, memory)
        return self.output(out), state, attn

    @staticmethod
    def reorder(state: State, index: Tensor) -> State:
        return select(state, index)

    def features(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                 mixing: TokenMixing | None = None) -> Tensor:
        """Decoder outputs before the output projection: (B, T, D). Teacher-forced, or with
        ``mixing`` fed a mix of gold and predicted tokens (scheduled sampling,
        :mod:`s2s.models.sampling`) token by token or in two passes, as the decoder says."""
        memory, state = self.encode(src, src_lengths)
        gold = self.embed_dropout(self.tgt_embed(tgt_in))
        if mixing is None:
            return self.decoder(gold, state, memory)[0]
        gold_mask = mixing.gold_mask(tgt_in, self.tgt_embed.padding_idx)
        if self.decoder.sampling == "stepwise":
            feedback = stepwise_feedback(gold_mask, mixing, self.output, self.tgt_embed, self.embed_dropout)
            return self.decoder(gold, state, memory, feedback=feedback)[0]
        with torch.set_grad_enabled(torch.is_grad_enabled() and mixing.first_pass_gradient):
            first = self.decoder(gold, state, memory)[0]
        inputs = two_pass_inputs(first, gold, gold_mask, mixing, self.output, self.tgt_embed, self.embed_dropout)
        return self.decoder(inputs, state, memory)[0]

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing. tgt_in: (B, T) BOS-prefixed target -> logits (B, T, V)."""
        return self.output(self.features(src, src_lengths, tgt_in))

    def output_loss(self, hidden: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
        """Summed label-smoothed cross-entropy of the logits of ``hidden``, the output projection
        fused with the loss (:meth:`OutputProjection.loss`). hidden: (N, D) rows of
        :meth:`features` at non-pad positions, targets: (N,) -> scalar."""
        return self.output.loss(hidden, targets, label_smoothing)
