"""Helpers the interpreter and the ops that lower themselves (loops) share."""
from __future__ import annotations

import jax.numpy as jnp


def get_path(tree, path: tuple):
    for k in path:
        tree = tree[k]
    return tree


def leaves(tree, path):
    """The leaves under `path` (a leaf at `path` itself under the name ""); none if absent."""
    try:
        p = get_path(tree, path)
    except (KeyError, TypeError):
        return {}
    return p if isinstance(p, dict) else {"": p}


def cast(x, dtype):
    """Floating arrays to `dtype`; integers (labels, token ids) and non-arrays as they are."""
    dt = getattr(x, "dtype", None)
    if dt is None or dt == dtype or not jnp.issubdtype(dt, jnp.floating):
        return x
    return x.astype(dtype)
