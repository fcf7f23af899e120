"""nndsl's layers against onnx.reference.ReferenceEvaluator on tiny one-node ONNX graphs.

The outside reference for the conventions of issue 16: every layer here is built from `.nn`
source, run with random weights and inputs, and compared with the ONNX operator of the same
attributes within 1e-5, after moving channels-last to ONNX's channels-first layout and the
kernels to ONNX's [filters, in / groups, *window] ([in, filters / groups, *window] for
ConvTranspose).
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from .harness import model_of, randomize  # noqa: E402

OPSET = 23


def ours(body: str, *xs, seed: int = 0):
    """(params, outputs) of `model M { body }` applied to xs with every weight drawn at random."""
    net = model_of(body)
    variables = randomize(net.init(jax.random.key(0), *xs), seed)
    out = net.apply(variables, *xs)
    return jax.tree.map(np.asarray, variables["params"]), jax.tree.map(np.asarray, out)


def onnx_run(op: str, inputs: dict, n_out: int = 1, opset: int = OPSET, engine: str = "reference", **attrs):
    """The ONNX operator's result. `engine="onnxruntime"` where onnx.reference itself is wrong
    (onnx 1.23: grouped ConvTranspose fails, SAME_LOWER pooling drops the last window)."""
    kinds = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int64"): TensorProto.INT64}
    node = helper.make_node(op, list(inputs), [f"y{i}" for i in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(k, kinds[v.dtype], v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.INT64 if i else TensorProto.FLOAT, None)
         for i in range(n_out)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if engine == "onnxruntime":
        ort = pytest.importorskip("onnxruntime")
        model.ir_version = min(model.ir_version, 10)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        out = session.run(None, inputs)
    else:
        out = ReferenceEvaluator(model).run(None, inputs)
    return out if n_out > 1 else out[0]


def cf(x):
    """channels-last -> ONNX's channels-first."""
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def cl(x):
    return np.moveaxis(x, 1, -1)


def conv_w(w):
    n = w.ndim - 2
    return np.ascontiguousarray(np.transpose(w, (n + 1, n, *range(n))))


