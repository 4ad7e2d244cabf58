"""Decoding options: one frozen dataclass, the only place a decoding default is set.

The recipe's ``decode`` section is a :class:`DecodeOptions`; ``s2s translate``/``evaluate``
build their flags from its fields; ``s2s export`` writes it into ``bundle.json`` and the runtime
reads it back from there; both translators take per-call overrides through :meth:`with_overrides`.
Standard library only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from s2s.errors import ConfigError


def _opt(default: Any, help: str) -> Any:  # noqa: A002 - "help" reads best in the dataclass
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class DecodeOptions:
    beam: int = _opt(5, "beam size (1 = greedy)")
    n_best: int = _opt(1, "hypotheses returned per sentence: at most the beam size, or with sample the samples "
                          "drawn")
    length_penalty: float = _opt(0.6, "GNMT length penalty alpha (Wu et al., 2016); 0 = off")
    max_len_ratio: float = _opt(1.5, "max target length = ratio * source length + offset")
    max_len_offset: int = _opt(10, "see max_len_ratio")
    min_len: int = _opt(0, "EOS is banned before this many target tokens")
    max_len: int = _opt(0, "at most this many target tokens before EOS (0 = only max_len_ratio)")
    no_repeat_ngram: int = _opt(0, "ban repeating any n-gram of this size (0 = off)")
    coverage_penalty: float = _opt(0.0, "GNMT coverage penalty beta (Wu et al., 2016) on beam search's finished "
                                        "hypotheses; 0 = off (greedy and sampling ignore it)")
    sample: bool = _opt(False, "draw each token from the model's distribution instead of searching (beam is "
                               "then unused; n_best samples per sentence)")
    temperature: float = _opt(1.0, "with sample: divide the log-probabilities by this (> 0) before drawing")
    top_k: int = _opt(0, "with sample: draw among the k most probable tokens only (0 = all)")
    top_p: float = _opt(1.0, "with sample: draw among the fewest most probable tokens whose probability reaches "
                             "p (nucleus sampling, in (0, 1]; 1 = all)")
    seed: int = _opt(0, "with sample: the random generator's seed (same input and options, same samples)")
    batch_size: int = _opt(64, "sentences decoded together")
    max_src_len: int = _opt(0, "read at most this many source tokens, dropping the rest (0 = all); a recipe "
                               "with data.truncate_src sets it to data.max_src_len")

    def __post_init__(self) -> None:
        for name in ("beam", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_len", "max_len", "max_src_len", "no_repeat_ngram", "max_len_offset", "max_len_ratio",
                     "length_penalty", "coverage_penalty", "top_k", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be within (0, 1], got {self.top_p}")
        if self.sample and self.n_best < 1:
            raise ValueError(f"n_best (samples per sentence) must be >= 1, got {self.n_best}")
        if not self.sample and not 1 <= self.n_best <= self.beam:
            raise ValueError(f"n_best must be within 1..beam ({self.beam}), got {self.n_best}")
        if self.max_len > 0 and self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must not exceed max_len ({self.max_len})")

    @property
    def greedy(self) -> bool:
        """Beam 1 with one hypothesis, not sampling: the greedy loop gives the same tokens for less work."""
        return self.beam == 1 and self.n_best == 1 and not self.sample

    def with_overrides(self, **overrides: Any) -> "DecodeOptions":
        """These options with the given fields replaced; None leaves a field as it is. An unknown
        name or an invalid value raises :class:`ConfigError` naming it."""
        known = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise ConfigError(f"unknown decoding options {unknown}; known: {known}")
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        try:
            return dataclasses.replace(self, **given)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"decoding options: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> "DecodeOptions":
        """Options from a plain mapping (``bundle.json``'s ``decode``); missing fields take their
        defaults; an unknown field or a value of the wrong type fails naming ``where`` and it."""
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a mapping of decoding options, got {type(raw).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in raw.items():
            if key not in fields:
                raise ConfigError(f"{where}: unknown field {key!r}; known: {list(fields)}")
            kind = option_type(fields[key])
            # bool is a subclass of int in Python: true is no beam size, and 1 is no yes/no answer
            wanted = (int, float) if kind is float else int
            if isinstance(value, bool) != (kind is bool) or not isinstance(value, wanted):
                raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
        try:
            return cls(**{k: option_type(fields[k])(v) for k, v in raw.items()})
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None


def option_fields() -> list[dataclasses.Field]:
    """The fields of :class:`DecodeOptions` with their help, for command-line flags."""
    return list(dataclasses.fields(DecodeOptions))


OPTION_TYPES = {"int": int, "float": float, "bool": bool}


def option_type(f: dataclasses.Field) -> type:
    """``int``, ``float`` or ``bool``: the Python type of a :class:`DecodeOptions` field (its
    annotation is a string, the module reading annotations lazily)."""
    return OPTION_TYPES[f.type]
