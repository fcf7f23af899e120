"""Text generation from a trained character model: one-to-many, each sampled character fed back.

The model is any instance mapping i32[batch, time] to logits [batch, time, vocab]. Generation
runs inside one jitted `fori_loop` over a fixed-length buffer; a causal model's output at step t
depends only on the prefix, so the unwritten tail of the buffer never matters.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .errors import NndslError


MAX_LENGTH = 100_000  # characters per call: each step re-reads the whole buffer, so time grows as length**2


def generate(model, variables, vocab: str, prompt: str, length: int, temperature: float = 1.0,
             seed: int = 0) -> str:
    from .errors import LimitError
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
        raise LimitError(f"the sample length must be from 1 to {MAX_LENGTH:,} characters, got "
                         f"{length if isinstance(length, int) else type(length).__name__}", code="E412",
                         help="generate a long text in several calls, each prompted with the end of the last")
    if len(prompt) > MAX_LENGTH:
        raise LimitError(f"the prompt is {len(prompt):,} characters; at most {MAX_LENGTH:,}", code="E412")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise LimitError(f"the seed must be an integer from 0 to {2**32 - 1:,}", code="E412")
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
