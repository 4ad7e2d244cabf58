"""Beam search and greedy in one onnxruntime call: a bundle's ``search.onnx`` (``s2s export --search``).

The graph is :mod:`s2s.search.loops`' beam search written in ONNX (``s2s.export.search_graph``),
so for the same batch it returns the Python search's hypotheses. This module only feeds it.
"""

from __future__ import annotations

import numpy as np

from s2s.errors import ConfigError
from s2s.search.hypotheses import Hypothesis
from s2s.search.options import DecodeOptions

# the graph's optional inputs: name -> numpy type (their values are DecodeOptions fields of the same name)
OPTION_INPUTS = {"beam": np.int64, "n_best": np.int64, "length_penalty": np.float64, "max_len_ratio": np.float32,
                 "max_len_offset": np.int64, "min_len": np.int64, "max_len": np.int64, "no_repeat_ngram": np.int64,
                 "coverage_penalty": np.float64}


def graph_feeds(src: np.ndarray, src_lengths: np.ndarray, options: DecodeOptions) -> dict:
    """The inputs of ``search.onnx`` for one padded batch and the options of the call."""
    if options.sample:
        raise ConfigError("the graph search does beam search and greedy; sampling runs in the Python search "
                          "(search='python')")
    feeds = {"src": src, "src_lengths": src_lengths}
    for name, kind in OPTION_INPUTS.items():
        feeds[name] = np.array([getattr(options, name)], dtype=kind)
    return feeds


def hypotheses_of(tokens: np.ndarray, lengths: np.ndarray, scores: np.ndarray,
                  log_probs: np.ndarray) -> list[list[Hypothesis]]:
    """The graph's outputs (B, n_best, T), (B, n_best) x 3 as n-best lists; a slot scored -inf
    held no hypothesis (a sentence that finished fewer than n_best) and is left out."""
    out = []
    for row_tokens, row_lengths, row_scores, row_log_probs in zip(tokens.tolist(), lengths.tolist(),
                                                                  scores.tolist(), log_probs.tolist()):
        out.append([Hypothesis(t[:n], s, lp) for t, n, s, lp in zip(row_tokens, row_lengths, row_scores, row_log_probs)
                    if s != -np.inf])
    return out
