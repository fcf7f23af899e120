"""Declarations: the types of inputs, parameters and states (`input x: [batch, 784]`, with
their dimensions bound by name or checked against a use) and parameter initializers
(`~ normal(0.01)`)."""
from __future__ import annotations

from ..errors import NameResolutionError, ShapeError, TypeCheckError, closest
from ..ir.types import DTYPES, TensorType, shape_str
from ..ops import init as I
from ..syntax import ast
from ..values import NamedInt, Sym, SymDim, TensorVal, describe
from .args import bind_args
from .builder import Builder, Env


def eval_dims(b: Builder, texpr: ast.TypeExpr, env: Env, actual: TensorType | None, what: str,
              call_span=None):
    dims = []
    for i, d in enumerate(texpr.dims):
        have = actual.shape[i] if actual is not None and i < actual.rank else None
        if isinstance(d, ast.Name) and not env.has(d.id):
            val = Sym(d.id) if have is None else (Sym(have) if isinstance(have, str) else NamedInt(have, d.id))
            env.values[d.id] = val
            env.spans[d.id] = d.span
        else:
            val = b.eval(d, env)
            if isinstance(val, bool) or not isinstance(val, (int, Sym)):
                raise TypeCheckError(f"a dimension must be an integer, found {describe(val)}", d.span,
                                     code="E333")
            if isinstance(val, int) and val < 0:
                raise ShapeError(f"a dimension cannot be negative ({val})", d.span, code="E333")
            if isinstance(val, int) and isinstance(have, int) and val != have:
                raise ShapeError(f"{what} expects {shape_str(_dims_of(b, texpr, env))}, found "
                                 f"{shape_str(actual.shape)}", call_span or texpr.span, code="E303",
                                 help=f"axis {i}: expected {val}, found {have}",
                                 notes=[(texpr.span, "declared here")] if call_span else [])
        if isinstance(val, Sym):
            val = SymDim(val.expr) if val.expr in b.free else val.expr
        dims.append(val)
    return tuple(dims)


def _dims_of(b, texpr, env):
    out = []
    for d in texpr.dims:
        try:
            v = b.eval(d, env)
            out.append(v.expr if isinstance(v, Sym) else v)
        except Exception:  # noqa: BLE001 - only for the message: a size that cannot be shown is "?"
            out.append("?")
    return out


def dtype_of(texpr: ast.TypeExpr) -> str:
    if texpr.dtype is None:
        return "float32"
    if texpr.dtype not in DTYPES:
        guess = closest(texpr.dtype, DTYPES)
        raise TypeCheckError(f"unknown element type `{texpr.dtype}`", texpr.span, code="E334",
                             help=f"did you mean `{guess}`?" if guess else f"types: {', '.join(DTYPES)}")
    return DTYPES[texpr.dtype]


def bind_input(b: Builder, stmt: ast.Input, env: Env, actual: TensorVal | None,
               top_type: TensorType | None, call_span=None, owner: str = "") -> TensorVal:
    dtype = dtype_of(stmt.type)
    known = actual.type if actual is not None else top_type
    who = f"`{owner}` input `{stmt.name}`" if owner else f"input `{stmt.name}`"
    notes = [(stmt.type.span, "declared here")] if call_span else []
    if known is not None and known.rank != len(stmt.type.dims):
        raise ShapeError(f"{who} expects rank {len(stmt.type.dims)} "
                         f"{shape_str(_dims_of(b, stmt.type, env))}, found {shape_str(known.shape)} "
                         f"(rank {known.rank})", call_span or stmt.type.span, code="E303", notes=notes)
    dims = eval_dims(b, stmt.type, env, known, who, call_span)
    if actual is not None:
        want_int = not dtype.startswith(("float", "bfloat"))
        if stmt.type.dtype is not None and want_int == actual.type.is_float:
            raise TypeCheckError(f"{who} expects {TensorType(dims, dtype)}, found "
                                 f"{actual.type}", call_span or stmt.type.span, code="E335", notes=notes)
        return actual
    t = TensorType(dims if top_type is None else top_type.shape, dtype)
    node = b.g.add("input", [], {"name": stmt.name}, t, stmt.span, label=stmt.name)
    b.g.inputs.append(node.id)
    return TensorVal(node.id, t, stmt.span)


def make_param(b: Builder, stmt: ast.Param, env: Env) -> TensorVal:
    dims = eval_dims(b, stmt.type, env, None, f"param `{stmt.name}`")
    init, text = eval_init(b, stmt.init, env, len(dims))
    path = b.scope.path + (stmt.name,)
    return b.add_node("param", [], {"shape": dims, "init": init, "init_name": text,
                                    "dtype": dtype_of(stmt.type)}, stmt.span, path=path, label=stmt.name)


def eval_init(b: Builder, e, env, rank: int):
    """`~ normal(0.01)`: initializers are their own small namespace, not ops."""
    if e is None:
        return (I.glorot, "glorot") if rank >= 2 else (I.zeros, "zeros")
    if isinstance(e, ast.Number):
        return I.constant(e.value), str(e.value)
    name, args, kw = None, [], {}
    if isinstance(e, ast.Name):
        name = e.id
    elif isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
        name = e.func.id
        for a in e.args:
            if isinstance(a, ast.Kwarg):
                kw[a.name] = b.eval(a.value, env)
            else:
                args.append((b.eval(a, env), a.span))
    if name in I.PLAIN and not args and not kw:
        return I.PLAIN[name], name
    if name in I.FACTORIES:
        # declared like an op's arguments, so a wrong one says what is accepted (E322-E326)
        bound = bind_args(name, I.ARGS[name], args, kw, e.span, {})
        return I.FACTORIES[name](**bound), f"{name}({', '.join(str(v) for v, _ in args)})"
    known = list(I.PLAIN) + list(I.FACTORIES)
    guess = closest(name or "", known)
    raise NameResolutionError(f"unknown initializer{f' `{name}`' if name else ''}", e.span, code="E207",
                              help=f"did you mean `{guess}`?" if guess else f"initializers: {', '.join(known)}")
