"""Static arguments bound to what they declare: an op's `Attr`s, an initializer's, a data
source's or an optimizer's (`bind_args`), and a model's typed parameters (`check_arg_type`).
Every refusal says what the argument accepts."""
from __future__ import annotations

from .. import bounds
from ..errors import TypeCheckError, closest
from ..values import DefRef, Layer, NeedsConcrete, Opaque, OpRef, Sym, SymDim, TensorVal, describe

TYPE_NAMES = {"int", "float", "bool", "str", "string", "layer", "any", "shape", "dim", "tensor"}


def check_arg_type(owner, name, typ, value, span, decl_span=None):
    if typ is None or typ == "any" or isinstance(value, Opaque):
        return
    if typ not in TYPE_NAMES:
        raise TypeCheckError(f"unknown type `{typ}` for argument `{name}`", decl_span or span,
                             code="E325", help=f"types are: {', '.join(sorted(TYPE_NAMES))}")
    ok = {
        "int": isinstance(value, (int, Sym)) and not isinstance(value, bool),
        "dim": isinstance(value, (int, Sym)) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str), "string": isinstance(value, str),
        "layer": isinstance(value, (Layer, OpRef, DefRef)),
        "shape": isinstance(value, list),
        "tensor": isinstance(value, TensorVal) or (isinstance(value, (int, float)) and not isinstance(value, bool)),
    }[typ]
    if not ok:
        raise TypeCheckError(f"argument `{name}` of `{owner}` must be {typ}, found {describe(value)}",
                             span, code="E326")


def bind_args(owner, attrs, pos, kw, span, kw_spans, symbolic: bool = False) -> dict:
    names = [a.name for a in attrs]
    if len(pos) > len(attrs):
        raise TypeCheckError(f"`{owner}` takes {len(attrs)} arguments, {len(pos)} given", span, code="E322",
                             help=f"its arguments are: {', '.join(names) or 'none'}")
    out, spans = {}, {}
    for a, (v, s) in zip(attrs, pos):
        out[a.name], spans[a.name] = v, s
    for k, v in kw.items():
        if k not in names:
            guess = closest(k, names)
            raise TypeCheckError(f"`{owner}` has no argument `{k}`", kw_spans.get(k, span), code="E323",
                                 help=f"did you mean `{guess}`?" if guess else
                                 f"its arguments are: {', '.join(names) or 'none'}")
        if k in out:
            raise TypeCheckError(f"argument `{k}` given twice", kw_spans.get(k, span), code="E319")
        out[k], spans[k] = v, kw_spans.get(k, span)
    from ..ops.registry import REQUIRED
    for a in attrs:
        if a.name not in out:
            if a.default is REQUIRED:
                raise TypeCheckError(f"`{owner}` needs argument `{a.name}`", span, code="E324")
            out[a.name] = a.default
            continue
        out[a.name] = coerce_attr(owner, a, out[a.name], spans.get(a.name, span), symbolic)
    return out


def coerce_attr(owner, a, v, span, symbolic: bool = False):
    """The argument's type first (a float 3.0 for an int is 3), then its declared range and form
    (registry.Attr.check): every diagnostic says what the argument accepts. With `symbolic`
    (checking a definition without its static arguments' values), a size known only by name
    enters the shape rule as a symbolic dimension."""
    from ..ops.registry import ArgError
    if isinstance(v, Opaque):
        raise NeedsConcrete(f"`{a.name}` of `{owner}` without a value for `{v.name}`", span)
    if symbolic and a.type in ("int", "ints"):
        if isinstance(v, Sym):
            return SymDim(v.expr)
        if a.type == "ints" and isinstance(v, list) and any(isinstance(x, Sym) for x in v):
            return tuple(SymDim(x.expr) if isinstance(x, Sym) else x for x in v)
    given = v
    v = _coerce_type(owner, a, v, span)
    try:
        return a.check(v)
    except ArgError as e:
        raise TypeCheckError(f"argument `{a.name}` of `{owner}` must be {e}, found {shown_arg(given)}",
                             span, code="E326") from None


def shown_arg(v, room: int = 60) -> str:
    """An argument's value for a message: lists written out (shortened), huge integers by their
    number of digits (writing 10**5000 out is slow, long and refused by Python)."""
    def text(x):
        if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10**15:
            digits = len(str(abs(x))) if x.bit_length() < 14000 else int(x.bit_length() * 0.30103) + 1
            return f"<a {digits}-digit number>"
        if isinstance(x, (list, tuple)):
            return "[" + ", ".join(text(y) for y in x) + "]"
        if isinstance(x, bool):
            return "true" if x else "false"
        if isinstance(x, str):
            return f'"{x}"'
        return str(x) if isinstance(x, (int, float)) else describe(x)
    if isinstance(v, (list, tuple)):
        t = text(v)
        return "the list " + (t if len(t) <= room else t[:room - 4] + " ...]")
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**15:
        return text(v).strip("<>")
    return describe(v)


def _coerce_type(owner, a, v, span):
    def bad():
        return TypeCheckError(f"argument `{a.name}` of `{owner}` must be {a.accepts()}, "
                              f"found {shown_arg(v)}", span, code="E326")
    if a.type == "int":
        if isinstance(v, Sym):
            raise NeedsConcrete(f"`{a.name}` from a symbolic dimension", span)
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                return bounds.check(int(v), span, f"argument `{a.name}` of `{owner}`")
            raise bad()
    elif a.type == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            if v is None and a.default is None:
                return v
            raise bad()
        return float(v)
    elif a.type == "bool":
        if not isinstance(v, bool):
            raise bad()
    elif a.type == "str":
        if not isinstance(v, str):
            raise bad()
    elif a.type == "ints":
        if v is None and a.default is None:
            return v
        if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return tuple(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad()
    elif a.type == "floats":
        if v is None and a.default is None:
            return v
        vals = v if isinstance(v, list) else [v]
        if not vals or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            raise bad()
        return tuple(float(x) for x in v) if isinstance(v, list) else float(v)
    elif a.type in ("any", "padding"):
        if not _is_static(v):
            raise TypeCheckError(f"argument `{a.name}` of `{owner}` must be a static value, found {describe(v)}",
                                 span, code="E326")
    elif a.type == "shape":
        if isinstance(v, (int,)) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, (int, Sym)) and not isinstance(x, bool) for x in v):
            raise bad()
        return tuple(x.expr if isinstance(x, Sym) else x for x in v)
    return v


def _is_static(v) -> bool:
    if v is None or isinstance(v, (bool, int, float, str, Sym)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_is_static(x) for x in v)
    return False
