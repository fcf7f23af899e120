"""Labels and token ids against what consumes them, from the data source's declared schema.

A source declares what its fields hold (`Values` in nndsl/data/sources.py: class ids below
`classes`, token ids below `vocab`). A `cross_entropy` or `accuracy` whose logits have fewer
classes, an `embed` whose table has fewer rows, or a `conditional_batchnorm` with fewer classes
would read past the end at training time, where JAX clamps or returns NaN instead of failing; so
it is a located error at check time. The same rules, given the arrays, name the cause when a
loss becomes non-finite on data whose schema says nothing (npz, csv).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from ..ops.registry import OPS


@dataclass
class IdUse:
    """A node that reads integer ids from a data field and has room for `room` of them."""

    field: str
    room: int
    what: str  # "logits with 5 classes"
    op: str
    span: object
    producer_span: object = None  # where the room was decided (the logits' layer)


def id_uses(g, data_inputs: dict) -> list[IdUse]:
    by_id = {nid: f for f, nid in data_inputs.items()}
    out = []
    for n in g.nodes():
        ins = g.input_ids(n.id)
        if n.op in ("cross_entropy", "accuracy") and len(ins) == 2:
            logits, labels = (g.node(i) for i in ins)
            lt, yt = logits.type, labels.type
            if not (hasattr(lt, "rank") and hasattr(yt, "rank")) or lt.rank != yt.rank + 1:
                continue  # probabilities, or 0/1 targets of the same shape
            c = lt.shape[-1]
            if not isinstance(c, int) or (n.op == "accuracy" and c <= 1):
                continue
            f = _origin(g, labels.id, by_id)
            if f is not None:
                out.append(IdUse(f, c, f"logits with {c} class{'es' if c != 1 else ''}", n.op, n.span, logits.span))
        elif n.op == "embed" and ins:
            v = n.attrs.get("vocab")
            f = _origin(g, ins[0], by_id)
            if f is not None and isinstance(v, int):
                out.append(IdUse(f, v, f"an embedding table of {v} rows", n.op, n.span))
        elif n.op == "conditional_batchnorm" and len(ins) == 2:
            c = n.attrs.get("classes")
            f = _origin(g, ins[1], by_id)
            if f is not None and isinstance(c, int):
                out.append(IdUse(f, c, f"{c} classes", n.op, n.span))
    return out


def _origin(g, nid, by_id) -> str | None:
    for _ in range(64):
        if nid in by_id:
            return by_id[nid]
        n = g.node(nid)
        ins = g.input_ids(nid)
        if n.op not in OPS or not OPS[n.op].moves_values or not ins:
            return None
        nid = ins[0]
    return None


def check_ids(spec) -> list:
    """Errors for every use whose room is smaller than the ids the source declares."""
    src = spec.data
    values = getattr(src, "values", None) or {}
    errors = []
    for use in id_uses(spec.graph, spec.data_inputs):
        v = values.get(use.field)
        if v is None or v.ids is None or v.ids <= use.room:
            continue
        notes = [(use.producer_span, "the logits are made here")] if use.producer_span else []
        last = "a last layer of `dense(data.classes)`" if v.classes else f"a last layer of `dense({v.ids})`"
        fix = {"embed": f"`embed({v.ids}, ...)`, or `embed(data.{'vocab' if v.vocab else 'classes'}, ...)`",
               "conditional_batchnorm": f"`classes={v.ids}`"}.get(use.op, last)
        errors.append(ShapeError(f"`{use.op}` gets `data.{use.field}`, {v.describe()} from `{src.name}`, but has "
                                 f"{use.what}: ids {use.room}..{v.ids - 1} would fall outside it", use.span,
                                 code="E361", notes=notes, help=f"use {fix}"))
    return errors


def explain_nonfinite(spec, arrays: dict) -> tuple[str, str] | None:
    """(cause, help) for a non-finite loss when the data can show one: ids outside what reads
    them, or non-finite values in a field. None when the data looks fine."""
    for use in id_uses(spec.graph, spec.data_inputs):
        a = arrays.get(use.field)
        if a is None or not len(a) or not np.issubdtype(np.asarray(a).dtype, np.number):
            continue
        lo, hi = np.min(a), np.max(a)
        if lo < 0 or hi >= use.room:
            where = f" ({use.span.where()})" if use.span else ""
            return (f"`data.{use.field}` holds ids from {lo:g} to {hi:g}, but `{use.op}`{where} has {use.what}",
                    (f"give `{use.op}` room for ids 0..{int(hi)} ({int(hi) + 1} classes), or fix the ids "
                     "in the data; the learning rate is not the problem"))
    for f, a in arrays.items():
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            return (f"`data.{f}` holds non-finite values (NaN or infinity)",
                    "clean the data: a NaN in the input makes every loss NaN")
    return None
