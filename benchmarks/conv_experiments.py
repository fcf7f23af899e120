"""3x3 stride-1 convolutions, forward + backward (input and kernel gradients), at the sizes of
LeNet-5 (28x28, batch 128) and ResNet-18 (32x32, batch 32) on this CPU: which way of computing
them is fastest (issue 20, item 4).

Variants, timed interleaved in one process, each checked against the first within tolerance:
- XLA's convolution in NHWC/HWIO (what nndsl emits) and in NCHW/OIHW, with nndsl's XLA options
  (YNNPACK for dots only, XLA's own convolutions);
- Winograd F(2x2, 3x3) written in jnp: the input and output transforms are adds of strided
  slices, the products one batched matmul of 16 [N*H*W/4, C] x [C, K];
- XLA's convolution under other XLA:CPU options (YNNPACK, XNNPACK or oneDNN for convolutions, no
  Eigen threading, the concurrency-optimized scheduler). Options this jaxlib rejects are listed.

    python benchmarks/conv_experiments.py [--rounds 5 --steps 5] [--only resnet]

Prints a Markdown table: ms per forward + backward, and each variant's speed against XLA NHWC
(above 1: faster than what nndsl does now).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from nndsl.lower.backend import OPTIONS, accepted

NNDSL = OPTIONS.get("cpu", {})
YNN = "xla_cpu_experimental_ynn_fusion_type"
# label -> compiler options for the XLA convolution (nndsl's are the baseline)
FLAG_VARIANTS = {
    "XLA defaults (YNNPACK convolutions)": {},
    "oneDNN convolutions": {**NNDSL, "xla_cpu_experimental_onednn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
    "XNNPACK convolutions": {**NNDSL, "xla_cpu_experimental_xnn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"},
    "no Eigen threading": {**NNDSL, "xla_cpu_multi_thread_eigen": False},
    "concurrency-optimized scheduler": {**NNDSL, "xla_cpu_enable_concurrency_optimized_scheduler": True},
}

# (name, batch, side, channels in, channels out)
SIZES = [
    ("LeNet-5 conv 1 (3x3 in place of 5x5)", 128, 28, 1, 6),
    ("LeNet-5 conv 2 (3x3 in place of 5x5)", 128, 14, 6, 16),
    ("ResNet-18 stage 1", 32, 32, 64, 64),
    ("ResNet-18 stage 2", 32, 16, 128, 128),
    ("ResNet-18 stage 3", 32, 8, 256, 256),
    ("ResNet-18 stage 4", 32, 4, 512, 512),
]


def conv_nhwc(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv_nchw(x, k):
    """x: NCHW, k: OIHW."""
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _bt(d):
    """Winograd F(2, 3)'s input transform B^T d along a list of four arrays."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _g(g):
    """The kernel transform G g along a list of three arrays."""
    return [g[0], 0.5 * (g[0] + g[1] + g[2]), 0.5 * (g[0] - g[1] + g[2]), g[2]]


def _at(m):
    """The output transform A^T m along a list of four arrays."""
    return [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]


def winograd(x, k):
    """A "same" 3x3 stride-1 convolution, NHWC/HWIO, H and W even: Winograd F(2x2, 3x3). Every
    2x2 output tile reads a 4x4 input tile; both transforms are linear, so autodiff's backward
    pass is the transposed transforms around the same batched matmul."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    d = [[xp[:, a:a + h:2, b:b + w:2, :] for b in range(4)] for a in range(4)]  # [N, h/2, w/2, C] each
    rows = [_bt([d[a][b] for a in range(4)]) for b in range(4)]                  # rows[b][i]
    v = [_bt([rows[b][i] for b in range(4)]) for i in range(4)]                  # v[i][j]
    krows = [_g([k[a, b] for a in range(3)]) for b in range(3)]                  # [C, K] each
    u = [_g([krows[b][i] for b in range(3)]) for i in range(4)]
    tiles = n * (h // 2) * (w // 2)
    vm = jnp.stack([v[i][j].reshape(tiles, c) for i in range(4) for j in range(4)])
    um = jnp.stack([u[i][j] for i in range(4) for j in range(4)])
    m = jnp.matmul(vm, um).reshape(4, 4, n, h // 2, w // 2, -1)
    cols = [_at([m[i, j] for i in range(4)]) for j in range(4)]                  # cols[j][p]
    y = [[_at([cols[j][p] for j in range(4)])[q] for q in range(2)] for p in range(2)]
    y = jnp.stack([jnp.stack(y[p], axis=3) for p in range(2)], axis=2)            # [N, h/2, 2, w/2, 2, K]
    return y.reshape(n, h, w, -1)


def fwd_bwd(conv):
    """value and both gradients of sum(conv(x, k) * r): one training step's work for this layer."""
    return jax.jit(jax.value_and_grad(lambda x, k, r: jnp.sum(conv(x, k) * r), argnums=(0, 1)))


