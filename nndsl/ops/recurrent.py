"""Ops the recurrent machinery needs: initial state fills, the scan itself, stop-gradient."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.graph import Graph
from ..ir.types import TensorType
from . import scan_vjp
from .lowering import cast
from .registry import Attr, OpDef, register
from .shape import norm_axis


@register
class Fill(OpDef):
    """A constant tensor of a given shape (zero initial states)."""

    name = "fill"
    inputs = ()
    attrs = (Attr("shape", "shape"), Attr("value", "float", 0.0))
    kind = "internal"
    shareable = False  # the builder keeps each initial state its own fill

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
    moves_values = True
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
    """A cell stepped over time with `lax.scan`; attrs["body"] is the one-step sub-graph, which
    the lowering runs as the scan function.

    Inputs are [seq, *initial states, *extra sequences, *constants] (the last two groups come from
    passes that hoist work out of the body, counted by attrs n_seqs and n_consts); the body sees
    [x, *states, *steps, *constants]."""

    name = "scan"
    inputs = ("*xs",)
    attrs = (Attr("body", "any"), Attr("states", "any"), Attr("reverse", "bool", False),
             Attr("unroll", "any", None), Attr("out_types", "any"))
    kind = "internal"
    body_attrs = ("body",)
    cell = True

    def infer(self, *xs, out_types, **attrs):  # attrs: also n_seqs, n_consts, stack_out after passes
        return tuple(out_types)

    def check_bodies(self, node, types):
        """A body with the inputs the scan's groups count and an output per state."""
        body = node.attrs.get("body")
        if not isinstance(body, Graph):
            return f"scan {node.id} has no body graph"
        n_states = len(node.attrs["states"])
        want = 1 + n_states + node.attrs.get("n_seqs", 0) + node.attrs.get("n_consts", 0)
        if len(types) != want or len(body.inputs) != want:
            return f"scan {node.id} has {len(types)} inputs and its body {len(body.inputs)}; expected {want}"
        for key in ("out", *node.attrs["states"]):
            if key not in body.outputs:
                return f"scan {node.id}'s body has no output `{key}`"
        return None

    def lower(self, node, args, ctx):
        body: Graph = node.attrs["body"]
        names = node.attrs["states"]
        n_seqs = node.attrs.get("n_seqs", 0)
        out_id = body.outputs["out"]
        state_ids = [body.outputs[n] for n in names]
        seq, inits = args[0], tuple(args[1:1 + len(names)])
        seqs = tuple(args[1 + len(names):1 + len(names) + n_seqs])
        consts = list(args[1 + len(names) + n_seqs:])

        def cell(x_t, carry, steps=()):
            env = ctx.run_body(body, [x_t, *carry, *steps, *consts])
            # the carry keeps the dtype it entered with (lax.scan requires it)
            return env[out_id], tuple(cast(env[i], c.dtype) if hasattr(c, "dtype") else env[i]
                                      for i, c in zip(state_ids, carry))

        if node.attrs["unroll"] is not None:
            return _feed_back(cell, seq, inits, node.attrs["unroll"])
        stack = node.attrs.get("stack_out", True)  # False: no node reads the stacked outputs

        def f(carry, xs):
            y, st2 = cell(xs[0], carry, xs[1:])
            return st2, (y if stack else None)
        time_major = tuple(jnp.swapaxes(s, 0, 1) for s in (seq, *seqs))
        # the recurrent-kernel gradient (weight gradients as one matmul after the loop); NNDSL_SCAN_VJP=0: lax.scan's
        loop = scan_vjp.scan if scan_vjp.enabled() else jax.lax.scan
        final, ys = loop(f, inits, time_major, reverse=node.attrs["reverse"])
        if not stack:
            return (None, *final)
        return (jnp.swapaxes(ys, 0, 1), *final)

    def flops(self, out, *xs, body, **kw):
        from .cost import graph_flops
        steps = out[0].shape[1] if isinstance(out, tuple) else 1
        return graph_flops(body) * (steps if isinstance(steps, int) else 1)


def _feed_back(cell, first, inits, length: int):
    """`unroll`: the cell run `length` steps on its own previous output, starting from `first`."""
    def fb(carry, _):
        x_prev, st = carry
        y, st2 = cell(x_prev, st)
        y = cast(y, x_prev.dtype)
        return (y, st2), y
    (_, final), ys = jax.lax.scan(fb, (first, inits), None, length=length)
    return (jnp.swapaxes(ys, 0, 1), *final)


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
    shareable = False
    pure = False  # it reads the graph it sits in (the nodes between `wrt` and `out`), not only its inputs

    def infer(self, out, wrt):
        return wrt

    def lower(self, node, args, ctx):
        """Re-runs the enclosing graph from `wrt` to `out` with everything not downstream of
        `wrt` fixed at its value, and differentiates that."""
        g = ctx.graph
        out, wrt = g.input_ids(node.id)
        downstream = g.descendants(wrt)
        fixed = {k: v for k, v in ctx.env.items() if k not in downstream and k != wrt}

        def f(w):
            e = ctx.run_body(g, ctx.inputs, targets=[out], preset={**fixed, wrt: w})
            return e[out]
        return jax.grad(f)(ctx.env[wrt])

    def flops(self, out, *xs, **kw):
        return 0
