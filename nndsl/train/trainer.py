"""Runs a train block: one jitted function per iteration, seeded data order, held-out evaluation.

`Trainer.step` is public and pure: `step(train_state, batch, key) -> (train_state, metrics)`, for
users who want their own loop; nndsl/train/step.py builds it (`make_train_step`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..elaborate.train import TrainSpec, build_train
from ..errors import TrainingError
from ..lower import backend, interpret
from .optim import make_optax
from .step import TrainState, batch_inputs, init_state, make_train_step

# `precision` settings: the dtype ops compute in (None: float32 throughout). Parameters and
# optimizer state stay float32 either way; f16 also scales the loss (see nndsl/train/step.py).
PRECISIONS = {"f32": None, "bf16": jnp.bfloat16, "f16": jnp.float16}


@dataclass
class FitResult:
    history: dict
    variables: dict  # model instance name -> {"params", "state"}
    train_state: dict = field(repr=False, default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


@dataclass
class _Run:
    """What `fit` carries from one iteration to the next besides the step's own state, and the
    options it was called with."""
    ts: dict
    loop: object
    on_nan: str
    callback: object
    checkpoint_dir: str | Path | None
    checkpoint_every: int | None
    keep: int
    sample_dir: str | Path | None
    samples: bool  # samples are evaluated (for sample_dir or callbacks)
    hooks: list = field(default_factory=list)
    history: dict = field(default_factory=dict)
    acc: dict = field(default_factory=dict)  # running sums of the metrics since the last report
    n_acc: int = 0
    last: dict = field(default_factory=dict)  # the previous iteration's metrics
    bad_run: int = 0  # refused updates in a row
    rollbacks: int = 0


class Trainer:
    def __init__(self, program, name: str | None = None, *, epochs: int | None = None,
                 iterations: int | None = None, seed: int | None = None, clip_norm: float | None = None,
                 base: str | Path | None = None, devices: int | None = None, mesh: dict | None = None,
                 data_roots=None, precision: str | None = None):
        from ..elaborate.train import check_setting
        for key, v in (("epochs", epochs), ("iterations", iterations), ("seed", seed), ("clip_norm", clip_norm)):
            if v is not None:
                check_setting(key, v)
        self.program = program
        self.base = Path(base) if base else _base_of(program)
        from ..data import paths
        self.data_roots = tuple(data_roots or getattr(program, "data_roots", ()) or ())
        with paths.scope(self.data_roots, program.max_memory):
            self.spec: TrainSpec = build_train(program.defs, name, None, self.base)
        s = self.spec.settings
        if epochs is not None:
            s = {**s, "epochs": epochs}
            s.pop("iterations", None)
        if iterations is not None:
            s = {**s, "iterations": iterations}
            s.pop("epochs", None)
        self.settings = s
        self.seed = seed if seed is not None else s.get("seed", 0)
        self.clip_norm = clip_norm if clip_norm is not None else s.get("clip_norm")
        self.precision = precision or s.get("precision", "f32")
        if self.precision not in PRECISIONS:
            raise TrainingError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}",
                                code="E349")
        self.compute_dtype = PRECISIONS[self.precision]
        self.txs = [make_optax(st.optimizer, self.clip_norm) for st in self.spec.steps]
        self.mesh = _data_mesh(devices, self.batch_size) if mesh is None else _mesh(mesh, self.batch_size)
        self._specs: dict = {}
        self._steps: dict = {}
        self._evals: dict = {}
        self._samplers: dict = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def batch_size(self) -> int:
        return self.spec.data.batch if self.spec.data is not None else 1

    def spec_for(self, batch: int) -> TrainSpec:
        if batch not in self._specs:
            from ..data import paths
            with paths.scope(self.data_roots, self.program.max_memory):
                self._specs[batch] = build_train(self.program.defs, self.spec.name, batch, self.base)
        return self._specs[batch]

    # ------------------------------------------------------------------ state
    def init(self, key) -> dict:
        from ..elaborate.train import check_memory
        spec = self.spec_for(self.batch_size)
        check_memory(spec, self.program.max_memory, f"train block `{self.name}`")
        from ..keys import checked_key
        scaled = self.precision == "f16"

        def build(key):  # one compile for every draw and the optimizers' zeros (interpret.init_variables)
            v = interpret.draw_variables(spec.graph.params, spec.graph.state, key)
            return init_state(v["params"], v["state"], self.txs, spec.steps, scaled).as_dict()
        return backend.jit_with(build, backend.init_options())(checked_key(key))

    # ------------------------------------------------------------------ the compiled iteration
    def _graph(self, spec: TrainSpec, train: bool):
        """The train block's graph after the program's passes (inference rewrites only for eval)."""
        import copy

        from ..passes import optimize
        prog = self.program
        if not (prog.opt_level or prog.passes):
            return spec.graph
        return optimize(copy.deepcopy(spec.graph), prog.opt_level, prog.passes, train)

    def step_fn(self, batch_size: int):
        """The iteration for batches of `batch_size`, unjitted, on the train state as the dict
        `init` returns (the form checkpoints store and users index): `make_train_step`'s step."""
        spec = self.spec_for(batch_size)
        step = make_train_step(spec, self._graph(spec, True), self.txs, self.compute_dtype)

        def on_dict(ts: dict, batch: dict, key):
            new, metrics = step(TrainState.of(ts), batch, key)
            return new.as_dict(), metrics
        return on_dict

    @property
    def step(self):
        """The jitted iteration for the block's batch size: (train_state, batch, key) -> (train_state, metrics).
        `train_state` comes from `init(key)`, `batch` is a dict by data field (`{"x": ..., "y": ...}`);
        docs/python-api.md shows a whole loop (and is run as a doctest). Pure: the state passed in
        stays valid (see `donating_step` for a loop that drops it)."""
        return self._compiled_step(self.batch_size)

    @property
    def donating_step(self):
        """`step` that consumes the train state passed in: XLA updates parameters and optimizer
        moments in place instead of allocating a second copy every iteration. For loops of the
        form `ts, m = step(ts, batch, key)`, which never read the old state again; `fit` uses it."""
        return self._compiled_step(self.batch_size, donate=True)

    def _compiled_step(self, n: int, donate: bool = False):
        if (n, donate) not in self._steps:
            kw = {"donate_argnums": (0,)} if donate else {}
            self._steps[n, donate] = _on_mesh(backend.jit(self.step_fn(n), self.program.opt_level, **kw),
                                              self.mesh)
        return self._steps[n, donate]

    def _eval_fn(self, n: int):
        if n not in self._evals:
            spec = self.spec_for(n)
            g = self._graph(spec, False)
            names = {k: g.outputs[k] for k in {**spec.losses, **spec.metrics}}

            def ev(params, state, batch, key):
                env = interpret.run(g, params, state, batch_inputs(spec, batch), train=False, rng=key,
                                    targets=list(names.values()), precision=self.compute_dtype)
                return {k: env[v] for k, v in names.items()}
            self._evals[n] = _on_mesh(backend.jit(ev, self.program.opt_level), self.mesh)
        return self._evals[n]

    def place(self, tree, sharded: bool, own_rows: bool = False):
        """On a data-parallel mesh: batches split along axis `data`, everything else replicated.
        `own_rows`: the batch holds only this process's rows already (the streaming loader reads
        only those)."""
        if self.mesh is None:
            return tree
        from jax.sharding import NamedSharding, PartitionSpec
        split = sharded and "data" in self.mesh.axis_names
        sharding = NamedSharding(self.mesh, PartitionSpec("data") if split else PartitionSpec())
        if jax.process_count() == 1:
            return jax.device_put(tree, sharding)
        # several processes: each contributes its own rows of the batch (all of a replicated value)
        pid, count = jax.process_index(), jax.process_count()

        def local(x):
            x = np.asarray(x)
            if split and not own_rows:
                rows = x.shape[0] // count
                x = x[pid * rows:(pid + 1) * rows]
            return jax.make_array_from_process_local_data(sharding, x)
        return jax.tree_util.tree_map(local, tree)

    def evaluate(self, ts: dict, arrays: dict, key=None) -> dict:
        """Mean losses and metrics over `arrays` in evaluation mode (batchnorm uses running stats)."""
        table = None if isinstance(arrays, dict) else arrays  # a Table read batch by batch
        n = len(table) if table is not None else len(next(iter(arrays.values())))
        bs = self.batch_size
        key = key if key is not None else jax.random.key(self.seed + 7)
        sums: dict = {}
        for start in range(0, n, bs):
            if table is not None:
                chunk = _read(self.spec.data, lambda s=start: table.take(np.arange(s, min(n, s + bs))))
            else:
                chunk = {f: a[start:start + bs] for f, a in arrays.items()}
            m = len(next(iter(chunk.values())))
            out = self._eval_fn(m)(ts["params"], ts["state"], self.place(chunk, False), key)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * m
        return {k: v / n for k, v in sums.items()} if n else {}

    # ------------------------------------------------------------------ the loop
    def fit(self, *, progress: bool | str = True, on_nan: str = "stop", callback=None,
            checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None,
            keep: int = 3, resume: str | Path | None = None,
            sample_dir: str | Path | None = None, callbacks: list | None = None) -> FitResult:
        """Runs the block. With `checkpoint_dir` and `checkpoint_every`, saves the whole training
        state every N iterations; `resume` continues from the newest good checkpoint exactly as if
        the run had never stopped (same batches, same random draws).

        `progress`: True shows a bar on a terminal and one plain line per report elsewhere (a
        bar written to a file or pipe keeps only a squashed last frame); "bar", "text" or "json"
        pick one; False prints nothing. `callbacks` are `nndsl.train.watch.Callback`s (the hook
        point for TensorBoard, MLflow, W&B and the like)."""
        from . import checkpoint as ckpt
        from . import watch
        t0 = time.perf_counter()
        key = jax.random.key(self.seed)
        ts = self.init(key)
        src = self.spec.data
        loop = _StreamLoop(self, self.seed) if src is not None and src.streams else _DataLoop(self, self.seed)
        self._loop = loop  # a non-finite loss looks into its arrays for a cause (_advice)
        run = _Run(ts, loop, on_nan, callback, checkpoint_dir, checkpoint_every, keep, sample_dir,
                   bool(sample_dir is not None or callbacks))
        start = self._resume(run, resume) if resume is not None else 0
        if checkpoint_dir is not None:
            ckpt.sweep(Path(checkpoint_dir))
        step = self._compiled_step(loop.bs, donate=True)
        run.ts = self.place(run.ts, False)
        run.hooks = watch.reporters(progress) + list(callbacks or [])
        for h in run.hooks:
            h.on_start(self._run_info(loop, start))
        interrupted = False
        try:
            self._iterate(run, step, key, start)
        except KeyboardInterrupt:
            interrupted = True
        except BaseException:
            getattr(loop, "close", lambda: None)()
            for h in run.hooks:  # the bar stops and event files are closed on an error too
                h.on_end(None)
            raise
        getattr(loop, "close", lambda: None)()
        result = FitResult(run.history, self.variables(run.ts), run.ts, interrupted, time.perf_counter() - t0)
        for h in run.hooks:
            h.on_end(result)
        return result

    def _resume(self, run: _Run, folder) -> int:
        """Loads the newest good checkpoint of `folder` into `run`: the iteration to go on from."""
        from . import checkpoint as ckpt
        ckpt.sweep(Path(folder))
        found = ckpt.load_latest(Path(folder), run.ts, run.loop.total, self.identity(run.ts))
        if found is None:
            raise TrainingError(f"no usable checkpoint in {folder}", code="E703")
        start, run.ts, data_state = found
        try:
            run.loop.restore(data_state["loop"])
            run.history = _history(data_state.get("history", {}))
            run.acc, run.n_acc = _unpack_acc(data_state.get("acc", {}))
        except (KeyError, TypeError, ValueError, IndexError):
            raise TrainingError(f"the checkpoint at iteration {start} in {folder} has a damaged data "
                                "position", code="E722") from None
        return start

    def _run_info(self, loop, start: int):
        from . import watch
        src = self.spec.data
        return watch.RunInfo(self.spec.name, loop.total, start, loop.per_epoch,
                             None if "iterations" in self.settings else loop.epochs, self,
                             batch=loop.bs if src is not None else 0,
                             unit="img/s" if src is not None and src.name in ("images", "mnist", "cifar10")
                             else "ex/s")

    def _iterate(self, run: _Run, step, key, start: int) -> None:
        """The iterations from `start` on. Whether an iteration's update was finite is read one
        iteration late, so that the host never waits for the step it has just launched."""
        loop, it, flag = run.loop, start, None
        for it in range(start, loop.total):
            run.ts, metrics = step(run.ts, self.place(loop.next(), True, loop.local), key)
            if flag is not None:
                self._check_finite(run, bool(flag), it - 1)
            flag, run.last = metrics["finite"], metrics
            self._after_step(run, it + 1, metrics)
        if flag is not None and not bool(flag) and run.on_nan != "rollback":
            self._nonfinite(run.on_nan, it, run.bad_run + 1, {})

    def _check_finite(self, run: _Run, fine: bool, it: int) -> None:
        """--on-nan: after a refused update, roll back, skip it, or stop."""
        run.bad_run = 0 if fine else run.bad_run + 1
        if run.bad_run and run.on_nan == "rollback":
            run.ts = self._rollback(run.checkpoint_dir, run.ts, run.rollbacks, it)
            run.rollbacks, run.bad_run = run.rollbacks + 1, 0
        elif run.bad_run:
            self._nonfinite(run.on_nan, it, run.bad_run, {k: float(v) for k, v in run.last.items() if k != "finite"})

    def _after_step(self, run: _Run, n: int, metrics: dict) -> None:
        """Iteration `n` is launched: its reports, samples and checkpoint when they are due."""
        # running sums, not lists: memory stays flat however far apart the reports are
        for k, v in metrics.items():
            run.acc[k] = run.acc[k] + v if k in run.acc else v
        run.n_acc += 1
        if n % run.loop.log_every == 0 or n == run.loop.total:
            self._report(run, n)
        if run.samples:
            self._samples(run, n)
        if run.checkpoint_dir is not None and run.checkpoint_every and n % run.checkpoint_every == 0 \
                and jax.process_index() == 0 and bool(metrics["finite"]):  # never right after a refused update
            self._checkpoint(run, n)
        for h in run.hooks:
            h.on_iteration(n)

    def _report(self, run: _Run, n: int) -> None:
        vals = {k: float(v) / run.n_acc for k, v in run.acc.items() if k != "finite"}
        run.acc, run.n_acc = {}, 0
        if run.loop.held_out:
            vals.update({f"val_{k}": v for k, v in self.evaluate(run.ts, run.loop.test).items()})
        for k, v in vals.items():
            run.history.setdefault(k, []).append(v)
        for h in run.hooks:
            h.on_report(n, vals, run.ts)
        if run.callback is not None:
            run.callback(n, run.ts, vals)

    def _samples(self, run: _Run, n: int) -> None:
        for i, (_, every, _) in enumerate(self.spec.samples):
            if n % every == 0 or n == run.loop.total:
                label, vals, classes = self._sample(i, run.ts, run.loop)
                if run.sample_dir is not None:
                    self._write_sample(Path(run.sample_dir), label, n, vals, classes, run.loop)
                for h in run.hooks:
                    h.on_sample(label, n, vals, classes)

    def _checkpoint(self, run: _Run, n: int) -> None:
        """The metrics since the last report travel too: a resumed report averages the same
        iterations as an uninterrupted one. A full disk costs this checkpoint, not the run."""
        from . import checkpoint as ckpt
        try:
            ckpt.save(Path(run.checkpoint_dir), n, run.ts,
                      {"loop": run.loop.state(), "history": run.history, "acc": _pack_acc(run.acc, run.n_acc)},
                      run.keep, self.identity(run.ts))
        except OSError as e:
            import warnings
            warnings.warn(f"checkpoint at iteration {n} could not be written to {run.checkpoint_dir} "
                          f"({os.strerror(e.errno or 0).lower()}); training goes on", stacklevel=2)

    def _sample(self, i: int, ts: dict, loop) -> tuple[str, np.ndarray, np.ndarray | None]:
        """Evaluates sample i: (its name, its values, the classes asked for or None). Evaluation
        mode and a fixed key, so the pictures show the model changing, not the noise. When the
        sampled value depends on exactly one `categorical([batch], ...)` draw (a conditional
        generator's labels), that draw is fixed to 0, 1, 2, ... in turn, so every class is shown
        equally often and the grid can give each class its row."""
        spec = self.spec_for(loop.bs)
        name = f"sample_{i}"
        if name not in self._samplers:
            g = self._graph(spec, False)
            nid = g.outputs[name]
            draws = [d for d in g.ancestors([nid]) if g.node(d).op == "categorical"
                     and len(getattr(g.node(d).type, "shape", ())) == 1]
            cond = draws[0] if len(draws) == 1 else None

            def f(params, state, batch, key):
                preset = None
                if cond is not None:
                    first = g.node(cond).type.shape[0]
                    n = first if isinstance(first, int) else loop.bs
                    preset = {cond: jnp.arange(n, dtype=jnp.int32) % g.node(cond).attrs["classes"]}
                return interpret.run(g, params, state, batch_inputs(spec, batch), train=False, rng=key,
                                     targets=[nid], preset=preset)[nid], \
                    (preset[cond] if preset else jnp.zeros((0,), jnp.int32))
            self._samplers[name] = _on_mesh(backend.jit(f, self.program.opt_level), self.mesh)
        batch = {k: v[:loop.bs] for k, v in loop.train.items()} if loop.n else {}
        vals, classes = self._samplers[name](ts["params"], ts["state"], batch, jax.random.key(12345))
        label = self.spec.samples[i][2].source.line(self.spec.samples[i][2].line).split()[1] \
            if self.spec.samples[i][2] is not None else name
        classes = np.asarray(classes)
        return ("".join(c if c.isalnum() else "_" for c in label), np.asarray(vals),
                classes if classes.size else None)

    def _write_sample(self, out: Path, label: str, it: int, vals, classes, loop) -> Path:
        from . import samples
        real = loop.train.get("x") if loop.n else None
        return samples.write(out, label, it, vals, None if real is None else real[:2000], classes)

    MAX_SKIPPED = 10
    MAX_ROLLBACKS = 3

    def _rollback(self, folder, ts, done: int, it: int):
        """--on-nan rollback: back to the newest good checkpoint; the data goes on from where it
        is, so the batch that broke the run is not seen again at once. At most MAX_ROLLBACKS."""
        import warnings

        from . import checkpoint as ckpt
        if folder is None:
            raise TrainingError(f"a loss or gradient became non-finite at iteration {it + 1}, and there is "
                                "no checkpoint to roll back to", self.spec.span, code="E701",
                                help="rollback needs --checkpoint-every")
        if done >= self.MAX_ROLLBACKS:
            cause, advice = self._advice()
            raise TrainingError(f"non-finite again at iteration {it + 1} after {done} rollbacks; giving up{cause}",
                                self.spec.span, code="E701", help=advice)
        found = ckpt.load_latest(Path(folder), ts, identity=self.identity(ts))
        if found is None:
            raise TrainingError(f"non-finite at iteration {it + 1} before the first checkpoint", self.spec.span,
                                code="E701")
        warnings.warn(f"non-finite at iteration {it + 1}: rolled back to checkpoint {found[0]}", stacklevel=2)
        return self.place(found[1], False)

    def _nonfinite(self, on_nan, it, run, vals):
        """A step whose loss or gradient was not finite was not applied; stop, or skip it."""
        if on_nan == "skip" and run < self.MAX_SKIPPED:
            return
        what = f" (losses: {', '.join(f'{k}={v:.4g}' for k, v in vals.items())})" if vals else ""
        cause, advice = self._advice()
        raise TrainingError(f"a loss or gradient became non-finite at iteration {it + 1}{what}"
                            + (f", {run} times in a row" if run > 1 else "")
                            + f"; the update was not applied and no checkpoint holds it{cause}",
                            self.spec.span, code="E701", help=advice)

    def _advice(self) -> tuple[str, str]:
        """The cause the data can name (ids past the logits, NaN in a field) before the generic
        advice about the learning rate, which would only hide such a mistake."""
        from ..elaborate.datacheck import explain_nonfinite
        loop = getattr(self, "_loop", None)
        train = getattr(loop, "train", None)  # a streaming loop holds no arrays to look into
        found = explain_nonfinite(self.spec, train) if train and loop.n else None
        if found is None:
            return "", "lower the learning rate or set `clip_norm`"
        return f"; the cause: {found[0]}", found[1]

    def identity(self, ts: dict) -> str:
        """What a checkpoint records of the run that wrote it: the train block's name, its model
        instances with their arguments, and the train state's layout. Two blocks whose parameters
        happen to have the same layout still differ here, so neither resumes from the other's
        checkpoints; the number of iterations is not part of it, so a run can be extended."""
        import hashlib
        import json
        leaves, treedef = jax.tree_util.tree_flatten(ts)
        desc = {"train": self.spec.name,
                "models": {k: [m, {n: _stable(v) for n, v in sorted(a.items())}]
                           for k, (m, a) in sorted(self.spec.models.items())},
                "layout": [str(treedef), [[list(np.shape(x)), str(getattr(x, "dtype", ""))] for x in leaves]]}
        return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()

    def variables(self, ts: dict) -> dict:
        return {m: {"params": ts["params"].get(m, {}), "state": ts["state"].get(m, {})}
                for m in self.spec.instances}


