"""Compile-time breakdown for a deep MLP: parse, check (elaborate + shapes), lower (trace), XLA.

    python benchmarks/compile_time.py [--layers 100]
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import nndsl
from nndsl.syntax.parser import parse


def program(layers: int) -> str:
    body = "\n".join("    -> dense(64) -> relu" for _ in range(layers))
    return f"model Deep {{\n  input x: [batch, 32]\n  output y = x\n{body}\n    -> dense(10)\n}}\n"


def resnet152():
    t0 = time.perf_counter()
    prog = nndsl.loads("import resnet")
    model = prog.model("ResNet152")
    t1 = time.perf_counter()
    g = model.graph()
    print(f"ResNet-152: build and check the graph {1e3 * (t1 - t0):.0f} ms "
          f"({len(g)} nodes, {model.param_count():,} parameters, no weights allocated)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=100)
    a = ap.parse_args()
    resnet152()
    src = program(a.layers)
    x = jnp.ones((8, 32))
    t0 = time.perf_counter()
    parse(src)
    t1 = time.perf_counter()
    prog = nndsl.loads(src)
    model = prog.model("Deep")  # elaborates and shape-checks (symbolic batch)
    t2 = time.perf_counter()
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    lowered = jax.jit(model.apply).lower(variables, x)  # concrete elaboration + tracing to StableHLO
    t3 = time.perf_counter()
    lowered.compile()
    t4 = time.perf_counter()
    print(f"{a.layers}-layer MLP ({2 * a.layers + 1} layers with activations)")
    print(f"  parse        {1e3 * (t1 - t0):8.1f} ms")
    print(f"  check        {1e3 * (t2 - t1):8.1f} ms   (load + elaborate + infer shapes)")
    print(f"  lower        {1e3 * (t3 - t2):8.1f} ms   (concrete elaboration + trace to StableHLO)")
    print(f"  parse+check+lower {1e3 * (t3 - t0):8.1f} ms")
    print(f"  XLA compile  {1e3 * (t4 - t3):8.1f} ms")


if __name__ == "__main__":
    main()
