"""Where training runs: the device, batches moved onto it, and mixed precision."""

from __future__ import annotations

import contextlib

import torch

from s2s.data.batching import Batch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def to_device(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's arrays as tensors: src (B, S), src_lengths (B,), tgt_in and tgt_out (B, T)."""
    arrays = {"src": batch.src, "src_lengths": batch.src_lengths, "tgt_in": batch.tgt_in, "tgt_out": batch.tgt_out}
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in arrays.items()}


def amp_on(amp: str, device: torch.device) -> str:
    """``train.amp`` as used on ``device``: autocast is for GPUs only, so "none" elsewhere."""
    return amp if device.type == "cuda" else "none"


def autocast(device: torch.device, amp: str):
    """The autocast context of ``amp`` ("none", "bf16" or "fp16") on ``device``."""
    dtype = AUTOCAST_DTYPES.get(amp_on(amp, device))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
