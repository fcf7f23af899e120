"""Deterministic text dump of a graph: the golden format of `nndsl compile --emit graph`.

One line per node, `%3 = dense[bias=true, units=64](%2) : f32[batch, 64]  @dense_0`, attributes
sorted, nodes in lexicographic topological order; a loop's body (an attribute holding a graph) is
indented beneath its node.
"""
from __future__ import annotations

from .graph import Graph
from .types import TensorType

HIDDEN = {"init", "body", "out_types"}


def _val(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if v is None:
        return "none"
    return str(v)


def _type(t) -> str:
    if isinstance(t, tuple):
        return "(" + ", ".join(_type(x) for x in t) + ")"
    return str(t) if isinstance(t, TensorType) else "?"


def print_graph(g: Graph, indent: str = "", spans: bool = False) -> str:
    lines = []
    if not indent:
        for path, spec in sorted(g.params.items()):
            lines.append(f"param {'.'.join(path)} : f32[{', '.join(map(str, spec.shape))}] ~ {spec.init_name}")
        for path, spec in sorted(g.state.items()):
            lines.append(f"state {'.'.join(path)} : f32[{', '.join(map(str, spec.shape))}] = {spec.init_name}")
    for n in g.nodes():
        attrs = {k: v for k, v in n.attrs.items() if k not in HIDDEN}
        a = "[" + ", ".join(f"{k}={_val(attrs[k])}" for k in sorted(attrs)) + "]" if attrs else ""
        ins = ", ".join(g.input_ids(n.id))
        line = f"{indent}{n.id} = {n.op}{a}({ins}) : {_type(n.type)}"
        if n.path:
            line += f"  @{'.'.join(n.path)}"
        if spans and n.span:
            line += f"  # {n.span.line}:{n.span.col}"
        lines.append(line)
        for k in sorted(n.attrs):
            if isinstance(n.attrs[k], Graph):
                lines.append(print_graph(n.attrs[k], indent + "    ", spans))
    for name, nid in g.outputs.items():
        lines.append(f"{indent}output {name} = {nid}")
    return "\n".join(lines)
