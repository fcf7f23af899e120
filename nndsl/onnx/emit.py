"""The ONNX builder the lowering table writes into: node and initializer bookkeeping, layout
transposes, constants. Kept apart from the table so each table entry reads as the op's formula.

nndsl is channels-last and ONNX's Conv, pools and BatchNormalization are channels-first; the table
wraps those in a Transpose pair and `tidy_transposes` then moves and cancels them, so that a conv
net keeps its activations channels-first between its first conv and its flatten.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import NndslError

OPSET = 17

DTYPES = {"float32": TensorProto.FLOAT, "int32": TensorProto.INT32, "int64": TensorProto.INT64,
          "bool": TensorProto.BOOL, "float16": TensorProto.FLOAT16, "bfloat16": TensorProto.BFLOAT16,
          "float64": TensorProto.DOUBLE}


class Unsupported(Exception):
    """An op (or an argument of one) with no ONNX form; the exporter adds the span."""


class Emitter:
    """One ONNX graph being written: the main graph, or a Scan body sharing the initializers."""

    def __init__(self, params: dict, state: dict, inits: dict | None = None, taken: set | None = None):
        self.params, self.state = params, state
        self.nodes: list = []
        self.inits = {} if inits is None else inits  # name -> TensorProto, shared with bodies
        self.taken = set() if taken is None else taken  # every value and node name in the model
        self.sizes: dict = {}  # symbolic size -> (graph input value, axis) that binds it

    # ------------------------------------------------------------------ names
    def fresh(self, base: str) -> str:
        base = base or "v"
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        self.taken.add(name)
        return name

    # ------------------------------------------------------------------ weights
    def leaf(self, path: tuple, leaf: str, from_state: bool = False) -> np.ndarray:
        tree = self.state if from_state else self.params
        try:
            for k in (*path, leaf) if leaf else path:
                tree = tree[k]
        except (KeyError, TypeError):
            where = "/".join((*path, leaf) if leaf else path)
            raise NndslError(f"the weights lack `{where}`", code="E604") from None
        return np.asarray(tree, np.float32) if np.asarray(tree).dtype.kind == "f" else np.asarray(tree)

    def init(self, name: str, value) -> str:
        """An initializer named `name` (nndsl's parameter name where there is one)."""
        arr = np.array(value, order="C")  # 0-d stays 0-d (ascontiguousarray would make it 1-d)
        if name in self.inits:
            name = self.fresh(name)
        self.taken.add(name)
        self.inits[name] = numpy_helper.from_array(arr, name)
        return name

    def const(self, value, dtype="float32") -> str:
        arr = np.asarray(value, dtype=dtype)
        return self.init(self.fresh("const"), arr)

    def ints(self, values) -> str:
        return self.const(list(values), "int64")

    def dim(self, d) -> str:
        """A size as a 1-element int64 tensor: a constant, or read off the input that binds it."""
        if isinstance(d, int):
            return self.ints([d])
        if d not in self.sizes:
            raise Unsupported(f"a size `{d}` that no input binds")
        src, axis = self.sizes[d]
        return self.op("Shape", [src], None, start=axis, end=axis + 1)

    # ------------------------------------------------------------------ nodes
    def op(self, op_type: str, inputs: list, name: str | None = None, outputs: int = 1, **attrs):
        """Adds a node; returns its output name (or a list of them when outputs > 1)."""
        node_name = self.fresh(name or op_type)
        outs = [self.fresh(f"{node_name}:{i}" if outputs > 1 else node_name + ":0") for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=node_name,
                                           **{k: v for k, v in attrs.items() if v is not None}))
        return outs if outputs > 1 else outs[0]

    def add_node(self, node) -> None:
        self.nodes.append(node)

    def to_cf(self, x: str, rank: int, name: str) -> str:
        """[b, *spatial, c] -> [b, c, *spatial]."""
        return self.op("Transpose", [x], f"{name}/to_nchw", perm=[0, rank - 1, *range(1, rank - 1)])

    def to_cl(self, x: str, rank: int, name: str) -> str:
        """[b, c, *spatial] -> [b, *spatial, c]."""
        return self.op("Transpose", [x], f"{name}/to_nhwc", perm=[0, *range(2, rank), 1])


