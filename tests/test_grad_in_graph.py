"""`grad(expr, wrt)` inside a program equals jax.grad of the same expression written by hand."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nndsl

SRC = """
model Penalty {
  input x: [batch, 3]
  s = x -> dense(4) -> tanh -> dense(1)
  g = grad(sum(s), x)
  output gp = mean((sqrt(sum(g * g, axis=1)) - 1) ** 2)
  output g = g
}
"""


def test_grad_matches_hand_written_jax(key):
    net = nndsl.loads(SRC).model("Penalty")
    x = jax.random.normal(key, (5, 3))
    v = net.init(key, x)
    p = v["params"]

    def score(x):
        h = jnp.tanh(x @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])
        return jnp.sum(h @ p["dense_1"]["kernel"] + p["dense_1"]["bias"])
    g_ref = jax.grad(score)(x)
    gp_ref = jnp.mean((jnp.linalg.norm(g_ref, axis=1) - 1) ** 2)
    out = net.apply(v, x)
    np.testing.assert_allclose(out["g"], g_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["gp"], gp_ref, rtol=1e-5)


def test_gradient_of_the_penalty_flows_to_parameters(key):
    # WGAN-GP trains D through its gradient penalty: a second-order gradient.
    net = nndsl.loads(SRC).model("Penalty")
    x = jax.random.normal(key, (5, 3))
    v = net.init(key, x)
    grads = jax.grad(lambda p: net.apply({"params": p, "state": {}}, x)["gp"])(v["params"])
    assert float(jnp.abs(grads["dense_0"]["kernel"]).sum()) > 0


def test_grad_of_a_non_scalar_is_a_located_error():
    src = "model M { input x: [batch, 3]\n  output g = grad(x -> dense(2), x) }"
    try:
        nndsl.loads(src).model("M")
    except nndsl.ShapeError as e:
        assert "scalar" in str(e) and ":2:" in str(e)
    else:
        raise AssertionError("expected a ShapeError")
