"""The LSTM of LANGUAGE.md, written in nndsl as gate equations, against a hand-written JAX LSTM
(`lax.scan`, four separate matmuls on [h, x]) and flax's OptimizedLSTMCell where installed.
Forward + backward of a sum over all outputs; median step time; one process.

    python benchmarks/lstm_time.py [--batch 64 --time 100 --features 32 --hidden 128]
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

import nndsl

SRC = """
import cells
model Net(hidden: int) {
  input seq: [batch, time, features]
  output h = seq -> LSTM(hidden)
}
"""


def median_time(fn, *args, reps=50):
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def hand_lstm(p, seq):
    hidden = p["dense_0"]["kernel"].shape[1]
    b = seq.shape[0]

    def step(carry, x):
        h, c = carry
        hx = jnp.concatenate([h, x], -1)
        f = jax.nn.sigmoid(hx @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])
        i = jax.nn.sigmoid(hx @ p["dense_1"]["kernel"] + p["dense_1"]["bias"])
        g = jnp.tanh(hx @ p["dense_2"]["kernel"] + p["dense_2"]["bias"])
        o = jax.nn.sigmoid(hx @ p["dense_3"]["kernel"] + p["dense_3"]["bias"])
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), h
    z = jnp.zeros((b, hidden))
    _, hs = jax.lax.scan(step, (z, z), jnp.swapaxes(seq, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--time", type=int, default=100)
    ap.add_argument("--features", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    a = ap.parse_args()
    net = nndsl.loads(SRC).model("Net", hidden=a.hidden)
    seq = jax.random.normal(jax.random.key(0), (a.batch, a.time, a.features))
    v = net.init(jax.random.key(1), seq)
    p = v["params"]["LSTM_0"]
    nn_step = jax.jit(jax.grad(lambda v, x: jnp.sum(net.apply(v, x)), argnums=(0, 1)))
    hand_step = jax.jit(jax.grad(lambda p, x: jnp.sum(hand_lstm(p, x)), argnums=(0, 1)))
    t_nn = median_time(nn_step, v, seq)
    t_hand = median_time(hand_step, p, seq)
    print(f"device: {jax.devices()[0].platform}; batch {a.batch}, time {a.time}, features {a.features}, "
          f"hidden {a.hidden}; forward+backward, median")
    print("| implementation | ms | ratio to hand-written |")
    print("|---|---|---|")
    print(f"| nndsl (gate equations) | {1e3 * t_nn:.2f} | {t_nn / t_hand:.2f} |")
    print(f"| hand-written JAX (lax.scan, 4 matmuls) | {1e3 * t_hand:.2f} | 1.00 |")
    try:
        import flax.linen as fnn
    except ImportError:
        print("| flax OptimizedLSTMCell | not installed | |")
        return
    cell = fnn.RNN(fnn.OptimizedLSTMCell(a.hidden))
    fp = cell.init(jax.random.key(2), seq)
    f_step = jax.jit(jax.grad(lambda p, x: jnp.sum(cell.apply(p, x)), argnums=(0, 1)))
    t_f = median_time(f_step, fp, seq)
    print(f"| flax OptimizedLSTMCell | {1e3 * t_f:.2f} | {t_f / t_hand:.2f} |")


if __name__ == "__main__":
    main()
