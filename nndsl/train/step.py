"""One training iteration as a pure function: `make_train_step(...)(state, batch, key) -> (state, metrics)`.

The carry is a `TrainState`. Each `step` statement of the block minimizes its own loss over its
own models, in order, each seeing the parameters the previous one updated, `repeat` times.

What the iteration adds to a hand-written JAX step is kept small (benchmarks/step_tax.py: the MLP
784-256-256-10 step at batch 128, 1.07x a hand-written donating step on an idle 2-core CPU):
- the non-finite guard is one test on the loss and the sum of the gradients (`_sum`), and one
  `lax.cond` around the optimizer update. A `jnp.where` per leaf instead (as
  `optax.apply_if_finite` does) made XLA copy every optimizer moment before updating it in place
  (13 copies and 21 selects in the MLP step, 1.24x a hand-written step; the cond: no copy);
- the per-step key is `fold_in(key, iteration)`, nothing split or carried;
- the counter is one int32 scalar.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..lower import interpret

# f16 dynamic loss scaling, as PyTorch's GradScaler and Keras's LossScaleOptimizer do it: start
# high, halve on every overflow (that update is skipped), double after a run of good steps.
LOSS_SCALE_INIT, LOSS_SCALE_GROWTH_EVERY = 2.0 ** 15, 2000


class TrainState(NamedTuple):
    """What one iteration carries to the next. Outside the step it travels as the dict of
    `as_dict` (`Trainer.init`, checkpoints, `FitResult.train_state`): that dict's leaves, in
    jax.tree_util order, are what a checkpoint stores."""
    params: dict     # model instance -> its parameters
    state: dict      # model instance -> its non-trained state (batchnorm statistics)
    opt: tuple       # one optimizer state per `step` statement
    iteration: jax.Array  # int32 scalar: iterations done
    loss_scale: dict | None = None  # precision f16 only: {"scale": f32, "good": int32 run of good steps}

    @classmethod
    def of(cls, ts: dict) -> TrainState:
        return cls(ts["params"], ts["state"], tuple(ts["opt"]), ts["iteration"], ts.get("loss_scale"))

    def as_dict(self) -> dict:
        d = {"params": self.params, "state": self.state, "opt": list(self.opt), "iteration": self.iteration}
        if self.loss_scale is not None:
            d["loss_scale"] = self.loss_scale
        return d


def init_state(params: dict, state: dict, txs, steps, scaled: bool) -> TrainState:
    """The state before the first iteration; `scaled`: with f16 loss scaling."""
    opt = tuple(tx.init({m: params.get(m, {}) for m in st.models}) for tx, st in zip(txs, steps))
    scale = {"scale": jnp.float32(LOSS_SCALE_INIT), "good": jnp.zeros((), jnp.int32)} if scaled else None
    return TrainState(params, state, opt, jnp.zeros((), jnp.int32), scale)


def batch_inputs(spec, batch: dict) -> list:
    """The graph's inputs, in order, from a batch by data field."""
    by_id = {nid: f for f, nid in spec.data_inputs.items()}
    return [jnp.asarray(batch[by_id[i]]) for i in spec.graph.inputs]


class _Update(NamedTuple):
    """The carry of one `step` statement's updates (several with `repeat`)."""
    params: dict
    state: dict
    opt: object
    loss: jax.Array
    aux: dict  # reported losses and metrics by graph node
    finite: jax.Array
    norms: dict  # model -> gradient norm


def make_train_step(spec, graph, txs, compute_dtype=None):
    """`step(state: TrainState, batch, key) -> (TrainState, metrics)` for the train block `spec`
    whose (optimized) graph is `graph`, with one optax transformation per `step` statement."""
    names = list(spec.losses) + [m for m in spec.metrics if m not in spec.losses]
    reported = [graph.outputs[n] for n in names]
    by_node = {graph.outputs[n]: n for n in names}

    def step(ts: TrainState, batch: dict, key):
        inputs = batch_inputs(spec, batch)
        key = jax.random.fold_in(key, ts.iteration)
        scale = None if ts.loss_scale is None else ts.loss_scale["scale"]
        params, state, opts, metrics, ok = ts.params, ts.state, list(ts.opt), {}, jnp.array(True)
        for i, (st, tx) in enumerate(zip(spec.steps, txs)):
            last = i == len(spec.steps) - 1
            targets = [graph.outputs[st.loss]] + (reported if last else [])
            loss_fn = _loss_fn(graph, compute_dtype, graph.outputs[st.loss], reported, targets, inputs, scale)
            r = _minimize(st, tx, loss_fn, _Update(params, state, opts[i], None, None, jnp.array(True), None),
                          key, scale)
            params, state, opts[i], ok = r.params, r.state, r.opt, ok & r.finite
            metrics[st.loss] = r.loss
            if len(spec.steps) > 1:  # adversarial blocks: watch each model's gradient norm
                metrics.update({f"grad_norm_{m}": v for m, v in r.norms.items()})
            if last:
                for nid, val in r.aux.items():
                    metrics.setdefault(by_node[nid], val)
        return _advance(ts, TrainState(params, state, tuple(opts), ts.iteration + 1, ts.loss_scale), ok, metrics,
                        [st.loss for st in spec.steps])
    return step


