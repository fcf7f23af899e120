"""Per-op numerics: every user-visible op, through the public API, against a reference.

Each row of CASES is a tiny model, its inputs and a reference written with numpy/jax.numpy only
(refs.py). `test_forward` compares outputs with the reference run in float64 numpy;
`test_gradients` compares jax.grad of sum(outputs * r) for a fixed random r, with respect to the
parameters and the float inputs, with the same reference run in jax.numpy. Stateful and random
ops (batchnorm, dropout, the draws) have their own tests below, marked with @covers.

COVERED, the ops the rows and the marked tests exercise, is what test_registry checks against OPS.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from . import refs as R
from .conventions import CASES as CONVENTION_CASES
from .harness import (Bits, Case, F, Int, Pos, Prob, Sign, Simplex, Wide, assert_close, concrete_graph,
                      cotangents, f64, is_float, model_of, randomize, seed_of, setup)


def case(id, ops, body, inputs, ref, **kw) -> Case:
    return Case(id, tuple(ops.split()), body, tuple(inputs), ref, **kw)


def W(p, layer, leaf="kernel"):
    return p[layer][leaf]


CASES = [
    # ---------------------------------------------------------------- dense, embed
    case("dense", "dense", "input x: [batch, 5]\noutput y = x -> dense(3)", [F(4, 5)],
         lambda xp, p, x: x @ W(p, "dense_0") + W(p, "dense_0", "bias")),
    case("dense-nobias", "dense", "input x: [batch, 5]\noutput y = x -> dense(3, bias=false)",
         [F(4, 5)], lambda xp, p, x: x @ W(p, "dense_0")),
    case("dense-rank3", "dense", "input x: [batch, 2, 5]\noutput y = dense(x, 3)", [F(4, 2, 5)],
         lambda xp, p, x: x @ W(p, "dense_0") + W(p, "dense_0", "bias")),
    case("dense-chain", "dense relu", "input x: [batch, 5]\noutput y = x -> dense(4) -> relu -> dense(2)",
         [F(4, 5)], lambda xp, p, x: xp.maximum(x @ W(p, "dense_0") + W(p, "dense_0", "bias"), 0)
         @ W(p, "dense_1") + W(p, "dense_1", "bias")),
    case("embed", "embed", "input t: i32[batch, 3]\noutput y = t -> embed(7, 4)", [Int(2, 3, high=7)],
         lambda xp, p, t: W(p, "embed_0", "embedding")[t]),
    case("param-matmul", "matmul add", "input x: [batch, 3]\nparam w: [3, 2] ~ normal(1.0)\n"
         "param b: [2] ~ zeros\noutput y = x @ w + b", [F(4, 3)], lambda xp, p, x: x @ p["w"] + p["b"]),

    # ---------------------------------------------------------------- convolutions
    case("conv1d", "conv1d", "input x: [batch, 9, 3]\noutput y = x -> conv1d(4, 3)", [F(2, 9, 3)],
         lambda xp, p, x: R.conv(xp, x, W(p, "conv1d_0"), W(p, "conv1d_0", "bias"))),
    case("conv1d-stride-same", "conv1d", 'input x: [batch, 9, 3]\noutput y = x -> conv1d(4, 4, stride=2, padding="same")',
         [F(2, 9, 3)], lambda xp, p, x: R.conv(xp, x, W(p, "conv1d_0"), W(p, "conv1d_0", "bias"), 2, "same")),
    case("conv1d-dilation-int-pad", "conv1d",
         "input x: [batch, 9, 2]\noutput y = x -> conv1d(3, 3, dilation=2, padding=1, bias=false)",
         [F(2, 9, 2)], lambda xp, p, x: R.conv(xp, x, W(p, "conv1d_0"), None, 1, 1, 2)),
    case("conv1d-groups", "conv1d", "input x: [batch, 8, 4]\noutput y = x -> conv1d(6, 3, groups=2)",
         [F(2, 8, 4)], lambda xp, p, x: R.conv(xp, x, W(p, "conv1d_0"), W(p, "conv1d_0", "bias"), groups=2)),
    case("conv2d", "conv2d", "input x: [batch, 6, 5, 3]\noutput y = x -> conv2d(4, 3)", [F(2, 6, 5, 3)],
         lambda xp, p, x: R.conv(xp, x, W(p, "conv2d_0"), W(p, "conv2d_0", "bias"))),
    case("conv2d-stride-same", "conv2d",
         'input x: [batch, 7, 6, 2]\noutput y = x -> conv2d(4, 3, stride=2, padding="same", bias=false)',
         [F(2, 7, 6, 2)], lambda xp, p, x: R.conv(xp, x, W(p, "conv2d_0"), None, 2, "same")),
    case("conv2d-rect-dilation-same", "conv2d",
         'input x: [batch, 7, 6, 2]\noutput y = x -> conv2d(3, [3, 2], dilation=2, padding="same")',
         [F(2, 7, 6, 2)],
         lambda xp, p, x: R.conv(xp, x, W(p, "conv2d_0"), W(p, "conv2d_0", "bias"), 1, "same", 2)),
    case("conv2d-int-pad-stride", "conv2d",
         "input x: [batch, 6, 6, 2]\noutput y = x -> conv2d(3, 3, stride=[2, 1], padding=1)",
         [F(2, 6, 6, 2)],
         lambda xp, p, x: R.conv(xp, x, W(p, "conv2d_0"), W(p, "conv2d_0", "bias"), (2, 1), 1)),
    case("conv2d-groups-nobias", "conv2d",
         "input x: [batch, 5, 5, 4]\noutput y = x -> conv2d(8, 3, groups=4, bias=false)",
         [F(2, 5, 5, 4)], lambda xp, p, x: R.conv(xp, x, W(p, "conv2d_0"), None, groups=4)),
    case("conv3d", "conv3d", "input x: [batch, 4, 5, 4, 2]\noutput y = x -> conv3d(3, 2)", [F(2, 4, 5, 4, 2)],
         lambda xp, p, x: R.conv(xp, x, W(p, "conv3d_0"), W(p, "conv3d_0", "bias"))),
    case("conv3d-stride-same-nobias", "conv3d",
         'input x: [batch, 5, 4, 4, 2]\noutput y = x -> conv3d(3, [3, 2, 2], stride=2, padding="same", bias=false)',
         [F(2, 5, 4, 4, 2)], lambda xp, p, x: R.conv(xp, x, W(p, "conv3d_0"), None, 2, "same")),
    case("conv3d-groups-dilation", "conv3d",
         "input x: [batch, 5, 5, 5, 2]\noutput y = x -> conv3d(4, 2, dilation=2, groups=2)",
         [F(1, 5, 5, 5, 2)],
         lambda xp, p, x: R.conv(xp, x, W(p, "conv3d_0"), W(p, "conv3d_0", "bias"), 1, "valid", 2, 2)),

    # ---------------------------------------------------------------- transposed convolutions
    case("conv_transpose1d-valid", "conv_transpose1d",
         'input x: [batch, 4, 2]\noutput y = x -> conv_transpose1d(3, 3, stride=2, padding="valid")',
         [F(2, 4, 2)], lambda xp, p, x: R.conv_transpose(
             xp, x, W(p, "conv_transpose1d_0"), W(p, "conv_transpose1d_0", "bias"), 2, "valid")),
    case("conv_transpose1d-same", "conv_transpose1d",
         'input x: [batch, 4, 2]\noutput y = x -> conv_transpose1d(3, 4, stride=2, padding="same")',
         [F(2, 4, 2)], lambda xp, p, x: R.conv_transpose(
             xp, x, W(p, "conv_transpose1d_0"), W(p, "conv_transpose1d_0", "bias"), 2, "same")),
    case("conv_transpose1d-stride-gt-kernel", "conv_transpose1d",
         'input x: [batch, 3, 2]\na = x -> conv_transpose1d(2, 2, stride=3, padding="valid", bias=false)\n'
         'b = x -> conv_transpose1d(2, 2, stride=3, padding="same", bias=false)\noutput a\noutput b',
         [F(2, 3, 2)], lambda xp, p, x: {
             "a": R.conv_transpose(xp, x, W(p, "conv_transpose1d_0"), None, 3, "valid"),
             "b": R.conv_transpose(xp, x, W(p, "conv_transpose1d_1"), None, 3, "same")}),
    case("conv_transpose1d-int-pad", "conv_transpose1d",
         "input x: [batch, 4, 2]\noutput y = x -> conv_transpose1d(3, 3, stride=2, padding=1)",
         [F(2, 4, 2)], lambda xp, p, x: R.conv_transpose(
             xp, x, W(p, "conv_transpose1d_0"), W(p, "conv_transpose1d_0", "bias"), 2, 1)),
    case("conv_transpose2d-valid", "conv_transpose2d",
         'input x: [batch, 3, 2, 2]\noutput y = x -> conv_transpose2d(3, 3, stride=2, padding="valid")',
         [F(2, 3, 2, 2)], lambda xp, p, x: R.conv_transpose(
             xp, x, W(p, "conv_transpose2d_0"), W(p, "conv_transpose2d_0", "bias"), 2, "valid")),
    case("conv_transpose2d-same", "conv_transpose2d",
         "input x: [batch, 3, 3, 2]\noutput y = x -> conv_transpose2d(2, [3, 2], stride=2, bias=false)",
         [F(2, 3, 3, 2)], lambda xp, p, x: R.conv_transpose(xp, x, W(p, "conv_transpose2d_0"), None, 2, "same")),
    case("conv_transpose3d-valid", "conv_transpose3d",
         'input x: [batch, 2, 2, 2, 2]\noutput y = x -> conv_transpose3d(2, 2, stride=2, padding="valid")',
         [F(2, 2, 2, 2, 2)], lambda xp, p, x: R.conv_transpose(
             xp, x, W(p, "conv_transpose3d_0"), W(p, "conv_transpose3d_0", "bias"), 2, "valid")),
    case("conv_transpose3d-same", "conv_transpose3d",
         'input x: [batch, 2, 2, 2, 2]\noutput y = x -> conv_transpose3d(2, 3, stride=2, padding="same", bias=false)',
         [F(1, 2, 2, 2, 2)], lambda xp, p, x: R.conv_transpose(xp, x, W(p, "conv_transpose3d_0"), None, 2, "same")),

    # ---------------------------------------------------------------- pooling, upsampling
    case("max_pool2d", "max_pool", "input x: [batch, 4, 6, 3]\noutput y = x -> max_pool(2)", [F(2, 4, 6, 3)],
         lambda xp, p, x: R.pool(xp, x, 2)),
    case("max_pool2d-stride-same", "max_pool",
         'input x: [batch, 5, 5, 2]\noutput y = x -> max_pool(3, stride=2, padding="same")', [F(2, 5, 5, 2)],
         lambda xp, p, x: R.pool(xp, x, 3, 2, "same")),
    case("max_pool1d-same", "max_pool", 'input x: [batch, 7, 2]\noutput y = x -> max_pool(2, padding="same")',
         [F(2, 7, 2)], lambda xp, p, x: R.pool(xp, x, 2, None, "same")),
    case("max_pool3d-stride1", "max_pool", "input x: [batch, 3, 4, 3, 2]\noutput y = x -> max_pool(2, stride=1)",
         [F(2, 3, 4, 3, 2)], lambda xp, p, x: R.pool(xp, x, 2, 1)),
    case("avg_pool2d", "avg_pool", "input x: [batch, 4, 6, 3]\noutput y = x -> avg_pool(2)", [F(2, 4, 6, 3)],
         lambda xp, p, x: R.pool(xp, x, 2, kind="avg")),
    case("avg_pool2d-stride-same", "avg_pool",
         'input x: [batch, 5, 5, 2]\noutput y = x -> avg_pool(3, stride=2, padding="same")', [F(2, 5, 5, 2)],
         lambda xp, p, x: R.pool(xp, x, 3, 2, "same", "avg")),
    case("avg_pool1d-same", "avg_pool", 'input x: [batch, 7, 2]\noutput y = x -> avg_pool(3, stride=2, padding="same")',
         [F(2, 7, 2)], lambda xp, p, x: R.pool(xp, x, 3, 2, "same", "avg")),
    case("avg_pool3d", "avg_pool", "input x: [batch, 4, 4, 2, 2]\noutput y = x -> avg_pool([2, 2, 1])",
         [F(2, 4, 4, 2, 2)], lambda xp, p, x: R.pool(xp, x, (2, 2, 1), kind="avg")),
    case("global_avg_pool", "global_avg_pool",
         "input a: [batch, 5, 3]\ninput b: [batch, 4, 3, 3]\ninput c: [batch, 2, 3, 2, 3]\n"
         "output y = global_avg_pool(a) + global_avg_pool(b) * 2 + global_avg_pool(c) * 3",
         [F(2, 5, 3), F(2, 4, 3, 3), F(2, 2, 3, 2, 3)],
         lambda xp, p, a, b, c: a.mean(axis=1) + b.mean(axis=(1, 2)) * 2 + c.mean(axis=(1, 2, 3)) * 3),
    case("global_max_pool", "global_max_pool",
         "input a: [batch, 5, 3]\ninput b: [batch, 4, 3, 3]\ninput c: [batch, 2, 3, 2, 3]\n"
         "output y = global_max_pool(a) + global_max_pool(b) * 2 + global_max_pool(c) * 3",
         [F(2, 5, 3), F(2, 4, 3, 3), F(2, 2, 3, 2, 3)],
         lambda xp, p, a, b, c: a.max(axis=1) + b.max(axis=(1, 2)) * 2 + c.max(axis=(1, 2, 3)) * 3),
    case("upsample2d", "upsample", "input x: [batch, 2, 3, 2]\noutput y = x -> upsample(2)", [F(2, 2, 3, 2)],
         lambda xp, p, x: R.upsample(xp, x, 2)),
    case("upsample-mixed", "upsample",
         "input a: [batch, 3, 2]\ninput b: [batch, 2, 2, 1, 2]\noutput u = a -> upsample(3)\n"
         "output v = b -> upsample([1, 2, 3])", [F(2, 3, 2), F(2, 2, 2, 1, 2)],
         lambda xp, p, a, b: {"u": R.upsample(xp, a, 3), "v": R.upsample(xp, b, (1, 2, 3))}),

    # ---------------------------------------------------------------- normalization
    case("layernorm", "layernorm", "input x: [batch, 3, 6]\noutput y = x -> layernorm", [F(2, 3, 6)],
         lambda xp, p, x: R.layernorm(xp, x, W(p, "layernorm_0", "scale"), W(p, "layernorm_0", "bias"))),
    case("layernorm-eps", "layernorm", "input x: [batch, 4]\noutput y = x -> layernorm(eps=0.5)",
         [F(3, 4)], lambda xp, p, x: R.layernorm(xp, x, W(p, "layernorm_0", "scale"),
                                                 W(p, "layernorm_0", "bias"), 0.5)),

    # ---------------------------------------------------------------- shape ops
    case("flatten", "flatten", "input x: [batch, 2, 3, 4]\noutput y = x -> flatten", [F(2, 2, 3, 4)],
         lambda xp, p, x: x.reshape(x.shape[0], 24)),
    case("reshape", "reshape", "input x: [batch, 2, 3, 4]\na = x -> reshape([6, 4])\n"
         "b = x -> reshape([-1, 2])\noutput y = flatten(a) + flatten(b)",
         [F(2, 2, 3, 4)], lambda xp, p, x: x.reshape(2, 24) * 2),
    case("reshape-batch-written", "reshape", "input x: [batch, 2, 3, 4]\noutput y = x -> reshape([batch, 12, 2])",
         [F(2, 2, 3, 4)], lambda xp, p, x: x.reshape(2, 12, 2)),
    case("transpose", "transpose", "input x: [batch, 3, 4]\na = x -> transpose\nb = x -> transpose([2, 0, 1])\n"
         "output a\noutput b", [F(2, 3, 4)],
         lambda xp, p, x: {"a": xp.swapaxes(x, 1, 2), "b": xp.transpose(x, (2, 0, 1))}),
    case("concat", "concat", "input a: [batch, 2, 3]\ninput b: [batch, 4, 3]\noutput y = concat(a, b, a, axis=1)",
         [F(2, 2, 3), F(2, 4, 3)], lambda xp, p, a, b: xp.concatenate([a, b, a], axis=1)),
    case("concat-brackets", "concat", "input a: [batch, 2]\ninput b: [batch, 3]\noutput y = [a, b * 2]",
         [F(2, 2), F(2, 3)], lambda xp, p, a, b: xp.concatenate([a, b * 2], axis=-1)),
    case("split", "split", "input x: [batch, 6]\na, b = split(x, 2)\noutput y = a * 2 - b",
         [F(3, 6)], lambda xp, p, x: x[:, :3] * 2 - x[:, 3:]),
    case("split-sizes-axis", "split", "input x: [batch, 5, 2]\na, b, c = split(x, [1, 3, 1], axis=1)\n"
         "output a\noutput b\noutput c", [F(2, 5, 2)],
         lambda xp, p, x: {"a": x[:, :1], "b": x[:, 1:4], "c": x[:, 4:]}),
    case("sum", "sum", "input x: [batch, 3, 4]\noutput a = sum(x, axis=1)\noutput b = x -> sum(axis=[0, 2])\n"
         "output c = sum(x)", [F(2, 3, 4)],
         lambda xp, p, x: {"a": x.sum(1), "b": x.sum((0, 2)), "c": x.sum()}),
    case("mean", "mean", "input x: [batch, 3, 4]\noutput a = mean(x, axis=-1)\n"
         "output b = mean(x, axis=[1, 2], keepdims=true)", [F(2, 3, 4)],
         lambda xp, p, x: {"a": x.mean(-1), "b": x.mean((1, 2), keepdims=True)}),
    case("max", "max", "input x: [batch, 3, 4]\noutput a = max(x, axis=1)\noutput b = x -> max(axis=-1, keepdims=true)",
         [F(2, 3, 4)], lambda xp, p, x: {"a": x.max(1), "b": x.max(-1, keepdims=True)}),
    case("min", "min", "input x: [batch, 3, 4]\noutput a = min(x, axis=2)\noutput b = min(x)",
         [F(2, 3, 4)], lambda xp, p, x: {"a": x.min(2), "b": x.min()}),
    case("argmax", "argmax", "input x: [batch, 3, 4]\noutput a = argmax(x)\noutput b = argmax(x, axis=1)",
         [F(2, 3, 4)], lambda xp, p, x: {"a": x.argmax(-1), "b": x.argmax(1)}, grad=False),
    case("last", "last", "input x: [batch, 5, 3]\noutput y = x -> last", [F(2, 5, 3)],
         lambda xp, p, x: x[:, -1]),
    case("last-lengths", "last_masked", "input x: [batch, 5, 3]\ninput n: i32[batch]\noutput y = x -> last(lengths=n)",
         [F(4, 5, 3), Int(4, high=6)],
         lambda xp, p, x, n: x[xp.arange(4), xp.clip(n - 1, 0, 4)]),
    case("expand_dims", "expand_dims", "input x: [batch, 3]\noutput a = expand_dims(x, axis=1)\n"
         "output b = expand_dims(x, axis=-1)", [F(2, 3)],
         lambda xp, p, x: {"a": x[:, None, :], "b": x[:, :, None]}),
    case("detach", "detach", "input x: [batch, 3]\noutput y = detach(x) * x",
         [F(2, 3)], lambda xp, p, x: R.stop_gradient(xp, x) * x),

    # ---------------------------------------------------------------- arithmetic, broadcasting
    case("add-broadcast", "add", "input a: [batch, 3, 4]\ninput b: [4]\noutput y = a + b",
         [F(2, 3, 4), F(4)], lambda xp, p, a, b: a + b),
    case("sub-broadcast", "sub", "input a: [batch, 3, 4]\ninput b: [batch, 1, 4]\noutput y = a - b",
         [F(2, 3, 4), F(2, 1, 4)], lambda xp, p, a, b: a - b),
    case("mul-broadcast-both", "mul", "input a: [batch, 3, 1]\ninput b: [batch, 1, 4]\noutput y = a * b",
         [F(2, 3, 1), F(2, 1, 4)], lambda xp, p, a, b: a * b),
    case("div", "div", "input a: [batch, 3]\ninput b: [batch, 1]\noutput y = a / b",
         [F(2, 3), Pos(2, 1)], lambda xp, p, a, b: a / b),
    case("pow", "pow", "input a: [batch, 3]\ninput b: [3]\noutput y = a ** b", [Pos(2, 3), F(3)],
         lambda xp, p, a, b: a ** b),
    case("constants", "const add sub mul div pow neg",
         "input x: [batch, 3]\noutput y = -x + 2 * x ** 2 - 1.5 / (x * x + 1) + 2 ** x - 3",
         [F(2, 3)], lambda xp, p, x: -x + 2 * x ** 2 - 1.5 / (x * x + 1) + 2 ** x - 3),
    case("neg-chain", "neg", "input x: [batch, 3]\noutput y = x -> neg", [F(2, 3)], lambda xp, p, x: -x),
    case("matmul-batch-broadcast", "matmul", "input a: [batch, 3, 4]\ninput b: [4, 5]\noutput y = a @ b",
         [F(2, 3, 4), F(4, 5)], lambda xp, p, a, b: xp.einsum("bij,jk->bik", a, b)),
    case("matmul-batched", "matmul", "input a: [batch, 3, 4]\ninput b: [batch, 4, 2]\noutput y = a @ b",
         [F(2, 3, 4), F(2, 4, 2)], lambda xp, p, a, b: xp.einsum("bij,bjk->bik", a, b)),
    case("matmul-vectors", "matmul", "input a: [batch, 4]\ninput v: [4]\ninput m: [4, 2]\n"
         "output u = a @ v\noutput w = v @ m\noutput s = v @ v", [F(3, 4), F(4), F(4, 2)],
         lambda xp, p, a, v, m: {"u": (a * v).sum(-1), "w": (v[:, None] * m).sum(0), "s": (v * v).sum()}),
    case("comparisons", "equal not_equal less less_equal greater greater_equal",
         "input a: i32[batch, 3]\ninput b: i32[3]\n"
         "output y = (a == b) + 2 * (a != b) + 4 * (a < b) + 8 * (a <= b) + 16 * (a > b) + 32 * (a >= 0.5)",
         [Int(4, 3, high=3), Int(3, high=3)],
         lambda xp, p, a, b: ((a == b) + 2.0 * (a != b) + 4.0 * (a < b) + 8.0 * (a <= b) + 16.0 * (a > b)
                              + 32.0 * (a >= 0.5)).astype(xp.float32), grad=False),
    case("maximum-minimum", "maximum minimum", "input a: [batch, 3]\ninput b: [3]\n"
         "output y = maximum(a, b) + 2 * minimum(a, b)", [F(2, 3), F(3)],
         lambda xp, p, a, b: xp.where(a > b, a, b) + 2 * xp.where(a < b, a, b)),
    case("clip", "clip", "input x: [batch, 5]\noutput a = clip(x, min=-0.5, max=0.8)\noutput b = x -> clip(min=0.1)",
         [F(3, 5)], lambda xp, p, x: {"a": xp.where(x < -0.5, -0.5, xp.where(x > 0.8, 0.8, x)),
                                      "b": xp.where(x < 0.1, 0.1, x)}),

    # ---------------------------------------------------------------- activations
    case("step", "step", "input x: [batch, 5]\noutput y = step(x)", [F(3, 5)],
         lambda xp, p, x: (x > 0).astype(np.float32)),
    case("sigmoid", "sigmoid", "input x: [batch, 5]\noutput y = x -> sigmoid", [Wide(3, 5)],
         lambda xp, p, x: R.sigmoid(xp, x)),
    case("tanh", "tanh", "input x: [batch, 5]\noutput y = tanh(x)", [F(3, 5)], lambda xp, p, x: xp.tanh(x)),
    case("relu", "relu", "input x: [batch, 5]\noutput y = x -> relu", [F(3, 5)], lambda xp, p, x: xp.maximum(x, 0)),
    case("leaky_relu", "leaky_relu", "input x: [batch, 5]\noutput a = x -> leaky_relu\n"
         "output b = x -> leaky_relu(0.2)", [F(3, 5)],
         lambda xp, p, x: {"a": xp.where(x > 0, x, 0.01 * x), "b": xp.where(x > 0, x, 0.2 * x)}),
    case("elu", "elu", "input x: [batch, 5]\noutput a = x -> elu\noutput b = x -> elu(alpha=0.5)", [F(3, 5)],
         lambda xp, p, x: {"a": xp.where(x > 0, x, xp.exp(x) - 1), "b": xp.where(x > 0, x, 0.5 * (xp.exp(x) - 1))}),
    case("gelu", "gelu", "input x: [batch, 5]\noutput y = x -> gelu", [Wide(3, 5)], lambda xp, p, x: R.gelu_tanh(xp, x)),
    case("softmax", "softmax", "input x: [batch, 3, 4]\noutput a = x -> softmax\noutput b = softmax(x, axis=1)",
         [Wide(2, 3, 4)], lambda xp, p, x: {"a": R.softmax(xp, x), "b": R.softmax(xp, x, 1)}),
    case("log_softmax", "log_softmax", "input x: [batch, 4]\noutput y = x -> log_softmax", [Wide(3, 4)],
         lambda xp, p, x: R.log_softmax(xp, x)),
    case("identity", "identity", "input x: [batch, 5]\noutput y = x -> identity", [F(3, 5)], lambda xp, p, x: x),
    case("softplus", "softplus", "input x: [batch, 5]\noutput y = x -> softplus", [Wide(3, 5)],
         lambda xp, p, x: xp.log(1 + xp.exp(x))),
    case("silu-swish", "silu swish", "input x: [batch, 5]\noutput a = x -> silu\noutput b = x -> swish", [F(3, 5)],
         lambda xp, p, x: {"a": x * R.sigmoid(xp, x), "b": x * R.sigmoid(xp, x)}),
    case("relu6", "relu6", "input x: [batch, 8]\noutput y = x -> relu6", [Wide(3, 8)],
         lambda xp, p, x: xp.minimum(xp.maximum(x, 0), 6)),
    case("hard_tanh", "hard_tanh", "input x: [batch, 8]\noutput y = x -> hard_tanh", [Wide(3, 8)],
         lambda xp, p, x: xp.minimum(xp.maximum(x, -1), 1)),
    case("exp-log-sqrt", "exp log sqrt", "input x: [batch, 5]\noutput y = exp(x) + log(x) * sqrt(x)", [Pos(3, 5)],
         lambda xp, p, x: xp.exp(x) + xp.log(x) * xp.sqrt(x)),
    case("abs-square", "abs square", "input x: [batch, 5]\noutput y = abs(x) + square(x) * 2", [F(3, 5)],
         lambda xp, p, x: xp.where(x < 0, -x, x) + x * x * 2),
    case("sin-cos", "sin cos", "input x: [batch, 5]\noutput y = sin(x) * cos(2 * x)", [F(3, 5)],
         lambda xp, p, x: xp.sin(x) * xp.cos(2 * x)),
    case("float-of-int", "exp sigmoid", "input t: i32[batch, 3]\noutput y = exp(t) + sigmoid(t)",
         [Int(2, 3, high=4)], lambda xp, p, t: xp.exp(t.astype(np.float32)) + R.sigmoid(xp, t.astype(np.float32)),
         grad=False),

    # ---------------------------------------------------------------- losses and metrics
    case("cross_entropy-ids", "cross_entropy", "input z: [batch, 5]\ninput t: i32[batch]\noutput l = cross_entropy(z, t)",
         [Wide(6, 5), Int(6, high=5)], lambda xp, p, z, t: R.cross_entropy(xp, z, t)),
    case("cross_entropy-probs", "cross_entropy",
         "input z: [batch, 5]\ninput t: [batch, 5]\noutput l = cross_entropy(z, t)",
         [Wide(6, 5), Simplex(6, 5)], lambda xp, p, z, t: R.cross_entropy(xp, z, t)),
    case("cross_entropy-sequence", "cross_entropy",
         "input z: [batch, time, 5]\ninput t: i32[batch, time]\noutput l = cross_entropy(z, t)",
         [F(2, 3, 5), Int(2, 3, high=5)], lambda xp, p, z, t: R.cross_entropy(xp, z, t)),
    case("mse", "mse", "input y: [batch, 3]\ninput t: [batch, 3]\noutput a = mse(y, t)\n"
         "output b = y -> dense(1) -> mse(t -> sum(axis=1))", [F(4, 3), F(4, 3)],
         lambda xp, p, y, t: {"a": ((y - t) ** 2).mean(),
                              "b": (((y @ W(p, "dense_0") + W(p, "dense_0", "bias"))[:, 0] - t.sum(1)) ** 2).mean()}),
    case("mae", "mae", "input y: [batch, 3]\ninput t: [batch, 3]\noutput l = mae(y, t)", [F(4, 3), F(4, 3)],
         lambda xp, p, y, t: xp.where(y > t, y - t, t - y).mean()),
    case("bce", "bce", "input y: [batch, 3]\ninput t: [batch, 3]\noutput l = bce(y, t)", [Prob(4, 3), Bits(4, 3)],
         lambda xp, p, y, t: R.bce(xp, y, t)),
    case("bce_logits", "bce_logits", "input z: [batch, 1]\ninput t: [batch]\noutput l = bce_logits(z, t)",
         [Wide(6, 1), Bits(6)], lambda xp, p, z, t: R.bce_logits(xp, z[:, 0], t)),
    case("bce_logits-constant", "bce_logits const",
         "input z: [batch, 1]\noutput real = bce_logits(z, 1)\noutput fake = bce_logits(z, 0)",
         [Wide(6, 1)], lambda xp, p, z: {"real": R.bce_logits(xp, z, 1.0), "fake": R.bce_logits(xp, z, 0.0)}),
    case("hinge", "hinge", "input y: [batch]\ninput t: [batch]\noutput a = hinge(y, t)\n"
         "output b = hinge(y, t, margin=0.5)", [F(8), Sign(8)],
         lambda xp, p, y, t: {"a": R.hinge(xp, y, t), "b": R.hinge(xp, y, t, 0.5)}),
    case("hinge-01-labels", "hinge", "input y: [batch, 1]\ninput t: i32[batch]\noutput l = hinge(y, t)",
         [F(8, 1), Int(8, high=2)], lambda xp, p, y, t: R.hinge(xp, y[:, 0], t)),
    case("perceptron", "perceptron", "input x: [batch, 2]\ninput t: [batch]\nparam w: [2] ~ normal(1.0)\n"
         "param b: [] ~ zeros\noutput l = perceptron(x @ w + b, t)", [F(8, 2), Bits(8)],
         lambda xp, p, x, t: R.perceptron(xp, x @ p["w"] + p["b"], t)),
    case("accuracy-ids", "accuracy", "input z: [batch, 4]\ninput t: i32[batch]\noutput a = accuracy(z, t)",
         [F(16, 4), Int(16, high=4)], lambda xp, p, z, t: (z.argmax(-1) == t).mean(), grad=False),
    case("accuracy-threshold", "accuracy", "input z: [batch, 1]\ninput t: [batch]\noutput a = accuracy(z, t)\n"
         "output b = accuracy(z, t, threshold=0.0)", [F(16, 1), Bits(16)],
         lambda xp, p, z, t: {"a": ((z[:, 0] > 0.5) == (t > 0.5)).mean(),
                              "b": ((z[:, 0] > 0.0) == (t > 0.5)).mean()}, grad=False),

    # ---------------------------------------------------------------- GAN layers (stateful ones below)
    case("instance_norm", "instance_norm", "input x: [batch, 3, 4, 2]\noutput y = x -> instance_norm",
         [F(3, 3, 4, 2)], lambda xp, p, x: R.instance_norm(xp, x, W(p, "instance_norm_0", "scale"),
                                                           W(p, "instance_norm_0", "bias"))),
    case("instance_norm-1d-eps", "instance_norm", "input x: [batch, 5, 3]\noutput y = x -> instance_norm(eps=0.1)",
         [F(2, 5, 3)], lambda xp, p, x: R.instance_norm(xp, x, W(p, "instance_norm_0", "scale"),
                                                        W(p, "instance_norm_0", "bias"), 0.1)),
    case("self_attention", "self_attention", "input x: [batch, 3, 2, 4]\noutput y = x -> self_attention(reduction=2)",
         [F(2, 3, 2, 4)], lambda xp, p, x: R.self_attention(xp, x, p["self_attention_0"])),
    case("self_attention-narrow", "self_attention", "input x: [batch, 2, 2, 3]\noutput y = x -> self_attention",
         [F(2, 2, 2, 3)], lambda xp, p, x: R.self_attention(xp, x, p["self_attention_0"])),
    case("adain", "adain", "input x: [batch, 3, 3, 2]\ninput s: [batch, 4]\noutput a = adain(x, s)\n"
         "output b = x -> adain(s, eps=0.01)", [F(2, 3, 3, 2), F(2, 4)],
         lambda xp, p, x, s: {"a": R.adain(xp, x, s, p["adain_0"]), "b": R.adain(xp, x, s, p["adain_1"], 0.01)}),
    case("adain-constant-input", "adain param", "input s: [batch, 3]\nparam start: [1, 2, 3, 2] ~ normal(1.0)\n"
         "output y = adain(start, s)", [F(4, 3)],
         lambda xp, p, s: R.adain(xp, p["start"] + 0 * s[:, :1, None, None], s, p["adain_0"])),

    # ---------------------------------------------------------------- GAN losses
    case("hinge_d-hinge_g", "hinge_d hinge_g", "input r: [batch, 1]\ninput f: [batch, 1]\n"
         "output d = hinge_d(r, f)\noutput g = hinge_g(f)", [F(8, 1), F(8, 1)],
         lambda xp, p, r, f: {"d": xp.maximum(1 - r, 0).mean() + xp.maximum(1 + f, 0).mean(), "g": -f.mean()}),
    case("wasserstein", "wasserstein_d wasserstein_g", "input r: [batch]\ninput f: [batch]\n"
         "output d = wasserstein_d(r, f)\noutput g = wasserstein_g(f)", [F(8), F(8)],
         lambda xp, p, r, f: {"d": f.mean() - r.mean(), "g": -f.mean()}),
    case("minimax_g", "minimax_g", "input f: [batch, 1]\noutput g = minimax_g(f)", [Wide(8, 1)],
         lambda xp, p, f: xp.log(1 - R.sigmoid(xp, f)).mean()),
    case("lsgan", "lsgan_d lsgan_g", "input r: [batch, 1]\ninput f: [batch, 1]\n"
         "output d = lsgan_d(r, f)\noutput g = lsgan_g(f)", [F(8, 1), F(8, 1)],
         lambda xp, p, r, f: {"d": 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean(),
                              "g": 0.5 * ((f - 1) ** 2).mean()}),
]

CASES += CONVENTION_CASES  # issue 16: ONNX/PyTorch layer conventions (conventions.py)

COVERED: set[str] = {op for c in CASES for op in c.ops}


def covers(*ops: str):
    """Marks a dedicated test as the numeric test of `ops` (for the registry's completeness check)."""
    COVERED.update(ops)
    return lambda fn: fn


def params_of(keep):
    return [pytest.param(c, id=c.id, marks=c.marks) for c in CASES if keep(c)]


ALL = params_of(lambda c: True)
DIFFERENTIABLE = params_of(lambda c: c.grad)


@functools.lru_cache(maxsize=None)
def evaluate(case: Case):
    """One compiled program per row (compiling dominates the table's time): the model's outputs
    and, for a differentiable row, the gradients of sum(outputs * r) with respect to the
    parameters and the float inputs, from the model and from the jax.numpy reference."""
    net, xs, variables = setup(case)
    floats = [i for i, x in enumerate(xs) if is_float(x)]

    def with_floats(fx):
        full = list(map(jnp.asarray, xs))
        for i, v in zip(floats, fx):
            full[i] = v
        return full

    def ours(params, fx):
        return net.apply({**variables, "params": params}, *with_floats(fx))

    def theirs(params, fx):
        return case.ref(jnp, params, *with_floats(fx))

    def program(params, fx):
        if not case.grad:
            return ours(params, fx), None, None
        out, pull = jax.vjp(ours, params, fx)
        weights = cotangents(out, seed_of(case.id) + 2)
        ref_out, ref_pull = jax.vjp(theirs, params, fx)
        return out, pull(weights), ref_pull(jax.tree.map(lambda r, y: r.astype(y.dtype), weights, ref_out))

    return jax.jit(program)(variables["params"], [jnp.asarray(xs[i]) for i in floats])


@pytest.mark.parametrize("case", ALL)
def test_forward(case: Case):
    net, xs, variables = setup(case)
    got = evaluate(case)[0]
    want = case.ref(np, f64(variables["params"]), *f64(xs))
    assert_close(got, want, case.rtol, case.atol, case.id)


@pytest.mark.parametrize("case", DIFFERENTIABLE)
def test_gradients(case: Case):
    """vjp with a fixed random cotangent r: the gradient of sum(outputs * r)."""
    _, got, want = evaluate(case)
    assert_close(got, want, case.rtol, max(case.atol, 1e-4), f"{case.id} gradients")


@pytest.mark.parametrize("case", ALL)
def test_case_exercises_its_ops(case: Case):
    """A row's `ops` must really occur in its graph, so COVERED cannot overstate."""
    net = model_of(case.body)
    xs = [np.zeros(s.shape, np.int32 if s.kind == "int" else np.float32) for s in case.inputs]
    present = {n.op for n in concrete_graph(net, xs).nodes()}
    assert set(case.ops) <= present, f"{case.id}: {set(case.ops) - present} not in the graph"


# -------------------------------------------------------------------- the lecture's pooling example
LECTURE_MAP = np.array([[1, 3, 2, 4], [1, 3, 2, 4], [5, 7, 6, 8], [5, 7, 6, 8]], np.float32)


@pytest.mark.parametrize("layer, expected", [("max_pool(2)", [[3, 4], [7, 8]]),
                                             ("avg_pool(2)", [[2, 3], [6, 7]])])
def test_lecture_pooling_example(layer, expected):
    net = model_of(f"input x: [batch, 4, 4, 1]\noutput y = x -> {layer}")
    x = LECTURE_MAP[None, :, :, None]
    y = net.apply(net.init(jax.random.key(0), x), x)
    np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], np.array(expected, np.float32))


