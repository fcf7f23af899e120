"""The language server over real pipes: a frame with a bad, missing, huge, too long or too short
`Content-Length` is dropped with an error reply, and every later frame is still answered."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pygls")
ROOT = Path(__file__).resolve().parents[1]


def frame(obj) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def request(i, method, params=None) -> dict:
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": params or {}}


class Client:
    def __init__(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.p = subprocess.Popen([sys.executable, "-m", "nndsl.cli", "lsp"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.messages: list = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.p.stdout
        while True:
            n = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
                if line in (b"\r\n", b"\n"):
                    break
            self.messages.append(json.loads(out.read(n)))

    def send(self, data: bytes):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def wait_for(self, pred, timeout=60.0):
        end = time.time() + timeout
        while time.time() < end:
            for m in self.messages:
                if pred(m):
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no such message; got {self.messages}")

    def close(self):
        try:
            self.send(frame(request(999, "shutdown")) + frame({"jsonrpc": "2.0", "method": "exit"}))
            self.p.wait(timeout=20)
        except Exception:  # noqa: BLE001  (cleanup: the server is gone or stuck; end it)
            self.p.kill()


@pytest.fixture(scope="module")
def client():
    c = Client()
    c.send(frame(request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})))
    c.wait_for(lambda m: m.get("id") == 1 and "result" in m)
    c.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    yield c
    c.close()


def hover(i):
    return request(i, "textDocument/hover", {"textDocument": {"uri": "file:///nowhere/a.nn"},
                                              "position": {"line": 0, "character": 0}})


BAD = {
    "not_a_number": b"Content-Length: abc\r\n\r\n{\"jsonrpc\": \"2.0\"}",
    "missing": b"Content-Type: x\r\n\r\n{\"jsonrpc\": \"2.0\"}",
    "huge": b"Content-Length: 99999999999999999999\r\n\r\n{}",
    "too_long": b"Content-Length: 500\r\n\r\n{\"jsonrpc\": \"2.0\", \"id\": 5}",
    "too_short": b"Content-Length: 5\r\n\r\n{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": \"x\"}",
    "garbage": b"\x00\x1b[2J not a header at all\r\n\r\n",
}


@pytest.mark.parametrize("i, bad", list(enumerate(sorted(BAD), start=10)))
def test_a_bad_frame_is_dropped_and_later_frames_answered(client, i, bad):
    errors_before = sum(1 for m in client.messages if m.get("id") is None and "error" in m)
    client.send(BAD[bad])
    client.send(frame(hover(i)))
    client.wait_for(lambda m: m.get("id") == i and "error" not in m)
    errors = [m for m in client.messages if m.get("id") is None and "error" in m]
    assert len(errors) > errors_before and errors[-1]["error"]["code"] == -32700


def test_open_document_after_a_bad_frame_gets_diagnostics(client):
    client.send(BAD["not_a_number"] + BAD["huge"])
    doc = {"uri": "file:///nowhere/a.nn", "languageId": "nndsl", "version": 1,
           "text": "model M {\n  input x: [batch, 4]\n  output y = x -> dense(10 ** 10 ** 10)\n}\n"}
    client.send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": doc}}))
    m = client.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics")
    assert [d["code"] for d in m["params"]["diagnostics"]] == ["E410"]


def test_exponential_recursion_does_not_freeze_the_server(client):
    text = ("model F(n: int = 30) {\n  input x: [batch, 4]\n"
            "  output y = if n == 0 then x else (x -> F(n - 1)) + (x -> F(n - 1))\n}\n")
    doc = {"uri": "file:///nowhere/fib.nn", "languageId": "nndsl", "version": 1, "text": text}
    client.send(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": doc}}))
    m = client.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                        and m["params"]["uri"].endswith("fib.nn"))
    assert [d["code"] for d in m["params"]["diagnostics"]] == ["E411"]
    client.send(frame(hover(77)))
    client.wait_for(lambda m: m.get("id") == 77 and "error" not in m)
