"""The `generate` node as JAX: one `lax.scan` over the step body (greedy, sampled, continuous), or a
batched beam search whose hypotheses run the same body under `vmap`.

The body was elaborated for one [batch, ...] step, so a beam never reshapes it: the k hypotheses
are a leading axis the body is mapped over, and the parameters are shared by closure.
Randomness in a step (`sample`) draws from the caller's key folded with the step index, then with
the op's path as everywhere else; without a key, key 0 (decoding stays a pure function).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def run_generate(node, args, params, state, train, rng, run):
    body = node.attrs["body"]
    names = node.attrs["states"]
    steps = int(node.attrs["steps"])
    out_id = body.outputs["out"]
    state_ids = [body.outputs[n] for n in names]
    start, inits = args[0], tuple(args[1:1 + len(names)])
    key = rng if rng is not None else jax.random.key(0)

    def step(prev, carry, t):
        env = run(body, params, state, [prev, *carry], train=train, rng=jax.random.fold_in(key, t))
        return env[out_id], tuple(env[i] for i in state_ids)

    if node.attrs.get("prompt"):  # read all but the prompt's last element; continue from that one
        def read(carry, xt):
            return step(xt[0], carry, xt[1])[1], None
        prefix = jnp.swapaxes(start[:, :-1], 0, 1)
        inits, _ = jax.lax.scan(read, inits, (prefix, steps + jnp.arange(prefix.shape[0])))
        start = start[:, -1]
    if node.attrs["beam"]:
        return beam_search(step, start, inits, steps, node.attrs["beam"], node.attrs["until"],
                           node.attrs["length_penalty"])
    until = node.attrs["until"]

    def f(carry, t):
        prev, st, done = carry
        y, st2 = step(prev, st, t)
        if until is not None:  # after the end token, every step emits it again
            y = jnp.where(done, jnp.asarray(until, y.dtype), y)
            done = done | (y == until)
        return (y, st2, done), y

    done0 = jnp.zeros(start.shape[:1], bool)
    _, ys = jax.lax.scan(f, (start, inits, done0), jnp.arange(steps))
    return jnp.swapaxes(ys, 0, 1)


def length_norm(lengths, alpha: float):
    """GNMT's length penalty ((5 + |y|) / 6) ** alpha; scores are divided by it."""
    return ((5.0 + lengths) / 6.0) ** alpha


def beam_search(step, start, inits, steps: int, k: int, eos, alpha: float):
    """The k best-scoring continuations (sum of log-probabilities) kept at every step, per batch row;
    returns the best one's tokens [batch, steps]. A hypothesis that emitted `eos` keeps its score
    and emits `eos` again; finished and live ones are ranked together, by score / length_norm at
    the end."""
    batch = start.shape[0]
    rows = jnp.arange(batch)[None, :]

    def tile(a):
        return jnp.broadcast_to(a, (k,) + a.shape)

    vstep = jax.vmap(step, in_axes=(0, 0, None))
    scores = jnp.where(jnp.arange(k)[:, None] == 0, 0.0, -jnp.inf) * jnp.ones((k, batch))
    carry = (tile(start), tuple(tile(s) for s in inits), scores, jnp.zeros((k, batch), bool),
             jnp.zeros((k, batch), jnp.int32), jnp.zeros((k, batch, steps), start.dtype))

    def f(carry, t):
        prev, st, scores, done, lengths, seqs = carry
        logits, st2 = vstep(prev, st, t)  # [k, batch, vocab]
        logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
        vocab = logp.shape[-1]
        if eos is not None:
            frozen = jnp.where(jnp.arange(vocab) == eos, 0.0, -jnp.inf)
            logp = jnp.where(done[..., None], frozen, logp)
        cand = jnp.moveaxis(scores[..., None] + logp, 0, 1).reshape(batch, k * vocab)
        top, idx = jax.lax.top_k(cand, k)  # [batch, k]
        parent, tok = (idx // vocab).T, (idx % vocab).T.astype(start.dtype)  # [k, batch]

        def pick(a):
            return a[parent, rows]
        was_done = pick(done)
        seqs = pick(seqs).at[:, :, t].set(tok)
        lengths = pick(lengths) + (~was_done).astype(jnp.int32)
        done = was_done | (tok == eos) if eos is not None else was_done
        return (tok, tuple(pick(s) for s in st2), top.T, done, lengths, seqs), None

    (_, _, scores, _, lengths, seqs), _ = jax.lax.scan(f, carry, jnp.arange(steps))
    ranked = scores / length_norm(lengths, alpha) if alpha else scores
    best = jnp.argmax(ranked, 0)  # [batch]
    return seqs[best, jnp.arange(batch)]