# -------------------------------------------------------------------- batchnorm
BN_BODIES = {
    "dense": ("input x: [batch, 5]\noutput y = x -> batchnorm", (8, 5), {}),
    "conv": ("input x: [batch, 3, 3, 2]\noutput y = x -> batchnorm(momentum=0.8, eps=0.01)", (4, 3, 3, 2),
             {"momentum": 0.8, "eps": 0.01}),
}


def _bn_setup(kind):
    body, shape, kw = BN_BODIES[kind]
    net = model_of(body)
    x = np.random.default_rng(seed_of(kind)).normal(1.0, 2.0, shape).astype(np.float32)
    variables = randomize(net.init(jax.random.key(0), x), seed_of(kind) + 1)
    return net, x, variables, kw.get("momentum", 0.9), kw.get("eps", 1e-5)


def _bn_ref(xp, params, state, x, train, momentum, eps):
    p, s = params["batchnorm_0"], state["batchnorm_0"]
    if not train:
        return R.normalize(xp, x, s["mean"], s["var"], p["scale"], p["bias"], eps), state
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = ((x - mean) ** 2).mean(axis=axes)  # biased, as the normalization uses
    new = {"mean": momentum * s["mean"] + (1 - momentum) * mean,
           "var": momentum * s["var"] + (1 - momentum) * var}
    return R.normalize(xp, x, mean, var, p["scale"], p["bias"], eps), {"batchnorm_0": new}


