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
    st.builds(ast.Setting, st.sampled_from(["epochs", "iterations", "seed", "clip_norm", "eval_every", "precision"]), exprs),
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


# ---------------------------------------------------------------------- programs that mean something
# Layers and tensors built the way people write them (op calls with plausible arguments, chains,
# stacks, concatenation, cells, sub-models), so that checking reaches shape inference and layer
# application rather than stopping at the first unknown name.
def _public_ops():
    from nndsl.ops import OPS
    return {n: op for n, op in OPS.items() if op.kind not in ("internal",)}


def _attr_value(kind: str):
    n = lambda v: ast.Number(v)  # noqa: E731
    small = st.sampled_from([1, 2, 3, 4]).map(n)
    pair = st.lists(st.sampled_from([1, 2, 3]).map(n), min_size=1, max_size=3).map(tuple).map(ast.ListExpr)
    return {
        "int": st.one_of(small, st.sampled_from([0, -1]).map(lambda v: ast.Unary("-", n(1)) if v else n(0))),
        "float": st.sampled_from([0.5, 0.1, 1.0, 2]).map(n),
        "bool": st.booleans().map(ast.Bool),
        "str": st.sampled_from(["same", "valid", "float32"]).map(ast.String),
        "ints": st.one_of(small, pair),
        "shape": st.one_of(pair, st.just(ast.ListExpr((ast.Name("batch"), ast.Unary("-", n(1)))))),
    }.get(kind, st.one_of(small, st.sampled_from(["same", "valid"]).map(ast.String)))


@st.composite
def op_layer(draw, kinds=("layer", "function")):
    ops = {k: v for k, v in _public_ops().items() if v.kind in kinds}
    name = draw(st.sampled_from(sorted(ops)))
    op = ops[name]
    args, named = [], []
    for a in op.attrs:
        if draw(st.integers(0, 3)) == 0:
            continue  # leave it out: its default, or a "needs argument" error
        value = draw(_attr_value(a.type))
        if not named and draw(st.booleans()):
            args.append(value)
        else:
            named.append(ast.Kwarg(a.name, value))
    if not args and not named and draw(st.booleans()):
        return ast.Name(name)
    return ast.Call(ast.Name(name), tuple(args + named))


@st.composite
def layer_exprs(draw, depth: int = 0):
    choice = draw(st.integers(0, 9 if depth < 2 else 3))
    if choice <= 3:
        return draw(op_layer())
    if choice == 4:
        return ast.Paren(ast.Chain((draw(layer_exprs(depth + 1)), draw(layer_exprs(depth + 1)))))
    if choice == 5:
        return ast.BinOps((draw(layer_exprs(depth + 1)), ast.Number(draw(st.integers(0, 3)))), ("*",))
    if choice == 6:
        return ast.Call(ast.Name("Sub"), (ast.Number(draw(st.integers(1, 5))),))
    if choice == 7:
        return ast.Call(ast.Name("C"), (ast.Number(draw(st.integers(1, 4))),))
    if choice == 8:
        return ast.Call(ast.Name("unroll"), (ast.Call(ast.Name("C"), (ast.Number(4),)),
                                             ast.Kwarg("steps", ast.Number(draw(st.integers(0, 3))))))
    return ast.Call(ast.Name("bidirectional"), (ast.Call(ast.Name("C"), (ast.Number(3),)),))


