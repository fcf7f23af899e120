"""Step times of one training-sizes model (benchmarks/train_sizes.py) in processes that differ
only in PYTHONHASHSEED, and in processes with the same seed: whether the seed moves the time, or
the time moves anyway (RESULTS.md, "Variance").

    python benchmarks/hash_seed.py [--model LSTM] [--seeds 0,1,2,3,4,5] [--repeat 0,0,0]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_sizes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="LSTM", help="the start of a training-sizes model's name")
    ap.add_argument("--seeds", default="0,1,2,3,4,5", help="one process per seed")
    ap.add_argument("--repeat", default="0,0,0", help="then these seeds (the same one again: run-to-run spread)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args(argv)
    index = next(i for i, m in enumerate(train_sizes.MODELS) if m[0].startswith(a.model))
    print("| PYTHONHASHSEED | load | nndsl -O1 ms | nndsl -O2 ms | hand JAX ms | hand / -O2 |")
    print("|---|---|---|---|---|---|")
    for seed in [int(s) for s in (a.seeds + "," + a.repeat).split(",") if s]:
        t = train_sizes.isolated(index, seed, a.rounds, a.steps)
        hand = min(v for k, v in t.items() if not k.startswith("nndsl"))
        print(f"| {seed} | {os.getloadavg()[0]:.1f} | {1e3 * t['nndsl -O1']:.2f} | {1e3 * t['nndsl -O2']:.2f} | "
              f"{1e3 * hand:.2f} | {hand / t['nndsl -O2']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
