"""Every error code the source can raise is documented in docs/errors.md."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_is_documented():
    doc = (ROOT / "docs" / "errors.md").read_text()
    documented = set(re.findall(r"^\| ([EW]\d{3}) \|", doc, re.M))
    used = set()
    for p in (ROOT / "nndsl").rglob("*.py"):
        used |= set(re.findall(r'code\s*=\s*"([EW]\d{3})"', p.read_text()))
    assert used, "no codes found: the pattern is stale"
    assert used <= documented, sorted(used - documented)
