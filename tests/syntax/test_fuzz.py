"""Grammar fuzzing: generated programs parse, and checking them fails only with located NndslErrors.

Three generators:
- `from_lark` over the grammar itself (the explicit-terminal recipe of RELIABILITY.md section 2:
  keywords and punctuation followed by a space so tokens cannot merge, NAME never a keyword, a
  comment always ending its line). Every program it draws must parse.
- the same, with names, numbers and strings drawn from nndsl's own vocabulary (ops, initializers,
  data sources, optimizers), so the checker gets past name resolution and reaches the builder.
- AST strategies over that vocabulary, placed inside model, cell and train skeletons and written
  out with `unparse`: these reach shape inference, layer application, cells and train blocks.

And a mutation fuzzer: corrupting a real program anywhere gives a clean ParseError or a program.
"""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

import nndsl
from nndsl.api import check_program
from nndsl.errors import NndslError
from nndsl.ops import OPS
from nndsl.resources import grammar_path
from nndsl.syntax import ast
from nndsl.syntax.parser import parse
from nndsl.syntax.unparse import unparse

from . import strategies as S
from .test_errors import assert_clean
from .util import corpus

# CI runs the same 200 examples every time (derandomized: no flaky reds). To hunt for new bugs:
#   NNDSL_FUZZ_EXAMPLES=5000 NNDSL_FUZZ_RANDOM=1 pytest tests/syntax/test_fuzz.py
FUZZ = settings(max_examples=int(os.environ.get("NNDSL_FUZZ_EXAMPLES", "200")), deadline=None,
                database=None, derandomize=os.environ.get("NNDSL_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
STARTS = ["start", "model_def", "train_def"]
GRAMMAR = Lark(grammar_path().read_text(), parser="lalr", start=STARTS)
KEYWORDS = {t.pattern.value for t in GRAMMAR.terminals
            if t.pattern.type == "str" and re.fullmatch(r"\w+", t.pattern.value)}

VOCAB = sorted({n for n, op in OPS.items() if op.kind != "internal"} | {
    "x", "y", "h", "c", "a", "b", "batch", "time", "M", "C", "net", "zeros", "ones", "normal",
    "glorot", "uniform", "digits", "ring_gaussians", "logic", "npz", "csv", "adam", "sgd", "adamw",
    "cosine", "warmup_cosine", "unroll", "bidirectional", "grad", "units", "axis", "steps", "lr",
    "int", "float", "layer", "i32", "f32", "h'", "shape"} - KEYWORDS)
SMALL_NUMBERS = ["0", "1", "2", "3", "4", "8", "16", "0.5", "1e-3", "2.5"]
STRINGS = ['"same"', '"valid"', '"and"', '"xor"', '""', '"x.npz"']


def lark_fuzz_strategy(parser: Lark, start: str = "start", vocabulary: bool = False):
    """from_lark with an explicit strategy for every terminal (RELIABILITY.md section 2)."""
    explicit = {}
    for t in parser.terminals:
        if t.name in parser.ignore_tokens:
            continue
        if t.pattern.type == "str":  # keywords and punctuation
            explicit[t.name] = st.just(t.pattern.value + " ")
            continue
        if vocabulary and t.name == "NAME":
            s = st.sampled_from(VOCAB)
        elif vocabulary and t.name in ("NUMBER", "INT"):
            s = st.sampled_from([n for n in SMALL_NUMBERS if t.name == "NUMBER" or n.isdigit()])
        elif vocabulary and t.name == "STRING":
            s = st.sampled_from(STRINGS)
        elif t.name == "STRING":  # only the escapes nndsl defines
            s = st.from_regex(r'"([ !#-\[\]-~]|\\[nt"\\])*"', fullmatch=True)
        else:
            s = st.from_regex(t.pattern.to_regexp(), fullmatch=True, alphabet=st.characters(codec="ascii"))
            if t.name == "NAME":
                s = s.filter(lambda v: v not in KEYWORDS)
        explicit[t.name] = s.map(lambda v: v + " ")  # trailing space: tokens cannot merge
    if "COMMENT" in parser.ignore_tokens:
        explicit["COMMENT"] = st.just("# c\n")  # a comment must end its line
    used = {t.name for t in parser.grammar.compile([start], ())[0]}
    explicit = {k: v for k, v in explicit.items() if k in used}
    return from_lark(parser, start=start, explicit=explicit, alphabet=st.characters(codec="ascii"))


def check_only_nndsl_errors(src: str) -> None:
    """loads + check_program either succeed or raise NndslError; anything else is a compiler bug."""
    try:
        errors = check_program(nndsl.loads(src))
    except NndslError as e:
        assert_clean(e)
        return
    assert isinstance(errors, list)
    for e in errors:
        assert isinstance(e, NndslError)
        str(e)  # every error renders


# ---------------------------------------------------------------------- property 1: the grammar
@FUZZ
@given(lark_fuzz_strategy(GRAMMAR, "start"))
def test_every_generated_program_parses(src):
    parse(src)


@FUZZ
@given(st.one_of(lark_fuzz_strategy(GRAMMAR, "model_def"), lark_fuzz_strategy(GRAMMAR, "train_def")))
def test_every_generated_definition_parses_and_round_trips(src):
    tree = parse(src)
    assert parse(unparse(tree)) == tree


# ---------------------------------------------------------------------- property 2: the checker
@FUZZ
@given(st.one_of(*[lark_fuzz_strategy(GRAMMAR, s, vocabulary=True) for s in STARTS]))
def test_checking_generated_programs_raises_only_nndsl_errors(src):
    check_only_nndsl_errors(src)


SEM_NAMES = st.sampled_from([v for v in VOCAB if not v.endswith("'")])
SEM_EXPRS = S.expressions(names=SEM_NAMES, numbers=st.sampled_from([1, 2, 3, 4, 8, 0.5]).map(ast.Number),
                          strings=st.sampled_from(["same", "valid", "and"]), max_leaves=8)
ASSIGNS = st.builds(ast.Assign, st.lists(SEM_NAMES, min_size=1, max_size=2).map(tuple), SEM_EXPRS)
X = ast.Input("x", ast.TypeExpr(None, (ast.Name("batch"), ast.Number(4))))


def _model(body, out) -> ast.ModelDef:
    return ast.ModelDef("model", "M", (), (X, *body, ast.Output("y", out)))


@st.composite
def skeleton_programs(draw) -> str:
    kind = draw(st.sampled_from(["model", "cell", "train"]))
    if kind == "model":
        m = _model(draw(st.lists(ASSIGNS, max_size=4)), draw(SEM_EXPRS))
        return unparse(ast.Module((m,)))
    if kind == "cell":
        state = ast.State("h", ast.TypeExpr(None, (ast.Name("batch"), ast.Number(4))), ast.Name("zeros"))
        nxt = ast.Assign(("h'",), draw(SEM_EXPRS))
        # `n` has no default, so the cell is checked where Seq applies it (see the xfail below)
        cell = ast.ModelDef("cell", "C", (ast.ArgDecl("n", "int", None),),
                            (X, state, *draw(st.lists(ASSIGNS, max_size=2)), nxt, ast.Output("h'", None)))
        seq = ast.Input("s", ast.TypeExpr(None, (ast.Name("batch"), ast.Name("time"), ast.Number(4))))
        applied = ast.Chain((ast.Name("s"), ast.Call(ast.Name("C"), (ast.Number(4),)), draw(SEM_EXPRS)))
        use = ast.ModelDef("model", "Seq", (), (seq, ast.Output("y", applied)))
        return unparse(ast.Module((cell, use)))
    m = _model((), ast.Chain((ast.Name("x"), ast.Call(ast.Name("dense"), (ast.Number(2),)))))
    stmts = st.one_of(ASSIGNS, st.builds(ast.Loss, SEM_NAMES, SEM_EXPRS), st.builds(ast.Metric, SEM_NAMES, SEM_EXPRS),
                      st.builds(ast.Draw, SEM_NAMES, SEM_EXPRS))
    body = (ast.Data(draw(SEM_EXPRS)), ast.Instance("net", ast.Call(ast.Name("M"), ())),
            *draw(st.lists(stmts, max_size=3)),
            ast.Step(("net",), draw(st.integers(1, 3)), draw(SEM_EXPRS), draw(SEM_EXPRS)))
    return unparse(ast.Module((m, ast.TrainDef("T", body))))


@FUZZ
@given(skeleton_programs())
def test_checking_generated_skeletons_raises_only_nndsl_errors(src):
    check_only_nndsl_errors(src)


@FUZZ
@given(S.semantic_programs())
def test_checking_meaningful_programs_raises_only_nndsl_errors(src):
    check_only_nndsl_errors(src)


# ---------------------------------------------------------------------- invalid programs
CORPUS = corpus()
JUNK = ["(", ")", "[", "]", "{", "}", ",", "=", "->", "~", ":", "\x00", "$", "→", '"', "#", "'",
        " model ", " input ", "**", "\n", " 1e", "."]


@FUZZ
@given(st.sampled_from(sorted(CORPUS)), st.data())
def test_corrupted_programs_fail_cleanly(name, data):
    text = CORPUS[name]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "swap"]))
        if op == "insert":
            text = text[:i] + data.draw(st.sampled_from(JUNK)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + data.draw(st.integers(1, 8)):]
        else:
            j = data.draw(st.integers(0, len(text)))
            a, b = sorted((i, j))
            text = text[:a] + text[b:b + 5] + text[a + 5:b] + text[a:a + 5] + text[b + 5:]
    try:
        parse(text, "f.nn")
    except NndslError as e:
        assert_clean(e)
        assert all(d.span is not None for d in e.diagnostics)
        assert "f.nn:" in str(e)


@pytest.mark.parametrize("src", [
    "model M {\n  input x: [batch, 4]\n  output y = x -> dense(2) * 0\n}\n",
    "model M {\n  input x: [batch, 4]\n  output y = x -> (relu -> relu) * 3\n}\n",
    "model M {\n  input x: [batch, 4]\n  a, b = x\n  output y = a\n}\n",
    # a cell that names itself inside its own body (found by the skeleton fuzzer)
    "cell C {\n  input x: [batch, 4]\n  state h: [batch, 4] = zeros\n  h' = C\n  output h'\n}\n"
    "model Seq {\n  input s: [batch, time, 4]\n  output y = s -> C\n}\n",
    "model M {\n  input x: [batch, 4]\n  output y = x -> M\n}\n",
    "cell C {\n  input x: [batch, 4]\n  state h: [batch, 4] = zeros\n  h' = x + h\n  output h'\n}\n",
    "model M {\n  input x: [batch, 4]\n  n = -batch\n  output y = x\n}\n",
])
def test_known_edge_programs_check_cleanly(src):
    check_only_nndsl_errors(src)
