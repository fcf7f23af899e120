"""Convolutions and pooling, channels-last. Pooling takes its spatial rank from its input."""
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp

from ..ir.graph import ParamSpec
from ..ir.types import TensorType, dim_op, shape_str
from . import init as I
from .registry import REQUIRED, Attr, OpDef, OpError, register

LAYOUT = {1: "[batch, time, channels]", 2: "[batch, h, w, channels]",
          3: "[batch, d, h, w, channels]"}
DN = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


def tup(v, n: int, what: str) -> tuple:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) != n:
        raise OpError(f"{what} needs {n} values (one per spatial axis), got {list(v)}")
    return v


SAME = {"same": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}


def _pads(padding, n, k, s, d, what):
    """Per-axis (before, after) padding, or "VALID", "SAME_UPPER", "SAME_LOWER" (ONNX's auto_pad
    words: the explicit amounts of "same" depend on the input size, resolved by `resolve`).
    The argument's form was validated already (registry.Attr.check); only its length is left."""
    if isinstance(padding, str):
        return SAME[padding.lower()]
    if isinstance(padding, int):
        return [(padding, padding)] * n
    if len(padding) != n:
        raise OpError(f"{what}: padding needs {n} entries (one per spatial axis), got {len(padding)}",
                      help="give one integer per axis, or one [before, after] pair per axis")
    return [tuple(p) if isinstance(p, tuple) else (p, p) for p in padding]


def same_pads(size: int, k: int, s: int, d: int, lower: bool = False) -> tuple:
    """ONNX SAME_UPPER/SAME_LOWER: output ceil(size / s); the odd element of padding goes after
    (upper, TensorFlow's "same") or before (lower)."""
    eff = d * (k - 1) + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def resolve(pad, sizes, k, s, d) -> list:
    """Explicit (before, after) per axis for concrete `sizes`."""
    if isinstance(pad, str):
        if pad == "VALID":
            return [(0, 0)] * len(k)
        return [same_pads(sizes[i], k[i], s[i], d[i], pad == "SAME_LOWER") for i in range(len(k))]
    return list(pad)


