"""Warnings: things that are legal but probably not meant (a value computed and never used, a
parameter declared and never read). They never change the exit code of `nndsl check`."""
from __future__ import annotations

from .elaborate import order as ordering
from .errors import Diagnostic
from .syntax import ast


def lint(defs) -> list[Diagnostic]:
    from .frontend import shadows_builtin
    out = []
    for d in defs.definitions.values():
        if isinstance(d, ast.ModelDef):
            out += _body(d.body, d.kind)
            if shadows_builtin(d.name):
                out.append(Diagnostic(f"{d.kind} `{d.name}` hides the built-in `{d.name}` in this file",
                                      d.name_span, "W011", "warning",
                                      help="every `" + d.name + "` here now means this " + d.kind +
                                      "; a file importing this one is refused (E216)"))
        elif isinstance(d, ast.TrainDef):
            out += _body(d.body, "train")
    return out


def _body(body, kind) -> list[Diagnostic]:
    read: set = set()
    for s in body:
        read |= ordering.reads(s)
    out = []
    for s in body:
        if isinstance(s, ast.Assign):
            for t in s.targets:
                if t not in read and not (kind == "cell" and t.endswith("'")):
                    out.append(Diagnostic(f"`{t}` is computed but never used", s.span, "W001", "warning",
                                          help="use it, make it an `output`, or remove it"))
        elif isinstance(s, ast.Param) and s.name not in read:
            out.append(Diagnostic(f"parameter `{s.name}` is never used", s.span, "W002", "warning"))
        elif isinstance(s, ast.Input) and s.name not in read:
            out.append(Diagnostic(f"input `{s.name}` is never used", s.span, "W003", "warning"))
    return out
