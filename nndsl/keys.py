"""A random key given from outside (to `Model.init`, to a training step), checked before use."""
from __future__ import annotations

import jax

from .errors import TypeCheckError


def checked_key(key):
    """`key`, once `jax.random.split` would take it, or an NndslError saying what a key is (jax
    would raise its own TypeError from deep inside `split`). Checked abstractly: splitting for
    real, outside the jitted function that uses the halves, compiled a program of its own (0.17 s
    of a cold `init`)."""
    try:
        jax.eval_shape(jax.random.split, key)
    except (TypeError, ValueError):
        raise TypeCheckError(f"init needs a random key such as jax.random.key(0), found {type(key).__name__}",
                             code="E310") from None
    return key
