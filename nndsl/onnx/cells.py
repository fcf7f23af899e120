"""Which stdlib cell a scan's body is, decided by wiring alone (no onnx import: the PyTorch weight
converter asks too). "Is" means the same ops in the same order with the same connections as the
stdlib cell built at a small size; a user's cell written the same way is the same computation."""
from __future__ import annotations

from functools import cache

from ..errors import NndslError

SIZE_ATTRS = {"units", "shape", "name"}


def signature(body) -> tuple:
    """The body's wiring without sizes or names: (op, attrs, input positions) per node, in
    order, then the outputs' positions."""
    order = body.topo_order()
    pos = {nid: i for i, nid in enumerate(order)}
    sig = []
    for nid in order:
        n = body.node(nid)
        attrs = tuple(sorted((k, repr(v)) for k, v in n.attrs.items() if k not in SIZE_ATTRS))
        sig.append((n.op, attrs, tuple(pos[i] for i in body.input_ids(nid))))
    return tuple(sig), tuple((k, pos[v]) for k, v in body.outputs.items())


@cache
def _reference(cell: str):
    from ..api import loads
    prog = loads(f"import cells\nmodel _R {{\n  input x: [batch, time, 3]\n  output y = x -> {cell}(2)\n}}\n")
    g = prog.model("_R").graph()
    (scan,) = [n for n in g.nodes() if n.op == "scan"]
    return signature(scan.attrs["body"])


def standard_cell(body) -> str | None:
    sig = signature(body)
    for cell in ("RNN", "LSTM", "GRU", "GRUResetAfter"):
        try:
            if _reference(cell) == sig:
                return cell
        except NndslError:  # a stdlib without that cell: nothing to match
            continue
    return None
