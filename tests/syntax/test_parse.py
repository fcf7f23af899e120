"""The parser accepts the language and builds the AST shapes the rest of the compiler relies on."""
from __future__ import annotations

import time

import pytest
from lark import Lark

import nndsl
from nndsl.resources import grammar_path
from nndsl.syntax import ast
from nndsl.syntax.parser import MAX_NESTING, parse

from .util import (Bin, Call, Chain, Kw, N, Num, body, corpus, expr, language_md_blocks,
                   language_md_copies, train_body)

CORPUS = corpus()


# ---------------------------------------------------------------------- the contract's programs
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_shipped_and_promised_programs_parse(name):
    module = parse(CORPUS[name], name)
    assert module.items, "every program defines something"


def test_language_md_copies_are_current():
    """tests/syntax/language_md/ holds LANGUAGE.md's programs, so the suite runs without ../shared."""
    live = language_md_blocks()
    if not live:
        pytest.skip("../shared/LANGUAGE.md is not beside this checkout")
    assert sorted(live) == sorted(language_md_copies().values())


def test_language_md_program_shapes():
    m = parse(language_md_copies()["mlp"])
    (mlp,) = m.items
    assert (mlp.kind, mlp.name) == ("model", "MLP")
    assert mlp.params == (ast.ArgDecl("hidden", "int", Num(256)), ast.ArgDecl("classes", "int", Num(10)))
    assert [type(s) for s in mlp.body] == [ast.Input, ast.Assign, ast.Output]
    lstm = parse(language_md_copies()["lstm"]).items[0]
    assert lstm.kind == "cell"
    assert [s.name for s in lstm.body if isinstance(s, ast.State)] == ["h", "c"]
    assert lstm.body[-1] == ast.Output("h'", None)
    gan = parse(language_md_copies()["gan_ring"]).items[0]
    assert isinstance(gan, ast.TrainDef)
    steps = [s for s in gan.body if isinstance(s, ast.Step)]
    assert [s.models for s in steps] == [("D",), ("G",)]


# ---------------------------------------------------------------------- files and definitions
def test_imports_by_path_and_by_name():
    m = parse('import "blocks.nn"\nimport resnet\nmodel A {}')
    assert m.items[:2] == (ast.Import("blocks.nn", True), ast.Import("resnet", False))


def test_empty_file_and_comment_only_file():
    assert parse("") == ast.Module(())
    assert parse("# nothing here\n\n   # at all") == ast.Module(())


@pytest.mark.parametrize("src", ["model M {}", "model M() {}", "model M {\n}\n"])
def test_definitions_without_parameters(src):
    assert parse(src).items == (ast.ModelDef("model", "M", (), ()),)


def test_parameters_with_types_defaults_and_trailing_comma():
    (m,) = parse("model M(a: int = 3, b, c: layer = relu, d = 2.5,) {}").items
    assert m.params == (ast.ArgDecl("a", "int", Num(3)), ast.ArgDecl("b", None, None),
                        ast.ArgDecl("c", "layer", N("relu")), ast.ArgDecl("d", None, Num(2.5)))


def test_model_cell_and_train_in_one_file():
    m = parse("model A {}\ncell B(n: int) {}\ntrain C {}\n")
    assert [(type(d).__name__, getattr(d, "kind", None), d.name) for d in m.items] == [
        ("ModelDef", "model", "A"), ("ModelDef", "cell", "B"), ("TrainDef", None, "C")]


# ---------------------------------------------------------------------- model statements
def test_input_with_and_without_dtype():
    a, b, c = body("input x: [batch, 784]\ninput ids: i32[batch, time]\ninput s: []")
    assert a == ast.Input("x", ast.TypeExpr(None, (N("batch"), Num(784))))
    assert b == ast.Input("ids", ast.TypeExpr("i32", (N("batch"), N("time"))))
    assert c == ast.Input("s", ast.TypeExpr(None, ()))


def test_dims_are_expressions_and_may_end_with_a_comma():
    (s,) = body("input x: [batch, 2 * n, h + 1,]")
    assert s.type.dims == (N("batch"), Bin("*", Num(2), N("n")), Bin("+", N("h"), Num(1)))


