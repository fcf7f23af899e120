"""A random key given from outside (to `Model.init`, to a training step), checked before use."""
from __future__ import annotations

import jax

from .errors import TypeCheckError


def split_key(key):
    """Two keys from the caller's `key`, or an NndslError saying what a key is (jax would raise
    its own TypeError from deep inside `split`)."""
    try:
        return jax.random.split(key)
    except (TypeError, ValueError):
        raise TypeCheckError(f"init needs a random key such as jax.random.key(0), found {type(key).__name__}",
                             code="E310") from None
