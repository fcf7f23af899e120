"""Text to AST. Lark's exceptions never escape: they become located ParseErrors, several per file.

Error recovery is panic mode on the LALR stack: after an error the parser drops tokens until the
first token of a later line that a statement (or definition) can start with, pops its stack back
to the enclosing body, and goes on. Each error is reported once, at most one per line, so a single
mistake does not cascade into a page of messages.
"""
from __future__ import annotations

import functools
import re

from lark import Lark, Token, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from ..errors import ErrorGroup, NndslError, ParseError
from ..resources import grammar_path
from ..source import Source, Span
from . import ast, words
from .to_ast import ToAst

MAX_ERRORS = 20
MAX_NESTING = 200  # brackets, and levels of the expression tree (`- - - x`, `a ** b ** c`)

FRIENDLY = {
    "NAME": "a name", "NUMBER": "a number", "INT": "an integer", "STRING": "a string",
    "$END": "end of file", "COMP_OP": "a comparison", "ADD_OP": "`+` or `-`",
    "MUL_OP": "`*`, `/` or `@`",
}
# Groups of terminals named by one phrase, keyed by a terminal's text (or name, for regexes).
_EXPR_START = {"NAME", "NUMBER", "STRING", "true", "false", "(", "[", "-", "+", "not", "if"}
_OPERATORS = {"ADD_OP", "MUL_OP", "COMP_OP", "**", "->", "and", "or", ".", "(", "["}
_STATEMENTS = {"NAME", *words.statement_words()}
_DEFINITIONS = set(words.definition_words())
# Characters people paste from papers and word processors, and what they meant.
LOOKALIKES = {"→": "->", "×": "*", "·": "@", "−": "-", "–": "-", "—": "-", "’": "'", "‘": "'",
              "“": '"', "”": '"', "≤": "<=", "≥": ">=", "≠": "!=", "\u00a0": " "}


@functools.lru_cache(maxsize=1)
def lark_parser() -> Lark:
    return Lark(grammar_path().read_text(), parser="lalr", propagate_positions=True,
                maybe_placeholders=True)


@functools.lru_cache(maxsize=1)
def keywords() -> frozenset:
    """Every word the grammar spells out (`model`, `input`, `epochs`, `true`, ...)."""
    return frozenset(t.pattern.value for t in lark_parser().terminals
                     if t.pattern.type == "str" and re.fullmatch(r"\w+", t.pattern.value))


def _key(term: str) -> str:
    """A terminal's text (`->`, `model`) or, for a regex terminal, its name (`NAME`)."""
    try:
        td = lark_parser().get_terminal(term)
    except KeyError:
        return term
    return td.pattern.value if td.pattern.type == "str" else term


def _describe(key: str) -> str:
    return FRIENDLY.get(key) or (f"`{key}`" if not key.isupper() else key.lower())


def expected_text(terms) -> str:
    """`expected` sets in words: "`)`, `,` or an operator", never Lark's terminal names."""
    keys = {_key(t) for t in terms}
    groups = []
    if {"NUMBER", "STRING", "("} <= keys:
        groups.append("an expression")
        keys -= _EXPR_START
    if {"ADD_OP", "MUL_OP"} <= keys:
        groups.append("an operator")
        keys -= _OPERATORS
    if {"input", "output"} <= keys or {"data", "loss"} <= keys:
        groups.append("a new statement")
        keys -= _STATEMENTS
    if keys >= _DEFINITIONS:
        groups.append("a definition (`model`, `cell`, `train` or `import`)")
        keys -= _DEFINITIONS
    names = sorted(_describe(k) for k in keys) + groups
    if len(names) > 8:
        names = names[:8] + ["..."]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


def _shown(text: str) -> str:
    """Source text safe to print inside a message: short, control characters escaped."""
    text = text if len(text) <= 24 else text[:20] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _token_text(tok: Token) -> str:
    return "end of file" if tok.type == "$END" else f"`{_shown(str(tok))}`"


# ---------------------------------------------------------------------- looking around in the text
def _code_part(line: str) -> str:
    """A line without its comment (a `#` inside a string does not start one)."""
    in_str = esc = False
    for i, ch in enumerate(line):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "#":
            return line[:i]
    return line


