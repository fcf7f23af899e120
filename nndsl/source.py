"""Source text and spans: every AST node, graph node and diagnostic points back here."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A named piece of text; `name` is what diagnostics print (a path or `<string>`)."""

    text: str
    name: str = "<string>"

    def line(self, n: int) -> str:
        lines = self.text.split("\n")  # as Lark counts lines; str.splitlines also splits on \f, \x85...
        return lines[n - 1] if 0 < n <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A half-open region of a source, 1-based lines and columns as editors count them."""

    source: Source = field(repr=False, compare=False)
    line: int
    col: int
    end_line: int
    end_col: int

    @staticmethod
    def from_meta(meta, source: Source) -> "Span | None":
        if getattr(meta, "empty", True):
            return None
        return Span(source, meta.line, meta.column, meta.end_line, meta.end_column)

    @staticmethod
    def from_token(tok, source: Source) -> "Span":
        end_line = getattr(tok, "end_line", None) or tok.line
        end_col = getattr(tok, "end_column", None) or tok.column + len(str(tok))
        return Span(source, tok.line, tok.column, end_line, end_col)

    def where(self) -> str:
        return f"{self.source.name}:{self.line}:{self.col}"

    def excerpt(self) -> str:
        """The source line with a caret run under the span (first line only)."""
        raw = self.source.line(self.line).rstrip("\r").replace("\t", " ")
        # control characters (an escape sequence in a comment) must not reach the terminal
        text = "".join(c if c.isprintable() or c == " " else "?" for c in raw)
        start = self.col - 1
        end = self.end_col - 1 if self.end_line == self.line else len(text)
        width = max(1, min(end, len(text)) - start)
        gutter = f"{self.line:>4} | "
        return f"{gutter}{text}\n{' ' * len(gutter)}{' ' * start}{'^' * width}"
