"""Fusions that change how weights are applied while every parameter keeps its own name.

- Parallel dense layers on one input (the four LSTM gates on [h, x], Q/K/V) become one matmul on
  the concatenated kernels, then a split: one large matmul instead of several small ones.
- For inference, batchnorm after a convolution or dense layer is folded into its kernel and bias:
  w' = w * s, b' = (b - mean) * s + beta with s = scale / sqrt(var + eps), one `*_bn` node that
  reads both layers' parameters under their own names.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..ops import OPS
from .rewrite import Context, Pass, add, param, rule, users_of


# ---------------------------------------------------------------------- parallel dense
def _fusable_dense(g: Graph, n: Node) -> bool:
    x = g.node(g.input_ids(n.id)[0])
    return (n.op == "dense" and n.path is not None and x.type.dtype == "float32"
            and n.path + ("kernel",) in g.params and not n.attrs.get("shard"))


def _concat_params(g: Graph, paths: list, leaf: str, like: Node) -> str:
    parts = [param(g, p + (leaf,), like).id for p in paths]
    return add(g, "concat", parts, {"axis": -1}, like).id if len(parts) > 1 else parts[0]


@rule("dense")
def fuse_parallel_dense(g: Graph, n: Node, ctx: Context):  # dense_i(x), i = 1..k -> split(x @ [W_1..W_k] + [b_1..b_k])
    if not _fusable_dense(g, n):
        return None
    x = g.input_ids(n.id)[0]
    group = [u for u in users_of(g, x) if _fusable_dense(g, u) and u.attrs["bias"] == n.attrs["bias"]]
    if len(group) < 2:
        return None
    paths = [u.path for u in group]
    y = add(g, "matmul", [x, _concat_params(g, paths, "kernel", n)], {}, n).id
    if n.attrs["bias"]:
        y = add(g, "add", [y, _concat_params(g, paths, "bias", n)], {}, n).id
    parts = add(g, "split", [y], {"sections": tuple(u.attrs["units"] for u in group), "axis": -1}, n)
    mine = None
    for i, u in enumerate(group):
        item = g.add("get_item", [parts.id], {"index": i}, parts.type[i], u.span, None, u.label)
        if u.id == n.id:
            mine = item.id
        else:
            g.replace_all_uses(u.id, item.id)
            g.erase(u.id)
    return mine


class FuseParallelDense(Pass):
    """Dense layers reading the same value become one matmul and a split."""

    name = "fuse-parallel-dense"
    rules = (fuse_parallel_dense,)


# ---------------------------------------------------------------------- batchnorm folding
def _foldable(op: str) -> bool:
    """A layer batchnorm folds into is one with a fused `<op>_bn` form registered."""
    return f"{op}_bn" in OPS


@rule("batchnorm")
def fold_batchnorm(g: Graph, n: Node, ctx: Context):  # batchnorm(conv(x)) -> conv_bn(x): w * s, (b - mean) * s + beta
    (c,) = g.input_ids(n.id)
    src = g.node(c)
    if not _foldable(src.op) or src.path is None or g.uses(c) != 1 or n.path is None:
        return None
    if src.type.dtype != "float32" or src.attrs.get("shard"):  # a sharded kernel keeps its own lowering
        return None
    attrs = {**src.attrs, "reads": (("bn", n.path),), "eps": n.attrs["eps"], "scale": n.attrs["scale"],
             "center": n.attrs["center"]}
    return g.add(f"{src.op}_bn", g.input_ids(c), attrs, n.type, src.span, src.path, src.label).id


class FoldBatchnorm(Pass):
    """For inference: batchnorm after a convolution or dense layer is folded into its weights."""

    name = "fold-batchnorm"
    rules = (fold_batchnorm,)
    eval_only = True
