"""`nndsl bench FILE [MODEL|TRAIN]`: where compile time goes, how fast a step runs, and how close
that is to what this machine can do.

Compile time is split into parse, check (imports, elaboration, shape inference), passes, lowering
(tracing to StableHLO) and XLA. Step time is the median of many runs after a warm-up. Achieved
FLOP/s divides XLA's own FLOP count for the compiled step (`cost_analysis()`) by the step time,
and is shown as a fraction of the matmul throughput measured at start-up on the same machine.
"""
from __future__ import annotations

import contextlib
import copy
import statistics
import time
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np


@dataclass
class Report:
    what: str
    level: int
    passes: list
    phases: dict = field(default_factory=dict)  # phase -> seconds
    step: float = 0.0  # median seconds
    flops: float = 0.0  # per step, from XLA
    peak: float = 0.0  # FLOP/s of a large matmul here
    nodes: tuple = (0, 0)  # graph size before and after the passes
    loops: int = 0  # nodes with a body (scan, scan_layers, generate) after the passes
    device: str = ""
    xla_options: dict = field(default_factory=dict)  # the platform's compiler options at this level

    @property
    def achieved(self) -> float:
        return self.flops / self.step if self.step else 0.0

    def text(self) -> str:
        lines = [f"{self.what} on {self.device}, -O{self.level}: {' '.join(self.passes) or 'no passes'}",
                 f"XLA options: {_options_text(self.xla_options)}",
                 f"graph: {self.nodes[0]} nodes as built, {self.nodes[1]} after passes", "compile time:"]
        for k, v in self.phases.items():
            lines.append(f"  {k:<10} {1e3 * v:9.1f} ms")
        lines.append(f"  {'total':<10} {1e3 * sum(self.phases.values()):9.1f} ms")
        lines.append(f"step time (median): {1e3 * self.step:.3f} ms")
        if self.flops:
            lines.append(f"FLOPs per step (XLA): {self.flops:.4g}; achieved {self.achieved / 1e9:.2f} GFLOP/s "
                         f"= {100 * self.achieved / self.peak:.1f}% of matmul peak {self.peak / 1e9:.1f} GFLOP/s")
            if self.loops:
                lines.append(f"  (the graph has {self.loops} loop{'s' if self.loops > 1 else ''}: XLA counts a loop "
                             "body's FLOPs once, not once per iteration, so this is a lower bound)")
        return "\n".join(lines)


