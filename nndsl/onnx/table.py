"""One ONNX lowering per nndsl op: `@lowers("conv2d")` and a function of the emitter, the node and
its inputs' ONNX value names, returning the output's name (a tuple for several outputs).

Each entry writes the op's inference-time formula, as `OpDef.apply` does with train=False:
batchnorm with its running statistics, dropout as the identity, spectral norm with the stored u
folded into the kernel, noise injection as the identity (no rng at inference). Parameters become
initializers named by nndsl's parameter path (`conv2d_0.kernel`), in ONNX's layout where it differs
(a conv kernel [*window, in, out] is stored [out, in, *window]).
"""
from __future__ import annotations

import math

import numpy as np

from ..ops.conv import _pads, resolve, tup
from .emit import Emitter, Unsupported

LOWER: dict = {}

# The arguments each windowed op's entry reads. An argument added to the op later (asymmetric
# padding, ceil_mode, output_padding) is refused by the exporter when set to anything but its
# default, rather than silently dropped.
HANDLES = {**{op: {"filters", "kernel", "stride", "padding", "dilation", "groups", "bias"}
              for op in ("conv1d", "conv2d", "conv3d")},
           "conv2d_sn": {"filters", "kernel", "stride", "padding", "dilation", "groups", "bias", "iterations", "eps"},
           **{f"conv_transpose{n}d": {"filters", "kernel", "stride", "padding", "bias"} for n in (1, 2, 3)},
           "max_pool": {"window", "stride", "padding"}, "avg_pool": {"window", "stride", "padding"},
           "batchnorm": {"momentum", "eps", "scale", "center"}, "upsample": {"factor"}}


def unhandled(node) -> list[str]:
    """Arguments of `node` this table does not read, set to something other than their default."""
    from ..ops.registry import OPS
    known = HANDLES.get(node.op)
    if known is None or node.op not in OPS:
        return []
    defaults = {a.name: a.default for a in OPS[node.op].attrs}
    return [k for k, v in node.attrs.items() if k not in known and k in defaults and v != defaults[k]]


def lowers(*names):
    def deco(fn):
        for n in names:
            LOWER[n] = fn
        return fn
    return deco


def pname(node, leaf: str = "") -> str:
    return ".".join((*node.path, leaf) if leaf else node.path)


def _rank(t) -> int:
    return len(t.shape)


def _static(shape, what) -> tuple:
    if not all(isinstance(d, int) for d in shape):
        raise Unsupported(f"{what} needs static sizes here, found {list(shape)}")
    return tuple(shape)


# ---------------------------------------------------------------------- leaves and constants
@lowers("const")
def _const(e: Emitter, node, ins, t):
    return e.const(node.attrs["value"], node.type.dtype)


@lowers("param")
def _param(e, node, ins, t):
    return e.init(pname(node), e.leaf(node.path, ""))


@lowers("fill")
def _fill(e, node, ins, t):
    from onnx import helper
    shape = node.type.shape
    if all(isinstance(d, int) for d in shape):
        return e.const(np.full(shape, node.attrs["value"], np.float32))
    dims = e.op("Concat", [e.dim(d) for d in shape], None, axis=0)
    value = helper.make_tensor("value", 1, [1], [float(node.attrs["value"])])
    return e.op("ConstantOfShape", [dims], node.label, value=value)


# ---------------------------------------------------------------------- elementwise
UNARY = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "exp": "Exp", "log": "Log",
         "sqrt": "Sqrt", "abs": "Abs", "neg": "Neg", "sin": "Sin", "cos": "Cos", "softplus": "Softplus"}


def _unary(op_type: str):
    def lower(e, node, ins, t):
        return e.op(op_type, ins, node.label)
    return lower


for _n, _t in UNARY.items():
    LOWER[_n] = _unary(_t)

BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max",
          "minimum": "Min", "matmul": "MatMul"}


@lowers(*BINARY)
def _binary(e, node, ins, t):
    a, b = _same_dtype(e, node, ins, t)
    return e.op(BINARY[node.op], [a, b], node.label)


def _same_dtype(e, node, ins, t):
    """Binary ONNX ops want equal element types; nndsl promotes an int to float32 as numpy does."""
    if t[0].dtype == t[1].dtype:
        return ins
    return [x if tt.dtype == "float32" else e.op("Cast", [x], None, to=1) for x, tt in zip(ins, t)]


COMPARE = {"equal": "Equal", "greater": "Greater", "less": "Less", "greater_equal": "GreaterOrEqual",
           "less_equal": "LessOrEqual"}


