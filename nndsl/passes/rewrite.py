"""Rules, the fixpoint driver, and the Pass base class.

A rule is a function `(g, node, ctx) -> str | None`, indexed by the ops it looks at (tinygrad's
pattern dictionary). It returns None for "no match", or the id of the value that now stands for
`node` (its own id when it rewrote the node's users in place). The driver replaces every use of
`node` with the returned value, erases what became dead, and sweeps again until no rule fires.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import NndslError
from ..ir.graph import Graph, Node
from ..ir.types import TensorType
from ..ops import OPS

MAX_SWEEPS = 50


class PassError(NndslError):
    """A pass produced an invalid graph or could not finish: a bug in nndsl, not in the program."""

    code = "E901"


@dataclass(frozen=True)
class Context:
    """What rules may know beyond the graph: whether it will run in training mode, and options
    that override a pass's platform defaults (for measuring them)."""

    train: bool = False
    options: dict = field(default_factory=dict)


Rule = Callable[[Graph, Node, Context], "str | None"]


def rule(*ops: str):
    """Marks a rule with the ops it matches (none: every op)."""

    def mark(fn):
        fn.ops = ops or ("*",)
        return fn
    return mark


def rewrite(g: Graph, rules: list[Rule], ctx: Context) -> int:
    """Applies `rules` to `g` until none matches; returns how many rewrites happened."""
    by_op: dict[str, list[Rule]] = {}
    for r in rules:
        for op in getattr(r, "ops", ("*",)):
            by_op.setdefault(op, []).append(r)
    count = 0
    for _ in range(MAX_SWEEPS):
        changed = False
        for nid in g.topo_order():
            if nid not in g:
                continue  # erased earlier in this sweep
            node = g.node(nid)
            for r in by_op.get(node.op, []) + by_op.get("*", []):
                new = r(g, node, ctx)
                if new is None:
                    continue
                if new != nid:
                    g.replace_all_uses(nid, new)
                    erase_dead(g, nid)
                changed, count = True, count + 1
                break
        if not changed:
            return count
    raise PassError(f"rules did not reach a fixpoint in {MAX_SWEEPS} sweeps: "
                    f"{', '.join(getattr(r, '__name__', '?') for r in rules)}")


def erase_dead(g: Graph, nid: str) -> None:
    """Erases `nid` if nothing reads it, then whatever only it read."""
    stack = [nid]
    while stack:
        n = stack.pop()
        if n not in g or g.uses(n) or n in g.inputs:
            continue
        ins = set(g.input_ids(n))
        g.erase(n)
        stack.extend(ins)


def bodies(g: Graph):
    """`g` and every loop body inside it, innermost first (in the order the nodes were added)."""
    for nid in g.node_ids():
        body = g.node(nid).attrs.get("body")
        if isinstance(body, Graph):
            yield from bodies(body)
    yield g


class Pass:
    """A named graph-to-graph transformation: a list of rules by default, run on the graph and on
    every scan body inside it. Passes that are not rule lists override `run_on`."""

    name: str = ""
    rules: tuple = ()
    train_only: bool = False  # run only on graphs for training
    eval_only: bool = False  # run only on graphs for inference

    def applies(self, ctx: Context) -> bool:
        return not ((self.train_only and not ctx.train) or (self.eval_only and ctx.train))

    def run(self, g: Graph, ctx: Context) -> int:
        if not self.applies(ctx):
            return 0
        return sum(self.run_on(sub, ctx) for sub in list(bodies(g)))

    def run_on(self, g: Graph, ctx: Context) -> int:
        return rewrite(g, list(self.rules), ctx)


# ---------------------------------------------------------------------- helpers for rules
def add(g: Graph, op: str, inputs: list[str], attrs: dict | None = None, like: Node | None = None,
        path: tuple | None = None) -> Node:
    """A new node whose type is inferred by its OpDef from its inputs (as the builder does)."""
    attrs = dict(attrs or {})
    types = [g.node(i).type for i in inputs]
    t = OPS[op].infer(*types, **attrs)
    return g.add(op, inputs, attrs, t, like.span if like else None, path, like.label if like else None)


def const(g: Graph, value: float, dtype: str = "float32", like: Node | None = None) -> Node:
    return add(g, "const", [], {"value": value, "dtype": dtype}, like)


def param(g: Graph, path: tuple, like: Node | None = None) -> Node:
    """A node that reads one parameter leaf (`dense_0/kernel`) as a value."""
    spec = g.params[path]
    return g.add("param", [], {"shape": tuple(spec.shape), "init": spec.init, "init_name": spec.init_name,
                               "dtype": spec.dtype}, TensorType(tuple(spec.shape), spec.dtype),
                 like.span if like else None, path, path[-1])


def scalar(g: Graph, nid: str):
    """The number a `const` (or a uniform `fill`) node holds, else None."""
    n = g.node(nid)
    if n.op == "const" or n.op == "fill":
        return n.attrs["value"]
    return None


def users_of(g: Graph, nid: str) -> list[Node]:
    return [g.node(u) for u in g.users(nid)]
