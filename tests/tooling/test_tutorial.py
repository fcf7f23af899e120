"""The tutorial's programs all run: every `nn` block checks, every train block trains a few
steps, the numbers its text states are computed here independently, and every figure it shows
exists and was made by docs/tutorial/make_figures.py from its own programs."""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import jax
import numpy as np
import pytest

import nndsl
from nndsl.api import check_program

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial"


def _figures_module():
    spec = importlib.util.spec_from_file_location("make_figures", TUTORIAL / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FIG = _figures_module()
PROGRAMS = FIG.programs()
CHAPTERS = sorted(TUTORIAL.glob("[0-9]*.md"))


def load(name: str):
    return nndsl.loads(PROGRAMS[name], base=TUTORIAL)


def test_there_is_a_chapter_per_topic():
    titles = " ".join(p.read_text().splitlines()[0].lower() for p in CHAPTERS)
    for topic in ("perceptron", "multilayer", "backpropagation", "convolutions", "lenet", "recurrent",
                  "lstm", "gan"):
        assert topic in titles, topic
    assert len(PROGRAMS) >= 20


def train_briefly(prog, block: str) -> None:
    trainer = prog.trainer(block, iterations=1)
    result = trainer.fit(progress=False)
    assert set(result.variables) == set(trainer.spec.models)
    assert result.history
    for key, values in result.history.items():
        assert all(math.isfinite(v) for v in values), (block, key)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_block_checks_and_trains(name):
    """Every block checks; its first train block trains one step (compiling a step is most of
    the cost: the others of the file train in the slow test below, and are built here)."""
    prog = load(name)
    assert check_program(prog) == []
    for i, block in enumerate(prog.trains):
        if i == 0:
            train_briefly(prog, block)
        else:
            prog.trainer(block)  # shapes, steps, optimizers: everything but compiling


OTHER_BLOCKS = [(n, b) for n in sorted(PROGRAMS) for b in re.findall(r"^train (\w+)", PROGRAMS[n], re.M)[1:]]


@pytest.mark.slow
@pytest.mark.parametrize("name,block", OTHER_BLOCKS)
def test_other_train_blocks_train(name, block):
    train_briefly(load(name), block)


def test_the_chain_rule_by_hand_equals_grad():
    net = load("chain_rule.nn").model("OneLayer")
    x = jax.random.normal(jax.random.key(1), (5, 3))
    v = net.init(jax.random.key(0), x)
    w = np.asarray(v["params"]["w"])
    out = net.apply(v, x)
    ref = (1 - np.tanh(np.asarray(x) @ w) ** 2) @ w.T  # independent: numpy, from the formula
    np.testing.assert_allclose(out["auto"], ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["by_hand"], ref, rtol=1e-5, atol=1e-6)


def test_the_lecture_pooling_numbers():
    m = np.array([[1, 3, 2, 4], [1, 3, 2, 4], [5, 7, 6, 8], [5, 7, 6, 8]], np.float32)
    net = load("pooling.nn").model("Pools")
    out = net.apply({"params": {}, "state": {}}, m.reshape(1, 4, 4, 1))
    win = m.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(2, 2, 4)
    np.testing.assert_allclose(np.asarray(out["max"])[0, :, :, 0], win.max(-1))
    np.testing.assert_allclose(np.asarray(out["avg"])[0, :, :, 0], win.mean(-1))
    assert win.max(-1).tolist() == [[3, 4], [7, 8]] and win.mean(-1).tolist() == [[2, 3], [6, 7]]
    np.testing.assert_allclose(np.asarray(out["everything"]), [[m.mean()]])


def _conv_size(n, k, s=1, d=1, p=0):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def test_the_conv_shapes_the_text_states():
    g = load("conv_shapes.nn").model("ConvShapes").graph()
    size = {k: g.node(v).type.shape[1] for k, v in g.outputs.items()}
    assert size["valid"] == _conv_size(28, 5) == 24
    assert size["same"] == 28 and size["strided"] == math.ceil(28 / 2) == 14
    assert size["dilated"] == _conv_size(28, 3, d=2) == 24
    assert size["padded"] == _conv_size(28, 3, p=1) == 28
    assert size["pooled"] == _conv_size(28, 5) // 2 == 12
    assert size["up"] == 56
    # every shape written in a comment of the block is the one inferred
    for line in PROGRAMS["conv_shapes.nn"].splitlines():
        m = re.match(r"\s*output (\w+) = .*# \[batch, (\d+), (\d+), (\d+)\]", line)
        if m:
            assert g.node(g.outputs[m.group(1)]).type.shape[1:] == tuple(int(x) for x in m.group(2, 3, 4))


def test_the_parameter_counts_the_text_states():
    text = " ".join(p.read_text() for p in CHAPTERS)
    for prog, model, count in (("small_cnn.nn", "SmallCNN", "5,130"), ("mlp_digits.nn", "MLP", "26,122"),
                               ("lenet_model.nn", "LeNet5", "61,706")):
        assert f"{count} parameters" in text or f"has {count}" in text
        assert f"{load(prog).model(model).param_count():,}" == count


def test_the_rnn_topologies_have_the_stated_shapes():
    prog = load("elman.nn")
    text = PROGRAMS["elman.nn"]
    for m in re.finditer(r"model (\w+) \{[^}]*?output \w+ = [^\n]*# (\[[^\]]+\])", text):
        g = prog.model(m.group(1)).graph()
        (out,) = g.outputs.values()
        assert "[" + ", ".join(map(str, g.node(out).type.shape)) + "]" == m.group(2), m.group(1)


def test_every_figure_exists_is_shown_and_was_made_from_the_tutorial():
    shown = set()
    for md in [TUTORIAL / "README.md", *CHAPTERS]:
        for ref in re.findall(r"!\[[^\]]*\]\((img/[^)]+)\)", md.read_text()):
            assert (TUTORIAL / ref).is_file(), f"{md.name} shows a missing {ref}"
            shown.add(ref[len("img/"):])
    made = {image for _, _, _, image in FIG.FIGURES if image}
    assert shown == made
    for kind, prog, args, _ in FIG.FIGURES:
        assert prog in PROGRAMS
        p = load(prog)
        if kind == "graph" and args[0] != "--train":
            assert args[0] in p.models
        elif kind == "graph":
            assert args[1] in p.trains
    assert {p.name for p in (TUTORIAL / "img").iterdir()} == made


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_blocks_are_in_the_canonical_layout(name):
    from nndsl.tools.fmt import format_text
    assert format_text(PROGRAMS[name]) == PROGRAMS[name], f"run nndsl fmt on {name}"