@covers("batchnorm")
@pytest.mark.parametrize("kind", BN_BODIES)
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm(kind, train):
    net, x, variables, momentum, eps = _bn_setup(kind)
    assert set(variables["state"]["batchnorm_0"]) == {"mean", "var"}
    assert set(variables["params"]["batchnorm_0"]) == {"scale", "bias"}
    if train:
        got = net.apply(variables, x, train=True)
    else:
        got = (net.apply(variables, x), variables["state"])
    want = _bn_ref(np, f64(variables["params"]), f64(variables["state"]), np.float64(x), train, momentum, eps)
    assert_close(got, want, 1e-4, 1e-5, f"batchnorm {kind} train={train}")


@pytest.mark.parametrize("kind", BN_BODIES)
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_gradients(kind, train):
    net, x, variables, momentum, eps = _bn_setup(kind)
    r = jnp.asarray(np.random.default_rng(3).normal(size=x.shape), jnp.float32)

    def ours(params, x):
        y = net.apply({**variables, "params": params}, x, train=train)
        return jnp.sum((y[0] if train else y) * r)

    def theirs(params, x):
        return jnp.sum(_bn_ref(jnp, params, variables["state"], x, train, momentum, eps)[0] * r)

    args = (variables["params"], jnp.asarray(x))
    got, want = jax.jit(lambda *a: (jax.grad(ours, (0, 1))(*a), jax.grad(theirs, (0, 1))(*a)))(*args)
    assert_close(got, want, 1e-3, 1e-4, f"batchnorm {kind} gradients")


