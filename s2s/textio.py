"""UTF-8 text files line by line (gzip for ``.gz``), standard library only.

The data layer reads corpora through it, and ``s2s translate --model BUNDLE`` reads its input
through it where only the runtime is installed (the data layer needs PyYAML and datasets).
Every error names the file, and the line where one is at fault.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from s2s.errors import DataError


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without its newline); invalid UTF-8 names path and line."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            yield from decode_lines(handle, path)
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a corrupt deflate stream inside a .gz
        raise DataError(f"{path}: cannot read: {err}") from None


def decode_lines(raw_lines: Iterable[bytes] | BinaryIO, name: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text without its newline) of byte lines split at "\\n" only (a
    lone "\\r", U+2028 or U+0085 is content); invalid UTF-8 raises DataError naming ``name`` and
    the line."""
    for number, raw in enumerate(raw_lines, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{name}: line {number}: invalid UTF-8 ({err.reason} at byte "
                            f"{err.start}); expected UTF-8 text") from None
        yield number, text.rstrip("\r\n")


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file (gzip if it ends in .gz)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return [text for _, text in numbered_lines(path)]


def read_texts(path: str | Path, field: str | None = None) -> list[str]:
    """Lines of a text file, or with ``field`` that field of each JSONL record (newlines as
    spaces): the sources the check tools translate."""
    if field is None:
        return read_lines(path)
    return [str(json.loads(line)[field]).replace("\n", " ") for line in read_lines(path) if line.strip()]
