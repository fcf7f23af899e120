"""Shape ops: concat, split, reshape, flatten, transpose, reductions, `last`."""
from __future__ import annotations

import math
import re
from collections import Counter

import jax.numpy as jnp

from ..ir.types import TensorType, dim_op, dims_equal, promote, shape_str
from .registry import Attr, OpDef, OpError, register


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise OpError(f"axis {axis} is out of range for a rank-{rank} value")
    return axis % rank


@register
class Concat(OpDef):
    """Joins tensors along `axis`; `[a, b]` is concat on the last axis."""

    name = "concat"
    inputs = ("*xs",)
    attrs = (Attr("axis", "int", -1),)
    kind = "function"

    def infer(self, *xs, axis):
        first = xs[0]
        for x in xs[1:]:
            if x.rank != first.rank:
                raise OpError(f"cannot concatenate {shape_str(first.shape)} and {shape_str(x.shape)}: "
                              "ranks differ")
        ax = norm_axis(axis, first.rank)
        total = 0
        for x in xs:
            for i, (d, e) in enumerate(zip(first.shape, x.shape)):
                if i != ax and not dims_equal(d, e):
                    raise OpError(f"cannot concatenate {shape_str(first.shape)} and "
                                  f"{shape_str(x.shape)} on axis {axis}: axis {i} differs ({d} vs {e})")
            total = dim_op(total, "+", x.shape[ax])
        shape = list(first.shape)
        shape[ax] = total
        dtype = first.dtype
        for x in xs[1:]:
            dtype = promote(dtype, x.dtype)
        return TensorType(tuple(shape), dtype)

    def apply(self, ctx, *xs, axis):
        return jnp.concatenate(xs, axis=axis)

    def flops(self, out, *xs, **kw):
        return 0


@register
class Split(OpDef):
    """Splits into `sections` equal parts, or parts of the listed sizes; gives a tuple."""

    name = "split"
    attrs = (Attr("sections", "ints", lo=1), Attr("axis", "int", -1))
    kind = "function"

    def _sizes(self, x, sections, axis):
        ax = norm_axis(axis, x.rank)
        n = x.shape[ax]
        if isinstance(sections, int):
            if sections <= 0:
                raise OpError("split needs a positive number of sections")
            if isinstance(n, int) and n % sections:
                raise OpError(f"cannot split axis of size {n} into {sections} equal parts")
            return ax, [dim_op(n, "//", sections)] * sections
        sizes = list(sections)
        if isinstance(n, int) and sum(sizes) != n:
            raise OpError(f"split sizes {sizes} add up to {sum(sizes)}, but the axis has size {n}")
        return ax, sizes

    def infer(self, x, sections, axis):
        ax, sizes = self._sizes(x, sections, axis)
        return tuple(x.with_shape(x.shape[:ax] + (s,) + x.shape[ax + 1:]) for s in sizes)

    def apply(self, ctx, x, sections, axis):
        if isinstance(sections, int):
            return tuple(jnp.split(x, sections, axis=axis))
        idx = list(itertools_accumulate(sections))[:-1]
        return tuple(jnp.split(x, idx, axis=axis))

    def flops(self, out, *xs, **kw):
        return 0


def itertools_accumulate(xs):
    total = 0
    for x in xs:
        total += x
        yield total


@register
class GetItem(OpDef):
    """Picks one value of a multi-valued node (internal: `a, b = split(x, 2)`)."""

    name = "get_item"
    moves_values = True
    attrs = (Attr("index", "int"),)
    kind = "internal"

    def infer(self, x, index):
        return x[index]

    def apply(self, ctx, x, index):
        return x[index]

    def flops(self, out, *xs, **kw):
        return 0


