"""Static cost of a graph: FLOPs from each op's rule, parameter and activation bytes."""
from __future__ import annotations


def node_flops(g, node) -> int:
    from ..ops import OPS
    types = [g.node(i).type for i in g.input_ids(node.id)]
    try:
        return int(OPS[node.op].flops(node.type, *types, **node.attrs) or 0)
    except Exception:  # a cost estimate never stops compilation
        return 0


def graph_flops(g) -> int:
    return sum(node_flops(g, n) for n in g.nodes())
