"""Expressions: literals, names, fields, indexing, arithmetic, comparisons, `if`, and `->`
chains. Each is one function registered with @expr for its AST class (Builder.eval dispatches
on it); calls are in calls.py. Numbers stay static values; anything touching a tensor adds nodes."""
from __future__ import annotations

from .. import bounds
from ..errors import LimitError, NameResolutionError, ShapeError, TypeCheckError, closest
from ..ops import OPS
from ..syntax import ast
from ..values import (
    Captured,
    ChainLayer,
    DefRef,
    Layer,
    ModelLayer,
    NeedsConcrete,
    OpRef,
    Poison,
    Poisoned,
    Record,
    StackLayer,
    Sym,
    TensorVal,
    TupleVal,
    describe,
)
from .builder import MAX_NODES, Env, expr
from .calls import bind_model_args, make_op_layer
from .special import SPECIAL


@expr(ast.Number)
def eval_Number(b, e, env):
    return e.value


@expr(ast.String)
def eval_String(b, e, env):
    return e.value


@expr(ast.Bool)
def eval_Bool(b, e, env):
    return e.value


@expr(ast.Paren)
def eval_Paren(b, e, env):
    return b.eval(e.expr, env)


@expr(ast.Name)
def eval_Name(b, e: ast.Name, env: Env):
    try:
        v = env.lookup(e.id)
    except KeyError:
        pass
    else:
        if isinstance(v, Poison):
            raise Poisoned(e.id)
        if isinstance(v, Captured):
            raise TypeCheckError(f"tensor argument `{e.id}` can only give a state its initial value "
                                 "inside a cell", e.span, code="E350",
                                 help=f"write `state NAME: [...] = {e.id}`")
        return v
    if e.id == "none":
        return None
    d = b.program.definitions.get(e.id)
    if isinstance(d, ast.ModelDef):  # train blocks are not values: they may share a name with an op
        return DefRef(e.id, d, e.span)
    if (e.id in OPS and OPS[e.id].kind != "internal") or e.id in SPECIAL:
        return OpRef(e.id, e.span)
    known = env.names() | set(b.program.definitions) | set(OPS) | set(SPECIAL)
    guess = closest(e.id, known)
    raise NameResolutionError(f"unknown name `{e.id}`", e.span, code="E202",
                              help=f"did you mean `{guess}`?" if guess else None)


@expr(ast.Attr)
def eval_Attr(b, e: ast.Attr, env):
    obj = b.eval(e.obj, env)
    if isinstance(obj, Record):
        if e.name in obj.fields:
            return obj.fields[e.name]
        guess = closest(e.name, obj.fields)
        raise NameResolutionError(f"{describe(obj)} has no field `{e.name}`", e.span, code="E203",
                                  help=f"did you mean `{guess}`?" if guess else None)
    if isinstance(obj, TensorVal) and obj.fields and e.name in obj.fields:
        return obj.fields[e.name]
    if isinstance(obj, TensorVal) and e.name == "shape":
        return [Sym(d) if isinstance(d, str) else d for d in obj.type.shape]
    raise TypeCheckError(f"{describe(obj)} has no fields (`.{e.name}`)", e.span, code="E312")


@expr(ast.Index)
def eval_Index(b, e: ast.Index, env):
    obj = b.eval(e.obj, env)
    idx = b.eval(e.index, env)
    if isinstance(idx, Sym):
        raise NeedsConcrete("an index given by a symbolic value", e.index.span)
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise TypeCheckError(f"an index must be a static integer, found {describe(idx)}", e.index.span)
    items = obj.items if isinstance(obj, TupleVal) else obj if isinstance(obj, list) else None
    if items is None:
        raise TypeCheckError(f"cannot index {describe(obj)}", e.span, code="E312")
    if not -len(items) <= idx < len(items):
        raise ShapeError(f"index {idx} out of range for {len(items)} values", e.index.span)
    return items[idx]


@expr(ast.ListExpr)
def eval_ListExpr(b, e: ast.ListExpr, env):
    vals = [b.eval(x, env) for x in e.items]
    if any(isinstance(v, TensorVal) for v in vals):
        tensors = [b.as_tensor(v, x.span) for v, x in zip(vals, e.items)]
        return b.add_node("concat", tensors, {"axis": -1}, e.span, label="concat")
    return vals


