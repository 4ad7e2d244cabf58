"""Data parallelism under torchrun: 2 gloo processes train like 1 with update_freq 2, rank 0
alone writes the run, and the run resumes on 1 process.

One real ``torchrun --nproc-per-node 2`` run (10 updates) is shared by the tests of this module;
the 1-process runs it is compared with run in this process. Dropout stays on: each micro-batch
draws its masks from a seed of its own, so they do not depend on the rank that trains it. Plain
SGD without clipping, so that a gradient of the wrong scale shows in the losses (Adam and
clipping would all but hide it).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from s2s.errors import ConfigError
from s2s.training.distributed import World, world_from_env

# 200 pairs of about 6,600 target tokens in batches of 400 make 17 batches an epoch: with 2 batches
# an update, update 9 holds the epoch's last batch alone (rank 1 idles) and update 10 starts epoch 1
TRAIN = {"optimizer": "sgd", "lr": 1.0, "clip_norm": 0.0, "batch_tokens": 400, "log_every": 1, "valid_every": 3,
         "valid_bleu": False, "best_metric": "loss", "threads": 1}
# float noise only (gloo on CPU gave identical losses: x 2 and / 2 are exact). Measured mistakes:
# the gradient halved (no x world size) 8e-3, normalised by one rank's tokens 1e-2, the idle
# rank's borrowed batch counted 2e-3, dropout drawn from each rank's own stream 7e-4
RTOL = 1e-4


def test_an_update_is_dealt_out_one_batch_per_rank_in_turn():
    update = ["b0", "b1", "b2", "b3", "b4"]
    assert [World(rank, 2).shard(update) for rank in (0, 1)] == [["b0", "b2", "b4"], ["b1", "b3"]]
    assert [World(rank, 3).shard(update[:2]) for rank in (0, 1, 2)] == [["b0"], ["b1"], []]  # rank 2 idles
    assert World().shard(update) == update


def test_torchrun_environment_is_read_and_checked():
    assert world_from_env({}) == World()
    assert world_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    with pytest.raises(ConfigError, match="RANK=4 is not in 0..WORLD_SIZE-1"):
        world_from_env({"WORLD_SIZE": "4", "RANK": "4", "LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="expected integers.*WORLD_SIZE='two'"):
        world_from_env({"WORLD_SIZE": "two", "RANK": "0"})


# ---------------------------------------------------------------------------- a real 2-process run
def _records(run_dir) -> tuple[dict[int, float], dict[int, float]]:
    """Per-step train_loss and valid_loss of ``metrics.jsonl``; fails on a step written twice."""
    train, valid = {}, {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        into, key = (train, "train_loss") if "train_loss" in record else (valid, "valid_loss")
        assert record["step"] not in into, f"step {record['step']} written twice: {key}"
        into[record["step"]] = record[key]
    return train, valid


def _assert_close(got: dict[int, float], want: dict[int, float], steps) -> None:
    for step in steps:
        assert math.isclose(got[step], want[step], rel_tol=RTOL), (step, got[step], want[step])


@pytest.fixture(scope="module")
def ddp_run(tiny_recipe_raw, tmp_path_factory):
    """10 updates by ``torchrun --nproc-per-node 2`` (gloo, update_freq 1), started from an empty
    working directory: (root, run dir, stdout)."""
    root = tmp_path_factory.mktemp("ddp")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_raw(train={**TRAIN, "max_steps": 10})))
    (root / "cwd").mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "s2s", "train", str(recipe), "--run-dir", str(root / "run")]
    done = subprocess.run(command, cwd=root / "cwd", env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, root / "run", done.stdout


@pytest.fixture(scope="module")
def one_process(tiny_recipe_raw, ddp_run, tmp_path_factory):
    """The same recipe for 12 updates in one process with update_freq 2, on the 2-process run's
    vocabulary: per-step train and valid losses."""
    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict
    from s2s.training.loop import train

    run = tmp_path_factory.mktemp("one") / "run"
    shutil.copytree(ddp_run[1] / "vocab", run / "vocab")
    train(recipe_from_dict(tiny_recipe_raw(train={**TRAIN, "max_steps": 12, "update_freq": 2})), run)
    return _records(run)


def test_two_processes_train_like_one_with_update_freq_two(ddp_run, one_process):
    """Every update, the one where rank 1 idles (9) and the first of epoch 1 (10) included."""
    train, valid = _records(ddp_run[1])
    assert sorted(train) == list(range(1, 11)) and sorted(valid) == [3, 6, 9, 10]
    _assert_close(train, one_process[0], range(1, 11))
    _assert_close(valid, one_process[1], (3, 6, 9))


def test_rank_zero_alone_writes_the_run(ddp_run):
    root, run, stdout = ddp_run
    files = [p for p in root.rglob("*") if p.is_file() and p.parent.name != "checkpoints"]
    written = sorted(str(p.relative_to(root)) for p in files)
    events = [name for name in written if name.startswith("run/tensorboard/")]
    assert len(events) == (importlib.util.find_spec("tensorboard") is not None)  # rank 0's event file alone
    assert [name for name in written if name not in events] == [
        "recipe.yaml", "run/config.yaml", "run/metrics.jsonl", "run/train.log",
        "run/vocab/joint.model", "run/vocab/joint.vocab"]  # nothing in the empty working directory
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert {"best.pt", "last.pt"} <= set(checkpoints)
    assert all(re.fullmatch(r"(best|last(-\d+)?)\.pt", name) for name in checkpoints), checkpoints  # no temporary files
    _records(run)  # each step's record once
    log = (run / "train.log").read_text()
    assert log.count("world size 2 (gloo): an update takes update_freq 1 x 2 processes = 2 batches") == 1
    assert log.count(" parameters on cpu") == 1 and log.count("stopped (max_steps) at step 10") == 1
    assert stdout.count("stopped (max_steps) at step 10") == 1  # the summary line, from rank 0 only


def test_a_two_process_run_resumes_on_one_process(ddp_run, one_process):
    """Resumed mid-epoch by ``s2s train --resume`` with update_freq 2 (the same 2 batches an
    update), the run goes on as the 1-process run did."""
    import torch

    from s2s.cli.main import main

    run = ddp_run[1]
    assert main(["train", "--resume", str(run), "--set", "train.update_freq=2", "--set", "train.max_steps=12"]) == 0
    train, valid = _records(run)
    assert sorted(train) == list(range(1, 13)) and sorted(valid) == [3, 6, 9, 10, 12]
    _assert_close(train, one_process[0], (11, 12))
    _assert_close(valid, one_process[1], (12,))
    position = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["position"]
    assert (position["step"], position["epoch"], position["batch"]) == (12, 1, 6)


# ---------------------------------------------------------------------------- a rank that dies
def _workers(agent_pid: int) -> dict[int, int]:
    """RANK -> pid of the training processes that torchrun's agent ``agent_pid`` started (/proc)."""
    workers = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        rank = [item[5:] for item in environ if item.startswith(b"RANK=")]
        if parent == agent_pid and rank:
            workers[int(rank[0])] = int(stat.parent.name)
    return workers


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds torchrun's workers in /proc")
def test_a_rank_that_dies_ends_the_run_and_it_resumes_on_one_process(tiny_recipe_raw, tmp_path):
    """SIGKILL to rank 1 mid-run: torchrun ends the run with an error instead of hanging, and the
    checkpoint rank 0 wrote resumes on one process."""
    import torch

    from s2s.cli.main import main
    from s2s.runs import read_metrics

    recipe, run = tmp_path / "recipe.yaml", tmp_path / "run"
    recipe.write_text(yaml.safe_dump(tiny_recipe_raw(train={**TRAIN, "max_steps": 100_000})))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "s2s", "train", str(recipe), "--run-dir", str(run)]
    agent = subprocess.Popen(command, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "last.pt").is_file():  # renamed into place whole
            assert agent.poll() is None and time.monotonic() < deadline, "the 2-process run did not validate"
            time.sleep(0.2)
        os.kill(_workers(agent.pid)[1], signal.SIGKILL)
        _, stderr = agent.communicate(timeout=120)  # ends, does not hang
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode != 0 and "SIGKILL" in stderr, stderr[-2000:]
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["position"]["step"]
    assert step >= 3
    assert main(["train", "--resume", str(run), "--set", "train.update_freq=2",
                 "--set", f"train.max_steps={step + 2}"]) == 0
    # the steps trained after last.pt and before the kill are logged again by the resumed run
    records = read_metrics(run / "metrics.jsonl")[-3:]
    assert [(r["step"], "train_loss" in r) for r in records] == [(step + 1, True), (step + 2, True), (step + 2, False)]
