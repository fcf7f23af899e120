"""Graph optimization passes. `optimize` is the one entry point the rest of nndsl calls.

Passes are graph-to-graph rewrites on a deep copy of the built graph, run between building and
lowering; `PASSES` maps their CLI names to their classes and `LEVELS` says which run at -O0/1/2.
"""
from __future__ import annotations

from .manager import DEFAULT_LEVEL, LEVELS, O2_EXTRA, PASSES, PassManager, level_passes, optimize, pipeline
from .rewrite import Context, Pass, PassError, rewrite, rule
from .verify import VerifyError, verify

__all__ = [
           "DEFAULT_LEVEL",
           "LEVELS",
           "O2_EXTRA",
           "PASSES",
           "Context",
           "Pass",
           "PassError",
           "PassManager",
           "VerifyError",
           "level_passes",
           "optimize",
           "pipeline",
           "rewrite",
           "rule",
           "verify",
]
