"""The two graphs of a bundle, traced from a :class:`~s2s.models.contract.Seq2Seq`.

``encoder.onnx``::

    src (N, S) int64, src_lengths (N,) int64 -> memory.<name>..., state.<name>...

``decoder_step.onnx``::

    prev_tokens (N,) int64, state.<name>..., memory.<name>...
        -> log_probs (N, V) float32, next.<name>... (the state after the step), attention (N, S)

``attention_heads.onnx`` (only with ``s2s export --attention-heads``, transformer decoders)::

    src (N, S) int64, src_lengths (N,) int64, tgt_in (N, T) int64 (BOS + the target)
        -> heads.<layer> (N, heads, T, S) float32, one per decoder layer

Memory and state are the flat dicts of the decoding contract, in the order ``encode``
returns them; their names go into ``bundle.json``, with the dynamic axes of each (``batch``,
``src_len``, and ``steps`` for a transformer's key/value caches, which grow by one per step;
a transformer's cross-attention keys carry ``src_len`` on their last axis). The step ends in ``log_softmax`` so a search
reads log-probabilities directly (with copy attention the step returns the copy mixture's, and
when extended ids are possible ``log_probs`` has V + S columns, a dynamic axis ``width``). N and S
are dynamic axes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from s2s.export.onnx_builder import head_chunk
from s2s.models.contract import Seq2Seq

OPSET = 17


@dataclass(frozen=True)
class GraphSpec:
    """Names of the memory and state tensors, in order, and their specs for ``bundle.json``
    (name, shape with ``batch``/``src_len`` for the dynamic axes, dtype)."""

    memory: list[str]
    state: list[str]
    memory_specs: list[dict]
    state_specs: list[dict]


class EncoderGraph(nn.Module):
    def __init__(self, model: Seq2Seq, spec: GraphSpec):
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, ...]:
        memory, state = self.model.encode(src, src_lengths)
        return tuple(memory[n] for n in self.spec.memory) + tuple(state[n] for n in self.spec.state)


class StepGraph(nn.Module):
    def __init__(self, model: Seq2Seq, spec: GraphSpec):
        super().__init__()
        self.model, self.spec = model, spec

    def forward(self, prev_tokens: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        k = len(self.spec.state)
        state = dict(zip(self.spec.state, tensors[:k]))
        memory = dict(zip(self.spec.memory, tensors[k:]))
        log_probs, state, attn = self.model.log_probs(prev_tokens, state, memory)
        return (log_probs,) + tuple(state[n] for n in self.spec.state) + (attn,)


class HeadsGraph(nn.Module):
    """Teacher forcing of a whole target: each decoder layer's cross-attention, head by head
    (:meth:`~s2s.models.contract.Seq2Seq.head_attention`), for ``s2s plot attention --heads all``."""

    def __init__(self, model: Seq2Seq):
        super().__init__()
        self.model = model

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.model.head_attention(src, src_lengths, tgt_in))


def sample_batch(vocab_size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A padded batch of 3 sentences of different lengths to trace with (ids avoid specials)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 4, 2])
    src = torch.randint(4, max(vocab_size, 5), (3, 7), generator=gen)
    src = src.masked_fill(torch.arange(7) >= lengths.unsqueeze(1), 0)
    src[torch.arange(3), lengths - 1] = 3  # EOS closes each source, as the translator builds it
    return src, lengths


def _tensor_specs(values: dict[str, Tensor], axes: dict[int, str]) -> list[dict]:
    return [{"name": name, "shape": [axes.get(i, int(n)) for i, n in enumerate(value.shape)],
             "dtype": str(value.dtype).removeprefix("torch.")} for name, value in values.items()]


def export_graphs(model: Seq2Seq, out_dir: Path, opset: int = OPSET) -> GraphSpec:
    """Write ``encoder.onnx`` and ``decoder_step.onnx`` into ``out_dir``."""
    model = model.eval().cpu()
    src, lengths = sample_batch(model.src_embed.num_embeddings)
    batch, src_len = "batch", "src_len"
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
    state_axes = {name: {0: batch, **model.decoder.state_axes().get(name, {})} for name in state}
    # a memory kept per sentence has its own batch axis: B sentences while the state has B * K rows
    memory_batch = "sentences" if model.decoder.memory_per_sentence else batch
    memory_axes = {name: {0: memory_batch, **model.decoder.memory_axes().get(name, {1: src_len})} for name in memory}
    spec = GraphSpec(list(memory), list(state),
                     [_tensor_specs({name: memory[name]}, memory_axes[name])[0] for name in memory],
                     [_tensor_specs({name: state[name]}, state_axes[name])[0] for name in state])
    encoder = EncoderGraph(model, spec).eval()
    step = StepGraph(model, spec).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and RNN notices
        enc_names = [f"memory.{n}" for n in spec.memory] + [f"state.{n}" for n in spec.state]
        axes = {"src": {0: batch, 1: src_len}, "src_lengths": {0: batch}}
        for name in spec.memory:
            axes[f"memory.{name}"] = memory_axes[name]
        for name in spec.state:
            axes[f"state.{name}"] = state_axes[name]
        torch.onnx.export(encoder, (src, lengths), str(out_dir / "encoder.onnx"), dynamo=False,
                          input_names=["src", "src_lengths"], output_names=enc_names,
                          dynamic_axes=axes, opset_version=opset)
        prev = torch.full((src.size(0),), 2, dtype=torch.long)
        inputs = (prev, *(state[n] for n in spec.state), *(memory[n] for n in spec.memory))
        in_names = ["prev_tokens"] + [f"state.{n}" for n in spec.state] + [f"memory.{n}" for n in spec.memory]
        out_names = ["log_probs"] + [f"next.{n}" for n in spec.state] + ["attention"]
        axes = {name: {0: batch} for name in in_names + out_names}
        for name in spec.memory:
            axes[f"memory.{name}"] = memory_axes[name]
        axes["attention"] = {0: batch, 1: src_len}
        if model.copy is not None and model.copy.extends:  # V + S columns: extended ids of copied pieces
            axes["log_probs"] = {0: batch, 1: "width"}
        for name in spec.state:  # a growing cache has one more position after the step
            axes[f"state.{name}"] = state_axes[name]
            axes[f"next.{name}"] = {i: f"next_{label}" if i else label for i, label in state_axes[name].items()}
        torch.onnx.export(step, inputs, str(out_dir / "decoder_step.onnx"), dynamo=False,
                          input_names=in_names, output_names=out_names, dynamic_axes=axes, opset_version=opset)
    return spec


def add_search_head(path: Path) -> None:
    """Append beam selection to ``decoder_step.onnx`` so a search step is one onnxruntime call::

        search.mask (M, V) float, search.scores (N, 1) float, search.shape [2] int64, search.k [1] int64
            -> top_values, top_indices = TopK(Reshape(log_probs + mask + scores, shape), k)

    ``mask`` is 0 where a token is allowed and -inf where a length or n-gram constraint bans it
    (M = 1 when every row shares it). With ``shape = [sentences, -1]`` each row of the result
    covers one sentence's K*V candidates. ONNX TopK breaks ties by the lower index, as the PyTorch
    search does. The four inputs are also initializers (0, 0, [0, -1], [1]), so a caller that only
    wants ``log_probs`` may leave them out.

    When V splits into chunks of c (:func:`head_chunk`), the top-k runs in two stages with the same
    result: each chunk's maximum, the k best chunks (in index order), then the top k of just those
    chunks' candidates. Every candidate among the k best lies in a chunk whose maximum is among
    the k best maxima (ties to the lower chunk, as ties among candidates go to the lower index),
    and gathering the chosen chunks in index order keeps tied candidates in index order. One
    (32, 40000) TopK took 756 us; the two stages 235 us.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    defaults = {"search.mask": np.zeros((1, 1), np.float32), "search.scores": np.zeros((1, 1), np.float32),
                "search.shape": np.array([0, -1], np.int64), "search.k": np.array([1], np.int64)}
    dims = {"search.mask": ["mask_rows", "mask_cols"], "search.scores": ["batch", 1], "search.shape": [2],
            "search.k": [1]}
    for name, value in defaults.items():
        graph.initializer.append(numpy_helper.from_array(value, name))
        kind = TensorProto.FLOAT if value.dtype == np.float32 else TensorProto.INT64
        graph.input.append(helper.make_tensor_value_info(name, kind, dims[name]))
    graph.node.extend([
        # mask + scores first: without a mask that sum is (N, 1), and the (N, V) log-probabilities
        # are read once instead of twice. Each element gets the same float sum either way: the
        # mask holds only 0 and -inf.
        helper.make_node("Add", ["search.scores", "search.mask"], ["search/offsets"]),
        helper.make_node("Add", ["log_probs", "search/offsets"], ["search/total"]),
        helper.make_node("Reshape", ["search/total", "search.shape"], ["search/blocks"]),
    ])
    vocab = next(o for o in graph.output if o.name == "log_probs").type.tensor_type.shape.dim[-1].dim_value
    chunk = head_chunk(vocab)
    if not chunk:
        graph.node.append(helper.make_node("TopK", ["search/blocks", "search.k"], ["top_values", "top_indices"],
                                           axis=1, largest=1, sorted=1))
    else:
        constants = {"search/chunked": [0, -1, chunk], "search/one": [1], "search/last": [2], "search/chunk": chunk,
                     "search/in_chunk": np.arange(chunk), "search/flat": [0, -1]}
        graph.initializer.extend(numpy_helper.from_array(np.asarray(v, np.int64), n) for n, v in constants.items())
        graph.node.extend([
            helper.make_node("Reshape", ["search/blocks", "search/chunked"], ["search/chunks"]),  # (S, C/c, c)
            helper.make_node("ReduceMax", ["search/chunks"], ["search/chunk_max"], axes=[2], keepdims=0),
            helper.make_node("Shape", ["search/chunk_max"], ["search/chunk_shape"]),
            helper.make_node("Gather", ["search/chunk_shape", "search/one"], ["search/chunk_count"], axis=0),
            helper.make_node("Min", ["search.k", "search/chunk_count"], ["search/kc"]),  # k may exceed the chunks
            helper.make_node("TopK", ["search/chunk_max", "search/kc"], ["search/best_max", "search/best_chunks"],
                             axis=1, largest=1, sorted=1),
            helper.make_node("TopK", ["search/best_chunks", "search/kc"], ["search/chosen", "search/_order"],
                             axis=1, largest=0, sorted=1),  # the chosen chunks in index order
            helper.make_node("Unsqueeze", ["search/chosen", "search/last"], ["search/chosen3"]),
            helper.make_node("Mul", ["search/chosen3", "search/chunk"], ["search/starts"]),
            helper.make_node("Add", ["search/starts", "search/in_chunk"], ["search/where3"]),  # (S, kc, c)
            helper.make_node("Reshape", ["search/where3", "search/flat"], ["search/where"]),
            helper.make_node("GatherElements", ["search/blocks", "search/where"], ["search/candidates"], axis=1),
            helper.make_node("TopK", ["search/candidates", "search.k"], ["top_values", "search/picked"],
                             axis=1, largest=1, sorted=1),
            helper.make_node("GatherElements", ["search/where", "search/picked"], ["top_indices"], axis=1),
        ])
    graph.output.extend([helper.make_tensor_value_info("top_values", TensorProto.FLOAT, ["blocks", "k"]),
                         helper.make_tensor_value_info("top_indices", TensorProto.INT64, ["blocks", "k"])])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export_heads_graph(model: Seq2Seq, out_dir: Path, opset: int = OPSET) -> int:
    """Write ``attention_heads.onnx`` into ``out_dir``; returns the number of decoder layers.

    Only a transformer decoder without coverage traces to a graph whose target length is free
    (an RNN decoder and coverage go position by position in Python, and a trace would fix T);
    an RNN decoder's one attention is the step graph's ``attention`` output anyway."""
    from s2s.errors import BundleError
    from s2s.models.decoders.transformer import TransformerDecoder

    if not isinstance(model.decoder, TransformerDecoder):
        raise BundleError("--attention-heads: only a transformer decoder has several heads and layers; an RNN "
                          "decoder's attention is in every bundle already")
    if getattr(model.decoder, "coverage", False):
        raise BundleError("--attention-heads: a decoder with coverage computes its attention position by position, "
                          "which does not export to one graph")
    model = model.eval().cpu()
    src, lengths = sample_batch(model.src_embed.num_embeddings)
    tgt_in = torch.randint(4, max(model.tgt_embed.num_embeddings, 5), (src.size(0), 5),
                           generator=torch.Generator().manual_seed(1))
    tgt_in[:, 0] = 2  # BOS
    with torch.no_grad():
        layers = len(model.head_attention(src, lengths, tgt_in))
    names = [f"heads.{i}" for i in range(layers)]
    axes = {"src": {0: "batch", 1: "src_len"}, "src_lengths": {0: "batch"}, "tgt_in": {0: "batch", 1: "tgt_len"},
            **{name: {0: "batch", 2: "tgt_len", 3: "src_len"} for name in names}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(HeadsGraph(model).eval(), (src, lengths, tgt_in), str(out_dir / "attention_heads.onnx"),
                          dynamo=False, input_names=["src", "src_lengths", "tgt_in"], output_names=names,
                          dynamic_axes=axes, opset_version=opset)
    return layers