def convT_w(w, groups):
    n = w.ndim - 2
    k, cin_g, f = w.shape[:n], w.shape[n], w.shape[-1]
    w = w.reshape(*k, cin_g, groups, f // groups)
    w = np.transpose(w, (n + 1, n, n + 2, *range(n)))  # groups, cin_g, f_g, *k
    return np.ascontiguousarray(w.reshape(groups * cin_g, f // groups, *k))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- convolutions
CONV = [
    # (nndsl call, input shape, ONNX attributes)
    ("conv2d(4, 3, padding=[[0, 2], [1, 1]])", (2, 6, 5, 2), dict(pads=[0, 1, 2, 1])),
    ('conv2d(4, [3, 2], stride=2, padding="same")', (2, 7, 6, 2), dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    ('conv2d(4, 4, stride=[3, 2], padding="same_lower")', (2, 7, 6, 2),
     dict(auto_pad="SAME_LOWER", strides=[3, 2])),
    ("conv2d(6, 3, dilation=[2, 1], groups=3, padding=[2, 1])", (2, 7, 6, 3),
     dict(pads=[2, 1, 2, 1], dilations=[2, 1], group=3)),
    ('conv1d(3, 3, stride=2, dilation=2, padding="same_lower")', (2, 9, 2),
     dict(auto_pad="SAME_LOWER", strides=[2], dilations=[2])),
    ("conv3d(2, 2, stride=[1, 2, 1], padding=[[1, 0], [0, 1], [2, 2]])", (1, 4, 5, 3, 2),
     dict(strides=[1, 2, 1], pads=[1, 0, 2, 0, 1, 2])),
]


@pytest.mark.parametrize("call, shape, attrs", CONV, ids=[c[0] for c in CONV])
def test_conv_matches_onnx(call, shape, attrs):
    x = rand(*shape)
    n = len(shape) - 2
    name = f"conv{n}d_0"
    p, y = ours(f"input x: [batch, {', '.join(map(str, shape[1:]))}]\noutput y = x -> {call}", x)
    want = onnx_run("Conv", {"x": cf(x), "w": conv_w(p[name]["kernel"]), "b": p[name]["bias"]},
                    kernel_shape=list(p[name]["kernel"].shape[:n]), **attrs)
    close(y, cl(want))


CONVT = [
    ("conv_transpose2d(6, 3, stride=2, padding=1, output_padding=1, dilation=[1, 2], groups=2)", (2, 3, 4, 4), 2,
     dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1], dilations=[1, 2], group=2,
          engine="onnxruntime")),
    ("conv_transpose2d(3, [3, 2], stride=[3, 2], padding=[[0, 2], [1, 0]])", (2, 3, 2, 2), 1,
     dict(strides=[3, 2], pads=[0, 1, 2, 0])),
    ('conv_transpose2d(2, 4, stride=2, padding="same")', (1, 3, 3, 2), 1,
     dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ('conv_transpose2d(2, 3, stride=2, padding="same_lower")', (1, 3, 3, 2), 1,
     dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ("conv_transpose1d(4, 3, stride=2, output_padding=1, padding=0, groups=2)", (2, 5, 4), 2,
     dict(strides=[2], output_padding=[1], group=2, engine="onnxruntime")),
    ('conv_transpose2d(2, 3, stride=[3, 2], padding="valid", output_size=[10, 8])', (1, 3, 3, 1), 1,
     dict(strides=[3, 2], output_shape=[10, 8])),
    ('conv_transpose2d(2, 3, stride=2, padding="same", output_size=[8, 5])', (1, 3, 3, 1), 1,
     dict(strides=[2, 2], output_shape=[8, 5], auto_pad="SAME_UPPER")),
    ("conv_transpose3d(2, 2, stride=2, dilation=2, padding=[[1, 0], [0, 0], [0, 1]])", (1, 2, 3, 2, 2), 1,
     dict(strides=[2, 2, 2], dilations=[2, 2, 2], pads=[1, 0, 0, 0, 0, 1])),
]


@pytest.mark.parametrize("call, shape, groups, attrs", CONVT, ids=[c[0] for c in CONVT])
def test_conv_transpose_matches_onnx(call, shape, groups, attrs):
    x = rand(*shape)
    n = len(shape) - 2
    name = f"conv_transpose{n}d_0"
    p, y = ours(f"input x: [batch, {', '.join(map(str, shape[1:]))}]\noutput y = x -> {call}", x)
    want = onnx_run("ConvTranspose", {"x": cf(x), "w": convT_w(p[name]["kernel"], groups), "b": p[name]["bias"]},
                    kernel_shape=list(p[name]["kernel"].shape[:n]), **attrs)
    close(y, cl(want))


# ------------------------------------------------------------------------------- pooling
POOLS = [
    ("max_pool(3, stride=2, ceil_mode=true)", (2, 7, 6, 2), "MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("max_pool(2, stride=2, padding=1, ceil_mode=true)", (2, 6, 5, 2), "MaxPool",
     dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    ("max_pool(2, stride=1, dilation=[2, 3], padding=[[1, 0], [0, 1]])", (2, 7, 7, 2), "MaxPool",
     dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[2, 3], pads=[1, 0, 0, 1])),
    ('max_pool(3, stride=2, padding="same_lower")', (1, 6, 7, 2), "MaxPool",
     dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER", engine="onnxruntime")),
    ('max_pool(3, stride=2, padding="same")', (1, 6, 7, 2), "MaxPool",
     dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ("avg_pool(3, stride=2, padding=1, count_include_pad=true)", (2, 5, 5, 2), "AveragePool",
     dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("avg_pool(3, stride=2, padding=1)", (2, 5, 5, 2), "AveragePool",
     dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("avg_pool(3, stride=2, padding=[1, 0], ceil_mode=true, count_include_pad=true)", (2, 6, 7, 2), "AveragePool",
     dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0], ceil_mode=1, count_include_pad=1)),
    ("avg_pool(2, stride=2, ceil_mode=true)", (2, 5, 7, 2), "AveragePool",
     dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ("avg_pool(2, stride=1, dilation=2, padding=[[1, 1]])", (2, 8, 2), "AveragePool",
     dict(kernel_shape=[2], strides=[1], dilations=[2], pads=[1, 1])),
]


@pytest.mark.parametrize("call, shape, op, attrs", POOLS, ids=[c[0] for c in POOLS])
def test_pool_matches_onnx(call, shape, op, attrs):
    x = rand(*shape)
    _, y = ours(f"input x: [batch, {', '.join(map(str, shape[1:]))}]\noutput y = x -> {call}", x)
    close(y, cl(onnx_run(op, {"x": cf(x)}, opset=22, **attrs)))


def test_max_pool_indices_and_unpool_match_onnx():
    """ONNX's Indices count in NCHW over the whole tensor; nndsl's, per example and channel, over
    the spatial plane: the same positions once converted."""
    x = rand(2, 4, 6, 3)
    _, out = ours("input x: [batch, 4, 6, 3]\nv, i = x -> max_pool(2, indices=true)\noutput v = v\n"
                  "output i = i\noutput u = max_unpool(v, i, 2)", x)
    v, i = onnx_run("MaxPool", {"x": cf(x)}, n_out=2, opset=22, kernel_shape=[2, 2], strides=[2, 2])
    close(out["v"], cl(v))
    plane = 4 * 6
    close(out["i"], cl(i % plane))
    u = onnx_run("MaxUnpool", {"x": v, "i": i}, opset=22, kernel_shape=[2, 2], strides=[2, 2])
    close(out["u"], cl(u))


# ------------------------------------------------------------------------------- pad
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_matches_onnx(mode):
    x = rand(2, 4, 5, 3)
    _, y = ours(f'input x: [batch, 4, 5, 3]\noutput y = x -> pad([[2, 1], [3, 0]], mode="{mode}", value=0.5)', x)
    pads = np.array([0, 2, 3, 0, 0, 1, 0, 0], np.int64)
    inputs = {"x": x, "pads": pads}
    if mode == "constant":
        inputs["value"] = np.array(0.5, np.float32)
    close(y, onnx_run("Pad", inputs, mode=mode))


# ------------------------------------------------------------------------------- normalization
def test_layernorm_over_two_axes_matches_onnx():
    x = rand(2, 3, 4)
    p, y = ours("input x: [batch, 3, 4]\noutput y = x -> layernorm(axes=[-2, -1])", x)
    q = p["layernorm_0"]
    close(y, onnx_run("LayerNormalization", {"x": x, "s": q["scale"], "b": q["bias"]}, axis=1, epsilon=1e-5))


def test_groupnorm_matches_onnx():
    x = rand(2, 3, 3, 6)
    p, y = ours("input x: [batch, 3, 3, 6]\noutput y = x -> groupnorm(3)", x)
    q = p["groupnorm_0"]
    close(y, cl(onnx_run("GroupNormalization", {"x": cf(x), "s": q["scale"], "b": q["bias"]}, opset=21,
                         num_groups=3, epsilon=1e-5)))


def test_rmsnorm_matches_onnx():
    x = rand(2, 3, 4)
    p, y = ours("input x: [batch, 3, 4]\noutput y = x -> rmsnorm", x)
    close(y, onnx_run("RMSNormalization", {"x": x, "s": p["rmsnorm_0"]["scale"]}, axis=-1, epsilon=1e-5))


# ------------------------------------------------------------------------------- activations
ACTS = [
    ("gelu(approximate=false)", "Gelu", {}),
    ("gelu", "Gelu", dict(approximate="tanh")),
    ("selu", "Selu", {}),
    ("celu(alpha=1.5)", "Celu", dict(alpha=1.5)),
    ("hard_sigmoid(alpha=0.2, beta=0.5)", "HardSigmoid", {}),
    ("hard_sigmoid", "HardSigmoid", dict(alpha=1 / 6)),
    ("hard_swish", "HardSwish", {}),
    ("mish", "Mish", {}),
    ("softsign", "Softsign", {}),
    ("log_softmax(axis=1)", "LogSoftmax", dict(axis=1)),
    ("elu(alpha=0.5)", "Elu", dict(alpha=0.5)),
    ("leaky_relu(alpha=0.2)", "LeakyRelu", dict(alpha=0.2)),
]


@pytest.mark.parametrize("call, op, attrs", ACTS, ids=[a[0] for a in ACTS])
def test_activation_matches_onnx(call, op, attrs):
    x = 3 * rand(2, 3, 4)
    _, y = ours(f"input x: [batch, 3, 4]\noutput y = x -> {call}", x)
    close(y, onnx_run(op, {"x": x}, **attrs))


def test_prelu_matches_onnx():
    x = rand(2, 3, 4)
    p, y = ours("input x: [batch, 3, 4]\noutput y = x -> prelu", x)
    close(y, onnx_run("PRelu", {"x": x, "slope": p["prelu_0"]["slope"]}))


# ------------------------------------------------------------------------------- resize
RESIZES = [
    ('resize(size=[7, 3], mode="linear")', dict(sizes=[2, 2, 7, 3]), dict(mode="linear")),
    ('resize(scale=[1.5, 0.6], mode="linear", coordinate_transformation_mode="align_corners")',
     dict(scales=[1, 1, 1.5, 0.6]), dict(mode="linear", coordinate_transformation_mode="align_corners")),
    ('resize(scale=2.5, mode="linear", coordinate_transformation_mode="pytorch_half_pixel")',
     dict(scales=[1, 1, 2.5, 2.5]), dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel")),
    ('resize(scale=[0.7, 1.3], mode="linear", coordinate_transformation_mode="asymmetric")',
     dict(scales=[1, 1, 0.7, 1.3]), dict(mode="linear", coordinate_transformation_mode="asymmetric")),
    ('resize(size=[6, 8], coordinate_transformation_mode="asymmetric", nearest_mode="floor")',
     dict(sizes=[2, 2, 6, 8]), dict(coordinate_transformation_mode="asymmetric", nearest_mode="floor")),
    ("resize(scale=[0.7, 1.3])", dict(scales=[1, 1, 0.7, 1.3]), {}),
    ('resize(size=[9, 2], nearest_mode="round_prefer_ceil", coordinate_transformation_mode="align_corners")',
     dict(sizes=[2, 2, 9, 2]), dict(nearest_mode="round_prefer_ceil", coordinate_transformation_mode="align_corners")),
    ('upsample(2, mode="bilinear")', dict(scales=[1, 1, 2, 2]), dict(mode="linear")),
    ("upsample([2, 3])", dict(scales=[1, 1, 2, 3]), dict(coordinate_transformation_mode="asymmetric",
                                                        nearest_mode="floor")),
]


@pytest.mark.parametrize("call, size, attrs", RESIZES, ids=[r[0] for r in RESIZES])
def test_resize_matches_onnx(call, size, attrs):
    x = rand(2, 4, 5, 2)
    _, y = ours(f"input x: [batch, 4, 5, 2]\noutput y = x -> {call}", x)
    inputs = {"x": cf(x), "roi": np.zeros(0, np.float32)}
    if "scales" in size:
        inputs["scales"] = np.asarray(size["scales"], np.float32)
    else:
        inputs["scales"] = np.zeros(0, np.float32)
        inputs["sizes"] = np.asarray(size["sizes"], np.int64)
    close(y, cl(onnx_run("Resize", inputs, opset=19, **attrs)))