UNARY = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Softplus", "Exp", "Log", "Sqrt", "Abs", "Neg",
         "Identity"}
BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min"}


def _perm(n) -> list:
    return list(n.attribute[0].ints)


def tidy_transposes(nodes: list, inits: dict) -> list:
    """Moves the channels-last/first Transposes the table wraps around each conv, pool and
    batchnorm past elementwise ops (relu(T(x)) = T(relu(x)); T(a) + T(b) = T(a + b)) and removes
    a Transpose that undoes the one before it, until nothing changes: a conv net stays
    channels-first from its first conv to its flatten, as a hand-written ONNX file would."""
    while True:
        nodes, moved = _sink(nodes, inits)
        nodes, cancelled = _cancel(nodes)
        if not (moved or cancelled):
            return nodes


def _sink(nodes, inits):
    producer = {o: n for n in nodes for o in n.output}
    out, changed = [], False
    for n in nodes:
        srcs = [producer.get(i) for i in n.input]
        ts = [s for s in srcs if s is not None and s.op_type == "Transpose"]
        scalar = [i for i in n.input if i in inits and len(inits[i].dims) == 0]
        if (n.op_type in UNARY and len(ts) == 1 and len(n.input) == 1) or \
                (n.op_type in BINARY and len(n.input) == 2 and (
                    (len(ts) == 2 and _perm(ts[0]) == _perm(ts[1])) or (len(ts) == 1 and len(scalar) == 1))):
            perm = _perm(ts[0])
            new_in = [producer[i].input[0] if producer.get(i) in ts else i for i in n.input]
            inner = helper.make_node(n.op_type, new_in, [n.output[0] + "/nchw"], name=n.name)
            inner.attribute.extend(n.attribute)
            outer = helper.make_node("Transpose", inner.output, [n.output[0]], name=n.name + "/to_nhwc",
                                     perm=perm)
            out.extend([inner, outer])
            producer[n.output[0]] = outer
            changed = True
        else:
            out.append(n)
    return out, changed


def _cancel(nodes):
    producer = {o: n for n in nodes for o in n.output}
    inner = set()  # values a Scan body reads from outside: their names must stay
    for n in nodes:
        if any(a.type == onnx.AttributeProto.GRAPH for a in n.attribute):
            inner |= _reads(n) - set(n.input)
    rename: dict = {}
    out, changed = [], False
    for n in nodes:
        n.input[:] = [rename.get(i, i) for i in n.input]
        src = producer.get(n.input[0]) if n.op_type == "Transpose" and n.output[0] not in inner else None
        if src is not None and src.op_type == "Transpose":
            p, q = _perm(src), _perm(n)
            if [p[i] for i in q] == list(range(len(p))):
                rename[n.output[0]] = src.input[0]
                changed = True
                continue
        out.append(n)
    for n in out:  # a rename made after its reader was visited (none in topological order, but cheap)
        n.input[:] = [rename.get(i, i) for i in n.input]
    return out, changed


def value_info(name: str, ttype, dims_ok=lambda d: True) -> onnx.ValueInfoProto:
    """An input's or output's type: int sizes stay, named sizes become symbolic (dim_param)."""
    shape = [d if isinstance(d, int) else (str(d) if dims_ok(d) else None) for d in ttype.shape]
    return helper.make_tensor_value_info(name, DTYPES.get(ttype.dtype, TensorProto.FLOAT), shape)


def _reads(n) -> set:
    """Every value name a node reads, inside its subgraphs (a Scan body) too."""
    out = set(n.input)
    for a in n.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            for m in a.g.node:
                out |= _reads(m)
    return out


def prune(nodes: list, outputs: set) -> list:
    """Drops nodes nothing reads (the zero-state fills a fused LSTM did not need)."""
    while True:
        used = set(outputs)
        for n in nodes:
            used |= _reads(n)
        keep = [n for n in nodes if any(o in used for o in n.output)]
        if len(keep) == len(nodes):
            return keep
        nodes = keep
