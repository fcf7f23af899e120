"""Dead-code elimination and common-subexpression elimination.

The builder already hash-conses pure nodes as it builds; CSE runs again because other rewrites
create duplicates (two fusions reading the same kernel, a folded constant equal to another).
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..ops import OPS
from .rewrite import Context, Pass, erase_dead


class DeadCodeElimination(Pass):
    """Erases every node no output depends on (inputs stay: their order is the calling convention)."""

    name = "dce"

    def run_on(self, g: Graph, ctx: Context) -> int:
        live = g.ancestors(list(g.outputs.values())) | set(g.inputs)
        dead = [n for n in g.node_ids() if n not in live]
        for n in dead:
            g.erase(n)
        return len(dead)


def freeze(v):
    """A hashable stand-in for an attribute value; TypeError when there is none (a sub-graph)."""
    if isinstance(v, Graph):
        raise TypeError("graphs are compared by identity")
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return (type(v).__name__,) + tuple(freeze(x) for x in v)
    if isinstance(v, float):
        return ("float", repr(v))  # keeps 0.0 apart from -0.0, and nan equal to itself
    hash(v)
    return (type(v).__name__, v)


def cse_key(g: Graph, nid: str):
    """What makes two nodes compute the same value: op, inputs in order, attributes, and for ops
    with parameters or randomness the scope they read (None when the node must stay unique)."""
    n = g.node(nid)
    opdef = OPS.get(n.op)
    if opdef is None or not opdef.mergeable:  # an input (distinct by position), a draw, a loop
        return None
    scoped = opdef.has_params or opdef.needs_rng
    try:
        return (n.op, tuple(g.input_ids(nid)), freeze(n.attrs), n.path if scoped else None)
    except TypeError:
        return None


class CommonSubexpressionElimination(Pass):
    """Merges nodes with the same op, inputs and attributes into the first one (in topological
    order, so a node's inputs are already merged when it is looked at)."""

    name = "cse"

    def run_on(self, g: Graph, ctx: Context) -> int:
        seen: dict = {}
        merged = 0
        for nid in g.topo_order():
            if nid not in g:
                continue
            key = cse_key(g, nid)
            if key is None:
                continue
            first = seen.setdefault(key, nid)
            if first != nid:
                g.replace_all_uses(nid, first)
                erase_dead(g, nid)
                merged += 1
        return merged