def _options_text(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "XLA's defaults"


def peak_matmul_flops(n: int = 1024, reps: int = 10) -> float:
    """FLOP/s of an n x n float32 matmul here: the yardstick for achieved throughput."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    return 2 * n ** 3 / median_time(lambda: f(a), reps)


def median_time(fn, reps: int = 20, warmup: int = 2) -> float:
    for _ in range(warmup):
        jax.block_until_ready(fn())
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def xla_flops(compiled) -> float:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):
        ca = ca[0] if ca else {}
    return float((ca or {}).get("flops", 0.0))


@contextlib.contextmanager
def _timed_parse(acc: list):
    """Adds the time spent in the parser (entry file and imports) to acc[0]."""
    from . import frontend
    orig = frontend.parse

    def parse(*a, **k):
        t = time.perf_counter()
        try:
            return orig(*a, **k)
        finally:
            acc[0] += time.perf_counter() - t
    frontend.parse = parse
    try:
        yield
    finally:
        frontend.parse = orig


def load_timed(path: str, level: int, passes: list | None):
    """The program, and (parse seconds, other loading seconds)."""
    from .api import load
    acc = [0.0]
    t = time.perf_counter()
    with _timed_parse(acc):
        prog = load(path, opt_level=level, passes=passes)
    return prog, acc[0], time.perf_counter() - t - acc[0]


def concrete_inputs(model, batch: int, dims: dict) -> list:
    g = model.graph()
    rng = np.random.default_rng(0)
    xs = []
    for i in g.inputs:
        t = g.node(i).type
        shape = tuple(d if isinstance(d, int) else int(dims.get(d, batch if d == "batch" else 16))
                      for d in t.shape)
        if t.dtype.startswith(("int", "uint")):
            xs.append(jnp.asarray(rng.integers(0, 2, shape), t.dtype))
        else:
            xs.append(jnp.asarray(rng.standard_normal(shape), t.dtype))
    return xs


def bench_model(prog, name: str, args: dict, *, batch: int = 32, dims: dict | None = None,
                grad: bool = False, reps: int = 20) -> Report:
    """Times one model: inference, or (grad=True) the gradient of its summed outputs."""
    from .api import _type_of
    from .passes import pipeline
    r = Report(f"model {name}" + (" (forward + backward)" if grad else " (inference)"), prog.opt_level,
               pipeline(prog.opt_level, prog.passes), xla_options=prog.xla_options)
    t = time.perf_counter()
    model = prog.model(name, **args)
    xs = concrete_inputs(model, batch, dims or {})
    types = tuple(_type_of(x) for x in xs)
    g = model.graph(types)
    r.phases["check"] = time.perf_counter() - t
    t = time.perf_counter()
    opt = model.optimized_graph(types, train=False)
    r.phases["passes"] = time.perf_counter() - t
    r.nodes, r.loops = (len(g), len(opt)), _loops(opt)
    variables = model.init(jax.random.key(0), *xs)

    def forward(v, *xs):
        return model.apply(v, *xs)

    def step(v, *xs):
        return jax.grad(lambda p: sum(jnp.sum(o) for o in jax.tree_util.tree_leaves(
            forward({**v, "params": p}, *xs))))(v["params"])
    _compile_and_time(r, step if grad else forward, (variables, *xs), reps)
    return r


def bench_train(prog, name: str | None, *, batch: int | None = None, reps: int = 20) -> Report:
    """Times one iteration of a train block (every step statement, optimizer updates included)."""
    from .passes import optimize, pipeline
    t = time.perf_counter()
    trainer = prog.trainer(name)
    bs = batch or trainer.batch_size
    spec = trainer.spec_for(bs)
    r = Report(f"train {trainer.name} (batch {bs})", prog.opt_level, pipeline(prog.opt_level, prog.passes),
               xla_options=prog.xla_options)
    r.phases["check"] = time.perf_counter() - t
    t = time.perf_counter()
    opt = optimize(copy.deepcopy(spec.graph), prog.opt_level, prog.passes, True)
    r.phases["passes"] = time.perf_counter() - t
    r.nodes, r.loops = (len(spec.graph), len(opt)), _loops(opt)
    key = jax.random.key(0)
    ts = trainer.init(key)
    src = spec.data
    if src is not None and src.streams:  # files read on demand: one batch, not the dataset
        import numpy as np
        table = src.table()[0]
        arrays = table.take(np.arange(min(bs, len(table))))
    else:
        arrays = src.arrays(trainer.seed)[0] if src is not None else {}
    data = {f: jnp.asarray(a[:bs]) for f, a in arrays.items()}
    fn = trainer.step_fn(bs)
    _compile_and_time(r, lambda ts, b: fn(ts, b, key), (ts, data), reps)
    return r


def _loops(g) -> int:
    from .ops import OPS
    return sum(n.op in OPS and bool(OPS[n.op].body_attrs) for n in g.nodes())


def _compile_and_time(r: Report, fn, args: tuple, reps: int) -> None:
    t = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    r.phases["lowering"] = time.perf_counter() - t
    t = time.perf_counter()
    compiled = lowered.compile(r.xla_options or None)
    r.phases["xla"] = time.perf_counter() - t
    r.flops = xla_flops(compiled)
    r.step = median_time(lambda: compiled(*args), reps)
    r.device = f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind})"


def _last_model(prog) -> str:
    from .errors import NndslError
    defs = prog.defs.definitions
    models = [m for m in prog.models if defs[m].kind == "model"]
    mine = [m for m in models if defs[m].span.source.name == prog.defs.entry]
    if not (mine or models):
        raise NndslError("this file defines no model or train block", code="E215")
    return (mine or models)[-1]


def run(path: str, target: str | None = None, *, level: int = 2, passes: list | None = None,
        args: dict | None = None, batch: int | None = None, dims: dict | None = None, grad: bool = False,
        reps: int = 20) -> Report:
    """`nndsl bench`: `target` names a model or a train block (default: the file's only train
    block, else its last model)."""
    peak = peak_matmul_flops()
    prog, t_parse, t_load = load_timed(path, level, passes)
    trains = prog.trains
    if target in trains or (target is None and len(trains) == 1):
        r = bench_train(prog, target, batch=batch, reps=reps)
    else:
        target = target or _last_model(prog)
        r = bench_model(prog, target, args or {}, batch=batch or 32, dims=dims, grad=grad, reps=reps)
    r.phases = {"parse": t_parse, "check": t_load + r.phases.pop("check"), **r.phases}
    r.peak = peak
    return r
