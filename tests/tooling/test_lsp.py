"""The language server: diagnostics as the text changes, inferred shapes on hover, both through
the analysis functions and through a real client talking to `nndsl lsp` over standard I/O."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

import nndsl
from nndsl.api import check_program
from nndsl.tools import lsp

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

GOOD = """import cells

model Net(hidden: int = 16) {
  input x: [batch, time, 3]
  h = x -> LSTM(hidden) -> last
  output y = h -> dense(2)
}
"""


def position(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """0-based (line, character) of the `nth` occurrence of `needle`."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at)
    return line, at - (text.rfind("\n", 0, at) + 1)


def test_a_good_file_has_no_diagnostics():
    assert lsp.diagnostics(GOOD, str(ROOT / "doc.nn")) == []
    for f in sorted(EXAMPLES.glob("*.nn"))[:5]:
        assert lsp.diagnostics(f.read_text(), str(f)) == [], f.name


def test_a_shape_error_is_placed_where_nndsl_check_places_it():
    text = GOOD.replace("-> dense(2)", "-> dense(2) -> conv2d(4, 3)")
    (p,) = lsp.diagnostics(text, str(ROOT / "doc.nn"))
    line, col = position(text, "conv2d")
    assert (p.line, p.character, p.end_line) == (line, col, line)
    assert p.end_character == col + len("conv2d(4, 3)")
    assert p.code == "E301" and "rank 4" in p.message


def test_several_errors_and_syntax_errors():
    text = "model M {\n  input x: [b, 3]\n  y = x -> dense(3\n  z = y ->\n}\n"
    probs = lsp.diagnostics(text, str(ROOT / "doc.nn"))
    assert probs and all(p.code.startswith("E1") for p in probs)
    text = "model A {\n  input x: [b, 3]\n  output y = x -> nope\n}\nmodel B {\n  input x: [b, 3]\n  output y = q\n}\n"
    probs = lsp.diagnostics(text, str(ROOT / "doc.nn"))
    assert sorted(p.line for p in probs) == [2, 6]
    assert any("nope" in p.message for p in probs) and any("`q`" in p.message for p in probs)


def test_errors_in_an_imported_file_show_at_the_import(tmp_path):
    (tmp_path / "lib.nn").write_text("model L {\n  input x: [b, 3]\n  output y = x -> dense(\n}\n")
    text = 'import "lib.nn"\n\nmodel M {\n  input x: [b, 3]\n  output y = x -> L\n}\n'
    probs = lsp.diagnostics(text, str(tmp_path / "main.nn"))
    assert probs and all(p.line == 0 for p in probs)
    assert any("lib.nn:3" in p.message for p in probs)


@pytest.mark.parametrize("needle,nth,want", [
    ("h =", 0, "`h`: `f32[batch, 16]`"),                 # an intermediate value
    ("x ->", 0, "`x`: `f32[batch, time, 3]`"),           # an input, where it is used
    ("h -> dense", 0, "`h`: `f32[batch, 16]`"),
    ("dense", 0, "dense → `f32[batch, 2]`"),              # a layer: the op and what it gives
    ("LSTM", 0, "→ `f32[batch, time, 16]`"),             # a cell: its output over time
])
def test_hover_shows_inferred_shapes(needle, nth, want):
    line, col = position(GOOD, needle, nth)
    text = lsp.hover(GOOD, str(ROOT / "doc.nn"), line, col)
    assert text is not None and want in text


def test_hover_in_train_blocks_and_fields():
    path = EXAMPLES / "seq2seq.nn"
    text = path.read_text()
    line, col = position(text, "data.prev")
    assert lsp.hover(text, str(path), line, col + len("data.p")) == "`data.prev`: `i32[batch, 8]`"
    line, col = position(text, "out.logits")
    assert lsp.hover(text, str(path), line, col + len("out.l")) == "`out.logits`: `f32[batch, 8, 10]`"
    # inside a model that needs an argument, the train block's binding is used
    line, col = position(text, "output logits")
    assert lsp.hover(text, str(path), line, col + len("output ")) == "`logits`: `f32[batch, time, 10]`"
    line, col = position(text, "h0=enc.h")
    assert lsp.hover(text, str(path), line, col + 7) == "`enc.h`: `f32[batch, 128]`"


def test_hover_inside_a_sub_model_lists_its_instances():
    path = EXAMPLES / "resnet_digits.nn"
    text = (ROOT / "stdlib" / "resnet.nn").read_text()
    line, col = position(text, "relu(y + skip)")
    hov = lsp.hover(text, str(ROOT / "stdlib" / "resnet.nn"), line, col + 1)
    assert hov is not None and "BasicBlock_0/relu" in hov
    assert lsp.hover(path.read_text(), str(path), 0, 0) is None  # a comment


def test_hover_on_nothing():
    assert lsp.hover(GOOD, str(ROOT / "doc.nn"), 1, 0) is None
    assert lsp.hover("model M {\n  y = \n}\n", str(ROOT / "doc.nn"), 1, 2) is None


async def _session(uri: str, text: str):
    from lsprotocol import types as T
    from pygls.lsp.client import BaseLanguageClient

    client = BaseLanguageClient("nndsl-test", "0")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params):
        published.put_nowait(params)

    await client.start_io(sys.executable, "-m", "nndsl.tools", "lsp", cwd=str(ROOT),
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    try:
        await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities(),
                                                         process_id=os.getpid()))
        client.initialized(T.InitializedParams())
        bad = text.replace("-> dense(2)", "-> dense(2) -> conv2d(4, 3)")
        client.text_document_did_open(T.DidOpenTextDocumentParams(
            T.TextDocumentItem(uri=uri, language_id="nndsl", version=1, text=bad)))
        first = await asyncio.wait_for(published.get(), 90)
        client.text_document_did_change(T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [T.TextDocumentContentChangeWholeDocument(text=text)]))
        second = await asyncio.wait_for(published.get(), 90)
        line, col = position(text, "h =")
        hov = await asyncio.wait_for(client.text_document_hover_async(
            T.HoverParams(T.TextDocumentIdentifier(uri), T.Position(line, col))), 90)
        await client.shutdown_async(None)
        client.exit(None)
        return first, second, hov
    finally:
        await client.stop()


def test_server_over_stdio(tmp_path):
    pytest.importorskip("pygls")
    uri = (tmp_path / "doc.nn").as_uri()
    first, second, hov = asyncio.run(_session(uri, GOOD))
    assert first.uri == uri and len(first.diagnostics) == 1
    d = first.diagnostics[0]
    assert d.code == "E301" and d.source == "nndsl" and d.range.start.line == 5
    assert list(second.diagnostics) == []  # fixed as one types
    assert hov.contents.value == "`h`: `f32[batch, 16]`"


def test_loads_with_a_file_name_is_checked():
    bad = "model M {\n  input x: [b, 3]\n  output y = x -> conv2d(4, 3)\n}\n"
    assert check_program(nndsl.loads(bad)) != []
    assert check_program(nndsl.loads(bad, name="doc.nn")) != []
