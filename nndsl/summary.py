"""`nndsl summary`: one row per layer with output shape, parameters and FLOPs, then totals."""
from __future__ import annotations

from .ir.cost import node_flops
from .ir.types import TensorType


def rows(model, batch: int = 1) -> list[dict]:
    """Per-layer rows at a concrete batch size (symbolic dims other than batch stay symbolic)."""
    g = concrete_graph(model, batch)
    by_layer: dict = {}
    order = []
    for n in g.nodes():
        if n.op in ("input", "const", "get_item"):
            continue
        key = ".".join(n.path) if n.path else n.id
        if key not in by_layer:
            by_layer[key] = {"layer": key, "op": n.op, "shape": n.type, "params": 0, "flops": 0}
            order.append(key)
        by_layer[key]["shape"] = n.type
        by_layer[key]["flops"] += node_flops(g, n)
    for path, spec in g.params.items():
        for k in (".".join(path[:i]) for i in range(len(path), 0, -1)):
            if k in by_layer:
                by_layer[k]["params"] += spec.size() or 0
                break
    return [by_layer[k] for k in order]


def concrete_graph(model, batch: int):
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        from .errors import NndslError
        raise NndslError(f"the batch size must be a positive integer, got {batch}", code="E360")
    g = model.graph()
    types = []
    for i in g.inputs:
        t = g.node(i).type
        types.append(TensorType(tuple(batch if d == "batch" else d for d in t.shape), t.dtype))
    return model.graph(tuple(types))


def _fmt_shape(t) -> str:
    if isinstance(t, tuple):
        t = t[0]
    return "[" + ", ".join(str(d) for d in t.shape) + "]" if isinstance(t, TensorType) else "?"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def summarize(model, batch: int = 1, console=None) -> dict:
    from rich.console import Console
    from rich.table import Table
    from rich.markup import escape
    from .limits import MAX_EXTENT
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_EXTENT:
        from .errors import LimitError
        raise LimitError(f"the batch size must be from 1 to {MAX_EXTENT:,}", code="E401")
    rs = rows(model, batch)
    g = concrete_graph(model, batch)
    total_params = sum(s.size() or 0 for s in g.params.values())
    state = sum(s.size() or 0 for s in g.state.values())
    act = 0
    flops = 0
    for r in rs:
        t = r["shape"][0] if isinstance(r["shape"], tuple) else r["shape"]
        act += (t.size() or 0) * 4
        flops += r["flops"]
    table = Table(title=f"{model.name}")
    for col in ("layer", "op", "output shape", "params", f"FLOPs (batch {batch})"):
        table.add_column(col, justify="left" if col in ("layer", "op", "output shape") else "right")
    for r in rs:
        table.add_row(r["layer"], r["op"], escape(_fmt_shape(r["shape"])), f"{r['params']:,}", f"{r['flops']:,}")
    console = console or Console()
    console.print(table)
    console.print(f"total parameters: {total_params:,} ({_bytes(total_params * 4)} as f32)"
                  + (f", state: {state:,}" if state else ""))
    console.print(f"FLOPs at batch {batch}: {flops:,}; activations at batch {batch}: {_bytes(act)}")
    return {"params": total_params, "flops": flops, "activation_bytes": act, "rows": rs}
