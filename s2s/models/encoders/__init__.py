"""Encoders; importing this package registers each under its recipe name."""

from s2s.models.encoders import rnn, transformer  # noqa: F401  (registration)
from s2s.models.encoders.base import Encoder

__all__ = ["Encoder"]
