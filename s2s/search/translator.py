"""One translator interface for a training run (PyTorch) and an exported bundle (onnxruntime).

Both backends subclass :class:`Translator` and supply the tokenizer and :meth:`Translator.start`
(encode a padded batch, return the backend's :class:`~s2s.search.loops.Decoder` with its memory
and state); batching, empty lines, input order, length limits and the search are done here once,
so the CLI and the server never branch on the backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from s2s.search.alignment import pharaoh, word_alignment
from s2s.search.copying import copied_pieces, copied_text
from s2s.search.hypotheses import Hypothesis, SpecialIds
from s2s.search.loops import Decoder, limits_of, search
from s2s.search.options import DecodeOptions


class Translator(ABC):
    """``translator.translate(lines, beam=5)``: the best translation of each line; empty lines
    come back empty. ``hypotheses`` gives the n-best :class:`Hypothesis` lists. Keyword options
    override :attr:`options` (the run's or the bundle's defaults) for one call."""

    options: DecodeOptions
    special: SpecialIds
    vocab_size: int  # target vocabulary
    # copy attention over separate vocabularies: ids >= vocab_size name source pieces the target
    # vocabulary lacks (s2s.search.copying), and the step has vocab_size + S columns
    copy_extends: bool = False
    source_to_target: Any = None  # with copy_extends: each source id's target id or -1 (np.ndarray)
    # the (source, target) sentencepiece processors: extended ids are spelled with their pieces
    piece_models: tuple[Any, Any]

    # ------------------------------------------------------------------ the backend's part
    @abstractmethod
    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        """Source subword ids of each line (no EOS)."""

    @abstractmethod
    def detokenize(self, tokens: list[int]) -> str:
        """Target subword ids -> text."""

    @abstractmethod
    def start(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[Decoder, Any, Any]:
        """src: (B, S) int64 padded ids ending in EOS; src_lengths: (B,) -> decoder, memory, state."""

    # ------------------------------------------------------------------ shared
    def hypotheses(self, lines: list[str], attention: bool = False, **overrides) -> list[list[Hypothesis]]:
        """n-best hypotheses of each line, best first (an empty line gets one empty hypothesis).
        With ``sample``, one random generator seeded with ``seed`` draws for the whole call, batch
        after batch: the same lines and options give the same samples (a line's samples depend on
        the lines decoded with it). With ``attention`` each hypothesis keeps its attention,
        (T + 1, S + 1) over its own sentence's source pieces and EOS (:meth:`attention_of`)."""
        options = self.options.with_overrides(**overrides)
        rng = np.random.default_rng(options.seed)
        results = [[Hypothesis([], 0.0, 0.0)] for _ in lines]
        ids = self.encode_lines(list(lines))
        if options.max_src_len:  # the source as the model was trained on it (data.truncate_src)
            ids = [row[: options.max_src_len] for row in ids]
        todo = sorted((i for i, line in enumerate(lines) if line.strip()), key=lambda i: -len(ids[i]))
        for start in range(0, len(todo), options.batch_size):
            chunk = todo[start: start + options.batch_size]
            for i, hyps in zip(chunk, self.search_batch([ids[i] for i in chunk], options, rng, attention)):
                results[i] = hyps
                for hyp in hyps if attention else ():  # the batch's padding columns dropped
                    hyp.attention = hyp.attention[:, : len(ids[i]) + 1]
                if self.copy_extends:  # what the sentence's extended ids name
                    copied = tuple(copied_pieces(ids[i], self.source_to_target))
                    for hyp in hyps:
                        hyp.copied = copied
        return results

    def text(self, hypothesis: Hypothesis) -> str:
        """A hypothesis detokenized; an extended id ``vocab_size + j`` is the source piece
        ``hypothesis.copied[j]``."""
        tokens = hypothesis.tokens
        if not hypothesis.copied or max(tokens, default=0) < self.vocab_size:
            return self.detokenize(tokens)
        src, tgt = self.piece_models
        return copied_text(tokens, self.vocab_size, hypothesis.copied, tgt.id_to_piece, src.id_to_piece, " \u2047 ")

    def target_pieces(self, hypothesis: Hypothesis) -> list[str]:
        """The hypothesis's subword pieces; an extended id is spelled with its source piece."""
        src, tgt = self.piece_models
        out = []
        for token in hypothesis.tokens:
            j = token - self.vocab_size
            copied = 0 <= j < len(hypothesis.copied)
            out.append(src.id_to_piece(hypothesis.copied[j]) if copied else tgt.id_to_piece(token) if j < 0 else "\u2047")
        return out

    def attention_of(self, line: str, hypothesis: Hypothesis) -> dict:
        """A kept attention (``hypotheses(..., attention=True)``) with its labels: ``source`` the
        line's pieces as the model read them, then ``</s>``; ``target`` the hypothesis's pieces,
        then ``</s>``; ``weights`` one row per target piece, one column per source piece."""
        weights = hypothesis.attention
        if weights is None:
            raise ValueError("this hypothesis kept no attention: decode with attention=True")
        source, target = self.attention_labels(line, hypothesis, weights.shape[1] - 1)
        return {"source": source, "target": target, "weights": np.asarray(weights, dtype=np.float32).tolist()}

    def attention_labels(self, line: str, hypothesis: Hypothesis, src_len: int) -> tuple[list[str], list[str]]:
        """The labels of an attention's columns, the first ``src_len`` pieces of the line as the
        model read them and ``</s>``, and of its rows, the hypothesis's pieces and ``</s>``."""
        source = [self.piece_models[0].id_to_piece(i) for i in self.encode_lines([line])[0][:src_len]]
        return source + ["</s>"], self.target_pieces(hypothesis) + ["</s>"]

    def head_attention(self, line: str, hypothesis: Hypothesis) -> list[np.ndarray]:
        """Each decoder layer's cross-attention while the model produced ``hypothesis`` from
        ``line``, each head apart: one (heads, T + 1, S + 1) array per layer, labelled as
        :meth:`attention_of`'s. Only a backend that holds the whole model can replay it."""
        raise NotImplementedError(f"{type(self).__name__} keeps only the attention its step reports")

    def alignment_of(self, line: str, hypothesis: Hypothesis) -> str:
        """Hard word alignment in the Pharaoh format (``"0-0 1-2"``: source word - target word),
        from the kept attention (:func:`s2s.search.alignment.word_alignment`)."""
        labelled = self.attention_of(line, hypothesis)
        pairs = word_alignment(np.array(labelled["weights"]), labelled["source"][:-1], labelled["target"][:-1])
        return pharaoh(pairs)

    def translate(self, lines: list[str], **overrides) -> list[str]:
        """The best translation of each line, detokenized."""
        return [self.text(hyps[0]) for hyps in self.hypotheses(lines, **overrides)]

    def padded(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """A batch of source id lists as the graphs read it: src (B, S) int64, each row closed by
        EOS and padded, and src_lengths (B,) counting the EOS."""
        lengths = np.array([len(r) + 1 for r in ids], dtype=np.int64)
        src = np.full((len(ids), int(lengths.max())), self.special.pad, dtype=np.int64)
        for i, row in enumerate(ids):
            src[i, : len(row)] = row
            src[i, len(row)] = self.special.eos
        return src, lengths

    def search_batch(self, ids: list[list[int]], options: DecodeOptions, rng: np.random.Generator | None = None,
                     attention: bool = False) -> list[list[Hypothesis]]:
        """The n-best hypotheses of one batch of source id lists; samples are drawn from ``rng``
        (None: a generator seeded with ``options.seed``); with ``attention`` each keeps its
        attention over the batch's padded source."""
        src, lengths = self.padded(ids)
        decoder, memory, state = self.start(src, lengths)
        width = self.vocab_size + (src.shape[1] if self.copy_extends else 0)
        return search(decoder, memory, state, limits_of(lengths, options, self.special.eos), width, options,
                      src_lengths=lengths, rng=np.random.default_rng(options.seed) if rng is None else rng,
                      keep_attention=attention)
