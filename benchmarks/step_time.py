"""Training-step time of nndsl against the same network written by hand in JAX + optax.

Both run in this process on the same data and batch; the figure is median step time, and the
ratio nndsl / hand-written (1.0 = as fast; below 1 = faster).

    python benchmarks/step_time.py [--steps 200]
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nndsl

MLP = """
model MLP(hidden: int = 256) {
  input x: [batch, 64]
  output logits = x -> dense(hidden) -> relu -> dense(hidden) -> relu -> dense(10)
}
train bench {
  data npz("bench.npz", batch=128, split=1.0)
  model net = MLP()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  step net minimize ce with adam(lr=1e-3)
}
"""

LENET = """
import lenet
train bench {
  data npz("bench.npz", batch=128, split=1.0)
  model net = LeNet5()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  step net minimize ce with adam(lr=1e-3)
}
"""


def hand_mlp(params, x):
    h = jax.nn.relu(x @ params["dense_0"]["kernel"] + params["dense_0"]["bias"])
    h = jax.nn.relu(h @ params["dense_1"]["kernel"] + params["dense_1"]["bias"])
    return h @ params["dense_2"]["kernel"] + params["dense_2"]["bias"]


def hand_lenet(p, x):
    def conv(x, k, b):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")) + b

    def pool(x):
        return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
    h = pool(jnp.tanh(conv(x, p["conv2d_0"]["kernel"], p["conv2d_0"]["bias"])))
    h = pool(jnp.tanh(conv(h, p["conv2d_1"]["kernel"], p["conv2d_1"]["bias"])))
    h = h.reshape(h.shape[0], -1)
    h = jnp.tanh(h @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])
    h = jnp.tanh(h @ p["dense_1"]["kernel"] + p["dense_1"]["bias"])
    return h @ p["dense_2"]["kernel"] + p["dense_2"]["bias"]


def timeit(fn, state, batch, steps):
    state = fn(state, batch)  # compile
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state = fn(state, batch)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved(fa, sa, fb, sb, batch, steps, rounds=10):
    """Medians of two step functions timed in alternating rounds, so that whatever else the
    machine is doing weighs on both alike."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(timeit(fa, sa, batch, max(1, steps // rounds)))
        tb.append(timeit(fb, sb, batch, max(1, steps // rounds)))
    return statistics.median(ta), statistics.median(tb)


def bench(name, src, hand, x, y, steps, tmp):
    np.savez(tmp / "bench.npz", x=x, y=y)
    prog = nndsl.loads(src, base=tmp)
    trainer = prog.trainer("bench")
    ts = trainer.init(jax.random.key(0))
    batch = {"x": jnp.asarray(x[:128]), "y": jnp.asarray(y[:128])}
    key = jax.random.key(1)
    step = trainer.step

    tx = optax.adam(1e-3)
    params = ts["params"]["net"]

    @jax.jit
    def hand_step(s, b):
        p, o = s

        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(hand(p, b["x"]), b["y"]).mean()
        g = jax.grad(loss)(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o
    t_nn, t_jax = interleaved(lambda s, b: step(s, b, key)[0], ts, hand_step, (params, tx.init(params)),
                              batch, steps)
    print(f"| {name} | {1e3 * t_nn:.3f} | {1e3 * t_jax:.3f} | {t_nn / t_jax:.2f} |")


def main():
    import tempfile
    from pathlib import Path
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp())
    print(f"device: {jax.devices()[0].platform}, batch 128, median of {a.steps} steps")
    print("| model | nndsl ms/step | hand-written JAX ms/step | ratio |")
    print("|---|---|---|---|")
    bench("MLP 64-256-256-10", MLP, hand_mlp, rng.standard_normal((512, 64)).astype(np.float32),
          rng.integers(0, 10, 512).astype(np.int32), a.steps, tmp)
    bench("LeNet-5 32x32", LENET, hand_lenet, rng.standard_normal((512, 32, 32, 1)).astype(np.float32),
          rng.integers(0, 10, 512).astype(np.int32), a.steps, tmp)


if __name__ == "__main__":
    main()
