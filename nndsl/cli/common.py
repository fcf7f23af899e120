"""What several subcommands read the same way: `--arg NAME=VALUE`, `--dim NAME=SIZE`, the
program a command loads and the model it picks."""
from __future__ import annotations

import sys

from ..api import load
from ..errors import NndslError
from ..syntax import ast
from ..syntax.parser import parse

# --max-memory of the running command (bytes), which every program it loads is given
MAX_MEMORY = [None]


def static(text: str):
    """A static argument as the language writes it: a number, string or boolean; else the text."""
    try:
        m = parse(f"model _A {{ output a = {text} }}")
        e = m.items[0].body[0].value
    except NndslError:
        return text
    if isinstance(e, (ast.Number, ast.String, ast.Bool)):
        return e.value
    if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, ast.Number):
        return -e.operand.value
    return text


def kv(items, cast=static) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(usage(f"expected NAME=VALUE, got {it!r}"))
        k, v = it.split("=", 1)
        out[k.strip()] = cast(v.strip())
    return out


def dims(items, code: str | None) -> dict:
    """`--dim NAME=SIZE` values, for every command that takes them. A malformed one is error
    `code` (E673 for a model's sizes, E664 for an ONNX export), or with no code a usage error."""
    out = {}
    for item in items or ():
        name, _, size = item.partition("=")
        try:
            out[name.strip()] = int(size)
        except ValueError:
            message = f"--dim takes NAME=SIZE with an integer size, got {item!r}"
            if code is None:
                raise SystemExit(usage(message)) from None
            raise NndslError(message, code=code) from None
    return out


def with_dims(model, a):
    """`--dim NAME=SIZE`: the model with those symbolic dimensions fixed (nndsl/dims.py)."""
    if not getattr(a, "dim", None):
        return model
    return model.with_dims(**dims(a.dim, "E673"))


def usage(msg: str) -> int:
    print(f"nndsl: error: {msg}", file=sys.stderr)
    return 2


def load_program(path: str):
    prog = load(path)
    prog.max_memory = MAX_MEMORY[0]
    return prog


def pick_model(prog, name):
    if name:
        return name
    models = [m for m in prog.models if prog.defs.definitions[m].kind == "model"]
    entry_models = [m for m in models if prog.defs.definitions[m].span.source.name == prog.defs.entry]
    pool = entry_models or models
    if not pool:
        raise NndslError("this file defines no model", code="E215")
    return pool[-1]
