"""Training: exact resume, schedules, checkpoints; the validator, the best metric and the reporter."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from s2s.config import TrainConfig
from s2s.errors import ConfigError
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
    no_bleu = {"valid_bleu": False, "best_metric": "loss", "batch_tokens": 1500}
    full = tiny_recipe(train={"max_steps": 12, "valid_every": 6, **no_bleu})
    end = train(full, tmp_path / "full")
    assert end.epoch >= 1
    train(tiny_recipe(train={"max_steps": 6, "valid_every": 6, **no_bleu}), tmp_path / "split")
    train(full, tmp_path / "split", resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_run_directory_contents(tiny_recipe, tmp_path):
    train(tiny_recipe(), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.jsonl", "train.log", "checkpoints/last.pt", "checkpoints/best.pt",
                 "vocab/joint.model"):
        assert (run / name).is_file(), name
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("train_loss" in r and r["tokens_per_s"] > 0 for r in lines)
    assert [r["step"] for r in lines if "valid_loss" in r] == [4, 8]
    assert all("valid_bleu" in r for r in lines if "valid_loss" in r)
    assert not list((run / "checkpoints").glob(".*"))  # no temporary files left by atomic writes


def test_training_lowers_the_loss(tiny_recipe, tmp_path):
    train(tiny_recipe(train={"max_steps": 30, "valid_every": 15, "valid_bleu": False, "best_metric": "loss",
                             "lr": 0.01}), tmp_path / "r")
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
    from s2s.training.loop import build_trainer
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
        trainers.append(build_trainer(recipe, tmp_path / name, data, torch.device("cpu")))
    apart, together = trainers
    before = [p.detach().clone() for p in apart.model.parameters()]
    loss_apart = apart.train_step([data.train.collate(first), data.train.collate(second)])
    loss_together = together.train_step([data.train.collate(list(first) + list(second))])
    torch.testing.assert_close(loss_apart, loss_together, rtol=1e-5, atol=1e-4)
    for (name, a), b in zip(apart.model.named_parameters(), together.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(apart.model.parameters(), before))  # the update moved them


def test_update_freq_consumes_batches_in_groups_and_resumes_exactly(tiny_recipe, tmp_path):
    no_bleu = {"valid_bleu": False, "best_metric": "loss", "update_freq": 2}
    full = tiny_recipe(train={"max_steps": 6, "valid_every": 3, **no_bleu})
    end = train(full, tmp_path / "full")
    assert end.step == 6
    train(tiny_recipe(train={"max_steps": 3, "valid_every": 3, **no_bleu}), tmp_path / "split")
    middle = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["position"]
    assert (middle["epoch"], middle["batch"]) == (0, 6)
    train(full, tmp_path / "split", resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert all(torch.equal(a[n], b[n]) for n in a)


# ---------------------------------------------------------------------------- validator, best metric, reporter
def _parts(recipe, data):
    """Model, optimizer and schedule of ``recipe``, seeded: what build_trainer makes, without a run dir."""
    from s2s.models.build import build_model
    from s2s.training.loop import make_optimizer

    torch.manual_seed(0)
    model = build_model(recipe.model, len(data.vocabs.src), len(data.vocabs.tgt))
    optimizer = make_optimizer(model, recipe.train)
    return model, optimizer, LRSchedule(optimizer, recipe.train, model_dim=recipe.model.decoder.hidden)


class ScriptedValidator:
    """Returns the next row of ``rows`` at each call, whatever the model."""

    def __init__(self, higher_is_better: dict[str, bool], rows: list[dict[str, float]]):
        self.higher_is_better, self.rows, self.calls = higher_is_better, list(rows), 0

    def __call__(self, model, world=None):
        self.calls += 1
        return self.rows.pop(0)


class RecordingReporter:
    """Keeps every call (name, first argument) and writes nothing."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.calls.append((name, args[0] if args else None))


def test_validator_returns_named_metrics_and_their_directions(tiny_recipe, tmp_path):
    """A model whose logits are all zero predicts uniformly: valid_loss = ln V, valid_ppl = V."""
    from s2s.training.prepare import prepare_data
    from s2s.training.validation import build_validator, metric_directions

    recipe = tiny_recipe()
    data = prepare_data(recipe, tmp_path)
    model, _, _ = _parts(recipe, data)
    with torch.no_grad():
        model.output.matrix.zero_()
        model.output.bias.zero_()
    validator = build_validator(recipe, data, torch.device("cpu"))
    metrics = validator(model)
    assert list(metrics) == ["valid_loss", "valid_ppl", "valid_bleu"]
    assert validator.higher_is_better == {"valid_loss": False, "valid_ppl": False, "valid_bleu": True}
    assert validator.higher_is_better == metric_directions(recipe.train)  # known before any data
    vocab = len(data.vocabs.tgt)
    assert metrics["valid_loss"] == pytest.approx(math.log(vocab), rel=1e-5)
    assert metrics["valid_ppl"] == pytest.approx(vocab, rel=1e-4)
    assert 0.0 <= metrics["valid_bleu"] <= 100.0
    no_bleu = tiny_recipe(train={"valid_bleu": False, "best_metric": "loss"})
    assert build_validator(no_bleu, data, torch.device("cpu"))(model) == pytest.approx(
        {"valid_loss": metrics["valid_loss"], "valid_ppl": metrics["valid_ppl"]})