# -------------------------------------------------------------------- dropout
DROPOUT = "input x: [batch, 100]\noutput y = x -> dropout(0.3)"


@covers("dropout")
def test_dropout_is_identity_unless_training():
    net = model_of(DROPOUT)
    x = np.random.default_rng(0).normal(size=(50, 100)).astype(np.float32)
    v = net.init(jax.random.key(0), x)
    np.testing.assert_array_equal(net.apply(v, x), x)
    np.testing.assert_array_equal(net.apply(v, x, rngs=jax.random.key(1)), x)


def test_dropout_training_keeps_and_rescales():
    net = model_of(DROPOUT)
    x = np.random.default_rng(0).uniform(0.5, 1.5, size=(50, 100)).astype(np.float32)
    v = net.init(jax.random.key(0), x)
    y, _ = net.apply(v, x, train=True, rngs=jax.random.key(1))
    y = np.asarray(y)
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - 0.7) < 4 * np.sqrt(0.7 * 0.3 / n)  # a 4-sigma band around 1 - rate
    np.testing.assert_allclose(y[kept], x[kept] / 0.7, rtol=1e-6)
    y2, _ = net.apply(v, x, train=True, rngs=jax.random.key(2))
    assert (np.asarray(y2) != y).any(), "another key must drop other values"
    y3, _ = net.apply(v, x, train=True, rngs=jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(y3), y)


