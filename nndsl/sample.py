"""Text generation from a trained character model: one-to-many, each sampled character fed back.

The model is any instance mapping i32[batch, time] to logits [batch, time, vocab]. Generation
runs inside one jitted `fori_loop` over a fixed-length buffer; a causal model's output at step t
depends only on the prefix, so the unwritten tail of the buffer never matters.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .errors import NndslError


def generate(model, variables, vocab: str, prompt: str, length: int, temperature: float = 1.0,
             seed: int = 0) -> str:
    unknown = sorted({c for c in prompt if c not in vocab})
    if unknown:
        raise NndslError(f"the prompt uses characters the model never saw: {''.join(unknown)!r}", code="E606")
    if not prompt:
        prompt = vocab[0] if "\n" not in vocab else "\n"
    ids = [vocab.index(c) for c in prompt]
    total = len(ids) + length
    buf = jnp.zeros((1, total), jnp.int32).at[0, :len(ids)].set(jnp.array(ids, jnp.int32))

    @jax.jit
    def run(buf, key):
        def body(t, carry):
            buf, key = carry
            key, sub = jax.random.split(key)
            logits = model.apply(variables, buf)[0, t]
            if temperature <= 0:
                nxt = jnp.argmax(logits)
            else:
                nxt = jax.random.categorical(sub, logits / temperature)
            return buf.at[0, t + 1].set(nxt.astype(jnp.int32)), key
        return jax.lax.fori_loop(len(ids) - 1, total - 1, body, (buf, key))[0]

    out = run(buf, jax.random.key(seed))
    return "".join(vocab[i] for i in out[0].tolist())
