"""Sequence ops the recurrent topologies need beyond `last`: the last *valid* step of padded data."""
from __future__ import annotations

import jax.numpy as jnp

from ..ir.types import dims_equal, shape_str
from .registry import OpDef, OpError, register


@register
class LastMasked(OpDef):
    """`seq -> last(lengths=n)`: step n[b] - 1 of each sequence b (many-to-one over padded data)."""

    name = "last_masked"
    inputs = ("x", "lengths")
    kind = "internal"

    def infer(self, x, lengths):
        if x.rank < 3:
            raise OpError(f"last expects [batch, time, features], found {shape_str(x.shape)}")
        if lengths.rank != 1 or not dims_equal(lengths.shape[0], x.shape[0]) or lengths.is_float:
            raise OpError(f"last: lengths must be integers of shape [{x.shape[0]}], found {lengths}")
        return x.with_shape(x.shape[:1] + x.shape[2:])

    def apply(self, ctx, x, lengths):
        idx = jnp.clip(lengths.astype(jnp.int32) - 1, 0, x.shape[1] - 1)
        return jnp.take_along_axis(x, idx.reshape((-1,) + (1,) * (x.ndim - 1)), axis=1)[:, 0]

    def flops(self, out, *xs, **kw):
        return 0
