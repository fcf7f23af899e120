"""Constant folding and algebraic simplification: cheap rewrites that never change a value.

Every rule checks that the value it returns has exactly the type of the node it replaces, so a
rewrite can never change a shape or a dtype downstream (`x * 1` with an integer `x` is a float
and stays as it is).
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from ..ops import OPS, ApplyCtx
from .rewrite import Context, Pass, add, rule, scalar, users_of

# Elementwise ops: applied to uniform tensors (a `fill`) they give a uniform tensor.
ELEMENTWISE = sorted(name for name, op in OPS.items() if op.elementwise)


# ---------------------------------------------------------------------- constant folding
def _number(value, dtype: str):
    v = np.asarray(value).item()
    return bool(v) if dtype == "bool" else int(v) if dtype.startswith(("int", "uint")) else float(v)


@rule(*ELEMENTWISE)
def fold_elementwise(g: Graph, n: Node, ctx: Context):  # op(c1, c2) -> c; op(fill a, c) -> fill b
    ins = g.input_ids(n.id)
    vals = [scalar(g, i) for i in ins]
    if any(v is None for v in vals) or not all(g.node(i).op in ("const", "fill") for i in ins):
        return None
    import jax.numpy as jnp
    args = [jnp.asarray(v, g.node(i).type.dtype) for v, i in zip(vals, ins)]
    out = OPS[n.op].apply(ApplyCtx(out_shape=()), *args, **n.attrs)
    if str(out.dtype) != n.type.dtype or out.shape != ():
        return None
    if n.type.rank == 0:
        return add(g, "const", [], {"value": _number(out, n.type.dtype), "dtype": n.type.dtype}, n).id
    if n.type.dtype != "float32":
        return None  # fill makes float32 tensors only
    return g.add("fill", [], {"shape": tuple(n.type.shape), "value": float(out)}, n.type, n.span).id


# ---------------------------------------------------------------------- algebra
def _same(g: Graph, nid: str, n: Node) -> str | None:
    """`nid` if it can stand for `n` (same type), else None."""
    return nid if g.node(nid).type == n.type else None


def _unit_operand(g: Graph, n: Node, unit: float, sides: tuple) -> str | None:
    ins = g.input_ids(n.id)
    for keep in sides:
        other = ins[1 - keep]
        if g.node(other).op in ("const", "fill") and scalar(g, other) == unit:
            return _same(g, ins[keep], n)
    return None


@rule("mul")
def drop_mul_one(g, n, ctx):  # x * 1 -> x, 1 * x -> x
    return _unit_operand(g, n, 1.0, (0, 1))


@rule("add")
def drop_add_zero(g, n, ctx):  # x + 0 -> x, 0 + x -> x
    return _unit_operand(g, n, 0.0, (0, 1))


@rule("sub")
def drop_sub_zero(g, n, ctx):  # x - 0 -> x
    return _unit_operand(g, n, 0.0, (0,))


@rule("div")
def drop_div_one(g, n, ctx):  # x / 1 -> x
    return _unit_operand(g, n, 1.0, (0,))


@rule("pow")
def drop_pow_one(g, n, ctx):  # x ** 1 -> x
    return _unit_operand(g, n, 1.0, (0,))


@rule("identity")
def drop_identity(g, n, ctx):  # identity(x) -> x
    return _same(g, g.input_ids(n.id)[0], n)


@rule("concat")
def drop_concat_of_one(g, n, ctx):  # concat(x) -> x
    ins = g.input_ids(n.id)
    return _same(g, ins[0], n) if len(ins) == 1 else None


@rule("neg")
def drop_double_neg(g, n, ctx):  # -(-x) -> x
    (x,) = g.input_ids(n.id)
    return _same(g, g.input_ids(x)[0], n) if g.node(x).op == "neg" else None


@rule("relu", "detach")
def drop_repeated_idempotent(g, n, ctx):  # relu(relu(x)) -> relu(x); detach(detach(x)) -> detach(x)
    (x,) = g.input_ids(n.id)
    return _same(g, x, n) if g.node(x).op == n.op else None


@rule("dropout")
def drop_inactive_dropout(g, n, ctx):  # dropout(x) -> x outside training, or at rate 0
    if ctx.train and n.attrs["rate"] != 0:
        return None
    return _same(g, g.input_ids(n.id)[0], n)


@rule("transpose")
def merge_transposes(g, n, ctx):  # transpose(transpose(x)) -> x, or one transpose
    (t,) = g.input_ids(n.id)
    inner = g.node(t)
    if inner.op != "transpose":
        return None
    (x,) = g.input_ids(t)
    rank = n.type.rank
    perm_of = OPS["transpose"]._perm
    p, q = perm_of(rank, inner.attrs["perm"]), perm_of(rank, n.attrs["perm"])
    composed = [p[i] for i in q]
    if composed == list(range(rank)):
        return _same(g, x, n)
    new = add(g, "transpose", [x], {"perm": tuple(composed)}, n)
    return new.id if new.type == n.type else None


RESHAPES = ("reshape", "flatten")


@rule(*RESHAPES)
def merge_reshapes(g, n, ctx):  # reshape(x) to x's own shape -> x; reshape(reshape(x)) -> reshape(x)
    (x,) = g.input_ids(n.id)
    if g.node(x).type == n.type:
        return x
    if g.node(x).op not in RESHAPES:
        return None
    (src,) = g.input_ids(x)
    if g.node(src).type == n.type:
        return src
    try:
        t = OPS[n.op].infer(g.node(src).type, **n.attrs)
    except Exception:  # noqa: BLE001  (the outer shape does not read from the source: keep both)
        return None
    return g.add(n.op, [src], dict(n.attrs), t, n.span, n.path, n.label).id if t == n.type else None


class FoldConstants(Pass):
    """Evaluates elementwise ops whose inputs are all constants (or uniform fills) at compile time."""

    name = "fold-constants"
    rules = (fold_elementwise,)


@rule("last")
def last_of_scan_is_its_state(g, n, ctx):  # last(scan(...).out) -> scan(...).h when the cell outputs h
    (ys,) = g.input_ids(n.id)
    item = g.node(ys)
    if item.op != "get_item" or item.attrs["index"] != 0:
        return None
    s = g.node(g.input_ids(ys)[0])
    if s.op != "scan" or s.attrs["reverse"] or s.attrs.get("unroll") is not None:
        return None
    body = s.attrs["body"]
    states = [k for k, name in enumerate(s.attrs["states"]) if body.outputs[name] == body.outputs["out"]]
    if not states:
        return None
    index = 1 + states[0]
    users = users_of(g, s.id)
    found = [u for u in users if u.op == "get_item" and u.attrs["index"] == index]
    final = found[0] if found else g.add("get_item", [s.id], {"index": index}, s.type[index], n.span, None, n.label)
    if _same(g, final.id, n) is None:
        return None
    if g.uses(ys) == 1 and all(u.op == "get_item" and (u.attrs["index"] != 0 or u.id == ys) for u in users):
        s.attrs = {**s.attrs, "stack_out": False}  # nothing else reads the stacked outputs: do not stack them
    return final.id


class Simplify(Pass):
    """Algebraic identities: x*1, x+0, x-0, x/1, x**1, identity, -(-x), relu(relu(x)), double
    transposes, reshape chains, dropout outside training, the last output of a scan whose cell
    outputs its state (that state's final value, and the outputs are no longer stacked)."""

    name = "simplify"
    rules = (drop_mul_one, drop_add_zero, drop_sub_zero, drop_div_one, drop_pow_one, drop_identity,
             drop_concat_of_one, drop_double_neg, drop_repeated_idempotent, drop_inactive_dropout,
             merge_transposes, merge_reshapes, last_of_scan_is_its_state)
