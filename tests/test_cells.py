"""The stdlib cells (RNN, LSTM, GRU) against independent step-by-step references with the same
weights: every step's output, `last`, gradients, stacking, bidirectional, unroll and one step."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl
from nndsl.ir.types import TensorType


# ---------------------------------------------------------------------- references
# Written against the math in stdlib/cells.nn, for `xp` = numpy (forward, float64) or jax.numpy
# (gradients). [h, x] puts h first, so each kernel's first `hidden` rows multiply h.
def _sigmoid(xp, z):
    return 1.0 / (1.0 + xp.exp(-z))


def _dense(p, v):
    return v @ p["kernel"] + p["bias"]


def rnn_step(xp, p, state, x):
    (h,) = state
    h = xp.tanh(_dense(p["dense_0"], xp.concatenate([h, x], axis=-1)))
    return h, (h,)


def lstm_step(xp, p, state, x):
    h, c = state
    hx = xp.concatenate([h, x], axis=-1)
    f = _sigmoid(xp, _dense(p["dense_0"], hx))
    i = _sigmoid(xp, _dense(p["dense_1"], hx))
    g = xp.tanh(_dense(p["dense_2"], hx))
    o = _sigmoid(xp, _dense(p["dense_3"], hx))
    c = f * c + i * g
    h = o * xp.tanh(c)
    return h, (h, c)


def gru_step(xp, p, state, x):
    (h,) = state
    hx = xp.concatenate([h, x], axis=-1)
    z = _sigmoid(xp, _dense(p["dense_0"], hx))
    r = _sigmoid(xp, _dense(p["dense_1"], hx))
    n = xp.tanh(_dense(p["dense_2"], xp.concatenate([r * h, x], axis=-1)))
    h = (1 - z) * n + z * h
    return h, (h,)


STEPS = {"RNN": (rnn_step, 1), "LSTM": (lstm_step, 2), "GRU": (gru_step, 1)}
N_DENSE = {"RNN": 1, "LSTM": 4, "GRU": 3}


def zeros_state(xp, cell, batch, hidden):
    return tuple(xp.zeros((batch, hidden)) for _ in range(STEPS[cell][1]))


def scan_ref(xp, cell, p, seq, hidden, reverse=False):
    """Every step's output, [batch, time, hidden]; `reverse` runs from the last step back."""
    step = STEPS[cell][0]
    state = zeros_state(xp, cell, seq.shape[0], hidden)
    ys = [None] * seq.shape[1]
    for t in (reversed(range(seq.shape[1])) if reverse else range(seq.shape[1])):
        ys[t], state = step(xp, p, state, seq[:, t])
    return xp.stack(ys, axis=1)


def unroll_ref(xp, cell, p, x, steps):
    step = STEPS[cell][0]
    state = zeros_state(xp, cell, x.shape[0], x.shape[1])
    ys = []
    for _ in range(steps):
        x, state = step(xp, p, state, x)
        ys.append(x)
    return xp.stack(ys, axis=1)


# ---------------------------------------------------------------------- helpers
def program(body: str, inp: str = "[batch, time, 3]") -> nndsl.Program:
    return nndsl.loads(f"import cells\nmodel M {{\n  input seq: {inp}\n  output y = {body}\n}}\n")


def weights(net, x, seed=0, scale=0.6):
    """Weights laid out by the graph's ParamSpecs, drawn here (float64), large enough that every
    gate is away from saturation and from 1/2."""
    rng = np.random.default_rng(seed)
    out: dict = {}
    for path, spec in sorted(net.graph((TensorType(tuple(x.shape)),)).params.items()):
        tree = out
        for k in path[:-1]:
            tree = tree.setdefault(k, {})
        tree[path[-1]] = rng.normal(0, scale, tuple(spec.shape))
    return out


def f32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def apply(net, params, x):
    return np.asarray(net.apply({"params": f32(params), "state": {}}, jnp.asarray(x, jnp.float32)), np.float64)