@lowers(*COMPARE, "not_equal")
def _compare(e, node, ins, t):
    a, b = _same_dtype(e, node, ins, t)
    y = e.op(COMPARE.get(node.op, "Equal"), [a, b], node.label)
    if node.op == "not_equal":
        y = e.op("Not", [y])
    return e.op("Cast", [y], None, to=1)


@lowers("identity", "dropout", "detach", "shard", "noise_injection")
def _identity(e, node, ins, t):
    return e.op("Identity", ins[:1], node.label)


@lowers("square")
def _square(e, node, ins, t):
    return e.op("Mul", [ins[0], ins[0]], node.label)


@lowers("step")
def _step(e, node, ins, t):
    gt = e.op("Greater", [ins[0], e.const(0, t[0].dtype)])
    return e.op("Cast", [gt], node.label, to=1)


@lowers("leaky_relu")
def _leaky(e, node, ins, t):
    return e.op("LeakyRelu", ins, node.label, alpha=float(node.attrs["alpha"]))


@lowers("elu")
def _elu(e, node, ins, t):
    return e.op("Elu", ins, node.label, alpha=float(node.attrs["alpha"]))


@lowers("silu", "swish")
def _silu(e, node, ins, t):
    return e.op("Mul", [ins[0], e.op("Sigmoid", ins)], node.label)


@lowers("relu6")
def _relu6(e, node, ins, t):
    return e.op("Clip", [ins[0], e.const(0.0), e.const(6.0)], node.label)


@lowers("hard_tanh")
def _hard_tanh(e, node, ins, t):
    return e.op("Clip", [ins[0], e.const(-1.0), e.const(1.0)], node.label)


@lowers("clip")
def _clip(e, node, ins, t):
    lo, hi = node.attrs["min"], node.attrs["max"]
    return e.op("Clip", [ins[0], e.const(lo) if lo is not None else "", e.const(hi) if hi is not None else ""],
                node.label)


@lowers("gelu")
def _gelu(e, node, ins, t):
    # jax.nn.gelu's default tanh form; ONNX's Gelu(approximate="tanh") needs opset 20
    x = ins[0]
    x3 = e.op("Mul", [e.op("Mul", [x, x]), x])
    inner = e.op("Mul", [e.op("Add", [x, e.op("Mul", [x3, e.const(0.044715)])]), e.const(math.sqrt(2 / math.pi))])
    half = e.op("Mul", [x, e.const(0.5)])
    return e.op("Mul", [half, e.op("Add", [e.op("Tanh", [inner]), e.const(1.0)])], node.label)


@lowers("softmax", "log_softmax")
def _softmax(e, node, ins, t):
    return e.op("Softmax" if node.op == "softmax" else "LogSoftmax", ins, node.label, axis=node.attrs["axis"])


# ---------------------------------------------------------------------- shapes
@lowers("flatten")
def _flatten(e, node, ins, t):
    return e.op("Flatten", ins, node.label, axis=1)


@lowers("reshape")
def _reshape(e, node, ins, t):
    shape = []
    for i, d in enumerate(node.type.shape):
        if isinstance(d, int):
            shape.append(d)
        elif i == 0 and t[0].shape and t[0].shape[0] == d:
            shape.append(0)  # the input's batch, copied
        else:
            shape.append(-1)
    if shape.count(-1) > 1:
        raise Unsupported("a reshape with several symbolic sizes")
    return e.op("Reshape", [ins[0], e.ints(shape)], node.label)


@lowers("transpose")
def _transpose(e, node, ins, t):
    from ..ops.registry import OPS
    perm = OPS["transpose"]._perm(_rank(t[0]), node.attrs["perm"])
    return e.op("Transpose", ins, node.label, perm=list(perm))


@lowers("concat")
def _concat(e, node, ins, t):
    return e.op("Concat", ins, node.label, axis=node.attrs["axis"])


