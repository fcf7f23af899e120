"""Graph to JAX: a topological walk with an environment, as `jax.core.eval_jaxpr` does.

The functions here are pure and traceable: `jit`, `grad` and `vmap` see only jnp operations.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.graph import Graph, stable_hash
from ..ops import OPS, ApplyCtx, LowerCtx
from ..ops.lowering import cast, get_path, leaves  # noqa: F401  (get_path: callers import it from here)
from . import backend


def set_path(tree: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value


def draw_tree(specs: dict, key) -> dict:
    """Every parameter (or state) of `specs` drawn from `key`, each from its own path's fold of it."""
    out: dict = {}
    for path, spec in sorted(specs.items()):
        k = jax.random.fold_in(key, stable_hash(path))
        set_path(out, path, spec.init(k, tuple(spec.shape), spec.dtype))
    return out


def draw_variables(params: dict, state: dict, key) -> dict:
    """`{"params": ..., "state": ...}` from their specs: parameters from the first half of
    `jax.random.split(key)`, state from the second."""
    kp, ks = jax.random.split(key)
    return {"params": draw_tree(params, kp), "state": draw_tree(state, ks)}


def init_variables(params: dict, state: dict, key) -> dict:
    """`draw_variables` as one jitted function: op by op, every initializer's random and scaling
    ops were compiled one by one (a LeNet-5's `init` took 2.4 s cold; jitted 1.85 s; jitted with
    backend.INIT_OPTIONS, the same values bit for bit, 0.5 s)."""
    return backend.jit_with(lambda key: draw_variables(params, state, key), backend.init_options())(key)


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
    loop = LowerCtx(run, g, env, inputs, params, state, train, rng, precision)
    for nid in order:
        if nid in env:
            continue
        node = g.node(nid)
        args = [env[i] for i in g.input_ids(nid)]
        opdef = OPS[node.op]
        if opdef.lowers_itself:  # a loop: runs its body (or part of this graph) through `run`
            env[nid] = opdef.lower(node, args, loop)
            continue
        ctx = ApplyCtx(train=train, out_shape=_concrete(node.type.shape, g, inputs)
                       if hasattr(node.type, "shape") else ())
        if node.path is not None:
            if opdef.has_params:
                ctx.params = leaves(params, node.path)
                ctx.state = leaves(state, node.path)
                for name, path in node.attrs.get("reads", ()):  # a fused node: another layer's leaves
                    ctx.params = {**ctx.params, name: leaves(params, path)}
                    ctx.state = {**ctx.state, name: leaves(state, path)}
            if opdef.needs_rng and rng is not None:
                ctx.rng = jax.random.fold_in(rng, stable_hash(node.path))
        if precision is not None:
            want = jnp.float32 if opdef.computes_in_f32 else precision
            args = [cast(a, want) for a in args]
            ctx.params = jax.tree_util.tree_map(lambda a, w=want: cast(a, w), ctx.params)
        env[nid] = opdef.apply(ctx, *args, **node.attrs)
        if ctx.new_state:
            for leaf, v in ctx.new_state.items():
                set_path(new_state, node.path + (leaf,), v)
    return env


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
