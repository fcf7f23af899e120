"""User mistakes give located diagnostics, through the API and through `nndsl check`.

Each file in tests/bad/ is one mistake. Its first comment lines say what must be reported:

    # expect: FRAGMENT        (one or more; each must appear in the rendered report)
    # at: LINE:COL            (where, in this file; or FILE:LINE:COL for a file it imports)
    # under: TEXT             (the caret run must start under this text)
    # code: E301              (the error code it must carry, documented in docs/errors.md)
    # xfail: REASON           (a known diagnostics bug; the case must fail until it is fixed)

Files under tests/bad/lib/ are helpers that cases import, not cases themselves.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import nndsl
from nndsl.api import check_program

BAD = Path(__file__).resolve().parent / "bad"
HEADER = re.compile(r"^#\s*(expect|at|under|xfail|code):\s?(.*)$")
LOCATED = re.compile(r"^(?P<file>\S+?):(?P<line>\d+):(?P<col>\d+): error(\[\w+\])?: ")


@dataclass
class Case:
    path: Path
    expect: list
    file: str  # the file the diagnostic points into, relative to tests/bad
    line: int
    col: int
    under: str | None
    xfail: str | None
    code: str | None = None


def read_case(path: Path) -> Case:
    fields: dict = {"expect": []}
    for text in path.read_text(encoding="utf-8-sig").splitlines():  # a case may start with a BOM
        m = HEADER.match(text)
        if not m:
            break
        key, value = m.group(1), m.group(2).rstrip()
        if key == "expect":
            fields["expect"].append(value)
        else:
            fields[key] = value
    where = fields["at"].rsplit(":", 2)
    file = where[0] if len(where) == 3 else path.name
    return Case(path, fields["expect"], file, int(where[-2]), int(where[-1]), fields.get("under"),
                fields.get("xfail"), fields.get("code"))


CASES = [read_case(p) for p in sorted(BAD.glob("*.nn"))]


def params(cases=CASES):
    return [pytest.param(c, id=c.path.stem, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [])
            for c in cases]


def api_errors(path: Path) -> list:
    """Every error the API reports for a file: from loading it, or from checking what loaded."""
    try:
        prog = nndsl.load(path)
    except nndsl.ErrorGroup as e:
        return list(e.errors)
    except nndsl.NndslError as e:
        return [e]
    return check_program(prog)


def blocks(report: str) -> list[list[str]]:
    """A rendered report split into diagnostics: each starts at a `file:line:col: error` line."""
    out: list[list[str]] = []
    for text in report.splitlines():
        if LOCATED.match(text):
            out.append([text])
        elif out:
            out[-1].append(text)
    return out


def check_rendering(case: Case, report: str) -> None:
    """The report holds the expected fragments and a block located where the case says, whose
    source excerpt is that file's line and whose carets start at the column, under the text."""
    for fragment in case.expect:
        assert fragment in report, f"{fragment!r} not in:\n{report}"
    found = [b for b in blocks(report) if _points_at(LOCATED.match(b[0]), case)]
    assert found, f"no diagnostic at {case.file}:{case.line}:{case.col} in:\n{report}"
    block = found[0]
    assert len(block) >= 3, block
    gutter, source_line = block[1].split("| ", 1)
    assert gutter.strip() == str(case.line)
    expected_line = (BAD / case.file).read_text().splitlines()[case.line - 1]
    assert source_line == expected_line.replace("\t", " ")
    carets = block[2]
    start = len(gutter) + 2 + case.col - 1
    where = f"caret not at column {case.col}:\n" + "\n".join(block[:3])
    assert carets[:start].strip() == "" and carets[start] == "^", where
    width = len(carets) - start
    assert carets[start:] == "^" * width
    if case.under is not None:
        underlined = expected_line[case.col - 1:case.col - 1 + width]
        short, long_ = sorted((underlined, case.under), key=len)
        assert long_.startswith(short), f"carets under {underlined!r}, expected under {case.under!r}"


def _points_at(m, case: Case) -> bool:
    if not m:
        return False
    name = m.group("file").replace("\\", "/")
    return (int(m.group("line")), int(m.group("col"))) == (case.line, case.col) and (
        name == case.file or name.endswith("/" + case.file) or case.file.endswith("/" + name))


