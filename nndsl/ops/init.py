"""Initializers, by the names a `.nn` file uses: zeros ones normal(std) uniform(a, b) glorot he."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .registry import Attr


def _fans(shape):
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def zeros(key, shape, dtype="float32"):
    return jnp.zeros(shape, dtype)


def ones(key, shape, dtype="float32"):
    return jnp.ones(shape, dtype)


def normal(std=1.0, mean=0.0):
    def init(key, shape, dtype="float32"):
        return mean + std * jax.random.normal(key, shape, dtype)
    return init


def uniform(a=-1.0, b=1.0):
    def init(key, shape, dtype="float32"):
        return jax.random.uniform(key, shape, dtype, a, b)
    return init


def constant(value):
    def init(key, shape, dtype="float32"):
        return jnp.full(shape, value, dtype)
    return init


def glorot(key, shape, dtype="float32"):
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def he(key, shape, dtype="float32"):
    fan_in, _ = _fans(shape)
    return math.sqrt(2.0 / fan_in) * jax.random.normal(key, shape, dtype)


def lecun(key, shape, dtype="float32"):
    fan_in, _ = _fans(shape)
    return math.sqrt(1.0 / fan_in) * jax.random.normal(key, shape, dtype)


# name -> (factory taking the call's static arguments) ; bare names are initializers themselves
FACTORIES = {"normal": normal, "uniform": uniform, "constant": constant}
ARGS = {"normal": (Attr("std", "float", 1.0, lo=0.0), Attr("mean", "float", 0.0)),
        "uniform": (Attr("a", "float", -1.0), Attr("b", "float", 1.0)),
        "constant": (Attr("value", "float"),)}
PLAIN = {"zeros": zeros, "ones": ones, "glorot": glorot, "he": he, "lecun": lecun,
         "glorot_uniform": glorot, "he_normal": he}
