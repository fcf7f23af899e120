"""Every example trains to the figure the README promises (seeded, so a regression fails)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
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


def test_resnet_digits_reaches_97_percent_with_running_statistics():
    r = fit("resnet_digits.nn")
    # val_acc is measured with train=False: batchnorm reads the running statistics in `state`
    assert r.history["val_acc"][-1] >= 0.97
    assert r.variables["net"]["state"], "batchnorm running statistics were not kept"


def test_text_classification_reaches_90_percent():
    assert fit("text_classification.nn").history["val_acc"][-1] >= 0.90


def test_bidirectional_tagger_beats_forward_tagger():
    bi = fit("sequence_tagging.nn", "bidirectional").history["val_acc"][-1]
    fwd = fit("sequence_tagging.nn", "forward").history["val_acc"][-1]
    assert bi >= 0.95
    assert fwd < 0.85 < bi


def test_char_generation_trains_and_samples():
    from nndsl.sample import generate
    prog = nndsl.load(EXAMPLES / "char_generation.nn")
    trainer = prog.trainer("sonnets", epochs=2)
    r = trainer.fit(progress=False)
    assert r.history["ce"][-1] < r.history["ce"][0] or len(r.history["ce"]) == 1
    name, args = trainer.spec.models["net"]
    model = prog.model(name, **args)
    text = generate(model, r.variables["net"], trainer.spec.data.vocab, "Shall I", 40, 0.8, seed=1)
    assert text.startswith("Shall I") and len(text) == len("Shall I") + 40
    assert set(text) <= set(trainer.spec.data.vocab)
    assert generate(model, r.variables["net"], trainer.spec.data.vocab, "Shall I", 40, 0.8, seed=1) == text
    # temperature 0: the in-language sampler continues with the teacher-forced argmax
    vocab = trainer.spec.data.vocab
    greedy = generate(model, r.variables["net"], vocab, "Shall I", 3, 0.0)
    ids = [vocab.index(c) for c in "Shall I"]
    for _ in range(3):
        logits = prog.model(f"{name}.logits", **args).apply(r.variables["net"], np.asarray([ids], np.int32))
        ids.append(int(np.argmax(logits[0, -1])))
    assert greedy == "".join(vocab[i] for i in ids)


@pytest.mark.slow
def test_lstm_solves_the_adding_problem_and_rnn_does_not():
    lstm = fit("adding_problem.nn", "lstm").history["val_err"][-1]
    rnn = fit("adding_problem.nn", "rnn").history["val_err"][-1]
    assert lstm < 0.01
    assert rnn > 0.05


def _ring_coverage(file, block, tmp_path):
    import importlib.util
    from nndsl.io import save_variables
    r = fit(file, block)
    for name, v in r.variables.items():
        save_variables(tmp_path / f"{name}.safetensors", v)
    spec = importlib.util.spec_from_file_location("gq", EXAMPLES.parent / "benchmarks" / "gan_quality.py")
    gq = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gq)
    pts, trainer = gq.sample_generator(str(EXAMPLES / file), str(tmp_path), block)
    a = trainer.spec.data.args
    return gq.ring_coverage(pts, a["modes"], a["radius"], a["std"])[0]


@pytest.mark.slow
def test_gan_ring_covers_at_least_7_of_8_modes(tmp_path):
    assert _ring_coverage("gan_ring.nn", None, tmp_path) >= 7


@pytest.mark.slow
def test_wgan_gp_ring_covers_at_least_7_of_8_modes(tmp_path):
    assert _ring_coverage("wgan_gp_ring.nn", None, tmp_path) >= 7


def test_seq2seq_decodes_at_least_99_percent_exactly(tmp_path):
    # `exact`: every token of the reversed sequence right, the decoder feeding back its own greedy
    # choices (`tokens`, generated inside the language), on held-out sequences
    r = fit("seq2seq.nn")
    assert r.history["val_exact"][-1] >= 0.99
    # the decoding graph runs on its own with the trained instance's weights: `Reverser.tokens`
    from nndsl.cli import main
    from nndsl.io import save_variables
    save_variables(tmp_path / "net.safetensors", r.variables["net"])
    src = np.random.RandomState(5).randint(1, 10, (32, 8)).astype(np.int32)
    np.save(tmp_path / "src.npy", src)
    assert main(["run", str(EXAMPLES / "seq2seq.nn"), "Reverser.tokens", "--arg", "vocab=10", "--weights",
                 str(tmp_path / "net.safetensors"), "--input", str(tmp_path / "src.npy"), "--output",
                 str(tmp_path / "out.npy")]) == 0
    assert (np.load(tmp_path / "out.npy") == src[:, ::-1]).all(axis=1).mean() >= 0.95
