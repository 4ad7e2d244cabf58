"""Data parallelism over processes launched by ``torchrun``: PyTorch's own DistributedDataParallel.

::

    torchrun --nproc-per-node 2 -m s2s train RECIPE --run-dir DIR

torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`start` reads them and joins the
process group (NCCL on GPUs, gloo on CPUs), one GPU per process (``cuda:LOCAL_RANK``). Without
them, or with one process, training runs in this process and nothing here communicates.

Why the result does not depend on the number of processes (beyond float noise):

* an update takes ``train.update_freq x WORLD_SIZE`` consecutive batches of the epoch, and rank r
  trains on every WORLD_SIZE-th of them from the r-th (:meth:`World.shard`): the batches one process
  with ``update_freq x WORLD_SIZE`` would accumulate, dealt out across ranks;
* every rank knows the whole update (the batches are a pure function of seed and epoch), so the
  loss is divided by the target tokens of the whole update without communication, and multiplied
  by WORLD_SIZE because DDP averages the ranks' gradients;
* each micro-batch draws its dropout (and sampled tokens) from a seed of its own
  (:func:`seed_micro_batch`), not from a stream whose position depends on what the rank ran before;
* the checkpoint's data position counts batches of the epoch, whichever rank trained them.

Rank 0 alone writes the run directory (the others hold a :class:`QuietReporter`) and validates,
with the unwrapped model, while the others wait for its metrics; the plateau schedule, early
stopping and the time limit are decided on the same numbers by every rank. The others read the
vocabulary (and ``last.pt`` on resume) that rank 0 wrote, so across nodes the run directory must be
on shared storage. Every collective waits at most :data:`TIMEOUT`, so a rank that dies or hangs
stops the others within that time rather than never (torchrun also stops them when a rank exits
with an error).
"""

from __future__ import annotations

import contextlib
import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from s2s.config import Recipe
from s2s.data.batching import Batch
from s2s.data.vocab import vocab_paths
from s2s.errors import ConfigError, DataError
from s2s.models.contract import Seq2Seq
from s2s.training.device import autocast, pick_device
from s2s.training.prepare import PreparedData, prepare_data

# the longest any rank waits in a collective, a validation included (each rank's share of the
# validation decode must fit in it): long enough for that, short enough that a lost rank ends the run
TIMEOUT = timedelta(minutes=30)
ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK")  # what torchrun sets for each process
# s2s models hold constant buffers only (positions, copy tables): no broadcast before each forward.
# Newer torch renamed the switch (and deprecates the old name); torch>=2.2 knows broadcast_buffers.
NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                  if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                  else {"broadcast_buffers": False})


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; ``World()`` is a run on its own."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str = ""  # "nccl" or "gloo"; "" when not distributed
    control: object = None  # the gloo group that carries host-side values (None: the default group)

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, update: list) -> list:
        """This rank's micro-batches of one update: every ``size``-th of ``update`` from the ``rank``-th.
        Empty when the epoch's last update has fewer batches than ranks."""
        return update[self.rank::self.size]

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``module`` in DistributedDataParallel when distributed, else itself. Every parameter
        takes part in the loss of every s2s model, so unused parameters are not searched for."""
        if not self.distributed:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, **NO_BUFFER_SYNC)

    def accumulate(self, module: torch.nn.Module, last: bool):
        """Around a micro-batch's forward and backward: DDP's ``no_sync`` unless it is the ``last``
        of the update, so that gradients are all-reduced once per update, not per micro-batch."""
        if last or not isinstance(module, DistributedDataParallel):
            return contextlib.nullcontext()
        return module.no_sync()

    def sum(self, value: Tensor) -> Tensor:
        """``value`` summed over the ranks (a new tensor; ``value`` itself is left as it is)."""
        value = value.detach().clone()
        if self.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def from_main(self, value):
        """Rank 0's ``value`` on every rank (any picklable value; on the gloo control group, so no GPU sync)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def gather(self, value) -> list:
        """Every rank's ``value`` (any picklable value), in rank order, on every rank (on the gloo
        control group, so no GPU sync)."""
        if not self.distributed:
            return [value]
        values = [None] * self.size
        dist.all_gather_object(values, value, group=self.control)
        return values

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.control)


