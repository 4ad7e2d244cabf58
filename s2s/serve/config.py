"""What ``s2s serve`` is told: the models to load and the limits it holds every request to.

Standard library only: the CLI builds these from its flags, the app and the batcher read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from s2s.errors import ConfigError


def _opt(default, help: str):  # noqa: A002 - "help" reads best beside the field
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Limits:
    """Per-request limits (checked at admission) and the dynamic batcher's budgets."""

    max_texts: int = _opt(64, "texts per request (more: 413)")
    max_chars: int = _opt(4000, "characters per text (more: 413)")
    max_tokens: int = _opt(512, "source subword tokens per text (more: 413)")
    max_beam: int = _opt(16, "largest beam a request may ask for (more: 422)")
    max_n_best: int | None = _opt(None, "largest n_best a request may ask for (default: max_beam)")
    max_len: int = _opt(512, "largest max_len (target tokens) a request may ask for (more: 422)")
    timeout: float = _opt(30.0, "seconds a request may take, queueing included (more: 504)")
    max_batch: int = _opt(32, "sentences per batched search")
    max_batch_tokens: int = _opt(4096, "source tokens per batched search")
    max_wait_ms: float = _opt(20.0, "milliseconds at most spent gathering concurrent requests into one search, "
                                    "from arrival or the end of the last search (a lone client's requests never "
                                    "wait; the wait ends once the clients that search answered have sent again)")
    max_queue: int = _opt(512, "sentences waiting for a search (more: 503 with Retry-After)")
    batching: bool = _opt(True, "gather concurrent requests into one search (False: each request alone)")

    def __post_init__(self) -> None:
        for name in ("max_texts", "max_chars", "max_tokens", "max_beam", "max_len", "max_batch",
                     "max_batch_tokens", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve: {name} must be >= 1, got {getattr(self, name)}")
        if self.max_n_best is not None and not 1 <= self.max_n_best <= self.max_beam:
            raise ConfigError(f"serve: max_n_best must be within 1..max_beam ({self.max_beam}), got {self.max_n_best}")
        if not self.timeout > 0:
            raise ConfigError(f"serve: timeout must be > 0 seconds, got {self.timeout}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"serve: max_wait_ms must be >= 0, got {self.max_wait_ms}")

    @property
    def n_best_cap(self) -> int:
        return self.max_beam if self.max_n_best is None else self.max_n_best

    def to_dict(self) -> dict:
        return {"max_texts": self.max_texts, "max_chars": self.max_chars, "max_tokens": self.max_tokens,
                "max_beam": self.max_beam, "max_n_best": self.n_best_cap, "max_len": self.max_len,
                "timeout_s": self.timeout, "max_queue": self.max_queue,
                "batching": {"enabled": self.batching, "max_batch": self.max_batch,
                             "max_batch_tokens": self.max_batch_tokens, "max_wait_ms": self.max_wait_ms}}


@dataclass(frozen=True)
class ModelSpec:
    """One bundle to serve under ``name``."""

    name: str
    path: Path


def parse_model_specs(specs: list[str]) -> list[ModelSpec]:
    """``PATH`` (named after the bundle's folder) or ``NAME=PATH`` each; names must differ."""
    models: list[ModelSpec] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        path_ = Path(path)
        name = name or path_.resolve().name
        if not name or any(c.isspace() or c == "/" for c in name):
            raise ConfigError(f"serve: {spec!r}: a model name must be non-empty, without spaces or '/'")
        if any(m.name == name for m in models):
            raise ConfigError(f"serve: two bundles are named {name!r}; name them with NAME=PATH")
        models.append(ModelSpec(name, path_))
    if not models:
        raise ConfigError("serve: no bundle given")
    return models
