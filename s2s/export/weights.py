"""One weights file for all the graphs of a bundle variant (ONNX external data).

``search.onnx`` holds the encoder's and the decoder step's nodes, so with its weights inside it
a bundle would carry every tensor twice. Instead each graph of a variant names its large tensors
in ``weights[.variant].bin``, each tensor stored once (graphs that share a tensor point at the
same bytes). onnxruntime reads external data beside a model opened from its path; onnxruntime-web
takes the file through the session option ``externalData``.

Only a graph's own initializers move, not those of the graphs inside its nodes: the search
loop's body keeps the step's weights inline. onnxruntime-web (1.31) reads external data of the
top-level graph only, and the weights must stay in the body, where onnxruntime prepacks them
for its matrix kernels (``s2s.export.search_graph``); so ``search.onnx`` carries the decoder's
weights a second time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

ALIGN = 64  # each tensor starts at a multiple of this offset
SMALL = 1024  # bytes: smaller tensors stay inside their graph


def _raw(tensor: TensorProto) -> bytes:
    return tensor.raw_data if tensor.HasField("raw_data") else numpy_helper.to_array(tensor).tobytes()


def share_weights(folder: Path, graphs: list[str], weights: str) -> int:
    """Move the large tensors of the ``graphs`` (file names in ``folder``) into ``folder/weights``,
    each distinct tensor once; returns the size of that file in bytes. The graphs are read whole
    first (with any external data they had), so ``weights`` may be the file they read."""
    models = {name: onnx.load(str(folder / name)) for name in graphs}
    for model in models.values():
        _constants_to_initializers(model.graph)
    offsets: dict[tuple, tuple[int, int]] = {}
    partial = folder / f".{weights}.partial"
    with open(partial, "wb") as out:
        for model in models.values():
            for tensor in model.graph.initializer:
                data = _raw(tensor)
                if len(data) < SMALL:
                    continue
                key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(data).digest())
                if key not in offsets:
                    out.write(b"\0" * (-out.tell() % ALIGN))
                    offsets[key] = (out.tell(), len(data))
                    out.write(data)
                offset, length = offsets[key]
                _point(tensor, weights, offset, length)
        out.flush()
        os.fsync(out.fileno())
    size = partial.stat().st_size
    partial.replace(folder / weights)
    for name, model in models.items():
        onnx.save(model, str(folder / name))
    return size


def _constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Large ``Constant`` nodes (a position table, say) become initializers, so they can be shared too."""
    kept = []
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and len(_raw(value)) >= SMALL:
            tensor = TensorProto()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            kept.append(node)
    if len(kept) < len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)


def _point(tensor: TensorProto, location: str, offset: int, length: int) -> None:
    """Make ``tensor`` refer to ``length`` bytes at ``offset`` of ``location``."""
    for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
        tensor.ClearField(field)
    del tensor.external_data[:]
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
