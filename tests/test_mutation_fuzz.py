"""Token mutations of the real example programs (a token deleted, duplicated, swapped with its
neighbour, or replaced by another, by a bomb of issue 13 (a huge number, a huge repeat, control
characters in a string) or by a model of the same file, which makes recursion): checking the
result raises nothing but nndsl's own diagnostics. 500 cases in the normal suite;
NNDSL_MUTATIONS=10000 (or the slow test) for more."""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import nndsl
from nndsl.api import check_program

ROOT = Path(__file__).resolve().parents[1]
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*\'*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?'
                   r'|->|\*\*|==|!=|<=|>=|\s+|.', re.S)
SOURCES = sorted((ROOT / "examples").glob("*.nn"))
EXTRA = ["(", ")", "[", "]", "{", "}", ",", "->", "=", "~", "*", "@", "'", "0", "-1", "1e99", "x",
         "model", "cell", "train", "input", "output", "state", "param", "step", "if", "then", "else",
         '"s"', "\x00", "é"]
# Hostile values of issue 13's families: numbers too large to compute, repeats too many to
# expand, control characters to paint over a message. Each must be a diagnostic, found fast.
BOMBS = ["10 ** 10 ** 10", "7 ** 30000000", "9" * 450, "1e400", "2 ** 63", "(0 - 8) ** 0.5",
         "3037000500 * 3037000500", '"\\x1b[2J\\r\\0"', '"\\u202e\\n"']
REPEATS = [" * 1000000000", " * 10 ** 30", " * 1e11", " * 0"]


def mutate(text: str, rng: np.random.Generator) -> str:
    toks = TOKEN.findall(text)
    idx = [i for i, t in enumerate(toks) if not t.isspace() and not t.startswith("#")]
    i = int(rng.choice(idx))
    kind = int(rng.integers(0, 6))
    if kind == 4:  # a bomb where a value stands, or a repeat after a layer
        toks[i] = str(rng.choice(BOMBS)) if rng.random() < 0.6 else toks[i] + str(rng.choice(REPEATS))
        return "".join(toks)
    if kind == 5:  # a layer replaced by a model of the same file: recursion, mutual or doubled
        models = re.findall(r"\bmodel\s+([A-Z]\w*)\s*[({]", text)
        layers = [j for j in idx if re.fullmatch(r"[a-z_]+", toks[j]) and toks[j] not in KEYWORDS]
        if models and layers:
            j = int(rng.choice(layers))
            toks[j] = str(rng.choice(models)) + "()"
            return "".join(toks)
        kind = 3
    if kind == 0:
        toks[i] = ""
    elif kind == 1:
        toks[i] = toks[i] + " " + toks[i]
    elif kind == 2:
        j = idx[min(idx.index(i) + 1, len(idx) - 1)]
        toks[i], toks[j] = toks[j], toks[i]
    else:
        toks[i] = str(rng.choice(EXTRA))
    return "".join(toks)


KEYWORDS = {"model", "cell", "train", "input", "output", "state", "param", "step", "if", "then", "else",
            "data", "loss", "metric", "minimize", "with", "import", "iterations", "epochs", "seed", "batch",
            "and", "or", "not", "true", "false", "sample", "every"}


DOCUMENTED = set(re.findall(r"^\| (E\d{3}) \|", (ROOT / "docs" / "errors.md").read_text(), re.MULTILINE))


def run_cases(n: int, seed: int) -> Counter:
    """Checks `n` mutated programs and counts the verdicts: "diagnosed" (an NndslError whose every
    diagnostic carries a documented code) or "accepted". Anything else fails at once, with the
    mutated source to reproduce it."""
    rng = np.random.default_rng(seed)
    texts = [(p, p.read_text()) for p in SOURCES]
    verdicts: Counter = Counter()
    for _ in range(n):
        path, text = texts[int(rng.integers(0, len(texts)))]
        src = mutate(text, rng)
        try:
            check_program(nndsl.loads(src, path.name, base=ROOT / "examples"))
            verdicts["accepted"] += 1
        except nndsl.NndslError as e:
            codes = [d.code for d in e.diagnostics]
            assert codes and set(codes) <= DOCUMENTED, f"codes {codes}\n--- mutated {path.name} ---\n{src}"
            verdicts["diagnosed"] += 1
        except Exception as e:  # noqa: BLE001  (the property under test)
            raise AssertionError(f"{type(e).__name__}: {e}\n--- mutated {path.name} ---\n{src}") from e
    return verdicts


def check_verdicts(verdicts: Counter, n: int) -> None:
    """Every case requested got a verdict, and both kinds occur: mutations that never broke a
    program, or only ever broke it, would leave the checker (or its diagnostics) untested."""
    assert verdicts["diagnosed"] + verdicts["accepted"] == n, verdicts
    assert verdicts["diagnosed"] > 0 and verdicts["accepted"] > 0, verdicts


def test_500_mutations_raise_only_diagnostics():
    n = int(os.environ.get("NNDSL_MUTATIONS", "500"))
    check_verdicts(run_cases(n, seed=0), n)


@pytest.mark.slow
def test_10000_mutations_raise_only_diagnostics():
    check_verdicts(run_cases(10_000, seed=1), 10_000)


def test_a_layer_or_a_float_as_padding_is_a_diagnostic_not_a_crash():
    # found by the 10,000-mutation run: `padding=step` reached the conv shape rule as a layer
    for pad in ("step", "1.5", '[1, "a"]'):
        src = f"model M {{\n  input x: [batch, 8, 8, 1]\n  output y = x -> conv2d(4, 3, padding={pad})\n}}\n"
        with pytest.raises(nndsl.NndslError, match="padding|arguments cannot be used"):
            nndsl.loads(src).model("M")
