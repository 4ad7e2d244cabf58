"""Validation: a model in, named metrics out, and for each name the direction that is better.

A :class:`Validator` runs its scorers in turn and merges what they return, e.g.
``{"valid_loss": 2.31, "valid_ppl": 10.1, "valid_bleu": 27.4}``, or ``valid_rougeL`` in place of
``valid_bleu`` with ``train.valid_metric: rougeL``. The loop picks ``best.pt``, stops early and
decays the plateau schedule by any one of these names (``train.best_metric``, resolved by
:func:`resolve_best_metric`), so a new metric is a new scorer here and nothing in the loop.

Under data parallelism every rank validates its share (every ``size``-th validation batch or
sentence from its ``rank``-th); the shares are gathered in rank order, so every rank computes the
same metrics from the same numbers. One process alone does all of it.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from s2s.config import Recipe, TrainConfig, ValidMetric
from s2s.data.batching import TokenBatcher
from s2s.data.vocab import Vocabs
from s2s.decoding.translator import Translator
from s2s.errors import ConfigError
from s2s.evaluation.metrics import score
from s2s.models.contract import Seq2Seq
from s2s.search.options import DecodeOptions
from s2s.training.device import autocast, to_device
from s2s.training.distributed import World
from s2s.training.losses import sequence_loss
from s2s.training.prepare import PreparedData

DECODE_METRICS: tuple[str, ...] = typing.get_args(ValidMetric)  # the choices of train.valid_metric

ALONE = World()  # one process: no shares, nothing gathered

# short names for train.best_metric: loss, and each metric the validation decode can be scored with
ALIASES = {"loss": "valid_loss", **{metric: f"valid_{metric}" for metric in DECODE_METRICS}}


class Scorer(Protocol):
    higher_is_better: dict[str, bool]  # every metric name the scorer returns -> its direction

    @classmethod
    def directions(cls, config: TrainConfig) -> dict[str, bool]:
        """``higher_is_better`` of the scorer that ``config`` makes, known before any data."""

    def __call__(self, model: Seq2Seq, world: World = ALONE) -> dict[str, float]: ...


class LossScorer:
    """``valid_loss``: per-token cross-entropy without smoothing (nats), summed over the non-pad
    target tokens of the validation set and divided by their number; ``valid_ppl`` = exp of it."""

    higher_is_better = {"valid_loss": False, "valid_ppl": False}

    def __init__(self, batches: TokenBatcher, device: torch.device, amp: str = "none"):
        self.batches, self.device, self.amp = batches, device, amp

    @classmethod
    def directions(cls, config: TrainConfig) -> dict[str, bool]:
        return dict(cls.higher_is_better)

    @classmethod
    def from_run(cls, recipe: Recipe, data: PreparedData, device: torch.device) -> LossScorer:
        return cls(data.valid, device, recipe.train.amp)

    @torch.inference_mode()
    def __call__(self, model: Seq2Seq, world: World = ALONE) -> dict[str, float]:
        model.eval()
        total, tokens = 0.0, 0
        for positions in self.batches.sequential(64)[world.rank::world.size]:
            batch = self.batches.collate(positions)
            t = to_device(batch, self.device)
            with autocast(self.device, self.amp):
                logits = model(t["src"], t["src_lengths"], t["tgt_in"])
            total += float(sequence_loss(logits, t["tgt_out"]))
            tokens += batch.num_tokens
        shares = world.gather((total, tokens))
        total, tokens = sum(share[0] for share in shares), sum(share[1] for share in shares)
        loss = total / max(tokens, 1)
        return {"valid_loss": loss, "valid_ppl": float(np.exp(min(loss, 50.0)))}  # exp overflows past ~709


class DecodeScorer:
    """``valid_<metric>`` (``valid_bleu``, ``valid_rougeL``, ...): the validation sources decoded
    with beam ``beam`` (1 = greedy) and the run's decoding settings, scored against the references
    with ``metric`` (``train.valid_metric``: corpus BLEU or chrF from sacrebleu, or mean ROUGE F1;
    see :mod:`s2s.evaluation.metrics`). Every such metric is higher-is-better."""

    def __init__(self, src: list[str], refs: list[str], vocabs: Vocabs, decode: DecodeOptions, beam: int,
                 device: torch.device, metric: str):
        self.src, self.refs, self.vocabs, self.decode, self.beam, self.device = src, refs, vocabs, decode, beam, device
        self.metric, self.name = metric, f"valid_{metric}"
        self.higher_is_better = {self.name: True}

    @classmethod
    def directions(cls, config: TrainConfig) -> dict[str, bool]:
        return {f"valid_{config.valid_metric}": True}

    @classmethod
    def from_run(cls, recipe: Recipe, data: PreparedData, device: torch.device) -> DecodeScorer:
        return cls(data.valid_text.src, data.valid_text.tgt, data.vocabs, recipe.decode, recipe.train.valid_beam,
                   device, recipe.train.valid_metric)

    def __call__(self, model: Seq2Seq, world: World = ALONE) -> dict[str, float]:
        translator = Translator(model, self.vocabs, self.decode, str(self.device))
        # the search the recipe decodes with, never sampling: a validation score must not be random
        share = translator.translate(self.src[world.rank::world.size], beam=self.beam, n_best=1, batch_size=128,
                                     sample=False)
        hyps = interleave(world.gather(share))
        return {self.name: score(hyps, self.refs, [self.metric])[self.metric]}


class Validator:
    """Scores a model with each scorer in turn: ``validator(model)`` -> {metric name: value}."""

    def __init__(self, scorers: list[Scorer]):
        self.scorers = scorers
        self.higher_is_better = {name: up for s in scorers for name, up in s.higher_is_better.items()}

    def __call__(self, model: Seq2Seq, world: World = ALONE) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for scorer in self.scorers:
            metrics.update(scorer(model, world))
        return metrics


def interleave(shares: list[list]) -> list:
    """The shares of ``items[r::len(shares)]`` for each rank r put back in the order of ``items``."""
    out: list = [None] * sum(len(share) for share in shares)
    for rank, share in enumerate(shares):
        out[rank::len(shares)] = share
    return out


def _scorer_types(config: TrainConfig) -> list[type]:
    """The scorers that ``train`` switches on; :func:`build_validator` and
    :func:`metric_directions` both read this list, so the names known early are the names returned."""
    return [LossScorer, DecodeScorer] if config.valid_bleu else [LossScorer]


def metric_directions(config: TrainConfig) -> dict[str, bool]:
    """The metric names a run's validator will return, each -> higher is better; known before any data."""
    return {name: up for kind in _scorer_types(config) for name, up in kind.directions(config).items()}


