"""Reading parallel corpora: plain text (.gz too), JSONL, TSV, Parquet, or a hub dataset.

Plain text, JSONL and TSV are read line by line so that an error names the file and line.
Parquet files and hub datasets go through :mod:`datasets`. A split whose local files are
missing falls back to ``data.hub`` when a hub dataset is named. A file setting may be a glob
naming shards, read in sorted order.

:func:`read_split` holds a split in memory; :func:`stream_split` reads it again lazily on each
pass (``data.streaming``), through the same per-line parsers, so that a bad line fails the same
way in both.
"""

from __future__ import annotations

import dataclasses
import glob
import itertools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from s2s.config import DataConfig, SplitConfig
from s2s.errors import DataError
from s2s.textio import numbered_lines, read_lines  # noqa: F401 - read_lines: callers read it from here

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


def jsonl_pair(text: str, path: str | Path, number: int, src_field: str, tgt_field: str) -> tuple[str, str] | None:
    """The (source, target) of line ``number`` of a JSONL file, None for a blank line. The line must
    be one JSON object whose two fields are strings; else this fails naming the file, the line and,
    where one is at fault, the field and its setting."""
    if not text.strip():
        return None
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
    return record[src_field], record[tgt_field]


def jsonl_pairs(path: str | Path, src_field: str, tgt_field: str) -> Iterator[tuple[str, str]]:
    """The (source, target) pairs of a JSONL file (.gz too), read lazily (:func:`jsonl_pair`)."""
    for number, text in numbered_lines(path):
        pair = jsonl_pair(text, path, number, src_field, tgt_field)
        if pair is not None:
            yield pair


def read_jsonl(path: str | Path, src_field: str, tgt_field: str) -> tuple[list[str], list[str]]:
    """Sources and targets of a JSONL file (.gz too), in order: one JSON object a line, both fields
    strings; blank lines are skipped. A line that breaks this fails naming the file, the line and,
    where one is at fault, the field and its setting."""
    return _unzip(jsonl_pairs(path, src_field, tgt_field))