def out_dim(size, k, s, d, pad, ceil: bool = False):
    """Output length of a window sliding over `size`; `pad` a (before, after) pair or a word.
    `ceil` (pooling's ceil_mode) counts a last partial window, unless it would start in the
    padding after the input (PyTorch's rule, which ONNX's reference follows)."""
    if isinstance(pad, str) and pad.startswith("SAME"):
        if s == 1:
            return size
        return -(-size // s) if isinstance(size, int) else dim_op(dim_op(size, "+", s - 1), "//", s)
    lo, hi = (0, 0) if pad == "VALID" else pad
    eff = d * (k - 1) + 1
    if isinstance(size, int):
        num = size + lo + hi - eff
        if not ceil or num < 0:
            return num // s + 1
        out = -(-num // s) + 1
        return out - 1 if (out - 1) * s >= size + lo else out
    if ceil:
        raise OpError("ceil_mode needs static spatial sizes", help="declare the spatial axes with numbers")
    return dim_op(dim_op(dim_op(size, "+", lo + hi - eff), "//", s), "+", 1)


def _check_rank(x: TensorType, n: int, what: str):
    if x.rank != n + 2:
        raise OpError(f"{what} expects {LAYOUT[n]} (rank {n + 2}), found {shape_str(x.shape)} (rank {x.rank})")


PADDING_DOC = ('padding "valid" (none), "same" (output ceil(n / stride), the odd element of '
               'padding after: ONNX SAME_UPPER, TensorFlow), "same_lower" (the odd element before: '
               'ONNX SAME_LOWER), an int p (p before and after every axis, PyTorch), one int per '
               'axis, or one [before, after] pair per axis (ONNX pads, asymmetric)')


def size_attrs(*names_defaults) -> tuple:
    """Window, stride and dilation-like arguments: a positive int or one per axis."""
    return tuple(Attr(n, "ints", d, lo=1) for n, d in names_defaults)


class Conv(OpDef):
    __doc__ = ("""Convolution, channels-last: y[b, o, f] = sum over window offsets k and input channels c of
    x[b, o * stride + k * dilation - before, c] * kernel[k, c, f] + bias[f]. kernel: [*window,
    in / groups, filters] (Glorot uniform), bias: [filters]. `groups` splits channels and filters
    into independent blocks. """ + PADDING_DOC + ".")

    n = 2
    attrs = (Attr("filters", "int", lo=1), *size_attrs(("kernel", REQUIRED), ("stride", 1)),
             Attr("padding", "padding", "valid"), *size_attrs(("dilation", 1)),
             Attr("groups", "int", 1, lo=1), Attr("bias", "bool", True))

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
                eff = d[i] * (k[i] - 1) + 1
                raise OpError(f"{self.name}: kernel {k[i]}" + (f" (dilated to {eff})" if eff != k[i] else "")
                              + f" does not fit input size {x.shape[1 + i]}"
                              + (f" padded by {p[0]} + {p[1]}" if isinstance(p, tuple) and any(p) else "")
                              + f" on spatial axis {i}", help='use padding="same" or a smaller kernel')
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
        pad = resolve(pad, x.shape[1:-1], k, s, d)
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
    its input, as ONNX ConvTranspose and PyTorch define it: each input pixel scatter-adds the
    kernel times its value, out[i * stride + k * dilation] += x[i] @ kernel[k], kernel: [*window,
    in_channels / groups, filters] (`groups` independent blocks of channels and filters).
    The full result has (n - 1) * stride + dilation * (kernel - 1) + 1 + output_padding positions
    per axis (output_padding adds zeros at the end, PyTorch/ONNX `output_padding`); `padding` then
    crops: an int p crops p from each side (PyTorch `padding=p`), [before, after] pairs crop
    asymmetrically (ONNX pads), "same" keeps n * stride positions (ONNX SAME_UPPER: the odd crop
    at the end), "same_lower" likewise with the odd crop at the start, and "valid" keeps them all,
    extended to at least n * stride ((n - 1) * stride + max(kernel, stride), Keras).
    `output_size` asks for a size: ONNX's output_shape with a padding word, PyTorch's output_size
    with numeric padding.
    """

    n = 2
    attrs = (Attr("filters", "int", lo=1), *size_attrs(("kernel", REQUIRED), ("stride", 1)),
             Attr("padding", "padding", "same"), Attr("bias", "bool", True),
             Attr("output_padding", "ints", 0, lo=0), *size_attrs(("dilation", 1)),
             Attr("groups", "int", 1, lo=1), Attr("output_size", "ints", None, lo=1))

    def _crops(self, padding, k, s, d, op) -> list:
        """Per axis (cropped at the start, cropped at the end) of the full result; negative
        amounts extend it with zeros."""
        out = []
        for i, pad in enumerate([padding] * self.n if isinstance(padding, str) else
                                _pads(padding, self.n, k, s, d, self.name)):
            eff = d[i] * (k[i] - 1) + 1
            if isinstance(pad, str):
                p = pad.lower()
                if p == "valid":
                    out.append((0, -max(s[i] - eff - op[i], 0)))
                    continue
                total = eff + op[i] - s[i]
                if total < 0:
                    out.append((0, total))
                else:
                    small, big = total // 2, total - total // 2
                    out.append((big, small) if p == "same_lower" else (small, big))
            else:
                out.append(tuple(pad))
        return out

    def _crop(self, padding, k, s):
        """Per axis (start, length change relative to (n - 1) * s + k) of the kept window, for
        the undilated transposed convolution without output_padding."""
        return [(lo, -lo - hi) for lo, hi in self._crops(padding, k, s, (1,) * self.n, (0,) * self.n)]

    def _geom(self, kernel, stride, padding, output_padding, dilation, output_size=None, sizes=None):
        k, s = tup(kernel, self.n, "kernel"), tup(stride, self.n, "stride")
        d, op = tup(dilation, self.n, "dilation"), tup(output_padding, self.n, "output_padding")
        if output_size is None:
            return k, s, d, op, self._crops(padding, k, s, d, op)
        return k, s, d, op, self._sized(padding, k, s, d, op, tup(output_size, self.n, "output_size"), sizes)

    def _sized(self, padding, k, s, d, op, out, sizes):
        """Crops that give `output_size`: with "same"/"same_lower"/"valid" the crop is split as ONNX
        ConvTranspose's output_shape does (SAME_UPPER: the odd element at the end; otherwise at
        the start); with numeric padding the difference is output padding at the end, as
        PyTorch's output_size (which must then lie in [0, max(stride, dilation)))."""
        if not all(isinstance(n, int) for n in sizes):
            raise OpError(f"{self.name}: output_size needs static spatial sizes")
        crops = []
        base = None if isinstance(padding, str) else self._crops(padding, k, s, d, (0,) * self.n)
        for i in range(self.n):
            full = (sizes[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 + op[i]
            if base is None:
                total = full - out[i]
                small, big = total // 2, total - total // 2
                crops.append((small, big) if padding == "same" else (big, small))
            else:
                lo, hi = base[i]
                extra = out[i] - (full - op[i] - lo - hi)
                if not 0 <= extra < max(s[i], d[i]):
                    raise OpError(f"{self.name}: output_size {out[i]} on spatial axis {i} is not reachable "
                                  f"with this padding (PyTorch allows {full - op[i] - lo - hi} to "
                                  f"{full - op[i] - lo - hi + max(s[i], d[i]) - 1})")
                crops.append((lo, hi + op[i] - extra))
        return crops

    def infer(self, x, filters, kernel, stride, padding, bias, output_padding=0, dilation=1, groups=1,
              output_size=None):
        _check_rank(x, self.n, self.name)
        k, s, d, op, crops = self._geom(kernel, stride, padding, output_padding, dilation, output_size,
                                        x.shape[1:-1])
        c = x.shape[-1]
        if isinstance(c, int) and c % groups:
            raise OpError(f"{self.name}: {c} input channels do not divide into {groups} groups")
        if filters % groups:
            raise OpError(f"{self.name}: {filters} filters do not divide into {groups} groups")
        spatial = []
        for i, (lo, hi) in enumerate(crops):
            eff = d[i] * (k[i] - 1) + 1
            full = dim_op(dim_op(dim_op(x.shape[1 + i], "-", 1), "*", s[i]), "+", eff + op[i] - lo - hi)
            if isinstance(full, int) and full <= 0:
                raise OpError(f"{self.name}: padding {lo} + {hi} leaves no output on spatial axis {i}",
                              help="crop less than the full result")
            spatial.append(full)
        return TensorType((x.shape[0], *spatial, filters), x.dtype)

    def params(self, x, filters, kernel, stride, padding, bias, output_padding=0, dilation=1, groups=1,
               output_size=None):
        k = tup(kernel, self.n, "kernel")
        cin = x.shape[-1] // groups if isinstance(x.shape[-1], int) else x.shape[-1]
        p = {"kernel": ParamSpec((*k, cin, filters), I.glorot, init_name="glorot")}
        if bias:
            p["bias"] = ParamSpec((filters,), I.zeros, init_name="zeros")
        return p

    def apply(self, ctx, x, filters, kernel, stride, padding, bias, output_padding=0, dilation=1, groups=1,
              output_size=None):
        # A correlation of the stride-dilated input with the spatially flipped (dilated) kernel is
        # the scatter-add above; padding (eff - 1 - crop) on each side realizes the crops.
        k, s, d, op, crops = self._geom(kernel, stride, padding, output_padding, dilation, output_size,
                                        x.shape[1:-1])
        pads = [(d[i] * (k[i] - 1) - lo, d[i] * (k[i] - 1) + op[i] - hi) for i, (lo, hi) in enumerate(crops)]
        w = jnp.flip(ctx.params["kernel"], axis=tuple(range(self.n)))
        y = jax.lax.conv_general_dilated(x, w, (1,) * self.n, pads, lhs_dilation=s, rhs_dilation=d,
                                         dimension_numbers=DN[self.n], feature_group_count=groups)
        return y + ctx.params["bias"] if bias else y

    def flops(self, out, x, filters, kernel, groups=1, **kw):
        n = x.size()
        k = math.prod(tup(kernel, self.n, "kernel"))
        return 2 * n * k * filters // groups if n else 0


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


POOL_ATTRS = (*size_attrs(("window", 2)), Attr("stride", "ints", None, lo=1),
              Attr("padding", "padding", "valid"), *size_attrs(("dilation", 1)),
              Attr("ceil_mode", "bool", False))


class Pool(OpDef):
    __doc__ = ("""Sliding-window reduction over the spatial axes ([batch, time, c], [batch, h, w, c] or
    [batch, d, h, w, c]). `stride` defaults to the window (as PyTorch's; ONNX's default is 1: write
    `stride=1` for it); `dilation` spaces the window's taps; `ceil_mode=true` keeps a last partial
    window (PyTorch/ONNX ceil_mode) unless it would start in the padding after the input;
    """ + PADDING_DOC + ".")

    attrs = POOL_ATTRS

    def _geom(self, rank, window, stride, padding, dilation=1):
        n = rank - 2
        if n not in (1, 2, 3):
            raise OpError(f"{self.name} expects [batch, time, c], [batch, h, w, c] or "
                          f"[batch, d, h, w, c]; found rank {rank}")
        w = tup(window, n, "window")
        s = tup(stride if stride is not None else window, n, "stride")
        d = tup(dilation, n, "dilation")
        return n, w, s, d, _pads(padding, n, w, s, d, self.name)

    def _spatial(self, shape, window, stride, padding, dilation, ceil_mode):
        n, w, s, d, pad = self._geom(len(shape), window, stride, padding, dilation)
        spatial = []
        for i in range(n):
            p = pad if isinstance(pad, str) else pad[i]
            o = out_dim(shape[1 + i], w[i], s[i], d[i], p, ceil_mode)
            if isinstance(o, int) and o <= 0:
                raise OpError(f"{self.name}: window {w[i]} does not fit input size {shape[1 + i]}")
            if isinstance(o, int) and isinstance(shape[1 + i], int) and isinstance(p, tuple):
                _no_window_all_padding(self.name, i, shape[1 + i], o, w[i], s[i], d[i], p[0])
            spatial.append(o)
        return spatial

    def infer(self, x, window, stride, padding, dilation, ceil_mode, **kw):
        spatial = self._spatial(x.shape, window, stride, padding, dilation, ceil_mode)
        return x.with_shape((x.shape[0], *spatial, x.shape[-1]))

    def _window(self, x, window, stride, padding, dilation, ceil_mode):
        """(window dims, strides, dilations, explicit pads, extra pads at the end for ceil_mode),
        each over all axes of x."""
        _, w, s, d, pad = self._geom(x.ndim, window, stride, padding, dilation)
        pad = resolve(pad, x.shape[1:-1], w, s, d)
        outs = self._spatial(x.shape, window, stride, padding, dilation, ceil_mode)
        extra = [max((outs[i] - 1) * s[i] + d[i] * (w[i] - 1) + 1 - (x.shape[1 + i] + lo + hi), 0)
                 for i, (lo, hi) in enumerate(pad)]
        edge = [(0, 0)]
        return ((1, *w, 1), (1, *s, 1), (1, *d, 1), edge + pad + edge,
                edge + [(0, e) for e in extra] + edge)


def _no_window_all_padding(what, axis, size, out, k, s, d, before):
    """A window of padding only has no maximum and no average (PyTorch refuses padding over half
    the window, ONNX leaves it undefined): refused where it would happen."""
    # with taps closer than the input is long, the first and last windows are the worst ones
    starts = (0, out - 1) if size >= d or out > 4096 else range(out)
    for o in starts:
        t = o * s - before
        if not any(0 <= t + j * d < size for j in range(k)):
            raise OpError(f"{what}: with this padding, window {o} on spatial axis {axis} sees only padding",
                          help="pad less than the window (at most half of it, as PyTorch requires)")


def _add(a, b):
    return [(p[0] + q[0], p[1] + q[1]) for p, q in zip(a, b)]


@register
class MaxPool(Pool):
    __doc__ = ("""The maximum of each window (padding never wins: it counts as -inf). `indices=true` also
    gives, as a second value, where each maximum came from: the flat index h * W + w into its
    example's and channel's input plane (PyTorch's return_indices; ONNX's Indices also count the
    batch and channel axes of its NCHW layout), int32, the first maximum on ties. """ + Pool.__doc__)

    name = "max_pool"
    attrs = POOL_ATTRS + (Attr("indices", "bool", False),)

    def infer(self, x, window, stride, padding, dilation, ceil_mode, indices):
        y = super().infer(x, window, stride, padding, dilation, ceil_mode)
        return (y, TensorType(y.shape, "int32")) if indices else y

    def apply(self, ctx, x, window, stride, padding, dilation, ceil_mode, indices):
        dims, strides, dil, pad, extra = self._window(x, window, stride, padding, dilation, ceil_mode)
        if not indices and set(dil) == {1}:
            return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, strides, _add(pad, extra),
                                         window_dilation=dil)
        # with indices, or dilated (reduce_window's max has no gradient with window_dilation)
        v, i = _argmax_pool(x, dims[1:-1], strides[1:-1], dil[1:-1], _add(pad, extra)[1:-1], pad[1:-1])
        return (v, i) if indices else v


def _argmax_pool(x, w, s, d, pads, explicit):
    """Max pooling with the flat spatial index of each maximum, from the window's taps gathered
    as strided slices (a variadic reduce_window would have no gradient)."""
    n = len(w)
    sizes = x.shape[1:-1]
    xp = jnp.pad(x, [(0, 0), *pads, (0, 0)], constant_values=-jnp.inf)
    outs = [(xp.shape[1 + i] - (d[i] * (w[i] - 1) + 1)) // s[i] + 1 for i in range(n)]
    taps, where = [], []
    plane = [math.prod(sizes[i + 1:]) for i in range(n)]
    for offset in itertools.product(*(range(k) for k in w)):
        idx = tuple(slice(o * d[i], o * d[i] + (outs[i] - 1) * s[i] + 1, s[i]) for i, o in enumerate(offset))
        taps.append(xp[(slice(None), *idx, slice(None))])
        flat = 0
        for i in range(n):
            pos = jnp.arange(outs[i]) * s[i] + offset[i] * d[i] - explicit[i][0]
            flat = flat + (pos * plane[i]).reshape((-1,) + (1,) * (n - 1 - i))
        where.append(flat)
    v = jnp.stack(taps, -2)  # [batch, *out, taps, channels]
    best = jnp.argmax(v, axis=-2)
    where = jnp.stack([jnp.broadcast_to(f, outs) for f in where], -1)  # [*out, taps]
    index = jnp.take_along_axis(jnp.broadcast_to(where[None, ..., None], v.shape), best[..., None, :], -2)[..., 0, :]
    return jnp.max(v, axis=-2), index.astype(jnp.int32)


@register
class AvgPool(Pool):
    __doc__ = ("""Average over each window. With padding, only real elements are counted by default (Keras;
    ONNX's count_include_pad=0); `count_include_pad=true` divides by the whole window inside the
    explicit padding (PyTorch's default, ONNX count_include_pad=1; the extra window of ceil_mode is
    never counted). """ + Pool.__doc__)

    name = "avg_pool"
    attrs = POOL_ATTRS + (Attr("count_include_pad", "bool", False),)

    def apply(self, ctx, x, window, stride, padding, dilation, ceil_mode, count_include_pad):
        dims, strides, dil, pad, extra = self._window(x, window, stride, padding, dilation, ceil_mode)
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, dims, strides, _add(pad, extra),
                                      window_dilation=dil)
        if all(p == (0, 0) for p in _add(pad, extra)) or (count_include_pad and not any(map(any, extra))):
            return total / math.prod(dims)  # every window is full
        # Windows at the border hold fewer counted elements: count them on one [1, *spatial, 1]
        # map (counting on the whole batch makes XLA constant-fold a batch-sized array).
        ones = jnp.pad(jnp.ones((1, *x.shape[1:-1], 1), x.dtype), pad,
                       constant_values=1.0 if count_include_pad else 0.0)
        count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, dims, strides, extra, window_dilation=dil)
        return total / count


@register
class MaxUnpool(OpDef):
    """The inverse of `max_pool(..., indices=true)` (ONNX MaxUnpool, PyTorch MaxUnpoolNd): zeros,
    with each value of x put back at its flat spatial index (h * W + w per example and channel).
    The output size is (n - 1) * stride + window - before - after per axis unless `output_size`
    names it (for inputs whose pooling dropped a remainder)."""

    name = "max_unpool"
    inputs = ("x", "indices")
    attrs = (*size_attrs(("window", 2)), Attr("stride", "ints", None, lo=1),
             Attr("padding", "padding", "valid"), Attr("output_size", "ints", None, lo=1))

    def _out(self, shape, window, stride, padding, output_size):
        n = len(shape) - 2
        if n not in (1, 2, 3):
            raise OpError(f"max_unpool expects [batch, time, c], [batch, h, w, c] or [batch, d, h, w, c]; "
                          f"found rank {len(shape)}")
        if output_size is not None:
            return tup(output_size, n, "output_size")
        w = tup(window, n, "window")
        s = tup(stride if stride is not None else window, n, "stride")
        pad = _pads(padding, n, w, s, (1,) * n, self.name)
        if isinstance(pad, str) and pad != "VALID":
            raise OpError('max_unpool cannot invert padding="same": give output_size')
        pad = [(0, 0)] * n if isinstance(pad, str) else pad
        return tuple(dim_op(dim_op(dim_op(shape[1 + i], "-", 1), "*", s[i]), "+", w[i] - lo - hi)
                     for i, (lo, hi) in enumerate(pad))

    def infer(self, x, indices, window, stride, padding, output_size):
        if indices.is_float:
            raise OpError("max_unpool's indices must be integers (from max_pool(..., indices=true))")
        if tuple(x.shape) != tuple(indices.shape):
            raise OpError(f"max_unpool: values {shape_str(x.shape)} and indices {shape_str(indices.shape)} differ")
        out = self._out(x.shape, window, stride, padding, output_size)
        return x.with_shape((x.shape[0], *out, x.shape[-1]))

    def apply(self, ctx, x, indices, window, stride, padding, output_size):
        out = self._out(x.shape, window, stride, padding, output_size)
        b, c = x.shape[0], x.shape[-1]
        flat_x = x.reshape(b, -1, c)
        flat_i = indices.reshape(b, -1, c)
        y = jnp.zeros((b, math.prod(out), c), x.dtype)
        y = y.at[jnp.arange(b)[:, None, None], flat_i, jnp.arange(c)[None, None, :]].set(flat_x)
        return y.reshape(b, *out, c)

    def flops(self, out, *xs, **kw):
        return 0


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
    """Upsampling of every spatial axis by an integer `factor`: mode "nearest" repeats each
    element (Keras UpSampling, PyTorch Upsample(mode="nearest")); "bilinear" (also "linear",
    trilinear in 3-D) interpolates with half-pixel centers (PyTorch's align_corners=False, ONNX
    Resize linear half_pixel). `resize` takes any output size or scale."""

    name = "upsample"
    attrs = (Attr("factor", "ints", 2, lo=1), Attr("mode", "str", "nearest",
                                                  choices=("nearest", "bilinear", "linear")))

    def infer(self, x, factor, mode="nearest"):
        n = x.rank - 2
        if n < 1:
            raise OpError(f"upsample expects spatial axes, found {shape_str(x.shape)}")
        f = tup(factor, n, "factor")
        shape = (x.shape[0], *(dim_op(d, "*", k) for d, k in zip(x.shape[1:-1], f)), x.shape[-1])
        return TensorType(shape, "float32") if mode != "nearest" and not x.is_float else x.with_shape(shape)

    def apply(self, ctx, x, factor, mode="nearest"):
        f = tup(factor, x.ndim - 2, "factor")
        if mode != "nearest":
            from .resize import resize_axis
            x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)
            for i, k in enumerate(f):
                x = resize_axis(x, 1 + i, x.shape[1 + i] * k, float(k), "linear", "half_pixel", "")
            return x
        for i, k in enumerate(f):
            x = jnp.repeat(x, k, axis=1 + i)
        return x