def variants(n, side, cin, cout):
    """label -> (a compiled forward + backward, its arguments, a function mapping its result to NHWC)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, side, side, cin)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin), jnp.float32)
    r = jnp.asarray(rng.standard_normal((n, side, side, cout)), jnp.float32)
    nchw = (x.transpose(0, 3, 1, 2), k.transpose(3, 2, 0, 1), r.transpose(0, 3, 1, 2))
    same = lambda out: out
    back = lambda out: (out[0], (out[1][0].transpose(0, 2, 3, 1), out[1][1].transpose(2, 3, 1, 0)))
    compile_ = lambda f, args, opts: f.lower(*args).compile(opts or None)
    out = {"XLA NHWC (nndsl now)": (compile_(fwd_bwd(conv_nhwc), (x, k, r), NNDSL), (x, k, r), same),
           "XLA NCHW": (compile_(fwd_bwd(conv_nchw), nchw, NNDSL), nchw, back),
           "Winograd F(2x2,3x3) in jnp": (compile_(fwd_bwd(winograd), (x, k, r), NNDSL), (x, k, r), same)}
    for label, opts in FLAG_VARIANTS.items():
        if all(accepted("cpu", key, v) for key, v in opts.items()):
            out[f"XLA NHWC, {label}"] = (compile_(fwd_bwd(conv_nhwc), (x, k, r), opts), (x, k, r), same)
    return out


def check(results: dict) -> dict:
    """label -> the largest difference from the first variant, relative to its largest value."""
    ref = jax.tree_util.tree_leaves(next(iter(results.values())))
    errs = {}
    for label, res in results.items():
        leaves = jax.tree_util.tree_leaves(res)
        errs[label] = max(float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12)) for a, b in zip(leaves, ref))
    return errs


def timed(fns: dict, rounds: int, steps: int) -> dict:
    """label -> the best round's median (rounds interleave the variants)."""
    per = {k: [] for k in fns}
    for _ in range(rounds):
        for label, (c, args, _) in fns.items():
            ts = []
            for _ in range(steps):
                t = time.perf_counter()
                jax.block_until_ready(c(*args))
                ts.append(time.perf_counter() - t)
            per[label].append(statistics.median(ts))
    return {k: min(v) for k, v in per.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", help="sizes whose name contains this (e.g. ResNet)")
    a = ap.parse_args(argv)
    rejected = [f"{k}={v}" for opts in FLAG_VARIANTS.values() for k, v in opts.items() if not accepted("cpu", k, v)]
    print(f"jax {jax.__version__}; load average {os.getloadavg()[0]:.1f}; options rejected: {rejected or 'none'}\n")
    print("| size (N, H=W, C -> K) | variant | ms | speed vs XLA NHWC | max rel. error |")
    print("|---|---|---|---|---|")
    for name, n, side, cin, cout in SIZES:
        if a.only and a.only.lower() not in name.lower():
            continue
        fns = variants(n, side, cin, cout)
        errs = check({k: to_nhwc(c(*args)) for k, (c, args, to_nhwc) in fns.items()})
        t = timed(fns, a.rounds, a.steps)
        base = t["XLA NHWC (nndsl now)"]
        for label in fns:
            print(f"| {name} ({n}, {side}, {cin} -> {cout}) | {label} | {1e3 * t[label]:.2f} | "
                  f"{base / t[label]:.2f} | {errs[label]:.1e} |", flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
