"""Random draws (`z ~ normal([batch, 16])`): fresh every training iteration, keyed by name."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.types import TensorType
from .registry import Attr, OpDef, register


class Draw(OpDef):
    inputs = ()
    kind = "random"
    needs_rng = True

    def infer(self, shape, **kw):
        return TensorType(tuple(shape), self.dtype(**kw))

    def dtype(self, **kw):
        return "float32"

    def flops(self, out, *xs, **kw):
        return 0


@register
class Normal(Draw):
    """mean + std * N(0, 1) of the given shape."""

    name = "normal"
    attrs = (Attr("shape", "shape"), Attr("mean", "float", 0.0), Attr("std", "float", 1.0))

    def apply(self, ctx, shape, mean, std):
        return mean + std * jax.random.normal(ctx.key(), ctx.out_shape)


@register
class Uniform(Draw):
    """Uniform in [low, high) of the given shape."""

    name = "uniform"
    attrs = (Attr("shape", "shape"), Attr("low", "float", 0.0), Attr("high", "float", 1.0))

    def apply(self, ctx, shape, low, high):
        return jax.random.uniform(ctx.key(), ctx.out_shape, minval=low, maxval=high)


@register
class Bernoulli(Draw):
    """1.0 with probability p, else 0.0 (float32), of the given shape."""

    name = "bernoulli"
    attrs = (Attr("shape", "shape"), Attr("p", "float", 0.5))

    def apply(self, ctx, shape, p):
        return jax.random.bernoulli(ctx.key(), p, ctx.out_shape).astype(jnp.float32)


@register
class Categorical(Draw):
    """Uniform class ids in [0, classes): the labels a conditional generator is asked for."""

    name = "categorical"
    attrs = (Attr("shape", "shape"), Attr("classes", "int", 10, lo=1))

    def dtype(self, **kw):
        return "int32"

    def apply(self, ctx, shape, classes):
        return jax.random.randint(ctx.key(), ctx.out_shape, 0, classes)
