"""`nndsl fmt`: one layout for `.nn` files, comments kept.

The formatter works on the parser's own token stream (Lark's contextual lexer, so `-` as negation
and `-` as subtraction, or `step` as a keyword and `step(x)` as a call, are already told apart)
and on the gaps between tokens, which hold only whitespace and comments. It changes whitespace
and nothing else, so `parse(format_text(x)) == parse(x)` holds by construction; it is checked
anyway, before anything is written.

The layout, in the manner of gofmt:

- two-space indentation; one statement per line; `{` ends its header line, `}` stands alone;
- one blank line between definitions, at most one blank line anywhere, none just inside braces;
- spaces around binary operators, `->`, `=`, `~` and after `,` and `:`; none inside brackets,
  before a call's or an index's bracket, around `.`, after a unary `-` or `+`, or around the `=`
  of a named argument (`conv2d(8, 3, stride=2)`);
- where a statement goes on over several lines is the author's choice (a chain is usually broken
  before `->`, one stage per line): those line breaks are kept and the continuation lines
  re-indented, two spaces beyond the statement, or beyond the line of an unclosed bracket. A
  statement on one line longer than 100 columns is broken before each `->` outside brackets;
- comments stay where they were: on their own line, indented as the code around them, or after
  code, two spaces away. Trailing comments of consecutive lines that were aligned stay aligned.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import NndslError
from ..syntax import ast
from ..syntax.parser import lark_parser, parse

INDENT = 2
MAX_WIDTH = 100

_COMMENT = re.compile(r"#[^\n]*")
_VALUE_END = {"NAME", "NUMBER", "INT", "STRING", "TRUE", "FALSE", "RPAR", "RSQB"}
_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB"}


class FormatError(NndslError):
    """The formatted text would not mean what the input meant: a bug in the formatter."""

    code = "E120"


@dataclass
class _Tok:
    type: str
    text: str
    start: int
    end: int
    line: int
    col: int


@dataclass
class _Gap:
    """The whitespace and comments before a token: comments with the line breaks before each."""

    comments: list  # (newlines before, comment text, 0-based source column, spaces before it)
    newlines_after: int  # line breaks between the last comment (or the previous token) and the token


@dataclass
class _Line:
    indent: int
    text: str = ""
    comment: str | None = None  # trailing comment
    comment_col: int | None = None  # its 0-based column in the source, when it came from there
    comment_gap: int | None = None  # spaces between it and the code before it, in the source
    own_comment: bool = False  # the whole line is a comment
    tokens: list = field(default_factory=list)  # indices of the tokens on it
    opens_body: bool = False
    closes_def: bool = False
    starts: str = ""  # "item", "stmt" or "cont": what began this line


def _lex(text: str) -> list[_Tok]:
    ip = lark_parser().parse_interactive(text)
    return [_Tok(t.type, str(t), t.start_pos, t.end_pos, t.line, t.column) for t in ip.iter_parse()]


def _gap(text: str, start: int, end: int) -> _Gap:
    seg = text[start:end]
    comments, pos = [], 0
    for m in _COMMENT.finditer(seg):
        before = seg[pos:m.start()]
        abs_pos = start + m.start()
        col = abs_pos - (text.rfind("\n", 0, abs_pos) + 1)
        comments.append((before.count("\n"), m.group().rstrip(), col, len(before)))
        pos = m.end()
    return _Gap(comments, seg[pos:].count("\n"))


def _starts(module: ast.Module) -> tuple[set, set, set]:
    """(line, col) of every top-level item, every statement, and every non-import definition."""
    items, stmts, defs = set(), set(), set()
    for item in module.items:
        if item.span is None:
            continue
        items.add((item.span.line, item.span.col))
        if not isinstance(item, ast.Import):
            defs.add((item.span.line, item.span.col))
        for s in getattr(item, "body", ()):
            if s.span is not None:
                stmts.add((s.span.line, s.span.col))
    return items, stmts, defs


def _space(a: _Tok, b: _Tok, ctx: str) -> bool:
    """Whether a space separates token `a` from the token `b` after it on one line."""
    if b.type in ("COMMA", "RPAR", "RSQB", "COLON"):
        return False
    if b.type == "DOT":
        return a.type in ("NUMBER", "INT")  # `3 .x`: `3.x` would lex as the number `3.`
    if a.type in ("LPAR", "LSQB", "DOT", "MINUS", "PLUS"):
        return False
    if b.type in ("LPAR", "LSQB") and a.type in _VALUE_END:
        return False
    return not ("EQUAL" in (a.type, b.type) and ctx == "call")


class _Printer:
    def __init__(self, text: str, toks: list[_Tok], module: ast.Module, breaks: set):
        self.text, self.toks, self.breaks = text, toks, breaks
        self.items, self.stmts, self.defs = _starts(module)
        self.lines: list[_Line | None] = []  # None is a blank line
        self.stack: list[tuple[str, int]] = []  # open brackets: (kind, indent of the line it opened on)
        self.stmt_indent = 0

    # ------------------------------------------------------------------ where things go
    def _ctx(self) -> str:
        for kind, _ in reversed(self.stack):
            if kind != "body":
                return kind
        return "body" if self.stack else "top"

    def _inner(self):
        """The innermost unclosed bracket other than a body's brace, or None."""
        top = self.stack[-1] if self.stack else None
        return top if top and top[0] != "body" else None

    def _cont_indent(self, tok: _Tok | None) -> int:
        inner = self._inner()
        if inner is None:
            return self.stmt_indent + INDENT
        if tok is not None and tok.type in ("RPAR", "RSQB"):
            return inner[1]
        return inner[1] + INDENT

    def _kind(self, i: int, gap: _Gap) -> str:
        tok = self.toks[i]
        if tok.type == "LBRACE":
            return "same"
        if tok.type == "RBRACE":
            return "close"
        if i == 0 or (tok.line, tok.col) in self.items:
            return "item"
        if (tok.line, tok.col) in self.stmts:
            return "stmt"
        if gap.newlines_after or gap.comments or i in self.breaks:
            return "cont"
        return "same"

    def _last(self) -> _Line | None:
        for line in reversed(self.lines):
            if line is not None:
                return line
        return None

    def _blank(self, newlines: int, kind: str, is_def: bool = False) -> None:
        """Adds the blank line (at most one) that belongs before the next line."""
        last = self._last()
        if last is None or last.opens_body or kind in ("close", "cont"):
            return
        want = min(1, max(0, newlines - 1))
        if kind in ("item", "comment-top") and (last.closes_def or (is_def and not last.own_comment)):
            want = 1
        if want and self.lines[-1] is not None:
            self.lines.append(None)

    def _comment_line(self, text: str, indent: int) -> None:
        self.lines.append(_Line(indent, comment=None, text=text, own_comment=True, starts="comment"))

    def _comments(self, gap: _Gap, kind: str, indent: int, top: bool) -> None:
        for n, c, col, spaces in gap.comments:
            last = self._last()
            if n == 0 and last is not None and self.lines[-1] is last and not last.own_comment \
                    and last.comment is None:
                last.comment, last.comment_col, last.comment_gap = c, col, spaces
                continue
            self._blank(n, "comment-top" if top else ("cont" if kind == "cont" else "comment"))
            self._comment_line(c, indent)

    # ------------------------------------------------------------------ the walk
    def run(self) -> list:
        text, toks = self.text, self.toks
        prev: _Tok | None = None
        for i, tok in enumerate(toks):
            gap = _gap(text, prev.end if prev else 0, tok.start)
            kind = self._kind(i, gap)
            if kind == "same" and tok.type == "LBRACE":
                self._same(prev, tok, i)
                self._open()
                self._moved_comments(gap)
            elif kind == "same":
                self._same(prev, tok, i)
            else:
                self._new_line(i, tok, prev, gap, kind)
            prev = tok
        end_gap = _gap(text, prev.end if prev else 0, len(text))
        self._comments(end_gap, "item", 0, True)
        return self.lines

    def _new_line(self, i: int, tok: _Tok, prev: _Tok | None, gap: _Gap, kind: str) -> None:
        """`tok` starts a line: its comments first, then the blank line it deserves, then it."""
        if kind == "cont":
            indent, comment_indent = self._cont_indent(tok), self._cont_indent(None)
        else:
            indent = comment_indent = 0 if kind == "item" else self.stmt_indent
        self._comments(gap, kind, comment_indent, top=not self.stack and kind == "item")
        if kind == "close":
            self._close_body()
            indent = self.stmt_indent
        self._blank(gap.newlines_after, kind, is_def=(tok.line, tok.col) in self.defs)
        line = _Line(indent, tok.text, tokens=[i], starts=kind)
        self.lines.append(line)
        line.closes_def = kind == "close" and not self.stack
        self._bracket(tok, prev, i)

    def _moved_comments(self, gap: _Gap) -> None:
        """Comments between a header and its `{` move after the `{`."""
        for j, (_, c, _, _) in enumerate(gap.comments):
            last = self._last()
            if j == 0 and last.comment is None:
                last.comment, last.comment_col = c, None
            else:
                self._comment_line(c, self.stmt_indent)

    def _same(self, prev: _Tok | None, tok: _Tok, i: int) -> None:
        line = self.lines[-1]
        if prev is not None and _space(prev, tok, self._ctx()):
            line.text += " "
        line.text += tok.text
        line.tokens.append(i)
        if tok.type != "LBRACE":
            self._bracket(tok, prev, i)

    def _bracket(self, tok: _Tok, prev: _Tok | None, i: int) -> None:
        if tok.type in _OPENERS:
            self._push(tok, prev, i)
        elif tok.type in ("RPAR", "RSQB") and self._inner():
            self.stack.pop()

    def _push(self, tok: _Tok, prev: _Tok | None, i: int) -> None:
        indent = self._last().indent
        if tok.type == "LSQB":
            kind = "index" if prev is not None and prev.type in _VALUE_END else "list"
        elif not self.stack and i >= 2 and self.toks[i - 2].type in ("MODEL", "CELL"):
            kind = "params"
        elif prev is not None and prev.type in _VALUE_END:
            kind = "call"
        else:
            kind = "paren"
        self.stack.append((kind, indent))

    def _open(self) -> None:
        self.stack.append(("body", self._last().indent))
        self._last().opens_body = True
        self.stmt_indent = INDENT

    def _close_body(self) -> None:
        while self.stack and self.stack[-1][0] != "body":
            self.stack.pop()
        if self.stack:
            self.stack.pop()
        self.stmt_indent = 0


