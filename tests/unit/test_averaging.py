"""Checkpoint averaging: the tool, the training option and the errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s2s.errors import RunError
from s2s.training.averaging import average_weights, step_checkpoints, write_average
from s2s.training.checkpoint import save_atomic
from s2s.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
NO_BLEU = {"valid_bleu": False, "best_metric": "loss"}  # best.pt by validation loss


def _save(path, **weights):
    save_atomic({"model": weights}, path)
    return path


def test_average_is_the_elementwise_mean_and_keeps_integer_buffers(tmp_path):
    a = _save(tmp_path / "a.pt", w=torch.tensor([1.0, 2.0]), n=torch.tensor(3))
    b = _save(tmp_path / "b.pt", w=torch.tensor([2.0, 4.0]), n=torch.tensor(3))
    c = _save(tmp_path / "c.pt", w=torch.tensor([6.0, 0.0]), n=torch.tensor(3))
    avg = average_weights([a, b, c])
    assert torch.equal(avg["w"], torch.tensor([3.0, 2.0])) and avg["w"].dtype == torch.float32
    assert int(avg["n"]) == 3


def test_mismatched_checkpoints_are_refused_with_their_names(tmp_path):
    a = _save(tmp_path / "a.pt", w=torch.zeros(2))
    with pytest.raises(RunError, match=r"b\.pt: w has shape \(3,\)"):
        average_weights([a, _save(tmp_path / "b.pt", w=torch.zeros(3))])
    with pytest.raises(RunError, match=r"c\.pt: its weights do not match .*extra \['v'\]"):
        average_weights([a, _save(tmp_path / "c.pt", w=torch.zeros(2), v=torch.zeros(1))])
    with pytest.raises(RunError, match=r"d\.pt: integer tensor n differs"):
        average_weights([_save(tmp_path / "i.pt", n=torch.tensor(1)), _save(tmp_path / "d.pt", n=torch.tensor(2))])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match=r"junk\.pt: not a readable s2s checkpoint"):
        average_weights([tmp_path / "junk.pt"])
    with pytest.raises(RunError, match=r"gone\.pt: no such checkpoint"):
        average_weights([tmp_path / "gone.pt"])


def test_step_checkpoints_sort_by_step_number(tmp_path):
    for step in (800, 80, 1200):
        _save(tmp_path / f"step-{step}.pt", w=torch.zeros(1))
    (tmp_path / "step-x.pt").write_bytes(b"")
    assert [p.name for p in step_checkpoints(tmp_path)] == ["step-80.pt", "step-800.pt", "step-1200.pt"]


def test_training_keeps_the_last_k_and_writes_their_average(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    train(tiny_recipe(train={"max_steps": 8, "valid_every": 2, "average_last": 2, **NO_BLEU}), run)
    folder = run / "checkpoints"
    assert [p.name for p in step_checkpoints(folder)] == ["step-6.pt", "step-8.pt"]
    averaged = torch.load(folder / "averaged.pt", weights_only=True)
    assert averaged["averaged"] == ["step-6.pt", "step-8.pt"]
    expected = average_weights([folder / "step-6.pt", folder / "step-8.pt"])
    for name, value in expected.items():
        assert torch.allclose(averaged["model"][name], value), name
    # the run's own weights are untouched by scoring the average
    last = torch.load(folder / "last.pt", weights_only=True)["model"]
    step8 = torch.load(folder / "step-8.pt", weights_only=True)["model"]
    assert all(torch.equal(last[n], step8[n]) for n in last)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["averaged"] == ["step-6.pt", "step-8.pt"] and records[-1]["valid_loss"] > 0


def test_averaged_checkpoint_decodes_through_the_cli_and_unknown_names_are_listed(tiny_recipe, tmp_path):
    from s2s.runs import load_run

    run = tmp_path / "run"
    train(tiny_recipe(train={"max_steps": 4, "valid_every": 2, "average_last": 3, **NO_BLEU}), run)
    _, _, model = load_run(run, "averaged")
    averaged = torch.load(run / "checkpoints" / "averaged.pt", weights_only=True)["model"]
    assert all(torch.equal(model.state_dict()[n], averaged[n]) for n in averaged)
    with pytest.raises(RunError, match=r"step-3\.pt: no such checkpoint; the run has \['averaged', 'best', "
                                          r"'last', 'last-2', 'last-4', 'step-2', 'step-4'\]"):  # keep_last 1
        load_run(run, "step-3")


def test_tool_averages_a_run_and_explicit_files(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    train(tiny_recipe(train={"max_steps": 6, "valid_every": 2, "average_last": 3, **NO_BLEU}), run)
    folder = run / "checkpoints"
    tool = [sys.executable, str(ROOT / "tools" / "average_checkpoints.py")]
    done = subprocess.run([*tool, "--run", str(run), "--last", "2", "--output", str(tmp_path / "two.pt")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    assert two["averaged"] == ["step-4.pt", "step-6.pt"]
    write_average([folder / "step-4.pt", folder / "step-6.pt"], tmp_path / "same.pt")
    same = torch.load(tmp_path / "same.pt", weights_only=True)["model"]
    assert all(torch.equal(two["model"][n], same[n]) for n in same)
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    failed = subprocess.run([*tool, "--run", str(empty)], capture_output=True, text=True)
    assert failed.returncode == 2 and "no step-N.pt checkpoints" in failed.stderr


def test_a_bundle_records_the_metrics_of_the_checkpoint_it_exported(tmp_path):
    """The averaged weights' validation line (often the highest) is not best.pt's: provenance
    must quote the line that scored the exported checkpoint."""
    import json

    from s2s.runs import checkpoint_metrics

    rows = [{"step": 100, "train_loss": 3.0},
            {"step": 200, "valid_loss": 2.0, "valid_bleu": 30.0, "best": True},
            {"step": 300, "valid_loss": 1.9, "valid_bleu": 29.5, "best": False},
            {"step": 300, "averaged": ["step-200.pt", "step-300.pt"], "valid_loss": 1.8, "valid_bleu": 31.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert checkpoint_metrics(tmp_path, "best") == {"step": 200, "valid_bleu": 30.0, "valid_loss": 2.0}
    assert checkpoint_metrics(tmp_path, "averaged") == {"step": 300, "valid_bleu": 31.0, "valid_loss": 1.8}
    assert checkpoint_metrics(tmp_path, "last") == {"step": 300, "valid_bleu": 29.5, "valid_loss": 1.9}
    assert checkpoint_metrics(tmp_path, "step-200") == {"step": 200, "valid_bleu": 30.0, "valid_loss": 2.0}
    assert checkpoint_metrics(tmp_path / "nowhere", "best") == {}
