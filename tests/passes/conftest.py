"""Every graph the tests optimize is verified after every pass (NNDSL_VERIFY=1)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def verify_between_passes(monkeypatch):
    monkeypatch.setenv("NNDSL_VERIFY", "1")
