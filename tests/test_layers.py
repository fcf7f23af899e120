"""The package keeps its layer order (pyproject.toml's [tool.importlinter], ARCHITECTURE.md) and
has no import cycle between its top-level modules and subpackages, function-level imports included."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import grimp  # import-linter's graph builder; both are in the test extra, so never skipped

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept():
    """In a process of its own: import-linter's console keeps the stdout it first saw."""
    check = ("import sys; from importlinter.cli import lint_imports; "
             f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def _units(graph) -> list[str]:
    return sorted(m for m in graph.find_children("nndsl"))


def test_no_two_parts_of_the_package_import_each_other():
    graph = grimp.build_graph("nndsl", cache_dir=None)
    cycles = [(a, b) for a, b in itertools.combinations(_units(graph), 2)
              if graph.chain_exists(a, b, as_packages=True) and graph.chain_exists(b, a, as_packages=True)]
    assert not cycles, "import cycles between parts of nndsl: " + ", ".join(f"{a} <-> {b}" for a, b in cycles)
