"""What nndsl's training step costs beyond the same step written by hand in JAX + optax.

The hand-written step donates its buffers and does nothing else: no non-finite guard, no
iteration counter, no per-step key, no metrics. nndsl's `donating_step` does all of those, so
the ratio nndsl / hand-written is the per-step tax (1.0 = none). MLP 784-256-256-10 at batch
128, forward + backward + Adam, both in this process, timed in alternating rounds (the machine
may be busy with other work) and reported as medians.

Also printed: how many `select` instructions and fusions XLA's optimized step holds, and the
cold compile time (first call, no compilation cache) of the LeNet-5 step.

    python benchmarks/step_tax.py [--rounds 30] [--steps 50]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NNDSL_NO_CACHE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nndsl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # the hand-written MLP
from train_sizes import MLP  # the same program as the training-sizes table's MLP row

LENET = """
import lenet
train bench {
  data npz("bench.npz", batch=64, split=1.0)
  model net = LeNet5(classes=10)
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  step net minimize ce with adam(lr=1e-3)
}
"""


def hand_step_fn(tx):
    """The plain step: grad, Adam, donated parameters and moments."""
    def step(s, b):
        p, o = s
        g = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
            suite.hand_mlp(p, {}, b["x"], True)[0], b["y"]).mean())(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o
    return jax.jit(step, donate_argnums=(0,))


def timed(fn, state, steps):
    """(state after, median seconds per step over `steps` calls)."""
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state = fn(state)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    return state, statistics.median(times)


def hlo_counts(compiled) -> tuple[int, int]:
    text = compiled.as_text()
    return len(re.findall(r"= \S+ select\(", text)), len(re.findall(r"= \S+ fusion\(", text))


def mlp_tax(tmp: Path, rounds: int, steps: int) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((512, 784)).astype(np.float32), rng.integers(0, 10, 512).astype(np.int32)
    np.savez(tmp / "bench.npz", x=x, y=y)
    trainer = nndsl.loads(MLP, base=tmp).trainer("bench")
    batch = {"x": jnp.asarray(x[:128]), "y": jnp.asarray(y[:128])}
    key = jax.random.key(1)
    ts = trainer.init(jax.random.key(0))
    params = jax.tree_util.tree_map(jnp.copy, ts["params"]["net"])
    tx = optax.adam(1e-3)
    hand = hand_step_fn(tx)
    nn_step = trainer.donating_step
    selects, fusions = hlo_counts(jax.jit(trainer.step_fn(128)).lower(ts, batch, key).compile())
    print(f"nndsl step HLO: {selects} selects, {fusions} fusions")
    sa, sb = ts, (params, tx.init(params))
    sa, _ = timed(lambda s: nn_step(s, batch, key)[0], sa, 5)  # compile and warm up
    sb, _ = timed(lambda s: hand(s, batch), sb, 5)
    ta, tb = [], []
    for _ in range(rounds):
        sa, a = timed(lambda s: nn_step(s, batch, key)[0], sa, steps)
        sb, b = timed(lambda s: hand(s, batch), sb, steps)
        ta.append(a)
        tb.append(b)
    ratios = sorted(a / b for a, b in zip(ta, tb))
    print(f"MLP 784-256-256-10 batch 128: nndsl {1e3 * statistics.median(ta):.3f} ms, hand JAX (donating) "
          f"{1e3 * statistics.median(tb):.3f} ms, ratio nndsl/hand: median {statistics.median(ratios):.3f} "
          f"(quartiles {ratios[len(ratios) // 4]:.3f}-{ratios[3 * len(ratios) // 4]:.3f}, {rounds} rounds)")


def lenet_compile(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((128, 32, 32, 1)).astype(np.float32), rng.integers(0, 10, 128).astype(np.int32)
    np.savez(tmp / "bench.npz", x=x, y=y)
    trainer = nndsl.loads(LENET, base=tmp).trainer("bench")
    ts = trainer.init(jax.random.key(0))
    batch = {"x": jnp.asarray(x[:64]), "y": jnp.asarray(y[:64])}
    t = time.perf_counter()
    ts, m = trainer.donating_step(ts, batch, jax.random.key(1))
    jax.block_until_ready(m)
    print(f"LeNet-5 batch 64: first call (trace + compile + run, no cache) {time.perf_counter() - t:.2f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=50)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    print(f"device: {jax.devices()[0].platform}")
    lenet_compile(tmp)  # first: a cold process, nothing compiled yet
    mlp_tax(tmp, a.rounds, a.steps)


if __name__ == "__main__":
    main()
