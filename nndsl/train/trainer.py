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
                 base: str | Path | None = None, devices: int | None = None, mesh: dict | None = None):
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
        return {"params": params, "state": state, "opt": opt, "iteration": jnp.zeros((), jnp.int32)}

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
                                new_state=new_state)
            return env, new_state

        def one_step(i, st, tx, ts, inputs, key, last):
            loss_node = g.outputs[st.loss]
            targets = [loss_node] + (reported if last else [])

            def loss_fn(sub, params, state, k):
                env, ns = forward({**params, **sub}, state, inputs, k, targets)
                return env[loss_node], ({n: env[n] for n in reported if n in env}, ns)

            def update(r, carry):
                params, state, opt, _, _, ok, _ = carry
                sub = {m: params.get(m, {}) for m in st.models}
                k = jax.random.fold_in(key, r)
                (loss, (aux, ns)), grads = jax.value_and_grad(loss_fn, has_aux=True)(sub, params, state, k)
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
            metrics["finite"] = ok
            return ts, metrics

        return step

    @property
    def step(self):
        """The jitted iteration for the block's batch size: (train_state, batch, key) -> (train_state, metrics).
        `train_state` comes from `init(key)`, `batch` is a dict by data field (`{"x": ..., "y": ...}`);
        docs/python-api.md shows a whole loop (and is run as a doctest)."""
        return self._compiled_step(self.batch_size)

    def _compiled_step(self, n: int):
        if n not in self._steps:
            self._steps[n] = _on_mesh(backend.jit(self.step_fn(n), self.program.opt_level), self.mesh)
        return self._steps[n]

    def _eval_fn(self, n: int):
        if n not in self._evals:
            spec = self.spec_for(n)
            g = self._graph(spec, False)
            names = {k: g.outputs[k] for k in {**spec.losses, **spec.metrics}}

            def ev(params, state, batch, key):
                env = interpret.run(g, params, state, self._inputs(spec, batch), train=False, rng=key,
                                    targets=list(names.values()))
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
        step = self._compiled_step(loop.bs)
        ts = self.place(ts, False)
        acc: dict = {}
        interrupted, bad_run, last_flag, rollbacks = False, 0, None, 0
        hooks = watch.reporters(progress) + list(callbacks or [])
        info = watch.RunInfo(self.spec.name, total, start, loop.per_epoch,
                             None if "iterations" in self.settings else loop.epochs, self)
        for h in hooks:
            h.on_start(info)
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
                    for h in hooks:
                        h.on_report(it + 1, vals, ts)
                    if callback is not None:
                        callback(it + 1, ts, vals)
                if sample_dir is not None or callbacks:
                    for i, (_, every, _) in enumerate(self.spec.samples):
                        if (it + 1) % every == 0 or it + 1 == total:
                            label, vals_i, classes = self._sample(i, ts, loop)
                            if sample_dir is not None:
                                self._write_sample(Path(sample_dir), label, it + 1, vals_i, classes, loop)
                            for h in hooks:
                                h.on_sample(label, it + 1, vals_i, classes)
                if checkpoint_dir is not None and checkpoint_every and (it + 1) % checkpoint_every == 0 \
                        and jax.process_index() == 0:
                    if bool(metrics["finite"]):  # never checkpoint right after a refused update
                        ckpt.save(Path(checkpoint_dir), it + 1, ts,
                                  {"loop": loop.state(), "history": history}, keep)
                for h in hooks:
                    h.on_iteration(it + 1)
            if last_flag is not None and not bool(last_flag) and on_nan != "rollback":
                self._nonfinite(on_nan, it, bad_run + 1, {})
        except KeyboardInterrupt:
            interrupted = True
        except BaseException:
            for h in hooks:  # the bar stops and event files are closed on an error too
                h.on_end(None)
            raise
        result = FitResult(history, self.variables(ts), ts, interrupted, time.perf_counter() - t0)
        for h in hooks:
            h.on_end(result)
        return result

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
                return interpret.run(g, params, state, self._inputs(spec, batch), train=False, rng=key,
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
        self.per_epoch, self.epochs = per_epoch, epochs
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


def _base_of(program) -> Path | None:
    return program.defs.base