def test_state_with_and_without_initial_value():
    a, b = body("state h: [batch, hidden] = zeros\nstate c: [batch, hidden]")
    assert a == ast.State("h", ast.TypeExpr(None, (N("batch"), N("hidden"))), N("zeros"))
    assert b == ast.State("c", ast.TypeExpr(None, (N("batch"), N("hidden"))), None)


def test_param_with_initializer():
    a, b, c = body("param w: [2, 1] ~ normal(0.01)\nparam b: [] ~ zeros\nparam k: [3]")
    assert a == ast.Param("w", ast.TypeExpr(None, (Num(2), Num(1))), Call("normal", Num(0.01)))
    assert b == ast.Param("b", ast.TypeExpr(None, ()), N("zeros"))
    assert c.init is None


def test_output_with_and_without_value():
    a, b, c = body("output logits = h -> dense(10)\noutput h\noutput h'")
    assert a == ast.Output("logits", Chain(N("h"), Call("dense", Num(10))))
    assert b == ast.Output("h", None)
    assert c == ast.Output("h'", None)


def test_multi_target_assignment():
    (s,) = body("a, b = split(x, 2)")
    assert s == ast.Assign(("a", "b"), Call("split", N("x"), Num(2)))


def test_primed_names():
    a, b = body("c' = f * c + i * g\nh'' = tanh(c')")
    assert a.targets == ("c'",)
    assert a.value == Bin("+", Bin("*", N("f"), N("c")), Bin("*", N("i"), N("g")))
    assert b == ast.Assign(("h''",), Call("tanh", N("c'")))


def test_layout_is_free():
    one_line = parse("model M { input x: [b, 3] h = x -> relu output y = h }")
    spread = parse("model M {\n  input x:\n    [b,\n     3]\n  h = x\n    -> relu\n  output y =\n    h\n}")
    assert one_line == spread
    assert [type(s) for s in one_line.items[0].body] == [ast.Input, ast.Assign, ast.Output]


def test_comments_everywhere_and_hash_inside_strings():
    src = ('# head\nmodel M { # open\n  input x: [b, 3]  # dims\n  y = x -> conv1d(4, 3, padding="#same")'
           '  # tail\n  output y # no newline at end of file')
    with pytest.raises(nndsl.ParseError):  # the last comment ate the closing brace
        parse(src)
    m = parse(src + "\n}")
    (inp, y, out) = m.items[0].body
    assert y.value.items[1].args[2] == Kw("padding", ast.String("#same"))


# ---------------------------------------------------------------------- expressions
def test_chain_is_flat():
    assert expr("x -> conv2d(6, 5) -> relu -> avg_pool(2)") == Chain(
        N("x"), Call("conv2d", Num(6), Num(5)), N("relu"), Call("avg_pool", Num(2)))


def test_concat_list_and_empty_list():
    assert expr("[h, x] -> dense(4)") == Chain(ast.ListExpr((N("h"), N("x"))), Call("dense", Num(4)))
    assert expr("[]") == ast.ListExpr(())
    assert expr("[a,]") == ast.ListExpr((N("a"),))


def test_named_arguments_and_trailing_commas():
    assert expr("conv2d(ch, 3, stride=2, padding=\"same\", bias=false,)") == Call(
        "conv2d", N("ch"), Num(3), Kw("stride", Num(2)), Kw("padding", ast.String("same")),
        Kw("bias", ast.Bool(False)))
    assert expr("f()") == Call("f")


def test_static_if():
    e = expr("if stride != 1 or c != ch then x -> conv2d(ch, 1) else x")
    assert e == ast.If(
        ast.BoolOp("or", (ast.Compare(N("stride"), "!=", Num(1)), ast.Compare(N("c"), "!=", N("ch")))),
        Chain(N("x"), Call("conv2d", N("ch"), Num(1))), N("x"))


def test_else_if_nests_in_the_else_branch():
    e = expr("if a then 1 else if b then 2 else 3")
    assert e == ast.If(N("a"), Num(1), ast.If(N("b"), Num(2), Num(3)))


