"""One error hierarchy. A user's mistake is an NndslError with a span; anything else is our bug."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from .source import Span, clean


@dataclass
class Diagnostic:
    """One message at one place: the single structure both text and JSON output render from."""

    message: str
    span: Span | None = None
    code: str = "E000"
    severity: str = "error"
    notes: list[tuple[Span | None, str]] = field(default_factory=list)
    help: str | None = None

    def __post_init__(self):
        # Messages quote user text (string literals, names of files): no control character of
        # it may reach a terminal or an editor, however the message was put together.
        self.message = clean(str(self.message))
        self.help = clean(self.help) if self.help is not None else None
        self.notes = [(sp, clean(str(n))) for sp, n in self.notes]

    def render(self) -> str:
        head = f"{self.severity}[{self.code}]: {self.message}"
        out = [f"{self.span.where()}: {head}" if self.span else head]
        if self.span:
            out.append(self.span.excerpt())
        for span, note in self.notes:
            out.append(f"  note: {note}" + (f" ({span.where()})" if span else ""))
        if self.help:
            out.append(f"  help: {self.help}")
        return "\n".join(out)

    def to_json(self) -> dict:
        s = self.span
        return {
            "code": self.code, "severity": self.severity, "message": self.message,
            "file": s.source.name if s else None, "line": s.line if s else None,
            "col": s.col if s else None, "end_line": s.end_line if s else None,
            "end_col": s.end_col if s else None, "help": self.help,
            "notes": [{"message": m, "line": sp.line if sp else None} for sp, m in self.notes],
        }


class NndslError(Exception):
    """A diagnosable user error. `str(e)` is the full located, caret-underlined report."""

    code = "E000"

    def __init__(self, message: str, span: Span | None = None, *, notes=(), help: str | None = None,
                 code: str | None = None):
        self.diagnostics = [Diagnostic(message, span, code or self.code, "error", list(notes), help)]
        super().__init__(message)

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    @property
    def span(self) -> Span | None:
        return self.diagnostics[0].span

    def __str__(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


class ParseError(NndslError, SyntaxError):
    code = "E100"


class NameResolutionError(NndslError, NameError):
    code = "E200"


class ShapeError(NndslError, ValueError):
    code = "E300"


class TypeCheckError(NndslError, TypeError):
    code = "E310"


class ImportFailure(NndslError, ImportError):
    code = "E500"


class LimitError(NndslError):
    code = "E400"


class UnsupportedError(NndslError, NotImplementedError):
    code = "E900"


class TrainingError(NndslError):
    code = "E700"


class ErrorGroup(NndslError):
    """Several diagnostics from one run of the checker, reported together."""

    def __init__(self, errors: list[NndslError]):
        self.errors = errors
        self.diagnostics = [d for e in errors for d in e.diagnostics]
        Exception.__init__(self, self.diagnostics[0].message if self.diagnostics else "errors")


def run_command(command, args) -> int:
    """`command(args)`'s exit status, as both `nndsl` and `python -m nndsl.tools` report it: a
    user's mistake prints its message (exit 1), never a traceback; Ctrl-C exits 130; a reader that
    left the pipe (`nndsl ... | head`) is not an error, and stdout goes to /dev/null so that the
    interpreter's last flush does not fail on it either."""
    try:
        return command(args)
    except NndslError as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def closest(name: str, candidates) -> str | None:
    """The 'did you mean' candidate: close spelling, as difflib judges it."""
    import difflib

    found = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.7)
    return found[0] if found else None