def test_best_metric_names_any_metric_or_an_old_alias():
    from s2s.training.validation import resolve_best_metric

    directions = {"valid_loss": False, "valid_ppl": False, "valid_bleu": True}
    assert resolve_best_metric("loss", directions).name == "valid_loss"
    assert resolve_best_metric("bleu", directions).higher_is_better
    ppl = resolve_best_metric("valid_ppl", directions)
    assert (ppl.name, ppl.higher_is_better, ppl.signed({"valid_ppl": 12.5})) == ("valid_ppl", False, -12.5)
    with pytest.raises(ConfigError, match=r"train\.best_metric = 'bleu'.*valid_bleu is false.*valid_loss, valid_ppl"):
        resolve_best_metric("bleu", {"valid_loss": False, "valid_ppl": False})


@pytest.mark.parametrize("metric", ["bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum"])
def test_valid_metric_names_the_decoded_metric_before_any_data(metric):
    """valid_<metric> is known from the config alone, higher-is-better, and the metric's own name
    is its alias for best_metric."""
    from s2s.training.validation import check_best_metric, metric_directions

    config = TrainConfig(valid_metric=metric, best_metric=metric)
    assert metric_directions(config) == {"valid_loss": False, "valid_ppl": False, f"valid_{metric}": True}
    best = check_best_metric(config)
    assert (best.name, best.higher_is_better) == (f"valid_{metric}", True)
    assert check_best_metric(dataclasses.replace(config, best_metric=f"valid_{metric}")) == best


def test_run_validated_by_rouge_l_writes_it_and_picks_best_and_stops_by_it(tiny_recipe, tmp_path):
    """valid_rougeL replaces valid_bleu in metrics.jsonl; best.pt is the validation with the
    highest valid_rougeL and patience counts validations without a higher one."""
    recipe = tiny_recipe(train={"valid_metric": "rougeL", "best_metric": "rougeL", "max_steps": 12, "valid_every": 2,
                                "patience": 2})
    end = train(recipe, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if "valid_loss" in r]
    assert valid and all("valid_rougeL" in r and "valid_bleu" not in r for r in valid)
    assert all(0.0 <= r["valid_rougeL"] <= 100.0 for r in valid)
    best, bad, stop_step = float("-inf"), 0, None  # the rule the loop must follow, replayed on the record
    for r in valid:
        assert r["best"] == (r["valid_rougeL"] > best), r
        best, bad = (r["valid_rougeL"], 0) if r["best"] else (best, bad + 1)
        if bad >= 2 and stop_step is None:
            stop_step = r["step"]
    assert end.best == best
    assert (end.stopped, end.step) == (("early_stopping", stop_step) if stop_step else ("max_steps", 12))
    best_step = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)["position"]["step"]
    assert best_step == next(r["step"] for r in valid if r["valid_rougeL"] == best)


@pytest.mark.parametrize("name,higher,best_step", [("score", True, 4), ("error", False, 8)])
def test_best_checkpoint_is_the_validation_where_the_named_metric_was_best(tiny_recipe, tmp_path, name, higher,
                                                                            best_step):
    """The scripted metric goes 1, 3, 2, 0 at steps 2, 4, 6, 8: best.pt is the maximum's step
    when higher is better, the minimum's when lower is."""
    from s2s.training.loop import Trainer, TrainSettings
    from s2s.training.prepare import prepare_data
    from s2s.training.report import RunReporter

    recipe = tiny_recipe()
    data = prepare_data(recipe, tmp_path)
    rows = [{name: value} for value in (1.0, 3.0, 2.0, 0.0)]
    run = tmp_path / "run"
    run.mkdir()
    settings = TrainSettings(max_steps=8, valid_every=2, log_every=2, best_metric=name)
    trainer = Trainer(*_parts(recipe, data), data.train, ScriptedValidator({name: higher}, rows), RunReporter(run, False),
                      settings, torch.device("cpu"))
    trainer.run()
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["position"]
    assert best["step"] == best_step
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("best")] == ([2, 4] if higher else [2, 8])


