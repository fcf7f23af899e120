"""The language's words, read from the grammar, never copied by hand.

The Pygments lexer, the VS Code grammar (editors/vscode) and the parser's messages all used to
carry their own lists of keywords, and they drifted (`detach` offered as a special form after it
stopped being one, `shard` missing). Now they ask here; the editor grammar is a generated file
(`python -m nndsl.tools.editor_grammar --write`, which adds the elaborator's special forms) and a
test checks it is current.
"""
from __future__ import annotations

import functools
import re

# words of expressions, which the lexers colour as operators and constants, not statements
EXPRESSION_WORDS = ("and", "or", "not", "true", "false")


@functools.cache
def _grammar():
    from lark import Lark

    from ..resources import grammar_path
    return Lark(grammar_path().read_text(), parser="lalr")


def _keyword_of() -> dict[str, str]:
    """Terminal name -> its word, for terminals that are a plain word (`"model"` -> MODEL)."""
    return {t.name: t.pattern.value for t in _grammar().terminals
            if t.pattern.type == "str" and re.fullmatch(r"[a-z_]+", t.pattern.value)}


def _first_words(rule: str) -> list[str]:
    """The keywords that can begin `rule`, in the grammar's order (FIRST, keywords only)."""
    rules: dict[str, list] = {}
    for r in _grammar().rules:
        rules.setdefault(r.origin.name, []).append(r.expansion)
    words = _keyword_of()
    out: list[str] = []
    seen: set = set()

    def visit(name: str):
        if name in seen:
            return
        seen.add(name)
        for expansion in rules.get(name, ()):
            if not expansion:
                continue
            head = expansion[0]
            if head.is_term:
                if head.name in words and words[head.name] not in out:
                    out.append(words[head.name])
            else:
                visit(head.name)
    visit(rule)
    return out


def definition_words() -> tuple[str, ...]:
    """Words that begin a top-level definition: import, model, cell, train."""
    return tuple(_first_words("_toplevel"))


def statement_words() -> tuple[str, ...]:
    """Words that begin a statement inside a model, cell or train block."""
    out: list[str] = []
    for rule in ("_model_stmt", "_train_stmt"):
        out += [w for w in _first_words(rule) if w not in out]
    return tuple(out)


def inline_words() -> tuple[str, ...]:
    """The other keywords (`minimize`, `with`, `every`, `if`, `then`, `else`)."""
    taken = set(definition_words()) | set(statement_words()) | set(EXPRESSION_WORDS)
    out: list[str] = []
    for w in _keyword_of().values():
        if w not in taken and w not in out:
            out.append(w)
    return tuple(out)