def test_dropout_gradient_is_the_mask():
    net = model_of(DROPOUT)
    x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, size=(4, 100)), jnp.float32)
    v = net.init(jax.random.key(0), x)
    key = jax.random.key(5)
    y = net.apply(v, x, train=True, rngs=key)[0]
    g = jax.jit(jax.grad(lambda x: jnp.sum(net.apply(v, x, train=True, rngs=key)[0])))(x)
    np.testing.assert_allclose(g, np.where(np.asarray(y) != 0, 1 / 0.7, 0.0), rtol=1e-6)


# -------------------------------------------------------------------- random draws
N_DRAWS = 20000


def _draw(expr: str, seed: int = 0):
    net = model_of(f"input x: [batch, 1]\noutput z = {expr}")
    x = np.zeros((N_DRAWS, 1), np.float32)
    return np.asarray(net.apply(net.init(jax.random.key(0), x), x, rngs=jax.random.key(seed)))


def _band(n=N_DRAWS, sd=1.0):
    return 5 * sd / np.sqrt(n)  # 5 standard errors of a mean of n draws


@covers("normal")
def test_normal_draws():
    z = _draw("normal([batch, 1], mean=2.0, std=3.0)")
    assert z.shape == (N_DRAWS, 1) and z.dtype == np.float32
    assert abs(z.mean() - 2.0) < _band(sd=3.0)
    assert abs(z.std() - 3.0) < 0.05 * 3.0
    assert abs(((z - 2.0) ** 3).mean() / 27) < 0.1  # symmetric
    assert not np.array_equal(z, _draw("normal([batch, 1], mean=2.0, std=3.0)", seed=1))


