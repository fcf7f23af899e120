"""Layers with parameters or state: dense, embed, raw param, batchnorm, layernorm, dropout."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.graph import ParamSpec
from ..ir.types import TensorType, shape_str
from . import init as I
from .registry import Attr, OpDef, OpError, register


def _static_last(x: TensorType, what: str) -> int:
    if x.rank == 0:
        raise OpError(f"{what} expects at least one axis, found a scalar")
    d = x.shape[-1]
    if not isinstance(d, int):
        raise OpError(f"{what} needs a static feature size, found {shape_str(x.shape)}")
    return d


@register
class Dense(OpDef):
    """y = x @ kernel + bias over the last axis. kernel: [in, units] (Glorot uniform), bias: [units].
    `shard="model"` splits the kernel's output axis over that mesh axis (tensor parallelism);
    without a mesh it changes nothing."""

    name = "dense"
    attrs = (Attr("units", "int"), Attr("bias", "bool", True), Attr("shard", "str", None))

    def infer(self, x, units, bias, shard=None):
        if units <= 0:
            raise OpError(f"dense needs a positive number of units, got {units}")
        if x.rank == 0:
            raise OpError("dense expects [batch, features], found a scalar")
        return TensorType(x.shape[:-1] + (units,), x.dtype if x.is_float else "float32")

    def params(self, x, units, bias, shard=None):
        fan_in = x.shape[-1]
        p = {"kernel": ParamSpec((fan_in, units), I.glorot, init_name="glorot")}
        if bias:
            p["bias"] = ParamSpec((units,), I.zeros, init_name="zeros")
        return p

    def apply(self, ctx, x, units, bias, shard=None):
        kernel = ctx.params["kernel"]
        if shard:
            from ..lower.mesh import constrain
            kernel = constrain(kernel, (None, shard))
        y = x @ kernel
        return y + ctx.params["bias"] if bias else y

    def flops(self, out, x, units, bias, shard=None):
        n = out.size()
        return 2 * n * x.shape[-1] if n and isinstance(x.shape[-1], int) else 0


@register
class Embed(OpDef):
    """Token ids [..] -> vectors [.., dim]; table [vocab, dim] ~ normal(1)."""

    name = "embed"
    attrs = (Attr("vocab", "int"), Attr("dim", "int"))

    def infer(self, x, vocab, dim):
        if x.is_float:
            raise OpError(f"embed expects integer token ids, found {x}",
                          help="declare the input as i32[...]")
        return TensorType(x.shape + (dim,), "float32")

    def params(self, x, vocab, dim):
        return {"embedding": ParamSpec((vocab, dim), I.normal(1.0), init_name="normal(1)")}

    def apply(self, ctx, x, vocab, dim):
        return jnp.take(ctx.params["embedding"], x, axis=0)

    def flops(self, out, *xs, **kw):
        return 0


@register
class Param(OpDef):
    """A raw parameter (`param w: [2, 1] ~ normal(0.01)`); its path is the leaf itself."""

    name = "param"
    inputs = ()
    attrs = (Attr("shape", "shape"), Attr("init", "any"), Attr("init_name", "str", ""),
             Attr("dtype", "str", "float32"))
    kind = "internal"

    def infer(self, shape, init, init_name, dtype):
        return TensorType(tuple(shape), dtype)

    def params(self, shape, init, init_name, dtype):
        return {"": ParamSpec(tuple(shape), init, dtype, init_name)}

    def apply(self, ctx, shape, init, init_name, dtype):
        return ctx.params[""]

    def flops(self, out, *xs, **kw):
        return 0


def _reduce_axes(x):
    return tuple(range(x.ndim - 1))


@register
class BatchNorm(OpDef):
    """Normalizes over all but the last axis with batch statistics when training, running
    statistics (state `mean`, `var`) otherwise: running = momentum * running + (1 - momentum) * batch."""

    name = "batchnorm"
    keep_f32 = True
    attrs = (Attr("momentum", "float", 0.9), Attr("eps", "float", 1e-5), Attr("scale", "bool", True),
             Attr("center", "bool", True))

    def infer(self, x, **kw):
        _static_last(x, "batchnorm")
        return x

    def params(self, x, momentum, eps, scale, center):
        c = x.shape[-1]
        p = {}
        if scale:
            p["scale"] = ParamSpec((c,), I.ones, init_name="ones")
        if center:
            p["bias"] = ParamSpec((c,), I.zeros, init_name="zeros")
        return p

    def state(self, x, **kw):
        c = x.shape[-1]
        return {"mean": ParamSpec((c,), I.zeros, init_name="zeros"),
                "var": ParamSpec((c,), I.ones, init_name="ones")}

    def apply(self, ctx, x, momentum, eps, scale, center):
        if ctx.train:
            axes = _reduce_axes(x)
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - mean), axes)
            ctx.new_state["mean"] = momentum * ctx.state["mean"] + (1 - momentum) * mean
            ctx.new_state["var"] = momentum * ctx.state["var"] + (1 - momentum) * var
        else:
            mean, var = ctx.state["mean"], ctx.state["var"]
        y = (x - mean) * jax.lax.rsqrt(var + eps)
        if scale:
            y = y * ctx.params["scale"]
        if center:
            y = y + ctx.params["bias"]
        return y


def affine_params(c: int) -> dict:
    """The per-channel scale (ones) and bias (zeros) every normalization layer learns."""
    return {"scale": ParamSpec((c,), I.ones, init_name="ones"),
            "bias": ParamSpec((c,), I.zeros, init_name="zeros")}


@register
class LayerNorm(OpDef):
    """Normalizes each example over its last axis; learned scale and bias."""

    name = "layernorm"
    keep_f32 = True
    attrs = (Attr("eps", "float", 1e-5),)

    def infer(self, x, eps):
        _static_last(x, "layernorm")
        return x

    def params(self, x, eps):
        return affine_params(x.shape[-1])

    def apply(self, ctx, x, eps):
        mean = jnp.mean(x, -1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), -1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + eps) * ctx.params["scale"] + ctx.params["bias"]


@register
class Dropout(OpDef):
    """Zeroes a fraction `rate` of values when training (scaling the rest); identity otherwise."""

    name = "dropout"
    attrs = (Attr("rate", "float", 0.5),)
    needs_rng = True

    def infer(self, x, rate):
        if not 0 <= rate < 1:
            raise OpError(f"dropout rate must be in [0, 1), got {rate}")
        return x

    def apply(self, ctx, x, rate):
        if not ctx.train or rate == 0:
            return x
        keep = jax.random.bernoulli(ctx.key(), 1 - rate, x.shape)
        return jnp.where(keep, x / (1 - rate), 0).astype(x.dtype)