def _loss_fn(graph, compute_dtype, loss_node, reported, targets, inputs, scale):
    """(sub, params, state, key) -> (loss, (reported values, new state)) for `jax.value_and_grad`.
    f16: the loss is scaled up so that small gradients survive float16's range; `_minimize`
    scales the gradients back down before anything reads them."""
    def loss_fn(sub, params, state, key):
        new_state: dict = {}
        env = interpret.run(graph, {**params, **sub}, state, inputs, train=True, rng=key, targets=targets,
                            new_state=new_state, precision=compute_dtype)
        loss = env[loss_node].astype(jnp.float32)
        return (loss if scale is None else loss * scale), ({n: env[n] for n in reported if n in env}, new_state)
    return loss_fn


def _minimize(st, tx, loss_fn, start: _Update, key, scale) -> _Update:
    """One `step` statement: `st.repeat` updates of its models' parameters."""
    def update(r, c: _Update) -> _Update:
        sub = {m: c.params.get(m, {}) for m in st.models}
        (loss, (aux, ns)), grads = jax.value_and_grad(loss_fn, has_aux=True)(sub, c.params, c.state,
                                                                             jax.random.fold_in(key, r))
        if scale is not None:
            loss = loss / scale
            grads = jax.tree_util.tree_map(lambda d: d / scale, grads)
        # A plain sum is non-finite exactly when some element is (or when it overflows, which is
        # divergence too), and measured cheaper than the squared norm; norms are computed only
        # where they are reported (XLA drops them elsewhere).
        finite = jnp.isfinite(loss) & jnp.isfinite(_sum(grads))
        sub2, opt2, state2 = _apply_if_finite(finite, tx, grads, c.opt, sub, c.state, ns)
        norms = {m: jnp.sqrt(_sum_of_squares(grads[m])) for m in st.models}
        return _Update({**c.params, **sub2}, state2, opt2, loss, aux, c.finite & finite, norms)

    if st.repeat == 1:
        return update(0, start)
    # a loop carries every field from the start: zeros shaped like the first update's values
    shapes = jax.eval_shape(lambda: update(0, start))
    start = start._replace(**{f: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), getattr(shapes, f))
                              for f in ("loss", "aux", "norms")})
    # unrolled for small n: XLA:CPU runs convolutions in a loop body far slower
    # (measured: one conv step 0.76 ms, a 2-trip fori_loop 19 ms, unrolled 1.5 ms)
    return jax.lax.fori_loop(0, st.repeat, update, start, unroll=st.repeat <= 8)


def _apply_if_finite(finite, tx, grads, opt, sub, state, new_state):
    """(parameters, optimizer state, model state) after the update, or as they were when the
    loss or a gradient is not finite. A cond, not a select per leaf: see the module's docstring."""
    def apply(operands):
        grads, opt, sub, state, new_state = operands
        upd, opt2 = tx.update(grads, opt, sub)
        return optax.apply_updates(sub, upd), opt2, interpret.merge(state, new_state)

    def keep(operands):
        _, opt, sub, state, _ = operands
        return sub, opt, state
    return jax.lax.cond(finite, apply, keep, (grads, opt, sub, state, new_state))


def _advance(old: TrainState, new: TrainState, ok, metrics: dict, losses: list) -> tuple[TrainState, dict]:
    """The f16 loss scale's next value, and `metrics["finite"]`. An overflow is the scale's
    business, not divergence: the scale halves and the update was skipped; only a non-finite
    (unscaled) loss counts as not finite then."""
    if old.loss_scale is not None:
        new = new._replace(loss_scale=_next_scale(old.loss_scale, ok))
        ok = jnp.all(jnp.array([jnp.isfinite(metrics[k]) for k in losses]))
    metrics["finite"] = ok
    return new, metrics


def _next_scale(ls: dict, ok) -> dict:
    good = jnp.where(ok, ls["good"] + 1, 0)
    grow = good >= LOSS_SCALE_GROWTH_EVERY
    scale = jnp.where(ok, jnp.where(grow, ls["scale"] * 2, ls["scale"]), jnp.maximum(ls["scale"] / 2, 1.0))
    return {"scale": scale, "good": jnp.where(grow, 0, good)}


def _sum(tree):
    """The sum of every element, finite exactly when each element is (or on overflow, which is
    divergence too). A matrix's rows are summed by a product with a ones vector first: XLA:CPU
    runs a plain float reduction element by element (it may not reorder the adds) but a
    matrix-vector product vectorized, 3x faster on a 784x256 kernel and the MLP step's guard from
    1.19x to 1.07x a hand-written step without one (benchmarks/step_tax.py)."""
    def one(x):
        if x.ndim < 2:
            return jnp.sum(x)
        return jnp.sum(jax.lax.dot(x.reshape(-1, x.shape[-1]), jax.lax.full((x.shape[-1],), 1, x.dtype)))
    return sum((one(x) for x in jax.tree_util.tree_leaves(tree)), jnp.zeros(()))


def _sum_of_squares(tree):
    """The squared norm: the same dot_general `jnp.vdot` of a real array makes, bound directly
    (`jnp.vdot` and `@` are nested jits, traced again under differentiation for every leaf)."""
    return sum((jax.lax.dot(x.ravel(), x.ravel()) for x in jax.tree_util.tree_leaves(tree)), jnp.zeros(()))
