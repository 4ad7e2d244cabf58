"""Attention scorers; importing this package registers each under its recipe name."""

from s2s.models.attention import bahdanau, luong, multihead  # noqa: F401  (registration)
from s2s.models.attention.base import Attention, AttentionConfig

__all__ = ["Attention", "AttentionConfig"]
