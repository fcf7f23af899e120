"""Rows for the layer conventions of ONNX and PyTorch (issue 16): explicit and asymmetric padding,
"same_lower", pooling's ceil_mode/dilation/count_include_pad, max pooling's indices and unpooling,
transposed convolutions with groups/dilation/output_padding, the pad op, normalizations,
activations, resizing and flattening.

The references are written from the ONNX operator definitions, independently of nndsl's code:
windows are gathered one output position at a time (or one tap at a time with explicit index
arithmetic), transposed convolutions are scatter-adds pixel by pixel. Each takes the array module
first, as refs.py's do, so test_numerics runs them in float64 numpy and in jax.numpy for
gradients. test_onnx_conventions.py checks the same layers against onnx.reference as well.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from .harness import Case, F, Wide
from .refs import add_at, tup


def row(id, ops, body, inputs, ref, **kw) -> Case:
    return Case(id, tuple(ops.split()), body, tuple(inputs), ref, **kw)


def W(p, layer, leaf="kernel"):
    return p[layer][leaf]


# ---------------------------------------------------------------- padding, as ONNX spells it
def explicit_pads(sizes, k, s, d, padding):
    """(before, after) per axis: "same" is ONNX SAME_UPPER, "same_lower" SAME_LOWER."""
    n = len(sizes)
    if padding == "valid":
        return [(0, 0)] * n
    if padding in ("same", "same_lower"):
        out = []
        for i in range(n):
            o = -(-sizes[i] // s[i])
            total = max((o - 1) * s[i] + d[i] * (k[i] - 1) + 1 - sizes[i], 0)
            before = total // 2 if padding == "same" else total - total // 2
            out.append((before, total - before))
        return out
    if isinstance(padding, int):
        return [(padding, padding)] * n
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def conv(xp, x, w, b=None, stride=1, padding="valid", dilation=1, groups=1):
    """ONNX Conv, channels-last: y[o] = sum_k x[o * s + k * d - before] w[k], zero outside."""
    n = x.ndim - 2
    k, s, d = w.shape[:n], tup(stride, n), tup(dilation, n)
    pads = explicit_pads(x.shape[1:-1], k, s, d, padding)
    xpad = xp.pad(x, [(0, 0), *pads, (0, 0)])
    outs = [(xpad.shape[1 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(n)]
    cin, f = w.shape[n], w.shape[-1]
    y = 0
    for off in itertools.product(*(range(ki) for ki in k)):
        idx = tuple(slice(o * d[i], o * d[i] + (outs[i] - 1) * s[i] + 1, s[i]) for i, o in enumerate(off))
        patch = xpad[(slice(None), *idx, slice(None))]
        patch = patch.reshape(*patch.shape[:-1], groups, cin)
        y = y + xp.einsum("...gc,cgf->...gf", patch, w[off].reshape(cin, groups, f // groups)).reshape(
            *patch.shape[:-2], f)
    return y if b is None else y + b


def conv_transpose(xp, x, w, b=None, stride=1, padding="same", output_padding=0, dilation=1, groups=1):
    """ONNX ConvTranspose, channels-last, pixel by pixel: out[i * s + k * d] += x[i] @ w[k] within
    each group, over (n - 1) * s + d * (k - 1) + 1 + output_padding positions, then cropped."""
    n = x.ndim - 2
    k, s, d, op = w.shape[:n], tup(stride, n), tup(dilation, n), tup(output_padding, n)
    sizes = x.shape[1:-1]
    eff = [d[i] * (k[i] - 1) + 1 for i in range(n)]
    full = [(sizes[i] - 1) * s[i] + eff[i] + op[i] for i in range(n)]
    crops = []
    for i in range(n):
        if padding == "valid":
            crops.append((0, -max(s[i] - eff[i] - op[i], 0)))
        elif padding in ("same", "same_lower"):
            total = eff[i] + op[i] - s[i]  # ONNX: output = input * stride
            if total < 0:
                crops.append((0, total))
            else:
                lo = total // 2 if padding == "same" else total - total // 2
                crops.append((lo, total - lo))
        else:
            crops.append(explicit_pads(sizes, k, s, d, padding)[i])
    room = [full[i] + max(-crops[i][1], 0) for i in range(n)]
    cin, f = w.shape[n], w.shape[-1]
    g_in, g_out = cin, f // groups
    out = xp.zeros((x.shape[0], *room, f), x.dtype)
    for pix in itertools.product(*(range(m) for m in sizes)):
        v = x[(slice(None), *pix)].reshape(x.shape[0], groups, g_in)
        for tap in itertools.product(*(range(ki) for ki in k)):
            wk = w[tap].reshape(g_in, groups, g_out)
            value = xp.einsum("bgc,cgf->bgf", v, wk).reshape(x.shape[0], f)
            where = tuple(pix[i] * s[i] + tap[i] * d[i] for i in range(n))
            out = add_at(xp, out, (slice(None), *where, slice(None)), value)
    keep = tuple(slice(lo, lo + full[i] - lo - hi) for i, (lo, hi) in enumerate(crops))
    out = out[(slice(None), *keep, slice(None))]
    return out if b is None else out + b


# ---------------------------------------------------------------- pooling
def pool_geometry(sizes, window, stride, padding, dilation, ceil_mode):
    n = len(sizes)
    k, d = tup(window, n), tup(dilation, n)
    s = tup(stride if stride is not None else window, n)
    pads = explicit_pads(sizes, k, s, d, padding)
    outs = []
    for i in range(n):
        if padding in ("same", "same_lower"):
            outs.append(-(-sizes[i] // s[i]))
            continue
        num = sizes[i] + sum(pads[i]) - (d[i] * (k[i] - 1) + 1)
        o = (-(-num // s[i]) if ceil_mode else num // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= sizes[i] + pads[i][0]:
            o -= 1  # the last window may not start in the padding after the input
        outs.append(o)
    return k, s, d, pads, outs


def pool(xp, x, window=2, stride=None, padding="valid", dilation=1, ceil_mode=False, kind="max",
         count_include_pad=False):
    """One output position at a time: the taps p = o * s + k * d - before that fall inside the
    input (or, for count_include_pad, inside the explicit padding, where they count as zeros)."""
    sizes = x.shape[1:-1]
    k, s, d, pads, outs = pool_geometry(sizes, window, stride, padding, dilation, ceil_mode)
    rows = []
    for o in itertools.product(*(range(m) for m in outs)):
        vals, count = [], 0
        for tap in itertools.product(*(range(ki) for ki in k)):
            p = [o[i] * s[i] + tap[i] * d[i] - pads[i][0] for i in range(len(k))]
            inside = all(0 <= p[i] < sizes[i] for i in range(len(k)))
            padded = all(-pads[i][0] <= p[i] < sizes[i] + pads[i][1] for i in range(len(k)))
            if inside:
                vals.append(x[(slice(None), *p, slice(None))])
            count += inside or (count_include_pad and padded)
        if kind == "max":
            v = vals[0]
            for u in vals[1:]:
                v = xp.maximum(v, u)
        else:
            v = sum(vals[1:], vals[0]) / count
        rows.append(v)
    return xp.stack(rows, 1).reshape(x.shape[0], *outs, x.shape[-1])


def argmax_pool(x, window=2, stride=None, padding="valid", dilation=1, ceil_mode=False):
    """numpy loops: the first maximum in the window's row-major tap order, as a flat h * W + w."""
    sizes = x.shape[1:-1]
    k, s, d, pads, outs = pool_geometry(sizes, window, stride, padding, dilation, ceil_mode)
    vals = np.zeros((x.shape[0], *outs, x.shape[-1]), x.dtype)
    idx = np.zeros(vals.shape, np.int32)
    for b, c in itertools.product(range(x.shape[0]), range(x.shape[-1])):
        for o in itertools.product(*(range(m) for m in outs)):
            best, where = -np.inf, -1
            for tap in itertools.product(*(range(ki) for ki in k)):
                p = [o[i] * s[i] + tap[i] * d[i] - pads[i][0] for i in range(len(k))]
                if all(0 <= p[i] < sizes[i] for i in range(len(k))) and x[(b, *p, c)] > best:
                    best, where = x[(b, *p, c)], int(np.ravel_multi_index(p, sizes))
            vals[(b, *o, c)], idx[(b, *o, c)] = best, where
    return vals, idx


