"""Additive attention (Bahdanau, Cho and Bengio, 2015, eq. 6 and appendix A.1.2).

score(s_{i-1}, h_j) = v_a^T tanh(W_a s_{i-1} + U_a h_j), with the previous decoder state as
the query: the RNN decoder attends before its recurrent step and feeds the context into it.
"""

from __future__ import annotations

from s2s.models.attention.base import AdditiveAttention, AttentionConfig
from s2s.registry import register


@register("attention", "bahdanau", AttentionConfig)
class BahdanauAttention(AdditiveAttention):
    query_before_rnn = True

    def __init__(self, query_dim: int, memory_dim: int, hidden: int = 0):
        super().__init__(query_dim, memory_dim, hidden, key_bias=True)  # U_a with a bias
