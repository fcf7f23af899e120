"""Backend choices per platform: XLA compiler options that measured faster than XLA's defaults.

The graph passes choose how a network is written; these choose how XLA compiles it. They are
per-executable options (`jax.jit(..., compiler_options=...)`), so they never leak into the user's
own jitted code, and they travel with exported artifacts (nndsl/export.py records them).

What is here was measured with benchmarks/suite.py (figures in benchmarks/RESULTS.md):

- cpu: XLA:CPU hands convolutions and dots to YNNPACK by default. Its convolutions measured
  slower than XLA's own (Eigen) convolutions on every convolutional model of the suite: without
  them the LeNet-5 training step ran 1.2x faster, ResNet-18 1.2-1.3x (inference 1.4x), a 3x3x64
  convolution's gradient 1.9x; DCGAN and the dense-only models were unchanged. So -O1 and above
  keep YNNPACK for dots only.

-O0 uses XLA's defaults, so that -O0 against -O2 measures everything nndsl chooses.
"""
from __future__ import annotations

import functools

import jax

YNN_FUSIONS = "xla_cpu_experimental_ynn_fusion_type"
OPTIONS: dict[str, dict[str, object]] = {
    "cpu": {YNN_FUSIONS: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},
}


# Initialization runs once per run, so its compile is all a user waits for. On XLA:CPU, LLVM at
# -O1 and XLA's older loop emitters compiled every initializer set measured 2.3-3.5x faster than
# XLA's defaults, and the values were bit for bit the same: `Trainer.init` of benchmarks/
# train_sizes.py's models, cold, MLP 1.14 -> 0.38 s, LeNet-5 1.73 -> 0.52 s, the LSTM 0.94 ->
# 0.48 s, DCGAN 2.10 -> 0.60 s, ResNet-18 4.62 -> 1.92 s. LLVM at -O0 changes the last bit of
# some draws, so -O1 is as low as it goes; tests/lower/test_init_values.py holds the equality.
INIT_OPTIONS: dict[str, dict[str, object]] = {
    "cpu": {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False},
}


def allowed_in_artifact(platform: str, key: str, value) -> bool:
    """Whether an exported artifact may carry this option: only what this table sets. Options go
    to the compiler unchecked by anything else, and some write files (`xla_dump_to`) or, on GPU,
    substitute code, so an artifact is not trusted to choose its own."""
    table = OPTIONS.get(platform, {}) if isinstance(platform, str) else {}
    return isinstance(key, str) and key in table and type(value) is type(table[key]) and value == table[key]


def xla_options(opt_level: int, platform: str | None = None) -> dict[str, object]:
    """The compiler options -O`opt_level` uses on `platform` (default: JAX's default backend),
    without those this jaxlib does not know (an older or newer XLA renames its flags)."""
    if opt_level < 1:
        return {}
    platform = platform or jax.default_backend()
    return supported(OPTIONS.get(platform, {}), platform)


def init_options(platform: str | None = None) -> dict[str, object]:
    """The compiler options for drawing initial values on `platform` (INIT_OPTIONS)."""
    platform = platform or jax.default_backend()
    return supported(INIT_OPTIONS.get(platform, {}), platform)


def supported(options: dict, platform: str) -> dict:
    """`options` without those this jaxlib does not know (for another platform: all of them).
    One probe for the whole set, one per option only when the set is refused: each probe is a
    compile (~20 ms), paid before the first batch."""
    if not options or accepted_all(platform, tuple(options.items())):
        return dict(options)
    return {k: v for k, v in options.items() if accepted(platform, k, v)}


def accepted(platform: str, key: str, value) -> bool:
    """Whether this XLA takes the option."""
    return accepted_all(platform, ((key, value),))


@functools.cache
def accepted_all(platform: str, items: tuple) -> bool:
    """Whether this XLA takes every (option, value) of `items`: compiles a one-op function with
    them, once per process and set."""
    if platform != jax.default_backend():
        return True  # recorded for another platform; checked where it is used
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(items)).lower(1.0).compile()
        return True
    except Exception:  # noqa: BLE001 - an unknown option or value: XLA's defaults are still correct
        return False


def jit(fn, opt_level: int, **kwargs):
    """jax.jit with the platform's options for `opt_level`."""
    return jit_with(fn, xla_options(opt_level), **kwargs)


def jit_with(fn, options: dict, **kwargs):
    """jax.jit with compiler `options`. JAX takes them only on a top-level jit, and nndsl's jitted
    functions (`trainer.step`, a loaded export) are public, made to be called inside the user's
    own jit, grad or vmap too: there the plain jit runs, and the outer computation is compiled
    with whatever options its owner chose."""
    top = jax.jit(fn, compiler_options=options or None, **kwargs)
    if not options:
        return top
    nested = jax.jit(fn, **kwargs)

    def call(*args, **kw):
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree_util.tree_leaves((args, kw)))
        return (nested if traced else top)(*args, **kw)
    call.lower = top.lower
    return call
