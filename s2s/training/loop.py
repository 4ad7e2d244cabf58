"""The training loop: teacher forcing, validation, checkpoints, exact resume.

A run directory holds ``config.yaml`` (the resolved recipe), ``vocab/`` (sentencepiece),
``checkpoints/{last,best}.pt``, ``metrics.jsonl`` and ``train.log``. ``last.pt`` carries the
model, optimizer, schedule, RNG states and data position, so ``--resume`` continues the exact
sequence of updates an uninterrupted run would have made.

The :class:`Trainer` receives its parts built: model, optimizer, schedule, training batches, a
validator (:mod:`s2s.training.validation`: named metrics), a reporter (:mod:`s2s.training.report`:
every file the run writes) and :class:`TrainSettings`; it does no file I/O of its own.
:func:`build_trainer` and :func:`train` wire them from a recipe.

The hot path avoids host synchronisation: losses accumulate as device tensors and are read
back only when a metrics line is written; one flag per update (is its loss and gradient norm
finite?) is the only value read back at every update.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from s2s.config import Recipe, SamplingConfig, TrainConfig, save_recipe
from s2s.cpu.allocator import keep_freed_memory
from s2s.data.batching import Batch, Batches, updates
from s2s.models.build import build_model, count_parameters
from s2s.models.contract import Seq2Seq
from s2s.training import checkpoint, distributed, faults
from s2s.training.device import amp_on, to_device
from s2s.training.distributed import QuietReporter, TrainingLoss, World, seed_micro_batch
from s2s.training.prepare import PreparedData
from s2s.training.report import RunReporter
from s2s.training.sampling import check_sampling, gold_probability, token_mixing
from s2s.training.schedules import LRSchedule
from s2s.training.validation import Validator, build_validator, check_best_metric, resolve_best_metric


@dataclasses.dataclass
class Position:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already trained on
    elapsed: float = 0.0  # training wall time in seconds, summed over resumes
    best: float | None = None  # the best metric, negated when lower is better (BestMetric.signed)
    bad_validations: int = 0
    stopped: str = ""
    bad_updates: int = 0  # updates skipped in a row for a non-finite loss or gradient norm (faults.py)
    skipped_updates: int = 0  # all updates skipped so far


@dataclass(frozen=True)
class TrainSettings:
    """What the loop reads of ``train``: step counts, limits, loss options (see TrainConfig's help)."""

    update_freq: int = 1
    clip_norm: float = 0.0
    label_smoothing: float = 0.0
    log_every: int = 50
    valid_every: int = 500
    max_steps: int = 0
    max_epochs: int = 0
    max_minutes: float = 0.0
    patience: int = 0
    average_last: int = 0
    best_metric: str = "valid_loss"  # a name the validator returns, or an alias ("loss", "bleu")
    progress: bool = False
    amp: Literal["none", "bf16", "fp16"] = "none"  # as used on the device: "none" off GPUs
    sampling: SamplingConfig = SamplingConfig()
    coverage_loss: float = 0.0
    max_bad_updates: int = 10

    @classmethod
    def from_config(cls, config: TrainConfig, device: torch.device) -> TrainSettings:
        return cls(config.update_freq, config.clip_norm, config.label_smoothing, config.log_every,
                   config.valid_every, config.max_steps, config.max_epochs, config.max_minutes, config.patience,
                   config.average_last, config.best_metric, config.progress, amp_on(config.amp, device),
                   config.sampling, config.coverage_loss, config.max_bad_updates)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                               foreach=True)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    # fused kernels: one pass over all parameters per update on CPU and GPU alike
    return cls(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay, fused=True)