def test_else_branch_extends_over_a_chain():
    assert expr("if c then a else b -> relu") == ast.If(N("c"), N("a"), Chain(N("b"), N("relu")))


def test_stacking_a_layer():
    assert expr("x -> Block(64) * 2 -> relu") == Chain(
        N("x"), Bin("*", Call("Block", Num(64)), Num(2)), N("relu"))


def test_parenthesized_chain_is_one_item():
    e = expr("x -> (conv2d(64, 3) -> relu) * 2")
    inner = ast.Paren(Chain(Call("conv2d", Num(64), Num(3)), N("relu")))
    assert e == Chain(N("x"), Bin("*", inner, Num(2)))


def test_postfix_call_attribute_index():
    assert expr("f(x).y[0](1)") == Call(ast.Index(ast.Attr(Call("f", N("x")), "y"), Num(0)), Num(1))


@pytest.mark.parametrize("text,value", [
    ("3", 3), ("0.5", 0.5), ("1e-3", 1e-3), ("1E+3", 1000.0), (".5", 0.5), ("1.", 1.0), ("2.5e2", 250.0)])
def test_numbers(text, value):
    e = expr(text)
    assert isinstance(e, ast.Number) and e.value == value and type(e.value) is type(value)
    assert e.text == text


@pytest.mark.parametrize("text,value", [
    (r'"same"', "same"), (r'""', ""), (r'"a\"b"', 'a"b'), (r'"back\\slash"', "back\\slash"),
    (r'"tab\there"', "tab\there"), (r'"\x41\u00e9"', "Aé"), ('"é ☃"', "é ☃")])
def test_strings(text, value):
    assert expr(text) == ast.String(value)


def test_booleans():
    assert expr("[true, false]") == ast.ListExpr((ast.Bool(True), ast.Bool(False)))


# ---------------------------------------------------------------------- precedence
@pytest.mark.parametrize("src,tree", [
    ("a + b -> relu", Chain(Bin("+", N("a"), N("b")), N("relu"))),
    ("-x ** 2", ast.Unary("-", ast.Power(N("x"), Num(2)))),
    ("a * b + c", Bin("+", Bin("*", N("a"), N("b")), N("c"))),
    ("a + b * c", Bin("+", N("a"), Bin("*", N("b"), N("c")))),
    ("a - b - c", Bin("--", N("a"), N("b"), N("c"))),
    ("a / b @ c * d", Bin("/@*", N("a"), N("b"), N("c"), N("d"))),
    ("a ** b ** c", ast.Power(N("a"), ast.Power(N("b"), N("c")))),
    ("2 ** -1", ast.Power(Num(2), ast.Unary("-", Num(1)))),
    ("x @ w + b", Bin("+", Bin("@", N("x"), N("w")), N("b"))),
    ("-a.b", ast.Unary("-", ast.Attr(N("a"), "b"))),
    ("not a == b", ast.Unary("not", ast.Compare(N("a"), "==", N("b")))),
    ("a or b and c", ast.BoolOp("or", (N("a"), ast.BoolOp("and", (N("b"), N("c")))))),
    ("not a and b", ast.BoolOp("and", (ast.Unary("not", N("a")), N("b")))),
    ("a + 1 < b * 2", ast.Compare(Bin("+", N("a"), Num(1)), "<", Bin("*", N("b"), Num(2)))),
    ("a < b or c >= d", ast.BoolOp("or", (ast.Compare(N("a"), "<", N("b")),
                                          ast.Compare(N("c"), ">=", N("d"))))),
    ("(a + b) * c", Bin("*", ast.Paren(Bin("+", N("a"), N("b"))), N("c"))),
    ("x -> f or g", Chain(N("x"), ast.BoolOp("or", (N("f"), N("g"))))),
    ("- - x", ast.Unary("-", ast.Unary("-", N("x")))),
    ("+x", ast.Unary("+", N("x"))),
])
def test_precedence(src, tree):
    assert expr(src) == tree


def test_comparisons_do_not_chain():
    with pytest.raises(nndsl.ParseError):
        expr("a < b < c")


