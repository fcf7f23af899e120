"""The machinery behind the op tables: build a one-model program, make inputs, compare.

A `Case` is one row: a model body in `.nn`, the concrete inputs it is applied to, and a reference
`ref(xp, params, *inputs)` written with numpy/jax.numpy only (see refs.py). Parameters are
re-drawn at random after `init` (biases included, which start at zero), so the reference sees
every weight the model uses.
"""
from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

import nndsl
from nndsl.ir.types import TensorType


@dataclass(frozen=True)
class In:
    """A concrete input: its shape and what its values are."""

    shape: tuple
    kind: str = "normal"  # normal | wide | pos | prob | simplex | sign | bits | int
    high: int = 2  # for kind "int": values in [0, high)


def F(*shape):
    return In(shape)


def Wide(*shape):  # normal * 4: reaches relu6's and hard_tanh's upper kinks
    return In(shape, "wide")


def Pos(*shape):  # in [0.5, 2]: log, sqrt, division, powers
    return In(shape, "pos")


def Prob(*shape):  # in [0.05, 0.95]
    return In(shape, "prob")


def Simplex(*shape):  # rows sum to one: probability labels
    return In(shape, "simplex")


def Sign(*shape):  # -1.0 or +1.0
    return In(shape, "sign")


def Bits(*shape):  # 0.0 or 1.0
    return In(shape, "bits")


def Int(*shape, high):  # int32 ids in [0, high)
    return In(shape, "int", high)


@dataclass(frozen=True)
class Case:
    id: str
    ops: tuple  # the ops this row tests (checked to occur in its graph)
    body: str  # the model's body; the model is `model M { body }`
    inputs: tuple  # In, one per `input` in declaration order
    ref: Callable  # ref(xp, params, *inputs) -> array, or dict by output name
    grad: bool = True  # False for integer-valued or piecewise-constant outputs only
    rtol: float = 1e-4
    atol: float = 1e-5
    marks: tuple = field(default=(), compare=False)


def seed_of(text: str) -> int:
    return zlib.crc32(text.encode())


def make_input(spec: In, rng: np.random.Generator) -> np.ndarray:
    s = spec.shape
    if spec.kind == "int":
        return rng.integers(0, spec.high, s).astype(np.int32)
    x = {
        "normal": lambda: rng.normal(size=s),
        "wide": lambda: 4 * rng.normal(size=s),
        "pos": lambda: rng.uniform(0.5, 2.0, s),
        "prob": lambda: rng.uniform(0.05, 0.95, s),
        "sign": lambda: rng.choice([-1.0, 1.0], s),
        "bits": lambda: rng.choice([0.0, 1.0], s),
        "simplex": lambda: _simplex(rng.normal(size=s)),
    }[spec.kind]()
    return np.asarray(x, np.float32)


def _simplex(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_inputs(case: Case) -> list[np.ndarray]:
    rng = np.random.default_rng(seed_of(case.id))
    return [make_input(s, rng) for s in case.inputs]


@functools.lru_cache(maxsize=None)
def model_of(body: str, name: str = "M") -> nndsl.Model:
    return nndsl.loads(f"model {name} {{\n{body}\n}}").model(name)


def concrete_graph(net: nndsl.Model, xs):
    return net.graph(tuple(TensorType(tuple(x.shape), str(x.dtype)) for x in xs))


def randomize(variables: dict, seed: int) -> dict:
    """Every leaf re-drawn: params ~ normal(0.5); state `var` in [0.5, 1.5], other state normal.
    Takes arrays or the ShapeDtypeStructs of `jax.eval_shape(net.init, ...)`."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.zeros(leaf.shape, leaf.dtype) if isinstance(leaf, jax.ShapeDtypeStruct) else leaf
        if path[-1].key == "var":
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), leaf.dtype)
        return jnp.asarray(0.5 * rng.normal(size=leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, variables)


@functools.lru_cache(maxsize=None)
def setup(case: Case):
    """(model, inputs, variables) for a row. `init` runs abstractly (its structure is what the
    row needs: the values are re-drawn), which keeps the table fast."""
    net = model_of(case.body)
    xs = make_inputs(case)
    shapes = jax.eval_shape(net.init, jax.random.key(0), *xs)
    return net, xs, randomize(shapes, seed_of(case.id) + 1)


def f64(tree):
    """numpy float64 copies, for the plain-numpy forward reference; integers stay integers."""
    def conv(a):
        a = np.asarray(a)
        return a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a
    return jax.tree.map(conv, tree)


def assert_close(actual, expected, rtol: float, atol: float, what: str = ""):
    la, ta = jax.tree.flatten(actual)
    le, te = jax.tree.flatten(expected)
    assert ta == te, f"{what}: structure {ta} != reference {te}"
    for a, e in zip(la, le):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"{what}: shape {a.shape} != reference {e.shape}"
        np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol,
                                   err_msg=what)


def cotangents(outputs, seed: int):
    """A fixed random weight per output element: sum(y * r) exercises every output's gradient."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda y: jnp.asarray(rng.normal(size=y.shape), jnp.float32), outputs)


def is_float(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)