@covers("uniform")
def test_uniform_draws():
    z = _draw("uniform([batch, 1], low=-1.0, high=3.0)")
    assert z.min() >= -1.0 and z.max() < 3.0
    assert abs(z.mean() - 1.0) < _band(sd=4 / np.sqrt(12))
    hist = np.histogram(z, bins=4, range=(-1, 3))[0] / N_DRAWS
    np.testing.assert_allclose(hist, 0.25, atol=0.02)


@covers("bernoulli")
def test_bernoulli_draws():
    z = _draw("bernoulli([batch, 1], p=0.2)")
    assert set(np.unique(z)) <= {0.0, 1.0} and z.dtype == np.float32
    assert abs(z.mean() - 0.2) < _band(sd=0.4)


@covers("categorical")
def test_categorical_draws():
    z = _draw("categorical([batch, 1], classes=5)")
    assert np.issubdtype(z.dtype, np.integer)
    counts = np.bincount(z.ravel(), minlength=5)
    assert len(counts) == 5
    np.testing.assert_allclose(counts / N_DRAWS, 0.2, atol=0.015)


def test_draws_need_rngs():
    net = model_of("input x: [batch, 1]\noutput z = normal([batch, 1])")
    x = np.zeros((2, 1), np.float32)
    with pytest.raises(Exception, match="rngs"):
        net.apply(net.init(jax.random.key(0), x), x)


