"""`nndsl fmt`: idempotent, meaning-preserving, comment-preserving, one layout; the command's
exit codes for --check, - and parse errors."""
from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nndsl.syntax.parser import parse
from nndsl.syntax.unparse import unparse
from nndsl.tools import fmt as F
from nndsl.tools.commands import main
from syntax import strategies as S

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "examples").rglob("*.nn")) + sorted((ROOT / "stdlib").rglob("*.nn"))
PROPS = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                        HealthCheck.data_too_large])


def comments(text: str) -> list[str]:
    """The comments of a program, in order (from the parser's token gaps, so `#` in strings is not one)."""
    toks = F._lex(text)
    out, prev = [], 0
    for t in toks + [None]:
        end = t.start if t is not None else len(text)
        out += [c for _, c, _, _ in F._gap(text, prev, end).comments]
        prev = t.end if t is not None else prev
    return out


def check(text: str) -> str:
    """Asserts the formatter's properties on `text`; returns the formatted text."""
    out = F.format_text(text)
    assert parse(out) == parse(text)
    assert F.format_text(out) == out, "not idempotent"
    assert comments(out) == [c.rstrip() for c in comments(text)]
    assert not any(line != line.rstrip() for line in out.splitlines()), "trailing whitespace"
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_programs(path):
    out = check(path.read_text())
    assert out.count("\n\n\n") == 0


GAPS_AFTER_SPACE = [" ", "  ", "\n", "\n\n\n", "\t", " # note\n", "\n  # own line\n\n", "  #x\n  "]


def noisy(text: str, seed: int) -> str:
    """The same tokens with random whitespace and comments between them."""
    rnd = random.Random(seed)
    toks = F._lex(text)
    out, prev = [], 0
    for t in toks:
        gap = text[prev:t.start]
        choices = GAPS_AFTER_SPACE if gap or (out and out[-1][-1:].isalnum() and t.text[:1].isalnum()) \
            else ["", "", " ", "\n", " # glued\n"]
        out.append(rnd.choice(choices) if prev else rnd.choice(["", "# top\n", "\n\n"]))
        out.append(t.text)
        prev = t.end
    out.append(rnd.choice(["", "\n", "\n# the end\n", "  # trailing"]))
    return "".join(out)


@given(S.modules, st.integers(0, 2**16))
@PROPS
def test_generated_programs_keep_their_meaning_and_comments(module, seed):
    check(noisy(unparse(module), seed))


@given(S.semantic_programs(), st.integers(0, 2**16))
@PROPS
def test_generated_models_keep_their_meaning(text, seed):
    check(noisy(text, seed))


@pytest.mark.parametrize("path", FILES[:6], ids=lambda p: p.name)
def test_shipped_programs_through_noise(path):
    for seed in range(3):
        check(noisy(path.read_text(), seed))


def test_layout():
    src = '''

# header

import cells
import   "x.nn"   # trailing
model   M( a :int=2 ,b: float = 3. , ) {  # after brace


  input x :f32[ batch , 3 ]   # c1
  y=-x - 1->dense( 3 ,bias = true )->step( x )   # c2
    # own line in body

  z = x.shape [0] + 3 .x
  w = [ a
     -> b ,
        c ]
  output y
# before close

}
train T { step D * 5 minimize l with adam() epochs 3
 loss l = - - x ** -1 + (not a) and b }
cell C # hdr
{ h' = if a then b else c }
'''
    want = '''# header

import cells
import "x.nn"   # trailing

model M(a: int = 2, b: float = 3.,) {  # after brace
  input x: f32[batch, 3]                        # c1
  y = -x - 1 -> dense(3, bias=true) -> step(x)  # c2
  # own line in body

  z = x.shape[0] + 3 .x
  w = [a
    -> b,
    c]
  output y
  # before close
}

train T {
  step D * 5 minimize l with adam()
  epochs 3
  loss l = --x ** -1 + (not a) and b
}

cell C {  # hdr
  h' = if a then b else c
}
'''
    assert check(src) == want


