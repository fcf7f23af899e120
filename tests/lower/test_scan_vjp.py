"""The recurrent-kernel gradient of a scan (nndsl/ops/scan_vjp.py) against JAX's own gradient
of `lax.scan`, on cells written here with random weights, and on a training run."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl
from nndsl.ops import scan_vjp

H, F, B, T = 8, 5, 3, 6


def weights(seed, *shapes):
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return [0.4 * jax.random.normal(k, s) for k, s in zip(keys, shapes)]


def lstm_concat(p, carry, x):
    """The gates as one matmul on [h, x] (nndsl's -O1 form)."""
    w, b = p
    h, c = carry
    f, i, g, o = jnp.split(jnp.concatenate([h, x], -1) @ w + b, 4, -1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def lstm_split(p, carry, x):
    """x @ W_x + h @ W_h (nndsl's -O2 form): a matmul on the step input itself."""
    wx, wh, b = p
    h, c = carry
    f, i, g, o = jnp.split(x @ wx + h @ wh + b, 4, -1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def gru(p, h, x):
    """Reset before the candidate's matmul, as the stdlib GRU; W_h also scales h elementwise."""
    wz, wr, wn, b, scale = p
    hx = jnp.concatenate([h, x], -1)
    z = jax.nn.sigmoid(hx @ wz + b)
    r = jax.nn.sigmoid(hx @ wr)
    n = jnp.tanh(jnp.concatenate([r * h, x], -1) @ wn)
    return (1 - z) * n + z * h * scale, {"h": h, "n": n}


CELLS = {
    "lstm_concat": (lstm_concat, lambda: weights(1, (H + F, 4 * H), (4 * H,)), 2),
    "lstm_split": (lstm_split, lambda: weights(2, (F, 4 * H), (H, 4 * H), (4 * H,)), 2),
    "gru": (gru, lambda: weights(3, (H + F, H), (H + F, H), (H + F, H), (H,), (H,)), 1),
}


def loss(scan, cell, p, init, xs, reverse):
    final, ys = scan(lambda c, x: cell(p, c, x), init, xs, reverse=reverse)
    return sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree_util.tree_leaves((final, ys)))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_gradient_matches_lax_scan(name, reverse):
    cell, make, n_carry = CELLS[name]
    p = make()
    init = tuple(weights(4, *[(B, H)] * n_carry)) if n_carry > 1 else weights(4, (B, H))[0]
    xs = weights(5, (T, B, F))[0]
    want = jax.jit(jax.grad(lambda *a: loss(jax.lax.scan, cell, *a, reverse), argnums=(0, 1, 2)))(p, init, xs)
    got = jax.jit(jax.grad(lambda *a: loss(scan_vjp.scan, cell, *a, reverse), argnums=(0, 1, 2)))(p, init, xs)
    for a, b in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    value = loss(scan_vjp.scan, cell, p, init, xs, reverse)
    assert value == pytest.approx(float(loss(jax.lax.scan, cell, p, init, xs, reverse)), rel=1e-6)


def test_falls_back_without_a_weight_matmul():
    """A cell with no matmul on a weight has nothing to gain: plain lax.scan, same values."""
    xs = weights(6, (T, B, H))[0]
    f = lambda c, x: (jnp.tanh(c + x), c * 2)
    got = scan_vjp.scan(f, jnp.zeros((B, H)), xs)
    want = jax.lax.scan(f, jnp.zeros((B, H)), xs)
    for a, b in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a))


SRC = """
import cells
model Tagger {
  input seq: [batch, time, 3]
  output logits = seq -> LSTM(16) -> dense(4) -> last
}
train fit {
  data npz("d.npz", batch=8, split=1.0)
  model net = Tagger()
  loss ce = cross_entropy(data.x -> net, data.y)
  step net minimize ce with adam(lr=1e-2)
}
"""


def _losses(tmp_path, monkeypatch, on: str, level: int) -> list:
    monkeypatch.setenv("NNDSL_SCAN_VJP", on)  # read when the step is traced
    trainer = nndsl.loads(SRC, base=tmp_path, opt_level=level).trainer("fit")
    train, _ = trainer.spec.data.arrays(0)
    ts, key, out = trainer.init(jax.random.key(0)), jax.random.key(1), []
    for i in range(6):
        batch = {k: v[8 * (i % 2):8 * (i % 2) + 8] for k, v in train.items()}
        ts, m = trainer.step(ts, batch, key)
        out.append(float(m["ce"]))
    return out


@pytest.mark.parametrize("level", [1, 2])
def test_training_run_is_the_same_with_and_without(tmp_path, monkeypatch, level):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((16, 7, 3)).astype(np.float32),
             y=rng.integers(0, 4, 16))
    with_vjp = _losses(tmp_path, monkeypatch, "1", level)
    without = _losses(tmp_path, monkeypatch, "0", level)
    np.testing.assert_allclose(with_vjp, without, rtol=1e-5)
    assert with_vjp[-1] < with_vjp[0]
