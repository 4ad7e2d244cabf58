"""Faults in training that must neither corrupt the run nor end it with a traceback.

* A **non-finite update**: a loss or gradient norm that is NaN or infinite (a learning rate too
  high, a bad batch, an overflow) would write NaN into every weight it touches. The update is
  skipped instead: its gradients are dropped, the optimizer does not step, and the update still
  counts (``Position.step``), as GradScaler's skipped fp16 updates always have, so that the LR
  schedule, logging, validation and ``--resume`` keep one clock. Skips are logged and counted in
  ``Position`` (saved in checkpoints, so a resumed run counts on exactly); ``train.max_bad_updates``
  in a row stop the run with a :class:`~s2s.errors.TrainingError`.
* **Out of memory** on a batch: re-raised as a one-line :class:`BatchOutOfMemory` naming the
  batch's shape. On a single GPU the update is first retried with that batch split in two
  (:func:`split_on_out_of_memory`), down to one sentence, before giving up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Callable, Iterable

import torch
from torch import Tensor

from s2s.data.batching import PAD, Batch
from s2s.errors import TrainingError


# ----------------------------------------------------------------------------- non-finite updates
def gradient_norm(parameters: Iterable[torch.nn.Parameter], clip_norm: float) -> Tensor:
    """The global L2 norm of the gradients (a device tensor, no sync), clipping them to
    ``clip_norm`` when that is > 0; measured either way, since one NaN or Inf anywhere makes it
    non-finite. (With no limit the scale factor is clamped to 1: the gradients stay as they are.)"""
    return torch.nn.utils.clip_grad_norm_(parameters, clip_norm if clip_norm > 0 else float("inf"), foreach=True)


def update_is_finite(loss: Tensor, norm: Tensor, check_norm: bool = True,
                     reduce: Callable[[Tensor], Tensor] | None = None) -> bool:
    """Whether the update may step: its summed loss and (with ``check_norm``) its gradient norm
    are finite. fp16 runs pass ``check_norm=False``: there GradScaler skips overflowing gradients
    itself and lowers its scale. ``reduce`` sums over the ranks of a distributed run, so that all
    ranks skip the same updates. One host sync."""
    finite = torch.isfinite(loss.detach().float())
    if check_norm:
        finite = finite & torch.isfinite(norm.detach().float())
    bad = (~finite).to(torch.float32)
    if reduce is not None:
        bad = reduce(bad)
    return not bool(bad)


def skip_update(position, loss: Tensor, norm: Tensor, limit: int, log: Callable[[str], None]) -> None:
    """Count a skipped update in ``position`` (``bad_updates`` in a row, ``skipped_updates`` in
    all) and log it; raise :class:`TrainingError` when ``limit`` (> 0) are in a row."""
    position.bad_updates += 1
    position.skipped_updates += 1
    step, row = position.step + 1, position.bad_updates
    what = f"loss {float(loss):.4g}, gradient norm {float(norm):.4g}"
    if limit and row >= limit:
        message = (f"step {step}: {row} updates in a row had a non-finite loss or gradient norm (the last: {what}; "
                   f"train.max_bad_updates = {limit}); lower train.lr or raise train.warmup_steps, or check the data")
        log(message)
        raise TrainingError(message)
    log(f"step {step}: skipped the update: {what} ({row} in a row, {position.skipped_updates} in all)")


# ----------------------------------------------------------------------------- out of memory
class BatchOutOfMemory(TrainingError):
    """Out of memory on one batch of an update; ``batch`` is the one that failed."""

    def __init__(self, message: str, batch: Batch):
        super().__init__(message)
        self.batch = batch


def is_out_of_memory(err: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), or a RuntimeError saying the allocator ran out (CPU)."""
    if isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def shape(batch: Batch) -> str:
    """``32 sentences x 41 source tokens x 38 target tokens``: the padded sizes of ``batch``."""
    (sentences, src), tgt = batch.src.shape, batch.tgt_out.shape[1]
    return f"{sentences} sentences x {src} source tokens x {tgt} target tokens"


@contextlib.contextmanager
def naming_the_batch(batch: Batch, step: int, device: torch.device):
    """Around a batch's forward and backward: out of memory becomes :class:`BatchOutOfMemory`,
    one line naming the batch's shape and the update."""
    try:
        yield
        return
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(err):
            raise
        text = str(err).strip()
        reason = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
        message = (f"step {step}: out of memory on a batch of {shape(batch)} on {device} ({reason}); "
                   "lower train.batch_tokens or data.max_src_len / data.max_tgt_len")
    raise BatchOutOfMemory(message, batch)  # outside the except: the failed forward's tensors can go


def split_batch(batch: Batch) -> tuple[Batch, Batch] | None:
    """``batch`` in two halves of its sentences, each trimmed to its own longest sentence; None
    for a single sentence. The halves' gradients sum to the batch's (the loss of an update is
    divided by its total target tokens, which the split does not change)."""
    if len(batch) < 2:
        return None
    middle = len(batch) // 2
    return _rows(batch, slice(0, middle)), _rows(batch, slice(middle, None))


def _rows(batch: Batch, rows: slice) -> Batch:
    tgt_out = batch.tgt_out[rows]
    src_lengths = batch.src_lengths[rows]
    src_width, tgt_width = int(src_lengths.max()), int((tgt_out != PAD).sum(1).max())
    return dataclasses.replace(batch, src=batch.src[rows, :src_width], src_lengths=src_lengths,
                               tgt_in=batch.tgt_in[rows, :tgt_width], tgt_out=tgt_out[:, :tgt_width],
                               num_tokens=int((tgt_out != PAD).sum()), index=batch.index[rows])


def split_on_out_of_memory(train_step: Callable) -> Callable:
    """Decorates ``Trainer.train_step(batches, ...)``: when a batch of the update runs out of
    memory on a single GPU, drop the update's gradients (a backward cut short may have added
    part of its own) and redo the update with that batch split in two; on a CPU, under data
    parallelism (the other ranks would not redo theirs) or at one sentence, the error stands."""

    @functools.wraps(train_step)
    def retry(trainer, batches: list[Batch], *args, **kwargs):
        while True:
            try:
                return train_step(trainer, batches, *args, **kwargs)
            except BatchOutOfMemory as err:
                alone = not getattr(getattr(trainer, "world", None), "distributed", False)
                halves = split_batch(err.batch) if trainer.device.type == "cuda" and alone else None
                if halves is None:
                    raise
                where = next(i for i, b in enumerate(batches) if b is err.batch)
                trainer.reporter.log(f"{err}: retrying the update with that batch split in two")
            trainer.optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            batches = [*batches[:where], *halves, *batches[where + 1:]]

    return retry
