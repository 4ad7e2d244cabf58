"""SIGKILL and resume: a run killed at any point and continued with ``s2s train --resume`` ends
with the weights, optimizer state and metrics of a run never interrupted, bit for bit on CPU.

SIGKILL runs no handler, no ``finally`` and no flush: what survives is only what had reached the
files. To kill at chosen points, not at whatever instant a timer hits, each run goes through a small
driver (written to the test's folder) that wraps one function of the run and kills its own
process from inside it: after ``last.pt`` of update N is written, halfway through writing it, or
after the metrics line of an update past the newest checkpoint. The run itself is the real
``s2s train`` command, in a fresh process each time, so a resume can rely on nothing held in memory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from s2s.training import checkpoint

ROOT = Path(__file__).resolve().parents[2]
# 12 updates, a checkpoint every 3; a metrics line every update, so that a resumed run's lines
# cover the same updates as the uninterrupted run's (a window never straddles a resume)
TRAIN = {"max_steps": 12, "valid_every": 3, "log_every": 1, "valid_bleu": False, "best_metric": "loss",
         "threads": 1, "progress": False}
TIMING = ("elapsed_s", "tokens_per_s")  # wall clock: differs between any two runs

DRIVER = '''
"""s2s train, killed by SIGKILL from inside at the point argv[1] names (JSON), or never."""
import io, json, os, signal, sys
from pathlib import Path

import torch

from s2s.cli.main import main
from s2s.training import checkpoint
from s2s.training.report import RunReporter

kill = json.loads(sys.argv[1])


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if kill.get("at") == "saved":  # checkpoints/last.pt of update N written, nothing after it
    save = RunReporter.save

    def saved(self, name, state):
        save(self, name, state)
        if name == "last" and state["position"]["step"] == kill["step"]:
            die()

    RunReporter.save = saved
elif kill.get("at") == "writing":  # half of the bytes of last.pt (or last-N.pt) of update N on disk
    save_atomic, torch_save = checkpoint.save_atomic, torch.save

    def half_written(payload, out):
        whole = io.BytesIO()
        torch_save(payload, whole)
        out.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        out.flush()
        os.fsync(out.fileno())
        die()

    def writing(payload, path):
        if Path(path).name.startswith("last") and payload.get("position", {}).get("step") == kill["step"]:
            torch.save = half_written
        save_atomic(payload, path)

    checkpoint.save_atomic = writing
elif kill.get("at") == "logged":  # the metrics line of update N flushed to metrics.jsonl
    write = RunReporter.write

    def logged(self, record):
        write(self, record)
        if record.get("step") == kill["step"] and "train_loss" in record:
            die()

    RunReporter.write = logged

sys.exit(main(sys.argv[2:]))
'''


def s2s_train(folder: Path, args: list, kill: dict | None = None) -> int:
    """``s2s train ARGS`` in a new process through the driver; its exit status (-9: killed)."""
    driver = folder / "kill_driver.py"
    if not driver.exists():
        driver.write_text(DRIVER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(driver), json.dumps(kill or {}), "train", *map(str, args)],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode


def write_recipe(folder: Path, raw: dict) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def last_state(run: Path, name: str = "last.pt") -> dict:
    return checkpoint.load(run / "checkpoints" / name)


def assert_same(a, b, where: str = "") -> None:
    """Equal to the bit: tensors by ``torch.equal`` (dtype and shape too), containers item by item."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_state(run: Path, reference: Path) -> None:
    """Model, optimizer moments, schedule, RNGs and position of ``last.pt`` as in ``reference``'s;
    only the training wall time may differ."""
    a, b = last_state(run), last_state(reference)
    for state in (a, b):
        state["position"].pop("elapsed")
    assert a.keys() == b.keys()
    assert a["model"].keys() == b["model"].keys()
    for key in a:
        assert_same(a[key], b[key], key)


def metrics_by_update(run: Path) -> dict:
    """Every metrics.jsonl line as {(kind, step): [records without wall-clock fields]}. A run
    resumed from update N writes again the lines of the updates after N that a killed run wrote."""
    lines = {}
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = {k: v for k, v in json.loads(line).items() if k not in TIMING}
        kind = "train" if "train_loss" in record else "valid"
        lines.setdefault((kind, record["step"]), []).append(record)
    return lines