def _unzip(pairs: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    src, tgt = [], []
    for s, t in pairs:
        src.append(s)
        tgt.append(t)
    return src, tgt


def tsv_pairs(path: Path, src_field: str, tgt_field: str) -> Iterator[tuple[str, str]]:
    """The (source, target) pairs of a TSV file whose first row names the fields, read lazily."""
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
    for number, text in lines:
        cells = text.split("\t")
        if len(cells) != len(header):
            raise DataError(f"{path}: line {number}: {len(cells)} tab-separated fields, expected {len(header)}")
        yield cells[i], cells[j]


def _read_tsv(path: Path, src_field: str, tgt_field: str) -> tuple[list[str], list[str]]:
    return _unzip(tsv_pairs(path, src_field, tgt_field))


def text_pairs(src: Path, tgt: Path) -> Iterator[tuple[str, str]]:
    """The aligned lines of two plain-text files (.gz too), read lazily; files of different
    lengths fail naming both and their line counts (the longer one is counted to its end)."""
    src_lines, tgt_lines = numbered_lines(src), numbered_lines(tgt)
    for number, (s, t) in enumerate(itertools.zip_longest(src_lines, tgt_lines), 1):
        if s is None or t is None:
            longer = number + sum(1 for _ in (src_lines if t is None else tgt_lines))
            counts = (longer, number - 1) if t is None else (number - 1, longer)
            raise DataError(f"parallel files differ in length: {src} has {counts[0]} lines, "
                            f"{tgt} has {counts[1]} lines")
        yield s[1], t[1]


def _read_datasets(rows, origin: str, src_field: str, tgt_field: str) -> tuple[list[str], list[str]]:
    for name in (src_field, tgt_field):
        if name not in rows.column_names:
            raise DataError(f"{origin}: no field {name!r}; fields present: {rows.column_names}")
    return [str(s) for s in rows[src_field]], [str(t) for t in rows[tgt_field]]


def _row_pairs(rows: Iterable[dict], origin: str, src_field: str, tgt_field: str) -> Iterator[tuple[str, str]]:
    """The pairs of a streamed :mod:`datasets` split, row by row (its columns are not known up front)."""
    for number, row in enumerate(rows, 1):
        for name in (src_field, tgt_field):
            if name not in row:
                raise DataError(f"{origin}: row {number}: no field {name!r}; fields present: {sorted(row)}")
        yield str(row[src_field]), str(row[tgt_field])


def _hub_origin(data: DataConfig, hub_split: str) -> str:
    return f"hub dataset {data.hub}" + (f"/{data.hub_config}" if data.hub_config else "") + f" [{hub_split}]"


def _load_hub(data: DataConfig, split: SplitConfig, name: str, streaming: bool):
    """The rows of the hub split (a Dataset, or an IterableDataset when ``streaming``) and its origin."""
    import datasets

    hub_split = split.hub_split or name
    origin = _hub_origin(data, hub_split)
    lazily = {"streaming": True} if streaming else {}  # IterableDataset rows: nothing downloaded up front
    try:
        rows = datasets.load_dataset(data.hub, data.hub_config, split=hub_split, **lazily)
    except Exception as err:  # network, missing split, unknown dataset: all reported the same way
        raise DataError(f"{origin}: cannot load: {err}") from None
    return rows, origin


def _read_hub(data: DataConfig, split: SplitConfig, name: str) -> tuple[list[str], list[str], str]:
    rows, origin = _load_hub(data, split, name, streaming=False)
    src, tgt = _read_datasets(rows, origin, data.src_field, data.tgt_field)
    return src, tgt, origin


def _expand(pattern: str) -> list[str]:
    """The files a setting names: itself or, when it holds glob characters, its matches in sorted
    order (none: the pattern itself, which is then reported missing)."""
    if not any(c in pattern for c in "*?["):
        return [pattern]
    return sorted(glob.glob(pattern)) or [pattern]


def _local_paths(split: SplitConfig) -> list[Path]:
    return [Path(p) for pattern in (split.src, split.tgt, split.path) if pattern for p in _expand(pattern)]


def split_shards(split: SplitConfig, name: str) -> list[SplitConfig]:
    """The split as one setting per file (src/tgt globs paired in sorted order, or path's matches)."""
    if split.src or split.tgt:
        if not (split.src and split.tgt):
            raise DataError(f"{split.src or split.tgt}: plain-text corpora need both src and tgt files")
        src, tgt = _expand(split.src), _expand(split.tgt)
        if len(src) != len(tgt):
            raise DataError(f"data.{name}: src {split.src!r} matches {len(src)} files, tgt {split.tgt!r} "
                            f"matches {len(tgt)}; expected as many of each, paired in sorted order")
        return [dataclasses.replace(split, src=s, tgt=t, path=None) for s, t in zip(src, tgt)]
    return [dataclasses.replace(split, path=p) for p in _expand(split.path)]


def _origin(split: SplitConfig, shards: list[SplitConfig]) -> str:
    what = f"{split.src} + {split.tgt}" if split.src else str(split.path)
    return what if len(shards) == 1 else f"{what} ({len(shards)} shards)"


def _from_hub(data: DataConfig, name: str) -> bool:
    """Whether split ``name`` comes from ``data.hub``: its local files are missing or none are
    named, and a hub dataset is. Otherwise every local file must exist."""
    split: SplitConfig = getattr(data, name)
    paths = _local_paths(split)
    missing = [p for p in paths if not p.exists()]
    if paths and not missing:
        return False
    if data.hub:
        if missing:
            log.info("%s not found; reading split %r from hub dataset %s", missing[0], name, data.hub)
        return True
    if missing:
        raise DataError(f"{missing[0]}: no such file (data.{name}); set S2S_DATA or data.hub")
    raise DataError(f"data.{name}: no files given; set data.{name}.src/tgt, data.{name}.path or data.hub")


def read_split(data: DataConfig, name: str) -> Parallel:
    """Read split ``name`` (``train``, ``valid`` or ``test``); skip and count empty pairs."""
    split: SplitConfig = getattr(data, name)
    if _from_hub(data, name):
        src, tgt, origin = _read_hub(data, split, name)
    else:
        src, tgt, origin = _read_local(split, data, name)
    return _drop_empty(src, tgt, origin, name)


def shard_pairs(shard: SplitConfig, data: DataConfig) -> Iterator[tuple[str, str]]:
    """The pairs of one file (or one src/tgt pair of files) of :func:`split_shards`, read lazily."""
    if shard.src:
        return text_pairs(Path(shard.src), Path(shard.tgt))
    path = Path(shard.path)
    kind = _suffix(path)
    if kind in (".jsonl", ".json"):
        return jsonl_pairs(path, data.src_field, data.tgt_field)
    if kind in (".tsv", ".tab"):
        return tsv_pairs(path, data.src_field, data.tgt_field)
    if kind == ".parquet":
        import datasets

        rows = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=True)
        return _row_pairs(rows, str(path), data.src_field, data.tgt_field)
    raise DataError(f"{path}: unknown corpus format {kind or '(no suffix)'!r}; "
                    "expected .jsonl, .tsv or .parquet (optionally .gz), or src/tgt text files")


