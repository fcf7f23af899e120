"""Packaging: the wheel carries the grammar and the standard library, and works installed.

grammar/ and stdlib/ live at the repository root, outside the package; the build maps each file
into nndsl/_grammar and nndsl/_stdlib. An installed copy must find them there, not in a checkout.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = sorted(p.name for p in (ROOT / "stdlib").glob("*.nn"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    cmds = [[sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)]]
    errors = []
    for cmd in cmds:
        r = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=300)
        found = list(out.glob("nndsl-*.whl"))
        if r.returncode == 0 and found:
            return found[0]
        errors.append(f"{' '.join(cmd[2:4])}: exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    pytest.fail("could not build a wheel:\n" + "\n".join(errors))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return target


def test_stdlib_is_not_empty():
    assert "lenet.nn" in STDLIB


def test_wheel_contains_grammar_and_stdlib(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nndsl/_grammar/nndsl.lark" in names
    missing = [f"nndsl/_stdlib/{n}" for n in STDLIB if f"nndsl/_stdlib/{n}" not in names]
    assert not missing, f"stdlib files left out of the wheel: {missing}"
    assert "nndsl/__init__.py" in names and "nndsl/cli/__init__.py" in names
    # the mapped files are the repository's own, byte for byte
    with zipfile.ZipFile(wheel) as z:
        assert z.read("nndsl/_grammar/nndsl.lark") == (ROOT / "grammar" / "nndsl.lark").read_bytes()
        for n in STDLIB:
            assert z.read(f"nndsl/_stdlib/{n}") == (ROOT / "stdlib" / n).read_bytes(), n


def test_wheel_carries_no_stray_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith(("tests/", "examples/", "grammar/", "stdlib/"))]
    assert all(n.startswith(("nndsl/", "nndsl-")) for n in names), names


def test_wheel_declares_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as z:
        [ep] = [n for n in z.namelist() if n.endswith("entry_points.txt")]
        assert "nndsl = nndsl.cli:main" in z.read(ep).decode()


PROBE = r"""
import sys, pathlib
import nndsl
from nndsl import resources
pkg = pathlib.Path(nndsl.__file__).resolve().parent
assert pkg.parent == pathlib.Path(sys.argv[1]).resolve(), (pkg, sys.argv[1])
assert resources.grammar_path().resolve().is_relative_to(pkg), resources.grammar_path()
assert resources.stdlib_dir().resolve().is_relative_to(pkg), resources.stdlib_dir()
prog = nndsl.loads('''
import lenet
import resnet
model Tiny {
  input x: [batch, 32, 32, 1]
  output y = x -> LeNet5(classes=3)
}
''')
assert "LeNet5" in prog.models and "BasicBlock" in prog.models, prog.models
print("params", prog.model("Tiny").param_count())
print("lenet", prog.model("LeNet5").param_count())
"""


def test_installed_copy_finds_its_grammar_and_stdlib(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(installed), JAX_PLATFORMS="cpu")
    # cwd outside the repository, so neither the checkout nor its grammar/ and stdlib/ are reachable
    r = subprocess.run([sys.executable, "-c", PROBE, str(installed)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "lenet 61706" in r.stdout
    assert "params 61111" in r.stdout  # LeNet-5 with 3 classes: its last layer 84 * 3 + 3 instead of 850


def test_installed_copy_without_the_checkout_beside_it(installed):
    """The installed package must not lean on ../grammar or ../stdlib: there is none next to it."""
    assert not (installed / "grammar").exists() and not (installed / "stdlib").exists()
    assert (installed / "nndsl" / "_grammar" / "nndsl.lark").is_file()
    assert sorted(p.name for p in (installed / "nndsl" / "_stdlib").glob("*.nn")) == STDLIB
