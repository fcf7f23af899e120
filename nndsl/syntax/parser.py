"""Text to AST. Lark's exceptions never escape: they become located ParseErrors, several per file."""
from __future__ import annotations

import functools

from lark import Lark, Token, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from ..errors import ErrorGroup, NndslError, ParseError
from ..resources import grammar_path
from ..source import Source, Span
from . import ast
from .to_ast import ToAst

MAX_ERRORS = 20
MAX_NESTING = 200

FRIENDLY = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a string",
    "$END": "end of file", "COMP_OP": "a comparison", "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `/` or `@`", "EPOCHS": "`epochs`", "ITERATIONS": "`iterations`",
}


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(grammar_path().read_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=True)


def _describe(term: str) -> str:
    if term in FRIENDLY:
        return FRIENDLY[term]
    try:
        td = lark_parser().get_terminal(term)
    except KeyError:
        return term.lower()
    return f"`{td.pattern.value}`" if td.pattern.type == "str" else term.lower()


def _expected(terms) -> str:
    names = sorted({_describe(t) for t in terms})
    if len(names) > 8:
        names = names[:8] + ["..."]
    return ", ".join(names)


def _token_text(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    return f"`{tok}`"


def _diagnose(e: UnexpectedInput, source: Source, accepts) -> ParseError:
    if isinstance(e, UnexpectedCharacters):
        ch = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else "?"
        span = Span(source, e.line, e.column, e.line, e.column + 1)
        return ParseError(f"unexpected character {ch!r}", span, code="E101")
    tok = e.token
    if tok.type == "$END":
        lines = source.text.splitlines() or [""]
        line = len(lines)
        span = Span(source, line, len(lines[-1]) + 1, line, len(lines[-1]) + 2)
    else:
        span = Span.from_token(tok, source)
    msg = f"unexpected {_token_text(tok)}"
    if accepts:
        msg += f"; expected {_expected(accepts)}"
    hint = None
    hist = getattr(e, "token_history", None) or []
    if hist and tok.type == "NAME" and hist[-1].type in ("NAME", "RPAR", "NUMBER", "RSQB"):
        hint = f"a new statement starts here; is something missing after `{hist[-1]}`?"
    if tok.type == "NAME" and tok.value in ("input", "output", "state", "param", "model", "cell"):
        hint = f"`{tok}` is a reserved word"
    return ParseError(msg, span, help=hint, code="E102")


def _check_nesting(source: Source) -> None:
    depth = 0
    line, col = 1, 1
    for ch in source.text:
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ParseError(f"nesting deeper than {MAX_NESTING} levels",
                                 Span(source, line, col, line, col + 1), code="E103")
        elif ch in ")]}":
            depth -= 1
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1


def parse(text: str, name: str = "<string>") -> ast.Module:
    """Parses a whole file; raises ParseError (or ErrorGroup of several) on bad syntax."""
    source = Source(text, name)
    _check_nesting(source)
    errors: list[ParseError] = []
    last_line = [0]

    def on_error(e: UnexpectedInput) -> bool:
        if len(errors) >= MAX_ERRORS:
            return False
        accepts = set()
        if isinstance(e, UnexpectedToken):
            try:
                accepts = set(e.interactive_parser.accepts())
            except Exception:  # accepts() replays the parser; never let that hide the real error
                accepts = set(e.expected or ())
        if e.line > last_line[0] or e.line == -1:
            errors.append(_diagnose(e, source, accepts))
            last_line[0] = e.line if e.line != -1 else 10**9
        if isinstance(e, UnexpectedToken) and e.token.type == "$END":
            return False
        return True

    try:
        tree = lark_parser().parse(text, on_error=on_error)
    except UnexpectedInput as e:  # recovery gave up; the first error is what matters
        if not errors:
            errors.append(_diagnose(e, source, set(getattr(e, "expected", ()) or ())))
        tree = None
    except RecursionError:
        raise ParseError("program too deeply nested", Span(source, 1, 1, 1, 2), code="E103") from None
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    try:
        return ToAst(source).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, NndslError):
            raise e.orig_exc from None
        raise
