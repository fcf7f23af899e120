"""Step semantics of train blocks with several models, checked against updates done by hand:
each step moves only its own models, in order, the second seeing the first's update; `* n`
repeats; the whole iteration is one jitted function."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nndsl

SRC = """
model Lin { input x: [batch, 2]
  param w: [2] ~ ones
  output y = x @ w }
train game {
  data logic(gate="and")
  model a = Lin()
  model b = Lin()
  loss la = mean(((data.x -> a) - 3) ** 2)
  loss lb = mean(((data.x -> b) - (data.x -> a)) ** 2 + (data.x -> b) ** 2)
  step a STEP_A minimize la with sgd(lr=0.1)
  step b minimize lb with sgd(lr=0.1)
  iterations 1
}
"""
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)


def la(wa):
    return jnp.mean((X @ wa - 3) ** 2)


def lb(wb, wa):
    return jnp.mean((X @ wb - X @ wa) ** 2 + (X @ wb) ** 2)


def one_iteration(repeat_a: int):
    prog = nndsl.loads(SRC.replace("STEP_A", f"* {repeat_a}" if repeat_a > 1 else ""))
    tr = prog.trainer("game")
    ts = tr.init(jax.random.key(0))
    batch = {"x": X, "y": np.array([0, 0, 0, 1], np.float32)}
    ts2, metrics = tr.step(ts, batch, jax.random.key(1))
    return ts, ts2, metrics


def test_second_step_sees_the_first_steps_update():
    ts, ts2, metrics = one_iteration(1)
    wa, wb = np.ones(2, np.float32), np.ones(2, np.float32)
    wa_new = wa - 0.1 * jax.grad(la)(wa)
    wb_new = wb - 0.1 * jax.grad(lb)(wb, wa_new)  # b's gradient uses a AFTER a's step
    np.testing.assert_allclose(ts2["params"]["a"]["w"], wa_new, rtol=1e-6)
    np.testing.assert_allclose(ts2["params"]["b"]["w"], wb_new, rtol=1e-6)
    stale = wb - 0.1 * jax.grad(lb)(wb, wa)
    assert not np.allclose(ts2["params"]["b"]["w"], stale)
    np.testing.assert_allclose(metrics["la"], la(wa), rtol=1e-6)
    np.testing.assert_allclose(metrics["lb"], lb(wb, wa_new), rtol=1e-6)


def test_repeated_step_runs_n_updates_in_order():
    _, ts2, _ = one_iteration(3)
    wa = np.ones(2, np.float32)
    for _ in range(3):
        wa = wa - 0.1 * jax.grad(la)(wa)
    np.testing.assert_allclose(ts2["params"]["a"]["w"], wa, rtol=1e-5)


def test_a_step_moves_only_its_own_models():
    src = SRC.replace("STEP_A", "").replace("  step b minimize lb with sgd(lr=0.1)\n", "")
    tr = nndsl.loads(src).trainer("game")
    ts = tr.init(jax.random.key(0))
    ts2, _ = tr.step(ts, {"x": X, "y": np.zeros(4, np.float32)}, jax.random.key(1))
    np.testing.assert_array_equal(ts2["params"]["b"]["w"], ts["params"]["b"]["w"])
    assert not np.allclose(ts2["params"]["a"]["w"], ts["params"]["a"]["w"])


def test_joint_step_updates_both_models_on_one_loss():
    src = SRC.replace("STEP_A", "").replace("step a  minimize la", "step a, b minimize lb").replace(
        "  step b minimize lb with sgd(lr=0.1)\n", "")
    tr = nndsl.loads(src).trainer("game")
    ts = tr.init(jax.random.key(0))
    ts2, _ = tr.step(ts, {"x": X, "y": np.zeros(4, np.float32)}, jax.random.key(1))
    wa, wb = np.ones(2, np.float32), np.ones(2, np.float32)
    ga, gb = jax.grad(lambda a, b: lb(b, a), argnums=(0, 1))(wa, wb)
    np.testing.assert_allclose(ts2["params"]["a"]["w"], wa - 0.1 * ga, rtol=1e-6)
    np.testing.assert_allclose(ts2["params"]["b"]["w"], wb - 0.1 * gb, rtol=1e-6)


def test_the_iteration_is_one_compiled_function():
    tr = nndsl.loads(SRC.replace("STEP_A", "* 2")).trainer("game")
    ts = tr.init(jax.random.key(0))
    jaxpr = jax.make_jaxpr(tr.step_fn(4))(ts, {"x": X, "y": np.zeros(4, np.float32)}, jax.random.key(1))
    text = str(jaxpr)
    assert "while" in text or "scan" in text  # `* 2` is a loop inside the program, not in Python


def test_step_errors_are_located():
    bad = SRC.replace("STEP_A", "").replace("step b minimize lb", "step c minimize lb")
    try:
        nndsl.loads(bad, "game.nn").trainer("game")
    except nndsl.NndslError as e:
        assert "unknown model `c`" in str(e) and "game.nn:" in str(e)
    else:
        raise AssertionError("expected an error")
    scalar = SRC.replace("STEP_A", "").replace("minimize la", "minimize data.x -> a")
    try:
        nndsl.loads(scalar).trainer("game")
    except nndsl.NndslError as e:
        assert "scalar" in str(e)
    else:
        raise AssertionError("expected an error")
    unrelated = SRC.replace("STEP_A", "").replace("step b minimize lb", "step b minimize la")
    try:
        nndsl.loads(unrelated).trainer("game")
    except nndsl.NndslError as e:
        assert "does not depend on the parameters of b" in str(e)
    else:
        raise AssertionError("expected an error")
