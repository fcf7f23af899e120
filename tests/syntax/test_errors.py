"""Syntax errors are located, readable, complete (several per file) and free of Lark's internals."""
from __future__ import annotations

import re

import pytest

import nndsl
from nndsl.errors import ErrorGroup, NndslError, ParseError
from nndsl.syntax.parser import MAX_ERRORS, parse

LARK_INTERNALS = ("__ANON", "Token(", "$END", "RPAR", "LPAR", "RSQB", "LSQB", "RBRACE", "LBRACE",
                  "COMMA", "COLON", "ADD_OP", "MUL_OP", "COMP_OP", "Unexpected", "Tree(", "lark")


def _model(*lines: str) -> str:
    return "model M {\n" + "\n".join(lines) + "\n}\n"


def parse_error(src: str, name: str = "f.nn") -> NndslError:
    with pytest.raises(NndslError) as info:
        parse(src, name)
    return info.value


def assert_located(err: NndslError, src: str, line: int, col: int, name: str = "f.nn") -> None:
    """str(err) has `file:line:col: error`, then that source line, then a caret under column `col`."""
    text = str(err)
    head = f"{name}:{line}:{col}: error"
    assert head in text, text
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(head))
    gutter = f"{line:>4} | "
    src_line = src.split("\n")[line - 1].rstrip("\r").replace("\t", " ").replace("\x00", "?")
    assert lines[i + 1] == gutter + src_line, text
    caret = lines[i + 2]
    assert caret.index("^") == len(gutter) + col - 1, text
    assert set(caret.strip()) == {"^"}


def assert_clean(err: NndslError) -> None:
    text = str(err)
    for word in LARK_INTERNALS:
        assert word not in text, f"{word!r} leaked into:\n{text}"
    assert text.count("\n") < 12 * max(1, len(err.diagnostics)), text


