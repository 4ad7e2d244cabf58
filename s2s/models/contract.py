"""The encoder-decoder model behind the decoding contract of ARCHITECTURE.md::

    memory, state = model.encode(src, src_lengths)
    logits, state, attn = model.step(prev_tokens, state, memory)
    log_probs, state, attn = model.log_probs(prev_tokens, state, memory)   # what a search reads
    state = model.reorder(state, beam_indices)

``memory`` and ``state`` are flat dicts of named, batch-first tensors. Nothing is cached on
the module between calls, so the same step exports to one ONNX graph and any search (torch
here, numpy in the runtime) can drive it.

With copy attention (:mod:`s2s.models.copy`) the memory also holds ``copy_ids``, the target id
of each source token, and :meth:`Seq2Seq.log_probs` returns the copy mixture's log-probabilities
(``V + S`` columns when source pieces need extended ids) where a plain model returns the
log-softmax of its logits.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.models.decoders.base import Decoder, State
from s2s.models.embeddings import OutputProjection, TokenEmbedding
from s2s.models.encoders.base import Encoder
from s2s.models.copy import Copy, at_least_float32, mixture_loss
from s2s.models.sampling import TokenMixing, stepwise_feedback, two_pass_inputs


def select(tensors: State, index: Tensor) -> State:
    """Pick rows of every batch-first tensor: beam reordering, finished sentences leaving."""
    return {name: value.index_select(0, index) for name, value in tensors.items()}


class TeacherForced(NamedTuple):
    """One teacher-forced pass: decoder outputs (B, T, D), the reported attention (B, T, S) and
    the memory it attended to."""

    hidden: Tensor
    attention: Tensor
    memory: State


class Seq2Seq(nn.Module):
    def __init__(self, src_embed: TokenEmbedding, tgt_embed: TokenEmbedding, encoder: Encoder,
                 decoder: Decoder, output: OutputProjection, embed_dropout: float = 0.0,
                 copy: Copy | None = None):
        super().__init__()
        self.src_embed, self.tgt_embed = src_embed, tgt_embed
        self.encoder, self.decoder, self.output = encoder, decoder, output
        self.embed_dropout = fn.Dropout(embed_dropout)
        self.copy = copy

    def output_width(self, src_len: int) -> int:
        """Columns of :meth:`log_probs` for a batch of sources padded to ``src_len`` tokens."""
        return self.output.bias.numel() if self.copy is None else self.copy.width(src_len)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[State, State]:
        """src: (B, S) ids, src_lengths: (B,) -> memory, initial decoder state."""
        src_pad_mask = torch.arange(src.size(1), device=src.device).unsqueeze(0) >= src_lengths.unsqueeze(1)
        bank, summary = self.encoder(self.embed_dropout(self.src_embed(src)), src_lengths, src_pad_mask)
        memory = {"memory_bank": bank, "src_pad_mask": src_pad_mask}
        if self.copy is not None:
            memory["copy_ids"] = self.copy.copy_ids(src, src_pad_mask)
        memory.update(self.decoder.precompute(memory))
        return memory, self.decoder.init_state(summary, memory)

    def step(self, prev_tokens: Tensor, state: State, memory: State) -> tuple[Tensor, State, Tensor]:
        """prev_tokens: (B,) -> logits (B, V), next state, attention (B, S)."""
        out, state, attn = self._step(prev_tokens, state, memory)
        return self.output(out), state, attn

    def _step(self, prev_tokens: Tensor, state: State, memory: State) -> tuple[Tensor, State, Tensor]:
        tokens = prev_tokens if self.copy is None else self.copy.inputs(prev_tokens)
        return self.decoder.step(self.embed_dropout(self.tgt_embed(tokens)), state, memory)

    def log_probs(self, prev_tokens: Tensor, state: State, memory: State) -> tuple[Tensor, State, Tensor]:
        """prev_tokens: (B,) -> log-probabilities (B, width), next state, attention (B, S): the
        log-softmax of the logits, or the copy mixture's (:mod:`s2s.models.copy`); float32 (float64
        for a float64 model)."""
        out, state, attn = self._step(prev_tokens, state, memory)
        logits = self.output(out)
        if self.copy is None:
            return torch.log_softmax(logits.to(at_least_float32(logits.dtype)), -1), state, attn
        return self.copy.log_probs(logits, out, attn, memory), state, attn

    @staticmethod
    def reorder(state: State, index: Tensor) -> State:
        return select(state, index)

    def teacher_forced(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                       mixing: TokenMixing | None = None) -> TeacherForced:
        """Decoder outputs before the output projection (B, T, D), with the attention and memory.
        Teacher-forced, or with ``mixing`` fed a mix of gold and predicted tokens (scheduled
        sampling, :mod:`s2s.models.sampling`) token by token or in two passes, as the decoder says."""
        memory, state = self.encode(src, src_lengths)
        gold = self.embed_dropout(self.tgt_embed(tgt_in))
        if mixing is None:
            return TeacherForced(*self.decoder(gold, state, memory), memory)
        gold_mask = mixing.gold_mask(tgt_in, self.tgt_embed.padding_idx)
        if self.decoder.sampling == "stepwise":
            feedback = stepwise_feedback(gold_mask, mixing, self.output, self.tgt_embed, self.embed_dropout)
            return TeacherForced(*self.decoder(gold, state, memory, feedback=feedback), memory)
        with torch.set_grad_enabled(torch.is_grad_enabled() and mixing.first_pass_gradient):
            first = self.decoder(gold, state, memory)[0]
        inputs = two_pass_inputs(first, gold, gold_mask, mixing, self.output, self.tgt_embed, self.embed_dropout)
        return TeacherForced(*self.decoder(inputs, state, memory), memory)

    def head_attention(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> list[Tensor]:
        """Teacher-forced cross-attention of every decoder layer, each head apart: one
        (B, heads, T, S) tensor per layer (an RNN decoder: one layer of one head). ``tgt_in`` may
        hold the extended ids of a copy model's hypotheses; they are read as the step reads them."""
        memory, state = self.encode(src, src_lengths)
        tokens = tgt_in if self.copy is None else self.copy.inputs(tgt_in)
        return self.decoder.head_attention(self.embed_dropout(self.tgt_embed(tokens)), state, memory)

    def features(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                 mixing: TokenMixing | None = None) -> Tensor:
        """The decoder outputs (B, T, D) of :meth:`teacher_forced`."""
        return self.teacher_forced(src, src_lengths, tgt_in, mixing).hidden

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher forcing. tgt_in: (B, T) BOS-prefixed target -> scores (B, T, width) whose
        log-softmax is the model's log-probabilities: the logits, or with copy attention the
        mixture's log-probabilities themselves."""
        if self.copy is None:
            return self.output(self.features(src, src_lengths, tgt_in))
        hidden, attn, memory = self.teacher_forced(src, src_lengths, tgt_in)
        rows = hidden.flatten(0, 1)
        mixed = self.copy.log_probs(self.output(rows), rows, attn.flatten(0, 1), memory)
        return mixed.view(*hidden.shape[:2], -1)

    def loss(self, forced: TeacherForced, tgt_out: Tensor, label_smoothing: float = 0.0,
             coverage: bool = False) -> tuple[Tensor, Tensor | None]:
        """Training loss of one teacher-forced pass, summed over the non-pad target tokens: the
        label-smoothed cross-entropy (of the copy mixture with copy attention), and with
        ``coverage`` the coverage loss sum_t sum_i min(a_ti, c_ti) (See et al., 2017, eq. 12; c_t
        the attention summed over steps before t), else None."""
        keep = tgt_out != self.tgt_embed.padding_idx  # only real target positions reach the output projection
        hidden, target = forced.hidden[keep], tgt_out[keep]
        if self.copy is None:
            loss = self.output_loss(hidden, target, label_smoothing)
        else:
            gate, copied = self.copy.gold_terms(forced.hidden, forced.attention, forced.memory, tgt_out)
            log_vocab = torch.log_softmax(self.output(hidden).float(), -1)
            loss = mixture_loss(log_vocab, gate[keep], copied[keep], target, label_smoothing)
        if not coverage:
            return loss, None
        attn = forced.attention.float()
        past = torch.cumsum(attn, 1) - attn
        return loss, torch.minimum(attn, past).sum(-1)[keep].sum()

    def output_loss(self, hidden: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
        """Summed label-smoothed cross-entropy of the logits of ``hidden``, the output projection
        fused with the loss (:meth:`OutputProjection.loss`). hidden: (N, D) rows of
        :meth:`features` at non-pad positions, targets: (N,) -> scalar."""
        return self.output.loss(hidden, targets, label_smoothing)
