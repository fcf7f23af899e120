"""Graph optimization passes. `optimize` is the one entry point the rest of nndsl calls.

(Placeholder: the pass manager and its passes are being written; for now the graph is returned
as built.)
"""
from __future__ import annotations

from ..ir.graph import Graph

PASSES: dict = {}
LEVELS: dict = {0: [], 1: [], 2: []}


def optimize(g: Graph, level: int = 1, passes: list[str] | None = None, train: bool = False) -> Graph:
    """Runs the passes of `level` (or exactly `passes`) on `g`; `train` says whether the graph will
    run in training mode (inference-only rewrites such as conv+batchnorm folding are skipped)."""
    return g
