"""Finds the grammar and the standard library, installed (inside the wheel) or from a checkout.

The wheel maps `grammar/` and `stdlib/` into `nndsl/_grammar` and `nndsl/_stdlib`; a checkout or an
editable install reads them from the repository root beside the package.
"""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _first_dir(*candidates: Path) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(f"nndsl installation is incomplete: none of {[str(c) for c in candidates]}")


def grammar_path() -> Path:
    return _first_dir(_PKG / "_grammar", _PKG.parent / "grammar") / "nndsl.lark"


def stdlib_dir() -> Path:
    return _first_dir(_PKG / "_stdlib", _PKG.parent / "stdlib")