# ---------------------------------------------------------------------- keywords as names
def test_keywords_as_names_in_expression_position():
    assert expr("step(x)") == Call("step", N("x"))
    assert expr("data.x -> net") == Chain(ast.Attr(N("data"), "x"), N("net"))
    assert expr("x -> step") == Chain(N("x"), N("step"))
    assert expr("input + output") == Bin("+", N("input"), N("output"))
    assert expr("f(model=1, epochs=2)") == Call("f", Kw("model", Num(1)), Kw("epochs", Num(2)))


def test_keywords_as_definition_and_field_names():
    m = parse("model step {\n  input data: [b, 2]\n  output loss = data.seed\n}")
    d = m.items[0]
    assert d.name == "step"
    assert d.body == (ast.Input("data", ast.TypeExpr(None, (N("b"), Num(2)))),
                      ast.Output("loss", ast.Attr(N("data"), "seed")))


def test_perceptron_step_function():
    (*_, out) = body("input x: [batch, 2]\nparam w: [2] ~ zeros\nparam b: [] ~ zeros\noutput y = step(x @ w + b)")
    assert out == ast.Output("y", Call("step", Bin("+", Bin("@", N("x"), N("w")), N("b"))))


# ---------------------------------------------------------------------- train blocks
def test_train_statements():
    stmts = train_body("""
      data digits(batch=64, split=0.8, size=32)
      model net = LeNet5(classes=10)
      logits = data.x -> net
      z ~ normal([batch, 16])
      loss ce = cross_entropy(logits, data.y)
      metric acc = accuracy(logits, data.y)
      step net minimize ce with adam(lr=1e-3)
      step D * 5 minimize d_loss with adam(lr=2e-4, b1=0.5)
      step G_ab, G_ba minimize cycle with sgd(lr=cosine(0.1, steps=100))
      epochs 10
      iterations 5000
      seed 7
      clip_norm 1.0
      eval_every 2
      sample z -> G every 500
    """)
    assert stmts[0] == ast.Data(Call("digits", Kw("batch", Num(64)), Kw("split", Num(0.8)), Kw("size", Num(32))))
    assert stmts[1] == ast.Instance("net", Call("LeNet5", Kw("classes", Num(10))))
    assert stmts[2] == ast.Assign(("logits",), Chain(ast.Attr(N("data"), "x"), N("net")))
    assert stmts[3] == ast.Draw("z", Call("normal", ast.ListExpr((N("batch"), Num(16)))))
    assert stmts[4] == ast.Loss("ce", Call("cross_entropy", N("logits"), ast.Attr(N("data"), "y")))
    assert stmts[5] == ast.Metric("acc", Call("accuracy", N("logits"), ast.Attr(N("data"), "y")))
    assert stmts[6] == ast.Step(("net",), 1, N("ce"), Call("adam", Kw("lr", Num(1e-3))))
    assert stmts[7] == ast.Step(("D",), 5, N("d_loss"), Call("adam", Kw("lr", Num(2e-4)), Kw("b1", Num(0.5))))
    assert stmts[8].models == ("G_ab", "G_ba") and stmts[8].repeat == 1
    assert stmts[8].optimizer == Call("sgd", Kw("lr", Call("cosine", Num(0.1), Kw("steps", Num(100)))))
    assert [(s.key, s.value) for s in stmts[9:14]] == [
        ("epochs", Num(10)), ("iterations", Num(5000)), ("seed", Num(7)), ("clip_norm", Num(1.0)),
        ("eval_every", Num(2))]
    assert stmts[14] == ast.Sample(Chain(N("z"), N("G")), Num(500))


def test_loss_may_be_any_expression():
    (s,) = train_body("loss d = bce_logits(data.x -> D, 1) + bce_logits(fake -> D, 0)")
    assert s.value == Bin("+", Call("bce_logits", Chain(ast.Attr(N("data"), "x"), N("D")), Num(1)),
                          Call("bce_logits", Chain(N("fake"), N("D")), Num(0)))