# -------------------------------------------------------------------- spectral normalization
SN_BODIES = {
    "dense_sn": ("input x: [batch, 5]\noutput y = x -> dense_sn(4, iterations=ITERS)", (3, 5)),
    "conv2d_sn": ('input x: [batch, 5, 4, 2]\noutput y = x -> conv2d_sn(3, 3, stride=2, padding="same", iterations=ITERS)',
                  (2, 5, 4, 2)),
}


def _sn_setup(op, iterations=1):
    body, shape = SN_BODIES[op]
    net = model_of(body.replace("ITERS", str(iterations)))
    x = np.random.default_rng(seed_of(op)).normal(size=shape).astype(np.float32)
    variables = randomize(net.init(jax.random.key(0), x), seed_of(op) + 1)
    return net, x, variables


def _sn_ref(xp, op, params, u, x):
    p = params[f"{op}_0"]
    w = R.sn_kernel(xp, p["kernel"], u)
    if op == "dense_sn":
        return x @ w + p["bias"]
    return R.conv(xp, x, w, p["bias"], 2, "same")


@covers("dense_sn", "conv2d_sn")
@pytest.mark.parametrize("op", SN_BODIES)
@pytest.mark.parametrize("train", [False, True])
def test_spectral_norm_layers(op, train):
    """Evaluation divides by |M u| with the stored u; training first takes one power-iteration
    step and stores the new u. Forward in float64 numpy, gradients against jax.numpy with u held
    constant (the power iteration is not differentiated)."""
    net, x, variables = _sn_setup(op)
    p64, u = f64(variables["params"]), np.float64(variables["state"][f"{op}_0"]["u"])
    u_used = R.power_iteration(p64[f"{op}_0"]["kernel"], u, 1) if train else u
    if train:
        y, new_state = net.apply(variables, x, train=True)
        np.testing.assert_allclose(new_state[f"{op}_0"]["u"], u_used, rtol=1e-4, atol=1e-5)
    else:
        y = net.apply(variables, x)
    assert_close(y, _sn_ref(np, op, p64, u_used, np.float64(x)), 1e-4, 1e-5, f"{op} train={train}")

    r = jnp.asarray(np.random.default_rng(4).normal(size=np.shape(y)), jnp.float32)
    u32 = jnp.asarray(u_used, jnp.float32)

    def ours(params, x):
        out = net.apply({**variables, "params": params}, x, train=train)
        return jnp.sum((out[0] if train else out) * r)

    def theirs(params, x):
        return jnp.sum(_sn_ref(jnp, op, params, u32, x) * r)

    args = (variables["params"], jnp.asarray(x))
    got, want = jax.jit(lambda *a: (jax.grad(ours, (0, 1))(*a), jax.grad(theirs, (0, 1))(*a)))(*args)
    assert_close(got, want, 1e-3, 1e-4, f"{op} gradients train={train}")


