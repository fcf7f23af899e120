"""Cold compile: the first call of a training step in a fresh process, nndsl against hand-written JAX.

What a user waits for before the first batch when nothing is cached: for nndsl, parsing, checking,
`init` (drawing the initial values, one compiled function), the level's passes, tracing and XLA's
compile of `nndsl train`'s step (donated state), then one call; for hand-written JAX
(benchmarks/train_sizes.py's LeNet-5 and DCGAN at 28x28), tracing and compiling its jitted step,
then one call, on initial values numpy draws beforehand in the shapes nndsl's `init` gives.
Nothing is compiled before either clock starts: an earlier version made the hand-written side's
values with nndsl's own -O0 `init` and step, which warmed XLA and JAX's tracing caches (optax's
update, the same shapes) for that side alone. So two ratios: "step" leaves nndsl's `init` out
(the same work on both sides), "all" counts it. Each figure is the median over
fresh processes with PYTHONHASHSEED 1, 2, ...; both sides run with the compilation cache off.

    python benchmarks/cold_compile.py [--processes 3] [--levels 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = {"LeNet-5 28x28 (128)": 1, "DCGAN D+G iteration 28x28 (64)": 3}  # index into train_sizes.MODELS

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import jax, jax.numpy as jnp, numpy as np
import nndsl
import train_sizes as T
index, which = int(sys.argv[2]), sys.argv[3]
name, src, _, _, _, hands, _ = T.MODELS[index]
tmp, batch = T.bench_data(index)
jax.block_until_ready(jnp.ones(1) + 1)  # the backend is up before the clock starts
if which == "hand":
    # initial values in the shapes nndsl's `init` gives, drawn by numpy: nothing is compiled or
    # traced before the clock starts, so the hand-written side starts as cold as nndsl's
    shapes = jax.eval_shape(nndsl.loads(src, base=tmp).trainer("bench").init, jax.random.key(0))
    rng = np.random.default_rng(0)
    made = jax.tree_util.tree_map(lambda s: rng.uniform(-0.1, 0.1, s.shape).astype(s.dtype), shapes)
    params, state = made["params"], made["state"]
    t = time.perf_counter()
    step = T.hand_loop(name, next(iter(hands.values())), params, state, batch)
    jax.block_until_ready(step())
    print(json.dumps([time.perf_counter() - t, 0.0]))
else:
    t = time.perf_counter()
    trainer = nndsl.loads(src, base=tmp, opt_level=int(which)).trainer("bench")
    t_init = time.perf_counter()
    ts = trainer.init(jax.random.key(0))
    jax.block_until_ready(ts)
    t_init = time.perf_counter() - t_init
    step = T.looping(trainer.donating_step, ts, batch, jax.random.key(1), take=lambda out: out[0])
    jax.block_until_ready(step())
    print(json.dumps([time.perf_counter() - t, t_init]))
"""


def once(index: int, which: str, seed: int) -> tuple[float, float]:
    """(seconds to the first step's result, of which `init`) in a fresh process."""
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "NNDSL_NO_CACHE": "1"}
    r = subprocess.run([sys.executable, "-c", CHILD, str(HERE), str(index), which], env=env,
                       capture_output=True, text=True, timeout=600, check=True)
    total, init = json.loads(r.stdout.strip().splitlines()[-1])
    return total, init


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    print("| model (batch) | hand JAX step s | " + " | ".join(
        f"nndsl -O{lv} s (of it `init`) | step vs hand | all vs hand" for lv in a.levels) + " |")
    print("|---|---|" + "---|---|---|" * len(a.levels))
    for name, index in MODELS.items():
        seeds = range(1, a.processes + 1)
        hand = statistics.median(once(index, "hand", s)[0] for s in seeds)
        cells = []
        for lv in a.levels:
            runs = [once(index, str(lv), s) for s in seeds]
            t, init = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            cells.append(f"{t:.2f} ({init:.2f}) | {(t - init) / hand:.2f}x | {t / hand:.2f}x")
        print(f"| {name} | {hand:.2f} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