# ---------------------------------------------------------------------- spans
def test_spans_point_at_the_source():
    m = parse("model M {\n  input x: [b, 3]\n  y = x -> dense(4)\n}\n", "f.nn")
    d = m.items[0]
    assert (d.name_span.line, d.name_span.col, d.name_span.end_col) == (1, 7, 8)
    y = d.body[1]
    assert (y.span.line, y.span.col) == (3, 3)
    call = y.value.items[1]
    assert (call.span.line, call.span.col, call.span.end_col) == (3, 12, 20)
    assert call.span.source.name == "f.nn"
    assert (call.args[0].span.line, call.args[0].span.col) == (3, 18)


def test_every_node_has_a_span():
    for text in CORPUS.values():
        stack = [parse(text)]
        while stack:
            node = stack.pop()
            assert node.span is not None, node
            stack.extend(ast.children(node))


# ---------------------------------------------------------------------- size and depth limits
def test_long_chain_parses_flat():
    n = 100_000
    t0 = time.perf_counter()
    e = expr("x" + " -> relu" * n)
    assert isinstance(e, ast.Chain) and len(e.items) == n + 1
    assert time.perf_counter() - t0 < 30


def test_long_sum_parses_flat():
    e = expr(" + ".join(["x"] * 2000))
    assert isinstance(e, ast.BinOps) and len(e.operands) == 2000 and set(e.ops) == {"+"}


def test_long_program_parses():
    lines = "\n".join(f"  h{i} = h{i - 1} -> dense(4) -> relu" for i in range(1, 5001))
    (m,) = parse("model M {\n  input h0: [b, 4]\n" + lines + "\n}\n").items
    assert len(m.body) == 5001


@pytest.mark.parametrize("make", [
    lambda n: "(" * n + "x" + ")" * n,
    lambda n: "[" * n + "x" + "]" * n,
    lambda n: "f(" * n + "x" + ")" * n,
    lambda n: "-" * n + "x",
    lambda n: "not " * n + "x",
    lambda n: "x" + " ** x" * n,
    lambda n: "if a then b else " * n + "x",
    lambda n: "x" + ".a" * n,
    lambda n: "x -> " + "(relu -> " * n + "relu" + ")" * n,
], ids=["parens", "lists", "calls", "minus", "not", "power", "if", "attr", "chains"])
def test_nesting_limit_is_a_parse_error(make):
    ok = expr(make(MAX_NESTING // 2 - 5))  # well inside the limit
    assert ok is not None
    for n in (MAX_NESTING + 10, 5_000):
        with pytest.raises(nndsl.ParseError) as info:
            expr(make(n))
        assert "nested deeper than" in str(info.value)
        assert info.value.span is not None


def test_brackets_in_strings_and_comments_do_not_count_as_nesting():
    text = "(" * (MAX_NESTING + 5)
    assert expr(f'"{text}" # {text}') == ast.String(text)


# ---------------------------------------------------------------------- the grammar itself
def test_grammar_is_lalr_without_conflicts_or_collisions():
    """strict=True fails on any shift/reduce or reduce/reduce conflict and on terminals that can match
    the same text in one lexer state. Keywords and NAME overlap (`model` is both), but Lark gives a
    string terminal precedence over a regex that matches the same text, and the contextual lexer only
    offers a keyword where the parser can take it, so `step(x)` and `data.x` lex as names."""
    Lark(grammar_path().read_text(), parser="lalr", lexer="contextual", strict=True)


def test_grammar_names_no_layer():
    """Layers resolve through the op registry; the grammar spells out statements, never ops."""
    from nndsl.ops import OPS
    from nndsl.syntax.parser import keywords
    public = {n for n, op in OPS.items() if op.kind != "internal"}
    # `step` and `sample` are both: statement keywords only where a train statement starts
    assert (public & keywords()) <= {"step", "sample"}, "only `step` and `sample` are both an op and a keyword"


def test_sample_is_an_op_in_expressions_and_a_statement_in_train_blocks():
    from nndsl.syntax.parser import parse
    m = parse("train t {\n  x = logits -> sample(temperature=0.5)\n  sample x -> sample every 10\n}\n")
    (block,) = m.items
    assert [type(s).__name__ for s in block.body] == ["Assign", "Sample"]
