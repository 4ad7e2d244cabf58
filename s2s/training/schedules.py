"""Learning-rate schedules, stepped after every update and told about every validation.

* ``constant``: the peak rate, after an optional linear warmup.
* ``inverse_sqrt``: linear warmup to ``lr``, then lr * sqrt(warmup / step).
* ``noam``: Vaswani et al. (2017), eq. 3, with ``lr`` as the scale factor:
  lr * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5), d_model the decoder's size. The same
  curve as ``inverse_sqrt``, whose peak lr * (d_model * warmup)^-0.5 it reaches at ``warmup``.
* ``plateau``: the peak rate (after warmup), multiplied by ``plateau_factor`` whenever
  ``plateau_patience`` validations pass without improvement, down to ``min_lr``.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer

from s2s.config import TrainConfig


class LRSchedule:
    def __init__(self, optimizer: Optimizer, config: TrainConfig, model_dim: int = 0):
        if config.schedule in ("inverse_sqrt", "noam") and config.warmup_steps <= 0:
            raise ValueError(f"train.schedule {config.schedule} needs train.warmup_steps > 0")
        if config.schedule == "noam" and model_dim <= 0:
            raise ValueError("train.schedule noam needs the model size (d_model)")
        self.optimizer, self.config, self.model_dim = optimizer, config, model_dim
        self.scale, self.bad_validations, self.best = 1.0, 0, None
        self.set_lr(1)

    def rate(self, step: int) -> float:
        """The learning rate used for update number ``step`` (1-based)."""
        c = self.config
        warm = min(1.0, step / c.warmup_steps) if c.warmup_steps > 0 else 1.0
        if c.schedule == "inverse_sqrt":
            return c.lr * min(warm, math.sqrt(c.warmup_steps / max(step, 1)))
        if c.schedule == "noam":
            step = max(step, 1)
            return c.lr * self.model_dim ** -0.5 * min(step ** -0.5, step * c.warmup_steps ** -1.5)
        if c.schedule == "plateau":
            return max(c.lr * warm * self.scale, c.min_lr if step > c.warmup_steps else 0.0)
        return c.lr * warm

    def set_lr(self, step: int) -> float:
        lr = self.rate(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def after_validation(self, improved: bool) -> None:
        if self.config.schedule != "plateau":
            return
        self.bad_validations = 0 if improved else self.bad_validations + 1
        if self.bad_validations >= self.config.plateau_patience:
            self.scale *= self.config.plateau_factor
            self.bad_validations = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.bad_validations = state["scale"], state["bad_validations"]
