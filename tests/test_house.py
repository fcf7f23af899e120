"""The package's house rules, checked by tools rather than by review: ruff is clean over nndsl/ with
the rules pyproject.toml states, and no function is longer than 60 lines (ARCHITECTURE.md)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nndsl"
LONGEST = 60


def test_ruff_is_clean_over_the_package():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(PACKAGE)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def _functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_the_house_limit():
    long = [f"{p.relative_to(ROOT)}:{line} {name} ({n} lines)"
            for p in sorted(PACKAGE.rglob("*.py")) for name, line, n in _functions(p) if n > LONGEST]
    assert not long, f"functions over {LONGEST} lines: " + "; ".join(long)


def test_the_length_rule_sees_a_long_function(tmp_path):
    """The measure itself: a 61-line function counts as 61."""
    body = "\n".join(f"    x{i} = {i}" for i in range(LONGEST - 1))
    f = tmp_path / "m.py"
    f.write_text(f"def long():\n{body}\n    return 0\n")
    assert [n for _, _, n in _functions(f)] == [LONGEST + 1]
