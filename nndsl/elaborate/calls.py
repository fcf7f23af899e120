"""Calls: `f(args)` where f is an op, a model, a layer or a special form. Positional tensors
come first and are the inputs; the rest are static arguments, bound to what the op or model
declares (`bind_args`, `bind_model_args`). Special forms (special.py) are asked first."""
from __future__ import annotations

from ..errors import TypeCheckError, closest
from ..ops import OPS
from ..syntax import ast
from ..values import DefRef, Layer, ModelLayer, OpLayer, OpRef, TensorVal, describe
from .args import bind_args, check_arg_type
from .builder import Env, expr
from .special import SPECIAL


@expr(ast.Call)
def eval_Call(b, e: ast.Call, env):
    f = b.eval(e.func, env)
    pos, kw, kw_spans = _arguments(b, e, env)
    if isinstance(f, OpRef) and f.name in SPECIAL:
        out = SPECIAL[f.name](b, e, pos, kw, env)
        if out is not NotImplemented:
            return out
    n_tensor = 0
    while n_tensor < len(pos) and isinstance(pos[n_tensor][0], TensorVal):
        n_tensor += 1
    if isinstance(f, OpRef):
        return call_op(b, f.name, pos, kw, kw_spans, n_tensor, e.span)
    if isinstance(f, DefRef) and isinstance(f.defn, ast.ModelDef):
        return _call_model(b, f.defn, pos, kw, kw_spans, n_tensor, e.span)
    if isinstance(f, Layer) and n_tensor and not kw and n_tensor == len(pos):
        return b.apply(f, [p for p, _ in pos], e.span)
    raise TypeCheckError(f"{describe(f)} cannot be called", e.func.span, code="E320")


def _arguments(b, e: ast.Call, env):
    """The call's arguments evaluated: positional (value, span) pairs, then named ones."""
    pos, kw, kw_spans = [], {}, {}
    for a in e.args:
        if isinstance(a, ast.Kwarg):
            if a.name in kw:
                raise TypeCheckError(f"argument `{a.name}` given twice", a.span, code="E319")
            kw[a.name] = b.eval(a.value, env)
            kw_spans[a.name] = a.span
        else:
            if kw:
                raise TypeCheckError("a positional argument follows a named one", a.span, code="E319")
            pos.append((b.eval(a, env), a.span))
    return pos, kw, kw_spans


def _call_model(b, defn, pos, kw, kw_spans, n_tensor, span):
    """`Model(args)` is a layer; `Model(x, args)`, with its inputs first, applies it to them."""
    n_in = sum(isinstance(s, ast.Input) for s in defn.body)
    if n_tensor:
        args = bind_model_args(b, defn, [p for p, _ in pos[n_in:]], kw, span,
                               [s for _, s in pos[n_in:]], kw_spans)
        layer = ModelLayer(defn, args, span=span)
        return b.apply(layer, [p for p, _ in pos[:n_in]], span)
    args = bind_model_args(b, defn, [p for p, _ in pos], kw, span, [s for _, s in pos], kw_spans)
    return ModelLayer(defn, args, span=span)


def call_op(b, name, pos, kw, kw_spans, n_tensor, span):
    opdef = OPS[name]
    if opdef.kind == "random":
        return b.apply(make_op_layer(b, name, pos, kw, span, kw_spans=kw_spans), [], span)
    if n_tensor == 0:
        return make_op_layer(b, name, pos, kw, span, kw_spans=kw_spans)
    if opdef.variadic:
        ins, rest = [p for p, _ in pos[:n_tensor]], pos[n_tensor:]
    else:
        # Fill input slots in order: a tensor, or a number where the slot takes a constant
        # (`bce_logits(d, 1)`); the first other value starts the static arguments
        # (`x -> conditional_batchnorm(labels, 10)`).
        ins = []
        for i, (v, s) in enumerate(pos[:len(opdef.inputs)]):
            slot = opdef.inputs[i]
            if isinstance(v, TensorVal):
                ins.append(v)
            elif slot in opdef.const_inputs and isinstance(v, (int, float)) and not isinstance(v, bool):
                ins.append(b.const(float(v), s))
            else:
                break
        rest = pos[len(ins):]
        if rest and isinstance(rest[0][0], TensorVal):
            raise TypeCheckError(f"`{name}` takes {len(opdef.inputs)} tensor inputs; this one is extra",
                                 rest[0][1], code="E321")
    layer = make_op_layer(b, name, rest, kw, span, kw_spans=kw_spans)
    if len(ins) < len(opdef.inputs) and not opdef.variadic:
        return _partial(layer, ins, span)
    return b.apply(layer, ins, span)


def _partial(layer: OpLayer, given: list, span):
    """`cross_entropy(y)` in a chain: the chain's value becomes the first input."""
    return OpLayer(layer.op, layer.attrs, bound=list(given), span=span, kind_name=layer.kind_name)


def make_op_layer(b, name, pos, kw, span, kw_spans=None) -> OpLayer:
    opdef = OPS[name]
    attrs = bind_args(name, opdef.attrs, pos, kw, span, kw_spans or {}, symbolic=b.checking)
    return OpLayer(name, attrs, span=span)


def bind_model_args(b, defn, pos, kw, span, pos_spans=None, kw_spans=None) -> dict:
    params = defn.params
    names = [p.name for p in params]
    if len(pos) > len(params):
        raise TypeCheckError(f"{defn.kind} `{defn.name}` takes {len(params)} arguments, "
                             f"{len(pos)} given", span, code="E322")
    out = {}
    for p, v in zip(params, pos):
        out[p.name] = v
    for k, v in kw.items():
        if k not in names:
            guess = closest(k, names)
            raise TypeCheckError(f"{defn.kind} `{defn.name}` has no argument `{k}`",
                                 (kw_spans or {}).get(k, span), code="E323",
                                 help=f"did you mean `{guess}`?" if guess else
                                 f"its arguments are: {', '.join(names) or 'none'}")
        if k in out:
            raise TypeCheckError(f"argument `{k}` given twice", (kw_spans or {}).get(k, span),
                                 code="E319")
        out[k] = v
    for p in params:
        if p.name not in out:
            if p.default is None:
                raise TypeCheckError(f"{defn.kind} `{defn.name}` needs argument `{p.name}`", span,
                                     code="E324")
            out[p.name] = b.eval(p.default, Env(dict(out)))
        check_arg_type(defn.name, p.name, p.type, out[p.name], span, p.span)
    return out
