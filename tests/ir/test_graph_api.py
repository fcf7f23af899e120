"""The graph's own API: operands keep their order through every rewrite, a topological order puts
operands first, and nothing outside nndsl/ir/graph.py reaches into how a graph is stored."""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest

import nndsl
from nndsl.ir.graph import Graph
from nndsl.ir.types import TensorType

T = TensorType((2, 3))
PACKAGE = Path(nndsl.__file__).parent
STORAGE = {"nx", "_nodes", "_users", "_rank", "_order"}  # attributes only graph.py may touch


def inputs_xy():
    g = Graph()
    x, y = g.add("input", [], {"name": "x"}, T).id, g.add("input", [], {"name": "y"}, T).id
    g.inputs += [x, y]
    return g, x, y


def test_replacing_uses_keeps_each_operand_in_its_port():
    g, x, y = inputs_xy()
    d = g.add("sub", [x, y], {}, T).id
    twice = g.add("add", [x, x], {}, T).id
    g.outputs["x"] = x
    z = g.add("relu", [y], {}, T).id
    g.replace_all_uses(x, z)
    assert g.input_ids(d) == [z, y] and g.input_ids(twice) == [z, z]
    assert g.outputs["x"] == z and g.uses(z) == 4 and g.users(z) == [d, twice]
    assert g.uses(x) == 0 and g.users(x) == []


def test_set_inputs_and_erase_keep_the_readers_index_in_step():
    g, x, y = inputs_xy()
    d = g.add("sub", [x, y], {}, T).id
    g.set_inputs(d, [y, x])
    assert g.input_ids(d) == [y, x] and g.users(x) == [d] and g.users(y) == [d]
    g.set_inputs(d, [y, y])
    assert g.users(x) == [] and g.uses(y) == 2
    g.erase(d)
    assert d not in g and g.users(y) == [] and len(g) == 2
    with pytest.raises(KeyError, match="not a node"):
        g.add("relu", ["%99"], {}, T)
    assert len(g) == 2 and g.counter == [3]  # a refused node leaves nothing behind


def test_a_copy_keeps_operand_order_and_rewires_on_its_own():
    g, x, y = inputs_xy()
    d = g.add("sub", [y, x], {}, T).id
    g.outputs["d"] = d
    c = copy.deepcopy(g)
    assert c.input_ids(d) == [y, x] and c.users(x) == [d] and c.node_ids() == g.node_ids()
    c.replace_all_uses(y, x)
    assert c.input_ids(d) == [x, x] and g.input_ids(d) == [y, x] and g.users(y) == [d]
    assert c.node(d) is not g.node(d)


def test_topological_order_puts_operands_first_and_otherwise_follows_creation():
    g, x, y = inputs_xy()
    a = g.add("relu", [x], {}, T).id
    b = g.add("tanh", [y], {}, T).id
    late = g.add("exp", [b], {}, T).id
    g.set_inputs(a, [late])  # a now reads a node made after it
    order = g.topo_order()
    assert order == [x, y, b, late, a]
    pos = {nid: i for i, nid in enumerate(order)}
    assert all(pos[src] < pos[nid] for nid in order for src in g.input_ids(nid))
    assert [n.id for n in g.nodes()] == order
    assert g.ancestors([a]) == {a, late, b, y} and g.descendants(y) == {b, late, a}


def test_the_networkx_view_has_one_edge_per_port_and_agrees_on_the_order():
    """networkx is the independent reference: its lexicographic topological sort keyed by creation
    order must give the compiler's own order, on a graph rewired out of creation order."""
    nx = pytest.importorskip("networkx")
    g, x, y = inputs_xy()
    a = g.add("relu", [x], {}, T).id
    b = g.add("tanh", [y], {}, T).id
    late = g.add("add", [b, b], {}, T).id
    g.set_inputs(a, [late])
    view = g.to_networkx()
    assert sorted((s, d, p) for s, d, p in view.edges(data="port")) == sorted(
        (src, nid, port) for nid in g.node_ids() for port, src in enumerate(g.input_ids(nid)))
    assert view.number_of_edges(b, late) == 2 and view.nodes[a]["op"] == "relu"
    assert list(nx.lexicographical_topological_sort(view, key=g.creation_index)) == g.topo_order()


def test_a_cycle_has_no_topological_order():
    g, x, _ = inputs_xy()
    a = g.add("relu", [x], {}, T).id
    b = g.add("tanh", [a], {}, T).id
    assert g.is_acyclic()
    g.set_inputs(a, [b])
    assert not g.is_acyclic()
    with pytest.raises(ValueError, match="cycle"):
        g.topo_order()


def _storage_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "networkx"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "networkx":
            found.append(node.module)
        elif isinstance(node, ast.Attribute) and node.attr in STORAGE:
            found.append(f".{node.attr} (line {node.lineno})")
    return found


def test_only_the_graph_module_knows_how_a_graph_is_stored():
    modules = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "ir" / "graph.py"]
    assert len(modules) > 20
    leaks = {str(p.relative_to(PACKAGE)): u for p in modules if (u := _storage_uses(p))}
    assert not leaks, f"modules reaching into the graph's storage (use Graph's methods): {leaks}"
