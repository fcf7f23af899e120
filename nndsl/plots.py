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
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise NndslError(f"cannot read history {path}: {e}", code="E802") from None


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
