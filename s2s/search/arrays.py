"""A :class:`~s2s.search.loops.Decoder` over numpy arrays: row picking and a plain step function."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from s2s.search.candidates import top_k

PARALLEL_BYTES = 1 << 20  # take() splits its copies between two threads above this many bytes
_helper: ThreadPoolExecutor | None = None

Step = Callable[[np.ndarray, dict, dict], tuple[np.ndarray, dict, np.ndarray]]


def take(arrays: dict, rows: np.ndarray) -> dict:
    """The given rows of every array (beam reordering, finished sentences leaving).

    Large states (a transformer's caches at batch 32, beam 5: tens of MB per step) are copied by
    two threads, a helper taking about half the bytes: numpy releases the GIL while it copies,
    and onnxruntime's workers are idle between two steps (measurements in exported/README.md).
    """
    if len(arrays) < 2 or sum(value.nbytes for value in arrays.values()) < PARALLEL_BYTES:
        return {name: value[rows] for name, value in arrays.items()}  # plain indexing: least overhead per call
    items = sorted(arrays.items(), key=lambda item: -item[1].nbytes)
    global _helper
    if _helper is None:
        _helper = ThreadPoolExecutor(1, thread_name_prefix="s2s-take")
    mine, theirs, load = [], [], [0, 0]
    for item in items:  # largest first, each to the lighter side
        side = 0 if load[0] <= load[1] else 1
        (mine, theirs)[side].append(item)
        load[side] += item[1].nbytes
    helped = _helper.submit(lambda: {name: np.take(value, rows, axis=0) for name, value in theirs})
    out = {name: np.take(value, rows, axis=0) for name, value in mine}
    out.update(helped.result())
    return {name: out[name] for name in arrays}


class ArrayDecoder:
    """A decoder over a plain numpy step function
    ``step(tokens (N,), state, memory) -> log_probs (N, V) float32, state, attention (N, S)``, with
    state and memory as dicts of batch-first arrays: the selection is done here in numpy."""

    widens_for_eos = True

    def __init__(self, step: Step, bos: int, memory_per_sentence: bool = False):
        self.step, self.bos, self.memory_per_sentence = step, bos, memory_per_sentence

    def select(self, tokens, state, memory, scores, blocks, k, mask, ban_eos=False, attention=False):
        log_probs, state, attn = self.step(tokens, state, memory)
        if ban_eos:
            raise ValueError("ArrayDecoder bans EOS by widening (widens_for_eos): the search never asks ban_eos")
        if mask is not None:
            log_probs = log_probs + mask
        if scores is not None:
            log_probs = log_probs + scores
        values, index = top_k(log_probs.reshape(blocks, -1), k)
        return values, index, state, attn if attention else None

    @staticmethod
    def reorder(state: dict, rows: np.ndarray) -> dict:
        return take(state, rows)

    @staticmethod
    def take_memory(memory: dict, rows: np.ndarray) -> dict:
        return take(memory, rows)
