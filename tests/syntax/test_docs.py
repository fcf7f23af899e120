"""docs/language.md is true to the code: generated sections current, every op documented, every
`nn` example parsed and checked, and the statements it promises accepted by the parser."""
from __future__ import annotations

import re

import pytest

import nndsl
from nndsl.api import check_program
from nndsl.ops import OPS
from nndsl.syntax.parser import keywords, parse

from . import docgen
from .util import ROOT, fenced_blocks

DOC = ROOT / "docs" / "language.md"
TEXT = DOC.read_text()
EXAMPLES = fenced_blocks(TEXT, langs=("nn",))


def test_generated_sections_are_current():
    assert docgen.render(TEXT) == TEXT, "docs/language.md is stale: run `python tests/syntax/docgen.py`"


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.kind != "internal"))
def test_every_op_is_documented(name):
    assert f"`{name}`" in TEXT


def test_every_keyword_is_documented():
    section = TEXT.split("**Keywords.**")[1].split("```", 2)[1]
    assert set(section.split()) - {"text"} == set(keywords())


def test_there_are_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("i", range(len(EXAMPLES)))
def test_every_nn_example_parses_and_checks(i):
    src = EXAMPLES[i]
    assert parse(src, f"docs/language.md#{i}").items
    errors = check_program(nndsl.loads(src, f"docs/language.md#{i}"))
    assert not errors, "\n".join(str(e) for e in errors)


def test_the_grammar_appendix_is_the_grammar():
    from nndsl.resources import grammar_path
    assert grammar_path().read_text().strip() in TEXT


@pytest.mark.parametrize("code", [f"E10{i}" for i in range(1, 9)])
def test_syntax_error_codes_are_documented(code):
    assert f"| {code} |" in TEXT
    import inspect
    from nndsl.syntax import parser, to_ast
    assert code in inspect.getsource(parser) + inspect.getsource(to_ast), f"{code} is documented but unused"


def test_precedence_table_matches_the_parser():
    """Each row of the table binds tighter than the row above it, as the parser sees it."""
    from nndsl.syntax import ast
    from .util import expr
    # a loose operator around a tight one: the tight one is the child
    pairs = [("a -> b or c", ast.Chain), ("a or b and c", ast.BoolOp), ("a and not b", ast.BoolOp),
             ("not a == b", ast.Unary), ("a == b + c", ast.Compare), ("a + b * c", ast.BinOps),
             ("a * -b", ast.BinOps), ("-a ** b", ast.Unary), ("a ** b.c", ast.Power)]
    for src, top in pairs:
        assert type(expr(src)) is top, src
    assert re.search(r"\| 1 \| `if c then a else b`", TEXT)
