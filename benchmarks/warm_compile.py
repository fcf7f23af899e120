"""First-iteration time of `nndsl train`'s step, cold (empty compilation cache) and warm (the
cache a previous run left), for the examples: what a user waits for before the first batch.

    python benchmarks/warm_compile.py [examples/*.nn] [--processes 3]

Each figure is the median over fresh processes with different PYTHONHASHSEEDs. The time covers
building the train step (parse, check, passes, tracing) and compiling it, then one call on a
real batch, which is what the cache can save: XLA's compile.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import jax, numpy as np
import nndsl
from nndsl.lower import cache
if sys.argv[2] != "off":
    cache.enable(sys.argv[2])
prog = nndsl.load(sys.argv[1])
if not prog.trains:
    print(json.dumps({"first_step_s": None}))  # a program with models only: nothing to train
    sys.exit(0)
from nndsl.train.trainer import _DataLoop
trainer = prog.trainer(prog.trains[0])
ts = trainer.init(jax.random.key(0))
batch = _DataLoop(trainer, 0).next()
t1 = time.perf_counter()
ts, m = trainer.donating_step(ts, batch, jax.random.key(1))
jax.block_until_ready(m)
t2 = time.perf_counter()
print(json.dumps({"first_step_s": t2 - t1}))
"""


def once(example: str, folder: str, seed: int) -> float | None:
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", CHILD, example, folder], env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["first_step_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("examples", nargs="*", default=["examples/lenet5.nn", "examples/dcgan_digits.nn",
                                                     "examples/mlp_digits.nn"])
    ap.add_argument("--processes", type=int, default=3)
    a = ap.parse_args()
    print(f"{'example':28} {'no cache s':>10} {'cold s':>8} {'warm s':>8}")
    for ex in a.examples:
        off, cold, warm = [], [], []
        for seed in range(a.processes):
            off.append(once(ex, "off", seed))
            if off[-1] is None:
                break
            with tempfile.TemporaryDirectory() as d:
                cold.append(once(ex, d, seed))
                warm.append(once(ex, d, seed + 100))
        if off[-1] is None:
            print(f"{Path(ex).name:28} {'(no train block)':>28}")
            continue
        print(f"{Path(ex).name:28} {statistics.median(off):10.2f} {statistics.median(cold):8.2f} "
              f"{statistics.median(warm):8.2f}")


if __name__ == "__main__":
    main()