class Trainer:
    """Updates ``model`` on ``batches`` until a limit of ``settings``; every ``valid_every``
    updates scores it with ``validator`` and hands records and checkpoint states to ``reporter``.

    Under torchrun, ``world`` places this process among the others (:mod:`s2s.training.distributed`):
    ``model`` stays unwrapped (checkpoints, validation) and its loss runs inside DDP."""

    def __init__(self, model: Seq2Seq, optimizer: torch.optim.Optimizer, schedule: LRSchedule,
                 batches: Batches, validator: Validator, reporter: RunReporter, settings: TrainSettings,
                 device: torch.device, world: World = World()):
        self.model, self.optimizer, self.schedule, self.batches = model, optimizer, schedule, batches
        self.validator, self.reporter, self.settings, self.device = validator, reporter, settings, device
        self.world = world
        loss = TrainingLoss(model, settings.label_smoothing, settings.coverage_loss > 0, settings.amp)
        self.training_loss = world.wrap(loss, device)
        self.best_metric = resolve_best_metric(settings.best_metric, validator.higher_is_better)
        self.position = Position()
        self.scaler = torch.amp.GradScaler("cuda", enabled=settings.amp == "fp16")

    # ------------------------------------------------------------------ one update
    @faults.split_on_out_of_memory
    def train_step(self, batches: list[Batch], total: int = 0, idle: bool = False) -> torch.Tensor:
        """One update on the gradients of ``batches`` (``update_freq`` of them), normalised by
        their total target tokens; returns the summed smoothed loss (device tensor), without the
        coverage loss that the update also follows when ``coverage_loss`` > 0. An update whose loss
        or gradient norm is not finite is skipped (:mod:`s2s.training.faults`) and returns 0.

        Under data parallelism ``batches`` are this rank's share of the update and ``total`` the
        target tokens of every rank's share. An ``idle`` rank (no share: the epoch's last update
        has fewer batches than ranks) runs a borrowed batch with weight 0, since DDP's all-reduce
        needs every rank."""
        s = self.settings
        self.training_loss.train()
        total = total or sum(b.num_tokens for b in batches)
        weight = 0 if idle else self.world.size  # DDP averages the ranks' gradients: undo it
        loss = torch.zeros((), device=self.device)
        mixing = token_mixing(s.sampling, self.position.step)  # None: teacher forcing
        for i, batch in enumerate(batches):
            t = to_device(batch, self.device)
            seed_micro_batch(self.batches.seed, self.position.epoch, batch)
            with (faults.naming_the_batch(batch, self.position.step + 1, self.device),
                  self.world.accumulate(self.training_loss, last=i == len(batches) - 1)):
                loss_sum, coverage_sum = self.training_loss(t["src"], t["src_lengths"], t["tgt_in"], t["tgt_out"],
                                                            mixing)
                objective = loss_sum if coverage_sum is None else loss_sum + s.coverage_loss * coverage_sum
                self.scaler.scale(objective * weight / total).backward()
            if not idle:
                loss += loss_sum.detach()
        self.scaler.unscale_(self.optimizer)  # a no-op unless fp16: the norm is the true gradients'
        norm = faults.gradient_norm(self.model.parameters(), s.clip_norm)
        if faults.update_is_finite(loss, norm, check_norm=s.amp != "fp16", reduce=self.world.sum):
            self.scaler.step(self.optimizer)
            self.position.bad_updates = 0
        else:  # drop the gradients, count the update all the same: one clock for schedule and resume
            faults.skip_update(self.position, loss, norm, s.max_bad_updates, self.reporter.log)
            loss.zero_()
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.position.step += 1
        self.schedule.set_lr(self.position.step + 1)
        return loss

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict:
        """Score the model, track the best metric, checkpoint; returns the metrics.jsonl record."""
        p = self.position
        # every rank scores its share; the shares are gathered, so every rank decides alike
        metrics = self.validator(self.model, self.world)
        value = self.best_metric.signed(metrics)
        improved = p.best is None or value > p.best
        if improved:
            p.best, p.bad_validations = value, 0
        else:
            p.bad_validations += 1
        self.schedule.after_validation(improved)
        record = {"step": p.step, "epoch": p.epoch, **metrics, "best": improved}
        self.reporter.validation(record)
        state = self.state()
        # last.pt goes last: a run killed before it resumes from the previous last.pt and runs this
        # validation again, so best.pt and the step weights it writes are never lost
        if improved:
            self.reporter.save("best", state)
        if self.settings.average_last:
            self.reporter.keep_step_weights(p.step, self.model.state_dict(), self.settings.average_last)
        self.reporter.save("last", state)
        return record

    def average(self) -> None:
        """Score the average of the kept step weights; the run's own weights stay as trained."""
        averaged = self.reporter.average_steps(self.settings.average_last)
        if averaged is None:
            return
        trained = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(averaged["model"])
        try:
            metrics = self.validator(self.model)
        finally:
            self.model.load_state_dict(trained)
        self.reporter.averaged({"step": self.position.step, "averaged": averaged["averaged"], **metrics})

    # ------------------------------------------------------------------ checkpoint state
    def state(self) -> dict:
        """Everything an exact resume needs, in types ``torch.load(weights_only=True)`` accepts."""
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
            "position": dataclasses.asdict(self.position), "rng": checkpoint.rng_state(),
            "world": {"size": self.world.size, "batches_per_update": self.batches_per_update},
        }

    @property
    def batches_per_update(self) -> int:
        """Batches of one update over all processes: ``update_freq`` x world size."""
        return self.settings.update_freq * self.world.size

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state` (a loaded ``last.pt``), RNGs included."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.position = Position(**state["position"])
        self.position.stopped = ""
        self.schedule.set_lr(self.position.step + 1)
        checkpoint.set_rng_state(state["rng"])
        before = state.get("world", {}).get("batches_per_update", self.batches_per_update)
        if before != self.batches_per_update:
            self.reporter.log(f"warning: the checkpoint made updates of {before} batches, this run makes "
                              f"{self.batches_per_update} (train.update_freq x world size {self.world.size}); "
                              f"set train.update_freq to keep the global batch")

    # ------------------------------------------------------------------ the loop
    def _should_stop(self) -> str:
        s, p = self.settings, self.position
        if s.max_steps and p.step >= s.max_steps:
            return "max_steps"
        if s.max_epochs and p.epoch >= s.max_epochs:
            return "max_epochs"
        if s.max_minutes and p.elapsed >= 60.0 * s.max_minutes:
            return "max_minutes"
        if s.patience and p.bad_validations >= s.patience:
            return "early_stopping"
        return ""

    def run(self) -> Position:
        s, p = self.settings, self.position
        self.reporter.start(p.step, s.max_steps or None)
        window_loss, window_tokens = torch.zeros((), device=self.device), 0
        base, started = p.elapsed, time.monotonic()
        window_start, last_validated = started, p.step
        while not (stop := self._should_stop()):
            # every rank's batches of each update; an epoch may be a stream of unknown length
            for update in updates(self.batches.epoch(p.epoch), p.batch, self.batches_per_update):
                if stop := self._should_stop():
                    break
                total = sum(self.batches.count_tokens(b) for b in update)
                own = self.world.shard(update)
                group = [self.batches.collate(b) for b in own or update[:1]]
                window_loss += self.train_step(group, total, idle=not own)
                window_tokens += total
                p.batch += len(update)
                now = time.monotonic()
                # wall time, validation included; rank 0's, so that max_minutes stops every rank alike
                p.elapsed = self.world.from_main(base + now - started)
                self.reporter.advance()
                if p.step % s.log_every == 0:
                    loss_sum = float(self.world.sum(window_loss))
                    record = self._window_record(loss_sum, window_tokens, now - window_start)
                    self.reporter.train_window(record, self._postfix(record))
                    window_loss.zero_()
                    window_tokens, window_start = 0, now
                if p.step % s.valid_every == 0:
                    self.validate()
                    last_validated, window_start = p.step, time.monotonic()
            else:  # the epoch ran out (not stopped)
                p.epoch, p.batch = p.epoch + 1, 0
        self.reporter.finish()
        if p.step > last_validated:
            self.validate()
        p.stopped = stop
        self.reporter.save("last", self.state())
        self.reporter.log(f"stopped ({stop}) at step {p.step}, epoch {p.epoch}, after {p.elapsed / 60:.1f} min")
        if s.average_last:
            self.average()
        return p

    def _window_record(self, loss_sum: float, tokens: int, seconds: float) -> dict:
        return {"step": self.position.step, "epoch": self.position.epoch,
                "lr": self.optimizer.param_groups[0]["lr"], "train_loss": loss_sum / max(tokens, 1),
                "tokens_per_s": tokens / max(seconds, 1e-9), "elapsed_s": round(self.position.elapsed, 1),
                # the probability of feeding gold tokens in the window's last update
                "teacher_forcing_ratio": gold_probability(self.settings.sampling, self.position.step - 1)}

    def _postfix(self, record: dict) -> dict:
        """Loss and speed, plus the time left when a time budget (not a step count) ends the run."""
        s = self.settings
        postfix = {"loss": f"{record['train_loss']:.3f}", "tok/s": f"{record['tokens_per_s']:.0f}"}
        if s.sampling.enabled:
            postfix["tf"] = f"{record['teacher_forcing_ratio']:.3f}"
        if s.max_minutes and not s.max_steps:
            left = max(0.0, 60 * s.max_minutes - self.position.elapsed)
            postfix["eta"] = f"{int(left // 60)}:{int(left % 60):02d}"
        return postfix


# --------------------------------------------------------------------------- wiring a recipe
def build_trainer(recipe: Recipe, run_dir: Path, data: PreparedData, device: torch.device,
                  world: World = World()) -> Trainer:
    """The parts of ``recipe`` built and handed to a :class:`Trainer` that reports into ``run_dir``
    (rank 0 only: the other ranks of ``world`` report nowhere)."""
    vocabs = data.vocabs
    model = build_model(recipe.model, len(vocabs.src), len(vocabs.tgt), vocabs.source_to_target()).to(device)
    optimizer = make_optimizer(model, recipe.train)
    schedule = LRSchedule(optimizer, recipe.train, model_dim=recipe.model.decoder.hidden)
    reporter = RunReporter(run_dir, recipe.train.progress, recipe.train.keep_last) if world.main else QuietReporter()
    reporter.log(f"model: {count_parameters(model)} parameters on {device}")
    if world.distributed:
        reporter.log(distributed.describe(world, recipe.train.update_freq, recipe.train.batch_tokens))
    return Trainer(model, optimizer, schedule, data.train, build_validator(recipe, data, device), reporter,
                   TrainSettings.from_config(recipe.train, device), device, world)


def setup_logging(run_dir: Path) -> None:
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("s2s")
    root.handlers = [h for h in root.handlers if not isinstance(h, logging.FileHandler)] + [handler]
    root.setLevel(logging.INFO)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(recipe: Recipe, run_dir: str | Path, resume: bool = False) -> Position:
    """Train ``recipe`` into ``run_dir``; with ``resume``, continue from ``last.pt`` exactly.
    Under torchrun every process calls this; rank 0 alone writes ``run_dir``."""
    check_sampling(recipe)
    check_best_metric(recipe.train)  # both before the run directory gets any file
    run_dir = Path(run_dir)
    world, device = distributed.start(recipe.train.device)
    try:
        if world.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            setup_logging(run_dir)
            save_recipe(recipe, run_dir / "config.yaml")
        return _train(recipe, run_dir, resume, world, device)
    finally:
        distributed.stop(world)


def _train(recipe: Recipe, run_dir: Path, resume: bool, world: World, device: torch.device) -> Position:
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    seed_everything(recipe.seed)
    if device.type == "cpu":
        keep_freed_memory()
    trainer = build_trainer(recipe, run_dir, distributed.prepare_shared(recipe, run_dir, world), device, world)
    try:
        if resume:
            # last.pt, or the newest last-N.pt that reads when it does not
            state, last = checkpoint.load_resume_state(run_dir / "checkpoints", trainer.reporter.log)
            trainer.restore(state)
            p = trainer.position
            trainer.reporter.log(f"resumed from {last} at step {p.step} (epoch {p.epoch}, batch {p.batch})")
        return trainer.run()
    finally:
        trainer.reporter.close()
