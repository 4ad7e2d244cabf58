"""Translate text with a trained run in PyTorch, through the interface the runtime shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from s2s.data.vocab import Vocabs
from s2s.decoding.decoder import ModelDecoder
from s2s.models.contract import Seq2Seq
from s2s.runs import load_run
from s2s.search import translator as base
from s2s.search.hypotheses import Hypothesis
from s2s.search.options import DecodeOptions


class Translator(base.Translator):
    """Batched greedy or beam translation of raw lines with a model in PyTorch; input order and
    empty lines are kept. ``options`` are the run's ``decode`` section; keyword arguments of
    :meth:`hypotheses` and :meth:`translate` override them for one call."""

    def __init__(self, model: Seq2Seq, vocabs: Vocabs, options: DecodeOptions, device: str | torch.device = "cpu"):
        self.model, self.vocabs, self.options, self.device = model.eval(), vocabs, options, torch.device(device)
        self.special = vocabs.special
        self.vocab_size = model.tgt_embed.num_embeddings
        self.copy_extends = model.copy is not None and model.copy.extends
        self.source_to_target = model.copy.source_to_target.cpu().numpy() if self.copy_extends else None
        self.piece_models = vocabs.src.sp, vocabs.tgt.sp
        self.decoder = ModelDecoder(self.model, self.special, self.device)

    @classmethod
    def from_run(cls, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> "Translator":
        recipe, vocabs, model = load_run(run_dir, checkpoint, device)
        return cls(model, vocabs, recipe.decode, device)

    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        return self.vocabs.src.encode(lines)

    def detokenize(self, tokens: list[int]) -> str:
        return self.vocabs.tgt.decode(tokens)

    def start(self, src: np.ndarray, src_lengths: np.ndarray):
        return (self.decoder, *self.decoder.start(src, src_lengths))

    @torch.inference_mode()
    def hypotheses(self, lines: list[str], **overrides) -> list[list[Hypothesis]]:
        self.model.eval()
        return super().hypotheses(lines, **overrides)

    @torch.inference_mode()
    def head_attention(self, line: str, hypothesis: Hypothesis) -> list[np.ndarray]:
        """The hypothesis replayed with teacher forcing (which equals stepping, a test checks it):
        every layer's cross-attention, each head apart, (heads, T + 1, S + 1) per layer."""
        ids = self.encode_lines([line])[0]
        if self.options.max_src_len:  # the source as hypotheses() read it
            ids = ids[: self.options.max_src_len]
        src = torch.tensor([[*ids, self.special.eos]], device=self.device)
        tgt_in = torch.tensor([[self.special.bos, *hypothesis.tokens]], device=self.device)
        layers = self.model.eval().head_attention(src, torch.tensor([src.size(1)], device=self.device), tgt_in)
        return [weights[0].float().cpu().numpy() for weights in layers]
