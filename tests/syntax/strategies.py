"""Hypothesis strategies for ASTs: any shape the AST can hold, with names the lexer reads back as names."""
from __future__ import annotations

from hypothesis import strategies as st

from nndsl.syntax import ast
from nndsl.syntax.parser import keywords

KEYWORDS = keywords()

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}'{0,2}", fullmatch=True).filter(lambda s: s not in KEYWORDS)

numbers = st.one_of(
    st.integers(0, 10**12).map(ast.Number),
    st.floats(0, 1e30, allow_nan=False, allow_infinity=False).map(lambda v: ast.Number(abs(v))),
)


def _binops(sub):
    """`a + b - c` or `a * b @ c`: one precedence level per node, as the parser builds them."""
    def with_ops(t):
        operands, group = t
        n = len(operands) - 1
        return st.lists(st.sampled_from(group), min_size=n, max_size=n).map(
            lambda ops: ast.BinOps(tuple(operands), tuple(ops)))
    return st.tuples(st.lists(sub, min_size=2, max_size=4),
                     st.sampled_from([("+", "-"), ("*", "/", "@")])).flatmap(with_ops)


def expressions(names=names, numbers=numbers, strings=st.text(max_size=6), max_leaves=16):
    """Any expression tree over the given leaves (no Paren needed: unparse adds what precedence needs)."""
    leaves = st.one_of(names.map(ast.Name), numbers, strings.map(ast.String), st.booleans().map(ast.Bool))

    def extend(sub):
        tup = lambda lo, hi: st.lists(sub, min_size=lo, max_size=hi).map(tuple)  # noqa: E731
        args = st.lists(st.one_of(sub, st.builds(ast.Kwarg, names, sub)), max_size=3).map(tuple)
        return st.one_of(
            st.builds(ast.ListExpr, tup(0, 3)),
            st.builds(ast.Paren, sub),
            st.builds(ast.Call, sub, args),
            st.builds(ast.Attr, sub, names),
            st.builds(ast.Index, sub, sub),
            st.builds(ast.Chain, tup(2, 4)),
            _binops(sub),
            st.builds(ast.Power, sub, sub),
            st.builds(ast.Unary, st.sampled_from(["-", "+", "not"]), sub),
            st.builds(ast.Compare, sub, st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), sub),
            st.builds(ast.BoolOp, st.sampled_from(["and", "or"]), tup(2, 3)),
            st.builds(ast.If, sub, sub, sub),
        )
    return st.recursive(leaves, extend, max_leaves=max_leaves)


exprs = expressions()
types = st.builds(ast.TypeExpr, st.none() | names, st.lists(exprs, max_size=3).map(tuple))
targets = st.lists(names, min_size=1, max_size=3).map(tuple)

model_stmts = st.one_of(
    st.builds(ast.Input, names, types),
    st.builds(ast.State, names, types, st.none() | exprs),
    st.builds(ast.Param, names, types, st.none() | exprs),
    st.builds(ast.Output, names, st.none() | exprs),
    st.builds(ast.Assign, targets, exprs),
)

train_stmts = st.one_of(
    st.builds(ast.Data, exprs),
    st.builds(ast.Instance, names, exprs),
    st.builds(ast.Loss, names, exprs),
    st.builds(ast.Metric, names, exprs),
    st.builds(ast.Step, targets, st.integers(1, 1000), exprs, exprs),
    st.builds(ast.Setting, st.sampled_from(["epochs", "iterations", "seed", "clip_norm", "eval_every"]), exprs),
    st.builds(ast.Sample, exprs, exprs),
    st.builds(ast.Draw, names, exprs),
    st.builds(ast.Assign, targets, exprs),
)

arg_decls = st.builds(ast.ArgDecl, names, st.none() | names, st.none() | exprs)

definitions = st.one_of(
    st.builds(ast.ModelDef, st.sampled_from(["model", "cell"]), names,
              st.lists(arg_decls, max_size=3).map(tuple), st.lists(model_stmts, max_size=5).map(tuple)),
    st.builds(ast.TrainDef, names, st.lists(train_stmts, max_size=5).map(tuple)),
    st.builds(ast.Import, st.text(max_size=10), st.just(True)),
    st.builds(ast.Import, names, st.just(False)),
)

modules = st.builds(ast.Module, st.lists(definitions, max_size=4).map(tuple))


def strip_parens(node):
    """The tree without Paren nodes: what a tree means, whatever its parentheses."""
    import dataclasses
    if isinstance(node, ast.Paren):
        return strip_parens(node.expr)
    if isinstance(node, tuple):
        return tuple(strip_parens(x) for x in node)
    if not isinstance(node, ast.Node):
        return node
    changes = {f.name: strip_parens(getattr(node, f.name)) for f in dataclasses.fields(node)
               if f.name not in ("span", "name_span", "text")}
    return dataclasses.replace(node, **changes)
