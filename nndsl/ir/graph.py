"""The graph IR: the only module that imports networkx.

Nodes are ops with attributes, a type and a span; edges carry the input port. Parameters and state
live outside the graph: a node names its parameter scope (`path`), the way jaxprs name consts.
Recurrence is a `scan` node whose `attrs["body"]` is a sub-Graph, so the graph stays a DAG.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import zlib

import networkx as nx

from ..source import Span
from .types import TensorType


def stable_hash(path: tuple) -> int:
    """A name's own random stream: init keys and dropout keys are folded with this, so adding a
    layer never changes the numbers another layer draws."""
    return zlib.crc32("/".join(path).encode()) & 0x7FFFFFFF


@dataclass
class ParamSpec:
    """A parameter or state leaf: shape, dtype and how to initialize it."""

    shape: tuple
    init: Any  # (key, shape, dtype) -> array
    dtype: str = "float32"
    init_name: str = ""

    def size(self) -> int | None:
        n = 1
        for d in self.shape:
            if not isinstance(d, int):
                return None
            n *= d
        return n


@dataclass
class Node:
    id: str
    op: str
    attrs: dict
    type: Any  # TensorType | tuple[TensorType, ...]
    span: Span | None = None
    path: tuple | None = None  # parameter/state scope, e.g. ("net", "dense_0")
    label: str | None = None  # user-facing layer name for diagnostics and summaries


@dataclass
class Graph:
    """A dataflow graph plus the parameters and state its nodes refer to."""

    nx: nx.MultiDiGraph = field(default_factory=nx.MultiDiGraph)
    params: dict = field(default_factory=dict)  # path tuple -> ParamSpec
    state: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # output name -> node id
    inputs: list = field(default_factory=list)  # input node ids, in declaration order
    counter: list = field(default_factory=lambda: [0])  # shared with sub-graphs: ids stay unique
    memo: dict = field(default_factory=dict, repr=False)  # hash-consing of pure nodes (see Builder)
    names: dict = field(default_factory=dict, repr=False)  # node id -> the equation name bound to it (`z`)

    def add(self, op: str, inputs: list[str], attrs: dict | None = None, type=None,
            span: Span | None = None, path: tuple | None = None, label: str | None = None) -> Node:
        nid = f"%{self.counter[0]}"
        self.counter[0] += 1
        node = Node(nid, op, dict(attrs or {}), type, span, path, label)
        self.nx.add_node(nid, node=node, order=self.counter[0])
        for port, src in enumerate(inputs):
            self.nx.add_edge(src, nid, port=port)
        return node

    def node(self, nid: str) -> Node:
        return self.nx.nodes[nid]["node"]

    def input_ids(self, nid: str) -> list[str]:
        edges = sorted(self.nx.in_edges(nid, data=True), key=lambda e: e[2]["port"])
        return [src for src, _, _ in edges]

    def users(self, nid: str) -> list[str]:
        return sorted({dst for _, dst in self.nx.out_edges(nid)}, key=self._order)

    def _order(self, nid: str) -> int:
        return self.nx.nodes[nid]["order"]

    def topo_order(self) -> list[str]:
        return list(nx.lexicographical_topological_sort(self.nx, key=self._order))

    def nodes(self) -> Iterator[Node]:
        for nid in self.topo_order():
            yield self.node(nid)

    def ancestors(self, targets) -> set[str]:
        seen = set(targets)
        for t in targets:
            seen |= nx.ancestors(self.nx, t)
        return seen

    def descendants(self, nid: str) -> set[str]:
        return nx.descendants(self.nx, nid)

    def replace_all_uses(self, old: str, new: str) -> None:
        for _, dst, data in list(self.nx.out_edges(old, data=True)):
            self.nx.add_edge(new, dst, port=data["port"])
        self.nx.remove_edges_from(list(self.nx.out_edges(old)))
        for k, v in self.outputs.items():
            if v == old:
                self.outputs[k] = new

    def erase(self, nid: str) -> None:
        self.nx.remove_node(nid)

    # ------------------------------------------------------------------ rewriting (used by passes)
    def single_input(self, nid: str) -> str | None:
        """The one input of `nid`, or None when it has none or several."""
        ins = self.input_ids(nid)
        return ins[0] if len(ins) == 1 else None

    def is_acyclic(self) -> bool:
        return nx.is_directed_acyclic_graph(self.nx)

    def uses(self, nid: str) -> int:
        """How many input slots (and graph outputs) read `nid`: `x + x` uses x twice."""
        return self.nx.out_degree(nid) + sum(1 for v in self.outputs.values() if v == nid)

    def set_inputs(self, nid: str, inputs: list[str]) -> None:
        """Rewires `nid` to read `inputs`, in port order."""
        self.nx.remove_edges_from(list(self.nx.in_edges(nid, keys=True)))
        for port, src in enumerate(inputs):
            self.nx.add_edge(src, nid, port=port)

    def replace(self, old: str, op: str, attrs: dict, inputs: list[str], type=None,
                path: tuple | None = None) -> Node:
        """A new node standing for `old`: it takes over every use of `old`, which is erased.
        Keeps `old`'s span and label, so diagnostics still point at the user's text."""
        o = self.node(old)
        new = self.add(op, inputs, attrs, o.type if type is None else type, o.span, path, o.label)
        self.replace_all_uses(old, new.id)
        self.erase(old)
        return new

    def __deepcopy__(self, memo: dict) -> "Graph":
        """Copies what passes mutate (nodes, edges, attrs, outputs, sub-graphs); shares what they never
        do (types, which are frozen, spans, and the parameter and state specs, whose keys passes keep)."""
        import copy
        if id(self) in memo:
            return memo[id(self)]
        counter = memo.setdefault(id(self.counter), [self.counter[0]])  # shared with its sub-graphs
        g = Graph(params=self.params, state=self.state, outputs=dict(self.outputs), inputs=list(self.inputs),
                  counter=counter, memo=dict(self.memo), names=dict(self.names))
        memo[id(self)] = g

        def copy_node(n: Node) -> Node:
            attrs = {k: (copy.deepcopy(v, memo) if isinstance(v, Graph) else v) for k, v in n.attrs.items()}
            return Node(n.id, n.op, attrs, n.type, n.span, n.path, n.label)
        g.nx.add_nodes_from((nid, {"node": copy_node(d["node"]), "order": d["order"]})
                            for nid, d in self.nx.nodes(data=True))
        g.nx.add_edges_from(self.nx.edges(data=True))
        return g

    def __len__(self) -> int:
        return self.nx.number_of_nodes()
