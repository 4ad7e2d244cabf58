"""Checkpoint averaging: the element-wise mean of the weights of several checkpoints.

Averaging the parameters of the last few checkpoints of a run (Vaswani et al., 2017, section
6.1; Junczys-Dowmunt et al., 2016) smooths the noise of the final updates and usually scores
better than any single one of them. Only floating-point tensors are averaged; integer buffers
(counters) must agree and are taken from the newest checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from s2s.errors import RunError
from s2s.training import checkpoint


def step_checkpoints(folder: str | Path) -> list[Path]:
    """The ``step-N.pt`` files of a run's ``checkpoints/`` folder, oldest first."""
    return checkpoint.numbered(folder, "step")


def average_weights(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """The mean of the ``model`` weights stored in ``paths`` (computed in float64)."""
    if not paths:
        raise RunError("checkpoint averaging needs at least one checkpoint")
    total: dict[str, torch.Tensor] = {}
    first = Path(paths[0])
    for path in paths:
        weights = _model_weights(Path(path))
        if total and weights.keys() != total.keys():
            missing, extra = sorted(total.keys() - weights.keys()), sorted(weights.keys() - total.keys())
            raise RunError(f"{path}: its weights do not match {first} (missing {missing}, extra {extra})")
        for name, value in weights.items():
            if name not in total:
                total[name] = value.double() if value.is_floating_point() else value.clone()
            elif value.shape != total[name].shape:
                raise RunError(f"{path}: {name} has shape {tuple(value.shape)}, {first} has "
                                  f"{tuple(total[name].shape)}")
            elif value.is_floating_point():
                total[name] += value.double()
            elif not torch.equal(value, total[name]):
                raise RunError(f"{path}: integer tensor {name} differs from {first}; cannot average")
    dtypes = {name: value.dtype for name, value in _model_weights(Path(paths[-1])).items()}
    return {name: (value / len(paths)).to(dtypes[name]) if value.is_floating_point() else value
            for name, value in total.items()}


def write_average(paths: list[str | Path], out: str | Path) -> Path:
    """Average ``paths`` into the checkpoint ``out`` (written atomically); returns ``out``."""
    payload = {"model": average_weights(paths), "averaged": [str(Path(p).name) for p in paths]}
    checkpoint.save_atomic(payload, out)
    return Path(out)


def _model_weights(path: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.load(path)  # a missing, truncated or foreign file: a RunError naming it
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise RunError(f"{path}: not an s2s checkpoint (expected a dict with a 'model' entry)")
    return state["model"]
