"""AST to canonical source text: the parser's inverse, up to layout and comments.

`parse(unparse(tree)) == tree` for every tree the parser makes (spans aside). Parentheses come out
where the tree has `Paren` nodes and wherever precedence needs them, so a tree built by hand comes
out as text that parses to the same tree with those `Paren`s added (`add_parens`).

Layout is canonical: two-space indentation, one statement per line, a blank line between
definitions, and a chain too long for one line broken before each `->`. Comments are not in the
AST, so they are not in the output.
"""
from __future__ import annotations

import dataclasses
import re

from . import ast

INDENT = "  "
MAX_WIDTH = 100
_NUMBER = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")

# Binding strength, loosest first: the precedence table of docs/language.md.
IF, CHAIN, OR, AND, NOT, COMPARE, ADD, MUL, UNARY, POWER, POSTFIX, ATOM = range(12)


def level(e) -> int:
    """How tightly an expression node binds (higher binds tighter)."""
    if isinstance(e, ast.If):
        return IF
    if isinstance(e, ast.Chain):
        return CHAIN
    if isinstance(e, ast.BoolOp):
        return OR if e.op == "or" else AND
    if isinstance(e, ast.Unary):
        return NOT if e.op == "not" else UNARY
    if isinstance(e, ast.Compare):
        return COMPARE
    if isinstance(e, ast.BinOps):
        return ADD if e.ops and e.ops[0] in ("+", "-") else MUL
    if isinstance(e, ast.Power):
        return POWER
    if isinstance(e, (ast.Call, ast.Attr, ast.Index)):
        return POSTFIX
    return ATOM


def _needs(e) -> dict:
    """field -> the least level a child in that field must have to stand without parentheses."""
    if isinstance(e, ast.Chain):
        return {"items": OR}
    if isinstance(e, ast.BoolOp):
        return {"operands": AND if e.op == "or" else NOT}
    if isinstance(e, ast.Unary):
        return {"operand": NOT if e.op == "not" else UNARY}
    if isinstance(e, ast.Compare):
        return {"left": ADD, "right": ADD}
    if isinstance(e, ast.BinOps):
        return {"operands": MUL if level(e) == ADD else UNARY}
    if isinstance(e, ast.Power):
        return {"base": POSTFIX, "exp": UNARY}
    if isinstance(e, (ast.Call, ast.Attr, ast.Index)):
        return {"func": POSTFIX, "obj": POSTFIX}
    return {}


def add_parens(e):
    """The tree `parse(unparse(e))` gives back: `e` with a Paren wherever precedence needs one."""
    if not isinstance(e, ast.Node):
        return e
    needs = _needs(e)
    changes = {}
    for f in dataclasses.fields(e):
        if f.name in ("span", "name_span", "text"):
            continue
        v = getattr(e, f.name)
        want = needs.get(f.name)

        def fix(x, want=want):
            return _paren_node(add_parens(x), want)
        if isinstance(v, ast.Node):
            changes[f.name] = fix(v)
        elif isinstance(v, tuple) and any(isinstance(x, ast.Node) for x in v):
            changes[f.name] = tuple(fix(x) for x in v)
    return dataclasses.replace(e, **changes) if changes else e


def _paren_node(e, need):
    if need is not None and isinstance(e, ast.Node) and not isinstance(e, ast.Kwarg) and level(e) < need:
        return ast.Paren(e, e.span)
    return e


# ---------------------------------------------------------------------- expressions
def expr(e) -> str:
    """One expression on one line."""
    method = _EXPR.get(type(e))
    if method is None:
        raise TypeError(f"cannot unparse {type(e).__name__} as an expression")
    return method(e)


def _sub(e, need: int) -> str:
    text = expr(e)
    return f"({text})" if level(e) < need else text


