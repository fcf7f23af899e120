"""Shared by the pass tests: build a model at two optimization levels and compare them."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import nndsl
from nndsl.api import _type_of
from nndsl.ir.printer import print_graph


def random_variables(model, xs, seed: int = 0) -> dict:
    """Variables of `model` with every leaf drawn at random with numpy (biases and batchnorm
    statistics included, so no weight is trivially zero or one; variances stay positive)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *xs))
    rng = np.random.default_rng(seed)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    out = []
    for path, leaf in leaves:
        if "var" in str(path[-1]):
            out.append(rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype))
        else:
            out.append((0.5 * rng.standard_normal(leaf.shape)).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


def models(src: str, name: str, passes=None, level: int = 2, **args):
    """The same model at -O0 and optimized (`level`, or exactly `passes`)."""
    base = nndsl.loads(src, opt_level=0).model(name, **args)
    opt = nndsl.loads(src, opt_level=level, passes=passes).model(name, **args)
    return base, opt


def optimized_text(model, *xs, train=False) -> str:
    return print_graph(model.optimized_graph(tuple(_type_of(x) for x in xs), train))


def assert_same(base, opt, xs, *, train=False, grads=True, rtol=2e-5, atol=2e-5):
    """Outputs (and new state), and gradients with respect to parameters and inputs, agree."""
    v = random_variables(base, xs)
    rng = jax.random.key(3)

    def run(m, v, *xs):
        return m.apply(v, *xs, train=train, rngs=rng) if train else m.apply(v, *xs)

    a, b = jax.jit(lambda v, *xs: run(base, v, *xs))(v, *xs), jax.jit(lambda v, *xs: run(opt, v, *xs))(v, *xs)
    jax.tree_util.tree_map(lambda p, q: np.testing.assert_allclose(p, q, rtol=rtol, atol=atol), a, b)
    if not grads:
        return
    outs = a[0] if train else a
    rs = np.random.default_rng(4)
    weights = jax.tree_util.tree_map(lambda o: rs.standard_normal(jnp.shape(o)).astype(np.float32), outs)

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


def canonical(text: str) -> str:
    """A dump with node ids renumbered by first appearance and parameter lines dropped, so a
    golden text does not change when the builder numbers nodes differently."""
    import re
    names: dict = {}

    def rename(m):
        return names.setdefault(m.group(0), f"%{len(names)}")
    lines = [ln for ln in text.splitlines() if not ln.startswith(("param ", "state "))]
    return re.sub(r"%\d+", rename, "\n".join(lines))


def dump(model, *xs, train=False) -> str:
    return canonical(optimized_text(model, *xs, train=train))


def ops(text: str) -> list[str]:
    """The op of every node line in a dump, in order."""
    import re
    return re.findall(r"= ([a-z_0-9]+)", text)
