"""Translate with an exported bundle: onnxruntime sessions driven by the one search of
:mod:`s2s.search`, through the interface the PyTorch translator shares."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import sentencepiece as spm

from s2s.bundle import Bundle, read_bundle
from s2s.cpu.allocator import back_with_huge_pages, heap_top, keep_freed_memory
from s2s.errors import BundleError, ConfigError
from s2s.search import translator as base
from s2s.search.arrays import ArrayDecoder, take
from s2s.runtime.graph_search import graph_feeds, hypotheses_of
from s2s.search.copying import piece_table
from s2s.search.loops import limits_of


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, then CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


SPIN = ("run", "always", "never")  # when onnxruntime's worker threads may busy-wait (Translator's spin)
SEARCHES = ("python", "graph", "auto")  # where beam search and greedy run (Translator's search)


class Translator(base.Translator):
    """``Translator.load(path).translate(lines, beam=5)``; empty lines come back empty.

    It is also the search's :class:`~s2s.search.loops.Decoder`: :meth:`select` runs the step
    graph with its search head, :meth:`reorder` and :meth:`take_memory` pick rows of arrays.

    ``tune_allocator`` (default off: the host process's memory is left as it is) is for a caller
    that owns its process, such as ``s2s translate`` or a benchmark. It applies
    :func:`s2s.cpu.allocator.keep_freed_memory`, a process-wide glibc setting: glibc then keeps
    freed heap pages instead of unmapping every large block, which the search allocates at each
    step (reordered caches, scores). It also backs the heap range that the sessions' weights
    filled with 2 MiB pages (:func:`s2s.cpu.allocator.back_with_huge_pages`; ``huge_page_bytes``
    says how much, 0 without it). What both measured is in ``exported/README.md``.

    ``spin`` says when onnxruntime's worker threads may busy-wait for work instead of sleeping:
    ``"run"`` (default) while a graph runs, stopping when the call returns; ``"always"``
    (onnxruntime's own default); ``"never"``. Between two decoder steps the search runs numpy
    code on the calling thread, and a worker still spinning then takes a core from it; inside a
    step, a sleeping worker must be woken for every operator. What each setting measured is in
    ``exported/README.md``, "Where the speed code's figures live".

    ``search`` says where beam search and greedy run: ``"python"`` (default), the numpy loops of
    :mod:`s2s.search.loops` calling the step graph once per target position; ``"graph"``, the
    bundle's ``search.onnx`` (``s2s export --search``), the same search inside one onnxruntime
    call (:mod:`s2s.runtime.graph_search`). Sampling and kept attention need the Python search:
    with ``"graph"`` asking for them is an error; ``"auto"`` runs them in the Python search and
    everything else in the graph (in the Python search when the bundle has no search graph).
    """

    def __init__(self, bundle: Bundle, variant: str | None = None, providers: list[str] | None = None,
                 threads: int | None = None, tune_allocator: bool = False, spin: str = "run", search: str = "python"):
        if spin not in SPIN:
            raise ConfigError(f"spin must be one of {', '.join(SPIN)}, got {spin!r}")
        if search not in SEARCHES:
            raise ConfigError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
        if tune_allocator:
            keep_freed_memory()
        variant = variant or bundle.default_variant
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
        self.search = search
        if search == "graph" and "search" not in files:
            raise BundleError(f"{bundle.path}: no search graph for the {variant} variant; add one with "
                              f"s2s export --model {bundle.path} --search")
        self.search_graph = None
        if search != "python" and "search" in files:
            self.search_graph = ort.InferenceSession(str(bundle.file(files["search"])), options,
                                                     providers=self.providers)
        # the weights (and their prepacked copies) now fill [start, heap top): 2 MiB pages for them
        self.huge_page_bytes = back_with_huge_pages(start, heap_top()) if tune_allocator else 0
        src, tgt = bundle.vocab_files()
        self.src_vocab = spm.SentencePieceProcessor(model_file=str(src))
        self.tgt_vocab = self.src_vocab if src == tgt else spm.SentencePieceProcessor(model_file=str(tgt))
        self.options, self.special = bundle.decode, bundle.special
        self.bos, self.memory_per_sentence = bundle.special.bos, bundle.memory_per_sentence
        self._step_outputs = ["log_probs"] + [f"next.{n}" for n in bundle.state] + ["attention"]
        inputs = {i.name for i in self.decoder.get_inputs() + self.decoder.get_overridable_initializers()}
        # a graph drops inputs it never reads (multi-head attention reads keys/values, not the bank)
        self._memory_fed = [n for n in bundle.memory if f"memory.{n}" in inputs]
        self.has_search_head = {"search.mask", "search.scores", "search.shape", "search.k"} <= inputs
        self._plain = ArrayDecoder(self.step, self.bos)  # bundles written before the search head: top k in numpy
        self._select_outputs = ["top_values", "top_indices"] + [f"next.{n}" for n in bundle.state]
        self._feed_names = [(f"state.{n}", n) for n in bundle.state], [(f"memory.{n}", n) for n in self._memory_fed]
        self._head_inputs: dict[tuple[int, int, int], tuple] = {}  # (blocks, k, rows) -> zero scores, shape, k
        self.vocab_size = int(bundle.meta["vocab"].get("target_size") or len(self.tgt_vocab))
        self.piece_models = self.src_vocab, self.tgt_vocab
        self.copy_extends = bundle.copy_extends
        self.source_to_target = piece_table(self.src_vocab, self.tgt_vocab) if self.copy_extends else None
        self._heads = None  # attention_heads.onnx's session, opened on first use

    @classmethod
    def load(cls, path: str | Path, variant: str | None = None, providers: list[str] | None = None,
             threads: int | None = None, tune_allocator: bool = False, spin: str = "run",
             search: str = "python") -> "Translator":
        return cls(read_bundle(path), variant, providers, threads, tune_allocator, spin, search)

    # ------------------------------------------------------------------ graphs
    def encode(self, src: np.ndarray, src_lengths: np.ndarray) -> tuple[dict, dict]:
        outputs = self.encoder.run(None, {"src": src, "src_lengths": src_lengths})
        k = len(self.bundle.memory)
        return dict(zip(self.bundle.memory, outputs[:k])), dict(zip(self.bundle.state, outputs[k:]))

    def start(self, src: np.ndarray, src_lengths: np.ndarray):
        return (self, *self.encode(src, src_lengths))

    def _feeds(self, tokens: np.ndarray, state: dict, memory: dict) -> dict:
        state_names, memory_names = self._feed_names
        feeds = {feed: state[name] for feed, name in state_names}
        feeds.update({feed: memory[name] for feed, name in memory_names})
        feeds["prev_tokens"] = tokens
        return feeds

    def _run_step(self, names: list[str], feeds: dict) -> list:
        """Every call of the step graph goes through here (tests watch it), by onnxruntime's public
        ``InferenceSession.run``."""
        return self.decoder.run(names, feeds)

    def step(self, tokens: np.ndarray, state: dict, memory: dict):
        outputs = self._run_step(self._step_outputs, self._feeds(tokens, state, memory))
        return outputs[0], dict(zip(self.bundle.state, outputs[1:-1])), outputs[-1]

    widens_for_eos = True  # below min_len the head returns one more candidate per row: no (N, V) mask

    def select(self, tokens: np.ndarray, state: dict, memory: dict, scores: np.ndarray | None, blocks: int, k: int,
               mask: np.ndarray | None, ban_eos: bool = False, attention: bool = False):
        """One step and the beam's choice in one onnxruntime call: each sentence's k best of
        ``log_probs + mask + scores`` over its K*V candidates, the next state, and with
        ``attention`` the step graph's attention output (N, S), else None (not fetched). Without
        scores (greedy, sampling) the head adds zeros."""
        if ban_eos:
            raise ValueError("the runtime bans EOS by widening (widens_for_eos): the search never asks ban_eos")
        if not self.has_search_head:
            return self._plain.select(tokens, state, memory, scores, blocks, k, mask, attention=attention)
        feeds = self._feeds(tokens, state, memory)
        head = self._head_inputs.get((blocks, k, len(tokens)))
        if head is None:
            head = self._head_inputs[blocks, k, len(tokens)] = (np.zeros((len(tokens), 1), np.float32),
                                                                np.array([blocks, -1], np.int64), np.array([k], np.int64))
        zeros, feeds["search.shape"], feeds["search.k"] = head
        feeds["search.scores"] = zeros if scores is None else scores
        if mask is not None:
            feeds["search.mask"] = mask
        outputs = self._run_step(self._select_outputs + ["attention"] if attention else self._select_outputs, feeds)
        # zip stops at the state's names: a trailing attention output is not part of the state
        return outputs[0], outputs[1], dict(zip(self.bundle.state, outputs[2:])), outputs[-1] if attention else None

    def search_batch(self, ids: list[list[int]], options, rng=None, attention: bool = False):
        """With ``search="graph"``: the batch's n-best lists from one run of ``search.onnx``;
        with ``"auto"`` too, unless the call samples or keeps attention or the bundle has no search
        graph; otherwise the Python search (:meth:`s2s.search.translator.Translator.search_batch`)."""
        if self.search_graph is None or (self.search == "auto" and (attention or options.sample)):
            return super().search_batch(ids, options, rng, attention)
        if attention:
            raise ConfigError("the graph search returns no attention; keep attention with search='python' "
                              "(or 'auto': the Python search for such calls)")
        src, lengths = self.padded(ids)
        limits_of(lengths, options, self.special.eos)  # an impossible min_len fails here, as in the Python search
        tokens, lengths_out, scores, log_probs = self.search_graph.run(
            ["tokens", "lengths", "scores", "log_probs"], graph_feeds(src, lengths, options))
        return hypotheses_of(tokens, lengths_out, scores, log_probs)

    reorder = staticmethod(take)
    take_memory = staticmethod(take)

    def head_attention(self, line: str, hypothesis) -> list[np.ndarray]:
        """Every decoder layer's cross-attention, each head apart: (heads, T + 1, S + 1) per layer.
        A transformer bundle replays the hypothesis through ``attention_heads.onnx`` (``s2s export
        --attention-heads``); an RNN decoder has one layer of one head, the attention the search
        kept (decode with ``attention=True``)."""
        files = self.bundle.variants[self.variant]
        if "attention_heads" in files:
            if self._heads is None:
                self._heads = ort.InferenceSession(str(self.bundle.file(files["attention_heads"])),
                                                   providers=self.providers)
            ids = self.encode_lines([line])[0]
            if self.options.max_src_len:  # the source as hypotheses() read it
                ids = ids[: self.options.max_src_len]
            feeds = {"src": np.array([[*ids, self.special.eos]], dtype=np.int64),
                     "src_lengths": np.array([len(ids) + 1], dtype=np.int64),
                     "tgt_in": np.array([[self.bos, *hypothesis.tokens]], dtype=np.int64)}
            return [layer[0] for layer in self._heads.run(None, feeds)]
        if self.bundle.meta["architecture"]["decoder"] == "transformer":
            raise BundleError(f"{self.bundle.path}: no attention_heads graph; each layer's and each head's attention "
                              "needs a bundle exported with s2s export --attention-heads (or the training run)")
        if hypothesis.attention is None:
            raise ValueError("this hypothesis kept no attention: decode with attention=True")
        return [np.asarray(hypothesis.attention, dtype=np.float32)[None]]

    # ------------------------------------------------------------------ text
    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        return self.src_vocab.encode(lines, out_type=int)

    def detokenize(self, tokens: list[int]) -> str:
        return self.tgt_vocab.decode(tokens)