@lowers("split")
def _split(e, node, ins, t):
    axis = node.attrs["axis"]
    n = t[0].shape[axis]
    sec = node.attrs["sections"]
    sizes = [n // sec] * sec if isinstance(sec, int) else list(sec)
    outs = e.op("Split", [ins[0], e.ints(sizes)], node.label, outputs=len(sizes), axis=axis)
    return tuple(outs) if isinstance(outs, list) else (outs,)


@lowers("get_item")
def _get_item(e, node, ins, t):
    return ins[0][node.attrs["index"]]


@lowers("expand_dims")
def _expand(e, node, ins, t):
    axis = node.attrs["axis"]
    axis = axis if axis >= 0 else axis + _rank(t[0]) + 1
    return e.op("Unsqueeze", [ins[0], e.ints([axis])], node.label)


@lowers("last")
def _last(e, node, ins, t):
    return e.op("Gather", [ins[0], e.const(-1, "int64")], node.label, axis=1)


@lowers("last_masked")
def _last_masked(e, node, ins, t):
    x, lengths = ins
    steps = t[0].shape[1]
    idx = e.op("Sub", [e.op("Cast", [lengths], None, to=7), e.const(1, "int64")])
    hi = e.const(steps - 1, "int64") if isinstance(steps, int) else \
        e.op("Sub", [e.op("Gather", [e.op("Shape", [x]), e.const(1, "int64")]), e.const(1, "int64")])
    idx = e.op("Min", [e.op("Max", [idx, e.const(0, "int64")]), hi])
    rank = _rank(t[0])
    idx = e.op("Reshape", [idx, e.ints([-1] + [1] * (rank - 1))])
    shape = e.op("Concat", [e.op("Shape", [x], None, end=1), e.ints([1]), e.op("Shape", [x], None, start=2)], axis=0)
    idx = e.op("Expand", [idx, shape])
    g = e.op("GatherElements", [x, idx], None, axis=1)
    return e.op("Squeeze", [g, e.ints([1])], node.label)


REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "max": "ReduceMax", "min": "ReduceMin"}


@lowers(*REDUCE)
def _reduce(e, node, ins, t):
    axis = node.attrs["axis"]
    rank = _rank(t[0])
    given = axis if isinstance(axis, (list, tuple)) else [axis]
    axes = list(range(rank)) if axis is None else [a % rank for a in given]
    keep = int(bool(node.attrs["keepdims"]))
    if node.op == "sum":  # opset 13+: ReduceSum takes its axes as an input
        return e.op("ReduceSum", [ins[0], e.ints(axes)], node.label, keepdims=keep)
    return e.op(REDUCE[node.op], ins, node.label, axes=axes, keepdims=keep)


@lowers("argmax")
def _argmax(e, node, ins, t):
    y = e.op("ArgMax", ins, None, axis=node.attrs["axis"], keepdims=0)
    return e.op("Cast", [y], node.label, to=6)


# ---------------------------------------------------------------------- dense and friends
@lowers("dense", "dense_sn")
def _dense(e, node, ins, t):
    kernel = e.leaf(node.path, "kernel")
    if node.op == "dense_sn":
        kernel = _spectral(e, node, kernel)
    k = e.init(pname(node, "kernel"), kernel)
    b = e.init(pname(node, "bias"), e.leaf(node.path, "bias")) if node.attrs["bias"] else None
    x = ins[0]
    if t[0].dtype != "float32":
        x = e.op("Cast", [x], None, to=1)
    if _rank(t[0]) == 2:
        return e.op("Gemm", [x, k] + ([b] if b else []), node.label)
    y = e.op("MatMul", [x, k], node.label + "/matmul" if b else node.label)
    return e.op("Add", [y, b], node.label) if b else y


def _spectral(e, node, kernel):
    """kernel / sigma with the stored u, as spectral_normalize computes it when not training."""
    eps = node.attrs["eps"]
    u = e.leaf(node.path, "u", from_state=True).astype(np.float64)
    m = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    u = u / (np.linalg.norm(u) + eps)
    sigma = np.linalg.norm(m @ u)
    return (kernel / (sigma + eps)).astype(np.float32)


@lowers("embed")
def _embed(e, node, ins, t):
    table = e.init(pname(node, "embedding"), e.leaf(node.path, "embedding"))
    return e.op("Gather", [table, ins[0]], node.label, axis=0)


# ---------------------------------------------------------------------- convolutions and pools
def _conv_pads(x_shape, k, s, d, padding, what):
    """ONNX `pads` (all befores, then all afters), or an `auto_pad` word where a spatial size is
    symbolic (ONNX's SAME_UPPER/SAME_LOWER are nndsl's "same"/"same_lower": the runtime sizes it)."""
    pad = _pads(padding, len(k), k, s, d, what)
    if isinstance(pad, str):
        if pad == "VALID":
            return [0] * (2 * len(k))
        sizes = [x_shape[1 + i] for i in range(len(k))]
        if not all(isinstance(n, int) for n in sizes):
            return pad
        pad = resolve(pad, sizes, k, s, d)
    return [p[0] for p in pad] + [p[1] for p in pad]


def _pad_attrs(pads) -> dict:
    return {"auto_pad": pads} if isinstance(pads, str) else {"pads": pads}