_LAST_TOKEN = re.compile(r"""("(?:[^"\\]|\\.)*"|[\w.]+'*|->|\*\*|[=!<>]=|\S)\Z""")


def _prev_token(text: str, pos: int):
    """(line, col, end_col, text, offset) of the last token before offset `pos`, or None."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_no = text.count("\n", 0, pos) + 1
    segment = text[line_start:pos]
    while True:
        code = _code_part(segment).rstrip()
        if code:
            m = _LAST_TOKEN.search(code)
            tok = m.group(1) if m else code[-1]
            return line_no, len(code) - len(tok) + 1, len(code) + 1, tok, line_start + len(code) - len(tok)
        if line_start == 0:
            return None
        end = line_start - 1
        line_start = text.rfind("\n", 0, end) + 1
        line_no -= 1
        segment = text[line_start:end]


def _first_on_line(text: str, pos: int) -> bool:
    return text[text.rfind("\n", 0, pos) + 1:pos].strip() == ""


def _brackets(text: str):
    """Bracket structure, skipping strings and comments: (unclosed openers as (offset, char),
    unmatched closers as (offset, char, offset of the opener it met or None), offset of the first
    bracket nested too deep or None)."""
    stack, stray, too_deep = [], [], None
    closes = {")": "(", "]": "[", "}": "{"}
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch == '"':
            i += 1
            while i < n and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch in "([{":
            stack.append((i, ch))
            if len(stack) > MAX_NESTING and too_deep is None:
                too_deep = i
        elif ch in closes:
            if stack and stack[-1][1] == closes[ch]:
                stack.pop()
            else:
                stray.append((i, ch, stack[-1][0] if stack else None))
        i += 1
    return stack, stray, too_deep


def _span_at(source: Source, pos: int, width: int = 1) -> Span:
    line = source.text.count("\n", 0, pos) + 1
    col = pos - (source.text.rfind("\n", 0, pos) + 1) + 1
    return Span(source, line, col, line, col + width)


def _end_span(source: Source) -> Span:
    text = source.text
    line = text.count("\n") + 1
    col = len(text) - (text.rfind("\n") + 1) + 1
    return Span(source, line, col, line, col + 1)


# ---------------------------------------------------------------------- diagnostics
def _char_error(e: UnexpectedCharacters, source: Source) -> ParseError:
    text = source.text
    pos = e.pos_in_stream
    ch = text[pos] if pos < len(text) else "?"
    span = Span(source, e.line, e.column, e.line, e.column + 1)
    if ch == '"':
        rest = text[pos:text.find("\n", pos) if "\n" in text[pos:] else len(text)]
        return ParseError("unterminated string", Span(source, e.line, e.column, e.line, e.column + len(rest)),
                          code="E104", help='a string closes with `"` on the same line')
    if ch in LOOKALIKES:
        return ParseError(f"unexpected character {ch!r} (U+{ord(ch):04X})", span, code="E101",
                          help=f"did you mean `{LOOKALIKES[ch]}`?")
    if not ch.isascii() or not ch.isprintable():
        return ParseError(f"unexpected character {ch!r} (U+{ord(ch):04X})", span, code="E101",
                          help="nndsl source is ASCII outside strings and comments")
    return ParseError(f"unexpected character {ch!r}", span, code="E101")


def _token_error(e: UnexpectedToken, source: Source, accepts) -> ParseError:
    text, tok = source.text, e.token
    exp = expected_text(accepts)
    if tok.type == "$END":
        openers = _brackets(text)[0]
        if openers:
            pos, ch = openers[-1]
            close = {"(": ")", "[": "]", "{": "}"}[ch]
            return ParseError(f"`{ch}` is never closed", _span_at(source, pos), code="E105",
                              notes=[(_end_span(source), f"expected `{close}` before the end of the file")])
        return ParseError("unexpected end of file" + (f"; expected {exp}" if exp else ""),
                          _end_span(source), code="E102")
    span = Span.from_token(tok, source)
    pos = tok.start_pos
    if str(tok) in ")]}":
        for p, _ch, opener in _brackets(text)[1]:
            if p != pos:
                continue
            if opener is None:
                return ParseError(f"unmatched `{tok}`", span, code="E106", help="it closes nothing")
            want = {"(": ")", "[": "]", "{": "}"}[text[opener]]
            return ParseError(f"mismatched `{tok}`: the `{text[opener]}` before it is not closed", span,
                              code="E105", notes=[(_span_at(source, opener), f"`{text[opener]}` opened here")],
                              help=f"close it with `{want}`")
    if str(tok) == ">" and pos > 0 and text[pos - 1] == "-":  # `->` where no chain can go on
        return ParseError("unexpected `->`" + (f"; expected {exp}" if exp else ""),
                          Span(source, tok.line, tok.column - 1, tok.line, tok.column + 1), code="E102")
    prev = _prev_token(text, pos)
    kw = keywords()
    if prev and prev[3] in kw and str(tok) in ("=", ",", "~") and _first_on_line(text, prev[4]):
        word = prev[3]
        return ParseError(f"`{word}` is a reserved word and cannot be assigned",
                          Span(source, prev[0], prev[1], prev[0], prev[2]), code="E107",
                          help=f"pick another name, such as `{word}_`")
    if str(tok) in kw and tok.type != "NAME" and re.match(r"\s*(=|,)", text[tok.end_pos:]) \
            and _first_on_line(text, pos):
        return ParseError(f"`{tok}` is a reserved word and cannot be assigned", span, code="E107",
                          help=f"pick another name, such as `{tok}_`")
    missing = _missing_arrow(text, prev, accepts)
    if missing is not None:
        word, before = missing
        return ParseError(f"`{_shown(word)}` follows `{_shown(before)}` with nothing between them",
                          Span(source, prev[0], prev[1], prev[0], prev[2]), code="E109",
                          help=f"is a `->` missing? `{_shown(before)} -> {_shown(word)}`")
    if prev and prev[0] < tok.line and _first_on_line(text, pos) and exp:
        where = Span(source, prev[0], prev[2], prev[0], prev[2] + 1)
        return ParseError(f"expected {exp} after `{_shown(prev[3])}`", where, code="E102",
                          notes=[(span, f"found {_token_text(tok)} on line {tok.line}")])
    msg = f"unexpected {_token_text(tok)}" + (f"; expected {exp}" if exp else "")
    hint = None
    if "COMMA" in accepts and ({"RPAR", "RSQB"} & set(accepts)) and tok.type in ("NAME", "NUMBER", "STRING"):
        hint = f"is a `,` missing before {_token_text(tok)}?"
        if tok.type == "NAME" and "->" in _code_part(text[text.rfind("\n", 0, pos) + 1:pos]):
            hint = f"is a `,` or a `->` missing before {_token_text(tok)}?"  # `(x -> net softmax, y)`
    return ParseError(msg, span, code="E102", help=hint)


_ENDS_VALUE = re.compile(r"(\w+(\([^()]*\))?|\)|\])\s*\Z")


def _missing_arrow(text: str, prev, accepts):
    """`h = x -> dense(128) relu`: the parser reads `relu` as the start of a new statement and
    wants `=` after it; the writer meant a chain. Recognised when the name that was taken for a
    statement start is not first on its line and follows the end of a value there."""
    if not prev or not re.fullmatch(r"[A-Za-z_]\w*'*", prev[3]) or prev[3] in keywords():
        return None
    if not any(_key(t) == "=" for t in accepts):
        return None
    line_start = text.rfind("\n", 0, prev[4]) + 1
    before = _code_part(text[line_start:prev[4]])
    if "=" not in before:
        return None
    m = _ENDS_VALUE.search(before)
    if not m or before.rstrip().endswith(("->", "=", ",", "(", "[")):
        return None
    return prev[3], m.group(1).strip()


# ---------------------------------------------------------------------- recovery
def _resync(e: UnexpectedToken) -> bool:
    """Pops the LALR stack to the innermost state that can take the error token and feeds it."""
    state = e.interactive_parser.parser_state
    table = state.parse_conf.states
    tok = e.token
    for depth in range(len(state.state_stack), 0, -1):
        if tok.type not in table[state.state_stack[depth - 1]]:
            continue
        trial = type(state)(state.parse_conf, state.lexer, state.state_stack[:depth],
                            state.value_stack[:depth - 1])
        try:
            trial.feed_token(tok)
        except UnexpectedToken:
            continue
        state.state_stack[:] = trial.state_stack
        state.value_stack[:] = trial.value_stack
        return True
    return False


class _Recovery:
    def __init__(self, source: Source):
        self.source = source
        self.errors: list[ParseError] = []
        self.last_line = 0
        self.recovering = False

    def report(self, line: int, make) -> None:
        if line > self.last_line and len(self.errors) < MAX_ERRORS:
            self.errors.append(make())
            self.last_line = line

    def __call__(self, e: UnexpectedInput) -> bool:
        if len(self.errors) >= MAX_ERRORS:
            return False
        if isinstance(e, UnexpectedCharacters):
            self.report(e.line, lambda: _char_error(e, self.source))
            self.recovering = True
            return True
        if not isinstance(e, UnexpectedToken):
            return False
        tok = e.token
        if tok.type == "$END":
            if not self.recovering:
                accepts = self._accepts(e)
                self.report(10**9, lambda: _token_error(e, self.source, accepts))
            return False
        line_start = _first_on_line(self.source.text, tok.start_pos)
        if not (self.recovering and line_start):  # a line-start token ends recovery silently
            self.report(tok.line, lambda: _token_error(e, self.source, self._accepts(e)))
        self.recovering = True
        if line_start and _resync(e):
            self.recovering = False
        return True

    @staticmethod
    def _accepts(e: UnexpectedToken) -> set:
        try:  # snapshot before recovery changes the parser state
            return set(e.interactive_parser.accepts())
        except Exception:  # noqa: BLE001 - accepts() replays the parser; never let that hide the real error
            return set(e.expected or ())


# ---------------------------------------------------------------------- entry point
def _check_nesting(source: Source) -> None:
    too_deep = _brackets(source.text)[2]
    if too_deep is not None:
        raise ParseError(f"brackets nested deeper than {MAX_NESTING} levels", _span_at(source, too_deep),
                         code="E103", help="split the expression into several named steps")


def _check_depth(module: ast.Module) -> None:
    """Deep expression trees (`- - - ... x`, `a ** b ** ...`) would overflow later recursive passes."""
    stack = [(module, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise ParseError(f"expression nested deeper than {MAX_NESTING} levels", node.span, code="E103",
                             help="split it into several named steps")
        for child in ast.children(node):
            stack.append((child, depth + 1))


def normalize_newlines(text: str) -> str:
    """Editors save a UTF-8 byte order mark and old Mac line endings (a lone CR); both are text,
    not mistakes. The mark is dropped, and CR LF and a lone CR become LF, so every position (Lark's
    lines, the excerpt's line, the LSP's) counts lines the way an editor shows them."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def parse(text: str, name: str = "<string>") -> ast.Module:
    """Parses a whole file; raises ParseError (or ErrorGroup of several) on bad syntax."""
    text = normalize_newlines(text)
    source = Source(text, name)
    _check_nesting(source)
    recovery = _Recovery(source)
    tree = None
    try:
        tree = lark_parser().parse(text, on_error=recovery)
    except UnexpectedInput as e:  # recovery gave up; it has reported what it found
        if not recovery.errors:
            recovery.errors.append(_token_error(e, source, set(e.expected or ()))
                                   if isinstance(e, UnexpectedToken) else _char_error(e, source))
    except RecursionError:
        raise ParseError("program too deeply nested", Span(source, 1, 1, 1, 2), code="E103") from None
    errors = sorted(recovery.errors, key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
    if errors:
        raise errors[0] if len(errors) == 1 else ErrorGroup(errors)
    try:
        module = ToAst(source).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, NndslError):
            raise e.orig_exc from None
        raise
    _check_depth(module)
    return module
