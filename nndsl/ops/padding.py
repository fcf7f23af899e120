"""The `pad` op: constant, reflect, edge and wrap padding of any axes (ONNX Pad, PyTorch F.pad)."""
from __future__ import annotations

import jax.numpy as jnp

from ..ir.types import dim_op
from .registry import Attr, OpDef, OpError, register

MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@register
class Pad(OpDef):
    """Pads the listed axes: `padding` an int (before and after every listed axis), one int per
    axis, or [before, after] pairs (ONNX pads, PyTorch F.pad's pairs listed from the first axis
    instead of the last). `mode` as ONNX Pad: "constant" (`value`), "reflect" (mirrored without
    repeating the edge, PyTorch "reflect"), "edge" (the edge repeated, PyTorch "replicate"),
    "wrap" (periodic, PyTorch "circular"). `axes` default to the spatial axes of
    [batch, ..., channels] (Keras' ZeroPadding); name any axes, negative from the end."""

    name = "pad"
    attrs = (Attr("padding", "padding", choices=()), Attr("mode", "str", "constant", choices=tuple(MODES)),
             Attr("value", "float", 0.0), Attr("axes", "ints", None))

    def _pairs(self, rank, padding, axes):
        if axes is None:
            if rank < 3:
                raise OpError(f"pad of a rank-{rank} value has no spatial axes: name them with axes=[...]")
            axes = tuple(range(1, rank - 1))
        axes = (axes,) if isinstance(axes, int) else tuple(axes)
        norm = []
        for a in axes:
            if not -rank <= a < rank:
                raise OpError(f"pad: axis {a} is out of range for rank {rank}")
            norm.append(a % rank)
        if len(set(norm)) != len(norm):
            raise OpError(f"pad: axes {list(axes)} name an axis twice")
        if isinstance(padding, int):
            pads = [(padding, padding)] * len(norm)
        elif len(padding) != len(norm):
            raise OpError(f"pad: padding needs {len(norm)} entries (one per padded axis), got {len(padding)}")
        else:
            pads = [tuple(p) if isinstance(p, tuple) else (p, p) for p in padding]
        full = [(0, 0)] * rank
        for a, p in zip(norm, pads):
            full[a] = p
        return full

    def infer(self, x, padding, mode, value, axes):
        full = self._pairs(x.rank, padding, axes)
        for i, (lo, hi) in enumerate(full):
            d = x.shape[i]
            if mode in ("reflect", "wrap") and (lo or hi):
                limit = d - 1 if mode == "reflect" else d
                if isinstance(d, int) and max(lo, hi) > limit:
                    raise OpError(f'pad mode "{mode}" pads axis {i} of size {d} by at most {limit} '
                                  f"per side, got {max(lo, hi)}", help="PyTorch and ONNX refuse the same")
        shape = tuple(dim_op(d, "+", lo + hi) for d, (lo, hi) in zip(x.shape, full))
        return x.with_shape(shape)

    def apply(self, ctx, x, padding, mode, value, axes):
        full = self._pairs(x.ndim, padding, axes)
        if mode == "constant":
            return jnp.pad(x, full, constant_values=jnp.asarray(value, x.dtype))
        return jnp.pad(x, full, mode=MODES[mode])

    def flops(self, out, *xs, **kw):
        return 0
