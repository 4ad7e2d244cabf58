"""The bundle format: ``bundle.json`` read, written and validated without torch.

``s2s export`` writes through :func:`write_bundle_json`; the runtime reads through
:func:`read_bundle`. The format is documented in ``exported/README.md`` so that an app in any
language can drive a bundle with onnxruntime alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from s2s.errors import BundleError, ConfigError
from s2s.search.hypotheses import SpecialIds
from s2s.search.options import DecodeOptions

FORMAT = "s2s-bundle"
VERSION = 1
GRAPH_ROLES = ("encoder", "decoder_step")
OPTIONAL_ROLES = ("attention_heads", "search", "weights")  # --attention-heads; --search (and its shared weights)


@dataclass(frozen=True)
class Bundle:
    path: Path
    meta: dict
    memory: list[str]
    state: list[str]
    variants: dict[str, dict] = field(default_factory=dict)
    memory_per_sentence: bool = False  # graphs.memory_per_sentence: the step takes B memory rows for B * K state rows
    # graphs.copy_extends: log_probs has V + S columns, ids >= V naming source pieces (s2s.search.copying)
    copy_extends: bool = False
    special: SpecialIds = SpecialIds(0, 1, 2, 3)
    decode: DecodeOptions = DecodeOptions()

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def default_variant(self) -> str:
        """The graphs a translator loads unless told: fp32, or the only variant of a bundle
        exported without it (``s2s export --quantize int8 --no-fp32``)."""
        return "fp32" if "fp32" in self.variants or not self.variants else next(iter(self.variants))

    def vocab_files(self) -> tuple[Path, Path]:
        v = self.meta["vocab"]
        return self.file(v["source"]), self.file(v["target"])


def _need(meta: dict, key: str, kind: type, where: str):
    if key not in meta:
        raise BundleError(f"{where}: missing field {key!r}")
    if not isinstance(meta[key], kind):
        raise BundleError(f"{where}: field {key!r} must be {kind.__name__}, got {type(meta[key]).__name__}")
    return meta[key]


def _special_ids(meta: dict, where: str) -> SpecialIds:
    ids = _need(meta, "special_ids", dict, where)
    names = ("pad", "unk", "bos", "eos")
    if not all(isinstance(ids.get(n), int) and not isinstance(ids.get(n), bool) and ids[n] >= 0 for n in names):
        raise BundleError(f"{where}: field 'special_ids' must give pad, unk, bos and eos as ids >= 0, got {ids}")
    if len({ids[n] for n in names}) != len(names):
        raise BundleError(f"{where}: field 'special_ids' must give four different ids, got {ids}")
    return SpecialIds(*(ids[n] for n in names))


def validate(meta: dict, path: Path) -> Bundle:
    """Check a ``bundle.json`` mapping against the files in ``path``; every failure names the field."""
    where = str(path / "bundle.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{where}: field 'format' must be {FORMAT!r}")
    version = _need(meta, "format_version", int, where)
    if version > VERSION:
        raise BundleError(f"{where}: format_version {version} is newer than this runtime reads ({VERSION})")
    special = _special_ids(meta, where)
    graphs = _need(meta, "graphs", dict, where)
    memory = [m["name"] for m in _need(graphs, "memory", list, where + " graphs")]
    state = [s["name"] for s in _need(graphs, "state", list, where + " graphs")]
    variants = _need(graphs, "variants", dict, where + " graphs")
    shared, extends = graphs.get("memory_per_sentence", False), graphs.get("copy_extends", False)
    for key, value in (("memory_per_sentence", shared), ("copy_extends", extends)):
        if not isinstance(value, bool):
            raise BundleError(f"{where}: field 'graphs.{key}' must be true or false, got {value!r}")
    vocab = _need(meta, "vocab", dict, where)
    for role in ("source", "target"):
        name = _need(vocab, role, str, where + " vocab")
        if not (path / name).is_file():
            raise BundleError(f"{where}: vocab.{role} names {name}, which is not in the bundle")
    for variant, files in variants.items():
        for role in GRAPH_ROLES + tuple(r for r in OPTIONAL_ROLES if r in files):
            name = _need(files, role, str, f"{where} graphs.variants.{variant}")
            if not (path / name).is_file():
                raise BundleError(f"{where}: graphs.variants.{variant}.{role} names {name}, which is not in the bundle")
    try:
        decode = DecodeOptions.from_dict(meta.get("decode", {}), f"{where}: field 'decode'")
    except ConfigError as err:
        raise BundleError(str(err)) from None
    return Bundle(path, meta, memory, state, variants, shared, extends, special, decode)


def read_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    where = str(path / "bundle.json")
    if not (path / "bundle.json").is_file():
        raise BundleError(f"{path}: not a bundle (no bundle.json)")
    try:
        meta = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: not valid JSON ({exc})") from None
    return validate(meta, path)


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / "bundle.json").is_file()


def bundle_meta(*, model_family: str, architecture: dict, special: SpecialIds, vocab: dict, max_lengths: dict,
                decode: DecodeOptions, graphs: dict, provenance: dict) -> dict:
    """The ``bundle.json`` mapping, fields in their documented order."""
    return {
        "format": FORMAT,
        "format_version": VERSION,
        "model_family": model_family,
        "architecture": architecture,
        "special_ids": {"pad": special.pad, "unk": special.unk, "bos": special.bos, "eos": special.eos},
        "vocab": vocab,
        "max_lengths": max_lengths,
        "decode": decode.to_dict(),
        "graphs": graphs,
        "provenance": provenance,
    }


def write_bundle_json(meta: dict, path: str | Path) -> Bundle:
    """Validate ``meta`` against the files in folder ``path``, then write ``path/bundle.json``."""
    path = Path(path)
    bundle = validate(meta, path)
    (path / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return bundle
