"""Source text and spans: every AST node, graph node and diagnostic points back here."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7f)}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\0"): "\\0"})
MAX_QUOTED = 200  # characters of user text a message repeats; the rest is elided


def escape(text: str, limit: int = MAX_QUOTED) -> str:
    """User text (a string literal, a file name, a dtype) as a message may repeat it: control
    characters as escapes, so a file cannot move the cursor, clear the line or paint an "ok" over
    its own error, and at most `limit` characters. The one function every message that quotes
    user text goes through."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(_CONTROL.get(ord(c)) or (c if c.isprintable() or c == " " else f"\\u{ord(c):04x}"
                                            if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}") for c in text)


def clean(message: str) -> str:
    """A whole message made safe for a terminal, at any length: no diagnostic's message, help
    or note has a line break of its own, so any control character in it came from user text."""
    return message if message.isprintable() else escape(message, limit=len(message))


@dataclass(frozen=True)
class Source:
    """A named piece of text; `name` is what diagnostics print (a path or `<string>`)."""

    text: str
    name: str = "<string>"

    @cached_property
    def _starts(self) -> list:
        """Offsets where each line starts, found once per source: a file with 300,000 warnings
        must not be split 300,000 times."""
        starts, i = [0], self.text.find("\n")
        while i != -1:
            starts.append(i + 1)
            i = self.text.find("\n", i + 1)
        return starts

    def line(self, n: int) -> str:
        # split on "\n" only, as Lark counts lines; str.splitlines also splits on \f, \x85...
        starts = self._starts
        if not 0 < n <= len(starts):
            return ""
        end = starts[n] - 1 if n < len(starts) else len(self.text)
        return self.text[starts[n - 1]:end]


EXCERPT_WIDTH = 500


@dataclass(frozen=True)
class Span:
    """A half-open region of a source, 1-based lines and columns as editors count them."""

    source: Source = field(repr=False, compare=False)
    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def from_meta(meta, source: Source) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        return Span(source, meta.line, meta.column, meta.end_line, meta.end_column)

    @staticmethod
    def from_token(tok, source: Source) -> Span:
        end_line = getattr(tok, "end_line", None) or tok.line
        end_col = getattr(tok, "end_column", None) or tok.column + len(str(tok))
        return Span(source, tok.line, tok.column, end_line, end_col)

    def where(self) -> str:
        return f"{escape(self.source.name, 1000)}:{self.line}:{self.col}"

    def excerpt(self) -> str:
        """The source line with a caret run under the span (first line only); a very long line is
        shown as a window around the span."""
        raw = self.source.line(self.line).rstrip("\r").replace("\t", " ")
        start = self.col - 1
        end = self.end_col - 1 if self.end_line == self.line else len(raw)
        if len(raw) > EXCERPT_WIDTH:
            lo = max(0, start - EXCERPT_WIDTH // 4)
            hi = min(len(raw), max(lo + EXCERPT_WIDTH, min(end, lo + EXCERPT_WIDTH)))
            raw = ("..." if lo else "") + raw[lo:hi] + ("..." if hi < len(raw) else "")
            shift = lo - (3 if lo else 0)
            start, end = start - shift, min(end - shift, len(raw))
        # control characters (an escape sequence in a comment) must not reach the terminal
        text = "".join(c if c.isprintable() or c == " " else "?" for c in raw)
        width = max(1, min(end, len(text)) - start)
        gutter = f"{self.line:>4} | "
        return f"{gutter}{text}\n{' ' * len(gutter)}{' ' * start}{'^' * width}"
