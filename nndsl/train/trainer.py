"""Runs a train block: one jitted function per iteration, seeded data order, held-out evaluation.

`Trainer.step` is public and pure: `step(train_state, batch, key) -> (train_state, metrics)`, for
users who want their own loop. Each `step` statement of the block minimizes its own loss over its
own models, in order, each seeing the parameters the previous one updated.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..build.train import TrainSpec, build_train
from ..lower import backend
from ..errors import TrainingError
from ..lower import interpret
from .optim import make_optax


# `precision` settings: the dtype ops compute in (None: float32 throughout). Parameters and
# optimizer state stay float32 either way; f16 also scales the loss (see `step_fn`).
PRECISIONS = {"f32": None, "bf16": jnp.bfloat16, "f16": jnp.float16}
# f16 dynamic loss scaling, as PyTorch's GradScaler and Keras's LossScaleOptimizer do it: start
# high, halve on every overflow (that update is skipped), double after a run of good steps.
LOSS_SCALE_INIT, LOSS_SCALE_GROWTH_EVERY = 2.0 ** 15, 2000


@dataclass
class FitResult:
    history: dict
    variables: dict  # model instance name -> {"params", "state"}
    train_state: dict = field(repr=False, default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0


class Trainer:
    def __init__(self, program, name: str | None = None, *, epochs: int | None = None,
                 iterations: int | None = None, seed: int | None = None, clip_norm: float | None = None,
                 base: str | Path | None = None, devices: int | None = None, mesh: dict | None = None,
                 precision: str | None = None):
        self.program = program
        self.base = Path(base) if base else _base_of(program)
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
            self._specs[batch] = build_train(self.program.defs, self.spec.name, batch, self.base)
        return self._specs[batch]

    # ------------------------------------------------------------------ state
    def init(self, key) -> dict:
        from ..limits import check_graph
        spec = self.spec_for(self.batch_size)
        check_graph(spec.graph, self.program.max_memory, f"train block `{self.name}`")
        kp, ks = jax.random.split(key)
        params = interpret.init_tree(spec.graph.params, kp)
        state = interpret.init_tree(spec.graph.state, ks)
        opt = [tx.init({m: params.get(m, {}) for m in st.models}) for tx, st in zip(self.txs, spec.steps)]
        ts = {"params": params, "state": state, "opt": opt, "iteration": jnp.zeros((), jnp.int32)}
        if self.precision == "f16":
            ts["loss_scale"] = {"scale": jnp.float32(LOSS_SCALE_INIT), "good": jnp.zeros((), jnp.int32)}
        return ts

    def _inputs(self, spec: TrainSpec, batch: dict) -> list:
        by_id = {nid: f for f, nid in spec.data_inputs.items()}
        return [jnp.asarray(batch[by_id[i]]) for i in spec.graph.inputs]

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
        spec = self.spec_for(batch_size)
        g = self._graph(spec, True)
        names = list(spec.losses) + [m for m in spec.metrics if m not in spec.losses]
        reported = [g.outputs[n] for n in names]
        by_node = {g.outputs[n]: n for n in names}

        def forward(params, state, inputs, key, targets):
            new_state: dict = {}
            env = interpret.run(g, params, state, inputs, train=True, rng=key, targets=targets,
                                new_state=new_state, precision=self.compute_dtype)
            return env, new_state

        def one_step(i, st, tx, ts, inputs, key, last):
            loss_node = g.outputs[st.loss]
            targets = [loss_node] + (reported if last else [])
            scale = ts["loss_scale"]["scale"] if "loss_scale" in ts else None

            def loss_fn(sub, params, state, k):
                env, ns = forward({**params, **sub}, state, inputs, k, targets)
                loss = env[loss_node].astype(jnp.float32)
                # f16: the loss is scaled up so that small gradients survive float16's range;
                # gradients are scaled back down before anything reads them.
                return (loss if scale is None else loss * scale), ({n: env[n] for n in reported if n in env}, ns)

            def update(r, carry):
                params, state, opt, _, _, ok, _ = carry
                sub = {m: params.get(m, {}) for m in st.models}
                k = jax.random.fold_in(key, r)
                (loss, (aux, ns)), grads = jax.value_and_grad(loss_fn, has_aux=True)(sub, params, state, k)
                if scale is not None:
                    loss = loss / scale
                    grads = jax.tree_util.tree_map(lambda d: d / scale, grads)
                # A plain sum is non-finite exactly when some element is (or when it overflows,
                # which is divergence too), and measured cheaper than the squared norm (MLP step
                # 0.61 against 0.67 ms); norms are computed only where they are reported.
                finite = jnp.isfinite(loss) & jnp.isfinite(_sum(grads))

                upd, opt2 = tx.update(grads, opt, sub)
                sub2 = optax.apply_updates(sub, upd)
                # A non-finite loss or gradient keeps the old values: a select XLA fuses into the
                # update (a lax.cond around the update measured 1.3x slower on the LSTM step).
                keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)
                sub2, opt2, state2 = keep(sub2, sub), keep(opt2, opt), keep(interpret.merge(state, ns), state)
                norms = {m: jnp.sqrt(_sum_of_squares(grads[m])) for m in st.models}
                return {**params, **sub2}, state2, opt2, loss, aux, ok & finite, norms

            params, state, opt = ts["params"], ts["state"], ts["opt"][i]
            init_aux = jax.eval_shape(lambda: loss_fn({m: params.get(m, {}) for m in st.models},
                                                      params, state, key)[1][0])
            zero_aux = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), init_aux)
            carry = (params, state, opt, jnp.zeros(()), zero_aux, jnp.array(True),
                     {m: jnp.zeros(()) for m in st.models})
            if st.repeat == 1:
                carry = update(0, carry)
            else:
                # unrolled for small n: XLA:CPU runs convolutions in a loop body far slower
                # (measured: one conv step 0.76 ms, a 2-trip fori_loop 19 ms, unrolled 1.5 ms)
                carry = jax.lax.fori_loop(0, st.repeat, update, carry, unroll=st.repeat <= 8)
            return carry

        def step(ts, batch, key):
            inputs = self._inputs(spec, batch)
            metrics, ok = {}, jnp.array(True)
            ts = dict(ts)
            opts = list(ts["opt"])
            key = jax.random.fold_in(key, ts["iteration"])
            for i, (st, tx) in enumerate(zip(spec.steps, self.txs)):
                last = i == len(spec.steps) - 1
                params, state, opt, loss, aux, fine, norms = one_step(i, st, tx, {**ts, "opt": opts}, inputs,
                                                                      key, last)
                ts["params"], ts["state"] = params, state
                opts[i] = opt
                metrics[st.loss] = loss
                if len(spec.steps) > 1:  # adversarial blocks: watch each model's gradient norm
                    for m, v in norms.items():
                        metrics[f"grad_norm_{m}"] = v
                ok = ok & fine
                if last:
                    for nid, val in aux.items():
                        metrics.setdefault(by_node[nid], val)
            ts["opt"] = opts
            ts["iteration"] = ts["iteration"] + 1
            if "loss_scale" in ts:
                # an overflow is the scale's business, not divergence: it halves and the update
                # was skipped; only a non-finite loss (unscaled) counts as not finite
                ts["loss_scale"] = _next_scale(ts["loss_scale"], ok)
                ok = jnp.all(jnp.array([jnp.isfinite(metrics[st.loss]) for st in spec.steps]))
            metrics["finite"] = ok
            return ts, metrics

        return step

    @property
    def step(self):
        """The jitted iteration for the block's batch size: (train_state, batch, key) -> (train_state, metrics).
        Pure: the state passed in stays valid (see `donating_step` for a loop that drops it)."""
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
                env = interpret.run(g, params, state, self._inputs(spec, batch), train=False, rng=key,
                                    targets=list(names.values()), precision=self.compute_dtype)
                return {k: env[v] for k, v in names.items()}
            self._evals[n] = _on_mesh(backend.jit(ev, self.program.opt_level), self.mesh)
        return self._evals[n]

    def place(self, tree, sharded: bool):
        """On a data-parallel mesh: batches split along axis `data`, everything else replicated."""
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
            if split:
                rows = x.shape[0] // count
                x = x[pid * rows:(pid + 1) * rows]
            return jax.make_array_from_process_local_data(sharding, x)
        return jax.tree_util.tree_map(local, tree)

    def evaluate(self, ts: dict, arrays: dict, key=None) -> dict:
        """Mean losses and metrics over `arrays` in evaluation mode (batchnorm uses running stats)."""
        n = len(next(iter(arrays.values())))
        bs = self.batch_size
        key = key if key is not None else jax.random.key(self.seed + 7)
        sums: dict = {}
        for start in range(0, n, bs):
            chunk = {f: a[start:start + bs] for f, a in arrays.items()}
            m = len(next(iter(chunk.values())))
            out = self._eval_fn(m)(ts["params"], ts["state"], self.place(chunk, False), key)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v) * m
        return {k: v / n for k, v in sums.items()} if n else {}

    # ------------------------------------------------------------------ the loop
    def fit(self, *, progress: bool = True, on_nan: str = "stop", callback=None,
            checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None,
            keep: int = 3, resume: str | Path | None = None,
            sample_dir: str | Path | None = None) -> FitResult:
        """Runs the block. With `checkpoint_dir` and `checkpoint_every`, saves the whole training
        state every N iterations; `resume` continues from the newest good checkpoint exactly as if
        the run had never stopped (same batches, same random draws)."""
        from . import checkpoint as ckpt
        t0 = time.perf_counter()
        key = jax.random.key(self.seed)
        ts = self.init(key)
        loop = _DataLoop(self, self.seed)
        total, log_every = loop.total, loop.log_every
        start, history = 0, {}
        if resume is not None:
            ckpt.sweep(Path(resume))
            found = ckpt.load_latest(Path(resume), ts)
            if found is None:
                raise TrainingError(f"no usable checkpoint in {resume}", code="E703")
            start, ts, data_state = found
            loop.restore(data_state["loop"])
            history = data_state.get("history", {})
        if checkpoint_dir is not None:
            ckpt.sweep(Path(checkpoint_dir))
        step = self._compiled_step(loop.bs, donate=True)
        ts = self.place(ts, False)
        acc: dict = {}
        interrupted, bad_run, last_flag, rollbacks = False, 0, None, 0
        bar = _Bar(total, progress, self.spec.name)
        bar.advance(start)
        it = start
        try:
            for it in range(start, total):
                ts, metrics = step(ts, self.place(loop.next(), True), key)
                if last_flag is not None:  # read one step late: no sync on the step just launched
                    bad_run = 0 if bool(last_flag) else bad_run + 1
                    if bad_run and on_nan == "rollback":
                        ts, rollbacks = self._rollback(checkpoint_dir, ts, rollbacks, it - 1), rollbacks + 1
                        bad_run = 0
                    elif bad_run:
                        self._nonfinite(on_nan, it - 1, bad_run, {k: float(v[-1]) for k, v in acc.items()
                                                                   if k != "finite"})
                last_flag = metrics["finite"]
                for k, v in metrics.items():
                    acc.setdefault(k, []).append(v)
                if (it + 1) % log_every == 0 or it + 1 == total:
                    vals = {k: float(jnp.mean(jnp.stack(v))) for k, v in acc.items() if k != "finite"}
                    acc = {}
                    if loop.held_out:
                        vals.update({f"val_{k}": v for k, v in self.evaluate(ts, loop.test).items()})
                    for k, v in vals.items():
                        history.setdefault(k, []).append(v)
                    bar.show(vals)
                    if callback is not None:
                        callback(it + 1, ts, vals)
                if sample_dir is not None:
                    for i, (_, every, _) in enumerate(self.spec.samples):
                        if (it + 1) % every == 0 or it + 1 == total:
                            self._write_sample(Path(sample_dir), i, it + 1, ts, loop)
                if checkpoint_dir is not None and checkpoint_every and (it + 1) % checkpoint_every == 0 \
                        and jax.process_index() == 0:
                    if bool(metrics["finite"]):  # never checkpoint right after a refused update
                        ckpt.save(Path(checkpoint_dir), it + 1, ts,
                                  {"loop": loop.state(), "history": history}, keep)
                bar.advance()
            if last_flag is not None and not bool(last_flag) and on_nan != "rollback":
                self._nonfinite(on_nan, it, bad_run + 1, {})
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
        return FitResult(history, self.variables(ts), ts, interrupted, time.perf_counter() - t0)

    def _write_sample(self, out: Path, i: int, it: int, ts: dict, loop) -> Path:
        """Evaluates sample i (evaluation mode, a fixed key: the same noise every time, so the
        pictures show the model changing, not the noise)."""
        from . import samples
        spec = self.spec_for(loop.bs)
        name = f"sample_{i}"
        if name not in self._samplers:
            g = self._graph(spec, False)
            nid = g.outputs[name]

            def f(params, state, batch, key):
                return interpret.run(g, params, state, self._inputs(spec, batch), train=False, rng=key,
                                     targets=[nid])[nid]
            self._samplers[name] = _on_mesh(backend.jit(f, self.program.opt_level), self.mesh)
        batch = {k: v[:loop.bs] for k, v in loop.train.items()} if loop.n else {}
        vals = self._samplers[name](ts["params"], ts["state"], batch, jax.random.key(12345))
        real = loop.train.get("x") if loop.n else None
        label = self.spec.samples[i][2].source.line(self.spec.samples[i][2].line).split()[1] \
            if self.spec.samples[i][2] is not None else name
        return samples.write(out, "".join(c if c.isalnum() else "_" for c in label), it, np.asarray(vals),
                             None if real is None else real[:2000])

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
            raise TrainingError(f"non-finite again at iteration {it + 1} after {done} rollbacks; giving up",
                                self.spec.span, code="E701", help="lower the learning rate or set `clip_norm`")
        found = ckpt.load_latest(Path(folder), ts)
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
        raise TrainingError(f"a loss or gradient became non-finite at iteration {it + 1}{what}"
                            + (f", {run} times in a row" if run > 1 else "")
                            + "; the update was not applied and no checkpoint holds it",
                            self.spec.span, code="E701", help="lower the learning rate or set `clip_norm`")

    def variables(self, ts: dict) -> dict:
        return {m: {"params": ts["params"].get(m, {}), "state": ts["state"].get(m, {})}
                for m in self.spec.instances}


def _sum(tree):
    return sum((jnp.sum(x) for x in jax.tree_util.tree_leaves(tree)), jnp.zeros(()))


def _next_scale(ls: dict, ok) -> dict:
    good = jnp.where(ok, ls["good"] + 1, 0)
    grow = good >= LOSS_SCALE_GROWTH_EVERY
    scale = jnp.where(ok, jnp.where(grow, ls["scale"] * 2, ls["scale"]), jnp.maximum(ls["scale"] / 2, 1.0))
    return {"scale": scale, "good": jnp.where(grow, 0, good)}


def _sum_of_squares(tree):
    return sum((jnp.vdot(x, x).real for x in jax.tree_util.tree_leaves(tree)), jnp.zeros(()))


def _on_mesh(fn, mesh):
    """Runs (and so traces) `fn` with `mesh` current, for the program's sharding annotations."""
    if mesh is None:
        return fn
    from ..lower.mesh import using

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
        self.train, self.test = src.arrays(seed) if src is not None else ({}, {})
        self.held_out = (src is not None and src.split < 1 and len(next(iter(self.test.values()))) > 0)
        self.n = len(next(iter(self.train.values()))) if self.train else 0
        self.bs = min(trainer.batch_size, self.n) if self.n else trainer.batch_size
        per_epoch = max(1, self.n // self.bs) if self.n else 1
        s = trainer.settings
        epochs, iters = s.get("epochs"), s.get("iterations")
        if epochs is None and iters is None:
            epochs = 10
        self.total = iters if iters is not None else epochs * per_epoch
        self.log_every = s.get("eval_every") or (per_epoch if iters is None else max(1, self.total // 100))
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.n) if self.n else None
        self.pos = 0

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
        self.pos = st["pos"]
        self.order = np.array(st["order"]) if st["order"] is not None else None
        self.rng.bit_generator.state = st["rng"]


class _Bar:
    """A rich progress bar with the latest losses and metrics; silent when disabled."""

    def __init__(self, total: int, enabled: bool, name: str):
        self.p = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        self.p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
        self.p.start()
        self.task = self.p.add_task(name, total=total, info="")

    def show(self, vals: dict):
        if self.p:
            self.p.update(self.task, info="  ".join(f"{k} {v:.4f}" for k, v in vals.items()))

    def advance(self, n: int = 1):
        if self.p and n:
            self.p.advance(self.task, n)

    def close(self):
        if self.p:
            self.p.stop()


def _base_of(program) -> Path | None:
    return program.defs.base
