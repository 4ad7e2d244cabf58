"""Decoders; importing this package registers each under its recipe name."""

from s2s.models.decoders import rnn, transformer  # noqa: F401  (registration)
from s2s.models.decoders.base import Decoder, State

__all__ = ["Decoder", "State"]