@register
class Flatten(OpDef):
    """[batch, ...] -> [batch, product of the rest]. `axis=k` is ONNX Flatten's: the axes before
    k become the first dimension and the rest the second, so axis=2 on [batch, time, c] merges the
    batch and time axes into [batch * time, c] (axis=1 is the default, PyTorch's nn.Flatten()),
    axis=0 gives [1, everything]; negative k counts from the end."""

    name = "flatten"
    moves_values = True
    attrs = (Attr("axis", "int", 1),)

    def _axis(self, rank, axis):
        if not -rank <= axis <= rank:
            raise OpError(f"flatten: axis {axis} is out of range for rank {rank} (from {-rank} to {rank})")
        return axis % rank if axis < 0 else axis

    def infer(self, x, axis=1):
        if x.rank < 1:
            raise OpError("flatten needs a batch axis, found a scalar")
        k = self._axis(x.rank, axis)
        head, tail = 1, 1
        for d in x.shape[:k]:
            head = dim_op(head, "*", d)
        for d in x.shape[k:]:
            tail = dim_op(tail, "*", d)
        return x.with_shape((head, tail))

    def apply(self, ctx, x, axis=1):
        return x.reshape(ctx.out_shape)

    def flops(self, out, *xs, **kw):
        return 0


def _names_batch(d, batch) -> bool:
    """Whether a reshape's first entry is the input's batch axis written out: the same symbol,
    or, once sizes are bound, a named size (the builder's NamedInt, `batch` = 64) equal to it."""
    if isinstance(d, str):
        return d == batch
    return bool(getattr(d, "dim_name", "")) and d == batch


@register
class Reshape(OpDef):
    """Keras-style: the shape excludes the batch axis, unless it starts with that axis' own
    symbol (`reshape([batch, 7, 7, 64])`). One entry may be -1. `full=true` makes the shape the
    whole tensor's, batch axis included (ONNX Reshape, torch.reshape): the way to merge the batch
    axis into another (`reshape([-1, 64], full=true)` on [batch, 7, 64]) or split it again."""

    name = "reshape"
    moves_values = True
    attrs = (Attr("shape", "shape"), Attr("full", "bool", False))

    def infer(self, x, shape, full=False):
        shape = list(shape)
        full = full or (bool(shape) and x.rank > 0 and _names_batch(shape[0], x.shape[0]))
        target = shape if full else [x.shape[0], *shape] if x.rank > 0 else shape
        if target.count(-1) > 1:
            raise OpError("reshape allows at most one -1")
        if any(isinstance(d, int) and d != -1 and d <= 0 for d in target):
            raise OpError(f"reshape sizes must be positive (or one -1), got {shape_str(shape)}")
        # Sizes are compared as (static product, multiset of symbols): [batch, 8] into [batch, 3, 3]
        # is wrong whatever `batch` is, since the symbols cancel.
        src_n, src_syms = _factors(x.shape)
        dst_n, dst_syms = _factors(d for d in target if d != -1)
        comparable = not (dst_syms - src_syms)
        if -1 in target:
            if comparable and src_n % dst_n:
                raise OpError(f"cannot reshape {shape_str(x.shape)} into {shape_str(target)}: "
                              f"{src_n} is not a multiple of {dst_n}")
            fill = src_n // dst_n if comparable else "?"
            for sym in sorted((src_syms - dst_syms).elements()) if comparable else ():
                fill = dim_op(fill, "*", sym)
            target[target.index(-1)] = fill
        elif src_syms == dst_syms and src_n != dst_n:
            raise OpError(f"cannot reshape {shape_str(x.shape)} ({_count(src_n, src_syms)} elements) "
                          f"into {shape_str(target)} ({_count(dst_n, dst_syms)} elements)")
        return x.with_shape(tuple(target))

    def apply(self, ctx, x, shape, full=False):
        return x.reshape(ctx.out_shape)

    def flops(self, out, *xs, **kw):
        return 0


