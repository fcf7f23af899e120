"""`nndsl summary`: one row per layer with output shape, parameters and FLOPs, then totals."""
from __future__ import annotations

from .ir.types import TensorType
from .ops.cost import node_flops


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
            by_layer[key] = {"layer": key, "op": n.op, "shape": n.type, "params": 0, "flops": 0,
                             "path": tuple(n.path) if n.path else None}
            order.append(key)
        by_layer[key]["shape"] = n.type
        by_layer[key]["flops"] += node_flops(g, n)
    for path, spec in g.params.items():
        for k in (".".join(path[:i]) for i in range(len(path), 0, -1)):
            if k in by_layer:
                by_layer[k]["params"] += spec.size() or 0
                break
    return [by_layer[k] for k in order]


def _block_name(part: str) -> str:
    """`Bottleneck_12` -> `Bottleneck`: a sub-model instance's path element names its definition."""
    import re
    return re.sub(r"_\d+$", "", str(part))


def group_rows(rs: list[dict], depth: int | None) -> list[dict]:
    """Rows folded to `depth` levels of sub-models (as torchinfo's depth does), then runs of
    identical consecutive rows (`Bottleneck(256) * 35`) folded into one with a count: ResNet-152
    is 521 rows in full and 18 at depth 1. An op outside any layer (the `+` of a skip
    connection) belongs to the block around it when the rows before and after it agree."""
    if depth is None:
        return rs
    grouped: list[dict] = []
    for i, r in enumerate(rs):
        path = r.get("path")
        if path is None:
            prev = grouped[-1]["key"] if grouped else None
            nxt = next((tuple(x["path"][:depth]) for x in rs[i + 1:] if x.get("path")), None)
            key = prev if prev is not None and prev == nxt and len(prev) == depth else None
        else:
            key = tuple(path[:depth])
        if key is not None and grouped and grouped[-1]["key"] == key:
            g = grouped[-1]
            g["params"] += r["params"]
            g["flops"] += r["flops"]
            g["shape"] = r["shape"]
            continue
        block = path is not None and len(path) > depth
        grouped.append({**r, "key": key, "layer": ".".join(map(str, key)) if key else r["layer"],
                        "op": _block_name(key[-1]) if block else r["op"], "count": 1})
    out: list[dict] = []
    for r in grouped:
        last = out[-1] if out else None
        if last is not None and last["key"] and r["key"] and last["op"] == r["op"] \
                and last["params"] == r["params"] * last["count"] and last["flops"] == r["flops"] * last["count"] \
                and _fmt_shape(last["shape"]) == _fmt_shape(r["shape"]):
            last["count"] += 1
            last["params"] += r["params"]
            last["flops"] += r["flops"]
            last["last"] = r["layer"]
            continue
        out.append(dict(r))
    for r in out:
        if r["count"] > 1:
            first, last = r["layer"], r["last"]
            if _block_name(first) != first and _block_name(first) == _block_name(last) and "." not in first:
                last = last[len(_block_name(last)) + 1:]  # Bottleneck_12..46
            r["layer"] = f"{first}..{last} (×{r['count']})"
    return out


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


def summarize(model, batch: int = 1, console=None, depth: int | None = None) -> dict:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

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
    table = Table(title=f"{model.name}" + (f" (depth {depth})" if depth is not None else ""))
    for col in ("layer", "op", "output shape", "params", f"FLOPs (batch {batch})"):
        # long layer names wrap rather than end in `…` (`Bottleneck_0.…` named no layer)
        table.add_column(col, justify="left" if col in ("layer", "op", "output shape") else "right",
                         overflow="fold", no_wrap=col != "layer" and col != "op")
    rs = group_rows(rs, depth)
    for r in rs:
        table.add_row(r["layer"], r["op"], escape(_fmt_shape(r["shape"])), f"{r['params']:,}", f"{r['flops']:,}")
    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in __import__("os").environ:
            console.width = 160  # a file or pipe has no width to fit: layer names stay whole
    console.print(table)
    console.print(f"total parameters: {total_params:,} ({_bytes(total_params * 4)} as f32)"
                  + (f", state: {state:,}" if state else ""))
    console.print(f"FLOPs at batch {batch}: {flops:,}; activations at batch {batch}: {_bytes(act)}")
    return {"params": total_params, "flops": flops, "activation_bytes": act, "rows": rs}