def assert_same_metrics(run: Path, reference: Path) -> None:
    """The same updates logged and validated as ``reference``, every line (the killed runs' too)
    with its losses, learning rate and best flag."""
    got, want = metrics_by_update(run), metrics_by_update(reference)
    assert got.keys() == want.keys()
    for key, records in got.items():
        assert all(r == want[key][0] for r in records), (key, records, want[key])


def temp_files(run: Path) -> list[str]:
    """Leftovers of ``save_atomic``/``link_atomic`` writes that a kill interrupted."""
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def uninterrupted(tiny_recipe_raw, tmp_path_factory) -> Path:
    """The reference: the same 12 updates in one run, never killed."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    recipe = write_recipe(folder, tiny_recipe_raw(train=TRAIN))
    assert s2s_train(folder, [recipe, "--run-dir", folder / "run"]) == 0
    return folder / "run"


@pytest.mark.parametrize("keep_last", [1, 0])  # last.pt a hard link of last-N.pt / written itself
def test_three_kills_and_resumes_end_with_the_uninterrupted_runs_state(uninterrupted, tiny_recipe_raw, tmp_path,
                                                                        keep_last):
    """Killed after last.pt of update 3 is written, then halfway through writing the checkpoint
    of update 6, then at update 8 (two past the newest checkpoint); each time resumed from the
    newest whole checkpoint, the half-written temporary file notwithstanding. The end state and
    every metrics line equal the uninterrupted run's."""
    recipe = write_recipe(tmp_path, tiny_recipe_raw(train={**TRAIN, "keep_last": keep_last}))
    run = tmp_path / "run"
    resume = ["--resume", run]

    assert s2s_train(tmp_path, [recipe, "--run-dir", run], {"at": "saved", "step": 3}) == -signal.SIGKILL
    assert last_state(run)["position"]["step"] == 3

    assert s2s_train(tmp_path, resume, {"at": "writing", "step": 6}) == -signal.SIGKILL
    written = "last-6.pt" if keep_last else "last.pt"
    (half,) = temp_files(run)
    assert half.startswith(f".{written}.")  # the kill came inside save_atomic, mid-write
    assert 0 < (run / "checkpoints" / half).stat().st_size
    assert last_state(run)["position"]["step"] == 3  # the old checkpoint stands whole

    assert s2s_train(tmp_path, resume, {"at": "logged", "step": 8}) == -signal.SIGKILL
    assert last_state(run)["position"]["step"] == 6
    assert max(step for _, step in metrics_by_update(run)) == 8

    assert s2s_train(tmp_path, resume) == 0
    log = (run / "train.log").read_text(encoding="utf-8")
    resumed = re.findall(r"resumed from \S*/(\S+) at step (\d+)", log)
    assert resumed == [("last.pt", "3"), ("last.pt", "3"), ("last.pt", "6")]
    assert "resume: skipped" not in log  # every resume read last.pt itself: the temporary file was never tried
    assert_same_state(run, uninterrupted)
    assert_same_metrics(run, uninterrupted)
    assert temp_files(run) == [half]  # the one interrupted write, left where it was, harmless


def test_a_kill_right_after_the_last_validation_loses_no_best_checkpoint(uninterrupted, tiny_recipe_raw, tmp_path):
    """Killed right after last.pt of the final validation (update 12) is written: the resumed run
    has nothing left to train, so best.pt must already be that validation's if it was the best
    (Trainer.validate writes best.pt before last.pt)."""
    best = [r for (kind, _), (r, *_) in metrics_by_update(uninterrupted).items() if kind == "valid" and r["best"]]
    assert best[-1]["step"] == 12  # the precondition: the last validation improved the loss
    recipe = write_recipe(tmp_path, tiny_recipe_raw(train=TRAIN))
    run = tmp_path / "run"
    assert s2s_train(tmp_path, [recipe, "--run-dir", run], {"at": "saved", "step": 12}) == -signal.SIGKILL
    assert s2s_train(tmp_path, ["--resume", run]) == 0
    assert_same_state(run, uninterrupted)
    assert last_state(run, "best.pt")["position"]["step"] == 12
    assert_same(last_state(run, "best.pt")["model"], last_state(uninterrupted, "best.pt")["model"], "best.pt")
