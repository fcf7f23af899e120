"""`nndsl check`: every definition is elaborated on its own, used or not.

A model's static arguments without defaults get stand-ins instead of values: an `int` becomes a
symbolic dimension named after the argument (so a mistake reads `[batch, classes]`, as it does
for `batch`), a `bool` is checked with both values, a `str` with every string the body compares
it with, a `float` with a neutral number (no shape depends on a float). What still cannot be
decided without a value (a `layer` argument, a choice on a symbolic size) is reported as a
warning naming the statement and the argument, unless another definition's use of it in the same
file checked it with real values. "ok" therefore always means checked.
"""
from __future__ import annotations

import itertools

from ..errors import Diagnostic, ErrorGroup, NndslError
from ..syntax import ast
from ..values import NeedsConcrete, Opaque, Poisoned, Sym
from .builder import Builder

MAX_VARIANTS = 16  # combinations of bool/str values checked per definition
FLOAT_STAND_IN = 0.5


def stand_ins(defn) -> list[dict]:
    """The argument bindings a definition is checked with: one per combination of the values its
    booleans and compared strings can take (at most MAX_VARIANTS), symbolic for the rest."""
    options = []
    for p in defn.params:
        if p.default is not None:
            continue
        t = p.type
        if t in ("int", "dim"):
            opts = [Sym(p.name)]
        elif t == "bool":
            opts = [True, False]
        elif t in ("str", "string"):
            # each string it is compared with, and one that equals none of them
            opts = sorted(_strings_compared(defn, p.name)) + [Opaque(p.name, t)]
        elif t == "float":
            opts = [FLOAT_STAND_IN]
        else:
            opts = [Opaque(p.name, t)]
        options.append([(p.name, o) for o in opts])
    out = []
    for combo in itertools.product(*options):
        out.append(dict(combo))
        if len(out) >= MAX_VARIANTS:
            break
    return out


def _strings_compared(defn, name: str) -> set:
    """String literals the body compares argument `name` with (`if mode == "sum" then ...`)."""
    found = set()
    stack = list(defn.body)
    while stack:
        e = stack.pop()
        if isinstance(e, ast.Compare) and e.op in ("==", "!="):
            for a, b in ((e.left, e.right), (e.right, e.left)):
                if isinstance(a, ast.Name) and a.id == name and isinstance(b, ast.String):
                    found.add(b.value)
        stack.extend(ast.children(e))
    return found


def check_definitions(defs, base=None, max_memory=None, found: dict | None = None) -> tuple[list, list]:
    """(errors, warnings) for every definition of the entry file and of the files it imports
    (the standard library aside). `defs` is the loaded frontend Program."""
    from ..limits import check_graph
    from . import build_model
    from .mistakes import train_warnings
    from .train import build_train
    errors: list = []
    warnings: list = []
    unchecked: list = []
    complete: set = set()
    for name, d in defs.definitions.items():
        if _from_stdlib(d, defs):
            continue  # the standard library is checked by its own tests; this file's uses of it are checked
        variants = [None] if isinstance(d, ast.TrainDef) else stand_ins(d)
        for args in variants:
            b = Builder(defs)
            b.checking = True
            b.free = {k for k, v in (args or {}).items() if isinstance(v, Sym)}
            try:
                if isinstance(d, ast.TrainDef):
                    from .train import check_memory
                    spec = build_train(defs, name, None, base, builder=b)
                    warnings += train_warnings(spec)
                    if found is not None and spec.data is not None:
                        found[name] = spec.data  # what `nndsl check` reports of the data
                    check_memory(spec, max_memory, f"train block `{name}`")
                else:
                    check_graph(build_model(defs, name, args, builder=b), max_memory, f"{d.kind} `{name}`")
            except NeedsConcrete as e:
                b.unchecked.append((name, e.span or d.name_span, e.message, frozenset()))
            except Poisoned:
                pass  # every error it stands for was recorded
            except ErrorGroup as e:
                errors.extend(e.errors)
            except NndslError as e:
                errors.append(e)
            errors.extend(b.errors)
            unchecked += [(owner or name, span, reason, reads) for owner, span, reason, reads in b.unchecked]
            complete |= b.complete
    return _unique(errors), _warnings(defs, unchecked, complete) + warnings


def _warnings(defs, unchecked, complete) -> list[Diagnostic]:
    out, seen = [], set()
    for owner, span, reason, reads in unchecked:
        if owner in complete:
            continue  # some use in this file checked it with real values
        key = (span.source.name, span.line, span.col) if span else (owner, reason)
        if key in seen:
            continue
        seen.add(key)
        d = defs.definitions.get(owner)
        kind = getattr(d, "kind", "train block") if d is not None else "definition"
        needed = [p.name for p in getattr(d, "params", ()) if p.default is None and p.name in reads]
        needs = f" without a value for {_names(needed)}" if needed else ""
        reason = reason.replace(" before the input shapes are known", "")  # NeedsConcrete's wording
        what = reason[0].lower() + reason[1:] if reason else "it needs concrete values"
        help_ = (f"give {_names(needed)} a default, or use `{owner}` with a value in this file "
                 "(each use is checked)" if needed else
                 f"use `{owner}` in this file with inputs of known size (each use is checked)")
        out.append(Diagnostic(f"{kind} `{owner}` is not fully checked{needs}: {what}", span, "W010",
                              "warning", help=help_))
    return out


def _names(names) -> str:
    q = [f"`{n}`" for n in names]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " and " + q[-1]


def _unique(errors: list) -> list:
    seen, unique = set(), []
    for e in errors:  # a model used in several places (or checked in several variants) reports once
        key = tuple((d.code, d.span.line, d.span.col, d.span.source.name) if d.span else (d.message,)
                    for d in e.diagnostics)
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return unique


def _from_stdlib(d, defs) -> bool:
    """The user's own imported files are checked whole, like the entry file: a mistake in a
    definition nothing uses yet is still a mistake."""
    name = d.span.source.name if d.span is not None else None
    return name is not None and name != defs.entry and name in getattr(defs, "stdlib", ())