def _stable(v):
    """A model argument as the same text in every process (no object addresses)."""
    if isinstance(v, (bool, int, float, str)) or v is None:
        return repr(v)
    if isinstance(v, (list, tuple)):
        return [_stable(x) for x in v]
    return type(v).__name__


def _pack_acc(acc: dict, n: int) -> dict:
    """The running sums of the metrics since the last report, and how many iterations they hold,
    as JSON (exact: a float32 round-trips through a Python float)."""
    return {"n": n, "sums": {k: {"dtype": str(np.asarray(v).dtype), "value": np.asarray(v).tolist()}
                             for k, v in acc.items()}}


def _unpack_acc(packed) -> tuple[dict, int]:
    if not isinstance(packed, dict):
        raise TypeError("acc")
    if not packed:
        return {}, 0
    n, sums = packed["n"], packed["sums"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or not isinstance(sums, dict):
        raise ValueError("acc")
    return {str(k): jnp.asarray(np.asarray(e["value"], dtype=jnp.dtype(e["dtype"]))) for k, e in sums.items()}, n


def _history(h) -> dict:
    if not isinstance(h, dict) or not all(isinstance(v, list) for v in h.values()):
        raise TypeError("history")
    return h





def _on_mesh(fn, mesh):
    """Runs (and so traces) `fn` with `mesh` current, for the program's sharding annotations."""
    if mesh is None:
        return fn
    from ..ops.mesh import using

    def call(*args):
        with using(mesh):
            return fn(*args)
    return call


def _mesh(axes: dict, batch: int):
    """A mesh with named axes (`--mesh data=2,model=2`); the batch is split over `data`."""
    n = 1
    for k, v in axes.items():
        if not isinstance(v, int) or v < 1:
            raise TrainingError(f"mesh axis `{k}` needs a positive size, got {v}", code="E707")
        n *= v
    have = jax.devices()
    if n > len(have):
        raise TrainingError(f"a mesh of {n} devices asked for, {len(have)} available ({have[0].platform})",
                            code="E704", help="on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                                              "makes N devices")
    if batch % axes.get("data", 1):
        raise TrainingError(f"the batch of {batch} does not split evenly over {axes['data']} devices", code="E705")
    from jax.sharding import Mesh
    return Mesh(np.array(have[:n]).reshape(tuple(axes.values())), tuple(axes))


def _data_mesh(devices: int | None, batch: int):
    """A one-axis mesh named `data` over the first N devices (JAX's own SPMD partitioner does the
    rest: the jitted step sees a sharded batch and replicated parameters). Across several
    processes (`jax.distributed`), every device of every process by default."""
    if not devices and jax.process_count() > 1:
        devices = jax.device_count()
    if not devices or devices == 1:
        return None
    have = jax.devices()
    if devices > len(have):
        raise TrainingError(f"{devices} devices asked for, {len(have)} available ({have[0].platform})",
                            code="E704", help="on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                                              "makes N devices")
    if batch % devices:
        raise TrainingError(f"the batch of {batch} does not split evenly over {devices} devices", code="E705")
    from jax.sharding import Mesh
    return Mesh(np.array(have[:devices]), ("data",))


class _DataLoop:
    """Seeded batches: a fresh permutation each epoch, the last partial batch dropped so the step
    compiles once. Its state (position, order, generator) is saved in checkpoints."""

    def __init__(self, trainer: Trainer, seed: int):
        src = trainer.spec.data
        self.train, self.test = _read(src, lambda: src.arrays(seed)) if src is not None else ({}, {})
        self.held_out = (src is not None and src.split < 1 and len(next(iter(self.test.values()))) > 0)
        self.n = len(next(iter(self.train.values()))) if self.train else 0
        self.bs = min(trainer.batch_size, self.n) if self.n else trainer.batch_size
        self.total, self.log_every, self.per_epoch, self.epochs = _schedule(trainer, self.n, self.bs)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.n) if self.n else None
        self.pos = 0
        self.local = False

    def next(self) -> dict:
        if not self.n:
            return {}
        if self.pos + self.bs > self.n:
            self.order, self.pos = self.rng.permutation(self.n), 0
        idx = self.order[self.pos:self.pos + self.bs]
        self.pos += self.bs
        return {f: a[idx] for f, a in self.train.items()}

    def state(self) -> dict:
        return {"pos": self.pos, "order": self.order.tolist() if self.order is not None else None,
                "rng": self.rng.bit_generator.state}

    def restore(self, st: dict) -> None:
        """The position a checkpoint saved, refused (ValueError) unless it is one this data could
        have: an order that is a permutation of the examples and a position inside it."""
        order = np.array(st["order"]) if st["order"] is not None else None
        if (order is None) != (not self.n) or type(st["pos"]) is not int or not 0 <= st["pos"] <= self.n:
            raise ValueError("data position")
        if order is not None and (order.shape != (self.n,) or order.dtype.kind not in "iu"
                                  or not np.array_equal(np.sort(order), np.arange(self.n))):
            raise ValueError("data order")
        self.rng.bit_generator.state = st["rng"]
        self.pos, self.order = st["pos"], order


def _schedule(trainer: Trainer, n: int, bs: int) -> tuple:
    """(total iterations, iterations between reports, iterations per epoch, epochs or None) for n
    examples in batches of bs: 10 epochs when the block gives neither epochs nor iterations."""
    per_epoch = max(1, n // bs) if n else 1
    s = trainer.settings
    epochs, iters = s.get("epochs"), s.get("iterations")
    if epochs is None and iters is None:
        epochs = 10
    total = iters if iters is not None else epochs * per_epoch
    return total, s.get("eval_every") or (per_epoch if iters is None else max(1, total // 100)), per_epoch, epochs


def _read(src, fn):
    """Reads data files while training: a file found broken is a located error on the `data`
    statement, never a traceback."""
    from ..ops.registry import OpError
    try:
        return fn()
    except OpError as e:
        raise TrainingError(str(e), getattr(src, "span", None), code=getattr(e, "code", "E356"),
                            help=e.help) from None


class _StreamLoop:
    """Batches of a file-backed source (images, mnist, cifar10, npy, npz), read as needed.

    Grain does the work: a seeded global shuffle, reshuffled every epoch, batched by index, each
    batch read (decoded, memory-mapped) on Grain's worker threads while the device runs the
    previous step. The order is a pure function of (seed, position), so the checkpoint stores
    only the position, and `--resume` continues with exactly the batches an uninterrupted run
    would have read. Under several processes each reads only its own rows of every global batch.
    Batches run on across epoch ends (no example is dropped)."""

    THREADS = 8

    def __init__(self, trainer: Trainer, seed: int):
        import grain
        src = trainer.spec.data
        self.src = src
        train, test = _read(src, lambda: src.tables(seed))
        self.table, self.test = train, test
        self._head = None
        self.n = len(train)
        self.held_out = test is not None and len(test) > 0
        self.bs = min(trainer.batch_size, self.n)
        self.total, self.log_every, self.per_epoch, self.epochs = _schedule(trainer, self.n, self.bs)
        pid, count = jax.process_index(), jax.process_count()
        self.local = count > 1
        rows = self.bs // count if count > 1 else self.bs

        def read(idx):
            return train.take(idx[pid * rows:(pid + 1) * rows] if count > 1 else idx)
        self.ds = (grain.MapDataset.range(self.n).shuffle(seed=seed).repeat(None)
                   .batch(self.bs, drop_remainder=True).map(read))
        one = sum(int(np.prod(shape or (1,))) * 4 for shape, _ in train.fields.values()) * rows
        # batches read ahead: at most an eighth of the memory limit (and 256 MiB), at least 2
        from ..data.files import memory_limit
        budget = min(256 << 20, (trainer.program.max_memory or memory_limit()) // 8)
        self.prefetch = int(max(2, min(32, budget // max(one, 1))))
        self.pos = 0
        self.it = None

    def next(self) -> dict:
        import grain
        if self.it is None:
            # one thread per core: more only add memory (each keeps its own malloc arena and batch
            # in flight: 8 threads on 2 cores measured 622 MiB peak against 487 MiB with 2)
            import os
            threads = max(1, min(self.THREADS, os.cpu_count() or 1, self.prefetch))
            opts = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=self.prefetch)
            self.it = iter(self.ds.to_iter_dataset(opts))
            if self.pos:
                self.it.set_state({"next_index": self.pos})
        batch = _read(self.src, lambda: next(self.it))
        self.pos += 1
        return batch

    @property
    def train(self) -> dict:
        """The first rows, for sample grids (real images beside generated ones), read once."""
        if self._head is None:
            self._head = _read(self.src, lambda: self.table.take(np.arange(min(self.n, max(self.bs, 256)))))
        return self._head

    def state(self) -> dict:
        return {"stream": self.pos}

    def restore(self, st: dict) -> None:
        self.close()
        self.pos = int(st["stream"])

    def close(self) -> None:
        """Stops Grain's prefetch threads (also when training stops early)."""
        if self.it is not None:
            self.it.close()
            self.it = None


def _base_of(program) -> Path | None:
    return program.defs.base