def close(got, want, tol=2e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def seq_data(shape=(2, 6, 3), seed=1):
    return np.random.default_rng(seed).normal(size=shape)


# ---------------------------------------------------------------------- many-to-many and many-to-one
@pytest.mark.parametrize("cell", sorted(STEPS))
def test_cell_parameter_layout(cell):
    net = program(f"seq -> {cell}(5)").model("M")
    params = net.graph((TensorType((2, 6, 3)),)).params
    want = {(f"{cell}_0", f"dense_{i}", leaf): shape for i in range(N_DENSE[cell])
            for leaf, shape in (("kernel", (5 + 3, 5)), ("bias", (5,)))}
    assert {k: tuple(v.shape) for k, v in params.items()} == want
    v = net.init(jax.random.key(0), jnp.zeros((2, 6, 3)))
    leaves = jax.tree_util.tree_leaves_with_path(v["params"])
    assert {tuple(k.key for k in path): leaf.shape for path, leaf in leaves} == want


@pytest.mark.parametrize("cell", sorted(STEPS))
def test_every_step_matches_reference(cell):
    x = seq_data()
    net = program(f"seq -> {cell}(5)").model("M")
    p = weights(net, x)
    y = apply(net, p, x)
    assert y.shape == (2, 6, 5)
    close(y, scan_ref(np, cell, p[f"{cell}_0"], x, 5))


@pytest.mark.parametrize("cell", sorted(STEPS))
def test_last_matches_reference_final_step(cell):
    x = seq_data()
    net = program(f"seq -> {cell}(5) -> last").model("M")
    p = weights(net, x)
    close(apply(net, p, x), scan_ref(np, cell, p[f"{cell}_0"], x, 5)[:, -1])


@pytest.mark.parametrize("cell", sorted(STEPS))
def test_gradients_match_jnp_reference(cell):
    x = seq_data((2, 4, 3))
    net = program(f"seq -> {cell}(5)").model("M")
    p = f32(weights(net, x))
    w = jnp.asarray(np.random.default_rng(2).normal(size=(2, 4, 5)), jnp.float32)

    def loss_model(params, seq):
        return jnp.sum(net.apply({"params": params, "state": {}}, seq) * w)

    def loss_ref(params, seq):
        return jnp.sum(scan_ref(jnp, cell, params[f"{cell}_0"], seq, 5) * w)

    xs = jnp.asarray(x, jnp.float32)
    g_model = jax.jit(jax.grad(loss_model, argnums=(0, 1)))(p, xs)
    g_ref = jax.jit(jax.grad(loss_ref, argnums=(0, 1)))(p, xs)
    assert jax.tree.structure(g_model) == jax.tree.structure(g_ref)
    for a, b in zip(jax.tree.leaves(g_model), jax.tree.leaves(g_ref)):
        close(a, b, tol=1e-4)
    assert float(jnp.abs(g_model[1]).max()) > 0


def test_jit_and_time_length_from_the_input():
    net = program("seq -> LSTM(4) -> last -> dense(1)").model("M")
    x7 = seq_data((3, 7, 3))
    p = weights(net, x7)
    apply_jit = jax.jit(net.apply)
    for x in (x7, seq_data((3, 2, 3), seed=5)):  # one model, sequences of any length
        y = apply_jit({"params": f32(p), "state": {}}, jnp.asarray(x, jnp.float32))
        h = scan_ref(np, "LSTM", p["LSTM_0"], x, 4)[:, -1]
        close(y, _dense(p["dense_0"], h))


# ---------------------------------------------------------------------- stacking and bidirectional
def test_stacked_lstm_matches_reference():
    x = seq_data()
    net = program("seq -> LSTM(8) * 2").model("M")
    p = weights(net, x)
    assert sorted(p) == ["LSTM_0", "LSTM_1"]
    assert p["LSTM_1"]["dense_0"]["kernel"].shape == (16, 8)  # the second cell reads the first's h
    h1 = scan_ref(np, "LSTM", p["LSTM_0"], x, 8)
    close(apply(net, p, x), scan_ref(np, "LSTM", p["LSTM_1"], h1, 8))


def test_stacked_mixed_cells_match_reference():
    x = seq_data()
    net = program("seq -> GRU(6) -> RNN(4) -> last").model("M")
    p = weights(net, x)
    h = scan_ref(np, "GRU", p["GRU_0"], x, 6)
    close(apply(net, p, x), scan_ref(np, "RNN", p["RNN_0"], h, 4)[:, -1])


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_bidirectional_matches_reference(cell):
    x = seq_data()
    net = program(f"seq -> bidirectional({cell}(8))").model("M")
    p = weights(net, x)
    (scope,) = p
    fwd = scan_ref(np, cell, p[scope]["forward"], x, 8)
    bwd = scan_ref(np, cell, p[scope]["backward"], x, 8, reverse=True)
    # the backward half at step t has read steps t..T-1; equivalently, the cell run on the reversed
    # sequence, its outputs reversed back
    flipped = scan_ref(np, cell, p[scope]["backward"], x[:, ::-1], 8)[:, ::-1]
    close(bwd, flipped, tol=1e-12)
    y = apply(net, p, x)
    assert y.shape == (2, 6, 16)
    close(y, np.concatenate([fwd, bwd], axis=-1))


def test_bidirectional_gradients_match_jnp_reference():
    x = jnp.asarray(seq_data((2, 4, 3)), jnp.float32)
    net = program("seq -> bidirectional(LSTM(3)) -> last").model("M")
    p = f32(weights(net, x))
    (scope,) = p

    def loss_model(params, seq):
        return jnp.sum(jnp.sin(net.apply({"params": params, "state": {}}, seq)))

    def loss_ref(params, seq):
        q = params[scope]
        y = jnp.concatenate([scan_ref(jnp, "LSTM", q["forward"], seq, 3),
                             scan_ref(jnp, "LSTM", q["backward"], seq, 3, reverse=True)], axis=-1)
        return jnp.sum(jnp.sin(y[:, -1]))

    for a, b in zip(jax.tree.leaves(jax.jit(jax.grad(loss_model, (0, 1)))(p, x)),
                    jax.tree.leaves(jax.jit(jax.grad(loss_ref, (0, 1)))(p, x))):
        close(a, b, tol=1e-4)


# ---------------------------------------------------------------------- one-to-many and one-to-one
@pytest.mark.parametrize("cell", sorted(STEPS))
def test_unroll_feeds_output_back(cell):
    x = seq_data((2, 4))
    net = program(f"seq -> unroll({cell}(4), steps=5)", "[batch, 4]").model("M")
    p = weights(net, x)
    (scope,) = p
    y = apply(net, p, x)
    assert y.shape == (2, 5, 4)
    close(y, unroll_ref(np, cell, p[scope], x, 5))


def test_unroll_gradients_match_jnp_reference():
    x = jnp.asarray(seq_data((2, 4)), jnp.float32)
    net = program("seq -> unroll(GRU(4), steps=3) -> last", "[batch, 4]").model("M")
    p = f32(weights(net, x))
    (scope,) = p

    def loss_model(params, x0):
        return jnp.sum(net.apply({"params": params, "state": {}}, x0) ** 2)

    def loss_ref(params, x0):
        return jnp.sum(unroll_ref(jnp, "GRU", params[scope], x0, 3)[:, -1] ** 2)

    for a, b in zip(jax.tree.leaves(jax.jit(jax.grad(loss_model, (0, 1)))(p, x)),
                    jax.tree.leaves(jax.jit(jax.grad(loss_ref, (0, 1)))(p, x))):
        close(a, b, tol=1e-4)


@pytest.mark.parametrize("cell", sorted(STEPS))
def test_single_step_runs_once_from_initial_state(cell):
    x = seq_data((3, 3))
    net = program(f"seq -> {cell}(5)", "[batch, 3]").model("M")
    p = weights(net, x)
    y = apply(net, p, x)
    want, _ = STEPS[cell][0](np, p[f"{cell}_0"], zeros_state(np, cell, 3, 5), x)
    assert y.shape == (3, 5)
    close(y, want)


def test_bound_cell_shares_weights():
    src = ("import cells\nmodel M {\n  input a: [batch, time, 3]\n  input b: [batch, time, 3]\n"
           "  enc = LSTM(4)\n  output y = [a -> enc -> last, b -> enc -> last]\n}\n")
    net = nndsl.loads(src).model("M")
    xa, xb = seq_data(seed=3), seq_data(seed=4)
    rng = np.random.default_rng(0)
    params = net.graph((TensorType(xa.shape), TensorType(xb.shape))).params
    assert {k[0] for k in params} == {"enc"} and len(params) == 8
    p: dict = {"enc": {}}
    for path, spec in sorted(params.items()):
        p["enc"].setdefault(path[1], {})[path[2]] = rng.normal(0, 0.6, tuple(spec.shape))
    y = net.apply({"params": f32(p), "state": {}}, jnp.asarray(xa, jnp.float32), jnp.asarray(xb, jnp.float32))
    want = np.concatenate([scan_ref(np, "LSTM", p["enc"], xa, 4)[:, -1],
                           scan_ref(np, "LSTM", p["enc"], xb, 4)[:, -1]], axis=-1)
    close(y, want)


def test_gru_convention_is_z_keeps_the_old_state():
    """stdlib GRU computes h' = (1 - z) * n + z * h (Cho et al., Keras); the other common
    convention, h' = z * n + (1 - z) * h, gives different outputs with the same weights."""
    x = seq_data()
    net = program("seq -> GRU(5)").model("M")
    p = weights(net, x)
    q = p["GRU_0"]

    def other_step(xp, p, state, x):
        (h,) = state
        hx = xp.concatenate([h, x], axis=-1)
        z = _sigmoid(xp, _dense(p["dense_0"], hx))
        r = _sigmoid(xp, _dense(p["dense_1"], hx))
        n = xp.tanh(_dense(p["dense_2"], xp.concatenate([r * h, x], axis=-1)))
        h = z * n + (1 - z) * h
        return h, (h,)

    state, ys = (np.zeros((2, 5)),), []
    for t in range(x.shape[1]):
        y, state = other_step(np, q, state, x[:, t])
        ys.append(y)
    y = apply(net, p, x)
    close(y, scan_ref(np, "GRU", q, x, 5))
    assert not np.allclose(y, np.stack(ys, axis=1), atol=1e-3)