def number(n: ast.Number) -> str:
    text = n.text
    if text and _NUMBER.fullmatch(text):
        return text
    v = n.value
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"a Number holds {v!r}")
    if isinstance(v, int):
        return str(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{v} has no literal; write it as an expression")
    return repr(v)


def string(value: str) -> str:
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable() and ch not in "\x85\u2028\u2029":
            out.append(ch)
        else:
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def _args(args) -> str:
    return ", ".join(f"{a.name}={expr(a.value)}" if isinstance(a, ast.Kwarg) else expr(a) for a in args)


def _binops(e: ast.BinOps) -> str:
    need = MUL if level(e) == ADD else UNARY
    parts = [_sub(e.operands[0], need)]
    for op, x in zip(e.ops, e.operands[1:]):
        parts.append(f"{op} {_sub(x, need)}")
    return " ".join(parts)


def _unary(e: ast.Unary) -> str:
    if e.op == "not":
        return "not " + _sub(e.operand, NOT)
    return e.op + _sub(e.operand, UNARY)


def _attr(e: ast.Attr) -> str:
    obj = _sub(e.obj, POSTFIX)
    # `3.x` would lex as the number `3.` and a name; `3 .x` is the attribute.
    return f"{obj} .{e.name}" if isinstance(e.obj, ast.Number) else f"{obj}.{e.name}"


_EXPR = {
    ast.Name: lambda e: e.id,
    ast.Number: number,
    ast.String: lambda e: string(e.value),
    ast.Bool: lambda e: "true" if e.value else "false",
    ast.ListExpr: lambda e: "[" + ", ".join(expr(x) for x in e.items) + "]",
    ast.Paren: lambda e: "(" + expr(e.expr) + ")",
    ast.Call: lambda e: f"{_sub(e.func, POSTFIX)}({_args(e.args)})",
    ast.Attr: _attr,
    ast.Index: lambda e: f"{_sub(e.obj, POSTFIX)}[{expr(e.index)}]",
    ast.Chain: lambda e: " -> ".join(_sub(x, OR) for x in e.items),
    ast.BinOps: _binops,
    ast.Power: lambda e: f"{_sub(e.base, POSTFIX)} ** {_sub(e.exp, UNARY)}",
    ast.Unary: _unary,
    ast.Compare: lambda e: f"{_sub(e.left, ADD)} {e.op} {_sub(e.right, ADD)}",
    ast.BoolOp: lambda e: f" {e.op} ".join(_sub(x, OR + 1 if e.op == "or" else NOT) for x in e.operands),
    ast.If: lambda e: f"if {expr(e.cond)} then {expr(e.then)} else {expr(e.orelse)}",
}


# ---------------------------------------------------------------------- statements
def _value(e, indent: str, head: str) -> str:
    """`head` followed by the expression, breaking a long top-level chain before each `->`."""
    one = head + expr(e)
    if len(indent) + len(one) <= MAX_WIDTH:
        return indent + one
    if isinstance(e, ast.If):
        cont = "\n" + indent + INDENT * 2
        return f"{indent}{head}if {expr(e.cond)}{cont}then {expr(e.then)}{cont}else {expr(e.orelse)}"
    if not isinstance(e, ast.Chain):
        return indent + one
    items = [_sub(x, OR) for x in e.items]
    cont = "\n" + indent + INDENT * 2 + "-> "
    return indent + head + items[0] + "".join(cont + x for x in items[1:])


def _type(t: ast.TypeExpr) -> str:
    return (t.dtype or "") + "[" + ", ".join(expr(d) for d in t.dims) + "]"


def statement(s, indent: str = "") -> str:
    if isinstance(s, ast.Input):
        return f"{indent}input {s.name}: {_type(s.type)}"
    if isinstance(s, ast.State):
        head = f"state {s.name}: {_type(s.type)}"
        return _value(s.init, indent, head + " = ") if s.init is not None else indent + head
    if isinstance(s, ast.Param):
        head = f"param {s.name}: {_type(s.type)}"
        return _value(s.init, indent, head + " ~ ") if s.init is not None else indent + head
    if isinstance(s, ast.Output):
        return _value(s.value, indent, f"output {s.name} = ") if s.value is not None else f"{indent}output {s.name}"
    if isinstance(s, ast.Assign):
        return _value(s.value, indent, ", ".join(s.targets) + " = ")
    if isinstance(s, ast.Data):
        return _value(s.value, indent, "data ")
    if isinstance(s, ast.Instance):
        return _value(s.value, indent, f"model {s.name} = ")
    if isinstance(s, ast.Loss):
        return _value(s.value, indent, f"loss {s.name} = ")
    if isinstance(s, ast.Metric):
        return _value(s.value, indent, f"metric {s.name} = ")
    if isinstance(s, ast.Step):
        repeat = f" * {s.repeat}" if s.repeat != 1 else ""
        return (f"{indent}step {', '.join(s.models)}{repeat} minimize {expr(s.loss)} "
                f"with {expr(s.optimizer)}")
    if isinstance(s, ast.Setting):
        return f"{indent}{s.key} {expr(s.value)}"
    if isinstance(s, ast.Sample):
        return f"{indent}sample {expr(s.value)} every {expr(s.every)}"
    if isinstance(s, ast.Draw):
        return _value(s.dist, indent, f"{s.name} ~ ")
    raise TypeError(f"cannot unparse {type(s).__name__} as a statement")


def _arg_decl(a: ast.ArgDecl) -> str:
    out = a.name
    if a.type is not None:
        out += f": {a.type}"
    if a.default is not None:
        out += f" = {expr(a.default)}"
    return out


def definition(d) -> str:
    if isinstance(d, ast.Import):
        return f"import {string(d.target) if d.is_path else d.target}"
    if isinstance(d, ast.ModelDef):
        params = f"({', '.join(_arg_decl(p) for p in d.params)})" if d.params else ""
        head = f"{d.kind} {d.name}{params} {{"
    elif isinstance(d, ast.TrainDef):
        head = f"train {d.name} {{"
    else:
        raise TypeError(f"cannot unparse {type(d).__name__} as a definition")
    return "\n".join([head] + [statement(s, INDENT) for s in d.body] + ["}"])


def unparse(node) -> str:
    """Canonical source for a Module, a definition, a statement or an expression."""
    if isinstance(node, ast.Module):
        out, prev = [], None
        for item in node.items:
            if prev is not None and not (isinstance(prev, ast.Import) and isinstance(item, ast.Import)):
                out.append("")
            out.append(definition(item))
            prev = item
        return "\n".join(out) + "\n" if out else ""
    if isinstance(node, (ast.Import, ast.ModelDef, ast.TrainDef)):
        return definition(node) + "\n"
    if type(node) in _EXPR:
        return expr(node)
    return statement(node)