@register
class Transpose(OpDef):
    """Permutes axes; without `perm`, swaps the last two (a matrix transpose)."""

    name = "transpose"
    attrs = (Attr("perm", "ints", None),)

    def _perm(self, rank, perm):
        if perm is None:
            if rank < 2:
                raise OpError("transpose needs at least two axes")
            return list(range(rank - 2)) + [rank - 1, rank - 2]
        perm = [perm] if isinstance(perm, int) else list(perm)
        if sorted(p % rank if -rank <= p < rank else -99 for p in perm) != list(range(rank)):
            raise OpError(f"perm {perm} is not a permutation of {rank} axes")
        return [p % rank for p in perm]

    def infer(self, x, perm):
        p = self._perm(x.rank, perm)
        return x.with_shape(tuple(x.shape[i] for i in p))

    def apply(self, ctx, x, perm):
        return jnp.transpose(x, self._perm(x.ndim, perm))

    def flops(self, out, *xs, **kw):
        return 0


class Reduce(OpDef):
    """Reduces over `axis` (an int, a list, or every axis when left out); `keepdims` keeps the
    reduced axes with size 1."""

    attrs = (Attr("axis", "ints", None), Attr("keepdims", "bool", False))
    kind = "function"
    fn = None

    def _axes(self, rank, axis):
        if axis is None:
            return tuple(range(rank))
        axes = [axis] if isinstance(axis, int) else list(axis)
        return tuple(sorted(norm_axis(a, rank) for a in axes))

    def infer(self, x, axis, keepdims):
        axes = self._axes(x.rank, axis)
        shape = tuple((1 if i in axes else d) for i, d in enumerate(x.shape) if keepdims or i not in axes)
        if self.name == "mean" and not x.is_float:
            return TensorType(shape, "float32")
        if self.name == "sum" and x.dtype == "bool":
            return TensorType(shape, "int32")  # counts, as numpy's sum of booleans
        return x.with_shape(shape)

    def apply(self, ctx, x, axis, keepdims):
        return type(self).fn(x, axis=self._axes(x.ndim, axis), keepdims=keepdims)


@register
class Sum(Reduce):
    """The sum over `axis` (all axes by default)."""

    name, fn = "sum", staticmethod(jnp.sum)


@register
class Mean(Reduce):
    """The mean over `axis` (all axes by default); integers average to float32."""

    name, fn = "mean", staticmethod(jnp.mean)


@register
class Max(Reduce):
    """The maximum over `axis` (all axes by default)."""

    name, fn = "max", staticmethod(jnp.max)


@register
class Min(Reduce):
    """The minimum over `axis` (all axes by default)."""

    name, fn = "min", staticmethod(jnp.min)


@register
class Argmax(OpDef):
    """The index of the largest value along `axis` (the last by default), int32."""

    name = "argmax"
    attrs = (Attr("axis", "int", -1),)
    kind = "function"

    def infer(self, x, axis):
        ax = norm_axis(axis, x.rank)
        return TensorType(x.shape[:ax] + x.shape[ax + 1:], "int32")

    def apply(self, ctx, x, axis):
        return jnp.argmax(x, axis=axis).astype(jnp.int32)


@register
class Last(OpDef):
    """The final time step of [batch, time, ...]: many-to-one."""

    name = "last"

    def infer(self, x):
        if x.rank < 3:
            raise OpError(f"last expects [batch, time, features], found {shape_str(x.shape)}")
        return x.with_shape(x.shape[:1] + x.shape[2:])

    def apply(self, ctx, x):
        return x[:, -1]

    def flops(self, out, *xs, **kw):
        return 0


def prod(xs):
    return math.prod(xs)


def _factors(dims) -> tuple[int, Counter]:
    """A size as its static product and the multiset of its symbolic factors."""
    n, syms = 1, Counter()
    for d in dims:
        # a product of names and numbers (`batch*7`, from a flatten that merged the batch axis)
        parts = d.split("*") if isinstance(d, str) and re.fullmatch(r"\w+(\*\w+)+", d) else [d]
        for p in parts:
            if isinstance(p, int) or (isinstance(p, str) and p.isdigit()):
                n *= int(p)
            else:
                syms[p] += 1
    return n, syms


def _count(n: int, syms: Counter) -> str:
    return "*".join([*sorted(syms.elements()), str(n)]) if syms else str(n)
