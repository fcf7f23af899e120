"""Shared helpers for the syntax tests: the contract's programs, and small parse shorthands."""
from __future__ import annotations

import re
from pathlib import Path

from nndsl.syntax import ast
from nndsl.syntax.parser import parse

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LANGUAGE_MD = ROOT.parent / "shared" / "LANGUAGE.md"
COPIES = HERE / "language_md"


def fenced_blocks(markdown: str, langs=("", "nn")) -> list[str]:
    """The bodies of ``` fenced blocks whose info string is in `langs`."""
    return [body for lang, body in re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", markdown, re.S | re.M)
            if lang in langs]


def language_md_blocks() -> list[str]:
    """The programs of ../shared/LANGUAGE.md when the checkout sits beside it, else []."""
    if not LANGUAGE_MD.is_file():
        return []
    return fenced_blocks(LANGUAGE_MD.read_text())


def language_md_copies() -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(COPIES.glob("*.nn"))}


def corpus() -> dict[str, str]:
    """Every program the project ships or promises: LANGUAGE.md (live and copied), stdlib, examples."""
    out = {f"language_md/{k}": v for k, v in language_md_copies().items()}
    for i, text in enumerate(language_md_blocks()):
        out[f"LANGUAGE.md#{i}"] = text
    for folder in ("stdlib", "examples"):
        for p in sorted((ROOT / folder).glob("*.nn")):
            out[f"{folder}/{p.name}"] = p.read_text()
    return out


def body(src: str) -> tuple:
    """The statements of `src` written inside a model."""
    return parse("model M {\n" + src + "\n}\n").items[0].body


def train_body(src: str) -> tuple:
    return parse("train T {\n" + src + "\n}\n").items[0].body


def expr(src: str):
    """The AST of one expression (the value of `y = ...` inside a model)."""
    (stmt,) = body("y = " + src)
    return stmt.value


# Short constructors: spans are not compared, so trees can be written out in full.
def N(name: str) -> ast.Name:
    return ast.Name(name)


def Num(v) -> ast.Number:
    return ast.Number(v)


def Call(func, *args) -> ast.Call:
    return ast.Call(N(func) if isinstance(func, str) else func, tuple(args))


def Kw(name: str, value) -> ast.Kwarg:
    return ast.Kwarg(name, value)


def Chain(*items) -> ast.Chain:
    return ast.Chain(tuple(items))


def Bin(ops: str, *operands) -> ast.BinOps:
    """Bin("+-", a, b, c) is `a + b - c`."""
    return ast.BinOps(tuple(operands), tuple(ops))
