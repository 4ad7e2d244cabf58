"""Read and check ``bundle.json`` (the format is documented in ``exported/README.md``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from s2s.errors import BundleError

FORMAT = "s2s-bundle"
VERSION = 1


@dataclass(frozen=True)
class Bundle:
    path: Path
    meta: dict
    memory: list[str]
    state: list[str]
    variants: dict[str, dict] = field(default_factory=dict)
    memory_per_sentence: bool = False  # graphs.memory_per_sentence: the step takes B memory rows for B * K state rows

    def file(self, name: str) -> Path:
        return self.path / name

    def vocab_files(self) -> tuple[Path, Path]:
        v = self.meta["vocab"]
        return self.file(v["source"]), self.file(v["target"])


def _need(meta: dict, key: str, kind: type, where: str):
    if key not in meta:
        raise BundleError(f"{where}: missing field {key!r}")
    if not isinstance(meta[key], kind):
        raise BundleError(f"{where}: field {key!r} must be {kind.__name__}, got {type(meta[key]).__name__}")
    return meta[key]


def read_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    where = str(path / "bundle.json")
    if not (path / "bundle.json").is_file():
        raise BundleError(f"{path}: not a bundle (no bundle.json)")
    try:
        meta = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{where}: field 'format' must be {FORMAT!r}")
    version = _need(meta, "format_version", int, where)
    if version > VERSION:
        raise BundleError(f"{where}: format_version {version} is newer than this runtime reads ({VERSION})")
    ids = _need(meta, "special_ids", dict, where)
    if (ids.get("pad"), ids.get("unk"), ids.get("bos"), ids.get("eos")) != (0, 1, 2, 3):
        raise BundleError(f"{where}: field 'special_ids' must be pad=0 unk=1 bos=2 eos=3, got {ids}")
    graphs = _need(meta, "graphs", dict, where)
    memory = [m["name"] for m in _need(graphs, "memory", list, where + " graphs")]
    state = [s["name"] for s in _need(graphs, "state", list, where + " graphs")]
    variants = _need(graphs, "variants", dict, where + " graphs")
    shared = graphs.get("memory_per_sentence", False)
    if not isinstance(shared, bool):
        raise BundleError(f"{where}: field 'graphs.memory_per_sentence' must be true or false, got {shared!r}")
    vocab = _need(meta, "vocab", dict, where)
    for role in ("source", "target"):
        name = _need(vocab, role, str, where + " vocab")
        if not (path / name).is_file():
            raise BundleError(f"{where}: vocab.{role} names {name}, which is not in the bundle")
    for variant, files in variants.items():
        for role in ("encoder", "decoder_step"):
            name = _need(files, role, str, f"{where} graphs.variants.{variant}")
            if not (path / name).is_file():
                raise BundleError(f"{where}: graphs.variants.{variant}.{role} names {name}, which is not in the bundle")
    return Bundle(path, meta, memory, state, variants, shared)
