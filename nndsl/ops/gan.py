"""Layers and losses of the GAN literature: instance normalization, spectral normalization (as
`dense_sn` / `conv2d_sn`), SAGAN self-attention, AdaIN style modulation, StyleGAN noise inputs,
class-conditional batchnorm, and the hinge, Wasserstein, minimax and least-squares game losses.

`spectral_norm(dense(64))` is spelled `dense_sn(64)`, and `spectral_norm(conv2d(...))` is
`conv2d_sn(...)`: a wrapped layer would need a special form in the builder, while an op with the
normalized kernel inside is one OpDef like any other.
"""
from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp

from ..ir.graph import ParamSpec
from ..ir.types import TensorType, dims_equal, shape_str
from . import init as I
from .conv import Conv2D
from .nn import Dense, _static_last, affine_params
from .registry import Attr, OpDef, OpError, register


def _spatial_axes(x) -> tuple:
    return tuple(range(1, x.ndim - 1))


def _check_spatial(x: TensorType, what: str) -> int:
    if x.rank < 3:
        raise OpError(f"{what} expects [batch, ..., channels] with spatial axes, found {shape_str(x.shape)}")
    return _static_last(x, what)


def _instance_normalize(x, eps):
    axes = _spatial_axes(x)
    mean = jnp.mean(x, axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axes, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def _per_example(v, x):
    """[batch, c] -> [batch, 1, ..., 1, c], to broadcast against x."""
    return v.reshape(v.shape[0], *([1] * (x.ndim - 2)), v.shape[-1])


@register
class InstanceNorm(OpDef):
    """Normalizes each example and channel over its spatial axes; learned scale and bias.

    Instance normalization (Ulyanov et al., 2016) of [batch, ..., channels]:
    y = (x - mean) / sqrt(var + eps) * scale + bias, mean and (biased) var over axes 1..-2;
    scale [c] starts at ones, bias [c] at zeros. No running statistics: training and evaluation
    compute the same thing."""

    name = "instance_norm"
    keep_f32 = True
    attrs = (Attr("eps", "float", 1e-5),)

    def infer(self, x, eps):
        _check_spatial(x, "instance_norm")
        return x

    def params(self, x, eps):
        return affine_params(x.shape[-1])

    def apply(self, ctx, x, eps):
        return _instance_normalize(x, eps) * ctx.params["scale"] + ctx.params["bias"]


# ---------------------------------------------------------------------- spectral normalization
def spectral_normalize(ctx, kernel, iterations: int, eps: float):
    """kernel / sigma, where sigma estimates the largest singular value of the kernel seen as a
    matrix M: [fan_in, out]. With u (state, [out]) of unit norm, sigma = |M u|; when training, u
    first takes `iterations` power-iteration steps, u <- normalize(M^T normalize(M u)), and the new
    u is kept in state. u is a constant to the gradient (Miyato et al., 2018)."""
    m = kernel.reshape(-1, kernel.shape[-1])
    u = jax.lax.stop_gradient(ctx.state["u"])
    u = u / (jnp.linalg.norm(u) + eps)
    if ctx.train:
        mc = jax.lax.stop_gradient(m)
        for _ in range(iterations):
            v = mc @ u
            v = v / (jnp.linalg.norm(v) + eps)
            u = mc.T @ v
            u = u / (jnp.linalg.norm(u) + eps)
        ctx.new_state["u"] = u
    sigma = jnp.linalg.norm(m @ u)
    return kernel / (sigma + eps)


SN_ATTRS = (Attr("iterations", "int", 1, lo=1), Attr("eps", "float", 1e-12))


class SpectralNorm(OpDef):
    """Mixin over a layer with a `kernel`: the same arguments plus `iterations` and `eps`, and the
    kernel divided by its spectral norm before the layer's own lowering runs."""

    def infer(self, x, iterations, eps, **kw):
        if iterations < 1:
            raise OpError(f"{self.name}: iterations must be at least 1, got {iterations}")
        return super().infer(x, **kw)

    def params(self, x, iterations, eps, **kw):
        return super().params(x, **kw)

    def state(self, x, iterations, eps, **kw):
        out = kw["units"] if "units" in kw else kw["filters"]
        return {"u": ParamSpec((out,), I.normal(1.0), init_name="normal(1)")}

    def apply(self, ctx, x, iterations, eps, **kw):
        w = spectral_normalize(ctx, ctx.params["kernel"], iterations, eps)
        return super().apply(replace(ctx, params={**ctx.params, "kernel": w}), x, **kw)

    def flops(self, out, x, iterations=1, eps=0.0, **kw):
        return super().flops(out, x, **kw)


@register
class DenseSN(SpectralNorm, Dense):
    """`spectral_norm(dense(units))`: dense with its kernel divided by its largest singular value.

    y = x @ (kernel / sigma) + bias, sigma estimated by power iteration on kernel [in, units]
    with u [units] kept in state; u advances `iterations` steps per application only when
    training (see `spectral_normalize`). In evaluation the stored u gives sigma = |kernel @ u|."""

    name = "dense_sn"
    attrs = Dense.attrs + SN_ATTRS


@register
class Conv2DSN(SpectralNorm, Conv2D):
    """`spectral_norm(conv2d(...))`: conv2d with its kernel divided by its largest singular value.

    Same arguments as conv2d. The kernel [kh, kw, in / groups, filters], seen as a
    [kh * kw * in / groups, filters] matrix, is divided by its spectral norm, estimated by power
    iteration with u [filters] in state, advanced only when training (see `spectral_normalize`)."""

    name = "conv2d_sn"
    attrs = Conv2D.attrs + SN_ATTRS


# ---------------------------------------------------------------------- attention, style, noise
@register
class SelfAttention(OpDef):
    """SAGAN self-attention over the h*w positions of [batch, h, w, c]: y = x + gamma * attn.

    Zhang et al., 2018: q = x Wq + bq, k = x Wk + bk ([c, c // reduction], at least 1 wide), v = x Wv + bv ([c, c]),
    all 1x1 convolutions; a = softmax over key positions of q k^T, [batch, h*w, h*w];
    y = x + gamma * (a v). gamma is a learned scalar that starts at 0, so the layer starts as the
    identity and learns how much attention to mix in."""

    name = "self_attention"
    attrs = (Attr("reduction", "int", 8, lo=1),)

    def infer(self, x, reduction):
        if x.rank != 4:
            raise OpError(f"self_attention expects [batch, h, w, channels], found {shape_str(x.shape)}")
        _static_last(x, "self_attention")
        if reduction < 1:
            raise OpError(f"self_attention: reduction must be at least 1, got {reduction}")
        return x

    def params(self, x, reduction):
        c = x.shape[-1]
        d = max(1, c // reduction)
        p = {}
        for name, width in (("query", d), ("key", d), ("value", c)):
            p[f"{name}_kernel"] = ParamSpec((c, width), I.glorot, init_name="glorot")
            p[f"{name}_bias"] = ParamSpec((width,), I.zeros, init_name="zeros")
        p["gamma"] = ParamSpec((), I.zeros, init_name="zeros")
        return p

    def apply(self, ctx, x, reduction):
        p = ctx.params
        b, h, w, c = x.shape
        flat = x.reshape(b, h * w, c)
        q, k, v = (flat @ p[f"{n}_kernel"] + p[f"{n}_bias"] for n in ("query", "key", "value"))
        attn = jax.nn.softmax(jnp.einsum("bid,bjd->bij", q, k), axis=-1)
        out = jnp.einsum("bij,bjc->bic", attn, v).reshape(x.shape)
        return x + p["gamma"] * out

    def flops(self, out, x, reduction):
        n = x.size()
        c = x.shape[-1]
        if not n or not isinstance(c, int):
            return 0
        hw = x.shape[1] * x.shape[2]
        d = max(1, c // reduction)
        return 2 * n * (2 * d + c) + 2 * n // c * hw * (d + c)


@register
class AdaIN(OpDef):
    """`adain(x, style)`: instance-normalized x, scaled and shifted per channel by the style.

    Adaptive instance normalization (Huang & Belongie, 2017; StyleGAN's style modulation):
    adain(x, style) = instance_norm(x) * (style @ scale_kernel + scale_bias)
                      + (style @ shift_kernel + shift_bias),
    x: [batch, ..., c], style: [batch, s]; the per-example, per-channel scale and shift are dense
    projections of the style (kernels [s, c], Glorot; scale_bias starts at ones, shift_bias at
    zeros, so an untrained layer is plain instance normalization). An x with a batch of 1 is
    broadcast to the style's batch: StyleGAN's learned constant input, `adain(start, w)` with
    `param start: [1, 4, 4, c]`."""

    name = "adain"
    inputs = ("x", "style")
    attrs = (Attr("eps", "float", 1e-5),)

    def infer(self, x, style, eps):
        _check_spatial(x, "adain")
        broadcast = x.shape[0] == 1
        if style.rank != 2 or not (broadcast or dims_equal(style.shape[0], x.shape[0])):
            raise OpError(f"adain: style must be [batch, features] with the batch of x {shape_str(x.shape)}, "
                          f"found {shape_str(style.shape)}")
        _static_last(style, "adain style")
        return x.with_shape((style.shape[0], *x.shape[1:])) if broadcast else x

    def params(self, x, style, eps):
        c, s = x.shape[-1], style.shape[-1]
        return {"scale_kernel": ParamSpec((s, c), I.glorot, init_name="glorot"),
                "scale_bias": ParamSpec((c,), I.ones, init_name="ones"),
                "shift_kernel": ParamSpec((s, c), I.glorot, init_name="glorot"),
                "shift_bias": ParamSpec((c,), I.zeros, init_name="zeros")}

    def apply(self, ctx, x, style, eps):
        p = ctx.params
        scale = style @ p["scale_kernel"] + p["scale_bias"]
        shift = style @ p["shift_kernel"] + p["shift_bias"]
        return _instance_normalize(x, eps) * _per_example(scale, x) + _per_example(shift, x)


@register
class NoiseInjection(OpDef):
    """StyleGAN's noise inputs: per-pixel Gaussian noise times a learned per-channel scale.

    y = x + scale * n, with n ~ N(0, 1) one value per example and
    pixel ([batch, ..., 1], shared by the channels) and scale [c] learned per channel (starts at
    zeros). When training, n is drawn fresh from the rng (required). When not training, n is drawn
    from the rng if `rngs` is given (a fixed key gives fixed noise), and is zero otherwise, so
    `apply(variables, z)` is deterministic."""

    name = "noise_injection"
    needs_rng = True

    def infer(self, x):
        _check_spatial(x, "noise_injection")
        return x

    def params(self, x):
        return {"scale": ParamSpec((x.shape[-1],), I.zeros, init_name="zeros")}

    def apply(self, ctx, x):
        if not ctx.train and ctx.rng is None:
            return x
        noise = jax.random.normal(ctx.key(), (*x.shape[:-1], 1), x.dtype)
        return x + ctx.params["scale"] * noise


@register
class ConditionalBatchNorm(OpDef):
    """Batchnorm whose scale and bias are looked up by class id: `conditional_batchnorm(x, labels)`.

    Class-conditional batchnorm (de Vries et al., 2017; BigGAN): batchnorm without its own
    affine part, then scale[labels] and bias[labels] from per-class tables [classes, c] (ones and
    zeros): y = (x - mean) / sqrt(var + eps) * scale[label] + bias[label]. x: [batch, ..., c],
    labels: integer [batch]. Statistics as `batchnorm`: batch statistics when training (running
    mean/var in state, running = momentum * running + (1 - momentum) * batch), running ones otherwise."""

    name = "conditional_batchnorm"
    keep_f32 = True
    inputs = ("x", "labels")
    attrs = (Attr("classes", "int", lo=1), Attr("momentum", "float", 0.9), Attr("eps", "float", 1e-5))

    def infer(self, x, labels, classes, momentum, eps):
        _static_last(x, "conditional_batchnorm")
        if x.rank < 2:
            raise OpError(f"conditional_batchnorm expects [batch, ..., channels], found {shape_str(x.shape)}")
        if labels.is_float or labels.rank != 1 or not dims_equal(labels.shape[0], x.shape[0]):
            raise OpError(f"conditional_batchnorm: labels must be integer class ids [batch] for x "
                          f"{shape_str(x.shape)}, found {labels}", help="declare them as i32[batch]")
        if classes < 1:
            raise OpError(f"conditional_batchnorm needs at least one class, got {classes}")
        return x

    def params(self, x, labels, classes, **kw):
        c = x.shape[-1]
        return {"scale": ParamSpec((classes, c), I.ones, init_name="ones"),
                "bias": ParamSpec((classes, c), I.zeros, init_name="zeros")}

    def state(self, x, labels, **kw):
        c = x.shape[-1]
        return {"mean": ParamSpec((c,), I.zeros, init_name="zeros"),
                "var": ParamSpec((c,), I.ones, init_name="ones")}

    def apply(self, ctx, x, labels, classes, momentum, eps):
        if ctx.train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - mean), axes)
            ctx.new_state["mean"] = momentum * ctx.state["mean"] + (1 - momentum) * mean
            ctx.new_state["var"] = momentum * ctx.state["var"] + (1 - momentum) * var
        else:
            mean, var = ctx.state["mean"], ctx.state["var"]
        labels = labels.astype(jnp.int32)
        scale = jnp.take(ctx.params["scale"], labels, axis=0)
        bias = jnp.take(ctx.params["bias"], labels, axis=0)
        return (x - mean) * jax.lax.rsqrt(var + eps) * _per_example(scale, x) + _per_example(bias, x)


# ---------------------------------------------------------------------- game losses
class GameLoss(OpDef):
    """A loss over discriminator scores (logits, [batch] or [batch, 1]); a scalar."""

    kind = "loss"

    def infer(self, *scores):
        for s in scores:
            if not s.is_float:
                raise OpError(f"{self.name} expects float scores, found {s}")
        return TensorType((), "float32")


class TwoSided(GameLoss):
    inputs = ("real", "fake")


class OneSided(GameLoss):
    inputs = ("fake",)


@register
class HingeD(TwoSided):
    """The discriminator's hinge loss, mean(relu(1 - real)) + mean(relu(1 + fake)).

    Lim & Ye, 2017; used by SAGAN and BigGAN. real, fake: D's scores."""

    name = "hinge_d"

    def apply(self, ctx, real, fake):
        return jnp.mean(jax.nn.relu(1 - real)) + jnp.mean(jax.nn.relu(1 + fake))


@register
class HingeG(OneSided):
    """The generator's hinge loss: -mean(fake)."""

    name = "hinge_g"

    def apply(self, ctx, fake):
        return -jnp.mean(fake)


@register
class WassersteinD(TwoSided):
    """The critic's Wasserstein loss, mean(fake) - mean(real) (Arjovsky et al., 2017)."""

    name = "wasserstein_d"

    def apply(self, ctx, real, fake):
        return jnp.mean(fake) - jnp.mean(real)


@register
class WassersteinG(OneSided):
    """The generator's Wasserstein loss: -mean(fake)."""

    name = "wasserstein_g"

    def apply(self, ctx, fake):
        return -jnp.mean(fake)


@register
class MinimaxG(OneSided):
    """The generator's minimax loss from logits, mean(log(1 - sigmoid(fake))), computed stably.

    The original game (Goodfellow et al., 2014): it equals -mean(softplus(fake)). It saturates when D
    rejects the samples; `bce_logits(fake, 1)` is the non-saturating alternative."""

    name = "minimax_g"

    def apply(self, ctx, fake):
        return -jnp.mean(jax.nn.softplus(fake))


@register
class LSGanD(TwoSided):
    """The least-squares discriminator loss, 0.5 * mean((real - 1)^2) + 0.5 * mean(fake^2).

    LSGAN (Mao et al., 2017)."""

    name = "lsgan_d"

    def apply(self, ctx, real, fake):
        return 0.5 * jnp.mean(jnp.square(real - 1)) + 0.5 * jnp.mean(jnp.square(fake))


@register
class LSGanG(OneSided):
    """The least-squares generator loss: 0.5 * mean((fake - 1)^2)."""

    name = "lsgan_g"

    def apply(self, ctx, fake):
        return 0.5 * jnp.mean(jnp.square(fake - 1))