def unpool(x, idx, out_sizes):
    y = np.zeros((x.shape[0], math.prod(out_sizes), x.shape[-1]), x.dtype)
    for b, c in itertools.product(range(x.shape[0]), range(x.shape[-1])):
        for v, i in zip(x[b, ..., c].ravel(), idx[b, ..., c].ravel()):
            y[b, i, c] = v
    return y.reshape(x.shape[0], *out_sizes, x.shape[-1])


def maxpool_unpool(xp, p, x):
    v, i = argmax_pool(np.asarray(x), 2)
    return {"v": v, "i": i, "u": unpool(v, i, x.shape[1:-1])}


# ---------------------------------------------------------------- activations (ONNX definitions)
def erf(xp, x):
    if xp is np:
        return np.vectorize(math.erf)(x)
    import jax.scipy.special
    return jax.scipy.special.erf(x)


def softplus(xp, x):
    return xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(x, 0)


SELU_ALPHA, SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875  # ONNX Selu


def act(body, inputs=None):
    return f"input x: [batch, 3, 4]\noutput y = x -> {body}"


# ---------------------------------------------------------------- pad and normalization
def pad_ref(xp, x, pads, mode="constant", value=0.0):
    """Index arithmetic per axis, one axis at a time (ONNX Pad's modes)."""
    for axis, (lo, hi) in enumerate(pads):
        n = x.shape[axis]
        src = []
        for j in range(-lo, n + hi):
            if 0 <= j < n:
                src.append(j)
            elif mode == "edge":
                src.append(min(max(j, 0), n - 1))
            elif mode == "reflect":
                src.append(-j if j < 0 else 2 * (n - 1) - j)
            elif mode == "wrap":
                src.append(j % n)
            else:
                src.append(None)
        parts = []
        for j in src:
            idx = (slice(None),) * axis + (slice(j, j + 1) if j is not None else slice(0, 1),)
            part = x[idx]
            parts.append(part if j is not None else xp.full(part.shape, value, x.dtype))
        x = xp.concatenate(parts, axis)
    return x


