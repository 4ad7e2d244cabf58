"""Translate text with a trained run in PyTorch: the torch twin of :mod:`s2s.runtime`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from s2s.config import DecodeConfig, Recipe, load_recipe
from s2s.data.batching import pad, with_eos
from s2s.data.vocab import EOS, Vocabs, load_vocabs
from s2s.decoding.beam import beam_search
from s2s.decoding.common import Hypothesis, max_lengths, search_processors
from s2s.decoding.greedy import greedy_search
from s2s.errors import BundleError, ConfigError
from s2s.models.build import build_model
from s2s.models.contract import Seq2Seq

RUN_FILES = ("config.yaml", "vocab")


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> tuple[Recipe, Vocabs, Seq2Seq]:
    """Recipe, vocabularies and weights of a training run directory.

    ``checkpoint`` names a file of ``checkpoints/``: ``best``, ``last``, ``averaged`` or ``step-N``;
    a run that has not validated yet has no ``best`` and gives ``last`` instead.
    """
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        if not (run_dir / name).exists():
            raise BundleError(f"{run_dir}: not a run directory (missing {name})")
    recipe = load_recipe(run_dir / "config.yaml")
    vocabs = load_vocabs(run_dir / "vocab", recipe.vocab.joint)
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not path.is_file() and checkpoint == "best":
        path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        found = sorted(p.stem for p in (run_dir / "checkpoints").glob("*.pt"))
        raise BundleError(f"{path}: no such checkpoint; the run has {found or 'none yet'}")
    model = build_model(recipe.model, len(vocabs.src), len(vocabs.tgt))
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return recipe, vocabs, model.to(device).eval()


class Translator:
    """Batched greedy or beam translation of raw lines, keeping input order and empty lines."""

    def __init__(self, model: Seq2Seq, vocabs: Vocabs, decode: DecodeConfig, device: str = "cpu"):
        self.model, self.vocabs, self.decode, self.device = model.eval(), vocabs, decode, device

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> "Translator":
        recipe, vocabs, model = load_run(run_dir, checkpoint, device)
        return cls(model, vocabs, recipe.decode, device)

    def hypotheses(self, lines: list[str], **options) -> list[list[Hypothesis]]:
        """n-best hypotheses for each line; options override the recipe's ``decode`` section."""
        try:
            config = dataclasses.replace(self.decode, **{k: v for k, v in options.items() if v is not None})
        except ValueError as err:
            raise ConfigError(f"decoding options: {err}") from None
        results: list[list[Hypothesis]] = [[Hypothesis([], 0.0, 0.0)] for _ in lines]
        ids = self.vocabs.src.encode(lines)
        todo = [i for i, line in enumerate(lines) if line.strip()]
        todo.sort(key=lambda i: -len(ids[i]))
        for start in range(0, len(todo), config.batch_size):
            chunk = todo[start: start + config.batch_size]
            for i, hyps in zip(chunk, self._batch([ids[i] for i in chunk], config)):
                results[i] = hyps
        return results

    def translate(self, lines: list[str], **options) -> list[str]:
        """The best translation of each line, detokenized."""
        return [self.vocabs.tgt.decode(hyps[0].tokens) for hyps in self.hypotheses(lines, **options)]

    def _batch(self, ids: list[list[int]], config: DecodeConfig) -> list[list[Hypothesis]]:
        rows = with_eos(ids)
        src = torch.from_numpy(pad(rows)).to(self.device)
        lengths = torch.from_numpy(np.asarray([len(r) for r in rows])).to(self.device)
        limits = max_lengths(lengths, config.max_len_ratio, config.max_len_offset, minimum=config.min_len,
                             maximum=config.max_len)
        processors = search_processors(config.min_len, config.no_repeat_ngram, EOS)
        if config.beam == 1 and config.n_best == 1:
            return [[h] for h in greedy_search(self.model, src, lengths, limits, processors, config.length_penalty)]
        return beam_search(self.model, src, lengths, limits, config.beam, config.n_best,
                           config.length_penalty, processors)
