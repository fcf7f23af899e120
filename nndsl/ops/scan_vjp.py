"""`lax.scan` with the gradient recurrent kernels use (cuDNN, PyTorch's LSTM backward).

JAX's transpose of a scan accumulates the gradient of every loop-invariant weight inside the
backward loop: one small matmul per step ([hidden, batch] x [batch, 4 hidden] for an LSTM) plus
an add into the carried sum. Recurrent kernels instead keep each step's activations from the
forward loop, let the backward loop carry only the state's gradient and emit, per step, the
gradient of every `h @ W` output; after the loop each weight's gradient is ONE matmul over all
steps (`H_prev^T @ dGates` with [T*B, H] x [T*B, 4H]).

`scan(f, init, xs, reverse)` does that for any step function `f(carry, x) -> (carry, y)`:
it traces `f` to a jaxpr, computes the part that depends only on loop invariants (weights, the
body's closed-over values) once before the loop, and finds the matmuls (`dot_general`) with one
loop-invariant operand. A custom VJP then runs the forward loop saving `jax.vjp`'s residuals of
the step (the weights treated as constants, so they are saved once, not per step), the backward
loop computing d(carry), d(x) and d(matmul output) per step, and the weight gradients after it.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore


def enabled() -> bool:
    """On by default: on an idle 2-core CPU (benchmarks/rnn_vjp.py, T=50, hidden 128, the
    trainer's whole step) the LSTM step ran 1.14x (-O1) and 1.20x (-O2) as fast as with
    `lax.scan`'s own gradient at the same level at batch 32, 0.99x and 1.10x at batch 64; the GRU
    1.19x and 1.18x, 1.10x and 1.07x; and with it -O2 is faster than -O1 on both. (Measured on a loaded machine, the
    same comparison came out mixed: wall times there say little.) `NNDSL_SCAN_VJP=0` turns it off."""
    return os.environ.get("NNDSL_SCAN_VJP", "1") != "0"


def _floating(x) -> bool:
    return jnp.issubdtype(getattr(x, "dtype", None) or jnp.result_type(x), jnp.floating)


@dataclass
class _Split:
    """A step's jaxpr cut into the loop-invariant part and the per-step part."""

    jaxpr: object
    pre: list  # equations that read loop invariants only (run once, before the loop)
    step: list  # the other equations (run every step)
    needs: list = field(default_factory=list)  # the loop-invariant vars the step reads ("statics")
    dots: list = field(default_factory=list)  # (dot equation, index of its invariant operand)
    other: list = field(default_factory=list)  # indices into needs read by anything else
    on_x: dict = field(default_factory=dict)  # dot number -> index of the x it multiplies


def _var(v) -> bool:
    return not isinstance(v, jcore.Literal)


def _split(closed, n_carry: int) -> _Split:
    """Cuts `closed` into the equations that read only its constants (the closed-over weights)
    and those that read the loop's carry or x; finds the matmuls with one invariant operand."""
    jaxpr = closed.jaxpr
    xs = jaxpr.invars[n_carry:]
    static = set(jaxpr.constvars)
    sp = _Split(jaxpr, [], [])
    for eqn in jaxpr.eqns:
        if all(v in static for v in eqn.invars if _var(v)) and not eqn.effects:
            static.update(eqn.outvars)
            sp.pre.append(eqn)
        else:
            sp.step.append(eqn)
    other = set()
    for eqn in sp.step:
        inv = [not _var(v) or v in static for v in eqn.invars]
        reads = [v for v in eqn.invars if _var(v) and v in static]
        if eqn.primitive.name == "dot_general" and inv[0] != inv[1] and _floating(eqn.outvars[0].aval):
            w = 0 if inv[0] else 1
            if eqn.invars[1 - w] in xs:
                sp.on_x[len(sp.dots)] = xs.index(eqn.invars[1 - w])
            sp.dots.append((eqn, w))
        else:
            other.update(reads)
        sp.needs += [v for v in reads if v not in sp.needs]
    outs = [v for v in jaxpr.outvars if _var(v) and v in static]
    sp.needs += [v for v in outs if v not in sp.needs]
    other.update(outs)
    sp.other = [i for i, v in enumerate(sp.needs) if v in other and _floating(v.aval)]
    return sp


def _read(env, v):
    return v.val if isinstance(v, jcore.Literal) else env[v]


def _eval(eqns, env: dict, dots: dict | None = None, fixed: dict | None = None, eps=(),
          saved: list | None = None) -> None:
    """Runs `eqns` as `jax.core.eval_jaxpr` does. A dot in `dots` (eqn -> (k, w)) reads its
    invariant operand (w), and an x it multiplies, from `fixed` (values not differentiated),
    gets `eps[k]` added to its output (so d(output) is d(eps)), and appends its per-step operand
    to `saved`."""
    for eqn in eqns:
        ins = [_read(env, v) for v in eqn.invars]
        hooked = dots is not None and eqn in dots
        if hooked:
            k, w = dots[eqn]
            ins = [fixed[v] if _var(v) and v in fixed else a for v, a in zip(eqn.invars, ins)]
        with eqn.ctx.manager:
            outs = eqn.primitive.bind(*ins, **eqn.primitive.get_bind_params(eqn.params))
        if not eqn.primitive.multiple_results:
            outs = [outs]
        if hooked:
            outs = [outs[0] + eps[k]]
            saved.append(ins[1 - w])
        env.update(zip(eqn.outvars, outs))


def _zero_cotangent(s):
    if _floating(s):
        return jnp.zeros_like(s)
    return np.zeros(np.shape(s), jax.dtypes.float0)


class _Step:
    """The per-step part of a split jaxpr as a function of (statics, carry, x)."""

    def __init__(self, sp: _Split, n_carry: int):
        self.sp, self.n_carry = sp, n_carry
        self.dots = {eqn: (k, w) for k, (eqn, w) in enumerate(sp.dots)}

    def __call__(self, statics, carry, x, hook=None):
        env = dict(zip(self.sp.needs, statics))
        env.update(zip(self.sp.jaxpr.invars, [*carry, *x]))
        _eval(self.sp.step, env, *(hook or (None,)))
        outs = [_read(env, v) for v in self.sp.jaxpr.outvars]
        return outs[:self.n_carry], outs[self.n_carry:]

    def linearized(self, statics, carry, x):
        """((carry', y), vjp, the dots' per-step operands). The vjp maps d(carry', y) to d(carry),
        d(x), d(each dot's output) and d(the statics read elsewhere than by those dots, `other`);
        the dots read their weights (and the x they multiply) as constants, so no weight gradient
        (nor that x's) is formed per step: both are one matmul each after the loop."""
        eps = [jnp.zeros(e.outvars[0].aval.shape, e.outvars[0].aval.dtype) for e, _ in self.sp.dots]
        fixed = dict(zip(self.sp.needs, statics))
        fixed.update(zip(self.sp.jaxpr.invars[self.n_carry:], x))

        def g(c, xx, ee, oo):
            s = list(statics)
            for i, v in zip(self.sp.other, oo):
                s[i] = v
            saved: list = []
            return self(s, c, xx, (self.dots, fixed, ee, saved)), saved
        return jax.vjp(g, carry, x, eps, [statics[i] for i in self.sp.other], has_aux=True)


@dataclass
class _Linear:
    """The step's linearization traced once: a jaxpr from (statics, carry, x) to (carry', y, the
    dots' operands, the vjp closure's leaves), the closure's tree, and where each leaf comes
    from: ("static", i) when it is statics[i] itself (kept once, not per step), ("const", value)
    for a constant, ("step", None) for a value each step computes (stacked by the forward loop)."""

    closed: object
    vjp_def: object
    kinds: list
    n_out: int


def _linearize(step: _Step, statics, carry, x) -> _Linear:
    box = {}

    def lin(s, c, xx):
        (c2, y), vjp, saved = step.linearized(s, c, xx)
        leaves, box["def"] = jax.tree_util.tree_flatten(vjp)
        return [*c2, *y, *saved, *leaves]
    closed, shape = jax.make_jaxpr(lin, return_shape=True)(statics, carry, x)
    invars = closed.jaxpr.invars[:len(statics)]
    consts = dict(zip(closed.jaxpr.constvars, closed.consts))
    n_out = len(shape) - len(step.sp.dots) - box["def"].num_leaves
    kinds = []
    for v in closed.jaxpr.outvars[n_out + len(step.sp.dots):]:
        if not _var(v):
            kinds.append(("const", v.val))
        elif v in invars:
            kinds.append(("static", invars.index(v)))
        elif v in consts and not isinstance(consts[v], jax.core.Tracer):
            kinds.append(("const", consts[v]))
        else:
            kinds.append(("step", None))
    return _Linear(closed, box["def"], kinds, n_out)


def _plain(eqn, w: int) -> bool:
    """Whether the dot is `a @ W` with a 2-d W contracting a's last axis (a dense layer)."""
    (ca, cb), (ba, bb) = eqn.params["dimension_numbers"]
    a = eqn.invars[1 - w].aval
    return w == 1 and not ba and not bb and tuple(ca) == (a.ndim - 1,) and tuple(cb) == (0,) \
        and eqn.invars[1].aval.ndim == 2


def _over_steps(eqn, w: int, a_stack, weight):
    """`dot(a_t, weight)` for every step t at once: one matmul, the steps folded into the rows
    (a 2-d matmul where it is one: XLA:CPU runs dots with several contracting axes far slower)."""
    params = eqn.primitive.get_bind_params(eqn.params)
    if _plain(eqn, w):
        rows = a_stack.reshape(-1, a_stack.shape[-1])
        out = eqn.primitive.bind(rows, weight, **params)
        return out.reshape(a_stack.shape[:-1] + out.shape[-1:])

    def one(a):
        return eqn.primitive.bind(*((a, weight) if w == 1 else (weight, a)), **params)
    return jax.vmap(one)(a_stack)


def _distinct(values: list, index: list) -> list:
    """`values` without repeats (by identity, within one trace); `index` gets each one's slot."""
    out: list = []
    for v in values:
        at = next((j for j, u in enumerate(out) if u is v), None)
        index.append(len(out) if at is None else at)
        if at is None:
            out.append(v)
    return out


def _after_loop(sp: _Split, s: list, saved: list, deps: list, ds: list, dxs: list) -> None:
    """Adds to `ds` each dot's weight gradient, and to `dxs` the gradient of an x a dot
    multiplies, each one matmul over all steps from the stacked operands and output gradients."""
    for k, (eqn, w) in enumerate(sp.dots):
        weight = s[sp.needs.index(eqn.invars[w])] if _var(eqn.invars[w]) else eqn.invars[w].val
        d_a, d_w = jax.vjp(functools.partial(_over_steps, eqn, w), saved[k], weight)[1](deps[k])
        if _var(eqn.invars[w]):
            i = sp.needs.index(eqn.invars[w])
            ds[i] = ds[i] + d_w
        if k in sp.on_x:  # XLA drops this matmul where nothing reads d(x)
            dxs[sp.on_x[k]] = dxs[sp.on_x[k]] + d_a


def _fast(sp: _Split, n_carry: int, reverse: bool, statics, carry, xs):
    step = _Step(sp, n_carry)
    lin = _linearize(step, statics, carry, [a[0] for a in xs])
    n_dots = len(sp.dots)

    def primal(s, c, xx):
        return jax.lax.scan(lambda c, x: step(s, c, x), c, xx, reverse=reverse)

    def fwd(s, c, xx):
        def body(c, x):
            same.clear()  # traced again: the slots again
            outs = jcore.jaxpr_as_fun(lin.closed)(*s, *c, *x)
            leaves = outs[lin.n_out + n_dots:]
            per_step = [lf for lf, (kind, _) in zip(leaves, lin.kinds) if kind == "step"]
            saved = _distinct(outs[lin.n_out:lin.n_out + n_dots], same)
            return outs[:n_carry], (outs[n_carry:lin.n_out], per_step, saved)
        same: list = []  # the dots' operands without repeats: dot k multiplies saved[same[k]]
        c_out, (ys, per_step, saved) = jax.lax.scan(body, c, xx, reverse=reverse)
        return (c_out, ys), (s, per_step, [saved[j] for j in same])

    def rebuild(s, per_step):
        it = iter(per_step)
        leaves = [s[i] if kind == "static" else i if kind == "const" else next(it) for kind, i in lin.kinds]
        return jax.tree_util.tree_unflatten(lin.vjp_def, leaves)

    def bwd(res, cts):
        s, per_step, saved = res
        d_carry, d_ys = cts

        def body(acc, inp):
            same.clear()  # traced again: the slots again
            dc, d_other = acc
            res_t, dy = inp
            dc_prev, dx, deps, do = rebuild(s, res_t)((dc, dy))
            return (dc_prev, [a + b for a, b in zip(d_other, do)]), (dx, _distinct(deps, same))
        zeros = [jnp.zeros_like(s[i]) for i in sp.other]
        same: list = []  # deps[k] is the distinct output same[k] (dots summed share a cotangent)
        (dc0, d_other), (dxs, deps) = jax.lax.scan(body, (d_carry, zeros), (per_step, d_ys),
                                                   reverse=not reverse)
        ds = [_zero_cotangent(v) for v in s]
        for i, d in zip(sp.other, d_other):
            ds[i] = d
        _after_loop(sp, s, saved, [deps[j] for j in same], ds, dxs)
        return ds, dc0, dxs

    run = jax.custom_vjp(primal)
    run.defvjp(fwd, bwd)
    return run(statics, carry, xs)


def scan(f, init, xs, reverse: bool = False):
    """`jax.lax.scan(f, init, xs, reverse=reverse)` with the gradient described above; it falls
    back to `lax.scan` when a carry, x or y is not floating point, no matmul reads a weight, or
    there is no step."""
    if not any(np.shape(a)[0] for a in jax.tree_util.tree_leaves(xs)):
        return jax.lax.scan(f, init, xs, reverse=reverse)
    x0 = jax.tree_util.tree_map(lambda a: a[0], xs)
    closed, out_shape = jax.make_jaxpr(f, return_shape=True)(init, x0)
    carry_leaves, carry_def = jax.tree_util.tree_flatten(init)
    x_leaves = jax.tree_util.tree_leaves(xs)
    sp = _split(closed, len(carry_leaves))
    loop_values = carry_leaves + x_leaves + jax.tree_util.tree_leaves(out_shape)
    if not sp.dots or not all(_floating(v) for v in loop_values):
        return jax.lax.scan(f, init, xs, reverse=reverse)
    env = dict(zip(closed.jaxpr.constvars, closed.consts))
    _eval(sp.pre, env)
    carry_out, ys = _fast(sp, len(carry_leaves), reverse, [env[v] for v in sp.needs], carry_leaves, x_leaves)
    _, y_def = jax.tree_util.tree_structure(out_shape).children()
    return jax.tree_util.tree_unflatten(carry_def, carry_out), jax.tree_util.tree_unflatten(y_def, ys)
