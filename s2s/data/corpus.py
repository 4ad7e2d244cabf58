"""Reading parallel corpora: plain text (.gz too), JSONL, TSV, Parquet, or a hub dataset.

Plain text, JSONL and TSV are read line by line so that an error names the file and line.
Parquet files and hub datasets go through :mod:`datasets`. A split whose local files are
missing falls back to ``data.hub`` when a hub dataset is named.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from s2s.config import DataConfig, SplitConfig
from s2s.errors import DataError
from s2s.textio import numbered_lines, read_lines

log = logging.getLogger(__name__)


@dataclass
class Parallel:
    """Aligned source and target sentences, plus what was skipped while reading."""

    src: list[str]
    tgt: list[str]
    origin: str
    skipped_empty: int = 0

    def __len__(self) -> int:
        return len(self.src)


def _suffix(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1].lower() if suffixes else ""


# a JSON value as the JSON text names it, for errors about a field's type
_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", list: "an array",
               dict: "an object"}


def read_jsonl(path: str | Path, src_field: str, tgt_field: str) -> tuple[list[str], list[str]]:
    """Sources and targets of a JSONL file (.gz too), in order: one JSON object a line, both fields
    strings; blank lines are skipped. A line that breaks this fails naming the file, the line and,
    where one is at fault, the field and its setting."""
    src, tgt = [], []
    for number, text in numbered_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {number}: invalid JSON ({err.msg} at column {err.colno}); "
                            "expected one object a line") from None
        except RecursionError:  # json's decoder recurses once per nesting level
            raise DataError(f"{path}: line {number}: JSON nested too deeply; expected one object a line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number}: expected a JSON object, got {type(record).__name__}")
        for setting, name in (("data.src_field", src_field), ("data.tgt_field", tgt_field)):
            if name not in record:
                raise DataError(f"{path}: line {number}: no field {name!r} ({setting}); "
                                f"fields present: {sorted(record)}")
            if not isinstance(record[name], str):
                raise DataError(f"{path}: line {number}: field {name!r} ({setting}) is "
                                f"{_JSON_TYPES[type(record[name])]}; "
                                "expected a string")
        src.append(record[src_field])
        tgt.append(record[tgt_field])
    return src, tgt


def _read_tsv(path: Path, src_field: str, tgt_field: str) -> tuple[list[str], list[str]]:
    lines = numbered_lines(path)
    try:
        _, header_line = next(lines)
    except StopIteration:
        raise DataError(f"{path}: empty file; expected a header row naming the fields") from None
    header = header_line.split("\t")
    for name in (src_field, tgt_field):
        if name not in header:
            raise DataError(f"{path}: line 1: header has no field {name!r}; fields present: {header}")
    i, j = header.index(src_field), header.index(tgt_field)
    src, tgt = [], []
    for number, text in lines:
        cells = text.split("\t")
        if len(cells) != len(header):
            raise DataError(f"{path}: line {number}: {len(cells)} tab-separated fields, expected {len(header)}")
        src.append(cells[i])
        tgt.append(cells[j])
    return src, tgt


def _read_datasets(rows, origin: str, src_field: str, tgt_field: str) -> tuple[list[str], list[str]]:
    for name in (src_field, tgt_field):
        if name not in rows.column_names:
            raise DataError(f"{origin}: no field {name!r}; fields present: {rows.column_names}")
    return [str(s) for s in rows[src_field]], [str(t) for t in rows[tgt_field]]


def _read_hub(data: DataConfig, split: SplitConfig, name: str) -> tuple[list[str], list[str], str]:
    import datasets

    hub_split = split.hub_split or name
    origin = f"hub dataset {data.hub}" + (f"/{data.hub_config}" if data.hub_config else "") + f" [{hub_split}]"
    try:
        rows = datasets.load_dataset(data.hub, data.hub_config, split=hub_split)
    except Exception as err:  # network, missing split, unknown dataset: all reported the same way
        raise DataError(f"{origin}: cannot load: {err}") from None
    src, tgt = _read_datasets(rows, origin, data.src_field, data.tgt_field)
    return src, tgt, origin


def _local_paths(split: SplitConfig) -> list[Path]:
    return [Path(p) for p in (split.src, split.tgt, split.path) if p]


def read_split(data: DataConfig, name: str) -> Parallel:
    """Read split ``name`` (``train``, ``valid`` or ``test``); skip and count empty pairs."""
    split: SplitConfig = getattr(data, name)
    paths = _local_paths(split)
    missing = [p for p in paths if not p.exists()]
    if paths and not missing:
        src, tgt, origin = _read_local(split, data)
    elif data.hub:
        if missing:
            log.info("%s not found; reading split %r from hub dataset %s", missing[0], name, data.hub)
        src, tgt, origin = _read_hub(data, split, name)
    elif missing:
        raise DataError(f"{missing[0]}: no such file (data.{name}); set S2S_DATA or data.hub")
    else:
        raise DataError(f"data.{name}: no files given; set data.{name}.src/tgt, data.{name}.path or data.hub")
    return _drop_empty(src, tgt, origin, name)


def _read_local(split: SplitConfig, data: DataConfig) -> tuple[list[str], list[str], str]:
    if split.src or split.tgt:
        if not (split.src and split.tgt):
            raise DataError(f"{split.src or split.tgt}: plain-text corpora need both src and tgt files")
        src, tgt = read_lines(split.src), read_lines(split.tgt)
        if len(src) != len(tgt):
            raise DataError(f"parallel files differ in length: {split.src} has {len(src)} lines, "
                            f"{split.tgt} has {len(tgt)} lines")
        return src, tgt, f"{split.src} + {split.tgt}"
    path = Path(split.path)
    kind = _suffix(path)
    if kind in (".jsonl", ".json"):
        src, tgt = read_jsonl(path, data.src_field, data.tgt_field)
    elif kind in (".tsv", ".tab"):
        src, tgt = _read_tsv(path, data.src_field, data.tgt_field)
    elif kind == ".parquet":
        import datasets

        rows = datasets.load_dataset("parquet", data_files=str(path), split="train")
        src, tgt = _read_datasets(rows, str(path), data.src_field, data.tgt_field)
    else:
        raise DataError(f"{path}: unknown corpus format {kind or '(no suffix)'!r}; "
                        "expected .jsonl, .tsv or .parquet (optionally .gz), or src/tgt text files")
    return src, tgt, str(path)


def _drop_empty(src: list[str], tgt: list[str], origin: str, name: str) -> Parallel:
    """The pairs whose source and target both hold more than whitespace; the others are counted
    and logged with the split's file (``origin``) and name."""
    keep = [i for i, (s, t) in enumerate(zip(src, tgt)) if s.strip() and t.strip()]
    skipped = len(src) - len(keep)
    if skipped:
        log.warning("%s (data.%s): skipped %d of %d pairs with an empty source or target",
                    origin, name, skipped, len(src))
    if len(keep) == len(src):
        return Parallel(src, tgt, origin)
    return Parallel([src[i] for i in keep], [tgt[i] for i in keep], origin, skipped)
