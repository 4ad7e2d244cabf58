"""Checkpoints that cannot be lost, holding everything an exact resume needs.

Writes go to a temporary file in the same folder, are flushed to the disk (fsync) and renamed
over the old file, and the folder is flushed too: after a crash or a power cut the name holds
the old checkpoint or the new one, never half of one, and the rename itself survives. A write
that fails (a full disk) leaves the old file and stops with one line naming the file.

Reads check every stored CRC-32 before unpickling: ``torch.load`` finds a truncated file but
accepts flipped bytes inside a tensor, which the zip entries' checksums catch.

``last.pt`` may have older twins ``last-N.pt`` (``train.keep_last``) that ``--resume`` falls back
on, newest first, when ``last.pt`` cannot be read (:func:`load_resume_state`).
"""

from __future__ import annotations

import errno
import os
import random
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from s2s.errors import RunError

# what --resume needs of a checkpoint (Trainer.state)
RESUME_KEYS = ("model", "optimizer", "schedule", "scaler", "position", "rng")
# the errnos of a full disk or an exhausted quota
NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def rng_state() -> dict:
    """Every RNG a run draws from, in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached": float(cached)}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(payload: dict, path: str | Path) -> None:
    """Write to a temporary file in the same folder, fsync it, rename it over ``path`` and fsync
    the folder: a crash never leaves half a file, and a written checkpoint survives a power cut.

    An OSError while writing (often wrapped by ``torch.save`` in a RuntimeError) becomes a
    :class:`RunError` naming ``path``; the old file at ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(payload, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        cause = os_error(err)
        if cause is None:
            raise
        raise write_error(path, cause) from None


def os_error(err: BaseException) -> OSError | None:
    """``err`` or the OSError it was raised from or during (torch.save reports a failed write as a
    RuntimeError whose context is the OSError); None when there is none."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def write_error(path: Path, err: OSError) -> RunError:
    """One line for a failed checkpoint write: a full disk says so; older checkpoints are intact."""
    if err.errno in NO_SPACE:
        return RunError(f"{path}: no space left on device while writing this checkpoint; the checkpoints "
                        "already on disk are intact: free some space and continue with s2s train --resume")
    return RunError(f"{path}: cannot write this checkpoint ({err.strerror or err}); the checkpoints already "
                    "on disk are intact")


def fsync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename just made in it) to the disk; a no-op where the
    platform or file system cannot open or sync a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


def link_atomic(source: Path, path: Path) -> bool:
    """Make ``path`` a second name of ``source`` (a hard link, no bytes copied), replacing
    ``path`` atomically; False where the file system has no hard links."""
    tmp = path.parent / f".{path.name}.link-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        os.link(source, tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno in NO_SPACE:
            raise write_error(path, err) from None
        return False
    fsync_folder(path.parent)
    return True


def numbered(folder: str | Path, prefix: str) -> list[Path]:
    """The ``{prefix}-N.pt`` files of ``folder``, oldest (smallest N) first."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)\.pt$")
    found = [(int(m.group(1)), p) for p in Path(folder).glob(f"{prefix}-*.pt") if (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def load(path: str | Path) -> dict:
    """Load a checkpoint; ``weights_only`` refuses anything but tensors and plain data.

    A missing, truncated or corrupt file raises a one-line :class:`RunError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no such checkpoint")
    try:
        check_crcs(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as err:  # torch.load raises EOFError, RuntimeError, UnpicklingError, ...
        raise RunError(f"{path}: not a readable s2s checkpoint, truncated or corrupt "
                       f"({_first_line(err)})") from None


def check_crcs(path: Path) -> None:
    """Read every entry of the zip archive ``torch.save`` writes, checking its stored CRC-32
    (zipfile raises BadZipFile on a mismatch). Entries stored with CRC 0 (torch's
    ``compute_crc32`` off) and files that are not zip archives are left to ``torch.load``."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.CRC == 0:
                continue
            with archive.open(info) as entry:
                while entry.read(1 << 24):
                    pass


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    reason = text[0] if text else type(err).__name__
    return reason if len(reason) <= 160 else reason[:157] + "..."


def load_resume_state(folder: str | Path, log: Callable[[str], None]) -> tuple[dict, Path]:
    """The training state in ``folder/last.pt`` or, when that cannot be read, in the newest
    readable ``last-N.pt`` (kept by ``train.keep_last``); each file skipped is logged with why.
    Returns the state and the file it came from."""
    folder = Path(folder)
    candidates = [folder / "last.pt", *reversed(numbered(folder, "last"))]
    for path in candidates:
        try:
            state = load(path)
        except RunError as err:
            log(f"resume: skipped {err}")
            continue
        missing = [key for key in RESUME_KEYS if not isinstance(state, dict) or key not in state]
        if missing:
            log(f"resume: skipped {path}: not a training state (missing {', '.join(missing)})")
            continue
        return state, path
    tried = ", ".join(p.name for p in candidates)
    raise RunError(f"{folder}: no readable checkpoint to resume from (tried {tried}; see the log for why each "
                   "was skipped)")