def layernorm_ref(xp, x, scale, bias, axes, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / xp.sqrt(var + eps) * scale + bias


def groupnorm_ref(xp, x, scale, bias, groups, eps=1e-5):
    """Channel c belongs to group c // (C / groups); statistics per example and group."""
    c = x.shape[-1]
    size = c // groups
    outs = []
    for g in range(groups):
        part = x[..., g * size:(g + 1) * size]
        axes = tuple(range(1, x.ndim))
        mean = part.mean(axis=axes, keepdims=True)
        var = ((part - mean) ** 2).mean(axis=axes, keepdims=True)
        outs.append((part - mean) / xp.sqrt(var + eps))
    return xp.concatenate(outs, -1) * scale + bias


# ---------------------------------------------------------------- resize (ONNX Resize, 2-D)
def _coord(x, n_in, n_out, scale, mode):
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else 0.0
    if mode == "align_corners":
        return x * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return x / scale


def resize2d(xp, x, out, scales=None, mode="nearest", coords="half_pixel", rounding="round_prefer_floor"):
    """Position by position: bilinear from the four neighbours (the coordinate clamped into the
    input), nearest by the rounding rule."""
    h, w = x.shape[1:3]
    scales = scales or (out[0] / h, out[1] / w)
    rows = []
    for i in range(out[0]):
        for j in range(out[1]):
            ci = _coord(i, h, out[0], scales[0], coords)
            cj = _coord(j, w, out[1], scales[1], coords)
            if mode == "nearest":
                def pick(c, n):
                    frac = c - math.floor(c)
                    r = {"floor": math.floor(c), "ceil": math.ceil(c),
                         "round_prefer_floor": math.floor(c) if frac == 0.5 else round(c),
                         "round_prefer_ceil": math.ceil(c) if frac == 0.5 else round(c)}[rounding]
                    return min(max(int(r), 0), n - 1)
                rows.append(x[:, pick(ci, h), pick(cj, w)])
                continue
            ci, cj = min(max(ci, 0), h - 1), min(max(cj, 0), w - 1)
            i0, j0 = int(math.floor(ci)), int(math.floor(cj))
            i1, j1 = min(i0 + 1, h - 1), min(j0 + 1, w - 1)
            a, b = ci - i0, cj - j0
            rows.append((1 - a) * (1 - b) * x[:, i0, j0] + (1 - a) * b * x[:, i0, j1]
                        + a * (1 - b) * x[:, i1, j0] + a * b * x[:, i1, j1])
    return xp.stack(rows, 1).reshape(x.shape[0], out[0], out[1], x.shape[-1])


# ---------------------------------------------------------------- rows
CASES = [
    # explicit and asymmetric padding, "same_lower"
    row("conv2d-pairs", "conv2d", "input x: [batch, 6, 5, 2]\noutput y = x -> conv2d(3, 3, padding=[[0, 2], [1, 1]])",
        [F(2, 6, 5, 2)], lambda xp, p, x: conv(xp, x, W(p, "conv2d_0"), W(p, "conv2d_0", "bias"),
                                                 padding=[[0, 2], [1, 1]])),
    row("conv2d-per-axis-pad", "conv2d",
        "input x: [batch, 6, 5, 2]\noutput y = x -> conv2d(3, 3, stride=2, padding=[2, 0], bias=false)",
        [F(2, 6, 5, 2)], lambda xp, p, x: conv(xp, x, W(p, "conv2d_0"), None, 2, [2, 0])),
    row("conv1d-same-lower", "conv1d",
        'input x: [batch, 8, 2]\noutput y = x -> conv1d(3, 4, stride=3, padding="same_lower")', [F(2, 8, 2)],
        lambda xp, p, x: conv(xp, x, W(p, "conv1d_0"), W(p, "conv1d_0", "bias"), 3, "same_lower")),
    row("conv3d-pairs-dilation", "conv3d",
        "input x: [batch, 4, 5, 4, 2]\noutput y = x -> conv3d(2, 2, dilation=[1, 2, 1], padding=[[1, 0], [0, 2], [1, 1]])",
        [F(2, 4, 5, 4, 2)], lambda xp, p, x: conv(xp, x, W(p, "conv3d_0"), W(p, "conv3d_0", "bias"),
                                                    1, [[1, 0], [0, 2], [1, 1]], [1, 2, 1])),
    row("conv2d-same-lower-dilation-groups", "conv2d",
        'input x: [batch, 6, 6, 4]\noutput y = x -> conv2d(4, 2, dilation=2, groups=2, padding="same_lower")',
        [F(2, 6, 6, 4)], lambda xp, p, x: conv(xp, x, W(p, "conv2d_0"), W(p, "conv2d_0", "bias"),
                                                 1, "same_lower", 2, 2)),
    # transposed convolutions
    row("convT2d-groups-dilation-outpad", "conv_transpose2d",
        "input x: [batch, 3, 4, 4]\noutput y = x -> conv_transpose2d(6, 3, stride=2, padding=1, "
        "output_padding=1, dilation=[1, 2], groups=2)", [F(2, 3, 4, 4)],
        lambda xp, p, x: conv_transpose(xp, x, W(p, "conv_transpose2d_0"), W(p, "conv_transpose2d_0", "bias"),
                                        2, 1, 1, (1, 2), 2)),
    row("convT2d-output-size-pytorch", "conv_transpose2d",
        "input x: [batch, 3, 3, 2]\noutput y = x -> conv_transpose2d(2, 3, stride=2, padding=1, output_size=[6, 5])",
        [F(2, 3, 3, 2)],
        lambda xp, p, x: conv_transpose(xp, x, W(p, "conv_transpose2d_0"), W(p, "conv_transpose2d_0", "bias"),
                                        2, 1, (1, 0))),
    row("convT1d-pairs", "conv_transpose1d",
        "input x: [batch, 4, 2]\noutput y = x -> conv_transpose1d(3, 4, stride=3, padding=[[0, 2]], bias=false)",
        [F(2, 4, 2)], lambda xp, p, x: conv_transpose(xp, x, W(p, "conv_transpose1d_0"), None, 3, [[0, 2]])),
    row("convT2d-same-lower-outpad", "conv_transpose2d",
        'input x: [batch, 3, 3, 2]\noutput y = x -> conv_transpose2d(2, 3, stride=2, padding="same_lower", '
        'output_padding=[1, 0])', [F(2, 3, 3, 2)],
        lambda xp, p, x: conv_transpose(xp, x, W(p, "conv_transpose2d_0"), W(p, "conv_transpose2d_0", "bias"),
                                        2, "same_lower", (1, 0))),
    row("convT3d-dilation-valid", "conv_transpose3d",
        'input x: [batch, 2, 3, 2, 2]\noutput y = x -> conv_transpose3d(2, 2, dilation=2, padding="valid")',
        [F(1, 2, 3, 2, 2)],
        lambda xp, p, x: conv_transpose(xp, x, W(p, "conv_transpose3d_0"), W(p, "conv_transpose3d_0", "bias"),
                                        1, "valid", 0, 2)),
    # pooling
    row("max_pool-ceil", "max_pool", "input x: [batch, 7, 6, 2]\noutput y = x -> max_pool(3, stride=2, ceil_mode=true)",
        [F(2, 7, 6, 2)], lambda xp, p, x: pool(xp, x, 3, 2, ceil_mode=True)),
    row("max_pool-ceil-pad-lastwindow", "max_pool",
        "input x: [batch, 6, 2]\noutput y = x -> max_pool(2, stride=2, padding=1, ceil_mode=true)",
        [F(2, 6, 2)], lambda xp, p, x: pool(xp, x, 2, 2, 1, ceil_mode=True)),
    row("max_pool-dilation-pairs", "max_pool",
        "input x: [batch, 7, 7, 2]\noutput y = x -> max_pool(2, stride=1, dilation=[2, 3], padding=[[1, 0], [0, 1]])",
        [F(2, 7, 7, 2)], lambda xp, p, x: pool(xp, x, 2, 1, [[1, 0], [0, 1]], (2, 3))),
    row("max_pool3d-same-lower", "max_pool",
        'input x: [batch, 3, 4, 5, 2]\noutput y = x -> max_pool(2, padding="same_lower")',
        [F(1, 3, 4, 5, 2)], lambda xp, p, x: pool(xp, x, 2, None, "same_lower")),
    row("avg_pool-include-pad", "avg_pool",
        "input x: [batch, 5, 5, 2]\noutput y = x -> avg_pool(3, stride=2, padding=1, count_include_pad=true)",
        [F(2, 5, 5, 2)], lambda xp, p, x: pool(xp, x, 3, 2, 1, kind="avg", count_include_pad=True)),
    row("avg_pool-include-pad-ceil", "avg_pool",
        "input x: [batch, 6, 7, 2]\noutput y = x -> avg_pool(3, stride=2, padding=[1, 0], ceil_mode=true, "
        "count_include_pad=true)", [F(2, 6, 7, 2)],
        lambda xp, p, x: pool(xp, x, 3, 2, [1, 0], ceil_mode=True, kind="avg", count_include_pad=True)),
    row("avg_pool-exclude-pad-ceil-dilation", "avg_pool",
        "input x: [batch, 8, 2]\noutput y = x -> avg_pool(2, stride=2, dilation=2, padding=[[1, 2]], ceil_mode=true)",
        [F(2, 8, 2)], lambda xp, p, x: pool(xp, x, 2, 2, [[1, 2]], 2, True, kind="avg")),
    row("avg_pool-same-lower", "avg_pool",
        'input x: [batch, 5, 5, 2]\noutput y = x -> avg_pool(2, padding="same_lower")',
        [F(2, 5, 5, 2)], lambda xp, p, x: pool(xp, x, 2, None, "same_lower", kind="avg")),
    row("max_pool-indices-unpool", "max_pool max_unpool",
        "input x: [batch, 4, 6, 3]\nm, j = x -> max_pool(2, indices=true)\noutput v = m\noutput i = j\n"
        "output u = max_unpool(m, j, 2)", [Wide(2, 4, 6, 3)], maxpool_unpool, grad=False),
    row("max_pool-indices-values-grad", "max_pool",
        "input x: [batch, 5, 5, 2]\nm, j = x -> max_pool(3, stride=2, padding=1, dilation=[1, 2], indices=true)\n"
        "output y = m", [F(2, 5, 5, 2)], lambda xp, p, x: pool(xp, x, 3, 2, 1, (1, 2))),
    # activations
    row("gelu-exact", "gelu", act("gelu(approximate=false)"), [Wide(2, 3, 4)],
        lambda xp, p, x: 0.5 * x * (1 + erf(xp, x / math.sqrt(2)))),
    row("gelu-tanh-explicit", "gelu", act("gelu(approximate=true)"), [Wide(2, 3, 4)],
        lambda xp, p, x: 0.5 * x * (1 + xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    row("selu", "selu", act("selu"), [Wide(2, 3, 4)],
        lambda xp, p, x: SELU_GAMMA * xp.where(x > 0, x, SELU_ALPHA * (xp.exp(xp.minimum(x, 0)) - 1))),
    row("celu", "celu", act("celu(alpha=1.5)"), [Wide(2, 3, 4)],
        lambda xp, p, x: xp.maximum(x, 0) + xp.minimum(0, 1.5 * (xp.exp(xp.minimum(x, 0) / 1.5) - 1))),
    row("hard_sigmoid-default", "hard_sigmoid", act("hard_sigmoid"), [Wide(2, 3, 4)],
        lambda xp, p, x: xp.maximum(0, xp.minimum(1, x / 6 + 0.5))),
    row("hard_sigmoid-onnx", "hard_sigmoid", act("hard_sigmoid(alpha=0.2, beta=0.4)"), [Wide(2, 3, 4)],
        lambda xp, p, x: xp.maximum(0, xp.minimum(1, 0.2 * x + 0.4))),
    row("hard_swish", "hard_swish", act("hard_swish"), [Wide(2, 3, 4)],
        lambda xp, p, x: x * xp.maximum(0, xp.minimum(1, x / 6 + 0.5))),
    row("mish", "mish", act("mish"), [Wide(2, 3, 4)], lambda xp, p, x: x * xp.tanh(softplus(xp, x))),
    row("softsign", "softsign", act("softsign"), [Wide(2, 3, 4)], lambda xp, p, x: x / (1 + xp.abs(x))),
    row("prelu-per-channel", "prelu", act("prelu"), [F(2, 3, 4)],
        lambda xp, p, x: xp.where(x >= 0, x, W(p, "prelu_0", "slope") * x)),
    row("prelu-shared", "prelu", act("prelu(per_channel=false)"), [F(2, 3, 4)],
        lambda xp, p, x: xp.where(x >= 0, x, W(p, "prelu_0", "slope") * x)),
    row("log_softmax-axis", "log_softmax", act("log_softmax(axis=1)"), [Wide(2, 3, 4)],
        lambda xp, p, x: x - xp.log(xp.sum(xp.exp(x), axis=1, keepdims=True))),
    # pad
    row("pad-constant-spatial", "pad", "input x: [batch, 3, 4, 2]\noutput y = x -> pad([[1, 0], [0, 2]], value=1.5)",
        [F(2, 3, 4, 2)], lambda xp, p, x: pad_ref(xp, x, [(0, 0), (1, 0), (0, 2), (0, 0)], value=1.5)),
    row("pad-reflect", "pad", 'input x: [batch, 4, 5, 2]\noutput y = x -> pad([[2, 1], [3, 4]], mode="reflect")',
        [F(2, 4, 5, 2)], lambda xp, p, x: pad_ref(xp, x, [(0, 0), (2, 1), (3, 4), (0, 0)], "reflect")),
    row("pad-edge-axes", "pad", 'input x: [batch, 3, 4]\noutput y = x -> pad([2, 1], mode="edge", axes=[-1, 1])',
        [F(2, 3, 4)], lambda xp, p, x: pad_ref(xp, x, [(0, 0), (1, 1), (2, 2)], "edge")),
    row("pad-wrap-batch-and-channels", "pad", 'input x: [batch, 3, 2]\noutput y = x -> pad([[1, 2], [2, 0]], mode="wrap", axes=[0, 2])',
        [F(3, 3, 2)], lambda xp, p, x: pad_ref(xp, x, [(1, 2), (0, 0), (2, 0)], "wrap")),
    # normalization
    row("layernorm-two-axes", "layernorm", "input x: [batch, 3, 4]\noutput y = x -> layernorm(axes=[-2, -1])",
        [F(2, 3, 4)], lambda xp, p, x: layernorm_ref(xp, x, W(p, "layernorm_0", "scale"),
                                                       W(p, "layernorm_0", "bias"), (1, 2))),
    row("layernorm-last", "layernorm", "input x: [batch, 3, 4]\noutput y = x -> layernorm(eps=0.01)",
        [F(2, 3, 4)], lambda xp, p, x: layernorm_ref(xp, x, W(p, "layernorm_0", "scale"),
                                                       W(p, "layernorm_0", "bias"), (2,), 0.01)),
    row("rmsnorm", "rmsnorm", "input x: [batch, 3, 4]\noutput y = x -> rmsnorm",
        [F(2, 3, 4)], lambda xp, p, x: x / xp.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-5)
        * W(p, "rmsnorm_0", "scale")),
    row("rmsnorm-two-axes", "rmsnorm", "input x: [batch, 3, 4]\noutput y = x -> rmsnorm(axes=[1, 2], eps=0.1)",
        [F(2, 3, 4)], lambda xp, p, x: x / xp.sqrt((x ** 2).mean((1, 2), keepdims=True) + 0.1)
        * W(p, "rmsnorm_0", "scale")),
    row("groupnorm", "groupnorm", "input x: [batch, 3, 3, 6]\noutput y = x -> groupnorm(3)",
        [F(2, 3, 3, 6)], lambda xp, p, x: groupnorm_ref(xp, x, W(p, "groupnorm_0", "scale"),
                                                          W(p, "groupnorm_0", "bias"), 3)),
    # reshaping across the batch axis
    row("flatten-axis2", "flatten", "input x: [batch, 3, 4, 2]\noutput y = x -> flatten(axis=2)", [F(2, 3, 4, 2)],
        lambda xp, p, x: x.reshape(2 * 3, 4 * 2)),
    row("flatten-axis0", "flatten", "input x: [batch, 3, 2]\noutput y = x -> flatten(axis=0)", [F(2, 3, 2)],
        lambda xp, p, x: x.reshape(1, 12)),
    row("flatten-axis-neg", "flatten", "input x: [batch, 3, 4, 2]\noutput y = x -> flatten(axis=-1)", [F(2, 3, 4, 2)],
        lambda xp, p, x: x.reshape(24, 2)),
    row("reshape-merge-split-batch", "reshape dense",
        "input x: [batch, 3, 4]\nm = x -> reshape([-1, 4], full=true) -> dense(5)\n"
        "output y = m -> reshape([-1, 3, 5], full=true)", [F(2, 3, 4)],
        lambda xp, p, x: (x.reshape(6, 4) @ W(p, "dense_0") + W(p, "dense_0", "bias")).reshape(2, 3, 5)),
    row("flatten-then-split-batch", "flatten reshape",
        "input x: [batch, 3, 4]\noutput y = x -> flatten(axis=2) -> reshape([batch, 3, 4], full=true)", [F(2, 3, 4)],
        lambda xp, p, x: x),
    # resizing
    row("resize-linear-size", "resize", 'input x: [batch, 4, 5, 2]\noutput y = x -> resize(size=[7, 3], mode="linear")',
        [F(2, 4, 5, 2)], lambda xp, p, x: resize2d(xp, x, (7, 3), mode="linear")),
    row("resize-linear-scale-align", "resize",
        'input x: [batch, 4, 5, 2]\noutput y = x -> resize(scale=[1.5, 0.6], mode="linear", '
        'coordinate_transformation_mode="align_corners")',
        [F(2, 4, 5, 2)], lambda xp, p, x: resize2d(xp, x, (6, 3), (1.5, 0.6), "linear", "align_corners")),
    row("resize-linear-pytorch-half", "resize",
        'input x: [batch, 3, 4, 2]\noutput y = x -> resize(scale=2.5, mode="linear", '
        'coordinate_transformation_mode="pytorch_half_pixel")',
        [F(2, 3, 4, 2)], lambda xp, p, x: resize2d(xp, x, (7, 10), (2.5, 2.5), "linear", "pytorch_half_pixel")),
    row("resize-nearest-asymmetric-floor", "resize",
        'input x: [batch, 4, 5, 2]\noutput y = x -> resize(size=[6, 8], coordinate_transformation_mode="asymmetric", '
        'nearest_mode="floor")',
        [F(2, 4, 5, 2)], lambda xp, p, x: resize2d(xp, x, (6, 8), None, "nearest", "asymmetric", "floor")),
    row("resize-nearest-default", "resize", "input x: [batch, 5, 5, 2]\noutput y = x -> resize(scale=[0.7, 1.3])",
        [F(2, 5, 5, 2)], lambda xp, p, x: resize2d(xp, x, (3, 6), (0.7, 1.3))),
    row("upsample-bilinear", "upsample", 'input x: [batch, 3, 4, 2]\noutput y = x -> upsample(2, mode="bilinear")',
        [F(2, 3, 4, 2)], lambda xp, p, x: resize2d(xp, x, (6, 8), (2.0, 2.0), "linear")),
]