def _align(lines: list) -> None:
    """Trailing comments of consecutive lines of one indentation share a column: the one they had
    in the source if they all had the same and it clears the code, else two spaces after the
    longest line. A lone trailing comment keeps its distance from the code, two spaces at least."""
    i = 0
    while i < len(lines):
        if lines[i] is None or lines[i].comment is None:
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j] is not None and lines[j].comment is not None \
                and lines[j].indent == lines[i].indent:
            j += 1
        block = lines[i:j]
        width = max(ln.indent + len(ln.text) for ln in block)
        if len(block) == 1:  # a lone comment keeps its distance from the code (two spaces at least)
            gap = block[0].comment_gap
            col = width + max(2, gap if gap is not None else 2)
        else:
            cols = {ln.comment_col for ln in block}
            col = cols.pop() if len(cols) == 1 else None
            if col is None or col < width + 2:
                col = width + 2
        for ln in block:
            ln.comment_col = col
        i = j


def _render(lines: list) -> str:
    out = []
    for ln in lines:
        if ln is None:
            out.append("")
            continue
        s = " " * ln.indent + ln.text
        if ln.comment is not None:
            s = s + " " * max(2, ln.comment_col - len(s)) + ln.comment
        out.append(s)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def _long_chains(lines: list, toks: list[_Tok]) -> set:
    """Token indices of `->` to break before: in statements written on one line that is too long."""
    breaks: set = set()
    for k, ln in enumerate(lines):
        if ln is None or ln.own_comment or ln.starts not in ("stmt", "item"):
            continue
        nxt = lines[k + 1] if k + 1 < len(lines) else None
        if nxt is not None and nxt.starts == "cont":
            continue
        if ln.indent + len(ln.text) <= MAX_WIDTH:
            continue
        depth = 0
        for i in ln.tokens:
            t = toks[i]
            if t.type in _OPENERS:
                depth += 1
            elif t.type in ("RPAR", "RSQB"):
                depth -= 1
            elif t.text == "->" and depth == 0 and i != ln.tokens[0]:
                breaks.add(i)
    return breaks


def format_text(text: str, name: str = "<string>") -> str:
    """The canonical layout of `text`. Raises ParseError (or ErrorGroup) on bad syntax."""
    module = parse(text, name)
    toks = _lex(text)
    lines = _Printer(text, toks, module, set()).run()
    breaks = _long_chains(lines, toks)
    if breaks:
        lines = _Printer(text, toks, module, breaks).run()
    _align(lines)
    out = _render(lines)
    if parse(out, name) != module:
        raise FormatError(f"formatting {name} would change its meaning (a bug in nndsl fmt; the file "
                          "is left as it was)")
    return out
