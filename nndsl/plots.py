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
