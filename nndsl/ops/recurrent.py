"""Ops the recurrent machinery needs: initial state fills, the scan itself, stop-gradient."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.types import TensorType
from .registry import Attr, OpDef, register
from .shape import norm_axis


@register
class Fill(OpDef):
    """A constant tensor of a given shape (zero initial states)."""

    name = "fill"
    inputs = ()
    attrs = (Attr("shape", "shape"), Attr("value", "float", 0.0))
    kind = "internal"

    def infer(self, shape, value):
        return TensorType(tuple(shape))

    def apply(self, ctx, shape, value):
        return jnp.full(ctx.out_shape, value, jnp.float32)

    def flops(self, out, *xs, **kw):
        return 0


@register
class ExpandDims(OpDef):
    """Inserts an axis of size 1 at `axis`: [b, n] -> [b, 1, n] with axis=1."""

    name = "expand_dims"
    attrs = (Attr("axis", "int", 0),)
    kind = "function"

    def infer(self, x, axis):
        ax = norm_axis(axis, x.rank + 1)
        return x.with_shape(x.shape[:ax] + (1,) + x.shape[ax:])

    def apply(self, ctx, x, axis):
        return jnp.expand_dims(x, axis)

    def flops(self, out, *xs, **kw):
        return 0


@register
class Scan(OpDef):
    """A cell stepped over time with `lax.scan`; attrs["body"] is the one-step sub-graph.
    Lowered by the interpreter, which runs the body graph as the scan function."""

    name = "scan"
    inputs = ("*xs",)
    attrs = (Attr("body", "any"), Attr("states", "any"), Attr("reverse", "bool", False),
             Attr("unroll", "any", None), Attr("out_types", "any"))
    kind = "internal"

    def infer(self, *xs, body, states, reverse, unroll, out_types):
        return tuple(out_types)

    def flops(self, out, *xs, body, **kw):
        from .cost import graph_flops
        steps = out[0].shape[1] if isinstance(out, tuple) else 1
        return graph_flops(body) * (steps if isinstance(steps, int) else 1)


@register
class Detach(OpDef):
    """Blocks gradients: `detach(fake)` trains D without moving G."""

    name = "detach"
    kind = "function"

    def apply(self, ctx, x):
        return jax.lax.stop_gradient(x)

    def flops(self, out, *xs, **kw):
        return 0


@register
class Grad(OpDef):
    """d(out)/d(wrt) for a scalar `out`; the interpreter re-runs the subgraph in between."""

    name = "grad"
    inputs = ("out", "wrt")
    kind = "internal"

    def infer(self, out, wrt):
        return wrt

    def flops(self, out, *xs, **kw):
        return 0
