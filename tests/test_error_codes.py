"""Every error code the source can raise is documented in docs/errors.md."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_is_documented():
    doc = (ROOT / "docs" / "errors.md").read_text()
    documented = set(re.findall(r"^\| ([EW]\d{3}) \|", doc, re.M))
    used = set()
    for p in (ROOT / "nndsl").rglob("*.py"):
        used |= set(re.findall(r'code\s*=\s*"([EW]\d{3})"', p.read_text()))
    assert used, "no codes found: the pattern is stale"
    assert used <= documented, sorted(used - documented)


def test_binary_and_non_utf8_files_are_located_errors(tmp_path):
    import nndsl
    for name, data, where in (("nul.nn", b"model M {\n  input x: [batch, 2]\x00\n}\n", ":2:22:"),
                              ("latin1.nn", b"model M {\n  # caf\xe9\n}\n", ":2:8:")):
        p = tmp_path / name
        p.write_bytes(data)
        try:
            nndsl.load(p)
        except nndsl.NndslError as e:
            text = str(e)
            assert where in text and "\x00" not in text, text
        else:
            raise AssertionError(name)
