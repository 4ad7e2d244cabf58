"""Small tools to write ONNX graphs by hand and to merge existing ones (for ``search.onnx``)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, TensorProto, helper, numpy_helper

_TYPES = {TensorProto.INT64: np.int64, TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
          TensorProto.BOOL: np.bool_, TensorProto.INT32: np.int32}


class Nodes:
    """Nodes of one graph, written like numpy code: ``g("Add", a, b)`` appends an ``Add`` node
    and returns its output's name (a list of names with ``outs``). Every name starts with
    ``prefix``, so that graphs built apart never clash. Shapes are (1,) int64 tensors, as
    ``Shape`` returns them; :meth:`scalar` makes a 0-d tensor where an operator needs one."""

    def __init__(self, prefix: str):
        self.prefix, self.nodes, self.count = prefix, [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def __call__(self, op: str, *inputs: str, outs: int = 1, **attrs):
        names = [self.name(op.lower()) for _ in range(outs)]
        self.nodes.append(helper.make_node(op, list(inputs), names, name=f"{names[0]}/node", **attrs))
        return names[0] if outs == 1 else names

    def const(self, value: np.ndarray) -> str:
        return self("Constant", value=numpy_helper.from_array(np.asarray(value)))

    def i64(self, value) -> str:
        """An int64 constant: 0-d from a number, 1-d from a list."""
        return self.const(np.array(value, dtype=np.int64))

    def i32(self, value) -> str:
        return self.const(np.array(value, dtype=np.int32))

    def f32(self, value) -> str:
        return self.const(np.array(value, dtype=np.float32))

    def f64(self, value) -> str:
        return self.const(np.array(value, dtype=np.float64))

    def shape(self, x: str, axis: int) -> str:
        """(1,) int64: the size of ``x`` along ``axis``."""
        return self("Shape", x, start=axis, end=axis + 1)

    def scalar(self, x: str) -> str:
        """A one-element tensor as a 0-d one."""
        return self("Reshape", x, self.i64(np.zeros(0, dtype=np.int64)))

    def range(self, n: str) -> str:
        """0, 1, ..., n - 1 for a one-element int64 ``n``."""
        return self("Range", self.i64(0), self.scalar(n), self.i64(1))

    def unsqueeze(self, x: str, axis: int) -> str:
        return self("Unsqueeze", x, self.i64([axis]))

    def cat(self, *parts: str) -> str:
        """Concatenate (1,) sizes into a shape."""
        return self("Concat", *parts, axis=0)

    def flat(self, x: str) -> str:
        return self("Reshape", x, self.i64([-1]))

    def flat_rows(self, x: str) -> str:
        """(R, ...) -> (R, -1)."""
        return self("Reshape", x, self.i64([0, -1]))

    def filled(self, shape: str, kind: int, value) -> str:
        return self("ConstantOfShape", shape, value=numpy_helper.from_array(np.array([value], dtype=_TYPES[kind])))

    def identity(self, x: str, name: str | None = None) -> str:
        out = f"{self.prefix}{name}" if name else self.name("identity")
        self.nodes.append(helper.make_node("Identity", [x], [out], name=f"{out}/node"))
        return out

    def graph(self, name: str, outputs: list[str], kinds: list[int]) -> GraphProto:
        """These nodes as a branch of an ``If``: no inputs (it reads the outer scope)."""
        return helper.make_graph(self.nodes, name, [],
                                 [helper.make_tensor_value_info(o, k, None) for o, k in zip(outputs, kinds)])


def head_chunk(vocab: int) -> int:
    """Chunk width of the search head's two-stage top-k: the largest divisor of ``vocab`` within
    16..64 that leaves at least 32 chunks, or 0 (one plain TopK) when there is none."""
    return next((c for c in range(64, 15, -1) if vocab % c == 0 and vocab // c >= 32), 0)


def _subgraphs(node: onnx.NodeProto):
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def _reads(node: onnx.NodeProto) -> set[str]:
    """Every name a node reads, its subgraphs' outer-scope reads included (a superset is fine)."""
    names = {i for i in node.input if i}
    for sub in _subgraphs(node):
        for inner in sub.node:
            names |= _reads(inner)
    return names


def reachable(graph: GraphProto, outputs: list[str]) -> set[int]:
    """Indices of the nodes that ``outputs`` depend on (a graph's nodes are in topological order)."""
    needed, keep = set(outputs), set()
    for i in range(len(graph.node) - 1, -1, -1):
        node = graph.node[i]
        if needed & set(node.output):
            keep.add(i)
            needed |= _reads(node)
    return keep


def _rename_graph(graph: GraphProto, rename) -> None:
    """Rename every value of ``graph`` in place, nested graphs included."""
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = rename(value.name)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for node in graph.node:
        _rename_node(node, rename)


def _rename_node(node: onnx.NodeProto, rename) -> None:
    node.input[:] = [rename(i) if i else i for i in node.input]
    node.output[:] = [rename(o) if o else o for o in node.output]
    node.name = rename(node.name or node.output[0] + "/node")
    for sub in _subgraphs(node):
        _rename_graph(sub, rename)


def renamed_graph(graph: GraphProto, mapping: dict[str, str], prefix: str,
                  keep: set[int] | None = None) -> tuple[list, list, list]:
    """The nodes of ``graph`` (those in ``keep``, else all), the initializers they read and the
    shapes known of its values (``value_info``: onnxruntime's fusions check them), with each name
    given by ``mapping`` or else prefixed: copies, ready to splice into another graph."""
    def rename(name: str) -> str:
        return mapping.get(name, prefix + name)

    nodes = []
    for i, node in enumerate(graph.node):
        if keep is None or i in keep:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            nodes.append(copy)
    read = set().union(*(_reads(n) for n in nodes)) if nodes else set()
    initializers = []
    for tensor in graph.initializer:
        if tensor.name in read and tensor.name not in mapping:
            copy = onnx.TensorProto()
            copy.CopyFrom(tensor)
            copy.name = rename(tensor.name)
            initializers.append(copy)
    for node in nodes:
        _rename_node(node, rename)
    shapes = []
    for value in graph.value_info:
        copy = onnx.ValueInfoProto()
        copy.CopyFrom(value)
        copy.name = rename(value.name)
        for dim in copy.type.tensor_type.shape.dim:  # a symbol names a size within its own graph only
            if dim.dim_param:
                dim.dim_param = prefix + dim.dim_param
        shapes.append(copy)
    return nodes, initializers, shapes