def test_dense_sn_power_iteration_finds_the_spectral_norm():
    """Applied to the identity, dense_sn returns its normalized kernel (plus bias): after enough
    power-iteration steps its largest singular value, by numpy's SVD, is 1."""
    net = model_of("input x: [batch, 6]\noutput y = x -> dense_sn(4, iterations=60, bias=false)")
    eye = np.eye(6, dtype=np.float32)
    variables = randomize(net.init(jax.random.key(0), eye), 7)
    y, state = net.apply(variables, eye, train=True)
    w = np.asarray(variables["params"]["dense_sn_0"]["kernel"], np.float64)
    np.testing.assert_allclose(np.linalg.svd(np.asarray(y, np.float64), compute_uv=False)[0], 1.0, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(y), w / np.linalg.svd(w, compute_uv=False)[0], rtol=1e-4, atol=1e-5)
    # evaluation with the converged u gives the same normalization, and leaves u alone
    y_eval = net.apply({**variables, "state": state}, eye)
    np.testing.assert_allclose(np.asarray(y_eval), np.asarray(y), rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------------- conditional batchnorm
CBN = "input x: [batch, 3, 2, 4]\ninput l: i32[batch]\noutput y = conditional_batchnorm(x, l, classes=5, momentum=0.8)"


def _cbn_ref(xp, params, state, x, labels, train):
    p, s = params["conditional_batchnorm_0"], state["conditional_batchnorm_0"]
    if not train:
        return R.conditional_batchnorm(xp, x, labels, p, s["mean"], s["var"]), state
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    var = ((x - mean) ** 2).mean(axis=axes)
    new = {"mean": 0.8 * s["mean"] + 0.2 * mean, "var": 0.8 * s["var"] + 0.2 * var}
    return R.conditional_batchnorm(xp, x, labels, p, mean, var), {"conditional_batchnorm_0": new}


@covers("conditional_batchnorm")
@pytest.mark.parametrize("train", [True, False])
def test_conditional_batchnorm(train):
    net = model_of(CBN)
    rng = np.random.default_rng(seed_of(CBN))
    x = rng.normal(1.0, 2.0, (6, 3, 2, 4)).astype(np.float32)
    labels = rng.integers(0, 5, 6).astype(np.int32)
    variables = randomize(net.init(jax.random.key(0), x, labels), 11)
    assert variables["params"]["conditional_batchnorm_0"]["scale"].shape == (5, 4)
    got = net.apply(variables, x, labels, train=True) if train else (net.apply(variables, x, labels),
                                                                      variables["state"])
    want = _cbn_ref(np, f64(variables["params"]), f64(variables["state"]), np.float64(x), labels, train)
    assert_close(got, want, 1e-4, 1e-5, f"conditional_batchnorm train={train}")

    r = jnp.asarray(rng.normal(size=x.shape), jnp.float32)

    def ours(params, x):
        y = net.apply({**variables, "params": params}, x, labels, train=train)
        return jnp.sum((y[0] if train else y) * r)

    def theirs(params, x):
        return jnp.sum(_cbn_ref(jnp, params, variables["state"], x, labels, train)[0] * r)

    args = (variables["params"], jnp.asarray(x))
    got, want = jax.jit(lambda *a: (jax.grad(ours, (0, 1))(*a), jax.grad(theirs, (0, 1))(*a)))(*args)
    assert_close(got, want, 1e-3, 1e-4, f"conditional_batchnorm gradients train={train}")


# -------------------------------------------------------------------- noise injection
NOISE = "input x: [batch, 16, 16, 3]\noutput y = x -> noise_injection"


@covers("noise_injection")
def test_noise_injection():
    """y = x + scale[c] * n with one N(0, 1) value n per example and pixel, shared by the channels;
    fresh per key when training; zero without a key outside training."""
    net = model_of(NOISE)
    x = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype(np.float32)
    variables = randomize(net.init(jax.random.key(0), x), 3)
    scale = np.asarray(variables["params"]["noise_injection_0"]["scale"])
    np.testing.assert_array_equal(net.apply(variables, x), x)
    y, _ = net.apply(variables, x, train=True, rngs=jax.random.key(1))
    d = np.asarray(y, np.float64) - x
    n = d[..., 0] / scale[0]
    np.testing.assert_allclose(d, n[..., None] * scale, rtol=1e-3, atol=1e-5)  # shared across channels
    assert abs(n.mean()) < 5 / np.sqrt(n.size) and abs(n.std() - 1) < 0.05
    again, _ = net.apply(variables, x, train=True, rngs=jax.random.key(1))
    np.testing.assert_array_equal(np.asarray(again), np.asarray(y))
    other, _ = net.apply(variables, x, train=True, rngs=jax.random.key(2))
    assert not np.allclose(np.asarray(other), np.asarray(y))
    fixed = net.apply(variables, x, rngs=jax.random.key(1))  # evaluation with a key: that key's noise
    np.testing.assert_allclose(np.asarray(fixed), np.asarray(y), rtol=1e-6)
    # d y / d scale[c] = sum over examples and pixels of n
    g = jax.grad(lambda p: jnp.sum(net.apply({**variables, "params": p}, x, train=True,
                                             rngs=jax.random.key(1))[0]))(variables["params"])
    np.testing.assert_allclose(g["noise_injection_0"]["scale"], np.full(3, n.sum()), rtol=1e-3)


def test_noise_injection_needs_a_key_to_train():
    net = model_of(NOISE)
    x = np.zeros((1, 16, 16, 3), np.float32)
    with pytest.raises(Exception, match="rngs"):
        net.apply(net.init(jax.random.key(0), x), x, train=True)


from . import test_augment  # noqa: E402,F401  (registers the augmentation ops in COVERED)


# -------------------------------------------------------------------- generation (issue 19)
@covers("full")
def test_full_gives_one_value_per_example():
    net = model_of("input x: i32[batch, 5]\noutput a = full(x, 3)\noutput b = full(x, 0.5, shape=[2])")
    x = np.zeros((4, 5), np.int32)
    out = net.apply(net.init(jax.random.key(0), x), x)
    np.testing.assert_array_equal(np.asarray(out["a"]), np.full((4,), 3, np.int32))
    assert np.asarray(out["a"]).dtype == np.int32
    np.testing.assert_array_equal(np.asarray(out["b"]), np.full((4, 2), 0.5, np.float32))


@covers("sample")
def test_sample_draws_from_the_softmax_and_keeps_top_k_and_top_p():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]], np.float32)).repeat(N_DRAWS, 0)

    def draws(args: str) -> np.ndarray:
        net = model_of(f"input x: [batch, 4]\noutput t = x -> sample({args})")
        return np.asarray(net.apply(net.init(jax.random.key(0), logits), logits, rngs=jax.random.key(7)))
    freq = np.bincount(draws("temperature=1.0"), minlength=4) / N_DRAWS
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=_band(sd=0.5))
    # temperature 0 is the argmax; top_k=2 keeps the two likeliest, renormalized (0.5 : 0.3)
    assert (draws("temperature=0.0") == 0).all()
    k2 = np.bincount(draws("top_k=2"), minlength=4) / N_DRAWS
    np.testing.assert_allclose(k2, [0.625, 0.375, 0, 0], atol=_band(sd=0.5))
    # top_p=0.7: the smallest set of likeliest tokens holding 0.7 is {0, 1}
    p7 = np.bincount(draws("top_p=0.7"), minlength=4) / N_DRAWS
    np.testing.assert_allclose(p7, [0.625, 0.375, 0, 0], atol=_band(sd=0.5))
