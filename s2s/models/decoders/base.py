"""The decoder protocol: explicit state in, explicit state out.

``State`` is a flat dict of named tensors, batch first, so beam search can reorder it with one
``index_select`` per tensor and ONNX export can list it as graph inputs and outputs.
"""

from __future__ import annotations

from torch import Tensor, nn

State = dict[str, Tensor]


class Decoder(nn.Module):
    """Incremental decoder over an encoder memory.

    ``memory`` holds ``memory_bank`` (B, S, Hm), ``src_pad_mask`` (B, S) and whatever
    :meth:`precompute` adds (projected attention keys); it never changes during decoding.
    """

    output_dim: int
    # How scheduled sampling gets predictions (s2s.models.sampling): "two-pass" works for any
    # decoder; "stepwise" decoders take ``feedback`` in :meth:`forward`.
    sampling: str = "two-pass"
    # True when :meth:`step` accepts a memory of B rows with state and tokens of B * K rows (K
    # consecutive rows per sentence, a beam's hypotheses): a beam search then keeps one copy of
    # each source's memory instead of K. With K = 1 every decoder accepts it.
    memory_per_sentence: bool = False

    def precompute(self, memory: State) -> State:
        """Tensors that depend only on the memory (e.g. attention keys), added to it once."""
        return {}

    def memory_axes(self) -> dict[str, dict[int, str]]:
        """Memory tensors whose non-batch dynamic axes are not just ``1: src_len`` (axis -> name)."""
        return {}

    def init_state(self, summary: Tensor, memory: State) -> State:
        raise NotImplementedError

    coverage: bool = False  # the state carries ``coverage`` (B, S), the attention summed over past steps

    def state_axes(self) -> dict[str, dict[int, str]]:
        """State tensors with dynamic axes besides the batch (axis -> name), e.g. a cache that
        grows by one position per step; ONNX export declares them."""
        return {"coverage": {1: "src_len"}} if self.coverage else {}

    def step(self, prev_emb: Tensor, state: State, memory: State) -> tuple[Tensor, State, Tensor]:
        """prev_emb: (B, E) -> output (B, output_dim), next state, attention (B, S)."""
        raise NotImplementedError

    def forward(self, tgt_emb: Tensor, state: State, memory: State) -> tuple[Tensor, Tensor]:
        """Teacher forcing. tgt_emb: (B, T, E) -> outputs (B, T, output_dim), attention (B, T, S).

        Must equal :meth:`step` applied T times (a test checks it for every decoder).
        """
        raise NotImplementedError

    def head_attention(self, tgt_emb: Tensor, state: State, memory: State) -> list[Tensor]:
        """Teacher forcing; each layer's cross-attention with each head apart, one (B, heads, T, S)
        tensor per layer (for plots). A decoder with one attention has one layer of one head: the
        attention :meth:`forward` reports."""
        return [self(tgt_emb, state, memory)[1].unsqueeze(1)]