# (source, line, col, words the message must contain)
CASES = {
    "missing comma": (_model("  y = dense(3 act: relu)"), 2, 15, ["unexpected `act`", "`,`", "`)`"]),
    "missing paren": (_model("  y = dense(3", "  output y"), 2, 14, ["expected", "`)`", "after `3`"]),
    "double plus": (_model("  y = x + + }"), 2, 13, ["unexpected `}`", "an expression"]),
    "reserved word": (_model("  input x: [b, 3]", "  input = x"), 3, 3, ["`input` is a reserved word"]),
    "reserved setting": ("train T {\n  seed = 3\n}\n", 2, 3, ["`seed` is a reserved word"]),
    "reserved after statement": (_model("  y = x", "  step = 3"), 3, 3, ["`step` is a reserved word"]),
    "dollar": (_model("  y = x $ 3"), 2, 9, ["unexpected character '$'"]),
    "arrow lookalike": (_model("  y = x → relu"), 2, 9, ["U+2192", "did you mean `->`?"]),
    "snowman": (_model("  y = ☃"), 2, 7, ["unexpected character", "U+2603"]),
    "nul byte": (_model("  y = x\x00"), 2, 8, ["unexpected character '\\x00'"]),
    "unterminated string": ('import "blocks.nn\nmodel M {}\n', 1, 8, ["unterminated string"]),
    "bad escape": (_model('  y = f("C:\\data")'), 2, 12, ["unknown escape `\\d`"]),
    "unclosed brace": ("model M {\n  input x: [b, 3]\n", 1, 9, ["`{` is never closed"]),
    "unclosed paren at end": ("model M {\n  y = f(x\n", 2, 8, ["`(` is never closed"]),
    "unmatched brace": ("model M {}\n}\n", 2, 1, ["unmatched `}`"]),
    "mismatched brace": (_model("  y = x -> dense(4 ->"), 3, 1, ["mismatched `}`", "`(` opened here", "f.nn:2:17"]),
    "doubled arrow": (_model("  y = x -> -> relu"), 2, 12, ["unexpected `->`"]),
    "missing colon": (_model("  input x [b, 3]"), 2, 11, ["unexpected `[`", "`:`"]),
    "missing name": ("model {}\n", 1, 7, ["unexpected `{`", "a name"]),
    "garbage at top level": ("x = 3\n", 1, 1, ["unexpected `x`", "a definition"]),
    "end after keyword": ("model", 1, 1, []),
    "comparison chain": (_model("  b = 1 < 2 < 3"), 2, 13, ["unexpected `<`"]),
    "missing operator": (_model("  y = x 3"), 2, 9, ["unexpected `3`", "an operator"]),
    # after `step` only a name can come, so `minimize` is the model's name and `l` is unexpected
    "step without model": ("train T {\n  step minimize l with adam\n}\n", 2, 17, ["unexpected `l`", "`minimize`"]),
    "repeat not integer": ("train T {\n  step D * 2.5 minimize l with adam\n}\n", 2, 13, ["unexpected `.5`"]),
    "tab indented": ("model M {\n\ty = dense(3 act)\n}\n", 2, 14, ["unexpected `act`"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_syntax_error_is_located(case):
    src, line, col, words = CASES[case]
    err = parse_error(src)
    assert isinstance(err, ParseError) and isinstance(err, SyntaxError)
    assert_clean(err)
    if case == "end after keyword":  # the end of the file: line 1, just after `model`
        assert "f.nn:1:6: error" in str(err) and "end of file" in str(err)
        return
    assert_located(err, src, line, col)
    for w in words:
        assert w in str(err), str(err)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_mistake_gives_one_error(case):
    src = CASES[case][0]
    err = parse_error(src)
    assert len(err.diagnostics) == 1, str(err)


def test_several_errors_are_reported_together():
    src = ("model A {\n"
           "  input x: [b, 3]\n"
           "  y = dense(3 act: relu)\n"        # line 3: missing comma
           "  z = x + * 2\n"                   # line 4: operator without operand
           "  output y\n"
           "}\n"
           "model B {\n"
           "  input x: [b 3]\n"                # line 8: missing comma in a shape
           "  output x\n"
           "}\n"
           "train T {\n"
           "  data = digits()\n"               # line 12: `data` is a keyword
           "  epochs 3\n"
           "}\n")
    err = parse_error(src)
    assert isinstance(err, ErrorGroup)
    assert [(d.span.line, d.span.col) for d in err.diagnostics] == [(3, 15), (4, 11), (8, 15), (12, 3)]
    assert_clean(err)
    text = str(err)
    for line, col in [(3, 15), (4, 11), (8, 15), (12, 3)]:
        assert_located(err, src, line, col)
    assert text.count(": error[") == 4


def test_missing_paren_does_not_cascade_into_the_next_statements():
    src = _model("  input x: [b, 3]", "  y = (x -> relu", "  z = y -> relu", "  output z")
    err = parse_error(src)
    assert len(err.diagnostics) == 1
    assert "expected `)` after `relu`" in str(err)
    assert_located(err, src, 3, 17)
    assert "note: found `z` on line 4" in str(err)


def test_errors_are_capped():
    src = _model(*[f"  y{i} = x $" for i in range(100)])
    err = parse_error(src)
    assert isinstance(err, ErrorGroup)
    assert len(err.diagnostics) == MAX_ERRORS


def test_one_error_per_line():
    err = parse_error(_model("  y = ) ) ) $ $ ]"))
    assert len(err.diagnostics) == 1


def test_json_diagnostics_carry_positions():
    err = parse_error(_model("  y = dense(3 act: relu)"))
    d = err.diagnostics[0].to_json()
    assert (d["file"], d["line"], d["col"], d["severity"]) == ("f.nn", 2, 15, "error")
    assert d["code"].startswith("E1")


def test_loads_and_load_report_the_file_name(tmp_path):
    with pytest.raises(nndsl.ParseError) as info:
        nndsl.loads(_model("  y = dense(3 act: relu)"))
    assert "<string>:2:15: error" in str(info.value)
    p = tmp_path / "bad.nn"
    p.write_text(_model("  y = dense(3 act: relu)"))
    with pytest.raises(nndsl.ParseError) as info:
        nndsl.load(p)
    assert re.search(r"bad\.nn:2:15: error", str(info.value))


def test_errors_in_an_imported_file_name_that_file(tmp_path):
    (tmp_path / "blocks.nn").write_text(_model("  y = x +"))
    (tmp_path / "main.nn").write_text('import "blocks.nn"\nmodel A {}\n')
    with pytest.raises(nndsl.NndslError) as info:
        nndsl.load(tmp_path / "main.nn")
    assert "blocks.nn:3:1: error" in str(info.value) or "blocks.nn:2:" in str(info.value)


def test_crlf_line_endings_parse_and_locate():
    src = "model M {\r\n  input x: [b, 3]\r\n  y = dense(3 act: relu)\r\n}\r\n"
    assert parse(src.replace("3 act: relu", "3, act=relu"))
    err = parse_error(src)
    assert "f.nn:3:15: error" in str(err)
    assert "  y = dense(3 act: relu)" in str(err)


def test_excerpt_is_the_reported_line_after_a_form_feed():
    """Lark counts lines by \\n only; the excerpt must show that same line (not str.splitlines')."""
    src = "# page one\x0cpage two\u2028more\nmodel M {\n  y = dense(3 act: relu)\n}\n"
    err = parse_error(src)
    assert "f.nn:3:15: error" in str(err)
    assert "   3 |   y = dense(3 act: relu)" in str(err), str(err)


def test_excerpt_never_prints_control_characters():
    src = "model M {  # \x1b[2J\x1b[31m\r\x07\n  y = ) # \x1b]0;title\x07\n}\n"
    err = parse_error(src)
    text = str(err)
    assert not any(ord(c) < 32 and c != "\n" for c in text), repr(text)


def test_keyword_used_as_name_inside_expressions_is_fine():
    parse(_model("  input x: [b, 3]", "  y = x -> step", "  z = data", "  output w = y + z"))


@pytest.mark.parametrize("junk", ["\x00\x01\x02", "}}}}", "))))", "model model model", "import 3",
                                  "\"", "->->->", "# only a comment", "\ufeffmodel M {}", "~~~", "'''"])
def test_junk_never_escapes_as_a_python_exception(junk):
    try:
        parse(junk, "f.nn")
    except NndslError as e:
        assert_clean(e)
        assert "f.nn:" in str(e)