@expr(ast.Unary)
def eval_Unary(b, e: ast.Unary, env):
    v = b.eval(e.operand, env)
    if e.op == "not":
        return not truth(v, e.operand.span)
    if isinstance(v, TensorVal):
        return v if e.op == "+" else b.add_node("neg", [v], {}, e.span)
    require_number(v, e.operand.span)
    if e.op == "+":
        return v
    return -v if isinstance(v, Sym) else bounds.check(-v, e.span)


@expr(ast.Power)
def eval_Power(b, e: ast.Power, env):
    return binop(b, "**", b.eval(e.base, env), b.eval(e.exp, env), e, e.base, e.exp)


@expr(ast.BinOps)
def eval_BinOps(b, e: ast.BinOps, env):
    acc = b.eval(e.operands[0], env)
    for op, rhs_e in zip(e.ops, e.operands[1:]):
        acc = binop(b, op, acc, b.eval(rhs_e, env), e, e.operands[0], rhs_e)
    return acc


@expr(ast.Compare)
def eval_Compare(b, e: ast.Compare, env):
    lhs, rhs = b.eval(e.left, env), b.eval(e.right, env)
    if isinstance(lhs, TensorVal) or isinstance(rhs, TensorVal):
        name = {"==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater",
                ">=": "greater_equal"}[e.op]
        return b.add_node(name, [b.as_tensor(lhs, e.left.span), b.as_tensor(rhs, e.right.span)], {},
                          e.span, label=f"`{e.op}`")
    for v, x in ((lhs, e.left), (rhs, e.right)):
        if is_layer(v):
            raise TypeCheckError(f"`{e.op}` cannot compare {describe(v)}", x.span, code="E313")
    if isinstance(lhs, Sym) or isinstance(rhs, Sym):
        if e.op in ("==", "!=") and isinstance(lhs, Sym) and isinstance(rhs, Sym) and lhs == rhs:
            return e.op == "=="
        raise NeedsConcrete(f"`{e.op}` on a symbolic dimension", e.span)
    try:
        if e.op in ("==", "!="):
            return (lhs == rhs) == (e.op == "==")
        return {"<": lambda: lhs < rhs, "<=": lambda: lhs <= rhs, ">": lambda: lhs > rhs,
                ">=": lambda: lhs >= rhs}[e.op]()
    except TypeError:
        raise TypeCheckError(f"cannot compare {describe(lhs)} and {describe(rhs)}", e.span) from None


@expr(ast.BoolOp)
def eval_BoolOp(b, e: ast.BoolOp, env):
    for x in e.operands:
        t = truth(b.eval(x, env), x.span)
        if e.op == "or" and t:
            return True
        if e.op == "and" and not t:
            return False
    return e.op == "and"


@expr(ast.If)
def eval_If(b, e: ast.If, env):
    cond = truth(b.eval(e.cond, env), e.cond.span)
    return b.eval(e.then if cond else e.orelse, env)


def truth(v, span) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, Sym):
        raise NeedsConcrete("a symbolic dimension as a condition", span)
    if isinstance(v, (int, float)):
        return bool(v)
    raise TypeCheckError(f"a condition must be a static boolean, found {describe(v)}", span,
                         code="E314", help="`if` chooses at compile time; it cannot test tensor values")


def require_number(v, span):
    if isinstance(v, bool) or not isinstance(v, (int, float, Sym)):
        raise TypeCheckError(f"expected a number, found {describe(v)}", span, code="E311")


