"""Convolutions and pooling, channels-last. Pooling takes its spatial rank from its input."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..ir.graph import ParamSpec
from ..ir.types import TensorType, dim_op, shape_str
from . import init as I
from .registry import Attr, OpDef, OpError, register

LAYOUT = {1: "[batch, time, channels]", 2: "[batch, h, w, channels]",
          3: "[batch, d, h, w, channels]"}
DN = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


def tup(v, n: int, what: str) -> tuple:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) != n:
        raise OpError(f"{what} needs {n} values, got {list(v)}")
    return v


def _pads(padding, n, k, s, d, what):
    """Per-axis (lo, hi) padding, or a string XLA understands."""
    if isinstance(padding, str):
        p = padding.lower()
        if p not in ("valid", "same"):
            raise OpError(f'{what}: padding must be "valid", "same" or an integer, got "{padding}"')
        return p.upper()
    return [(q, q) for q in tup(padding, n, f"{what} padding")]


def out_dim(size, k, s, d, pad):
    if pad == "SAME":
        return size if s == 1 else (-(-size // s) if isinstance(size, int) else dim_op(dim_op(size, "+", s - 1), "//", s))
    lo, hi = (0, 0) if pad == "VALID" else pad
    eff = d * (k - 1) + 1
    if isinstance(size, int):
        return (size + lo + hi - eff) // s + 1
    return dim_op(dim_op(dim_op(size, "+", lo + hi - eff), "//", s), "+", 1)


def _check_rank(x: TensorType, n: int, what: str):
    if x.rank != n + 2:
        raise OpError(f"{what} expects {LAYOUT[n]} (rank {n + 2}), found {shape_str(x.shape)} (rank {x.rank})")


class Conv(OpDef):
    """Convolution, channels-last: y[b, o, f] = sum over window offsets k and input channels c of
    x[b, o * stride + k * dilation, c] * kernel[k, c, f] + bias[f]. kernel: [*window, in / groups,
    filters] (Glorot uniform), bias: [filters]. `groups` splits channels and filters into
    independent blocks. padding "valid" (none), "same" (TensorFlow's: output ceil(n / stride),
    the odd element padded at the end) or an int per side."""

    n = 2
    attrs = (Attr("filters", "int"), Attr("kernel", "ints"), Attr("stride", "ints", 1),
             Attr("padding", "any", "valid"), Attr("dilation", "ints", 1), Attr("groups", "int", 1),
             Attr("bias", "bool", True))

    def _geom(self, x, kernel, stride, padding, dilation):
        n = self.n
        k = tup(kernel, n, "kernel")
        s = tup(stride, n, "stride")
        d = tup(dilation, n, "dilation")
        return k, s, d, _pads(padding, n, k, s, d, self.name)

    def infer(self, x, filters, kernel, stride, padding, dilation, groups, bias):
        _check_rank(x, self.n, self.name)
        k, s, d, pad = self._geom(x, kernel, stride, padding, dilation)
        c = x.shape[-1]
        if isinstance(c, int) and c % groups:
            raise OpError(f"{self.name}: {c} input channels do not divide into {groups} groups")
        if filters % groups:
            raise OpError(f"{self.name}: {filters} filters do not divide into {groups} groups")
        spatial = []
        for i in range(self.n):
            p = pad if isinstance(pad, str) else pad[i]
            o = out_dim(x.shape[1 + i], k[i], s[i], d[i], p)
            if isinstance(o, int) and o <= 0:
                raise OpError(f"{self.name}: kernel {k[i]} does not fit input size {x.shape[1 + i]} "
                              f"on spatial axis {i}", help='use padding="same" or a smaller kernel')
            spatial.append(o)
        return TensorType((x.shape[0], *spatial, filters), x.dtype)

    def params(self, x, filters, kernel, stride, padding, dilation, groups, bias):
        k = tup(kernel, self.n, "kernel")
        cin = x.shape[-1] // groups if isinstance(x.shape[-1], int) else x.shape[-1]
        p = {"kernel": ParamSpec((*k, cin, filters), I.glorot, init_name="glorot")}
        if bias:
            p["bias"] = ParamSpec((filters,), I.zeros, init_name="zeros")
        return p

    def apply(self, ctx, x, filters, kernel, stride, padding, dilation, groups, bias):
        k, s, d, pad = self._geom(x, kernel, stride, padding, dilation)
        y = jax.lax.conv_general_dilated(x, ctx.params["kernel"], s, pad, rhs_dilation=d,
                                         dimension_numbers=DN[self.n], feature_group_count=groups)
        return y + ctx.params["bias"] if bias else y

    def flops(self, out, x, filters, kernel, groups, **kw):
        n = out.size()
        k = math.prod(tup(kernel, self.n, "kernel"))
        c = x.shape[-1]
        return 2 * n * k * (c // groups) if n and isinstance(c, int) else 0


@register
class Conv1D(Conv):
    __doc__ = "1-D " + Conv.__doc__[0].lower() + Conv.__doc__[1:] + " Input [batch, time, channels]."
    name, n = "conv1d", 1


@register
class Conv2D(Conv):
    __doc__ = "2-D " + Conv.__doc__[0].lower() + Conv.__doc__[1:] + " Input [batch, h, w, channels]."
    name, n = "conv2d", 2


@register
class Conv3D(Conv):
    __doc__ = "3-D " + Conv.__doc__[0].lower() + Conv.__doc__[1:] + " Input [batch, d, h, w, channels]."
    name, n = "conv3d", 3


class ConvTranspose(OpDef):
    """Transposed (fractionally strided) convolution, the gradient of a strided conv with respect to
    its input, as Keras and PyTorch define it: each input pixel scatter-adds the kernel times its
    value, out[i * stride + k] += x[i] @ kernel[k], kernel: [*window, in_channels, filters].
    The full result has (n - 1) * stride + kernel positions per axis; `padding` then picks:
    "valid" keeps them all ((n - 1) * stride + max(kernel, stride), Keras), "same" keeps n * stride
    starting at max(kernel - stride, 0) // 2 (Keras/TF), an int p crops p from each side (PyTorch).
    """

    n = 2
    attrs = (Attr("filters", "int"), Attr("kernel", "ints"), Attr("stride", "ints", 1),
             Attr("padding", "any", "same"), Attr("bias", "bool", True))

    def _crop(self, padding, k, s):
        """Per axis (start, length change relative to (n - 1) * s + k) of the kept window."""
        if isinstance(padding, str):
            p = padding.lower()
            if p == "valid":
                return [(0, max(si - ki, 0)) for ki, si in zip(k, s)]
            if p == "same":
                return [((max(ki - si, 0)) // 2, si - ki) for ki, si in zip(k, s)]
            raise OpError(f'{self.name}: padding must be "same", "valid" or an integer, got "{padding}"')
        pads = tup(padding, self.n, f"{self.name} padding")
        for ki, q in zip(k, pads):
            if not 0 <= q <= ki - 1:
                raise OpError(f"{self.name}: padding {q} must be between 0 and kernel - 1 = {ki - 1}")
        return [(q, -2 * q) for q in pads]

    def infer(self, x, filters, kernel, stride, padding, bias):
        _check_rank(x, self.n, self.name)
        k = tup(kernel, self.n, "kernel")
        s = tup(stride, self.n, "stride")
        spatial = []
        for i, (_, extra) in enumerate(self._crop(padding, k, s)):
            full = dim_op(dim_op(dim_op(x.shape[1 + i], "-", 1), "*", s[i]), "+", k[i] + extra)
            if isinstance(full, int) and full <= 0:
                raise OpError(f"{self.name}: output size {full} on spatial axis {i} is not positive")
            spatial.append(full)
        return TensorType((x.shape[0], *spatial, filters), x.dtype)

    def params(self, x, filters, kernel, stride, padding, bias):
        k = tup(kernel, self.n, "kernel")
        p = {"kernel": ParamSpec((*k, x.shape[-1], filters), I.glorot, init_name="glorot")}
        if bias:
            p["bias"] = ParamSpec((filters,), I.zeros, init_name="zeros")
        return p

    def apply(self, ctx, x, filters, kernel, stride, padding, bias):
        # A correlation of the stride-dilated input with the spatially flipped kernel is the
        # scatter-add above; padding (k - 1 - start) on the low side realizes the crop.
        k = tup(kernel, self.n, "kernel")
        s = tup(stride, self.n, "stride")
        pads = [(ki - 1 - start, ki - 1 + extra + start)
                for ki, (start, extra) in zip(k, self._crop(padding, k, s))]
        w = jnp.flip(ctx.params["kernel"], axis=tuple(range(self.n)))
        y = jax.lax.conv_general_dilated(x, w, (1,) * self.n, pads, lhs_dilation=s,
                                         dimension_numbers=DN[self.n])
        return y + ctx.params["bias"] if bias else y

    def flops(self, out, x, filters, kernel, **kw):
        n = x.size()
        k = math.prod(tup(kernel, self.n, "kernel"))
        return 2 * n * k * filters if n else 0


@register
class ConvTranspose1D(ConvTranspose):
    __doc__ = "1-D, on [batch, time, channels]. " + ConvTranspose.__doc__
    name, n = "conv_transpose1d", 1


@register
class ConvTranspose2D(ConvTranspose):
    __doc__ = "2-D, on [batch, h, w, channels]. " + ConvTranspose.__doc__
    name, n = "conv_transpose2d", 2


@register
class ConvTranspose3D(ConvTranspose):
    __doc__ = "3-D, on [batch, d, h, w, channels]. " + ConvTranspose.__doc__
    name, n = "conv_transpose3d", 3


class Pool(OpDef):
    """Sliding-window reduction over the spatial axes ([batch, time, c], [batch, h, w, c] or
    [batch, d, h, w, c]); stride defaults to the window, padding as for convolutions."""

    attrs = (Attr("window", "ints", 2), Attr("stride", "ints", None), Attr("padding", "any", "valid"))

    def _geom(self, rank, window, stride, padding):
        n = rank - 2
        if n not in (1, 2, 3):
            raise OpError(f"{self.name} expects [batch, time, c], [batch, h, w, c] or "
                          f"[batch, d, h, w, c]; found rank {rank}")
        w = tup(window, n, "window")
        s = tup(stride if stride is not None else window, n, "stride")
        return n, w, s, _pads(padding, n, w, s, (1,) * n, self.name)

    def infer(self, x, window, stride, padding):
        n, w, s, pad = self._geom(x.rank, window, stride, padding)
        spatial = []
        for i in range(n):
            p = pad if isinstance(pad, str) else pad[i]
            o = out_dim(x.shape[1 + i], w[i], s[i], 1, p)
            if isinstance(o, int) and o <= 0:
                raise OpError(f"{self.name}: window {w[i]} does not fit input size {x.shape[1 + i]}")
            spatial.append(o)
        return x.with_shape((x.shape[0], *spatial, x.shape[-1]))

    def _window(self, x, window, stride, padding):
        n, w, s, pad = self._geom(x.ndim, window, stride, padding)
        dims, strides = (1, *w, 1), (1, *s, 1)
        if not isinstance(pad, str):
            pad = [(0, 0), *pad, (0, 0)]
        return dims, strides, pad


@register
class MaxPool(Pool):
    """The maximum of each window (padding never wins: it counts as -inf)."""

    name = "max_pool"

    def apply(self, ctx, x, window, stride, padding):
        dims, strides, pad = self._window(x, window, stride, padding)
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, strides, pad)


@register
class AvgPool(Pool):
    """Average over each window; with padding, only real elements are counted (Keras)."""

    name = "avg_pool"

    def apply(self, ctx, x, window, stride, padding):
        dims, strides, pad = self._window(x, window, stride, padding)
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, pad)
        if pad == "VALID" or (not isinstance(pad, str) and all(p == (0, 0) for p in pad)):
            return total / math.prod(dims)  # every window is full
        # Windows at the border hold fewer real elements: count them on one [1, *spatial, 1] map
        # (counting on the whole batch makes XLA constant-fold a batch-sized array).
        ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)
        count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, dims, strides, pad)
        return total / count


class GlobalPool(OpDef):
    """Reduces every spatial axis: [batch, ..., channels] -> [batch, channels]."""

    def infer(self, x):
        if x.rank < 3:
            raise OpError(f"{self.name} expects [batch, ..., channels] with spatial axes, "
                          f"found {shape_str(x.shape)}")
        return x.with_shape((x.shape[0], x.shape[-1]))

    def apply(self, ctx, x):
        return type(self).fn(x, axis=tuple(range(1, x.ndim - 1)))


@register
class GlobalAvgPool(GlobalPool):
    """The mean over all spatial positions: [batch, ..., channels] -> [batch, channels]."""

    name, fn = "global_avg_pool", staticmethod(jnp.mean)


@register
class GlobalMaxPool(GlobalPool):
    """The maximum over all spatial positions: [batch, ..., channels] -> [batch, channels]."""

    name, fn = "global_max_pool", staticmethod(jnp.max)


@register
class Upsample(OpDef):
    """Nearest-neighbour upsampling of every spatial axis by `factor`."""

    name = "upsample"
    attrs = (Attr("factor", "ints", 2),)

    def infer(self, x, factor):
        n = x.rank - 2
        if n < 1:
            raise OpError(f"upsample expects spatial axes, found {shape_str(x.shape)}")
        f = tup(factor, n, "factor")
        return x.with_shape((x.shape[0], *(dim_op(d, "*", k) for d, k in zip(x.shape[1:-1], f)), x.shape[-1]))

    def apply(self, ctx, x, factor):
        f = tup(factor, x.ndim - 2, "factor")
        for i, k in enumerate(f):
            x = jnp.repeat(x, k, axis=1 + i)
        return x
