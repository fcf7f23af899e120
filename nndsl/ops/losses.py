"""Losses and metrics. Each reduces to a scalar: the mean over examples."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ..ir.types import TensorType, broadcast, dims_equal, shape_str
from .registry import Attr, OpDef, OpError, register


class Loss(OpDef):
    inputs = ("pred", "target")
    kind = "loss"
    const_inputs = ("target",)

    def infer(self, p, t, **kw):
        ok = t.rank == 0 or (p.rank == t.rank and broadcast(p.shape, t.shape) == p.shape) or (
            p.rank == t.rank + 1 and p.shape[-1] == 1
            and all(dims_equal(a, b) for a, b in zip(p.shape, t.shape)))
        if not ok:
            raise OpError(f"{self.name}: prediction {shape_str(p.shape)} and target "
                          f"{shape_str(t.shape)} do not match")
        return TensorType((), "float32")

    def apply(self, ctx, p, t, **kw):
        t = jnp.asarray(t)
        if p.ndim == t.ndim + 1 and t.ndim > 0:
            p = p[..., 0]  # [batch, 1] scores against [batch] targets
        return self.fn(p, t.astype(p.dtype) if jnp.issubdtype(t.dtype, jnp.floating) else t, **kw)


def _labels_match(logits: TensorType, labels: TensorType, what: str):
    if labels.rank == logits.rank - 1:
        for a, b in zip(logits.shape[:-1], labels.shape):
            if not dims_equal(a, b):
                break
        else:
            return "sparse"
    if labels.rank == logits.rank and all(dims_equal(a, b) for a, b in zip(logits.shape, labels.shape)):
        return "dense"
    raise OpError(f"{what}: logits {shape_str(logits.shape)} do not match labels {shape_str(labels.shape)}",
                  help=f"labels should be {shape_str(logits.shape[:-1])} class ids or "
                       f"{shape_str(logits.shape)} probabilities")


@register
class CrossEntropy(Loss):
    """Softmax cross-entropy from logits; integer class ids or per-class probabilities."""

    name = "cross_entropy"

    def infer(self, p, t):
        _labels_match(p, t, "cross_entropy")
        return TensorType((), "float32")

    def apply(self, ctx, logits, labels):
        if labels.ndim == logits.ndim - 1:
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels.astype(jnp.int32)))
        return jnp.mean(optax.softmax_cross_entropy(logits, labels))


@register
class MSE(Loss):
    """Mean squared error, mean((pred - target)^2); [batch, 1] predictions meet [batch] targets."""

    name = "mse"

    def fn(self, p, t):
        return jnp.mean(jnp.square(p - t))


@register
class MAE(Loss):
    """Mean absolute error, mean(|pred - target|)."""

    name = "mae"

    def fn(self, p, t):
        return jnp.mean(jnp.abs(p - t))


@register
class BCE(Loss):
    """Binary cross-entropy of probabilities in (0, 1), clipped away from 0 and 1."""

    name = "bce"
    attrs = (Attr("eps", "float", 1e-7),)

    def fn(self, p, t, eps):
        p = jnp.clip(p, eps, 1 - eps)
        return jnp.mean(-(t * jnp.log(p) + (1 - t) * jnp.log(1 - p)))


@register
class BCELogits(Loss):
    """Binary cross-entropy from logits, computed stably (log-sum-exp form)."""

    name = "bce_logits"

    def fn(self, z, t):
        t = jnp.broadcast_to(jnp.asarray(t, z.dtype), jnp.broadcast_shapes(z.shape, jnp.shape(t)))
        return jnp.mean(optax.sigmoid_binary_cross_entropy(jnp.broadcast_to(z, t.shape), t))


def _signed(t):
    """Targets in {-1, +1}; integer or boolean {0, 1} targets are mapped there."""
    if not jnp.issubdtype(t.dtype, jnp.floating):
        return 2.0 * t.astype(jnp.float32) - 1.0
    return t


@register
class Hinge(Loss):
    """mean(max(0, margin - t * y)) with t in {-1, +1} (integer 0/1 labels are mapped)."""

    name = "hinge"
    attrs = (Attr("margin", "float", 1.0),)

    def fn(self, y, t, margin):
        return jnp.mean(jax.nn.relu(margin - _signed(t) * y))


@register
class Perceptron(Loss):
    """Rosenblatt's perceptron criterion on scores s with 0/1 targets t:
    mean((step(s) - t) * s), step held constant. Its gradient is exactly the perceptron
    learning rule, w += lr * (t - step(s)) * x, and it is zero once every example is right."""

    name = "perceptron"

    def fn(self, s, t):
        y = jax.lax.stop_gradient((s > 0).astype(s.dtype))
        return jnp.mean((y - t) * s)


@register
class Accuracy(OpDef):
    """Fraction correct: argmax of [.., classes] scores against ids, or `pred > threshold` against
    0/1 targets of the same shape."""

    name = "accuracy"
    inputs = ("pred", "target")
    attrs = (Attr("threshold", "float", 0.5),)
    kind = "metric"

    def infer(self, p, t, threshold):
        if p.rank == t.rank + 1 and isinstance(p.shape[-1], int) and p.shape[-1] > 1:
            _labels_match(p, t, "accuracy")
        elif broadcast(p.shape, t.shape) is None:
            raise OpError(f"accuracy: predictions {shape_str(p.shape)} do not match targets "
                          f"{shape_str(t.shape)}")
        return TensorType((), "float32")

    def apply(self, ctx, p, t, threshold):
        if p.ndim == t.ndim + 1 and p.shape[-1] > 1:
            return jnp.mean(jnp.argmax(p, -1) == t)
        if p.ndim == t.ndim + 1:
            p = p[..., 0]
        return jnp.mean((p > threshold) == (t > 0.5))
