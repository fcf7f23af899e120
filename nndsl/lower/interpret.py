"""Graph to JAX: a topological walk with an environment, as `jax.core.eval_jaxpr` does.

The functions here are pure and traceable: `jit`, `grad` and `vmap` see only jnp operations.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.graph import Graph, stable_hash
from ..ops import OPS, ApplyCtx
from . import scan_vjp


def get_path(tree, path: tuple):
    for k in path:
        tree = tree[k]
    return tree


def set_path(tree: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


def init_tree(specs: dict, key) -> dict:
    out: dict = {}
    for path, spec in sorted(specs.items()):
        k = jax.random.fold_in(key, stable_hash(path))
        set_path(out, path, spec.init(k, tuple(spec.shape), spec.dtype))
    return out


def _leaves(tree, path):
    try:
        p = get_path(tree, path)
    except (KeyError, TypeError):
        return {}
    return p if isinstance(p, dict) else {"": p}


def run(g: Graph, params: dict, state: dict, inputs: list, *, train: bool = False, rng=None,
        targets=None, new_state: dict | None = None, preset: dict | None = None, precision=None) -> dict:
    """Evaluates the graph; returns node id -> value for every node needed by `targets`.
    `preset` fixes values of some nodes (used to differentiate a subgraph). With `precision` (a
    float dtype such as bfloat16), each op computes in it on parameters and inputs cast at the op,
    so the float32 parameters stay the masters and their gradients arrive in float32; ops that
    ask for float32 (`OpDef.computes_in_f32`: losses, softmax, normalization) get float32."""
    env: dict = dict(zip(g.inputs, inputs))
    env.update(preset or {})
    order = g.topo_order()
    if targets is not None:
        need = g.ancestors(targets)
        order = [n for n in order if n in need]
    new_state = {} if new_state is None else new_state
    for nid in order:
        if nid in env:
            continue
        node = g.node(nid)
        args = [env[i] for i in g.input_ids(nid)]
        if node.op == "scan":
            env[nid] = _scan(node, args, params, state, train, rng, new_state, precision)
            continue
        if node.op == "generate":
            from .generate import run_generate
            env[nid] = run_generate(node, args, params, state, train, rng, run)
            continue
        if node.op == "grad":
            env[nid] = _grad(g, nid, env, params, state, inputs, train, rng, precision)
            continue
        if node.op == "scan_layers":
            env[nid] = _scan_layers(node, args, params, state, train, rng, precision)
            continue
        opdef = OPS[node.op]
        ctx = ApplyCtx(train=train, out_shape=_concrete(node.type.shape, g, inputs)
                       if hasattr(node.type, "shape") else ())
        if node.path is not None:
            if opdef.has_params:
                ctx.params = _leaves(params, node.path)
                ctx.state = _leaves(state, node.path)
                for name, path in node.attrs.get("reads", ()):  # a fused node: another layer's leaves
                    ctx.params = {**ctx.params, name: _leaves(params, path)}
                    ctx.state = {**ctx.state, name: _leaves(state, path)}
            if opdef.needs_rng and rng is not None:
                ctx.rng = jax.random.fold_in(rng, stable_hash(node.path))
        if precision is not None:
            want = jnp.float32 if opdef.computes_in_f32 else precision
            args = [_cast(a, want) for a in args]
            ctx.params = jax.tree_util.tree_map(lambda a: _cast(a, want), ctx.params)
        env[nid] = opdef.apply(ctx, *args, **node.attrs)
        if ctx.new_state:
            for leaf, v in ctx.new_state.items():
                set_path(new_state, node.path + (leaf,), v)
    return env


def _cast(x, dtype):
    """Floating arrays to `dtype`; integers (labels, token ids) and non-arrays as they are."""
    dt = getattr(x, "dtype", None)
    if dt is None or dt == dtype or not jnp.issubdtype(dt, jnp.floating):
        return x
    return x.astype(dtype)


def _scan(node, args, params, state, train, rng, new_state, precision=None):
    """Inputs are [seq, *initial states, *extra sequences, *constants] (the last two groups come
    from passes that hoist work out of the body); the body sees [x, *states, *steps, *constants]."""
    body: Graph = node.attrs["body"]
    names = node.attrs["states"]
    n_seqs = node.attrs.get("n_seqs", 0)
    out_id = body.outputs["out"]
    state_ids = [body.outputs[n] for n in names]
    seq, inits = args[0], tuple(args[1:1 + len(names)])
    seqs = tuple(args[1 + len(names):1 + len(names) + n_seqs])
    consts = list(args[1 + len(names) + n_seqs:])

    def cell(x_t, carry, steps=()):
        env = run(body, params, state, [x_t, *carry, *steps, *consts], train=train, rng=rng,
                  precision=precision)
        # the carry keeps the dtype it entered with (lax.scan requires it)
        return env[out_id], tuple(_cast(env[i], c.dtype) if hasattr(c, "dtype") else env[i]
                                  for i, c in zip(state_ids, carry))

    if node.attrs["unroll"] is not None:
        def fb(carry, _):
            x_prev, st = carry
            y, st2 = cell(x_prev, st)
            y = _cast(y, x_prev.dtype)
            return (y, st2), y
        (_, final), ys = jax.lax.scan(fb, (seq, inits), None, length=node.attrs["unroll"])
    else:
        stack = node.attrs.get("stack_out", True)  # False: no node reads the stacked outputs

        def f(carry, xs):
            y, st2 = cell(xs[0], carry, xs[1:])
            return st2, (y if stack else None)
        time_major = tuple(jnp.swapaxes(s, 0, 1) for s in (seq, *seqs))
        # NNDSL_SCAN_VJP=1: the recurrent-kernel gradient (weight gradients as one matmul after the loop)
        loop = scan_vjp.scan if scan_vjp.enabled() else jax.lax.scan
        final, ys = loop(f, inits, time_major, reverse=node.attrs["reverse"])
        if not stack:
            return (None, *final)
    return (jnp.swapaxes(ys, 0, 1), *final)


def _scan_layers(node, args, params, state, train, rng, precision=None):
    """`Block * n` as one lax.scan: each copy's parameters (and read-only state) are stacked along a
    new leading axis, and the body (the first copy) reads its slice where the first copy's live."""
    body: Graph = node.attrs["body"]
    copies = node.attrs["paths"].paths  # per copy, the scope of each parameterized body node
    slots = copies[0]

    def stacked(tree):
        out = []
        for j in range(len(slots)):
            leaves = [_leaves(tree, c[j]) for c in copies]
            out.append({k: jnp.stack([lv[k] for lv in leaves]) for k in leaves[0]})
        return out

    def step(carry, sl):
        p_sl, s_sl = sl
        env = run(body, _overlay(params, slots, p_sl), _overlay(state, slots, s_sl), [carry, *args[1:]],
                  train=train, rng=rng, precision=precision)
        out = env[body.outputs["out"]]
        return (_cast(out, carry.dtype) if hasattr(carry, "dtype") else out), None

    out, _ = jax.lax.scan(step, args[0], (stacked(params), stacked(state)))
    return out


