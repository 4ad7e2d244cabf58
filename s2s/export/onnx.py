"""The two graphs of a bundle, traced from a :class:`~s2s.models.contract.Seq2Seq`.

``encoder.onnx``::

    src (N, S) int64, src_lengths (N,) int64 -> memory.<name>..., state.<name>...

``decoder_step.onnx``::

    prev_tokens (N,) int64, state.<name>..., memory.<name>...
        -> log_probs (N, V) float32, next.<name>... (the state after the step), attention (N, S)

Memory and state are the flat dicts of the decoding contract, in the order ``encode``
returns them; their names go into ``bundle.json``. The step ends in ``log_softmax`` so a search
reads log-probabilities directly. N and S are dynamic axes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from s2s.models.contract import Seq2Seq

OPSET = 17


@dataclass(frozen=True)
class GraphSpec:
    memory: list[str]
    state: list[str]


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
        logits, state, attn = self.model.step(prev_tokens, state, memory)
        return (torch.log_softmax(logits.float(), -1),) + tuple(state[n] for n in self.spec.state) + (attn,)


def sample_batch(vocab_size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A padded batch of 3 sentences of different lengths to trace with (ids avoid specials)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 4, 2])
    src = torch.randint(4, max(vocab_size, 5), (3, 7), generator=gen)
    src = src.masked_fill(torch.arange(7) >= lengths.unsqueeze(1), 0)
    src[torch.arange(3), lengths - 1] = 3  # EOS closes each source, as the translator builds it
    return src, lengths


def spec_of(model: Seq2Seq) -> GraphSpec:
    src, lengths = sample_batch(model.src_embed.num_embeddings)
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
    return GraphSpec(list(memory), list(state))


def export_graphs(model: Seq2Seq, out_dir: Path, opset: int = OPSET) -> GraphSpec:
    """Write ``encoder.onnx`` and ``decoder_step.onnx`` into ``out_dir``."""
    model = model.eval().cpu()
    spec = spec_of(model)
    src, lengths = sample_batch(model.src_embed.num_embeddings)
    encoder = EncoderGraph(model, spec).eval()
    step = StepGraph(model, spec).eval()
    batch, src_len = "batch", "src_len"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and RNN notices
        enc_names = [f"memory.{n}" for n in spec.memory] + [f"state.{n}" for n in spec.state]
        outputs = encoder(src, lengths)
        axes = {"src": {0: batch, 1: src_len}, "src_lengths": {0: batch}}
        for name, value in zip(enc_names, outputs):
            axes[name] = {0: batch, 1: src_len} if name.startswith("memory.") else {0: batch}
        torch.onnx.export(encoder, (src, lengths), str(out_dir / "encoder.onnx"), dynamo=False,
                          input_names=["src", "src_lengths"], output_names=enc_names,
                          dynamic_axes=axes, opset_version=opset)
        memory = dict(zip(spec.memory, outputs[: len(spec.memory)]))
        state = dict(zip(spec.state, outputs[len(spec.memory):]))
        prev = torch.full((src.size(0),), 2, dtype=torch.long)
        inputs = (prev, *(state[n] for n in spec.state), *(memory[n] for n in spec.memory))
        in_names = ["prev_tokens"] + [f"state.{n}" for n in spec.state] + [f"memory.{n}" for n in spec.memory]
        out_names = ["log_probs"] + [f"next.{n}" for n in spec.state] + ["attention"]
        axes = {name: {0: batch} for name in in_names + out_names}
        for name in [f"memory.{n}" for n in spec.memory] + ["attention"]:
            axes[name] = {0: batch, 1: src_len}
        torch.onnx.export(step, inputs, str(out_dir / "decoder_step.onnx"), dynamo=False,
                          input_names=in_names, output_names=out_names, dynamic_axes=axes, opset_version=opset)
    return spec


def write_topk_graph(path: Path, opset: int = OPSET) -> None:
    """``beam_topk.onnx``, the runtime's beam selection in one call::

        log_probs (N*K, V), scores (N*K, 1), shape [N, K*V] int64, k [1] int64
            -> values (N, k), indices (N, k) into each sentence's K*V candidates, best first

    ONNX TopK breaks ties by the lower index, as the PyTorch search does.
    """
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Add", ["log_probs", "scores"], ["total"]),
             helper.make_node("Reshape", ["total", "shape"], ["blocks"]),
             helper.make_node("TopK", ["blocks", "k"], ["values", "indices"], axis=1, largest=1, sorted=1)]
    graph = helper.make_graph(
        nodes, "beam_topk",
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["rows", "vocab"]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["rows", 1]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["batch", "k"]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, ["batch", "k"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="s2s")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