# ---------------------------------------------------------------------------- the catalogue itself
def test_catalogue_covers_many_distinct_mistakes():
    assert len([c for c in CASES if not c.xfail]) >= 40
    assert all(c.code for c in CASES), [c.path.name for c in CASES if not c.code]
    for c in CASES:
        assert c.expect, f"{c.path.name}: no `# expect:` line"
        assert (BAD / c.file).is_file(), c.file
    helpers = list((BAD / "lib").glob("*.nn"))
    assert helpers and all(not HEADER.match(p.read_text().splitlines()[0]) or "expect" not in p.read_text()
                           for p in helpers)


# ---------------------------------------------------------------------------- through the API
@pytest.mark.parametrize("case", params())
def test_api_reports_a_located_nndsl_error(case):
    errors = api_errors(case.path)
    assert errors, f"{case.path.name}: no error reported"
    assert all(isinstance(e, nndsl.NndslError) for e in errors)
    spans = [(d.span.source.name, d.span.line, d.span.col) for e in errors for d in e.diagnostics if d.span]
    assert any(n.replace("\\", "/").endswith(case.file.split("/")[-1]) and (l, c) == (case.line, case.col)
               for n, l, c in spans), spans
    check_rendering(case, "\n".join(str(e) for e in errors))


def test_error_classes_are_specific():
    [e] = api_errors(BAD / "syntax_error.nn")
    assert isinstance(e, nndsl.ParseError)
    [e] = api_errors(BAD / "shape_mismatch.nn")
    assert isinstance(e, nndsl.ShapeError)
    [e] = api_errors(BAD / "unknown_name.nn")
    assert isinstance(e, NameError) and e.diagnostics[0].code.startswith("E2")


def test_loads_names_the_string_source():
    text = (BAD / "unknown_layer.nn").read_text()
    with pytest.raises(nndsl.NndslError) as e:
        nndsl.loads(text, name="mine.nn").model("A")
    case = read_case(BAD / "unknown_layer.nn")
    assert str(e.value).startswith(f"mine.nn:{case.line}:{case.col}: error")


# ---------------------------------------------------------------------------- through `nndsl check`
def _check_in_process(path: Path, fmt: str, capsys) -> tuple[int, str, str]:
    from nndsl.cli import main
    capsys.readouterr()
    old = Path.cwd()
    os.chdir(BAD)
    try:
        code = main(["check", path.name, "--format", fmt])
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", params())
def test_check_command_text(case, capsys):
    code, _, err = _check_in_process(case.path, "text", capsys)
    assert code == 1
    check_rendering(case, err)
    assert re.search(r"^error: \d+ errors?$", err, re.M)


@pytest.mark.parametrize("case", params())
def test_check_command_json(case, capsys):
    code, out, _ = _check_in_process(case.path, "json", capsys)
    assert code == 1
    diags = json.loads(out)["diagnostics"]
    assert diags and all(d["severity"] == "error" for d in diags)
    assert any((d["line"], d["col"]) == (case.line, case.col) and d["file"].endswith(case.file.split("/")[-1])
               for d in diags), diags
    if case.code:
        assert any(d["code"] == case.code and (d["line"], d["col"]) == (case.line, case.col) for d in diags), \
            (case.code, diags)
    text = "\n".join(f"{d['message']}\n{d.get('help') or ''}\n" + "\n".join(n["message"] for n in d["notes"])
                     for d in diags)
    for fragment in case.expect:
        if not re.fullmatch(r"\d+:\d+", fragment):
            assert fragment in text, (fragment, text)


SUBPROCESS_CASES = ["syntax_error", "shape_mismatch", "import_cycle", "nonscalar_loss"]


@pytest.fixture(scope="module")
def subprocess_checks():
    """A few cases as a user runs them: a fresh process, its exit code and stderr."""
    from concurrent.futures import ThreadPoolExecutor
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def run(stem):
        return subprocess.run([sys.executable, "-m", "nndsl.cli", "check", f"{stem}.nn"], cwd=BAD, env=env,
                              capture_output=True, text=True, timeout=180)
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(SUBPROCESS_CASES, pool.map(run, SUBPROCESS_CASES)))


@pytest.mark.parametrize("case", params([c for c in CASES if c.path.stem in SUBPROCESS_CASES]))
def test_check_command_in_a_subprocess(case, subprocess_checks):
    r = subprocess_checks[case.path.stem]
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    check_rendering(case, r.stderr)