@lowers("conv1d", "conv2d", "conv3d", "conv2d_sn")
def _conv(e, node, ins, t):
    a = node.attrs
    n = _rank(t[0]) - 2
    k, s, d = tup(a["kernel"], n, "kernel"), tup(a["stride"], n, "stride"), tup(a["dilation"], n, "dilation")
    kernel = e.leaf(node.path, "kernel")
    if node.op == "conv2d_sn":
        kernel = _spectral(e, node, kernel)
    w = e.init(pname(node, "kernel"), np.transpose(kernel, (n + 1, n, *range(n))))
    ws = [w] + ([e.init(pname(node, "bias"), e.leaf(node.path, "bias"))] if a["bias"] else [])
    x = e.to_cf(ins[0], n + 2, node.label)
    y = e.op("Conv", [x, *ws], node.label, kernel_shape=list(k), strides=list(s), dilations=list(d),
             group=a["groups"], **_pad_attrs(_conv_pads(t[0].shape, k, s, d, a["padding"], node.op)))
    return e.to_cl(y, n + 2, node.label)


@lowers("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose(e, node, ins, t):
    from ..ops.registry import OPS
    a = node.attrs
    n = _rank(t[0]) - 2
    k, s = tup(a["kernel"], n, "kernel"), tup(a["stride"], n, "stride")
    kernel = e.leaf(node.path, "kernel")  # [*k, in, out] -> ONNX/PyTorch [in, out, *k]
    w = e.init(pname(node, "kernel"), np.transpose(kernel, (n, n + 1, *range(n))))
    ws = [w] + ([e.init(pname(node, "bias"), e.leaf(node.path, "bias"))] if a["bias"] else [])
    lo, hi, extra_out = [], [], []
    for start, extra in OPS[node.op]._crop(a["padding"], k, s):
        # full output (n-1)*s + k; keep [start, start + full + extra)
        end_crop = -(extra + start)
        lo.append(start)
        hi.append(max(end_crop, 0))
        extra_out.append(max(-end_crop, 0))
    x = e.to_cf(ins[0], n + 2, node.label)
    y = e.op("ConvTranspose", [x, *ws], node.label, kernel_shape=list(k), strides=list(s), pads=lo + hi,
             output_padding=extra_out if any(extra_out) else None)
    return e.to_cl(y, n + 2, node.label)


@lowers("max_pool", "avg_pool")
def _pool(e, node, ins, t):
    a = node.attrs
    n = _rank(t[0]) - 2
    w = tup(a["window"], n, "window")
    s = tup(a["stride"] if a["stride"] is not None else a["window"], n, "stride")
    pads = _conv_pads(t[0].shape, w, s, (1,) * n, a["padding"], node.op)
    x = e.to_cf(ins[0], n + 2, node.label)
    if node.op == "max_pool":
        y = e.op("MaxPool", [x], node.label, kernel_shape=list(w), strides=list(s), **_pad_attrs(pads))
    else:  # padding never counts (Keras)
        y = e.op("AveragePool", [x], node.label, kernel_shape=list(w), strides=list(s), **_pad_attrs(pads),
                 count_include_pad=0)
    return e.to_cl(y, n + 2, node.label)


@lowers("global_avg_pool", "global_max_pool")
def _global_pool(e, node, ins, t):
    axes = list(range(1, _rank(t[0]) - 1))
    return e.op("ReduceMean" if node.op == "global_avg_pool" else "ReduceMax", ins, node.label, axes=axes, keepdims=0)


@lowers("upsample")
def _upsample(e, node, ins, t):
    n = _rank(t[0]) - 2
    f = tup(node.attrs["factor"], n, "factor")
    scales = e.const([1.0, *map(float, f), 1.0])
    return e.op("Resize", [ins[0], "", scales], node.label, mode="nearest", nearest_mode="floor",
                coordinate_transformation_mode="asymmetric")


# ---------------------------------------------------------------------- normalization
@lowers("batchnorm")
def _batchnorm(e, node, ins, t):
    a = node.attrs
    c = t[0].shape[-1]
    scale = e.leaf(node.path, "scale") if a["scale"] else np.ones(c, np.float32)
    bias = e.leaf(node.path, "bias") if a["center"] else np.zeros(c, np.float32)
    ws = [e.init(pname(node, "scale"), scale), e.init(pname(node, "bias"), bias),
          e.init(pname(node, "mean"), e.leaf(node.path, "mean", True)),
          e.init(pname(node, "var"), e.leaf(node.path, "var", True))]
    r = _rank(t[0])
    x = e.to_cf(ins[0], r, node.label) if r > 2 else ins[0]
    y = e.op("BatchNormalization", [x, *ws], node.label, epsilon=float(a["eps"]))
    return e.to_cl(y, r, node.label) if r > 2 else y


@lowers("layernorm")
def _layernorm(e, node, ins, t):
    ws = [e.init(pname(node, "scale"), e.leaf(node.path, "scale")),
          e.init(pname(node, "bias"), e.leaf(node.path, "bias"))]
    return e.op("LayerNormalization", [ins[0], *ws], node.label, axis=-1, epsilon=float(node.attrs["eps"]))


def _normalize_spatial(e, x, t, eps, name):
    """(x - mean) / sqrt(var + eps) over the spatial axes, per example and channel."""
    axes = list(range(1, _rank(t) - 1))
    mean = e.op("ReduceMean", [x], None, axes=axes, keepdims=1)
    xc = e.op("Sub", [x, mean])
    var = e.op("ReduceMean", [e.op("Mul", [xc, xc])], None, axes=axes, keepdims=1)
    return e.op("Div", [xc, e.op("Sqrt", [e.op("Add", [var, e.const(eps)])])], name + "/normalize")


@lowers("instance_norm")
def _instance_norm(e, node, ins, t):
    y = _normalize_spatial(e, ins[0], t[0], float(node.attrs["eps"]), node.label)
    y = e.op("Mul", [y, e.init(pname(node, "scale"), e.leaf(node.path, "scale"))])
    return e.op("Add", [y, e.init(pname(node, "bias"), e.leaf(node.path, "bias"))], node.label)


def _per_example(e, v, rank):
    """[batch, c] -> [batch, 1, ..., 1, c]."""
    return e.op("Unsqueeze", [v, e.ints(list(range(1, rank - 1)))])


@lowers("adain")
def _adain(e, node, ins, t):
    x, style = ins
    r = _rank(t[0])
    scale = e.op("Gemm", [style, e.init(pname(node, "scale_kernel"), e.leaf(node.path, "scale_kernel")),
                          e.init(pname(node, "scale_bias"), e.leaf(node.path, "scale_bias"))])
    shift = e.op("Gemm", [style, e.init(pname(node, "shift_kernel"), e.leaf(node.path, "shift_kernel")),
                          e.init(pname(node, "shift_bias"), e.leaf(node.path, "shift_bias"))])
    y = _normalize_spatial(e, x, t[0], float(node.attrs["eps"]), node.label)
    y = e.op("Mul", [y, _per_example(e, scale, r)])
    return e.op("Add", [y, _per_example(e, shift, r)], node.label)


@lowers("conditional_batchnorm")
def _cond_bn(e, node, ins, t):
    x, labels = ins
    r = _rank(t[0])
    mean = e.init(pname(node, "mean"), e.leaf(node.path, "mean", True))
    var = e.leaf(node.path, "var", True)
    inv = e.init(pname(node, "var") + "/rsqrt", (1.0 / np.sqrt(var + node.attrs["eps"])).astype(np.float32))
    y = e.op("Mul", [e.op("Sub", [x, mean]), inv])
    scale = e.op("Gather", [e.init(pname(node, "scale"), e.leaf(node.path, "scale")), labels], None, axis=0)
    bias = e.op("Gather", [e.init(pname(node, "bias"), e.leaf(node.path, "bias")), labels], None, axis=0)
    y = e.op("Mul", [y, _per_example(e, scale, r)])
    return e.op("Add", [y, _per_example(e, bias, r)], node.label)


@lowers("self_attention")
def _self_attention(e, node, ins, t):
    x = ins[0]
    _, h, w, c = t[0].shape
    _static((h, w, c), "self_attention")
    flat = e.op("Reshape", [x, e.ints([0, h * w, c])])
    def project(n):
        kernel = e.init(pname(node, f"{n}_kernel"), e.leaf(node.path, f"{n}_kernel"))
        bias = e.init(pname(node, f"{n}_bias"), e.leaf(node.path, f"{n}_bias"))
        return e.op("Add", [e.op("MatMul", [flat, kernel]), bias])
    q, k, v = (project(n) for n in ("query", "key", "value"))
    scores = e.op("MatMul", [q, e.op("Transpose", [k], None, perm=[0, 2, 1])])
    attn = e.op("Softmax", [scores], None, axis=-1)
    out = e.op("Reshape", [e.op("MatMul", [attn, v]), e.ints([0, h, w, c])])
    gamma = e.init(pname(node, "gamma"), e.leaf(node.path, "gamma"))
    return e.op("Add", [x, e.op("Mul", [out, gamma])], node.label)
