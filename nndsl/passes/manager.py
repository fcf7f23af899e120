"""The pass manager: named passes, optimization levels, verification and printing between passes.

    -O0   nothing: the graph as built
    -O1   cheap rewrites that never change a value: simplify, fold-constants, cse, dce
    -O2   (the default) -O1 plus the rewrites that measured faster on this platform (O2_EXTRA; on XLA:CPU:
          the gates of a cell fused into one matmul split by [h, x] halves with the kernels
          prepared outside the loop, conv-as-matmul for small convolutions and strided
          transposed ones, scan-layers for long runs of large blocks), then -O1 again

`NNDSL_VERIFY=1` (or `verify=True`) checks the IR after every pass; the tests always do.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable

from ..ir.graph import Graph
from ..ir.printer import print_graph
from . import ops  # noqa: F401  (registers the internal ops passes create)
from .cleanup import CommonSubexpressionElimination, DeadCodeElimination
from .convs import ConvAsMatmul
from .fuse import FoldBatchnorm, FuseParallelDense
from .rewrite import Context, Pass, PassError
from .scan import HoistScanInputs, HoistScanInvariants, SplitConcatMatmul
from .simplify import FoldConstants, Simplify
from .stack import ScanLayers
from .verify import VerifyError, verify

PASSES: dict[str, type[Pass]] = {p.name: p for p in (
    DeadCodeElimination, CommonSubexpressionElimination, FoldConstants, Simplify, FuseParallelDense,
    FoldBatchnorm, HoistScanInvariants, HoistScanInputs, SplitConcatMatmul, ScanLayers, ConvAsMatmul)}

_CLEAN = ["simplify", "fold-constants", "cse", "dce"]
# -O2 adds what measured faster on each platform (benchmarks/RESULTS.md). On XLA:CPU the LSTM
# step ran 1.38x faster with its gates fused, the matmul split by [h, x] halves inside the loop
# and the kernel halves prepared outside it; hoisting the input half out of the loop measured
# slower (0.8x), so hoist-scan-inputs is left out. Folding batchnorm into convolutions measured
# 0.87-0.89x on ResNet-18 inference (the kernels are rescaled on every call, and XLA:CPU already
# fuses batchnorm into one elementwise pass that costs about nothing: the network without any
# batchnorm ran at the same speed), so it is left out too. A platform not measured yet gets the
# rewrites that remove work everywhere.
O2_EXTRA: dict[str, list[str]] = {
    "cpu": ["fuse-parallel-dense", "split-concat-matmul", "hoist-scan-invariants", "conv-as-matmul",
            "scan-layers"],
}
O2_UNMEASURED = ["fold-batchnorm"]
LEVELS: dict[int, list[str]] = {0: [], 1: _CLEAN, 2: _CLEAN + O2_EXTRA["cpu"] + _CLEAN}
# What users get without asking: -O2, the rewrites that measured faster. On the training sizes of
# benchmarks/train_sizes.py (idle 2-core CPU) it ran LeNet-5 1.27x, the gate-equation LSTM 1.06x
# and DCGAN 1.31x as fast as -O1, and the MLP and ResNet-18 at the same speed.
DEFAULT_LEVEL = 2


def level_passes(level: int, platform: str | None = None) -> list[str]:
    """The passes -O`level` runs on `platform` (default: JAX's default backend)."""
    if level not in LEVELS:
        raise PassError(f"no optimization level -O{level}; levels are {', '.join(f'-O{k}' for k in LEVELS)}",
                        code="E902")
    if level < 2:
        return list(LEVELS[level])
    if platform is None:
        import jax
        platform = jax.default_backend()
    return _CLEAN + O2_EXTRA.get(platform, O2_UNMEASURED) + _CLEAN


def _env_verify() -> bool:
    return os.environ.get("NNDSL_VERIFY", "") not in ("", "0")


def pipeline(level: int = DEFAULT_LEVEL, passes: Iterable[str] | None = None) -> list[str]:
    """The pass names `level` (or an explicit list) runs, checked against PASSES."""
    if passes is None:
        return level_passes(level)
    names = [p.strip() for p in passes if p.strip()]
    for name in names:
        if name not in PASSES:
            from ..errors import closest
            guess = closest(name, PASSES)
            raise PassError(f"unknown pass `{name}`", code="E902",
                            help=f"did you mean `{guess}`?" if guess else f"passes: {', '.join(PASSES)}")
    return names


class PassManager:
    """Runs passes in order. With `verify`, checks the IR after each one and raises PassError
    naming the pass that broke it and the passes before it (torch.fx's wording). `print_after`
    names passes (or "all") whose result goes to `out` as text."""

    def __init__(self, passes: list[str], *, verify: bool = False, print_after: Iterable[str] = (),
                 out: Callable[[str], None] | None = None, options: dict | None = None):
        self.passes = pipeline(passes=passes)
        self.options = dict(options or {})
        self.verify = verify
        self.print_after = set(print_after)
        missing = self.print_after - set(self.passes) - {"all"}
        if missing:
            name = sorted(missing)[0]
            why = "it does not run here" if name in PASSES else "no such pass"
            raise PassError(f"cannot print after `{name}`: {why}", code="E902",
                            help=f"this pipeline runs: {', '.join(self.passes) or 'nothing'}")
        self.out = out or (lambda text: print(text, file=sys.stderr))
        self.counts: list[tuple[str, int]] = []

    def run(self, g: Graph, train: bool = False) -> Graph:
        ctx = Context(train=train, options=self.options)
        if self.verify:
            self._check(g, "the graph as built", [])
        done: list[str] = []
        for name in self.passes:
            try:
                changed = PASSES[name]().run(g, ctx)
            except PassError:
                raise
            except Exception as e:  # a pass crashing is a bug in nndsl: say which pass
                raise PassError(f"pass `{name}` failed{_after(done)}: {type(e).__name__}: {e}") from e
            done.append(name)
            self.counts.append((name, changed))
            if self.verify:
                self._check(g, f"pass `{name}`", done[:-1])
            if name in self.print_after or "all" in self.print_after:
                self.out(f"// after {name} ({changed} rewrites)\n{print_graph(g)}")
        return g

    def _check(self, g: Graph, what: str, before: list[str]) -> None:
        try:
            verify(g)
        except VerifyError as e:
            raise PassError(f"{what} left an invalid graph{_after(before)}: {e}") from None


def _after(done: list[str]) -> str:
    return f" (after {', '.join(done)})" if done else ""


def optimize(g: Graph, level: int = DEFAULT_LEVEL, passes: list[str] | None = None, train: bool = False, *,
             verify: bool | None = None, print_after: Iterable[str] = (),
             out: Callable[[str], None] | None = None, options: dict | None = None) -> Graph:
    """Runs the passes of `level` (or exactly `passes`) on `g` in place and returns it; `train`
    says whether the graph will run in training mode (inference-only rewrites such as batchnorm
    folding are skipped then). `options` override passes' platform defaults (`max_patch`)."""
    names = pipeline(level, passes)
    if not names and not print_after:
        return g
    pm = PassManager(names, verify=_env_verify() if verify is None else verify, print_after=print_after, out=out,
                     options=options)
    return pm.run(g, train)
