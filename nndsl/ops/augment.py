"""Data augmentation as ops, written in the train block on `data.x`:

    x = data.x -> random_crop(32, padding=4) -> random_flip -> normalize([0.49, 0.48, 0.45], [0.25, 0.24, 0.26])

They run inside the jitted step on the device, keyed by the step's random key (folded with the
iteration and the node), so an epoch is reproducible from the seed and a resumed run draws the same
crops. Random when training; when evaluating the identity, or the deterministic center crop or
resize that keeps shapes equal. Images are [batch, height, width, channels] with pixels in [0, 1].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.types import TensorType
from .registry import Attr, OpDef, OpError, register


def _image(x: TensorType, op: str) -> tuple:
    if x.rank != 4:
        raise OpError(f"{op} needs images [batch, height, width, channels], got {x}")
    if not x.is_float:
        raise OpError(f"{op} needs float pixels, got {x}")
    return x.shape


def _pair(v, name: str, op: str) -> tuple:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(d, int) and d >= 1 for d in v)):
        raise OpError(f"{op}: `{name}` must be a positive size or [height, width], got {v}")
    return tuple(v)


def _keys(ctx, n):
    return jax.random.split(ctx.key(), n)


def _center(x, sh, sw):
    h, w = x.shape[1], x.shape[2]
    top, left = (h - sh) // 2, (w - sw) // 2
    return x[:, top:top + sh, left:left + sw, :]


@register
class RandomCrop(OpDef):
    """A random size x size window of the image padded with `padding` zeros on each side (the
    CIFAR recipe: pad 4, crop 32); evaluating, the center window of the unpadded image."""

    name = "random_crop"
    attrs = (Attr("size", "ints"), Attr("padding", "int", 0))
    needs_rng = True

    def infer(self, x, size, padding):
        b, h, w, c = _image(x, self.name)
        sh, sw = _pair(size, "size", self.name)
        if padding < 0:
            raise OpError(f"random_crop padding must be at least 0, got {padding}")
        if isinstance(h, int) and isinstance(w, int) and (sh > h or sw > w):
            raise OpError(f"random_crop of {sh}x{sw} from {h}x{w} images: the crop must fit the image")
        return TensorType((b, sh, sw, c), x.dtype)

    def apply(self, ctx, x, size, padding):
        sh, sw = _pair(size, "size", self.name)
        if not ctx.train:
            return _center(x, sh, sw)
        p = padding
        xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x
        n, h, w, c = xp.shape
        ky, kx = jax.random.split(ctx.key())
        top = jax.random.randint(ky, (n,), 0, h - sh + 1)
        left = jax.random.randint(kx, (n,), 0, w - sw + 1)
        return jax.vmap(lambda im, t, lft: jax.lax.dynamic_slice(im, (t, lft, 0), (sh, sw, c)))(xp, top, left)


@register
class RandomFlip(OpDef):
    """Mirrors each image with probability 1/2: left-right (`horizontal`), upside down
    (`vertical`), each drawn independently; evaluating, the identity."""

    name = "random_flip"
    attrs = (Attr("horizontal", "bool", True), Attr("vertical", "bool", False))
    needs_rng = True

    def infer(self, x, horizontal, vertical):
        _image(x, self.name)
        return x

    def apply(self, ctx, x, horizontal, vertical):
        if not ctx.train:
            return x
        kh, kv = jax.random.split(ctx.key())
        n = x.shape[0]
        if horizontal:
            x = jnp.where(jax.random.bernoulli(kh, 0.5, (n, 1, 1, 1)), x[:, :, ::-1, :], x)
        if vertical:
            x = jnp.where(jax.random.bernoulli(kv, 0.5, (n, 1, 1, 1)), x[:, ::-1, :, :], x)
        return x


@register
class RandomResizedCrop(OpDef):
    """A random box covering a `scale` fraction of the image with aspect ratio in `ratio`
    (log-uniform), resized to size x size (bilinear); the ImageNet recipe. Evaluating, the whole
    image resized to size x size."""

    name = "random_resized_crop"
    attrs = (Attr("size", "ints"), Attr("scale", "any", (0.08, 1.0)), Attr("ratio", "any", (0.75, 4 / 3)))
    needs_rng = True

    def _range(self, v, name, lo_min):
        if not (isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(a, (int, float))
                                                                      and not isinstance(a, bool) for a in v)):
            raise OpError(f"random_resized_crop: `{name}` must be [low, high], got {v}")
        lo, hi = float(v[0]), float(v[1])
        if not lo_min < lo <= hi:
            raise OpError(f"random_resized_crop: `{name}` needs {lo_min} < low <= high, got [{lo}, {hi}]")
        return lo, hi

    def infer(self, x, size, scale, ratio):
        b, _, _, c = _image(x, self.name)
        sh, sw = _pair(size, "size", self.name)
        s = self._range(scale, "scale", 0)
        if s[1] > 1:
            raise OpError(f"random_resized_crop: `scale` is a fraction of the image, at most 1, got {s[1]}")
        self._range(ratio, "ratio", 0)
        return TensorType((b, sh, sw, c), x.dtype)

    def apply(self, ctx, x, size, scale, ratio):
        sh, sw = _pair(size, "size", self.name)
        n, h, w, c = x.shape
        if not ctx.train:
            return jax.image.resize(x, (n, sh, sw, c), "linear").astype(x.dtype)
        ka, kr, ky, kx = jax.random.split(ctx.key(), 4)
        area = jax.random.uniform(ka, (n,), minval=scale[0], maxval=scale[1]) * h * w
        logr = jax.random.uniform(kr, (n,), minval=jnp.log(ratio[0]), maxval=jnp.log(ratio[1]))
        r = jnp.exp(logr)
        cw = jnp.clip(jnp.sqrt(area * r), 1.0, w)
        ch = jnp.clip(jnp.sqrt(area / r), 1.0, h)
        top = jax.random.uniform(ky, (n,)) * (h - ch)
        left = jax.random.uniform(kx, (n,)) * (w - cw)

        def one(im, t, lft, bh, bw):
            sy, sx = sh / bh, sw / bw
            return jax.image.scale_and_translate(im, (sh, sw, c), (0, 1), jnp.stack([sy, sx]),
                                                 jnp.stack([-t * sy, -lft * sx]), "linear", antialias=False)
        return jax.vmap(one)(x, top, left, ch, cw).astype(x.dtype)


@register
class Jitter(OpDef):
    """Brightness and contrast jitter: pixels times a factor drawn in [1-b, 1+b], then moved away
    from or toward each image's mean by a factor in [1-c, 1+c], clipped to [0, 1] (torchvision's
    ColorJitter for these two); evaluating, the identity."""

    name = "jitter"
    attrs = (Attr("brightness", "float", 0.2), Attr("contrast", "float", 0.2))
    needs_rng = True

    def infer(self, x, brightness, contrast):
        _image(x, self.name)
        for k, v in (("brightness", brightness), ("contrast", contrast)):
            if not 0 <= v <= 1:
                raise OpError(f"jitter {k} must be in [0, 1], got {v}")
        return x

    def apply(self, ctx, x, brightness, contrast):
        if not ctx.train:
            return x
        n = x.shape[0]
        kb, kc = jax.random.split(ctx.key())
        b = jax.random.uniform(kb, (n, 1, 1, 1), minval=1 - brightness, maxval=1 + brightness)
        y = jnp.clip(x * b, 0, 1)
        f = jax.random.uniform(kc, (n, 1, 1, 1), minval=1 - contrast, maxval=1 + contrast)
        m = jnp.mean(y, axis=(1, 2, 3), keepdims=True)
        return jnp.clip((y - m) * f + m, 0, 1).astype(x.dtype)


@register
class Normalize(OpDef):
    """(x - mean) / std per channel (the last axis), in training and evaluation alike; mean and
    std are numbers or one number per channel."""

    name = "normalize"
    attrs = (Attr("mean", "any"), Attr("std", "any"))

    def _vec(self, v, name, channels):
        vals = list(v) if isinstance(v, (list, tuple)) else [v]
        if not vals or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in vals):
            raise OpError(f"normalize: `{name}` must be a number or a list of numbers, got {v}")
        if len(vals) != 1 and isinstance(channels, int) and len(vals) != channels:
            raise OpError(f"normalize: {len(vals)} values of `{name}` for {channels} channels")
        return vals

    def infer(self, x, mean, std):
        if x.rank < 1 or not x.is_float:
            raise OpError(f"normalize needs a float tensor, got {x}")
        self._vec(mean, "mean", x.shape[-1])
        if any(s <= 0 for s in self._vec(std, "std", x.shape[-1])):
            raise OpError("normalize: every `std` must be positive")
        return x

    def apply(self, ctx, x, mean, std):
        m = jnp.asarray(mean if isinstance(mean, (list, tuple)) else [mean], x.dtype)
        s = jnp.asarray(std if isinstance(std, (list, tuple)) else [std], x.dtype)
        return (x - m) / s
