"""Everything a training run writes, in one object: the run's single writer.

The loop hands its records and checkpoint states to a :class:`RunReporter` and writes nothing
itself, so that under data parallelism rank 0 alone holds a reporter. Under ``run_dir``:

* ``metrics.jsonl``: one JSON record a line (training windows, validations, the averaged weights);
* ``checkpoints/{last,best}.pt``: everything an exact resume needs, and with ``keep_last`` K the
  states of the last K + 1 saves of ``last`` as ``last-N.pt`` (N the update; the newest is a hard
  link of ``last.pt``), for ``--resume`` to fall back on when ``last.pt`` is unreadable;
* ``checkpoints/step-N.pt``: the weights of the last ``keep`` validations, and their average
  ``checkpoints/averaged.pt``;
* log lines, to the ``s2s`` logger (``train.log``) and beside the progress bar;
* ``tensorboard/``: the records' numbers as TensorBoard scalars, when the ``tensorboard``
  package is installed (the ``tensorboard`` extra); without it, nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from tqdm import tqdm

from s2s.training import checkpoint
from s2s.training.averaging import step_checkpoints, write_average

log = logging.getLogger(__name__)


def describe(record: dict) -> str:
    """``step 8: valid_loss 3.412 valid_ppl 30.331 valid_bleu 1.250 (best)``: every metric of a validation."""
    metrics = " ".join(f"{k} {v:.3f}" for k, v in record.items() if k.startswith("valid_"))
    return f"step {record['step']}: {metrics}{' (best)' if record.get('best') else ''}"


class RunReporter:
    def __init__(self, run_dir: str | Path, progress: bool = True, keep_last: int = 0):
        self.run_dir, self.progress, self.keep_last = Path(run_dir), progress, keep_last
        self.checkpoints = self.run_dir / "checkpoints"
        self.metrics = _append_lines(self.run_dir / "metrics.jsonl")
        self.board = _tensorboard(self.run_dir / "tensorboard")
        self.bar: tqdm | None = None

    # ------------------------------------------------------------------ progress and log lines
    def start(self, step: int, total: int | None) -> None:
        """Open the progress bar at update ``step`` of ``total`` (None: no known end)."""
        self.bar = tqdm(total=total, initial=step, disable=not self.progress, unit="upd", dynamic_ncols=True)

    def advance(self) -> None:
        self.bar.update(1)

    def finish(self) -> None:
        """Close the progress bar; later lines go to the log."""
        self.bar.close()
        self.bar = None

    def log(self, message: str) -> None:
        log.info(message)

    def say(self, message: str) -> None:
        """Beside the progress bar while it runs (tqdm keeps the bar below), else to the log."""
        if self.bar is not None:
            self.bar.write(message)
        else:
            log.info(message)

    # ------------------------------------------------------------------ metrics.jsonl
    def write(self, record: dict) -> None:
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()  # a line per record survives a crash; tail -f shows it at once
        if self.board is not None:
            add_scalars(self.board, record)

    def train_window(self, record: dict, postfix: dict) -> None:
        self.write(record)
        self.bar.set_postfix(postfix)

    def validation(self, record: dict) -> None:
        self.write(record)
        self.say(describe(record))

    def averaged(self, record: dict) -> None:
        self.write(record)
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in record.items() if k.startswith("valid_"))
        message = f"averaged {', '.join(record['averaged'])} into averaged.pt: {metrics}"
        log.info(message)
        if self.progress:
            tqdm.write(message)

    # ------------------------------------------------------------------ checkpoints
    def save(self, name: str, state: dict) -> None:
        """``checkpoints/{name}.pt``, written atomically. With ``keep_last``, ``last`` is written as
        ``last-N.pt`` first and ``last.pt`` becomes a second name of it: a write that fails (a
        full disk) leaves ``last.pt`` and the older ``last-N.pt`` as they were."""
        path = self.checkpoints / f"{name}.pt"
        if name != "last" or not self.keep_last:
            checkpoint.save_atomic(state, path)
            return
        step = state["position"]["step"]
        kept = self.checkpoints / f"last-{step}.pt"
        checkpoint.save_atomic(state, kept)
        if not checkpoint.link_atomic(kept, path):  # no hard links here: a second copy
            checkpoint.save_atomic(state, path)
        for old in checkpoint.numbered(self.checkpoints, "last"):
            if _number(old) > step:  # left by a run that resumed from an older state: a timeline given up
                old.unlink()
        self._rotate("last", self.keep_last + 1)

    def keep_step_weights(self, step: int, weights: dict[str, torch.Tensor], keep: int) -> None:
        """Weights only (no optimizer): ``step-N.pt`` for the last ``keep`` validations."""
        checkpoint.save_atomic({"model": weights}, self.checkpoints / f"step-{step}.pt")
        self._rotate("step", keep)

    def _rotate(self, prefix: str, keep: int) -> None:
        """Delete all but the newest ``keep`` of the ``{prefix}-N.pt`` files."""
        for old in checkpoint.numbered(self.checkpoints, prefix)[:-keep]:
            old.unlink()

    def average_steps(self, keep: int) -> dict | None:
        """Average the last ``keep`` step weights into ``averaged.pt``; returns that checkpoint
        (``model``: the weights, ``averaged``: the file names), None when none was kept."""
        paths = step_checkpoints(self.checkpoints)[-keep:]
        if not paths:
            return None
        return checkpoint.load(write_average(paths, self.checkpoints / "averaged.pt"))

    def close(self) -> None:
        self.metrics.close()
        if self.board is not None:
            self.board.close()


def _append_lines(path: Path):
    """``path`` open for appending lines; a last line cut short by a killed run is ended first, so
    that the next record starts a line of its own (readers skip the cut one)."""
    cut = False
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as existing:
            existing.seek(-1, 2)  # the last byte only: the file grows with the run
            cut = existing.read(1) != b"\n"
    out = path.open("a", encoding="utf-8")
    if cut:
        out.write("\n")
    return out


def _tensorboard(folder: Path):
    """A TensorBoard ``SummaryWriter`` into ``folder``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder), flush_secs=30)


def add_scalars(writer, record: dict) -> None:
    """Every number of a ``metrics.jsonl`` record at its step, under the record's own names
    (``train_loss``, ``lr``, ``valid_bleu``, ...); the averaged weights' as ``averaged_<name>``."""
    prefix = "averaged_" if "averaged" in record else ""
    for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(prefix + key, value, record["step"])


def _number(path: Path) -> int:
    """N of ``prefix-N.pt``."""
    return int(path.stem.rsplit("-", 1)[1])
