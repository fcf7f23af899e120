"""Editor support: the Pygments lexer over every shipped program, and the VS Code extension's
TextMate grammar and manifest."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String
from pygments.util import ClassNotFound

from nndsl.tools.lexer import NndslLexer

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = sorted((ROOT / "examples").glob("*.nn")) + sorted((ROOT / "stdlib").glob("*.nn"))
VSCODE = ROOT / "editors" / "vscode"


def tokens(text: str) -> list:
    return list(NndslLexer().get_tokens(text))


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lexer_reads_every_program(path):
    text = path.read_text()
    toks = tokens(text)
    assert "".join(v for _, v in toks) == text
    assert [v for t, v in toks if t in Error] == []


def kinds(text: str) -> dict:
    return {v: t for t, v in tokens(text) if v.strip()}


def test_lexer_token_kinds():
    src = ('import cells\n'
           'model Net(hidden: int = 8) {  # a model\n'
           '  input x: f32[batch, 4]\n'
           "  c' = x -> dense(hidden) -> relu\n"
           '  output y = step(c\') ** 2 + 1.5e-3 * data.x\n'
           '}\n'
           'train t {\n'
           '  data digits(name="a\\tb")\n'
           '  step net minimize l with adam(lr=1e-3)\n'
           '  seed 3\n'
           '  z = if true then a and not b else c\n'
           '}\n')
    k = kinds(src)
    assert k["import"] in Keyword and k["model"] in Keyword and k["train"] in Keyword
    assert k["Net"] in Name.Class and k["t"] in Name.Class
    assert k["int"] in Keyword.Type and k["f32"] in Keyword.Type
    assert k["input"] in Keyword and k["output"] in Keyword and k["seed"] in Keyword
    assert k["# a model"] in Comment
    assert k["->"] in Operator and k["**"] in Operator and k["="] in Operator
    assert k["c'"] in Name and k["c'"] not in Keyword
    assert k["dense"] in Name.Function and k["relu"] in Name.Function
    assert k["8"] in Number.Integer and k["1.5e-3"] in Number.Float and k["1e-3"] in Number.Float
    assert k["\\t"] in String.Escape
    assert k["minimize"] in Keyword and k["with"] in Keyword
    assert k["and"] in Operator.Word and k["not"] in Operator.Word and k["true"] in Keyword.Constant
    # contextual words: `step(x)` is the step function, `data.x` a field, `step net` a statement
    toks = [(t, v) for t, v in tokens(src) if v.strip()]
    steps = [t for t, v in toks if v == "step"]
    assert steps[0] in Name.Function and steps[1] in Keyword
    datas = [t for t, v in toks if v == "data"]
    assert datas[0] not in Keyword and datas[1] in Keyword


def test_lexer_is_registered_for_pygments_by_name():
    from pygments.lexers import get_lexer_by_name
    try:
        lexer = get_lexer_by_name("nndsl")
    except ClassNotFound:  # pyproject declares it, so an install without it is a packaging bug
        pytest.fail("no `pygments.lexers` entry point named nndsl is installed, though pyproject declares one")
    assert isinstance(lexer, NndslLexer)


def _regexes(node, where="grammar"):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("match", "begin", "end") and isinstance(v, str):
                yield f"{where}.{k}", v
            else:
                yield from _regexes(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _regexes(v, f"{where}[{i}]")


def test_textmate_grammar_loads_and_its_regexes_compile():
    g = json.loads((VSCODE / "syntaxes" / "nndsl.tmLanguage.json").read_text())
    assert g["scopeName"] == "source.nndsl" and "nn" in g["fileTypes"]
    found = list(_regexes(g))
    assert len(found) > 20
    for where, rx in found:
        try:
            re.compile(rx)  # Oniguruma's syntax, in the subset Python's re shares
        except re.error as e:
            raise AssertionError(f"{where}: {e}") from None
    for inc in re.findall(r'"include": "#(\w+)"', json.dumps(g)):
        assert inc in g["repository"], inc


def test_textmate_grammar_scopes_a_program():
    """A poor man's TextMate engine (first match wins, per line): keywords, layers and comments
    get their scopes on a real program."""
    g = json.loads((VSCODE / "syntaxes" / "nndsl.tmLanguage.json").read_text())
    rules = []
    for inc in g["patterns"]:
        r = g["repository"][inc["include"][1:]]
        for p in r.get("patterns", [r]):
            if "match" in p:
                rules.append((re.compile(p["match"]), p.get("name"), p.get("captures", {})))
    scopes = {}
    for line in (ROOT / "examples" / "gan_ring.nn").read_text().splitlines():
        pos = 0
        while pos < len(line):
            for rx, name, caps in rules:
                m = rx.match(line, pos)
                if m and m.end() > pos:
                    if name:
                        scopes.setdefault(m.group(), name)
                    for i, c in caps.items():
                        if m.group(int(i)):
                            scopes.setdefault(m.group(int(i)), c["name"])
                    pos = m.end()
                    break
            else:
                pos += 1
    assert scopes["model"].startswith("storage.type") and scopes["Generator"].startswith("entity.name.type")
    assert scopes["input"].startswith("keyword") and scopes["step"].startswith("keyword")
    assert scopes["dense"].startswith("entity.name.function") and scopes["->"] == "keyword.operator.arrow.nndsl"
    assert scopes["minimize"].startswith("keyword") and scopes["128"].startswith("constant.numeric")
    assert any(k.startswith("# A GAN") and v.startswith("comment") for k, v in scopes.items())


def test_vscode_manifest():
    pkg = json.loads((VSCODE / "package.json").read_text())
    (lang,) = pkg["contributes"]["languages"]
    assert lang["id"] == "nndsl" and ".nn" in lang["extensions"]
    assert (VSCODE / lang["configuration"]).is_file()
    (gram,) = pkg["contributes"]["grammars"]
    assert gram["scopeName"] == "source.nndsl" and (VSCODE / gram["path"]).is_file()
    assert (VSCODE / pkg["main"]).is_file()
    conf = json.loads((VSCODE / "language-configuration.json").read_text())
    assert conf["comments"]["lineComment"] == "#"
    assert re.fullmatch(conf["wordPattern"], "c''")


def test_editor_grammar_word_lists_are_generated_from_the_grammar():
    """`python -m nndsl.tools.editor_grammar --write` regenerates them; this fails when they drift."""
    from nndsl.tools import editor_grammar as words
    path = Path(__file__).resolve().parents[2] / words.TMLANGUAGE
    text = path.read_text()
    assert words.tmlanguage(text) == text, "run: python -m nndsl.tools.editor_grammar --write"


def test_word_lists_follow_the_grammar():
    from nndsl.tools import editor_grammar as words
    from nndsl.tools.lexer import INLINE_WORDS, STATEMENT_WORDS
    assert {"model", "train", "input", "step", "epochs", "precision"} <= set(STATEMENT_WORDS)
    assert set(INLINE_WORDS) == {"minimize", "with", "every", "if", "then", "else"}
    assert "shard" in words.special_forms() and "detach" not in words.special_forms()
