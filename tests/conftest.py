"""Shared test setup: strict JAX numerics on CPU, and helpers for programs written inline."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The CLI keeps compiled programs on disk (a process-wide JAX setting): off in the suite, whose
# processes never write to the user's cache; tests/test_compile_cache.py turns it on in its own.
os.environ.setdefault("NNDSL_NO_CACHE", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "allow")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def root() -> Path:
    return ROOT
