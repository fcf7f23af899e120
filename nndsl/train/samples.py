"""`sample EXPR every N`: pictures of what a model makes while it trains.

Images ([n, h, w, c]) become a grid PNG (scaled up to be readable; one row per class when a
conditional generator was asked for classes), 2-D points ([n, 2]) a scatter plot over the real data;
anything else is saved as .npy. Without matplotlib, arrays are saved as .npy and a note says why.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def image_grid(x: np.ndarray, cols: int = 8) -> np.ndarray:
    """[n, h, w, c] in any range -> one [rows*h, cols*w, c] image in [0, 1]."""
    x = np.asarray(x, np.float32)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo + 1e-8)
    n, h, w, c = x.shape
    cols = min(cols, n)
    rows = -(-n // cols)
    grid = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1, c), np.float32)
    for i in range(n):
        r, q = divmod(i, cols)
        grid[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = x[i]
    return grid


def readable_grid(x: np.ndarray, labels: np.ndarray | None = None, cols: int = 8,
                  min_size: int = 512) -> np.ndarray:
    """A grid a person can read: with `labels` (a conditional generator's classes) one row per
    class, else up to 64 images in rows of `cols`; each image scaled up by a whole factor
    (nearest neighbour, so pixels stay sharp) until the grid is at least `min_size` pixels wide or
    tall. 64 samples of 16x16 make a 135-pixel grid otherwise."""
    x = np.asarray(x, np.float32)
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo + 1e-8)
    n, h, w, c = x.shape
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)[:n]
        classes = sorted(set(labels.tolist()))
        rows_of = [np.flatnonzero(labels == k)[:cols * 2] for k in classes]
        ncols = max(1, max(len(r) for r in rows_of))
        cells = [[x[i] for i in r] for r in rows_of]
    else:
        x = x[:64]
        ncols = min(cols, len(x))
        cells = [list(x[r:r + ncols]) for r in range(0, len(x), ncols)]
    nrows = len(cells)
    scale = max(1, -(-min_size // max(nrows * h, ncols * w)))
    gap = 1 if scale == 1 else 2
    hs, ws = h * scale, w * scale
    grid = np.ones((nrows * (hs + gap) - gap, ncols * (ws + gap) - gap, c), np.float32)
    for r, row in enumerate(cells):
        for q, img in enumerate(row):
            big = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
            grid[r * (hs + gap):r * (hs + gap) + hs, q * (ws + gap):q * (ws + gap) + ws] = big
    return grid


def write(out: Path, name: str, it: int, values: np.ndarray, real: np.ndarray | None = None,
          labels: np.ndarray | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    values = np.asarray(values)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed: samples are saved as .npy (pip install 'nndsl[plot]')",
                      stacklevel=2)
        plt = None
    path = out / f"{name}_{it:06d}"
    if plt is not None and values.ndim == 4 and values.shape[-1] in (1, 3):
        grid = readable_grid(values, labels)
        plt.imsave(path.with_suffix(".png"), grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray")
        return path.with_suffix(".png")
    if plt is not None and values.ndim == 2 and values.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(4, 4))
        if real is not None and real.ndim == 2 and real.shape[1] == 2:
            ax.scatter(real[:, 0], real[:, 1], s=3, c="#bbbbbb", label="data")
        ax.scatter(values[:, 0], values[:, 1], s=3, c="#d62728", label="samples")
        ax.set_title(f"{name}, iteration {it}")
        ax.set_aspect("equal")
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path.with_suffix(".png"), dpi=100)
        plt.close(fig)
        return path.with_suffix(".png")
    np.save(path.with_suffix(".npy"), values)
    return path.with_suffix(".npy")
