"""Translate with an exported bundle: onnxruntime sessions driven by the numpy searches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import sentencepiece as spm

from s2s.cpu.allocator import back_with_huge_pages, heap_top, keep_freed_memory
from s2s.errors import BundleError, ConfigError
from s2s.runtime import search
from s2s.runtime.bundle import Bundle, read_bundle


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, then CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _direct_run(session: ort.InferenceSession):
    """``session.run`` without the Python wrapper's per-call checks (required inputs present,
    OrtValue ownership, graph capture), which the translator makes once at load: it always feeds
    the inputs the graph declares, as numpy arrays. Calling the binding directly measured 38 and
    52 us less per decoder step on the benchmark transformer at batch 1, beam 5 (2.7 and 3.4%;
    two processes, calls alternated). Falls back to ``session.run`` if a future onnxruntime
    moves the binding."""
    binding = getattr(session, "_sess", None)
    if binding is None or not callable(getattr(binding, "run", None)):
        return session.run
    return lambda names, feeds: binding.run(names, feeds, None)


SPIN = ("run", "always", "never")  # when onnxruntime's worker threads may busy-wait (Translator's spin)


class Translator:
    """``Translator.load(path).translate(lines, beam=5)``; empty lines come back empty.

    ``tune_allocator`` (default on) applies :func:`s2s.cpu.allocator.keep_freed_memory` to the
    process: glibc then keeps freed heap pages instead of unmapping every large block, which the
    search allocates at each step (reordered caches, scores). On the benchmark transformer at
    batch 32, beam 5 that measured 1.38x the throughput (one process, alternating rounds). It also
    backs the heap range that the sessions' weights filled with 2 MiB pages
    (:func:`s2s.cpu.allocator.back_with_huge_pages`; ``huge_page_bytes`` says how much): one process
    holding two translators of the benchmark transformer, one collapsed, steps alternated, gave
    0.97x the step time at batch 1 with beam 5, 0.95x at batch 32 greedy and 0.99x at batch 32
    with beam 5 (both orders of loading). Pass False to leave the host process's memory as it is.

    ``spin`` says when onnxruntime's worker threads may busy-wait for work instead of sleeping:
    ``"run"`` (default) while a graph runs, stopping when the call returns; ``"always"``
    (onnxruntime's own default); ``"never"``. Between two decoder steps the search runs numpy
    code on the calling thread, and a worker still spinning then takes a core from it; inside a
    step, a sleeping worker must be woken for every operator. Measured with 2 threads on 2 cores
    on the benchmark transformer, "run" against "always": 1.7x at batch 1 with beam 5, 1.5x at
    batch 32 greedy, 1.1x at batch 32 with beam 5; against "never": 1.33x, 1.21x and 1.11x.
    """

    def __init__(self, bundle: Bundle, variant: str = "fp32", providers: list[str] | None = None,
                 threads: int | None = None, tune_allocator: bool = True, spin: str = "run"):
        if spin not in SPIN:
            raise ConfigError(f"spin must be one of {', '.join(SPIN)}, got {spin!r}")
        if tune_allocator:
            keep_freed_memory()
        if variant not in bundle.variants:
            raise BundleError(f"{bundle.path}: no {variant!r} graphs (has {sorted(bundle.variants)})")
        self.bundle, self.variant = bundle, variant
        options = ort.SessionOptions()
        threads = threads or int(os.environ.get("S2S_THREADS", "0") or 0)
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # the search head's overridable defaults draw a warning per load
        options.add_session_config_entry("session.intra_op.allow_spinning", "0" if spin == "never" else "1")
        if spin == "run":
            options.add_session_config_entry("session.force_spinning_stop", "1")
        self.providers = providers or default_providers()
        files = bundle.variants[variant]
        start = heap_top() if tune_allocator else None
        self.encoder = ort.InferenceSession(str(bundle.file(files["encoder"])), options, providers=self.providers)
        self.decoder = ort.InferenceSession(str(bundle.file(files["decoder_step"])), options, providers=self.providers)
        # the weights (and their prepacked copies) now fill [start, heap top): 2 MiB pages for them
        self.huge_page_bytes = back_with_huge_pages(start, heap_top()) if tune_allocator else 0
        self._run_step = _direct_run(self.decoder)
        src, tgt = bundle.vocab_files()
        self.src_vocab = spm.SentencePieceProcessor(model_file=str(src))
        self.tgt_vocab = self.src_vocab if src == tgt else spm.SentencePieceProcessor(model_file=str(tgt))
        self.defaults = dict(bundle.meta.get("decode", {}))
        self._step_outputs = ["log_probs"] + [f"next.{n}" for n in bundle.state] + ["attention"]
        inputs = {i.name for i in self.decoder.get_inputs() + self.decoder.get_overridable_initializers()}
        # a graph drops inputs it never reads (multi-head attention reads keys/values, not the bank)
        self._memory_fed = [n for n in bundle.memory if f"memory.{n}" in inputs]
        self.has_search_head = {"search.mask", "search.scores", "search.shape", "search.k"} <= inputs
        self._select_outputs = ["top_values", "top_indices"] + [f"next.{n}" for n in bundle.state]
        self._feed_names = [(f"state.{n}", n) for n in bundle.state], [(f"memory.{n}", n) for n in self._memory_fed]
        self._head_inputs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (blocks, k) -> shape, k
        self.vocab_size = int(bundle.meta["vocab"].get("target_size") or len(self.tgt_vocab))

    @classmethod
    def load(cls, path: str | Path, variant: str = "fp32", providers: list[str] | None = None,
             threads: int | None = None, tune_allocator: bool = True, spin: str = "run") -> "Translator":
        return cls(read_bundle(path), variant, providers, threads, tune_allocator, spin)

    # ------------------------------------------------------------------ graphs
    def encode(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[dict, dict]:
        outputs = self.encoder.run(None, {"src": src, "src_lengths": src_lengths})
        k = len(self.bundle.memory)
        return dict(zip(self.bundle.memory, outputs[:k])), dict(zip(self.bundle.state, outputs[k:]))

    def _feeds(self, tokens: np.ndarray, state: dict, memory: dict) -> dict:
        state_names, memory_names = self._feed_names
        feeds = {feed: state[name] for feed, name in state_names}
        feeds.update({feed: memory[name] for feed, name in memory_names})
        feeds["prev_tokens"] = tokens
        return feeds

    def step(self, tokens: np.ndarray, state: dict, memory: dict):
        outputs = self._run_step(self._step_outputs, self._feeds(tokens, state, memory))
        return outputs[0], dict(zip(self.bundle.state, outputs[1:-1])), outputs[-1]

    def select(self, tokens: np.ndarray, state: dict, memory: dict, scores: np.ndarray, blocks: int, k: int,
               mask: np.ndarray | None):
        """One step and the beam's choice in one onnxruntime call: each sentence's k best of
        ``log_probs + mask + scores`` over its K*V candidates, and the next state."""
        if not self.has_search_head:
            return search.numpy_select(self.step)(tokens, state, memory, scores, blocks, k, mask)
        feeds = self._feeds(tokens, state, memory)
        head = self._head_inputs.get((blocks, k))
        if head is None:
            head = self._head_inputs[blocks, k] = np.array([blocks, -1], np.int64), np.array([k], np.int64)
        feeds["search.scores"], feeds["search.shape"], feeds["search.k"] = scores, *head
        if mask is not None:
            feeds["search.mask"] = mask
        outputs = self._run_step(self._select_outputs, feeds)
        return outputs[0], outputs[1], dict(zip(self.bundle.state, outputs[2:]))

    # ------------------------------------------------------------------ text
    def _options(self, options: dict) -> dict:
        merged = {"beam": 5, "n_best": 1, "length_penalty": 0.0, "max_len_ratio": 1.5, "max_len_offset": 10,
                  "min_len": 0, "max_len": 0, "no_repeat_ngram": 0, "batch_size": 64}
        merged.update({k: v for k, v in self.defaults.items() if k in merged})
        unknown = set(options) - set(merged)
        if unknown:
            raise TypeError(f"unknown decoding options {sorted(unknown)}; known: {sorted(merged)}")
        merged.update({k: v for k, v in options.items() if v is not None})
        if merged["max_len"] > 0 and merged["min_len"] > merged["max_len"]:
            raise ConfigError(f"decoding options: min_len ({merged['min_len']}) must not exceed max_len "
                              f"({merged['max_len']})")
        return merged

    def hypotheses(self, lines: list[str], **options) -> list[list[search.Hypothesis]]:
        """n-best hypotheses of each line, best first (options as :meth:`translate`)."""
        o = self._options(options)
        results = [[search.Hypothesis([], 0.0, 0.0)] for _ in lines]
        ids = self.src_vocab.encode(list(lines), out_type=int)
        todo = sorted((i for i, line in enumerate(lines) if line.strip()), key=lambda i: -len(ids[i]))
        for start in range(0, len(todo), o["batch_size"]):
            chunk = todo[start: start + o["batch_size"]]
            for i, hyps in zip(chunk, self._batch([ids[i] for i in chunk], o)):
                results[i] = hyps
        return results

    def translate(self, lines: list[str], beam: int | None = None, n_best: int | None = None,
                  max_len_ratio: float | None = None, length_penalty: float | None = None, **options) -> list[str]:
        """The best translation of each line, detokenized. Options default to the bundle's
        ``decode`` section: beam, n_best, length_penalty, max_len_ratio, max_len_offset, min_len,
        max_len, no_repeat_ngram, batch_size."""
        hyps = self.hypotheses(lines, beam=beam, n_best=n_best, max_len_ratio=max_len_ratio,
                               length_penalty=length_penalty, **options)
        return [self.tgt_vocab.decode(h[0].tokens) for h in hyps]

    def _batch(self, ids: list[list[int]], o: dict) -> list[list[search.Hypothesis]]:
        rows = [list(r) + [search.EOS] for r in ids]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        src = np.zeros((len(rows), int(lengths.max())), dtype=np.int64)
        for i, r in enumerate(rows):
            src[i, : len(r)] = r
        limits = search.max_lengths(lengths, o["max_len_ratio"], o["max_len_offset"], minimum=o["min_len"],
                                    maximum=o["max_len"])
        constraints = search.Constraints(limits, o["min_len"], o["no_repeat_ngram"])
        memory, state = self.encode(src, lengths)
        if o["beam"] == 1 and o["n_best"] == 1:
            return [[h] for h in search.greedy(self.select, memory, state, constraints, self.vocab_size,
                                               o["length_penalty"])]
        return search.beam(self.select, memory, state, constraints, self.vocab_size, o["beam"], o["n_best"],
                           o["length_penalty"], self.bundle.memory_per_sentence)
