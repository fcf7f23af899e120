"""A minimal language server for `.nn` files (Language Server Protocol, on pygls).

- **Diagnostics as one types.** On open, change and save the document's text is loaded and
  checked (`nndsl.api.loads` + `check_program`, the same as `nndsl check`), and every error is
  published with its range, code, help and notes. Errors inside imported files are shown at the
  import that brought them in.
- **Hover** shows the inferred type of the value under the cursor. A name, or a field such as
  `data.x` or `enc.h`, is evaluated where it stands (the definition is rebuilt with one more
  output, or in a train block one more `sample`), so it works for intermediate values too; a
  layer (`dense(64)`, `relu`) shows the op and the type it produces, for every instance of it.

The analysis lives in plain functions (`diagnostics`, `hover`), which the tests call directly;
the server is a thin layer over them. Start it with `nndsl lsp` (standard I/O) or `--tcp PORT`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ErrorGroup, NndslError
from ..ir.types import TensorType
from ..syntax import ast

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*'*")
HOVER_NAME = "__nndsl_hover__"


@dataclass(frozen=True)
class Problem:
    """One diagnostic in LSP terms: 0-based lines and characters, end exclusive."""

    line: int
    character: int
    end_line: int
    end_character: int
    message: str
    code: str
    notes: tuple = ()  # (line, character, message) in this document


# ---------------------------------------------------------------------- loading
def _load(text: str, name: str):
    from ..api import loads
    base = Path(name).parent if name and Path(name).is_absolute() else None
    prog = loads(text, name=name, base=base)
    prog.defs.entry = name  # check_program checks the entry file's definitions (loads leaves it unset)
    return prog


def _errors(text: str, name: str) -> list:
    from ..api import check_program
    try:
        prog = _load(text, name)
    except ErrorGroup as e:
        return list(e.errors)
    except NndslError as e:
        return [e]
    return check_program(prog)


def diagnostics(text: str, name: str) -> list[Problem]:
    """Every error of the document, as nndsl check reports them, placed in the document."""
    try:
        errors = _errors(text, name)
    except Exception as e:  # noqa: BLE001 - a crash in nndsl must not take the editor's server down
        return [Problem(0, 0, 0, 1, f"nndsl failed while checking this file: {type(e).__name__}: {e}", "E000")]
    first_import = _first_import(text, name)
    out, seen = [], set()
    for err in errors:
        for d in err.diagnostics:
            msg = d.message + (f"\nhelp: {d.help}" if d.help else "")
            s = d.span
            if s is not None and s.source.name == name:
                rng = (s.line - 1, s.col - 1, s.end_line - 1, max(s.end_col - 1, s.col) if s.end_line == s.line
                       else s.end_col - 1)
            else:  # in an imported file, or nowhere: at the first import, or the top
                where = f"{s.source.name}:{s.line}:{s.col}: " if s is not None else ""
                msg = where + msg
                rng = first_import
            notes = tuple((sp.line - 1, sp.col - 1, note) for sp, note in d.notes
                          if sp is not None and sp.source.name == name)
            notes_text = [note + (f" ({sp.where()})" if sp is not None else "") for sp, note in d.notes
                          if sp is None or sp.source.name != name]
            if notes_text:
                msg += "\n" + "\n".join(f"note: {n}" for n in notes_text)
            p = Problem(*rng, msg, d.code, notes)
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out


def _first_import(text: str, name: str) -> tuple:
    from ..syntax.parser import parse
    try:
        module = parse(text, name)
    except NndslError:
        return (0, 0, 0, 1)
    for item in module.items:
        if isinstance(item, ast.Import) and item.span is not None:
            s = item.span
            return (s.line - 1, s.col - 1, s.end_line - 1, s.end_col - 1)
    return (0, 0, 0, 1)


# ---------------------------------------------------------------------- hover
def _offset(text: str, line: int, col: int) -> int:
    """Offset of 0-based (line, col)."""
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[:line]) + col


def _word_at(text: str, line: int, character: int) -> tuple[str, str] | None:
    """(the identifier under the cursor, the dotted expression it ends: `data.x`), or None."""
    lines = text.split("\n")
    if line >= len(lines):
        return None
    row = lines[line]
    for m in NAME.finditer(row):
        if m.start() <= character <= m.end():
            start = m.start()
            while start > 0 and row[start - 1] == ".":
                prev = None
                for p in NAME.finditer(row[:start - 1]):
                    prev = p
                if prev is None or prev.end() != start - 1:
                    break
                start = prev.start()
            return m.group(), row[start:m.end()]
    return None


def _def_at(prog, name: str, line: int):
    for d in prog.defs.definitions.values():
        s = d.span
        if s is not None and s.source.name == name and s.line <= line + 1 <= s.end_line:
            return d
    return None


def _type_text(t) -> str:
    if isinstance(t, TensorType):
        return str(t)
    if isinstance(t, tuple):
        return "(" + ", ".join(_type_text(x) for x in t) + ")"
    return str(t)


def _bound_args(prog, defn) -> list[dict]:
    """Argument sets to build a model with: its defaults, else what train blocks give it."""
    if all(p.default is not None for p in defn.params):
        return [{}]
    from ..elaborate.train import build_train
    out = []
    for t in prog.trains:
        try:
            spec = build_train(prog.defs, t, None, prog.defs.base)
        except Exception:  # noqa: BLE001 - a train block with errors just offers no arguments
            continue
        out.extend(dict(args) for mname, args in spec.models.values() if mname == defn.name)
    return out


def _evaluate(text: str, name: str, defn, expr: str, arg_sets: list):
    """The type of `expr` evaluated at the end of `defn`'s body, or None. `arg_sets`: the
    arguments to build a model with (from the unchanged program: another output changes how
    train blocks may use it)."""
    from ..elaborate.train import build_train
    if isinstance(defn, ast.ModelDef) and defn.kind == "cell":
        return None  # a cell has exactly one output: no room for another
    end = _offset(text, defn.span.end_line - 1, defn.span.end_col - 2)  # the closing `}`
    if isinstance(defn, ast.TrainDef):
        extra = f"\n  sample {expr} every 1000000\n"
    else:
        extra = f"\n  output {HOVER_NAME} = {expr}\n"
    try:
        prog = _load(text[:end] + extra + text[end:], name)
        if isinstance(defn, ast.TrainDef):
            spec = build_train(prog.defs, defn.name, None, prog.defs.base)
            return spec.graph.node(spec.samples[-1][0]).type
        for args in arg_sets[:1]:
            g = prog.model(defn.name, **args).graph()
            return g.node(g.outputs[HOVER_NAME]).type
    except Exception:  # noqa: BLE001 - not a tensor here (a layer, a number), or the file has errors
        return None
    return None


def _graphs(prog, defn) -> list:
    """Built graphs in which the nodes written in `defn` appear: its own, when it can be built on
    its own (a train block, a model with defaults or given arguments by a train block), else
    those of every definition that can."""
    from ..elaborate.train import build_train

    def build(d):
        if isinstance(d, ast.TrainDef):
            return [build_train(prog.defs, d.name, None, prog.defs.base).graph]
        if d.kind == "model":
            return [prog.model(d.name, **args).graph() for args in _bound_args(prog, d)[:1]]
        return []

    try:
        own = build(defn)
    except Exception:  # noqa: BLE001
        own = []
    if own:
        return own
    out = []
    for d in prog.defs.definitions.values():
        try:
            out.extend(build(d))
        except Exception:  # noqa: BLE001 - skip what does not build
            continue
    return out


def _walk(g):
    for n in g.nodes():
        yield n
        body = n.attrs.get("body")
        if n.op in ("scan", "generate") and body is not None:
            yield from _walk(body)


def _contains(span, line: int, character: int) -> bool:
    pos = (line + 1, character + 1)
    return (span.line, span.col) <= pos < (span.end_line, max(span.end_col, span.col + 1))


def _nodes_at(prog, defn, name: str, line: int, character: int) -> str | None:
    """The innermost op written at the position, in every instance of it."""
    best, found = None, []
    for g in _graphs(prog, defn):
        for n in _walk(g):
            s = n.span
            if s is None or s.source.name != name or not _contains(s, line, character):
                continue
            size = ((s.end_line - s.line) * 10_000 + s.end_col - s.col)
            if best is None or size < best:
                best, found = size, [n]
            elif size == best:
                found.append(n)
    if not found:
        return None
    layers = [n for n in found if n.path and n.op not in ("input", "get_item")]
    found = layers or found
    rows = []
    for n in found:
        where = "/".join(n.path) if n.path else n.op
        row = f"`{where}`: {n.op} → `{_type_text(n.type)}`"
        body = n.attrs.get("body")
        if n.op == "scan" and body is not None and isinstance(n.type, tuple):
            names = list(body.outputs)[1:]
            finals = ", ".join(f"{k} `{_type_text(t)}`" for k, t in zip(names, n.type[1:]))
            row = f"`{where}`: a cell scanned over time → `{_type_text(n.type[0])}`" + \
                (f"; final {finals}" if finals else "")
        if row not in rows:
            rows.append(row)
    return "\n\n".join(rows[:8]) + ("\n\n..." if len(rows) > 8 else "")


def hover(text: str, name: str, line: int, character: int) -> str | None:
    """Markdown for the value under the 0-based position, or None."""
    got = _word_at(text, line, character)
    if got is None:
        return None
    word, dotted = got
    try:
        prog = _load(text, name)
    except NndslError:
        return None
    defn = _def_at(prog, name, line)
    if defn is None:
        return None
    row = text.split("\n")[line]
    after = row[row.find(word, max(0, character - len(word))) + len(word):].lstrip()
    if not after.startswith("(") and word not in ("model", "cell", "train"):
        arg_sets = _bound_args(prog, defn) if isinstance(defn, ast.ModelDef) else []
        t = _evaluate(text, name, defn, dotted, arg_sets)
        if t is not None:
            return f"`{dotted}`: `{_type_text(t)}`"
        state = _state_type(defn, word.rstrip("'"))
        if state is not None:
            return state
    try:
        return _nodes_at(prog, defn, name, line, character) or _assigned(prog, defn, name, word, line)
    except Exception:  # noqa: BLE001
        return None


def _assigned(prog, defn, name: str, word: str, line: int) -> str | None:
    """The target of an assignment under the cursor: the last node its value made."""
    for s in getattr(defn, "body", ()):
        if isinstance(s, ast.Assign) and word in s.targets and s.span.line == line + 1 and len(s.targets) == 1:
            v = s.value.span
            last = None
            for g in _graphs(prog, defn):
                inside = [n for n in _walk(g) if n.span is not None and n.span.source.name == name
                          and (v.line, v.col) <= (n.span.line, n.span.col)
                          and (n.span.end_line, n.span.end_col) <= (v.end_line, v.end_col)]
                if inside:
                    last = max(inside, key=lambda n: int(n.id.lstrip("%")))
                    break
            if last is not None:
                return f"`{word}`: `{_type_text(last.type)}`"
    return None


def _state_type(defn, name: str) -> str | None:
    """A cell's state: its declared type (`h` and `h'` alike)."""
    for s in getattr(defn, "body", ()):
        if isinstance(s, ast.State) and s.name == name:
            return f"`{name}` (state): `{_decl(s.type)}`"
    return None


def _decl(t: ast.TypeExpr) -> str:
    from ..syntax.unparse import expr
    return (t.dtype or "f32") + "[" + ", ".join(expr(d) for d in t.dims) + "]"


# ---------------------------------------------------------------------- the server
def _doc_name(uri: str) -> str:
    """The name messages use for a document: its file path, or the URI itself for an unsaved one."""
    from pygls.uris import to_fs_path
    path = to_fs_path(uri)
    return path if path else uri


def _text(ls, uri: str) -> str | None:
    """The document's text; None for one the editor never opened (pygls would read the file
    from disk, and raise when there is none)."""
    try:
        return ls.workspace.get_text_document(uri).source
    except (OSError, ValueError):
        return None


def _lsp_diagnostic(uri: str, p: Problem):
    """A Problem in the protocol's terms; its notes become related information, one character
    wide, so the editor links each note to its place."""
    from lsprotocol import types as T
    related = [T.DiagnosticRelatedInformation(
        T.Location(uri, T.Range(T.Position(ln, ch), T.Position(ln, ch + 1))), note)
        for ln, ch, note in p.notes]
    return T.Diagnostic(
        range=T.Range(T.Position(p.line, p.character), T.Position(p.end_line, p.end_character)),
        message=p.message, severity=T.DiagnosticSeverity.Error, code=p.code, source="nndsl",
        related_information=related or None)


def _publish(ls, uri: str) -> None:
    """Check the document and replace all its diagnostics, tagged with the version checked, so
    the editor can drop a reply that a newer edit has overtaken."""
    from lsprotocol import types as T
    doc = ls.workspace.get_text_document(uri)
    text = _text(ls, uri)
    items = [_lsp_diagnostic(uri, p) for p in (diagnostics(text, _doc_name(uri)) if text is not None else [])]
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=items,
                                                                    version=doc.version))


def _hover_reply(ls, params):
    """The hover text as Markdown, or None (no hover) where there is no document or nothing typed."""
    from lsprotocol import types as T
    doc = _text(ls, params.text_document.uri)
    if doc is None:
        return None
    pos = params.position
    text = hover(doc, _doc_name(params.text_document.uri), pos.line, pos.character)
    if text is None:
        return None
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))


def build_server():
    """The pygls server with its handlers (a new one each call)."""
    from lsprotocol import types as T
    from pygls.lsp.server import LanguageServer

    import nndsl

    server = LanguageServer("nndsl", nndsl.__version__)

    @server.feature(T.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls, params: T.DidOpenTextDocumentParams):
        _publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls, params: T.DidChangeTextDocumentParams):
        _publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls, params: T.DidSaveTextDocumentParams):
        _publish(ls, params.text_document.uri)

    @server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls, params: T.DidCloseTextDocumentParams):
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                        diagnostics=[]))

    @server.feature(T.TEXT_DOCUMENT_HOVER)
    def on_hover(ls, params: T.HoverParams):
        return _hover_reply(ls, params)

    return server


MAX_FRAME = 64 * 1024 * 1024  # a larger Content-Length is refused before a byte of it is read
BODY_WAIT_S = 2.0  # a body that stops short of its Content-Length is given up after this long
_LENGTH = re.compile(rb"Content-Length:[ \t]*([0-9]+)[ \t]*(?:\r?\n|$)", re.I)
_MARK = b"Content-Length:"


class FrameReader:
    """The bytes from the editor as a stream of well-formed frames, for pygls's message loop.

    pygls reads `Content-Length` and then exactly that many bytes: one frame with a wrong, missing
    or huge length desynchronizes it for good (every later frame is read as part of a header or a
    body) or blocks it on bytes that never come. Here a bad frame is dropped, an error reply says
    so, and reading resumes at the next `Content-Length:` header; a body may not exceed MAX_FRAME,
    and one that stops short is given up after BODY_WAIT_S."""

    def __init__(self, raw, pool, reply=None):
        self.raw, self.pool, self.reply = raw, pool, reply or (lambda message: None)
        self.buf = bytearray()
        self.out = bytearray()
        self.pending = None
        self.eof = False

    async def _fill(self, timeout: float | None = None) -> bool:
        """Reads more bytes; False at the end of input or when `timeout` passes first."""
        import asyncio
        if self.eof:
            return False
        if self.pending is None:
            read = getattr(self.raw, "read1", self.raw.read)
            self.pending = asyncio.get_running_loop().run_in_executor(self.pool, read, 65536)
        try:
            data = await asyncio.wait_for(asyncio.shield(self.pending), timeout)
        except TimeoutError:
            return False
        self.pending = None
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _drop(self, upto: int, why: str) -> None:
        del self.buf[:upto]
        self.reply(why)

    async def _frame(self) -> bytes | None:
        import json
        while True:
            end = self.buf.find(b"\r\n\r\n")
            while end < 0:
                if len(self.buf) > 65536:  # headers are short: this is noise; keep the tail
                    cut = self.buf.rfind(_MARK)
                    self._drop(cut if cut > 0 else len(self.buf) - 64, "a frame header that never ends")
                if not await self._fill():
                    return None
                end = self.buf.find(b"\r\n\r\n")
            header = bytes(self.buf[:end + 2])
            found = list(_LENGTH.finditer(header))
            if not found:
                self._drop(end + 4, "a frame without a valid Content-Length")
                continue
            n = int(found[-1].group(1)) if len(found[-1].group(1)) <= 12 else MAX_FRAME + 1
            if n > MAX_FRAME:
                self._drop(end + 4, f"a frame of {n:,} bytes, more than {MAX_FRAME:,}")
                continue
            start = end + 4
            while len(self.buf) < start + n and self.buf.find(_MARK, start) < 0:
                if not await self._fill(BODY_WAIT_S):
                    break
            body = bytes(self.buf[start:start + n])
            try:
                json.loads(body)
            except ValueError:
                nxt = self.buf.find(_MARK, start)
                self._drop(nxt if 0 <= nxt < start + n else start + len(body),
                           "a frame whose body is not the JSON its Content-Length promised")
                continue
            del self.buf[:start + n]
            return b"Content-Length: %d\r\n\r\n" % n + body

    async def readline(self) -> bytes:
        if not self.out:
            frame = await self._frame()
            if frame is None:
                return b""
            self.out += frame
        i = self.out.find(b"\n")
        line = bytes(self.out[:i + 1]) if i >= 0 else bytes(self.out)
        del self.out[:len(line)]
        return line

    async def readexactly(self, n: int) -> bytes:
        data = bytes(self.out[:n])
        del self.out[:n]
        return data


def _error_frame(why: str) -> bytes:
    """A JSON-RPC parse-error response (id null): the editor learns a frame was dropped."""
    import json
    body = json.dumps({"jsonrpc": "2.0", "id": None,
                       "error": {"code": -32700, "message": f"nndsl dropped {why}"}}).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def serve_io(server, stdin=None, stdout=None) -> None:
    """pygls's standard-I/O loop, reading through a FrameReader."""
    import asyncio
    import sys
    from threading import Event

    from pygls.io_ import StdoutWriter, run_async

    server._stop_event = Event()
    writer = StdoutWriter(stdout or sys.stdout.buffer)
    server.protocol.set_writer(writer)
    reader = FrameReader(stdin or sys.stdin.buffer, server.thread_pool,
                         lambda why: writer.write(_error_frame(why)))
    try:
        asyncio.run(run_async(stop_event=server._stop_event, reader=reader, protocol=server.protocol,
                              error_handler=server.report_server_error))
    except BrokenPipeError:
        pass
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()


def serve(tcp_port: int | None = None) -> None:
    """Runs the server on standard I/O (how editors start it), or on a local TCP port."""
    try:
        server = build_server()
    except ImportError:
        raise NndslError("the language server needs pygls: pip install 'nndsl[tools]'", code="E806") from None
    if tcp_port is not None:
        server.start_tcp("127.0.0.1", tcp_port)
    else:
        serve_io(server)


if __name__ == "__main__":
    serve()
