"""Train blocks through the Python API: fit(), the pure step function, data sources, seeding."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl

DIGITS = """
model Net(hidden: int = 16) {
  input x: [batch, 64]
  output logits = x -> dense(hidden) -> relu -> dense(10)
}
train digits {
  data digits(batch=64, split=0.8, flat=true)
  model net = Net()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=1e-2)
  epochs 2
}
"""

LINEAR = """
model Lin {
  input x: [batch, 2]
  output y = x -> dense(1)
}
train fit_or {
  data logic(gate="or")
  model net = Lin()
  y = data.x -> net
  loss l = mse(y, data.y)
  step net minimize l with sgd(lr=0.1)
  iterations 5
}
"""

XOR = """
model XorNet(hidden: int = 8) {
  input x: [batch, 2]
  output logit = x -> dense(hidden) -> tanh -> dense(1)
}
train xor {
  data logic(gate="xor")
  model net = XorNet()
  logit = data.x -> net
  loss bce = bce_logits(logit, data.y)
  metric acc = accuracy(logit, data.y, threshold=0.0)
  step net minimize bce with adam(lr=0.05)
  epochs 200
}
"""


def np_net(params, x):
    h = np.maximum(x @ np.asarray(params["dense_0"]["kernel"]) + np.asarray(params["dense_0"]["bias"]), 0)
    return h @ np.asarray(params["dense_1"]["kernel"]) + np.asarray(params["dense_1"]["bias"])


@pytest.fixture(scope="module")
def digits_run():
    prog = nndsl.loads(DIGITS)
    trainer = prog.trainer("digits")
    return prog, trainer, trainer.fit(progress=False)


def test_fit_history_keys_and_lengths(digits_run):
    _, _, result = digits_run
    h = result.history
    assert set(h) == {"ce", "acc", "val_ce", "val_acc"}
    assert all(len(v) == 2 for v in h.values()), {k: len(v) for k, v in h.items()}
    assert all(isinstance(x, float) and np.isfinite(x) for v in h.values() for x in v)
    assert h["ce"][1] < h["ce"][0]
    assert h["val_acc"][-1] > 0.5  # ten classes: chance is 0.1


def test_fit_variables_by_instance_name(digits_run):
    _, _, result = digits_run
    assert set(result.variables) == {"net"}
    v = result.variables["net"]
    assert set(v) == {"params", "state"}
    shapes = jax.tree_util.tree_map(lambda a: tuple(a.shape), v["params"])
    assert shapes == {"dense_0": {"kernel": (64, 16), "bias": (16,)}, "dense_1": {"kernel": (16, 10), "bias": (10,)}}


def test_val_metrics_match_the_api_on_the_held_out_split(digits_run):
    prog, trainer, result = digits_run
    _, test = trainer.spec.data.arrays(trainer.seed)
    x, y = np.asarray(test["x"]), np.asarray(test["y"])
    assert x.shape[1:] == (64,) and len(x) == 1797 - round(1797 * 0.8)
    params = result.variables["net"]["params"]
    logits = np_net(params, x)
    acc = float((logits.argmax(1) == y).mean())
    assert result.history["val_acc"][-1] == pytest.approx(acc, abs=1e-5)
    z = logits - logits.max(1, keepdims=True)
    ce = float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))
    assert result.history["val_ce"][-1] == pytest.approx(ce, rel=1e-4)
    # the trained variables plug straight into the model API
    net = prog.model("Net")
    np.testing.assert_allclose(np.asarray(net.apply(result.variables["net"], x)), logits, rtol=1e-4, atol=1e-4)


def test_same_seed_same_history_other_seed_differs():
    prog = nndsl.loads(DIGITS.replace("epochs 2", "iterations 6"))
    a = prog.trainer("digits", seed=3).fit(progress=False)
    b = prog.trainer("digits", seed=3).fit(progress=False)
    c = prog.trainer("digits", seed=4).fit(progress=False)
    assert a.history == b.history
    for k in a.variables["net"]["params"]:
        np.testing.assert_array_equal(np.asarray(a.variables["net"]["params"][k]["kernel"]),
                                      np.asarray(b.variables["net"]["params"][k]["kernel"]))
    assert a.history["ce"] != c.history["ce"]


def test_seed_setting_in_the_block():
    second = LINEAR[LINEAR.index("train"):].replace("fit_or", "fit_or2")
    second = second.replace("iterations 5", "iterations 3\n  seed 12")
    prog = nndsl.loads(LINEAR.replace("iterations 5", "iterations 3\n  seed 11") + second)
    a = prog.trainer("fit_or").fit(progress=False)
    b = prog.trainer("fit_or", seed=11).fit(progress=False)
    c = prog.trainer("fit_or2").fit(progress=False)
    assert a.history == b.history
    assert a.history != c.history


def test_iterations_mode_logs_each_iteration_when_few():
    result = nndsl.loads(LINEAR).trainer("fit_or").fit(progress=False)
    assert set(result.history) == {"l"}  # split is 1: no held-out set, so no val_ keys
    assert len(result.history["l"]) == 5


def test_iterations_override_and_eval_every():
    prog = nndsl.loads(LINEAR.replace("iterations 5", "iterations 12\n  eval_every 4"))
    assert len(prog.trainer("fit_or").fit(progress=False).history["l"]) == 3
    assert len(prog.trainer("fit_or", iterations=8).fit(progress=False).history["l"]) == 2


def test_step_is_a_pure_jittable_function_matching_hand_written_sgd():
    trainer = nndsl.loads(LINEAR).trainer("fit_or")
    ts0 = trainer.init(jax.random.key(0))
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 1], np.float32)
    batch = {"x": x, "y": y}
    key = jax.random.key(1)

    def ref_loss(p):
        return jnp.mean((x @ p["kernel"] + p["bias"] - y[:, None]) ** 2)

    p0 = ts0["params"]["net"]["dense_0"]
    ts1, metrics = trainer.step(ts0, batch, key)
    ref_l, g = jax.value_and_grad(ref_loss)(p0)
    assert float(metrics["l"]) == pytest.approx(float(ref_l), rel=1e-5)
    for leaf in ("kernel", "bias"):
        np.testing.assert_allclose(np.asarray(ts1["params"]["net"]["dense_0"][leaf]),
                                   np.asarray(p0[leaf] - 0.1 * g[leaf]), rtol=1e-5, atol=1e-6)
    # pure: the input state is untouched and the same call gives the same answer
    np.testing.assert_array_equal(np.asarray(ts0["params"]["net"]["dense_0"]["kernel"]), np.asarray(p0["kernel"]))
    ts1b, _ = trainer.step(ts0, batch, key)
    np.testing.assert_array_equal(np.asarray(ts1b["params"]["net"]["dense_0"]["kernel"]),
                                  np.asarray(ts1["params"]["net"]["dense_0"]["kernel"]))
    # and it composes with jit like any JAX function
    ts1c, _ = jax.jit(trainer.step)(ts0, batch, key)
    np.testing.assert_allclose(np.asarray(ts1c["params"]["net"]["dense_0"]["kernel"]),
                               np.asarray(ts1["params"]["net"]["dense_0"]["kernel"]), rtol=1e-6)


def test_own_training_loop_with_step_decreases_the_loss(digits_run):
    _, trainer, _ = digits_run
    train, _ = trainer.spec.data.arrays(0)
    bs = trainer.batch_size
    ts = trainer.init(jax.random.key(0))
    key = jax.random.key(1)
    losses = []
    for i in range(30):
        lo = (i * bs) % (len(train["x"]) - bs)
        batch = {k: v[lo:lo + bs] for k, v in train.items()}
        ts, m = trainer.step(ts, batch, key)
        losses.append(float(m["ce"]))
    assert int(ts["iteration"]) == 30
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_xor_reaches_accuracy_one():
    result = nndsl.loads(XOR).trainer("xor").fit(progress=False)
    assert result.history["acc"][-1] == 1.0
    assert result.history["bce"][-1] < 0.1
    v = result.variables["net"]["params"]
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    h = np.tanh(x @ np.asarray(v["dense_0"]["kernel"]) + np.asarray(v["dense_0"]["bias"]))
    logit = (h @ np.asarray(v["dense_1"]["kernel"]) + np.asarray(v["dense_1"]["bias"]))[:, 0]
    np.testing.assert_array_equal(logit > 0, [False, True, True, False])


def test_perceptron_learns_and_but_not_xor(root):
    prog = nndsl.load(root / "examples" / "perceptron.nn")
    assert prog.trainer("and_gate").fit(progress=False).history["acc"][-1] == 1.0
    assert prog.trainer("xor_gate", epochs=20).fit(progress=False).history["acc"][-1] < 1.0


# ---------------------------------------------------------------------------- files as data
FILE_TRAIN = """
model Net {
  input x: [batch, 3]
  output logits = x -> dense(2)
}
train t {
  data %s
  model net = Net()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=0.1)
  epochs 10
}
"""


def _separable(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 2] > 0).astype(np.int64)
    return x, y


def test_npz_source_relative_to_the_nn_file(tmp_path):
    x, y = _separable()
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "points.npz", x=x, y=y)
    (tmp_path / "t.nn").write_text(FILE_TRAIN % 'npz("data/points.npz", batch=8, split=0.75)')
    trainer = nndsl.load(tmp_path / "t.nn").trainer("t")
    assert trainer.batch_size == 8
    train, test = trainer.spec.data.arrays(trainer.seed)
    assert len(train["x"]) == 30 and len(test["x"]) == 10
    rows = {tuple(r) for r in x.tolist()}
    seen = {tuple(r) for part in (train, test) for r in np.asarray(part["x"]).tolist()}
    assert seen == rows
    result = trainer.fit(progress=False)
    assert set(result.history) == {"ce", "acc", "val_ce", "val_acc"}
    assert len(result.history["ce"]) == 10
    assert result.history["acc"][-1] >= 0.9


def test_csv_source_label_last_column(tmp_path):
    x, y = _separable(seed=1)
    np.savetxt(tmp_path / "points.csv", np.column_stack([x, y]), delimiter=",", fmt="%.6f")
    (tmp_path / "t.nn").write_text(FILE_TRAIN % 'csv("points.csv", batch=10, split=0.5)')
    trainer = nndsl.load(tmp_path / "t.nn").trainer("t")
    train, test = trainer.spec.data.arrays(0)
    assert np.asarray(train["x"]).shape == (20, 3) and np.asarray(test["y"]).shape == (20,)
    assert set(np.unique(np.asarray(train["y"])).tolist()) <= {0, 1}
    result = trainer.fit(progress=False)
    assert len(result.history["val_acc"]) == 10
    assert result.history["acc"][-1] >= 0.85


def test_missing_data_file_is_a_located_error(tmp_path):
    (tmp_path / "t.nn").write_text(FILE_TRAIN % 'npz("nope.npz", batch=8)')
    with pytest.raises(nndsl.NndslError) as e:
        nndsl.load(tmp_path / "t.nn").trainer("t")
    assert "nope.npz" in str(e.value)
    assert "t.nn:7:" in str(e.value)
