"""Ops of generation: the autoregressive loop itself and the choice of a token from logits.

A decoder that feeds itself is one `generate` node whose body is one step (feed the previous
emitted value, step the cell, emit); nndsl/lower/generate.py runs it as one `lax.scan` (greedy,
sampled, continuous) or as a batched beam search over the same body.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.types import TensorType
from .registry import Attr, OpDef, OpError, register


@register
class Generate(OpDef):
    """`start -> unroll(dec, steps=n, emit=..., feed=...)`; attrs["body"] is one step."""

    name = "generate"
    inputs = ("*xs",)
    attrs = (Attr("body", "any"), Attr("states", "any"), Attr("steps", "any"), Attr("until", "any", None),
             Attr("beam", "int", 0), Attr("length_penalty", "float", 0.0), Attr("out_type", "any"),
             Attr("prompt", "bool", False))
    kind = "internal"

    def infer(self, *xs, body, states, steps, until, beam, length_penalty, out_type, prompt=False):
        return out_type

    def body_inputs(self, *types, prompt=False, **attrs):
        """A prompt ([batch, time, ...]) is read one step ([batch, ...]) at a time."""
        if prompt and types:
            first = types[0]
            return [first.with_shape(first.shape[:1] + first.shape[2:]), *types[1:]]
        return list(types)

    def flops(self, out, *xs, body, steps, beam, **kw):
        from .cost import graph_flops
        return graph_flops(body) * (steps if isinstance(steps, int) else 1) * max(beam, 1)


def choose(logits, key, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
    """One token per row: argmax at temperature 0, else a draw from softmax(logits / temperature)
    restricted to the k likeliest tokens and then to the smallest set holding probability top_p."""
    logits = logits.astype(jnp.float32)
    if temperature <= 0:
        return jnp.argmax(logits, -1).astype(jnp.int32)
    logits = logits / temperature
    neg = jnp.finfo(jnp.float32).min
    if top_k and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, neg, logits)
    if top_p < 1.0:
        order = jnp.argsort(-logits, axis=-1)
        sorted_logits = jnp.take_along_axis(logits, order, -1)
        probs = jax.nn.softmax(sorted_logits, -1)
        before = jnp.cumsum(probs, -1) - probs  # mass of the likelier tokens
        keep_sorted = before < top_p  # the likeliest token is always kept
        keep = jnp.zeros_like(keep_sorted).at[
            tuple(jnp.indices(order.shape)[:-1]) + (order,)].set(keep_sorted)
        logits = jnp.where(keep, logits, neg)
    return jax.random.categorical(key, logits, -1).astype(jnp.int32)


@register
class Sample(OpDef):
    """`logits -> sample(temperature=0.8, top_k=40, top_p=0.95)`: a token id per row, drawn."""

    name = "sample"
    attrs = (Attr("temperature", "float", 1.0), Attr("top_k", "int", 0), Attr("top_p", "float", 1.0))
    kind = "function"
    needs_rng = True

    def infer(self, x, temperature, top_k, top_p):
        if x.rank < 1 or not x.is_float:
            raise OpError(f"sample draws from logits [..., vocab] (floats), found {x}")
        if temperature < 0:
            raise OpError(f"sample: temperature must be at least 0, found {temperature}")
        if top_k < 0:
            raise OpError(f"sample: top_k must be at least 0 (0 keeps every token), found {top_k}")
        if not 0 < top_p <= 1:
            raise OpError(f"sample: top_p must be in (0, 1], found {top_p}")
        return TensorType(x.shape[:-1], "int32")

    def apply(self, ctx, x, temperature, top_k, top_p):
        key = ctx.rng if ctx.rng is not None else jax.random.key(0)
        return choose(x, key, temperature, top_k, top_p)

    def flops(self, out, *xs, **kw):
        return 0


@register
class Full(OpDef):
    """`full(src, 0)`: one value per example of `src` (i32[batch] for an integer, such as the start
    token of a decoder); `shape=[d]` gives each example [d] of it. Integers give i32, numbers f32."""

    name = "full"
    attrs = (Attr("value", "any", 0), Attr("shape", "shape", ()), Attr("dtype", "str", "auto"))
    kind = "function"

    def infer(self, x, value, shape, dtype):
        if x.rank < 1:
            raise OpError(f"full takes its batch size from a tensor with a batch axis, found {x}")
        if dtype not in ("auto", "i32", "f32"):
            raise OpError(f"full: dtype is \"i32\" or \"f32\", found {dtype!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OpError(f"full: the value must be a number, found {value!r}")
        is_int = dtype == "i32" or (dtype == "auto" and isinstance(value, int))
        return TensorType(x.shape[:1] + tuple(shape), "int32" if is_int else "float32")

    def apply(self, ctx, x, value, shape, dtype):
        t = self.infer(TensorType(x.shape, str(x.dtype)), value, shape, dtype)
        return jnp.full(x.shape[:1] + tuple(ctx.out_shape[1:]), value, jnp.dtype(t.dtype))

    def flops(self, out, *xs, **kw):
        return 0
