"""Recurrent training step with and without the recurrent-kernel gradient of `ops/scan_vjp.py`.

One process, interleaved rounds, medians: the trainer's step (forward, backward, Adam) of an LSTM
and a GRU written from their gate equations (stdlib cells, `-> last -> dense(10)`, T=50,
hidden 128, 32 features) at -O1 and -O2, each with `NNDSL_SCAN_VJP=1` (the custom VJP, the default) and `=0`
(plain `lax.scan`), against a hand-written JAX cell (fused gate matmul, `lax.scan`, optax Adam).
PyTorch eager runs in other processes: benchmarks/torch_rnn.py.

    python benchmarks/rnn_vjp.py [--batch 32 64 --rounds 7 --steps 10 --only LSTM --ablate]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["NNDSL_NO_CACHE"] = "1"  # the variants differ in lowering only: never share a compiled step

from suite import TRAIN, compiled, dense, hand_classifier_step, hand_lstm, nndsl_step

from nndsl.passes import level_passes

MODELS = {
    "LSTM": "seq -> LSTM(128) -> last -> dense(10)",
    "GRU": "seq -> GRU(128) -> last -> dense(10)",
}


VARIANTS = [("custom VJP", "1"), ("lax.scan", "0")]


def source(cell: str, batch: int) -> str:
    return ("import cells\nmodel Tagger {\n  input seq: [batch, time, 32]\n"
            f"  output logits = {MODELS[cell]}\n}}\n" + TRAIN.format(batch=batch, model="Tagger()"))


def _gru(p, seq):
    """The stdlib GRU (reset before the candidate's matmul), z and r fused into one matmul."""
    hidden = p["dense_0"]["kernel"].shape[1]
    w = jnp.concatenate([p["dense_0"]["kernel"], p["dense_1"]["kernel"]], 1)
    b = jnp.concatenate([p["dense_0"]["bias"], p["dense_1"]["bias"]])

    def step(h, x):
        z, r = jnp.split(jax.nn.sigmoid(jnp.concatenate([h, x], -1) @ w + b), 2, -1)
        n = jnp.tanh(dense(p["dense_2"], jnp.concatenate([r * h, x], -1)))
        return (1 - z) * n + z * h, None
    h, _ = jax.lax.scan(step, jnp.zeros((seq.shape[0], hidden)), jnp.swapaxes(seq, 0, 1))
    return h


def hand_gru(p, s, x, train):
    return dense(p["dense_0"], _gru(p["GRU_0"], x)), s


RECURRENT = ("fuse-parallel-dense", "split-concat-matmul", "hoist-scan-invariants")


def pipelines(ablate: bool) -> dict:
    """label -> (level, explicit pass list or None). With `ablate`, also -O1 plus each of the
    passes -O2 adds on this platform that rewrite a recurrent cell, and -O2 without each: which
    one makes a step slower."""
    out = {"-O1": (1, None), "-O2": (2, None)}
    if ablate:
        clean, extra = level_passes(1), [p for p in level_passes(2) if p not in level_passes(1)]
        for p in [p for p in extra if p in RECURRENT]:
            out[f"-O1 + {p}"] = (1, clean + [p] + clean)
            out[f"-O2 - {p}"] = (1, clean + [q for q in extra if q != p] + clean)
    return out


def variants(cell: str, batch: int, tmp: Path, ablate: bool) -> dict:
    """label -> a function running one training step; all compiled before any is timed."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch * 2, 50, 32)).astype(np.float32), rng.integers(0, 10, batch * 2)
    np.savez(tmp / "bench.npz", x=x, y=y)
    data = {"x": jnp.asarray(x[:batch]), "y": jnp.asarray(y[:batch])}
    fns, ts = {}, None
    for name, (level, passes) in pipelines(ablate).items():
        for label, vjp in VARIANTS:
            os.environ["NNDSL_SCAN_VJP"] = vjp  # read while the step is traced
            fns[f"{name} {label}"], _, _, ts = nndsl_step(source(cell, batch), level, tmp, data, passes)
    os.environ.pop("NNDSL_SCAN_VJP")
    step, tx = hand_classifier_step(hand_lstm(True) if cell == "LSTM" else hand_gru)
    hs = (ts["params"]["net"], ts["state"].get("net", {}), tx.init(ts["params"]["net"]))
    c = compiled(step, hs, data)[0]
    fns["hand JAX (fused gates)"] = lambda: c(hs, data)
    return fns


def interleaved(fns: dict, rounds: int, steps: int) -> dict:
    """label -> (wall, CPU) seconds per step: per round the median step, then the median round
    (rounds interleave the labels). On a loaded machine the wall time swings with what else
    runs; the process's CPU time (all its threads) swings far less, so ratios use both."""
    per: dict = {k: ([], []) for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            wall, cpu = [], []
            for _ in range(steps):
                t, c = time.perf_counter(), time.process_time()
                jax.block_until_ready(f())
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            per[k][0].append(statistics.median(wall))
            per[k][1].append(statistics.median(cpu))
    return {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in per.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--only", nargs="+", default=list(MODELS))
    ap.add_argument("--ablate", action="store_true", help="also -O1 + each -O2 pass, -O2 - each")
    a = ap.parse_args()
    print(f"device: {jax.devices()[0].platform}; load average {os.getloadavg()[0]:.1f}; T=50, hidden 128, "
          f"32 features; training step (forward, backward, Adam); median of {a.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp:
        for cell in a.only:
            for batch in a.batch:
                times = interleaved(variants(cell, batch, Path(tmp), a.ablate), a.rounds, a.steps)
                hand, base = times["hand JAX (fused gates)"], times["-O1 lax.scan"]
                print(f"\n{cell}, batch {batch} (wall; CPU time)\n"
                      "| variant | ms | speed vs hand JAX | speed vs -O1 lax.scan |\n|---|---|---|---|")
                for k, (wall, cpu) in times.items():
                    print(f"| {k} | {1e3 * wall:.2f}; {1e3 * cpu:.2f} | {hand[0] / wall:.2f}; {hand[1] / cpu:.2f} "
                          f"| {base[0] / wall:.2f}; {base[1] / cpu:.2f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