def _overlay(tree: dict, paths, values) -> dict:
    """`tree` with the leaves at each path replaced (a copy along each path; `tree` is untouched)."""
    out = dict(tree)
    for path, val in zip(paths, values):
        if not val:
            continue
        node = out
        for k in path[:-1]:
            node[k] = dict(node.get(k, {}))
            node = node[k]
        node[path[-1]] = val[""] if "" in val else {**node.get(path[-1], {}), **val}
    return out


def _grad(g: Graph, nid: str, env: dict, params, state, inputs, train, rng, precision=None):
    out, wrt = g.input_ids(nid)
    downstream = g.descendants(wrt)
    fixed = {k: v for k, v in env.items() if k not in downstream and k != wrt}

    def f(w):
        e = run(g, params, state, inputs, train=train, rng=rng, targets=[out], preset={**fixed, wrt: w},
                precision=precision)
        return e[out]
    return jax.grad(f)(env[wrt])


def _concrete(shape: tuple, g: Graph, inputs: list) -> tuple:
    """A node's shape with symbolic dimensions replaced by the traced sizes of the inputs that
    bind them (under `jax.export` with a symbolic batch, the size is itself a symbolic dim)."""
    if all(isinstance(d, int) for d in shape):
        return shape
    sizes = {}
    for nid, x in zip(g.inputs, inputs):
        for d, n in zip(g.node(nid).type.shape, getattr(x, "shape", ())):
            if isinstance(d, str):
                sizes.setdefault(d, n)
    return tuple(sizes.get(d, d) if isinstance(d, str) else d for d in shape)


def merge(old: dict, new: dict) -> dict:
    """The state after a step: `old` with the leaves in `new` replaced."""
    if not new:
        return old
    out = dict(old)
    for k, v in new.items():
        out[k] = merge(old.get(k, {}), v) if isinstance(v, dict) else v
    return out
