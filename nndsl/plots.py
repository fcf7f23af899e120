"""Curves from training histories (matplotlib, the `plot` extra); without it, a clear message."""
from __future__ import annotations

import json
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


def plot_histories(runs: dict, keys: list[str] | None, out: str | Path, title: str = "",
                   log: bool = False) -> Path:
    """One line per (run, key); x is the logging step (epochs, or `eval_every` iterations)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, hist in runs.items():
        for k in keys or sorted(hist):
            if k in hist:
                ax.plot(range(1, len(hist[k]) + 1), hist[k], label=f"{label} {k}" if len(runs) > 1 or not keys else label)
    ax.set_xlabel("evaluation")
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


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


def plot_layers(rows: list[dict], out: str | Path, title: str = "") -> Path:
    """Parameters and FLOPs per layer, side by side, log scale (a ResNet spans six decades)."""
    plt = _plt()
    rows = [r for r in rows if r["params"] or r["flops"]]
    names = [r["layer"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, max(3, 0.22 * len(rows) + 1)), sharey=True)
    for ax, key, label in ((axes[0], "params", "parameters"), (axes[1], "flops", "FLOPs")):
        ax.barh(range(len(rows)), [max(r[key], 1) for r in rows], color="#4c72b0")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(range(len(rows)), names, fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
