"""The VS Code grammar's word lists (editors/vscode), regenerated from the language's words
(nndsl/syntax/words.py) and the elaborator's special forms. It sits with the tools because it reads
both the grammar and the elaborator, which the syntax layer below the elaborator may not."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .. import elaborate  # noqa: F401  (importing the package fills SPECIAL)
from ..elaborate.builder import SPECIAL
from ..syntax.words import definition_words, inline_words, statement_words


def special_forms() -> tuple[str, ...]:
    """Calls the elaborator handles itself (`unroll(cell, steps=8)`, `grad(y, x)`, ...)."""
    return tuple(sorted(SPECIAL))


TMLANGUAGE = Path("editors/vscode/syntaxes/nndsl.tmLanguage.json")


def _alternation(words) -> str:
    return "|".join(words)


def tmlanguage(text: str) -> str:
    """The VS Code grammar `text` with its word lists regenerated (the rest is hand-written)."""
    top = "|".join(w for w in definition_words() if w in ("import",))
    body = _alternation(list(statement_words()))
    control = _alternation([w for w in inline_words() if w in ("if", "then", "else")])
    other = _alternation([w for w in inline_words() if w not in ("if", "then", "else")])
    replacements = [
        (r'(\(\?:\^\|\(\?<=\\\\\{\)\)\\\\s\*\()[^)]*(\))', body),
        (r'("keyword\.control\.conditional\.nndsl", "match": "\\\\b\()[^)]*(\))', control),
        (r'("keyword\.other\.nndsl", "match": "\\\\b\()[^)]*(\))', other),
        (r'("match": "\\\\b\()[^)]*(\)\\\\b\(\?!\x27\)\(\?=\\\\s\*\\\\\(\)")', _alternation(special_forms())),
        (r'("match": "\^\\\\s\*\()[^)]*(\))', top),
    ]
    for pattern, words in replacements:
        text, n = re.subn(pattern, lambda m, w=words: m.group(1) + w + m.group(2), text, count=1)
        if n != 1:
            raise ValueError(f"the editor grammar has no word list matching {pattern}")
    json.loads(text)  # still JSON
    return text


def main(argv=None) -> int:
    """`python -m nndsl.tools.editor_grammar --write` regenerates the editor grammar's word lists
    (from a checkout: the file is not part of the wheel)."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[2]
    path = root / TMLANGUAGE
    new = tmlanguage(path.read_text())
    if "--write" in argv:
        path.write_text(new)
        return 0
    return 0 if new == path.read_text() else 1


if __name__ == "__main__":
    sys.exit(main())
