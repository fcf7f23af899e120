"""unparse is the parser's inverse: parse(unparse(t)) == t, for real programs and generated trees."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from nndsl.syntax import ast
from nndsl.syntax.parser import parse
from nndsl.syntax.unparse import MAX_WIDTH, add_parens, unparse

from . import strategies as S
from .util import Bin, Call, Chain, Kw, N, Num, corpus, expr

CORPUS = corpus()
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _in_model(e) -> ast.Module:
    return ast.Module((ast.ModelDef("model", "M", (), (ast.Assign(("y",), e),)),))


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_round_trip_of_every_program(name):
    tree = parse(CORPUS[name])
    text = unparse(tree)
    assert parse(text) == tree
    assert unparse(parse(text)) == text, "canonical text is a fixed point"


@pytest.mark.parametrize("tree,text", [
    (Bin("*", Bin("+", N("a"), N("b")), N("c")), "(a + b) * c"),
    (Bin("+", N("a"), Bin("*", N("b"), N("c"))), "a + b * c"),
    (Bin("-", N("a"), Bin("-", N("b"), N("c"))), "a - (b - c)"),
    (Bin("-", Bin("-", N("a"), N("b")), N("c")), "(a - b) - c"),
    (Bin("--", N("a"), N("b"), N("c")), "a - b - c"),
    (ast.Power(ast.Unary("-", N("a")), N("b")), "(-a) ** b"),
    (ast.Unary("-", ast.Power(N("a"), N("b"))), "-a ** b"),
    (ast.Power(ast.Power(N("a"), N("b")), N("c")), "(a ** b) ** c"),
    (ast.Power(N("a"), ast.Power(N("b"), N("c"))), "a ** b ** c"),
    (Chain(N("x"), Chain(N("f"), N("g"))), "x -> (f -> g)"),
    (Chain(Bin("+", N("a"), N("b")), N("relu")), "a + b -> relu"),
    (Bin("*", Chain(N("a"), N("f")), Num(2)), "(a -> f) * 2"),
    (Chain(N("x"), ast.If(N("c"), N("f"), N("g"))), "x -> (if c then f else g)"),
    (ast.If(N("c"), N("a"), Chain(N("b"), N("f"))), "if c then a else b -> f"),
    (ast.Unary("not", ast.BoolOp("and", (N("a"), N("b")))), "not (a and b)"),
    (ast.BoolOp("and", (ast.BoolOp("or", (N("a"), N("b"))), N("c"))), "(a or b) and c"),
    (ast.Compare(ast.Compare(N("a"), "<", N("b")), "<", N("c")), "(a < b) < c"),
    (ast.Attr(Num(3), "x"), "3 .x"),
    (ast.Attr(Bin("+", N("a"), N("b")), "x"), "(a + b).x"),
    (Call(ast.Unary("-", N("f")), N("x")), "(-f)(x)"),
    (Call("f", N("x"), Kw("axis", ast.Unary("-", Num(1)))), "f(x, axis=-1)"),
    (ast.ListExpr(()), "[]"),
    (ast.String('a"b\\c\nd\te\x00é'), r'"a\"b\\c\nd\te\x00é"'),
    (ast.Number(0.001, "1e-3"), "1e-3"),
    (ast.Number(1e-05), "1e-05"),
    (ast.Number(12), "12"),
])
def test_parentheses_only_where_needed(tree, text):
    assert unparse(tree) == text
    assert expr(text) == add_parens(tree)


def test_statements_and_definitions():
    src = ('import "blocks.nn"\nimport resnet\n\n'
           'cell C(n: int, act: layer = relu) {\n  input x: i32[batch, n]\n  state h: [batch, n] = zeros\n'
           '  param w: [n] ~ normal(0.1)\n  param v: []\n  a, b = split(x, 2)\n  h\' = h -> act\n  output h\'\n}\n')
    assert unparse(parse(src)) == src
    train = ('train T {\n  data digits(batch=64)\n  model net = M()\n  z ~ normal([batch, 4])\n'
             '  loss l = mse(data.x -> net, data.y)\n  metric m = accuracy(data.x -> net, data.y)\n'
             '  step net * 5 minimize l with adam(lr=cosine(0.1, steps=10))\n  step A, B minimize l with sgd\n'
             '  epochs 3\n  seed 1\n  sample z -> net every 10\n}\n')
    assert unparse(parse(train)) == train


def test_long_chains_and_ifs_break_lines_and_still_round_trip():
    e = Chain(N("x"), *[Call("dense", Num(128)) for _ in range(20)])
    text = unparse(_in_model(e))
    assert max(len(line) for line in text.splitlines()) <= MAX_WIDTH
    assert parse(text) == _in_model(e)
    long_if = ast.If(Bin("+" * 11, *[N("cond") for _ in range(12)]), e, N("x"))
    text = unparse(_in_model(long_if))
    assert "\n      then " in text and "\n      else " in text
    assert parse(text) == _in_model(long_if)


def test_very_long_chain_round_trips():
    tree = parse("model M {\n  y = x" + " -> relu" * 20_000 + "\n}\n")
    assert parse(unparse(tree)) == tree


def test_unparse_rejects_what_is_not_syntax():
    with pytest.raises(TypeError):
        unparse(object())
    with pytest.raises(ValueError):
        unparse(ast.Number(float("inf")))


@FAST
@given(S.exprs)
def test_generated_expressions_round_trip(e):
    text = unparse(e)
    back = expr(text)
    assert back == add_parens(e), text
    assert S.strip_parens(back) == S.strip_parens(e), "only parentheses were added"
    assert unparse(back) == text


@FAST
@given(S.exprs)
def test_add_parens_is_idempotent(e):
    once = add_parens(e)
    assert add_parens(once) == once


@FAST
@given(S.modules)
def test_generated_modules_round_trip(m):
    text = unparse(m)
    back = parse(text)
    assert back == add_parens(m), text
    assert unparse(back) == text


def test_canonical_trees_round_trip_exactly():
    """A tree the parser made is its own add_parens: nothing is added on the way round."""
    for text in CORPUS.values():
        tree = parse(text)
        assert add_parens(tree) == tree
