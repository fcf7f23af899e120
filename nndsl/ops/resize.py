"""Resizing the spatial axes: nearest and (bi/tri)linear, as ONNX Resize defines them.

Each spatial axis is resized on its own (ONNX's linear mode is separable): an output position
x maps to a source coordinate by `coordinate_transformation_mode`, then to the nearest source
element (rounded by `nearest_mode`) or to the two neighbours around it, weighted linearly with
the coordinate clamped into the input (edge values beyond it, as ONNX and PyTorch). The indices
and weights depend only on the sizes, so they are numpy constants at trace time.
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ..ir.types import TensorType, shape_str
from .registry import Attr, OpDef, OpError, register

COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
ROUNDING = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def source_coords(n_in: int, n_out: int, scale: float, mode: str) -> np.ndarray:
    """ONNX Resize's coordinate_transformation_mode: where output position x reads the input."""
    x = np.arange(n_out, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if n_out > 1 else np.zeros(n_out)
    if mode == "align_corners":
        return x * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(n_out)
    return x / scale  # asymmetric


def nearest_index(c: np.ndarray, n_in: int, rounding: str) -> np.ndarray:
    if rounding == "round_prefer_floor":
        i = np.where(c - np.floor(c) == 0.5, np.floor(c), np.round(c))
    elif rounding == "round_prefer_ceil":
        i = np.where(c - np.floor(c) == 0.5, np.ceil(c), np.round(c))
    elif rounding == "floor":
        i = np.floor(c)
    else:
        i = np.ceil(c)
    return np.clip(i, 0, n_in - 1).astype(np.int32)


def resize_axis(x, axis: int, n_out: int, scale: float, mode: str, coords: str, rounding: str):
    n_in = x.shape[axis]
    c = source_coords(n_in, n_out, scale, coords)
    if mode == "nearest":
        return jnp.take(x, nearest_index(c, n_in, rounding), axis=axis)
    c = np.clip(c, 0, n_in - 1)
    lo = np.floor(c).astype(np.int32)
    hi = np.minimum(lo + 1, n_in - 1)
    w = (c - lo).reshape((-1,) + (1,) * (x.ndim - 1 - axis)).astype(np.float32)
    return jnp.take(x, lo, axis=axis) * (1 - w) + jnp.take(x, hi, axis=axis) * w


def _geometry(shape, size, scale, what):
    """(output sizes, scales) per spatial axis: from `size` (scale = out / in) or from `scale`
    (out = floor(in * scale), the scale itself used for coordinates, as ONNX)."""
    n = len(shape) - 2
    if n < 1:
        raise OpError(f"{what} expects [batch, ..., channels] with spatial axes, found {shape_str(shape)}")
    if (size is None) == (scale is None):
        raise OpError(f"{what} needs exactly one of size=... and scale=...")
    spatial = shape[1:-1]
    if not all(isinstance(d, int) for d in spatial):
        raise OpError(f"{what} needs static spatial sizes, found {shape_str(shape)}")
    if size is not None:
        sizes = (size,) * n if isinstance(size, int) else tuple(size)
        if len(sizes) != n:
            raise OpError(f"{what}: size needs {n} values (one per spatial axis), got {len(sizes)}")
        return sizes, tuple(o / i for o, i in zip(sizes, spatial))
    scales = (float(scale),) * n if isinstance(scale, (int, float)) else tuple(map(float, scale))
    if len(scales) != n:
        raise OpError(f"{what}: scale needs {n} values (one per spatial axis), got {len(scales)}")
    sizes = tuple(math.floor(i * s) for i, s in zip(spatial, scales))
    if min(sizes) < 1:
        raise OpError(f"{what}: scale {list(scales)} leaves no output from {shape_str(shape)}")
    return sizes, scales


@register
class Resize(OpDef):
    """ONNX Resize over the spatial axes of [batch, ..., channels]: `size` (one per axis, or one
    for all) or `scale` (output floor(n * scale), non-integer allowed); mode "nearest" or
    "linear" (bilinear in 2-D, trilinear in 3-D); `coordinate_transformation_mode` "half_pixel"
    (ONNX's default), "pytorch_half_pixel" (PyTorch's align_corners=False), "align_corners",
    "asymmetric" (PyTorch's mode="nearest" pairs it with nearest_mode="floor");
    `nearest_mode` "round_prefer_floor" (ONNX's default), "round_prefer_ceil", "floor", "ceil"."""

    name = "resize"
    attrs = (Attr("size", "ints", None, lo=1), Attr("scale", "floats", None, lo=1e-6),
             Attr("mode", "str", "nearest", choices=("nearest", "linear")),
             Attr("coordinate_transformation_mode", "str", "half_pixel", choices=COORDS),
             Attr("nearest_mode", "str", "round_prefer_floor", choices=ROUNDING))

    def infer(self, x, size, scale, mode, coordinate_transformation_mode, nearest_mode):
        sizes, _ = _geometry(x.shape, size, scale, self.name)
        shape = (x.shape[0], *sizes, x.shape[-1])
        return TensorType(shape, "float32") if mode == "linear" and not x.is_float else x.with_shape(shape)

    def apply(self, ctx, x, size, scale, mode, coordinate_transformation_mode, nearest_mode):
        sizes, scales = _geometry(x.shape, size, scale, self.name)
        if not jnp.issubdtype(x.dtype, jnp.floating) and mode == "linear":
            x = x.astype(jnp.float32)
        for i, (n, s) in enumerate(zip(sizes, scales)):
            x = resize_axis(x, 1 + i, n, s, mode, coordinate_transformation_mode, nearest_mode)
        return x