def binop(b, op, lhs, rhs, e, ea, eb):
    """`lhs op rhs`: a node for tensors, a number for numbers, a stack for `LAYER * n`
    (`ea`, `eb`: the operands' expressions, for their spans)."""
    layer_a, layer_b = is_layer(lhs), is_layer(rhs)
    if op == "*" and (layer_a or layer_b):
        layer, n, ne = (lhs, rhs, eb) if layer_a else (rhs, lhs, ea)
        return _stack(b, layer, n, ne, e)
    if layer_a or layer_b:
        bad = ea if layer_a else eb
        raise TypeCheckError(f"`{op}` needs tensors or numbers, found a layer", bad.span, code="E316",
                             help=f"`->` binds loosest, so `x -> f {op} y` means `x -> (f {op} y)`; "
                                  f"write `(x -> f) {op} y`")
    if isinstance(lhs, TensorVal) or isinstance(rhs, TensorVal):
        name = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow"}[op]
        ta, tb = b.as_tensor(lhs, ea.span), b.as_tensor(rhs, eb.span)
        return b.add_node(name, [ta, tb], {}, e.span, label=f"`{op}`")
    require_number(lhs, ea.span)
    require_number(rhs, eb.span)
    if op == "@":
        raise TypeCheckError("`@` multiplies tensors, not numbers", e.span)
    if op == "/" and isinstance(lhs, int) and isinstance(rhs, int):
        if rhs == 0:
            raise ShapeError("division by zero", eb.span)
        return lhs // rhs if lhs % rhs == 0 else lhs / rhs
    try:
        if isinstance(lhs, Sym) or isinstance(rhs, Sym):
            return {"+": lambda: lhs + rhs, "-": lambda: lhs - rhs, "*": lambda: lhs * rhs,
                    "/": lambda: lhs / rhs, "**": lambda: lhs ** rhs}[op]()
        return bounds.arith(op, lhs, rhs, e.span)
    except ZeroDivisionError:
        raise ShapeError("division by zero", eb.span) from None
    except (OverflowError, TypeError):
        raise TypeCheckError(f"cannot compute `{op}` on these values", e.span) from None


def _stack(b, layer, n, ne, e) -> StackLayer:
    """`LAYER * n`: n copies of a layer, one after another."""
    if isinstance(n, Sym):
        raise NeedsConcrete(f"how often to stack a layer (`{n}`)", ne.span)
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeCheckError(f"`LAYER * n` needs a static integer n, found {describe(n)}",
                             ne.span, code="E315")
    if n < 1:
        raise ShapeError(f"cannot stack a layer {n} times", ne.span, code="E315")
    if n > MAX_NODES:  # refused before any copy is made: each copy costs at least a step
        raise LimitError(f"a stack of {bounds.short(n)} copies is more than the graph can hold "
                         f"({MAX_NODES:,} nodes)", ne.span, code="E404")
    return StackLayer(as_layer(b, layer, e.span), n, span=e.span)


def is_layer(v) -> bool:
    if isinstance(v, (Layer, OpRef)):
        return True
    return isinstance(v, DefRef) and isinstance(v.defn, ast.ModelDef)


def as_layer(b, v, span) -> Layer:
    """A value where a layer goes (after `->`): a layer, or an op or model named without arguments,
    which then takes its defaults."""
    if isinstance(v, Layer):
        return v
    if isinstance(v, OpRef):
        if v.name in SPECIAL and v.name not in OPS:
            raise TypeCheckError(f"`{v.name}` needs arguments", span, code="E317")
        return make_op_layer(b, v.name, [], {}, span)
    if isinstance(v, DefRef) and isinstance(v.defn, ast.ModelDef):
        return ModelLayer(v.defn, bind_model_args(b, v.defn, [], {}, span), span=span)
    raise TypeCheckError(f"expected a layer, found {describe(v)}", span, code="E317",
                         help="only layers can follow `->`")


@expr(ast.Chain)
def eval_Chain(b, e: ast.Chain, env):
    v = b.eval(e.items[0], env)
    for item in e.items[1:]:
        f = b.eval(item, env)
        if isinstance(v, (TensorVal, TupleVal)):
            ins = v.items if isinstance(v, TupleVal) else [v]
            v = b.apply(as_layer(b, f, item.span), ins, item.span)
        elif is_layer(v):
            left = as_layer(b, v, e.items[0].span)
            right = as_layer(b, f, item.span)
            layers = (left.layers if isinstance(left, ChainLayer) else [left]) + [right]
            v = ChainLayer(layers, span=e.span)
        else:
            raise TypeCheckError(f"`->` applies a layer to a tensor, but its left side is "
                                 f"{describe(v)}", e.items[0].span, code="E318")
    return v
