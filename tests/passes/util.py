"""Shared by the pass tests: build a model at two optimization levels and compare them."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nndsl
from nndsl.api import _type_of
from nndsl.ir.printer import print_graph


def randomize(tree, key, scale=0.5):
    """Every leaf redrawn (biases and batchnorm statistics included), so no weight is trivially zero
    or one; variances stay positive."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    out = []
    for i, (path, leaf) in enumerate(leaves):
        k = jax.random.fold_in(key, i)
        name = str(path[-1])
        if "var" in name:
            out.append(jax.random.uniform(k, leaf.shape, minval=0.5, maxval=1.5))
        else:
            out.append(scale * jax.random.normal(k, leaf.shape, leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, [v for v in out])


def models(src: str, name: str, passes=None, level: int = 2, **args):
    """The same model at -O0 and optimized (`level`, or exactly `passes`)."""
    base = nndsl.loads(src, opt_level=0).model(name, **args)
    opt = nndsl.loads(src, opt_level=level, passes=passes).model(name, **args)
    return base, opt


def optimized_text(model, *xs, train=False) -> str:
    return print_graph(model.optimized_graph(tuple(_type_of(x) for x in xs), train))


def assert_same(base, opt, xs, *, train=False, grads=True, key=jax.random.key(0), rtol=2e-5, atol=2e-5):
    """Outputs (and new state), and gradients with respect to parameters and inputs, agree."""
    v = base.init(jax.random.key(1), *xs)
    v = {"params": randomize(v["params"], key), "state": randomize(v["state"], jax.random.fold_in(key, 9))}
    rng = jax.random.key(3)

    def run(m, v, *xs):
        return m.apply(v, *xs, train=train, rngs=rng) if train else m.apply(v, *xs)

    a, b = jax.jit(lambda v, *xs: run(base, v, *xs))(v, *xs), jax.jit(lambda v, *xs: run(opt, v, *xs))(v, *xs)
    jax.tree_util.tree_map(lambda p, q: np.testing.assert_allclose(p, q, rtol=rtol, atol=atol), a, b)
    if not grads:
        return
    outs = a[0] if train else a
    weights = jax.tree_util.tree_map(lambda o: jax.random.normal(jax.random.key(4), jnp.shape(o)), outs)

    def loss(m):
        def f(params, *xs):
            out = run(m, {"params": params, "state": v["state"]}, *xs)
            out = out[0] if train else out
            return sum(jnp.sum(o * w) for o, w in zip(jax.tree_util.tree_leaves(out),
                                                       jax.tree_util.tree_leaves(weights)))
        return f

    floats = [i for i, x in enumerate(xs) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)]
    argnums = (0, *[i + 1 for i in floats])
    ga = jax.jit(jax.grad(loss(base), argnums=argnums))(v["params"], *xs)
    gb = jax.jit(jax.grad(loss(opt), argnums=argnums))(v["params"], *xs)
    jax.tree_util.tree_map(lambda p, q: np.testing.assert_allclose(p, q, rtol=10 * rtol, atol=10 * atol), ga, gb)