def world_from_env(environ: dict | None = None) -> World:
    """The :class:`World` that torchrun's variables describe; ``World()`` when they are absent."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return World()
    try:
        size, rank, local_rank = (int(environ.get(name, "0")) for name in ENV)
    except ValueError:
        values = ", ".join(f"{name}={environ.get(name)!r}" for name in ENV)
        raise ConfigError(f"torchrun environment: expected integers, got {values}") from None
    if not 0 <= rank < size:
        raise ConfigError(f"torchrun environment: RANK={rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={size})")
    return World(rank, size, local_rank)


def start(device_name: str) -> tuple[World, torch.device]:
    """Join torchrun's process group when there is one; returns this process's world and device
    (``train.device``, with this process's GPU under torchrun). The backend follows the device:
    NCCL for GPUs, gloo for CPUs; host-side values travel on a gloo group in both cases."""
    world, device = world_from_env(), pick_device(device_name)
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    control = dist.new_group(backend="gloo", timeout=TIMEOUT) if backend == "nccl" else None
    return World(world.rank, world.size, world.local_rank, backend, control), device


def stop(world: World) -> None:
    """Leave the process group (every rank, on success and on error)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def prepare_shared(recipe: Recipe, run_dir: Path, world: World) -> PreparedData:
    """:func:`prepare_data` on every rank, the vocabulary trained by rank 0 alone: the others wait
    for it, then read it from ``run_dir``, so that they write nothing and all share one vocabulary."""
    if world.main:
        data = prepare_data(recipe, run_dir)
    world.barrier()
    if not world.main:
        for path in vocab_paths(run_dir / "vocab", recipe.vocab.joint):
            if not path.is_file():
                raise DataError(f"{path}: rank {world.rank} cannot read the vocabulary rank 0 wrote; "
                                "the run directory must be on storage that every node shares")
        data = prepare_data(recipe, run_dir)
    return data


def seed_micro_batch(seed: int, epoch: int, batch: Batch) -> None:
    """Seed torch's RNGs for one micro-batch from (run seed, epoch, the batch's first corpus
    position): its dropout masks and sampled tokens are then the same whichever rank trains it and
    whatever ran before on that rank (a sentence is in one batch per epoch, so the seeds differ)."""
    entropy = [seed, epoch, int(batch.index[0])]
    torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1))


class TrainingLoss(torch.nn.Module):
    """A model's training loss of one micro-batch as a ``forward``, the call that DDP hooks.

    Returns the label-smoothed loss summed over the non-pad target tokens and, with ``coverage``,
    the coverage loss summed likewise (else None): :meth:`Seq2Seq.loss` after teacher forcing.
    """

    def __init__(self, model: Seq2Seq, label_smoothing: float, coverage: bool, amp: str = "none"):
        super().__init__()
        self.model, self.label_smoothing, self.coverage, self.amp = model, label_smoothing, coverage, amp

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor,
                mixing=None) -> tuple[Tensor, Tensor | None]:
        """src: (B, S), src_lengths: (B,), tgt_in and tgt_out: (B, T); ``mixing``: scheduled
        sampling (:func:`s2s.training.sampling.token_mixing`), None for teacher forcing."""
        with autocast(src.device, self.amp):
            forced = self.model.teacher_forced(src, src_lengths, tgt_in, mixing)
        return self.model.loss(forced, tgt_out, self.label_smoothing, self.coverage)


class QuietReporter:
    """The reporter of ranks other than 0: takes every record and checkpoint state, writes nothing."""

    def start(self, step: int, total: int | None) -> None: ...
    def advance(self) -> None: ...
    def finish(self) -> None: ...
    def log(self, message: str) -> None: ...
    def say(self, message: str) -> None: ...
    def write(self, record: dict) -> None: ...
    def train_window(self, record: dict, postfix: dict) -> None: ...
    def validation(self, record: dict) -> None: ...
    def averaged(self, record: dict) -> None: ...
    def save(self, name: str, state: dict) -> None: ...
    def keep_step_weights(self, step: int, weights: dict, keep: int) -> None: ...
    def close(self) -> None: ...

    def average_steps(self, keep: int) -> None:
        """Nothing to average: rank 0 scores the averaged weights."""
        return None


def describe(world: World, update_freq: int, batch_tokens: int) -> str:
    """The log line that says how an update is made across the processes."""
    return (f"world size {world.size} ({world.backend}): an update takes update_freq {update_freq} x "
            f"{world.size} processes = {update_freq * world.size} batches of up to {batch_tokens} target tokens")
