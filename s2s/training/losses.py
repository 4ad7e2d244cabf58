"""Token-level cross-entropy with label smoothing (Szegedy et al., 2016, section 7).

With smoothing eps the target distribution is q = (1 - eps) * onehot(gold) + eps / V, so

    loss = -sum_v q_v log p_v = logsumexp(z) - (1 - eps) z_gold - (eps / V) sum_v z_v
    dloss/dz = softmax(z) - q

:func:`output_loss` is the same loss fused with the output projection and computed in chunks;
it lives beside the projection in :mod:`s2s.models.embeddings` (models may not import training),
and the training loop reaches it through ``Seq2Seq.output_loss``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from s2s.data.vocab import PAD
from s2s.models import embeddings

CHUNK_ELEMENTS = embeddings.CHUNK_ELEMENTS  # logits per chunk of :func:`output_loss`


def sequence_loss(logits: Tensor, target: Tensor, smoothing: float = 0.0) -> Tensor:
    """Summed loss over non-pad positions. logits: (..., V), target: (...) -> scalar."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
                           ignore_index=PAD, label_smoothing=smoothing, reduction="sum")


def output_loss(hidden: Tensor, weight: Tensor, bias: Tensor, target: Tensor, smoothing: float = 0.0) -> Tensor:
    """:func:`s2s.models.embeddings.output_loss`. hidden: (N, D), target: (N,) -> scalar.

    The chunk size is read from this module at each call, so a test can shrink it here.
    """
    return embeddings.output_loss(hidden, weight, bias, target, smoothing, CHUNK_ELEMENTS)
