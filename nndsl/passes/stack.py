"""Scan over layers (placeholder while it is written)."""
from __future__ import annotations

from .rewrite import Pass


class ScanLayers(Pass):
    name = "scan-layers"

    def run(self, g, ctx) -> int:
        return 0
