"""Name -> (class, config dataclass) for the swappable parts of a model.

Parts register themselves where they are defined::

    @register("encoder", "lstm", RNNEncoderConfig)
    class RNNEncoder(nn.Module): ...

This module imports nothing heavy, so the config loader can resolve part configs by name
once the parts' modules have been imported (``s2s.models`` imports them all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

KINDS = ("encoder", "decoder", "attention")


@dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    config: type


_REGISTRY: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}


def register(kind: str, name: str, config: type) -> Callable[[type], type]:
    """Class decorator: make ``cls`` buildable under the recipe name ``name``."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown part kind {kind!r}; expected one of {KINDS}")

    def wrap(cls: type) -> type:
        if name in _REGISTRY[kind] and _REGISTRY[kind][name].cls is not cls:
            raise ValueError(f"{kind} {name!r} is registered twice")
        _REGISTRY[kind][name] = Entry(name, cls, config)
        return cls

    return wrap


def lookup(kind: str, name: str) -> Entry | None:
    return _REGISTRY[kind].get(name)


def names(kind: str) -> list[str]:
    return sorted(_REGISTRY[kind])


def entries(kind: str) -> list[Entry]:
    return [_REGISTRY[kind][n] for n in names(kind)]


def describe() -> dict[str, Any]:
    return {kind: names(kind) for kind in KINDS}
