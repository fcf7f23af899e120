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
        from ..ir.types import SymDim, is_free
        if isinstance(d, SymDim):
            return d  # a static argument checked by name (`layernorm` over `[batch, latent]`)
        if not is_free(d):  # a size the caller binds (`c` of `[batch, h, w, c]`): decided at use
            from ..values import NeedsConcrete
            raise NeedsConcrete(f"the feature size of {what} (`{d}`)")
        raise OpError(f"{what} needs a static feature size, found {shape_str(x.shape)}")
    return d


@register
class Dense(OpDef):
    """y = x @ kernel + bias over the last axis. kernel: [in, units] (Glorot uniform), bias: [units].
    `shard="model"` splits the kernel's output axis over that mesh axis (tensor parallelism);
    without a mesh it changes nothing."""

    name = "dense"
    attrs = (Attr("units", "int", lo=1), Attr("bias", "bool", True), Attr("shard", "str", None))

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
            from .mesh import constrain
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
    attrs = (Attr("vocab", "int", lo=1), Attr("dim", "int", lo=1))

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


def _trailing(x, axes, what: str) -> tuple:
    """The normalized axes, which must be the last ones (ONNX LayerNormalization's `axis` onward,
    PyTorch's normalized_shape) with static sizes: the learned scale has their shape."""
    if x.rank == 0:
        raise OpError(f"{what} expects at least one axis, found a scalar")
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if any(not -x.rank <= a < x.rank for a in axes):
        raise OpError(f"{what}: axes {list(axes)} are out of range for {shape_str(x.shape)}")
    norm = sorted(a % x.rank for a in axes)
    if not norm or norm != list(range(x.rank - len(norm), x.rank)):
        raise OpError(f"{what} normalizes the last axes, e.g. axes=[-2, -1]; got {list(axes)}")
    shape = tuple(x.shape[a] for a in norm)
    if not all(isinstance(d, int) for d in shape):
        raise OpError(f"{what} needs static sizes on its axes, found {shape_str(x.shape)}")
    return tuple(norm), shape


def _axes_of(ndim: int, axes) -> tuple:
    return tuple(a % ndim for a in ((axes,) if isinstance(axes, int) else axes))


@register
class LayerNorm(OpDef):
    """Normalizes each example over `axes` (the last by default; several trailing axes as ONNX
    LayerNormalization(axis=first) or PyTorch LayerNorm(normalized_shape)); learned scale and
    bias of those axes' shape."""

    name = "layernorm"
    keep_f32 = True
    attrs = (Attr("eps", "float", 1e-5, lo=0.0), Attr("axes", "ints", -1))

    def infer(self, x, eps, axes=-1):
        _trailing(x, axes, "layernorm")
        return x

    def params(self, x, eps, axes=-1):
        shape = _trailing(x, axes, "layernorm")[1]
        return {"scale": ParamSpec(shape, I.ones, init_name="ones"),
                "bias": ParamSpec(shape, I.zeros, init_name="zeros")}

    def apply(self, ctx, x, eps, axes=-1):
        axes = _axes_of(x.ndim, axes)
        mean = jnp.mean(x, axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axes, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + eps) * ctx.params["scale"] + ctx.params["bias"]


@register
class RMSNorm(OpDef):
    """x / sqrt(mean(x^2) + eps) * scale over `axes` (the last by default), no centering and no
    bias (Zhang & Sennrich, 2019; ONNX RMSNormalization, PyTorch RMSNorm with eps given)."""

    name = "rmsnorm"
    attrs = (Attr("eps", "float", 1e-5, lo=0.0), Attr("axes", "ints", -1))

    def infer(self, x, eps, axes):
        _trailing(x, axes, "rmsnorm")
        return x

    def params(self, x, eps, axes):
        return {"scale": ParamSpec(_trailing(x, axes, "rmsnorm")[1], I.ones, init_name="ones")}

    def apply(self, ctx, x, eps, axes):
        axes = _axes_of(x.ndim, axes)
        return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axes, keepdims=True) + eps) * ctx.params["scale"]


@register
class GroupNorm(OpDef):
    """Splits the channels (last axis) into `groups` and normalizes each example's group over
    its spatial positions and channels (Wu & He, 2018; PyTorch GroupNorm, ONNX
    GroupNormalization-21); learned per-channel scale and bias. groups=1 is layer normalization
    over all but the batch axis, groups=channels instance normalization."""

    name = "groupnorm"
    attrs = (Attr("groups", "int", lo=1), Attr("eps", "float", 1e-5, lo=0.0))

    def infer(self, x, groups, eps):
        c = _static_last(x, "groupnorm")
        if x.rank < 2:
            raise OpError(f"groupnorm expects [batch, ..., channels], found {shape_str(x.shape)}")
        if c % groups:
            raise OpError(f"groupnorm: {c} channels do not divide into {groups} groups")
        return x

    def params(self, x, groups, eps):
        return affine_params(x.shape[-1])

    def apply(self, ctx, x, groups, eps):
        g = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
        axes = (*range(1, x.ndim - 1), x.ndim)
        mean = jnp.mean(g, axes, keepdims=True)
        var = jnp.mean(jnp.square(g - mean), axes, keepdims=True)
        y = ((g - mean) * jax.lax.rsqrt(var + eps)).reshape(x.shape)
        return y * ctx.params["scale"] + ctx.params["bias"]


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
