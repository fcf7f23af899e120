"""The graph IR, and the only module that knows how a graph is stored.

Nodes are ops with attributes, a type, a span and their operands, in order (`Node.inputs`). The
graph keeps plain dicts: the nodes in creation order and, per node, who reads it; a dict per node
is all the passes need (operands, readers, a topological order), and it costs less than a
networkx graph with the port on every edge (`to_networkx` gives that view for analysis).
Parameters and state live outside the graph: a node names its parameter scope (`path`), the way
jaxprs name consts. Recurrence is a `scan` node whose
`attrs["body"]` is a sub-Graph, so the graph stays a DAG.
"""
from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..source import Span


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
    inputs: tuple = ()  # operand node ids in port order; change them through Graph.set_inputs


@dataclass(eq=False)
class Graph:
    """A dataflow graph plus the parameters and state its nodes refer to.

    A node's operands live on the node; the graph keeps the reverse index (`_users`: node -> reader
    -> how many of the reader's ports read it) in step, so every method here that rewires does so
    in time proportional to the nodes it touches."""

    params: dict = field(default_factory=dict)  # path tuple -> ParamSpec
    state: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)  # output name -> node id
    inputs: list = field(default_factory=list)  # input node ids, in declaration order
    counter: list = field(default_factory=lambda: [0])  # shared with sub-graphs: ids stay unique
    memo: dict = field(default_factory=dict, repr=False)  # hash-consing of pure nodes (see Builder)
    names: dict = field(default_factory=dict, repr=False)  # node id -> the equation name bound to it (`z`)
    _nodes: dict = field(default_factory=dict, init=False, repr=False)  # id -> Node, in creation order
    _rank: dict = field(default_factory=dict, init=False, repr=False)  # id -> creation_index
    _users: dict = field(default_factory=dict, init=False, repr=False)  # id -> {reader id: ports read}

    __hash__ = None  # mutable: never a dict key, and an attribute holding one is never hash-consed

    def add(self, op: str, inputs: list[str], attrs: dict | None = None, type=None,
            span: Span | None = None, path: tuple | None = None, label: str | None = None) -> Node:
        self._require(inputs, "a new node")
        nid = f"%{self.counter[0]}"
        self.counter[0] += 1
        node = Node(nid, op, dict(attrs or {}), type, span, path, label)
        self._nodes[nid] = node
        self._rank[nid] = self.counter[0]
        self._users[nid] = {}
        self.set_inputs(nid, inputs)
        return node

    def node(self, nid: str) -> Node:
        return self._nodes[nid]

    def __contains__(self, nid: str) -> bool:
        return nid in self._nodes

    def __len__(self) -> int:
        return len(self._nodes)

    def node_ids(self) -> list[str]:
        """Every node id in creation order (a copy: callers erase while they walk it)."""
        return list(self._nodes)

    def creation_index(self, nid: str) -> int:
        """When `nid` was made, on the counter shared with sub-graphs: the tie-break of
        `topo_order` and the key that keeps every listing here deterministic."""
        return self._rank[nid]

    def input_ids(self, nid: str) -> list[str]:
        """The operands of `nid` in port order (a new list the caller may edit)."""
        return list(self._nodes[nid].inputs)

    def users(self, nid: str) -> list[str]:
        """The nodes reading `nid`, each once, in creation order."""
        return sorted(self._users[nid], key=self._rank.__getitem__)

    def uses(self, nid: str) -> int:
        """How many input slots (and graph outputs) read `nid`: `x + x` uses x twice."""
        return sum(self._users[nid].values()) + sum(1 for v in self.outputs.values() if v == nid)

    def set_inputs(self, nid: str, inputs: list[str]) -> None:
        """Rewires `nid` to read `inputs`, in port order."""
        self._require(inputs, nid)
        node = self._nodes[nid]
        for src in set(node.inputs):
            readers = self._users.get(src)  # None for an operand already erased
            if readers is not None:
                readers.pop(nid, None)
        node.inputs = tuple(inputs)
        for src in node.inputs:
            readers = self._users[src]
            readers[nid] = readers.get(nid, 0) + 1

    def _require(self, inputs: list[str], reader: str) -> None:
        """Operands must already be nodes here: an id from another graph (a scan body's, say) fails
        now, where it is made, not at the next verify."""
        missing = [src for src in inputs if src not in self._nodes]
        if missing:
            raise KeyError(f"{reader} would read {', '.join(missing)}, which is not a node of this graph")

    def replace_all_uses(self, old: str, new: str) -> None:
        """Every port (and graph output) reading `old` reads `new` instead."""
        if old == new:
            return
        readers, self._users[old] = self._users[old], {}
        into = self._users[new]
        for r, ports in readers.items():
            node = self._nodes[r]
            node.inputs = tuple(new if src == old else src for src in node.inputs)
            into[r] = into.get(r, 0) + ports
        for k, v in self.outputs.items():
            if v == old:
                self.outputs[k] = new

    def erase(self, nid: str) -> None:
        """Removes `nid`. Nodes still reading it keep naming it, which `verify` reports: erase
        readers first, or together (dead-code elimination erases a whole dead set)."""
        node = self._nodes.pop(nid)
        del self._rank[nid], self._users[nid]
        for src in set(node.inputs):
            readers = self._users.get(src)
            if readers is not None:
                readers.pop(nid, None)

    def replace(self, old: str, op: str, attrs: dict, inputs: list[str], type=None,
                path: tuple | None = None) -> Node:
        """A new node standing for `old`: it takes over every use of `old`, which is erased.
        Keeps `old`'s span and label, so diagnostics still point at the user's text."""
        o = self.node(old)
        new = self.add(op, inputs, attrs, o.type if type is None else type, o.span, path, o.label)
        self.replace_all_uses(old, new.id)
        self.erase(old)
        return new

    # ------------------------------------------------------------------ traversals
    def _sorted_from_sources(self) -> list[str]:
        """Kahn's algorithm, always taking the earliest-made ready node: the order a program was
        written in, wherever the data flow allows it. Nodes on a cycle are left out."""
        waiting = dict.fromkeys(self._nodes, 0)
        for readers in self._users.values():
            for r, ports in readers.items():
                waiting[r] += ports
        rank = self._rank
        ready = [(rank[nid], nid) for nid, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            _, nid = heapq.heappop(ready)
            out.append(nid)
            for r, ports in self._users[nid].items():
                waiting[r] -= ports
                if waiting[r] == 0:
                    heapq.heappush(ready, (rank[r], r))
        return out

    def topo_order(self) -> list[str]:
        """Operands before readers; among nodes free to go, the earliest made first."""
        order = self._sorted_from_sources()
        if len(order) != len(self._nodes):
            raise ValueError("the graph has a cycle")
        return order

    def is_acyclic(self) -> bool:
        return len(self._sorted_from_sources()) == len(self._nodes)

    def nodes(self) -> Iterator[Node]:
        for nid in self.topo_order():
            yield self.node(nid)

    def ancestors(self, targets: Iterable[str]) -> set[str]:
        """`targets` and everything they read, directly or not."""
        seen = set(targets)
        stack = list(seen)
        while stack:
            for src in self._nodes[stack.pop()].inputs:
                if src not in seen and src in self._nodes:
                    seen.add(src)
                    stack.append(src)
        return seen

    def descendants(self, nid: str) -> set[str]:
        """Everything that reads `nid`, directly or not (not `nid` itself, unless on a cycle)."""
        seen: set = set()
        stack = [nid]
        while stack:
            for r in self._users[stack.pop()]:
                if r not in seen:
                    seen.add(r)
                    stack.append(r)
        return seen

    def to_networkx(self):
        """The graph as a networkx `MultiDiGraph` for analysis with networkx's algorithms: one node
        per op (its Node under `node`), one edge per operand carrying its `port`, so `x + x` is two
        edges. A copy: the compiler keeps its own storage, which is faster for its rewrites."""
        import networkx as nx
        out = nx.MultiDiGraph()
        for nid, n in self._nodes.items():
            out.add_node(nid, op=n.op, node=n)
        for nid, n in self._nodes.items():
            for port, src in enumerate(n.inputs):
                out.add_edge(src, nid, port=port)
        return out

    def __deepcopy__(self, memo: dict) -> Graph:
        """Copies what passes mutate (nodes, operands, attrs, outputs, sub-graphs); shares what they
        never do (types, which are frozen, spans, and the parameter and state specs, whose keys
        passes keep)."""
        import copy
        if id(self) in memo:
            return memo[id(self)]
        counter = memo.setdefault(id(self.counter), [self.counter[0]])  # shared with its sub-graphs
        g = Graph(params=self.params, state=self.state, outputs=dict(self.outputs), inputs=list(self.inputs),
                  counter=counter, memo=dict(self.memo), names=dict(self.names))
        memo[id(self)] = g

        def copy_node(n: Node) -> Node:
            attrs = {k: (copy.deepcopy(v, memo) if isinstance(v, Graph) else v) for k, v in n.attrs.items()}
            return Node(n.id, n.op, attrs, n.type, n.span, n.path, n.label, n.inputs)
        g._nodes = {nid: copy_node(n) for nid, n in self._nodes.items()}
        g._rank = dict(self._rank)
        g._users = {nid: dict(readers) for nid, readers in self._users.items()}
        return g
