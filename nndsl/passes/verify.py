"""IR invariants, checked between passes (xdsl verifies after every pass by default).

A graph is well formed when it is a DAG; every node has an op nndsl knows and a type; each node's
inputs are nodes of the graph, as many as its OpDef wants; re-inferring a node's type from its
inputs gives the type it carries; every parameter or state leaf a node reads is declared; inputs and
outputs name existing nodes; and the bodies of loops (`OpDef.bodies`, checked against their node by
`OpDef.check_bodies`) are well formed in the same way. With `allow_dead=False`,
every node must also feed an output (what dead-code elimination guarantees).
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..ir.types import TensorType
from ..ops import OPS


class VerifyError(Exception):
    pass


def _is_type(t) -> bool:
    if isinstance(t, tuple):
        return all(isinstance(x, TensorType) for x in t)
    return isinstance(t, TensorType)


def verify(g: Graph, *, allow_dead: bool = True, where: str = "graph") -> None:
    """Raises VerifyError naming the first broken invariant."""
    def fail(msg):
        raise VerifyError(f"{where}: {msg}")

    if not g.is_acyclic():
        fail("the graph has a cycle")
    for i in g.inputs:
        if i not in g:
            fail(f"input {i} is not a node")
        if g.node(i).op != "input" or g.input_ids(i):
            fail(f"input {i} is a {g.node(i).op} with inputs")
    for name, nid in g.outputs.items():
        if nid not in g:
            fail(f"output `{name}` names {nid}, which is not a node")
    for nid in g.node_ids():
        _verify_node(g, nid, fail, where)
    if not allow_dead:
        live = g.ancestors(list(g.outputs.values())) | set(g.inputs)
        extra = [n for n in g.node_ids() if n not in live]
        if extra:
            fail(f"dead nodes {', '.join(extra[:5])} (nothing reads them)")


def _verify_node(g: Graph, nid: str, fail, where: str) -> None:
    n = g.node(nid)
    if n.id != nid:
        fail(f"node record {n.id} is stored under {nid}")
    if not _is_type(n.type):
        fail(f"{nid} ({n.op}) has no type")
    gone = [src for src in n.inputs if src not in g]
    if gone:
        fail(f"{nid} ({n.op}) reads {', '.join(gone)}, which is not a node (erased while still read?)")
    if n.op == "input":
        if n.inputs:
            fail(f"input {nid} has inputs")
        if nid not in g.inputs and not n.attrs.get("hoisted"):
            fail(f"input node {nid} is not one of the graph's inputs")
        return
    opdef = OPS.get(n.op)
    if opdef is None:
        fail(f"{nid} has unknown op `{n.op}`")
    ins = g.input_ids(nid)
    if opdef.variadic and not ins:
        fail(f"{nid} ({n.op}) has no inputs")
    if not opdef.variadic and len(ins) != len(opdef.inputs):
        fail(f"{nid} ({n.op}) has {len(ins)} inputs, it takes {len(opdef.inputs)}")
    types = [g.node(i).type for i in ins]
    _verify_type(n, opdef, types, fail)
    problem = opdef.check_bodies(n, types)
    if problem:
        fail(problem)
    for body in opdef.bodies(n).values():
        verify(body, where=f"{where} > {n.op} {nid}")
    if n.path is not None and opdef.has_params:
        for leaf in list(opdef.params(*types, **n.attrs)):
            key = n.path + (leaf,) if leaf else n.path
            if key not in g.params:
                fail(f"{nid} ({n.op}) reads parameter {'/'.join(key)}, which is not declared")
        for leaf in list(opdef.state(*types, **n.attrs)):
            key = n.path + (leaf,) if leaf else n.path
            if key not in g.state:
                fail(f"{nid} ({n.op}) reads state {'/'.join(key)}, which is not declared")
    for _, path in n.attrs.get("reads", ()):  # a fused node reading another layer's leaves
        if not any(k[:len(path)] == path for k in list(g.params) + list(g.state)):
            fail(f"{nid} ({n.op}) reads {'/'.join(path)}, which declares no parameter or state")


def _verify_type(n, opdef, types, fail) -> None:
    try:
        want = opdef.infer(*types, **n.attrs)
    except Exception as e:  # noqa: BLE001  (any failure to re-infer is the finding)
        fail(f"{n.id} ({n.op}) no longer type-checks: {e}")
    if want != n.type:
        fail(f"{n.id} ({n.op}) has type {_fmt(n.type)} but its inputs give {_fmt(want)}")


def _fmt(t) -> str:
    if isinstance(t, tuple):
        return "(" + ", ".join(map(str, t)) + ")"
    return str(t)