@pytest.mark.parametrize("train_section,named", [
    ({"best_metric": "rouge"}, "'rouge'"),
    ({"best_metric": "bleu", "valid_bleu": False}, "valid_bleu is false"),
    ({"best_metric": "rougeL"}, "'valid_rougeL' (train.valid_metric = 'bleu'; set it to 'rougeL')"),
    ({"best_metric": "bleu", "valid_metric": "rougeL"},
     "'valid_bleu' (train.valid_metric = 'rougeL'; set it to 'bleu')"),
    ({"best_metric": "valid_chrf", "valid_metric": "rougeLsum", "valid_bleu": False}, "valid_bleu is false"),
])
def test_unknown_best_metric_fails_before_the_run_directory_gets_a_file(tiny_recipe, tmp_path, train_section, named):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"train\.best_metric") as error:
        train(tiny_recipe(train=train_section), run)
    assert named in str(error.value) and "valid_loss, valid_ppl" in str(error.value)
    assert not run.exists()


def test_trainer_writes_no_file_and_hands_everything_to_the_reporter(tiny_recipe, tmp_path, monkeypatch):
    """Every open, torch.save and os.open during the run fails the test: records, checkpoint
    states and step weights reach the reporter, in order."""
    import builtins
    import io
    import os

    from s2s.training.loop import Trainer, TrainSettings
    from s2s.training.prepare import prepare_data

    recipe = tiny_recipe()
    data = prepare_data(recipe, tmp_path)
    reporter = RecordingReporter()
    validator = ScriptedValidator({"valid_loss": False}, [{"valid_loss": v} for v in (3.0, 2.0, 2.5)])
    settings = TrainSettings(max_steps=6, valid_every=2, log_every=3, average_last=2)
    trainer = Trainer(*_parts(recipe, data), data.train, validator, reporter, settings, torch.device("cpu"))

    def no_io(*args, **kwargs):
        raise AssertionError(f"the trainer touched a file: {args[:1]}")

    for owner, name in ((builtins, "open"), (io, "open"), (os, "open"), (torch, "save")):
        monkeypatch.setattr(owner, name, no_io)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    trainer.run()
    monkeypatch.undo()
    assert not list(work.iterdir())
    names = [name for name, _ in reporter.calls]
    assert names.count("validation") == 3 and names.count("train_window") == 2 and names.count("advance") == 6
    saved = [arg for name, arg in reporter.calls if name == "save"]
    assert saved == ["best", "last", "best", "last", "last", "last"]  # best.pt before last.pt; the final last.pt
    assert [arg for name, arg in reporter.calls if name == "keep_step_weights"] == [2, 4, 6]
    assert names[-1] == "average_steps"  # None from the stub: nothing to score
    assert [r["best"] for name, r in reporter.calls if name == "validation"] == [True, True, False]


def test_model_output_loss_is_the_projection_then_cross_entropy(tiny_model_factory):
    from s2s.training.losses import sequence_loss

    model = tiny_model_factory()
    hidden = torch.randn(7, model.output.matrix.size(1), generator=torch.Generator().manual_seed(0))
    targets = torch.randint(1, model.output.matrix.size(0), (7,), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.output_loss(hidden, targets, 0.1),
                               sequence_loss(model.output(hidden), targets, 0.1), rtol=1e-5, atol=1e-5)


def test_validation_shares_of_two_ranks_make_the_whole(tiny_recipe, tmp_path):
    """Each rank's share of the validation loss is every other batch; gathered, the shares give
    the loss of one process; decoded shares interleave back into the input order."""
    from s2s.training.distributed import World
    from s2s.training.prepare import prepare_data
    from s2s.training.validation import LossScorer, interleave

    class Share(World):  # a rank of two whose gather hands back its own share, recorded
        def gather(self, value):
            shares.append(value)
            return [value]

    recipe = tiny_recipe()
    data = prepare_data(recipe, tmp_path)
    model, _, _ = _parts(recipe, data)
    scorer = LossScorer(data.train, torch.device("cpu"))  # 200 pairs: 4 batches of 64 to share
    whole = scorer(model)
    shares: list = []
    for rank in (0, 1):
        scorer(model, Share(rank=rank, size=2))
    (total_0, tokens_0), (total_1, tokens_1) = shares
    assert tokens_0 > 0 and tokens_1 > 0 and tokens_0 + tokens_1 == data.train.num_tokens
    assert (total_0 + total_1) / (tokens_0 + tokens_1) == pytest.approx(whole["valid_loss"], rel=1e-6)
    items = list(range(11))
    assert interleave([items[r::3] for r in range(3)]) == items and interleave([items]) == items


def test_a_resumed_reporter_starts_a_new_line_after_one_a_kill_cut_short(tmp_path):
    from s2s.runs import read_metrics
    from s2s.training.report import RunReporter

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2, "tra')
    reporter = RunReporter(tmp_path, progress=False)
    reporter.write({"step": 2, "train_loss": 1.5})
    reporter.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 1, "train_loss": 2.0}, {"step": 2, "train_loss": 1.5}]