def test_long_chain_is_broken_before_each_arrow():
    src = "model M {\n  input x: [b, 4]\n  output y = x" + " -> dense(4) -> relu" * 8 + "\n}\n"
    out = check(src)
    assert all(len(line) <= F.MAX_WIDTH for line in out.splitlines())
    assert out.count("\n    -> ") == 16


def test_a_chain_the_author_broke_keeps_its_breaks():
    src = "model M {\n  input x: [b, 4]\n  output y = x\n        -> dense(4) -> relu\n -> dense(2)\n}\n"
    assert check(src) == "model M {\n  input x: [b, 4]\n  output y = x\n    -> dense(4) -> relu\n    -> dense(2)\n}\n"


def test_aligned_comments_stay_aligned():
    src = "cell C(n: int) {\n  input x: [b, f]\n  state h: [b, n] = 0\n" \
          "  h' = [h, x] -> dense(n) -> tanh    # next\n  output h'" + " " * 26 + "# out\n}\n"
    out = check(src)
    cols = [line.index("#") for line in out.splitlines() if "#" in line]
    assert cols == [37, 37]
    # not aligned in the source: two spaces after the longest line
    out = check(src.replace(" " * 26, " "))
    assert [line.index("#") for line in out.splitlines() if "#" in line] == [35, 35]


def test_empty_and_comment_only_files():
    assert F.format_text("") == ""
    assert F.format_text("\n\n") == ""
    assert check("# just a note\n\n\n# another\n") == "# just a note\n\n# another\n"


# ---------------------------------------------------------------------- the command
def run(argv, stdin: str = "", monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    try:
        code = main(argv)
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


UGLY = "model M{input x:[b,2] output y=x->dense(2)}\n"
PRETTY = "model M {\n  input x: [b, 2]\n  output y = x -> dense(2)\n}\n"


def test_fmt_rewrites_in_place_and_check_reports(tmp_path):
    a, b = tmp_path / "a.nn", tmp_path / "b.nn"
    a.write_text(UGLY)
    b.write_text(PRETTY)
    code, out, _ = run(["fmt", "--check", str(a), str(b)])
    assert code == 1 and out.splitlines() == [f"would reformat {a}"]
    assert a.read_text() == UGLY
    code, _, _ = run(["fmt", "--diff", str(a)])
    assert code == 1 and a.read_text() == UGLY
    code, _, err = run(["fmt", str(tmp_path)])
    assert code == 0 and a.read_text() == PRETTY and "1 file reformatted" in err
    code, out, _ = run(["fmt", "--check", str(a), str(b)])
    assert code == 0 and out == ""


def test_fmt_reads_standard_input():
    code, out, _ = run(["fmt", "-"], stdin=UGLY)
    assert code == 0 and out == PRETTY
    code, out, _ = run(["fmt", "--check", "-"], stdin=PRETTY)
    assert code == 0 and out == ""


def test_fmt_leaves_a_file_with_syntax_errors_alone(tmp_path):
    bad = tmp_path / "bad.nn"
    bad.write_text("model M {\n  y = dense(3 act\n}\n")
    code, _, err = run(["fmt", str(bad)])
    assert code == 1 and "error[E" in err and "bad.nn:2" in err
    assert bad.read_text() == "model M {\n  y = dense(3 act\n}\n"


def test_fmt_never_writes_a_changed_meaning(monkeypatch):
    monkeypatch.setattr(F, "_render", lambda lines: "model Other {\n}\n")
    with pytest.raises(F.FormatError):
        F.format_text(PRETTY)


def test_shipped_files_pass_fmt_check():
    """CI's guard: every example and stdlib file is already in the canonical layout (the
    `nndsl fmt --check` command itself, as a user or CI runs it, over both folders)."""
    import subprocess
    r = subprocess.run([sys.executable, "-m", "nndsl.cli", "fmt", "--check", "examples", "stdlib"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "" and "0 files would be reformatted" in r.stderr
    assert f"{len(FILES)} unchanged" in r.stderr
