"""Decoding inside the language against the same loop written by hand.

Greedy decoding of a batch of 64 for 50 steps with an LSTM decoder (hidden 256, vocabulary
1,000), written in nndsl as `go -> unroll(dec, steps=50, emit=proj -> argmax, feed=emb)`, against
one hand-written `lax.scan` in JAX with the same weights (checked to give the same tokens); and
beam search with k=4 against k=1, per kept hypothesis. One process, both jitted, timed in
interleaved rounds (so a load change on the machine hits both alike), medians reported.

    python benchmarks/decode.py [--batch 64 --steps 50 --hidden 256 --vocab 1000 --rounds 30]
"""
from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import nndsl

SRC = """
import cells
model Decoder(vocab: int, hidden: int, steps: int, k: int) {
  input go: i32[batch]
  emb = embed(vocab, 128)
  dec = LSTM(hidden)
  proj = dense(vocab)
  output greedy = go -> unroll(dec, steps=steps, emit=proj -> argmax, feed=emb)
  output beam = go -> unroll(dec, steps=steps, emit=proj, feed=emb, beam=k)
}
"""


def hand_greedy(P, go, steps):
    """The loop as one would write it in JAX: embed, the LSTM's four gates, project, argmax."""
    d, E, W = P["dec"], P["emb"]["embedding"], P["proj"]
    hidden = d["dense_0"]["kernel"].shape[1]
    h = jnp.zeros((go.shape[0], hidden))

    def step(carry, _):
        tok, h, c = carry
        hx = jnp.concatenate([h, E[tok]], -1)
        f = jax.nn.sigmoid(hx @ d["dense_0"]["kernel"] + d["dense_0"]["bias"])
        i = jax.nn.sigmoid(hx @ d["dense_1"]["kernel"] + d["dense_1"]["bias"])
        g = jnp.tanh(hx @ d["dense_2"]["kernel"] + d["dense_2"]["bias"])
        o = jax.nn.sigmoid(hx @ d["dense_3"]["kernel"] + d["dense_3"]["bias"])
        c = f * c + i * g
        h = o * jnp.tanh(c)
        tok = jnp.argmax(h @ W["kernel"] + W["bias"], -1).astype(jnp.int32)
        return (tok, h, c), tok

    _, toks = jax.lax.scan(step, (go, h, h), None, length=steps)
    return toks.T


def hand_greedy_fused(P, go, steps):
    """The same loop with the four gate matmuls as one [h, x] @ [W_f W_i W_g W_o] (a stronger
    baseline: what a careful hand-written LSTM does)."""
    d, E, W = P["dec"], P["emb"]["embedding"], P["proj"]
    hidden = d["dense_0"]["kernel"].shape[1]
    K = jnp.concatenate([d[f"dense_{i}"]["kernel"] for i in range(4)], 1)
    B = jnp.concatenate([d[f"dense_{i}"]["bias"] for i in range(4)])
    h = jnp.zeros((go.shape[0], hidden))

    def step(carry, _):
        tok, h, c = carry
        z = jnp.concatenate([h, E[tok]], -1) @ K + B
        f, i, g, o = jnp.split(z, 4, -1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        tok = jnp.argmax(h @ W["kernel"] + W["bias"], -1).astype(jnp.int32)
        return (tok, h, c), tok

    _, toks = jax.lax.scan(step, (go, h, h), None, length=steps)
    return toks.T


def interleaved(fns: dict, rounds: int) -> dict:
    for f in fns.values():
        jax.block_until_ready(f())
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            jax.block_until_ready(f())
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--beam", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args(argv)
    prog = nndsl.loads(SRC)
    args = {"vocab": a.vocab, "hidden": a.hidden, "steps": a.steps}
    go = jnp.zeros((a.batch,), jnp.int32)
    greedy = prog.model("Decoder.greedy", k=1, **args)
    v = greedy.init(jax.random.key(0), go)
    beam1 = prog.model("Decoder.beam", k=1, **args)
    beamk = prog.model("Decoder.beam", k=a.beam, **args)
    fns = {
        "nndsl greedy": jax.jit(lambda: greedy.apply(v, go)),
        "hand lax.scan": jax.jit(lambda: hand_greedy(v["params"], go, a.steps)),
        "hand fused": jax.jit(lambda: hand_greedy_fused(v["params"], go, a.steps)),
        "beam k=1": jax.jit(lambda: beam1.apply(v, go)),
        f"beam k={a.beam}": jax.jit(lambda: beamk.apply(v, go)),
    }
    same = np.array_equal(fns["nndsl greedy"](), fns["hand lax.scan"]()) and \
        np.array_equal(fns["nndsl greedy"](), fns["hand fused"]())
    t = interleaved(fns, a.rounds)
    import os
    load = f"; load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"device: {jax.devices()[0].device_kind}{load}; batch {a.batch}, {a.steps} steps, hidden {a.hidden}, "
          f"vocab {a.vocab}; medians of {a.rounds} interleaved rounds")
    for k, s in t.items():
        print(f"  {k:14s} {s * 1e3:8.2f} ms")
    print(f"greedy nndsl / hand-written: {t['nndsl greedy'] / t['hand lax.scan']:.2f}x (four matmuls), "
          f"{t['nndsl greedy'] / t['hand fused']:.2f}x (one fused matmul); same tokens: {same}")
    per = t[f"beam k={a.beam}"] / a.beam
    print(f"beam k={a.beam}: {t[f'beam k={a.beam}'] / t['beam k=1']:.2f}x of k=1 in all, "
          f"{per / t['beam k=1']:.2f}x of k=1 per kept hypothesis")


if __name__ == "__main__":
    main()