@st.composite
def tensor_exprs(draw, env: tuple, depth: int = 0):
    choice = draw(st.integers(0, 10 if depth < 3 else 0))
    sub = lambda: draw(tensor_exprs(env, depth + 1))  # noqa: E731
    if choice == 0:
        return ast.Name(draw(st.sampled_from(env)))
    if choice in (1, 2):
        layers = draw(st.lists(layer_exprs(), min_size=1, max_size=3))
        return ast.Chain((sub(), *layers))
    if choice == 3:
        return ast.BinOps((sub(), sub()), (draw(st.sampled_from("+-*/@")),))
    if choice == 4:
        return ast.ListExpr(tuple(sub() for _ in range(draw(st.integers(1, 3)))))
    if choice == 5:
        f = draw(op_layer())
        call = f if isinstance(f, ast.Call) else ast.Call(f, ())
        return ast.Call(call.func, (sub(), *call.args))
    if choice == 6:
        cond = draw(st.one_of(st.booleans().map(ast.Bool),
                              st.builds(ast.Compare, st.sampled_from(["batch", "x"]).map(ast.Name),
                                        st.sampled_from(["==", "!=", "<"]), st.integers(0, 4).map(ast.Number))))
        return ast.If(cond, sub(), sub())
    if choice == 7:
        return ast.Power(ast.Paren(sub()), ast.Number(2))
    if choice == 8:
        return ast.Unary(draw(st.sampled_from(["-", "not"])), sub())
    if choice == 9:
        return ast.Index(ast.Call(ast.Name("split"), (sub(), ast.Number(2))), ast.Number(draw(st.integers(-1, 2))))
    return ast.Number(draw(st.sampled_from([1, 0.5])))


_B = ast.Name("batch")
INPUT_SHAPES = [(4,), (6, 4), (8, 8, 1), (4, 4, 4, 2)]
DATA = {
    "digits": (ast.Call(ast.Name("digits"), (ast.Kwarg("batch", ast.Number(8)),)), (8, 8, 1)),
    "ring_gaussians": (ast.Call(ast.Name("ring_gaussians"), (ast.Kwarg("modes", ast.Number(4)),)), (2,)),
    "logic": (ast.Call(ast.Name("logic"), (ast.Kwarg("gate", ast.String("xor")),)), (2,)),
}
SUB = ("model Sub(k: int = 4) {\n  input x: [batch, f]\n  output y = x -> dense(k)\n}\n"
       "cell C(n: int) {\n  input x: [batch, f]\n  state h: [batch, n] = zeros\n"
       "  h' = [h, x] -> dense(n) -> tanh\n  output h'\n}\n")


def _typ(dims) -> ast.TypeExpr:
    return ast.TypeExpr(None, (_B, *(ast.Number(d) for d in dims)))


@st.composite
def semantic_programs(draw) -> str:
    """Source text: helper definitions, a model M built from generated statements, maybe a train block."""
    train = draw(st.booleans())
    if train:
        source = draw(st.sampled_from(sorted(DATA)))
        data, dims = DATA[source]
    else:
        dims = draw(st.sampled_from(INPUT_SHAPES))
    env, body = ["x"], [ast.Input("x", _typ(dims))]
    if draw(st.integers(0, 3)) == 0:
        body.append(ast.Param("w", ast.TypeExpr(None, (ast.Number(dims[-1]),)),
                              draw(st.sampled_from([None, ast.Name("zeros"), ast.Call(ast.Name("normal"), (ast.Number(0.1),))]))))
        env.append("w")
    for i in range(draw(st.integers(0, 3))):
        body.append(ast.Assign((f"t{i}",), draw(tensor_exprs(tuple(env)))))
        env.append(f"t{i}")
    body.append(ast.Output("y", draw(tensor_exprs(tuple(env)))))
    items = [ast.ModelDef("model", "M", (), tuple(body))]
    if train:
        out = ast.Chain((ast.Attr(ast.Name("data"), "x"), ast.Name("net")))
        loss = draw(st.sampled_from(["mse", "cross_entropy", "bce_logits", "hinge"]))
        tbody = [ast.Data(data), ast.Instance("net", ast.Call(ast.Name("M"), ())),
                 ast.Assign(("out",), out),
                 ast.Loss("l", ast.Call(ast.Name(loss), (ast.Name("out"), ast.Attr(ast.Name("data"), "y")))),
                 ast.Step(("net",), draw(st.integers(1, 2)), ast.Name("l"),
                          ast.Call(ast.Name(draw(st.sampled_from(["adam", "sgd", "rmsprop"]))), ())),
                 ast.Setting("epochs", ast.Number(1))]
        if draw(st.booleans()):
            tbody.insert(4, ast.Metric("acc", ast.Call(ast.Name("accuracy"), (ast.Name("out"), ast.Attr(ast.Name("data"), "y")))))
        items.append(ast.TrainDef("T", tuple(tbody)))
    from nndsl.syntax.unparse import unparse
    return SUB + unparse(ast.Module(tuple(items)))
