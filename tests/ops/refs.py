"""Reference implementations, written independently of nndsl and of jax.lax.

Every function takes the array module first (`xp` is numpy for forward checks, jax.numpy for
gradient checks) and uses only what both share, so the same few lines serve as the plain-numpy
forward reference and the hand-written jax.numpy gradient reference. Layouts are channels-last;
kernels are [*window, in_channels / groups, filters], as nndsl documents.
"""
from __future__ import annotations

import itertools
import math

import jax
import numpy as np


def tup(v, n: int) -> tuple:
    return (v,) * n if isinstance(v, int) else tuple(v)


def stop_gradient(xp, v):
    return v if xp is np else jax.lax.stop_gradient(v)


def add_at(xp, out, idx, value):
    """out[idx] += value, functionally for jax.numpy."""
    if xp is np:
        out = out.copy()
        out[idx] += value
        return out
    return out.at[idx].add(value)


# ---------------------------------------------------------------- activations
def sigmoid(xp, x):
    return 1 / (1 + xp.exp(-x))


def gelu_tanh(xp, x):
    return 0.5 * x * (1 + xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(xp, x, axis=-1):
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def log_softmax(xp, x, axis=-1):
    m = xp.max(x, axis=axis, keepdims=True)
    return x - m - xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


# ---------------------------------------------------------------- convolution and pooling
def same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME: output ceil(size / s), the odd padding element on the high side."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(x, window, stride, dilation, padding):
    n = x.ndim - 2
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":
        return [same_pads(x.shape[1 + i], window[i], stride[i], dilation[i]) for i in range(n)]
    return [(p, p) for p in tup(padding, n)]


def _windows(xpad, window, stride, dilation):
    """Yields, for each window offset, the strided slice of `xpad` that offset sees."""
    n = xpad.ndim - 2
    out = [(xpad.shape[1 + i] - dilation[i] * (window[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
    for off in itertools.product(*(range(k) for k in window)):
        idx = tuple(slice(o * dilation[i], o * dilation[i] + (out[i] - 1) * stride[i] + 1, stride[i])
                    for i, o in enumerate(off))
        yield off, xpad[(slice(None), *idx, slice(None))]


def conv(xp, x, w, b=None, stride=1, padding="valid", dilation=1, groups=1):
    """y[b, o, f] = sum over window offsets k and channels c of x[b, o*s + k*d, c] * w[k, c, f],
    with input channels and filters split into `groups` independent blocks."""
    n = x.ndim - 2
    window, s, d = w.shape[:n], tup(stride, n), tup(dilation, n)
    pads = _pads(x, window, s, d, padding)
    xpad = xp.pad(x, [(0, 0), *pads, (0, 0)])
    cin, filters = w.shape[n], w.shape[-1]
    y = 0
    for off, patch in _windows(xpad, window, s, d):
        patch = patch.reshape(*patch.shape[:-1], groups, cin)
        wk = w[off].reshape(cin, groups, filters // groups)
        y = y + xp.einsum("...gc,cgf->...gf", patch, wk).reshape(*patch.shape[:-2], filters)
    return y if b is None else y + b


def conv_transpose(xp, x, w, b=None, stride=1, padding="same"):
    """Scatter-add of the kernel per input pixel: out[i*s + k] += x[i] @ w[k] over the full
    (n - 1) * s + k positions, then "valid" keeps (n - 1) * s + max(k, s), "same" keeps n * s from
    max(k - s, 0) // 2 (Keras), an int p drops p positions at each end (PyTorch)."""
    n = x.ndim - 2
    window, s = w.shape[:n], tup(stride, n)
    sizes = x.shape[1:-1]
    room = [(sizes[i] - 1) * s[i] + window[i] + s[i] for i in range(n)]
    out = xp.zeros((x.shape[0], *room, w.shape[-1]), x.dtype)
    for pix in itertools.product(*(range(m) for m in sizes)):
        value = xp.einsum("bc,...cf->b...f", x[(slice(None), *pix)], w)
        idx = tuple(slice(p * s[i], p * s[i] + window[i]) for i, p in enumerate(pix))
        out = add_at(xp, out, (slice(None), *idx, slice(None)), value)
    keep = []
    for i in range(n):
        k, st, m = window[i], s[i], sizes[i]
        if padding == "valid":
            keep.append(slice(0, (m - 1) * st + max(k, st)))
        elif padding == "same":
            lo = max(k - st, 0) // 2
            keep.append(slice(lo, lo + m * st))
        else:
            p = tup(padding, n)[i]
            keep.append(slice(p, (m - 1) * st + k - p))
    out = out[(slice(None), *keep, slice(None))]
    return out if b is None else out + b


def pool(xp, x, window, stride=None, padding="valid", kind="max"):
    """Max, or average over the real (unpadded) elements of each window."""
    n = x.ndim - 2
    w = tup(window, n)
    s = tup(stride if stride is not None else window, n)
    pads = [(0, 0), *_pads(x, w, s, (1,) * n, padding), (0, 0)]
    fill = -np.inf if kind == "max" else 0.0
    xpad = xp.pad(x, pads, constant_values=fill)
    ones = xp.pad(xp.ones_like(x), pads)
    acc, count = None, 0
    for (_, patch), (_, real) in zip(_windows(xpad, w, s, (1,) * n), _windows(ones, w, s, (1,) * n)):
        if acc is None:
            acc = patch
        else:
            acc = xp.maximum(acc, patch) if kind == "max" else acc + patch
        count = count + real
    return acc if kind == "max" else acc / count


def upsample(xp, x, factor):
    for i, f in enumerate(tup(factor, x.ndim - 2)):
        x = xp.repeat(x, f, axis=1 + i)
    return x


# ---------------------------------------------------------------- normalization
def normalize(xp, x, mean, var, scale, bias, eps=1e-5):
    return (x - mean) / xp.sqrt(var + eps) * scale + bias


def layernorm(xp, x, scale, bias, eps=1e-5):
    mean = xp.mean(x, axis=-1, keepdims=True)
    var = xp.mean((x - mean) ** 2, axis=-1, keepdims=True)
    return normalize(xp, x, mean, var, scale, bias, eps)


# ---------------------------------------------------------------- losses
def onehot(xp, labels, classes):
    return (labels[..., None] == xp.arange(classes)).astype(np.float32)


def cross_entropy(xp, logits, labels):
    if labels.ndim == logits.ndim - 1:
        labels = onehot(xp, labels, logits.shape[-1])
    return -xp.mean(xp.sum(labels * log_softmax(xp, logits), axis=-1))


def bce(xp, p, t):
    return xp.mean(-(t * xp.log(p) + (1 - t) * xp.log(1 - p)))


def bce_logits(xp, z, t):
    p = sigmoid(xp, z)
    return xp.mean(-(t * xp.log(p) + (1 - t) * xp.log(1 - p)))


def hinge(xp, y, t, margin=1.0):
    if not np.issubdtype(t.dtype, np.floating):
        t = 2.0 * t - 1.0  # 0/1 labels -> -1/+1
    return xp.mean(xp.maximum(0.0, margin - t * y))


def perceptron(xp, s, t):
    step = stop_gradient(xp, (s > 0).astype(s.dtype))
    return xp.mean((step - t) * s)


# ---------------------------------------------------------------- GAN layers and losses
def instance_norm(xp, x, scale, bias, eps=1e-5):
    """Per example and channel over the spatial axes 1..-2."""
    axes = tuple(range(1, x.ndim - 1))
    mean = xp.mean(x, axis=axes, keepdims=True)
    var = xp.mean((x - mean) ** 2, axis=axes, keepdims=True)
    return normalize(xp, x, mean, var, scale, bias, eps)


def sn_kernel(xp, w, u, eps=1e-12):
    """w / |M u^|, M = w as [fan_in, out], u^ = u / |u|: the spectral norm estimate from a stored u."""
    m = w.reshape(-1, w.shape[-1])
    u = u / (xp.sqrt(xp.sum(u * u)) + eps)
    mu = m @ u
    return w / (xp.sqrt(xp.sum(mu * mu)) + eps)


def power_iteration(w, u, steps, eps=1e-12):
    """numpy: u after `steps` of u <- normalize(M^T normalize(M u)), from u normalized."""
    m = w.reshape(-1, w.shape[-1])
    u = u / (np.linalg.norm(u) + eps)
    for _ in range(steps):
        v = m @ u
        v = v / (np.linalg.norm(v) + eps)
        u = m.T @ v
        u = u / (np.linalg.norm(u) + eps)
    return u


def self_attention(xp, x, p):
    """x + gamma * softmax_j(q_i . k_j) v_j over the h*w positions of each example."""
    b, h, w, c = x.shape
    f = x.reshape(b, h * w, c)
    q = f @ p["query_kernel"] + p["query_bias"]
    k = f @ p["key_kernel"] + p["key_bias"]
    v = f @ p["value_kernel"] + p["value_bias"]
    scores = xp.einsum("bid,bjd->bij", q, k)
    out = xp.einsum("bij,bjc->bic", softmax(xp, scores, -1), v)
    return x + p["gamma"] * out.reshape(b, h, w, c)


def adain(xp, x, style, p, eps=1e-5):
    scale = style @ p["scale_kernel"] + p["scale_bias"]
    shift = style @ p["shift_kernel"] + p["shift_bias"]
    mid = (1,) * (x.ndim - 2)
    ones, zeros = xp.ones(x.shape[-1]), xp.zeros(x.shape[-1])
    return (instance_norm(xp, x, ones, zeros, eps) * scale.reshape(x.shape[0], *mid, -1)
            + shift.reshape(x.shape[0], *mid, -1))


def conditional_batchnorm(xp, x, labels, p, mean, var, eps=1e-5):
    mid = (1,) * (x.ndim - 2)
    scale = p["scale"][labels].reshape(x.shape[0], *mid, -1)
    bias = p["bias"][labels].reshape(x.shape[0], *mid, -1)
    return normalize(xp, x, mean, var, scale, bias, eps)


def softplus(xp, z):
    return xp.log(1 + xp.exp(z))
