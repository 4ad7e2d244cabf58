"""The PyTorch half of a search: a :class:`~s2s.search.loops.Decoder` over a :class:`Seq2Seq`.

Only what must run where the weights are stays here: the decoder step, the log-softmax, the
constraint mask and the running scores added on the device, and each sentence's top k there,
so that only (B, k) values and indices cross to the host per step (and the (N, S) attention
when a coverage penalty asks for it). The loop that decides what
survives is :mod:`s2s.search.loops`, the same one the runtime drives.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from s2s.models.contract import Seq2Seq, select
from s2s.search.hypotheses import SpecialIds


class ModelDecoder:
    """``select``/``reorder``/``take_memory`` of the search contract over a model on ``device``."""

    # memory is expanded to one row per hypothesis, as the model's own step expects on any decoder
    memory_per_sentence = False
    # EOS alone is banned in place on the device: cheaper than a wider top k (one more topk pass)
    widens_for_eos = False

    def __init__(self, model: Seq2Seq, special: SpecialIds, device: torch.device | str = "cpu"):
        self.model, self.bos, self.eos, self.device = model, special.bos, special.eos, torch.device(device)

    def _tensor(self, array: np.ndarray) -> Tensor:
        tensor = torch.from_numpy(array)
        return tensor if self.device.type == "cpu" else tensor.to(self.device)

    def start(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[dict, dict]:
        """Encode a padded batch: (B, S) ids and (B,) lengths -> memory, initial state."""
        return self.model.encode(self._tensor(src), self._tensor(src_lengths))

    def select(self, tokens, state, memory, scores, blocks, k, mask, ban_eos, attention=False):
        candidates, state, attn = self.model.log_probs(self._tensor(tokens), state, memory)
        attn = attn.float().cpu().numpy() if attention else None
        if ban_eos:
            candidates[:, self.eos] = float("-inf")
        if mask is not None:
            candidates = candidates + self._tensor(mask)
        if scores is not None:
            candidates = candidates + self._tensor(scores)
        candidates = candidates.view(blocks, -1)
        if k == 1:  # greedy: the first of equal maxima; on CPU topk costs several times one max
            values, index = candidates.max(1, keepdim=True)
            return values.cpu().numpy(), index.cpu().numpy(), state, attn
        values, index = candidates.topk(k, dim=1)
        values, index = values.cpu().numpy(), index.cpu().numpy()
        if (values[:, 1:] == values[:, :-1]).any():  # torch.topk orders equal values arbitrarily
            order = np.lexsort((index, -values), axis=1)
            values, index = np.take_along_axis(values, order, 1), np.take_along_axis(index, order, 1)
        return values, index, state, attn

    def reorder(self, state: dict, rows: np.ndarray) -> dict:
        return self.model.reorder(state, self._tensor(rows))

    def take_memory(self, memory: dict, rows: np.ndarray) -> dict:
        return select(memory, self._tensor(rows))