def _read_local(split: SplitConfig, data: DataConfig, name: str) -> tuple[list[str], list[str], str]:
    shards = split_shards(split, name)
    src, tgt = [], []
    for shard in shards:
        if shard.path and _suffix(Path(shard.path)) == ".parquet":  # columnar: read whole, not row by row
            import datasets

            rows = datasets.load_dataset("parquet", data_files=shard.path, split="train")
            pairs = _read_datasets(rows, shard.path, data.src_field, data.tgt_field)
        else:
            pairs = _unzip(shard_pairs(shard, data))
        src += pairs[0]
        tgt += pairs[1]
    return src, tgt, _origin(split, shards)


@dataclass(frozen=True)
class PairStream:
    """Split ``name`` of ``data`` read lazily, from the start, each time it is iterated (one pass
    per epoch): (source, target) pairs in file order, empty ones included (see :func:`non_empty`)."""

    data: DataConfig
    name: str
    hub: bool  # read from data.hub (the local files are missing)

    @property
    def origin(self) -> str:
        split: SplitConfig = getattr(self.data, self.name)
        if self.hub:
            return _hub_origin(self.data, split.hub_split or self.name)
        return _origin(split, split_shards(split, self.name))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        split: SplitConfig = getattr(self.data, self.name)
        if self.hub:
            rows, origin = _load_hub(self.data, split, self.name, streaming=True)
            return _row_pairs(rows, origin, self.data.src_field, self.data.tgt_field)
        # one file open at a time: each shard is opened when the one before it is done
        return itertools.chain.from_iterable(shard_pairs(s, self.data) for s in split_shards(split, self.name))


def stream_split(data: DataConfig, name: str) -> PairStream:
    """Split ``name`` as a :class:`PairStream`; missing files fail (or fall back to the hub) now."""
    stream = PairStream(data, name, _from_hub(data, name))
    if not stream.hub:
        split_shards(getattr(data, name), name)  # settings that cannot pair up fail before any pass
    return stream


def non_empty(src: str, tgt: str) -> bool:
    """Whether a pair is kept: both its source and its target hold more than whitespace."""
    return bool(src.strip() and tgt.strip())


def _drop_empty(src: list[str], tgt: list[str], origin: str, name: str) -> Parallel:
    """The pairs whose source and target both hold more than whitespace; the others are counted
    and logged with the split's file (``origin``) and name."""
    keep = [i for i, (s, t) in enumerate(zip(src, tgt)) if non_empty(s, t)]
    skipped = len(src) - len(keep)
    if skipped:
        log.warning("%s (data.%s): skipped %d of %d pairs with an empty source or target",
                    origin, name, skipped, len(src))
    if len(keep) == len(src):
        return Parallel(src, tgt, origin)
    return Parallel([src[i] for i in keep], [tgt[i] for i in keep], origin, skipped)
