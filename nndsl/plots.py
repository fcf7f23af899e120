"""Curves from training histories (matplotlib, the `plot` extra); without it, a clear message."""
from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import NndslError


def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NndslError("plotting needs matplotlib: pip install 'nndsl[plot]'", code="E801") from None
    return plt


PANELS = ("losses", "metrics", "gradient norms")


def panel_of(key: str, losses: set | None = None, metrics: set | None = None) -> str:
    """Which panel a series belongs to. The train block says which names are losses and which
    metrics; a history file alone does not, so there a name that is not a known metric counts as
    a loss (a `grad_norm_*` series is always a norm: it would flatten the losses on their axis)."""
    if key.startswith("grad_norm_"):
        return "gradient norms"
    base = key.removeprefix("val_")
    if losses is not None or metrics is not None:
        return "metrics" if base in (metrics or ()) else "losses"
    return "metrics" if any(w in base.lower() for w in ("acc", "precision", "recall", "f1", "auc")) \
        else "losses"


def _spans_decades(values: list) -> bool:
    """Log scale helps when every value is positive and they span more than two decades."""
    vals = [v for v in values if not math.isnan(v)]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 100


def plot_histories(runs: dict, keys: list[str] | None, out: str | Path, title: str = "",
                   log: bool = False, losses: set | None = None, metrics: set | None = None) -> Path:
    """One line per (run, key), in separate panels for losses, metrics and gradient norms; x is
    the logging step (epochs, or `eval_every` iterations). A loss or norm panel whose values span
    more than two decades gets a log axis; `log` forces one on every panel."""
    fig = histories_figure(runs, keys, title, log, losses, metrics)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


def histories_figure(runs: dict, keys: list[str] | None, title: str = "", log: bool = False,
                     losses: set | None = None, metrics: set | None = None):
    present = sorted({k for h in runs.values() for k in h})
    unknown = [k for k in keys or () if k not in present]
    if unknown:
        raise NndslError(f"no series named {', '.join(f'`{k}`' for k in unknown)} in "
                         f"{'these histories' if len(runs) > 1 else 'this history'}; there are: "
                         f"{', '.join(present) or 'none'}", code="E811")
    wanted = keys or present
    panels: dict = {}
    for k in wanted:
        panels.setdefault(panel_of(k, losses, metrics), []).append(k)
    order = [p for p in PANELS if p in panels]
    if not order:
        raise NndslError("the history holds no series to draw", code="E811")
    plt = _plt()
    fig, axes = plt.subplots(len(order), 1, figsize=(6.4, 3.2 * len(order) + 0.6), sharex=True, squeeze=False)
    for ax, panel in zip(axes[:, 0], order):
        drawn = []
        for label, hist in runs.items():
            for k in panels[panel]:
                if k in hist:
                    ax.plot(range(1, len(hist[k]) + 1), hist[k],
                            label=f"{label} {k}".strip() if len(runs) > 1 or not keys else label or k)
                    drawn += list(hist[k])
        if log or (panel != "metrics" and _spans_decades(drawn)):
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1, 0].set_xlabel("evaluation")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def load_history(path: str | Path) -> dict:
    """A history.json as `nndsl train` writes it: {series name: [number, ...]}. Anything else is
    refused here, with what is wrong, instead of a traceback from deep inside matplotlib."""
    from .files import read_bytes
    data = read_bytes(path, 256 * 2**20, "history", error=NndslError, name=str(path))
    try:
        hist = json.loads(data)
    except (ValueError, RecursionError):
        raise NndslError(f"cannot read history {path}: not JSON", code="E802") from None
    if not isinstance(hist, dict):
        raise NndslError(f"cannot read history {path}: expected an object of series, "
                         f"{{\"loss\": [numbers...]}}", code="E802")
    for k, v in hist.items():
        if not isinstance(v, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                              for x in v):
            name = "".join(c if c.isprintable() else "?" for c in str(k))[:80]
            raise NndslError(f"cannot read history {path}: series `{name}` is not a list of numbers",
                             code="E802")
    return hist


def plot_layers(rows: list[dict], out: str | Path, title: str = "", top: int = 40) -> Path:
    """Parameters and FLOPs per layer, side by side, log scale (a ResNet spans six decades).
    More than `top` rows would be a picture nobody can read (ResNet-152 made one 11,408 pixels
    tall): they are folded per block (`summary.group_rows` at depth 1) and, if still too many, the
    `top` largest by FLOPs are drawn, in model order. A zero has no place on a log axis, so a
    layer without parameters gets no bar there (not a bar of height 1)."""
    fig = layers_figure(rows, title, top)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    _plt().close(fig)
    return out


def layers_figure(rows: list[dict], title: str = "", top: int = 40):
    from .summary import group_rows
    plt = _plt()
    rows = [r for r in rows if r["params"] or r["flops"]]
    note = ""
    if len(rows) > top and any(r.get("path") for r in rows):
        rows = [r for r in group_rows(rows, 1) if r["params"] or r["flops"]]
        note = " (per block)"
    if len(rows) > top:
        keep = set(sorted(range(len(rows)), key=lambda i: -rows[i]["flops"])[:top])
        note = f" (the {top} of {len(rows)} rows with most FLOPs)"
        rows = [r for i, r in enumerate(rows) if i in keep]
    names = [r["layer"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, max(3, 0.22 * len(rows) + 1)), sharey=True)
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "flops", "FLOPs")):
        ys = [i for i, r in enumerate(rows) if r[key] > 0]
        ax.barh(ys, [rows[i][key] for i in ys], color="#4c72b0")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(rows)), names, fontsize=7)
    axes[0].set_ylim(len(rows) - 0.5, -0.5)
    fig.suptitle(title + note)
    fig.tight_layout()
    return fig
