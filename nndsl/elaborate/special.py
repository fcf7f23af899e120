"""Special forms: names called like ops that are not ops, because they take layers, mesh axes or
whole expressions rather than tensors (`unroll(Cell(64), steps=8)`, `grad(loss, x)`).

Adding one is one function:

    @special("name")
    def _name(b, e, pos, kw, env):
        ...

It gets the builder, the call expression `e`, the evaluated positional arguments as (value,
span) pairs, the keyword arguments by name, and the environment; it returns a value (a tensor,
a layer), or NotImplemented to let the call go on as an ordinary op call of the same name
(`last` without `lengths=`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ShapeError, TypeCheckError
from ..values import BidirectionalLayer, BoundLayer, OpLayer, ReverseLayer, TensorVal, UnrollLayer, describe

if TYPE_CHECKING:
    from .builder import Builder

# name -> fn(builder, call, pos, kw, env), filled by @special below
SPECIAL: dict = {}


def special(name: str):
    """Registers the function it decorates as the special form `name`."""
    def register(fn):
        SPECIAL[name] = fn
        return fn
    return register


def _layer(b: Builder, v, span):
    """`v` as a layer (exprs.as_layer; imported here when called, since exprs reads SPECIAL)."""
    from .exprs import as_layer
    return as_layer(b, v, span)


@special("shard")
def _shard(b: Builder, e, pos, kw, env):
    """`shard(x, "data", none)`: one mesh axis name (or none) per axis of x."""
    if kw or not pos or not isinstance(pos[0][0], TensorVal):
        raise TypeCheckError('shard(x, AXIS, ...) takes a tensor and one mesh axis name or `none` per axis',
                             e.span, code="E355")
    axes = tuple(v for v, _ in pos[1:])
    for v, s in pos[1:]:
        if v is not None and not isinstance(v, str):
            raise TypeCheckError(f"a mesh axis is a name in quotes or `none`, found {describe(v)}", s, code="E355")
    return b.add_node("shard", [pos[0][0]], {"axes": axes}, e.span)


@special("last")
def _last(b: Builder, e, pos, kw, env):
    """`seq -> last(lengths=n)` picks each sequence's final valid step; plain `last` the final one."""
    if "lengths" not in kw:
        return NotImplemented
    lengths = kw.pop("lengths")
    if kw or len(pos) > 1:
        raise TypeCheckError("last takes a sequence and `lengths=`", e.span, code="E322")
    if not isinstance(lengths, TensorVal):
        raise TypeCheckError(f"`lengths` must be a tensor, found {describe(lengths)}", e.span, code="E321")
    layer = OpLayer("last_masked", {}, bound=[lengths], span=e.span)
    return b.apply(layer, [pos[0][0]], e.span) if pos else layer


@special("unroll")
def _unroll(b: Builder, e, pos, kw, env):
    """`unroll(Cell(...), steps=n)` scans a cell n times on its own outputs; a bound cell instance,
    or any of emit/feed/until/beam, makes it the feedback loop of generate.py."""
    from .generate import FEEDBACK_KW, feedback_unroll
    if pos and (isinstance(pos[0][0], BoundLayer) or any(k in kw for k in FEEDBACK_KW)):
        return feedback_unroll(b, e, pos, kw)
    if not pos:
        raise TypeCheckError("unroll(Cell(...), steps=n) needs a cell", e.span, code="E339")
    steps = kw.get("steps", pos[1][0] if len(pos) > 1 else None)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TypeCheckError("unroll needs `steps`, a positive integer", e.span, code="E339")
    return UnrollLayer(_layer(b, pos[0][0], pos[0][1]), steps, span=e.span)


@special("bidirectional")
def _bidirectional(b: Builder, e, pos, kw, env):
    if len(pos) != 1:
        raise TypeCheckError("bidirectional(Cell(...)) takes one cell", e.span, code="E339")
    return BidirectionalLayer(_layer(b, pos[0][0], pos[0][1]), span=e.span)


@special("reverse")
def _reverse(b: Builder, e, pos, kw, env):
    if len(pos) != 1 or kw:
        raise TypeCheckError("reverse(Cell(...)) takes one cell", e.span, code="E339")
    return ReverseLayer(_layer(b, pos[0][0], pos[0][1]), span=e.span)


@special("grad")
def _grad(b: Builder, e, pos, kw, env):
    """`grad(expr, wrt)`: the gradient of a scalar with respect to a tensor it depends on (WGAN-GP's
    penalty). Lowered by re-running the part of the graph between `wrt` and `expr` under jax.grad."""
    args = [p for p, _ in pos] + [kw.pop(k) for k in ("expr", "wrt") if k in kw]
    if kw or len(args) != 2 or not all(isinstance(a, TensorVal) for a in args):
        raise TypeCheckError("grad(expr, wrt) takes a scalar tensor and the tensor to differentiate by",
                             e.span, code="E353")
    out, wrt = args
    if out.type.rank != 0:
        raise ShapeError(f"grad needs a scalar to differentiate, found {out.type}", pos[0][1] if pos else e.span,
                         code="E307", help="reduce it first, e.g. sum(...)")
    if wrt.node not in b.g.ancestors([out.node]):
        raise TypeCheckError("grad: the expression does not depend on `wrt`", e.span, code="E354")
    return b.add_node("grad", [out, wrt], {}, e.span)
