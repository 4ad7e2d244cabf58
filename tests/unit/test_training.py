"""Training: exact resume, schedules, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from s2s.config import TrainConfig
from s2s.training.loop import train
from s2s.training.schedules import LRSchedule


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


def test_interrupted_and_resumed_run_ends_with_identical_weights(tiny_recipe, tmp_path):
    """8 updates in one go == 4 updates, stop, resume for 4 more: dropout RNG, data order,
    optimizer moments and LR schedule all continue exactly."""
    full = tiny_recipe(train={"max_steps": 8, "valid_every": 4})
    train(full, tmp_path / "full")
    half = tiny_recipe(train={"max_steps": 4, "valid_every": 4})
    train(half, tmp_path / "split")
    position = train(full, tmp_path / "split", resume=True)
    assert position.step == 8
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_resume_crosses_an_epoch_boundary(tiny_recipe, tmp_path):
    """The 200-pair slice (about 6,600 target tokens) makes 5 batches of 1,500: 12 updates span epochs."""
    full = tiny_recipe(train={"max_steps": 12, "valid_every": 6, "valid_bleu": False, "batch_tokens": 1500})
    end = train(full, tmp_path / "full")
    assert end.epoch >= 1
    train(tiny_recipe(train={"max_steps": 6, "valid_every": 6, "valid_bleu": False, "batch_tokens": 1500}),
          tmp_path / "split")
    train(full, tmp_path / "split", resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_run_directory_contents(tiny_recipe, tmp_path):
    train(tiny_recipe(), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "train.log", "checkpoints/last.pt", "checkpoints/best.pt",
                 "vocab/joint.model"):
        assert (run / name).is_file(), name
    import json

    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train_loss" in r and r["tokens_per_s"] > 0 for r in lines)
    assert [r["step"] for r in lines if "valid_loss" in r] == [4, 8]
    assert all("valid_bleu" in r for r in lines if "valid_loss" in r)
    assert not list((run / "checkpoints").glob(".*"))  # no temporary files left by atomic writes


def test_training_lowers_the_loss(tiny_recipe, tmp_path):
    train(tiny_recipe(train={"max_steps": 30, "valid_every": 15, "valid_bleu": False, "lr": 0.01}), tmp_path / "r")
    import json

    valid = [json.loads(x)["valid_loss"] for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
             if "valid_loss" in x]
    assert valid[-1] < valid[0]


def _schedule(**train):
    param = torch.nn.Parameter(torch.zeros(1))
    return LRSchedule(torch.optim.SGD([param], lr=1.0), TrainConfig(**train))


def test_inverse_sqrt_schedule_matches_its_formula():
    s = _schedule(schedule="inverse_sqrt", lr=2.0, warmup_steps=100)
    assert s.rate(1) == pytest.approx(2.0 / 100)
    assert s.rate(50) == pytest.approx(1.0)
    assert s.rate(100) == pytest.approx(2.0)
    assert s.rate(400) == pytest.approx(2.0 * math.sqrt(100 / 400))


def test_constant_schedule_with_warmup():
    s = _schedule(schedule="constant", lr=0.5, warmup_steps=10)
    assert [s.rate(k) for k in (1, 5, 10, 1000)] == pytest.approx([0.05, 0.25, 0.5, 0.5])


def test_plateau_schedule_decays_after_patience_and_respects_floor():
    s = _schedule(schedule="plateau", lr=1.0, plateau_factor=0.5, plateau_patience=2, min_lr=0.2)
    s.after_validation(True)
    s.after_validation(False)
    assert s.rate(10) == pytest.approx(1.0)
    s.after_validation(False)
    assert s.rate(10) == pytest.approx(0.5)
    for _ in range(10):
        s.after_validation(False)
    assert s.rate(10) == pytest.approx(0.2)
    restored = _schedule(schedule="plateau", lr=1.0, plateau_factor=0.5, plateau_patience=2, min_lr=0.2)
    restored.load_state_dict(s.state_dict())
    assert restored.rate(10) == s.rate(10)


def test_inverse_sqrt_without_warmup_is_rejected():
    with pytest.raises(ValueError, match="warmup_steps"):
        _schedule(schedule="inverse_sqrt", warmup_steps=0)


def test_atomic_save_leaves_old_file_when_writing_fails(tmp_path, monkeypatch):
    from s2s.training import checkpoint

    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"x": 1}, path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        checkpoint.save_atomic({"x": 2}, path)
    assert checkpoint.load(path) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_noam_schedule_is_vaswanis_equation_3():
    param = torch.nn.Parameter(torch.zeros(1))
    s = LRSchedule(torch.optim.SGD([param], lr=1.0), TrainConfig(schedule="noam", lr=2.0, warmup_steps=400), 256)
    for step in (1, 100, 400, 1600):
        assert s.rate(step) == pytest.approx(2.0 * 256 ** -0.5 * min(step ** -0.5, step * 400 ** -1.5))
    assert s.rate(400) == pytest.approx(max(s.rate(k) for k in range(1, 2000)))  # peak at the warmup's end
    with pytest.raises(ValueError, match="model size"):
        LRSchedule(torch.optim.SGD([param], lr=1.0), TrainConfig(schedule="noam", warmup_steps=10))


def test_update_freq_accumulates_like_one_batch_holding_both(tiny_recipe, tmp_path):
    """Two batches accumulated into one update move the weights as their union in one batch does
    (no dropout, plain SGD: the update is the gradient of the same token-averaged loss)."""
    from s2s.training.loop import Trainer
    from s2s.training.prepare import prepare_data

    recipe = tiny_recipe(model={"embeddings": {"dim": 16, "dropout": 0.0},
                                "encoder": {"type": "lstm", "hidden": 8, "layers": 2, "dropout": 0.0},
                                "decoder": {"type": "lstm", "hidden": 16, "layers": 2, "dropout": 0.0}},
                         train={"optimizer": "sgd", "lr": 0.5, "clip_norm": 0.0, "label_smoothing": 0.1})
    data = prepare_data(recipe, tmp_path)
    first, second = data.train.epoch(0)[:2]
    trainers = []
    for name in ("apart", "together"):
        torch.manual_seed(0)
        (tmp_path / name).mkdir()
        trainers.append(Trainer(recipe, tmp_path / name, data, torch.device("cpu")))
    apart, together = trainers
    before = [p.detach().clone() for p in apart.model.parameters()]
    loss_apart = apart.train_step([data.train.collate(first), data.train.collate(second)])
    loss_together = together.train_step([data.train.collate(list(first) + list(second))])
    torch.testing.assert_close(loss_apart, loss_together, rtol=1e-5, atol=1e-4)
    for (name, a), b in zip(apart.model.named_parameters(), together.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(apart.model.parameters(), before))  # the update moved them


def test_update_freq_consumes_batches_in_groups_and_resumes_exactly(tiny_recipe, tmp_path):
    full = tiny_recipe(train={"max_steps": 6, "valid_every": 3, "valid_bleu": False, "update_freq": 2})
    end = train(full, tmp_path / "full")
    assert end.step == 6
    train(tiny_recipe(train={"max_steps": 3, "valid_every": 3, "valid_bleu": False, "update_freq": 2}),
          tmp_path / "split")
    middle = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["position"]
    assert (middle["epoch"], middle["batch"]) == (0, 6)
    train(full, tmp_path / "split", resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert all(torch.equal(a[n], b[n]) for n in a)
