"""The training loop: teacher forcing, validation, checkpoints, exact resume.

A run directory holds ``config.yaml`` (the resolved recipe), ``vocab/`` (sentencepiece),
``checkpoints/{last,best}.pt``, ``metrics.jsonl`` and ``train.log``. ``last.pt`` carries the
model, optimizer, schedule, RNG states and data position, so ``--resume`` continues the exact
sequence of updates an uninterrupted run would have made.

The hot path avoids host synchronisation: losses accumulate as device tensors and are read
back only when a metrics line is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from s2s.cpu.allocator import keep_freed_memory
from s2s.config import Recipe, save_recipe
from s2s.data.batching import Batch
from s2s.data.vocab import PAD
from s2s.decoding.translator import Translator
from s2s.evaluation.metrics import score
from s2s.models.build import build_model, count_parameters
from s2s.training import checkpoint
from s2s.training.averaging import step_checkpoints, write_average
from s2s.training.losses import output_loss, sequence_loss
from s2s.training.prepare import PreparedData, prepare_data
from s2s.training.sampling import check_sampling, gold_probability, token_mixing
from s2s.training.schedules import LRSchedule

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Position:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # batches of ``epoch`` already trained on
    elapsed: float = 0.0  # training wall time in seconds, summed over resumes
    best: float | None = None
    bad_validations: int = 0
    stopped: str = ""


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def make_optimizer(model: torch.nn.Module, recipe: Recipe, device: torch.device) -> torch.optim.Optimizer:
    c = recipe.train
    params = [p for p in model.parameters() if p.requires_grad]
    if c.optimizer == "sgd":
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay, foreach=True)
    cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
    # fused kernels: one pass over all parameters per update on CPU and GPU alike
    return cls(params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay, fused=True)


def to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    arrays = {"src": batch.src, "src_lengths": batch.src_lengths, "tgt_in": batch.tgt_in, "tgt_out": batch.tgt_out}
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in arrays.items()}


class Trainer:
    def __init__(self, recipe: Recipe, run_dir: Path, data: PreparedData, device: torch.device):
        check_sampling(recipe)
        self.recipe, self.run_dir, self.data, self.device = recipe, run_dir, data, device
        self.model = build_model(recipe.model, len(data.vocabs.src), len(data.vocabs.tgt)).to(device)
        self.optimizer = make_optimizer(self.model, recipe, device)
        self.schedule = LRSchedule(self.optimizer, recipe.train, recipe.model.decoder.hidden)
        self.position = Position()
        amp = recipe.train.amp if device.type == "cuda" else "none"
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        self.metrics = (run_dir / "metrics.jsonl").open("a", encoding="utf-8")
        log.info("model: %d parameters on %s", count_parameters(self.model), device)

    # ------------------------------------------------------------------ one update
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self, batches: list[Batch]) -> torch.Tensor:
        """One update on the gradients of ``batches`` (``update_freq`` of them), normalised by
        their total target tokens; returns the summed smoothed loss (device tensor, no sync)."""
        self.model.train()
        total = sum(b.num_tokens for b in batches)
        loss = torch.zeros((), device=self.device)
        mixing = token_mixing(self.recipe.train.sampling, self.position.step)  # None: teacher forcing
        for batch in batches:
            t = to_device(batch, self.device)
            keep = t["tgt_out"] != PAD  # only real target positions reach the output projection
            with self._autocast():
                hidden = self.model.features(t["src"], t["src_lengths"], t["tgt_in"], mixing)[keep]
            out = self.model.output
            loss_sum = output_loss(hidden, out.matrix, out.bias, t["tgt_out"][keep], self.recipe.train.label_smoothing)
            self.scaler.scale(loss_sum / total).backward()
            loss += loss_sum.detach()
        if self.recipe.train.clip_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.train.clip_norm, foreach=True)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.position.step += 1
        self.schedule.set_lr(self.position.step + 1)
        return loss

    # ------------------------------------------------------------------ validation
    @torch.inference_mode()
    def validation_loss(self) -> float:
        """Per-token cross-entropy (no smoothing) on the validation set."""
        self.model.eval()
        total, tokens = 0.0, 0
        for positions in self.data.valid.sequential(64):
            batch = self.data.valid.collate(positions)
            t = to_device(batch, self.device)
            with self._autocast():
                logits = self.model(t["src"], t["src_lengths"], t["tgt_in"])
            total += float(sequence_loss(logits, t["tgt_out"]))
            tokens += batch.num_tokens
        return total / max(tokens, 1)

    def validate(self) -> dict:
        c = self.recipe.train
        result = {"step": self.position.step, "epoch": self.position.epoch, "valid_loss": self.validation_loss()}
        result["valid_ppl"] = float(np.exp(min(result["valid_loss"], 50.0)))
        if c.valid_bleu:
            result["valid_bleu"] = self._valid_bleu()
        value = result["valid_bleu"] if c.best_metric == "bleu" and c.valid_bleu else -result["valid_loss"]
        improved = self.position.best is None or value > self.position.best
        if improved:
            self.position.best, self.position.bad_validations = value, 0
        else:
            self.position.bad_validations += 1
        self.schedule.after_validation(improved)
        result["best"] = improved
        self.write_metrics(result)
        self.save("last")
        if improved:
            self.save("best")
        if c.average_last:
            self._keep_step_weights(c.average_last)
        return result

    def _keep_step_weights(self, keep: int) -> None:
        """Weights only (no optimizer): ``step-N.pt`` for the last ``keep`` validations."""
        folder = self.run_dir / "checkpoints"
        checkpoint.save_atomic({"model": self.model.state_dict()}, folder / f"step-{self.position.step}.pt")
        for old in step_checkpoints(folder)[:-keep]:
            old.unlink()

    def average(self) -> dict | None:
        """Average the kept step weights into ``averaged.pt`` and score it on validation."""
        paths = step_checkpoints(self.run_dir / "checkpoints")[-self.recipe.train.average_last:]
        if not paths:
            return None
        out = write_average(paths, self.run_dir / "checkpoints" / "averaged.pt")
        trained = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(checkpoint.load(out)["model"])
        try:
            result = {"step": self.position.step, "averaged": [p.name for p in paths],
                      "valid_loss": self.validation_loss()}
            if self.recipe.train.valid_bleu:
                result["valid_bleu"] = self._valid_bleu()
        finally:
            self.model.load_state_dict(trained)
        self.write_metrics(result)
        return result

    def _valid_bleu(self) -> float:
        translator = Translator(self.model, self.data.vocabs, self.recipe.decode, str(self.device))
        hyps = translator.translate(self.data.valid_text.src, beam=self.recipe.train.valid_beam, n_best=1,
                                    batch_size=128)
        return score(hyps, self.data.valid_text.tgt, ["bleu"])["bleu"]

    # ------------------------------------------------------------------ checkpoints
    def save(self, name: str) -> None:
        payload = {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
            "position": dataclasses.asdict(self.position), "rng": checkpoint.rng_state(),
        }
        checkpoint.save_atomic(payload, self.run_dir / "checkpoints" / f"{name}.pt")

    def restore(self, path: Path) -> None:
        state = checkpoint.load(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.position = Position(**state["position"])
        self.position.stopped = ""
        self.schedule.set_lr(self.position.step + 1)
        checkpoint.set_rng_state(state["rng"])
        log.info("resumed from %s at step %d (epoch %d, batch %d)", path, self.position.step,
                 self.position.epoch, self.position.batch)

    def write_metrics(self, record: dict) -> None:
        self.metrics.write(json.dumps(record) + "\n")
        self.metrics.flush()

    # ------------------------------------------------------------------ the loop
    def _should_stop(self) -> str:
        c, p = self.recipe.train, self.position
        if c.max_steps and p.step >= c.max_steps:
            return "max_steps"
        if c.max_epochs and p.epoch >= c.max_epochs:
            return "max_epochs"
        if c.max_minutes and p.elapsed >= 60.0 * c.max_minutes:
            return "max_minutes"
        if c.patience and p.bad_validations >= c.patience:
            return "early_stopping"
        return ""

    def run(self) -> Position:
        c, p = self.recipe.train, self.position
        bar = tqdm(total=c.max_steps or None, initial=p.step, disable=not c.progress, unit="upd",
                   dynamic_ncols=True)
        window_loss, window_tokens = torch.zeros((), device=self.device), 0
        base, started = p.elapsed, time.monotonic()
        window_start, last_validated = started, p.step
        while not (stop := self._should_stop()):
            batches = self.data.train.epoch(p.epoch)
            while p.batch < len(batches) and not (stop := self._should_stop()):
                group = [self.data.train.collate(b) for b in batches[p.batch:p.batch + c.update_freq]]
                window_loss += self.train_step(group)
                window_tokens += sum(b.num_tokens for b in group)
                p.batch += len(group)
                now = time.monotonic()
                p.elapsed = base + now - started  # wall time, validation included
                bar.update(1)
                if p.step % c.log_every == 0:
                    record = self._log_window(float(window_loss), window_tokens, now - window_start)
                    bar.set_postfix(self._postfix(record))
                    window_loss.zero_()
                    window_tokens, window_start = 0, now
                if p.step % c.valid_every == 0:
                    bar.write(self._describe(self.validate()))
                    last_validated, window_start = p.step, time.monotonic()
            if p.batch >= len(batches):
                p.epoch, p.batch = p.epoch + 1, 0
        bar.close()
        if p.step > last_validated:
            log.info(self._describe(self.validate()))
        p.stopped = stop
        self.save("last")
        log.info("stopped (%s) at step %d, epoch %d, after %.1f min", stop, p.step, p.epoch, p.elapsed / 60)
        if c.average_last and (averaged := self.average()):
            bleu = f", valid bleu {averaged['valid_bleu']:.2f}" if "valid_bleu" in averaged else ""
            message = (f"averaged {', '.join(averaged['averaged'])} into averaged.pt: "
                       f"valid loss {averaged['valid_loss']:.3f}{bleu}")
            log.info(message)
            if c.progress:
                tqdm.write(message)
        return p

    def _log_window(self, loss_sum: float, tokens: int, seconds: float) -> dict:
        record = {"step": self.position.step, "epoch": self.position.epoch,
                  "lr": self.optimizer.param_groups[0]["lr"], "train_loss": loss_sum / max(tokens, 1),
                  "tokens_per_s": tokens / max(seconds, 1e-9), "elapsed_s": round(self.position.elapsed, 1),
                  # the probability of feeding gold tokens in the window's last update
                  "teacher_forcing_ratio": gold_probability(self.recipe.train.sampling, self.position.step - 1)}
        self.write_metrics(record)
        return record

    def _postfix(self, record: dict) -> dict:
        """Loss and speed, plus the time left when a time budget (not a step count) ends the run."""
        postfix = {"loss": f"{record['train_loss']:.3f}", "tok/s": f"{record['tokens_per_s']:.0f}"}
        if self.recipe.train.sampling.enabled:
            postfix["tf"] = f"{record['teacher_forcing_ratio']:.3f}"
        minutes = self.recipe.train.max_minutes
        if minutes and not self.recipe.train.max_steps:
            left = max(0.0, 60 * minutes - self.position.elapsed)
            postfix["eta"] = f"{int(left // 60)}:{int(left % 60):02d}"
        return postfix

    @staticmethod
    def _describe(result: dict) -> str:
        bleu = f" bleu {result['valid_bleu']:.2f}" if "valid_bleu" in result else ""
        return (f"step {result['step']}: valid loss {result['valid_loss']:.3f} ppl {result['valid_ppl']:.2f}"
                f"{bleu}{' (best)' if result['best'] else ''}")


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
    """Train ``recipe`` into ``run_dir``; with ``resume``, continue from ``last.pt`` exactly."""
    check_sampling(recipe)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(run_dir)
    save_recipe(recipe, run_dir / "config.yaml")
    if recipe.train.threads:
        torch.set_num_threads(recipe.train.threads)
    seed_everything(recipe.seed)
    device = pick_device(recipe.train.device)
    if device.type == "cpu":
        keep_freed_memory()
    trainer = Trainer(recipe, run_dir, prepare_data(recipe, run_dir), device)
    last = run_dir / "checkpoints" / "last.pt"
    if resume:
        trainer.restore(last)
    return trainer.run()
