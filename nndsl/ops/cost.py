"""Static cost of a graph: FLOPs from each op's rule. It lives with the ops, not the IR, because
the IR knows no op: the count is each OpDef's `flops`."""
from __future__ import annotations

from .registry import OPS


def node_flops(g, node) -> int:
    types = [g.node(i).type for i in g.input_ids(node.id)]
    try:
        return int(OPS[node.op].flops(node.type, *types, **node.attrs) or 0)
    except Exception:  # noqa: BLE001 - a cost estimate never stops compilation
        return 0


def graph_flops(g) -> int:
    return sum(node_flops(g, n) for n in g.nodes())
