"""Initial values are drawn by one compiled function with cheaper compiler options
(backend.INIT_OPTIONS): the values must be bit for bit those each initializer's formula gives,
written here from jax.random and the published fan rules and compiled by a plain jax.jit (XLA
fuses `uniform`'s scale and shift into one multiply-add, which op by op rounds twice)."""
import math

import jax
import jax.numpy as jnp
import numpy as np

import nndsl
from nndsl.ir.graph import stable_hash
from nndsl.lower import backend, interpret

SRC = """
model Inits {
  input x: [batch, 8, 8, 3]
  param a: [3, 4] ~ ones
  param z: [4] ~ zeros
  param u: [5, 7] ~ uniform(2, 3)
  param n: [300, 4] ~ normal(0.01, 1.5)
  param c: [2, 2] ~ constant(0.25)
  param g: [9, 11] ~ glorot
  param h: [3, 3, 3, 6] ~ he
  param l: [40, 6] ~ lecun
  s = sum(a) + sum(z) + sum(u) + sum(n) + sum(c) + sum(g) + sum(h) + sum(l)
  output y = mean(conv2d(x, filters=6, kernel=3), axis=[1, 2]) + s
}
"""


def fans(shape):
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def expected(key, path, shape):
    """Each parameter from its own fold of the parameters' key, by the formula of its initializer."""
    k = jax.random.fold_in(key, stable_hash(path))
    if path in ("a", "z"):
        return np.full(shape, 1.0 if path == "a" else 0.0, np.float32)
    if path == "u":
        return jax.random.uniform(k, shape, jnp.float32, 2.0, 3.0)
    if path == "n":
        return 1.5 + 0.01 * jax.random.normal(k, shape, jnp.float32)
    if path == "c":
        return np.full(shape, 0.25, np.float32)
    if path == "g":
        limit = math.sqrt(6.0 / sum(fans(shape)))
        return jax.random.uniform(k, shape, jnp.float32, -limit, limit)
    scale = math.sqrt((2.0 if path == "h" else 1.0) / fans(shape)[0])
    return scale * jax.random.normal(k, shape, jnp.float32)


def flat(tree, prefix=""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from flat(v, f"{prefix}{k}.")
        else:
            yield prefix + k, v


def test_init_values_are_each_initializers_formula_bit_for_bit():
    net = nndsl.loads(SRC).model("Inits")
    x = np.zeros((2, 8, 8, 3), np.float32)
    key = jax.random.key(7)
    got = dict(flat(net.init(key, x)["params"]))
    kp, _ = jax.random.split(key)
    checked = 0
    for path, value in got.items():
        if "." in path:  # the convolution's own kernel and bias
            continue
        want = jax.jit(expected, static_argnums=(1, 2))(kp, path, value.shape)
        np.testing.assert_array_equal(np.asarray(value), np.asarray(want), err_msg=path)
        checked += 1
    assert checked == 8 and len(got) == 10


def test_init_options_change_only_compile_time():
    """The same draws compiled with and without backend.init_options are equal bit for bit."""
    net = nndsl.loads(SRC).model("Inits")
    x = np.zeros((2, 8, 8, 3), np.float32)
    graph = net._graph_for((x,))
    key = jax.random.key(3)

    def draw(key):
        return interpret.draw_variables(graph.params, graph.state, key)
    plain = jax.jit(draw)(key)
    fast = backend.jit_with(draw, backend.init_options())(key)
    for a, b in zip(jax.tree_util.tree_leaves(plain), jax.tree_util.tree_leaves(fast), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