def build_validator(recipe: Recipe, data: PreparedData, device: torch.device) -> Validator:
    return Validator([kind.from_run(recipe, data, device) for kind in _scorer_types(recipe.train)])


@dataclass(frozen=True)
class BestMetric:
    """The validation metric that picks ``best.pt``, drives early stopping and the plateau schedule."""

    name: str
    higher_is_better: bool

    def signed(self, metrics: dict[str, float]) -> float:
        """The metric with the sign that makes higher better (a loss negated), as ``Position.best``
        holds it, so that checkpoints written before any metric could be named resume unchanged."""
        value = metrics[self.name]
        return value if self.higher_is_better else -value


def resolve_best_metric(choice: str, directions: dict[str, bool]) -> BestMetric:
    """``train.best_metric`` (a metric name or an alias of :data:`ALIASES`) among ``directions``.

    A validation-decode metric that is not computed fails naming the setting to change:
    ``train.valid_bleu`` when nothing is decoded, else ``train.valid_metric``."""
    name = ALIASES.get(choice, choice)
    if name not in directions:
        wanted = name.removeprefix("valid_")
        decoded = [m for m in DECODE_METRICS if f"valid_{m}" in directions]
        why = ""
        if wanted in DECODE_METRICS and decoded:
            why = f" (train.valid_metric = {decoded[0]!r}; set it to {wanted!r})"
        elif wanted in DECODE_METRICS:
            why = " (train.valid_bleu is false: the validation set is not decoded)"
        aliases = [alias for alias, target in ALIASES.items() if target in directions]
        raise ConfigError(f"train.best_metric = {choice!r}: validation does not compute {name!r}{why}; "
                          f"available: {', '.join(directions)} (aliases: {', '.join(aliases) or 'none'})")
    return BestMetric(name, directions[name])


def check_best_metric(config: TrainConfig) -> BestMetric:
    """Refuse, before any work, a ``train.best_metric`` that validation would not compute."""
    return resolve_best_metric(config.best_metric, metric_directions(config))
