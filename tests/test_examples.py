"""Every example trains to the figure the README promises (seeded, so a regression fails)."""
from __future__ import annotations

from pathlib import Path

import pytest

import nndsl

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def fit(file: str, block: str | None = None):
    return nndsl.load(EXAMPLES / file).trainer(block).fit(progress=False)


def test_examples_all_check():
    for f in sorted(EXAMPLES.glob("*.nn")):
        assert nndsl.api.check_program(nndsl.load(f)) == [], f.name


def test_lenet5_digits_reaches_97_percent():
    r = fit("lenet5.nn")
    assert r.history["val_acc"][-1] >= 0.97
    assert set(r.variables) == {"net"}


@pytest.mark.parametrize("gate", ["and_gate", "or_gate"])
def test_perceptron_learns_linearly_separable_gates(gate):
    assert fit("perceptron.nn", gate).history["acc"][-1] == 1.0


def test_perceptron_cannot_learn_xor():
    # No line separates XOR: at most 3 of the 4 points can be right, whatever the training.
    accs = fit("perceptron.nn", "xor_gate").history["acc"]
    assert max(accs) <= 0.75


def test_mlp_learns_xor():
    assert fit("xor_mlp.nn").history["acc"][-1] == 1.0


@pytest.mark.parametrize("block", ["mlp_sigmoid", "mlp_tanh", "mlp_relu"])
def test_mlp_digits_reaches_95_percent(block):
    assert fit("mlp_digits.nn", block).history["val_acc"][-1] >= 0.95


def test_conv1d_finds_motifs():
    assert fit("conv1d_sequences.nn").history["val_acc"][-1] >= 0.95


def test_conv3d_classifies_volumes():
    assert fit("conv3d_volumes.nn").history["val_acc"][-1] >= 0.95


def test_pooling_matches_the_lecture():
    import numpy as np
    prog = nndsl.load(EXAMPLES / "pooling.nn")
    m = np.array([[1, 3, 2, 4], [1, 3, 2, 4], [5, 7, 6, 8], [5, 7, 6, 8]], np.float32).reshape(1, 4, 4, 1)
    net = prog.model("Pools")
    out = net.apply({"params": {}, "state": {}}, m)
    assert np.asarray(out["max"])[0, :, :, 0].tolist() == [[3, 4], [7, 8]]
    assert np.asarray(out["avg"])[0, :, :, 0].tolist() == [[2, 3], [6, 7]]
