"""Ops of generation: the autoregressive loop itself and the choice of a token from logits.

A decoder that feeds itself is one `generate` node whose body is one step (feed the previous
emitted value, step the cell, emit); its lowering runs it as one `lax.scan` (greedy, sampled,
continuous) or as a batched beam search whose hypotheses run the same body under `vmap`.

The body was elaborated for one [batch, ...] step, so a beam never reshapes it: the k hypotheses
are a leading axis the body is mapped over, and the parameters are shared by closure.
Randomness in a step (`sample`) draws from the caller's key folded with the step index, then with
the op's path as everywhere else; without a key, key 0 (decoding stays a pure function).
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
    body_attrs = ("body",)

    def infer(self, *xs, body, states, steps, until, beam, length_penalty, out_type, prompt=False):
        return out_type

    def lower(self, node, args, ctx):
        body = node.attrs["body"]
        names = node.attrs["states"]
        steps = int(node.attrs["steps"])
        out_id = body.outputs["out"]
        state_ids = [body.outputs[n] for n in names]
        start, inits = args[0], tuple(args[1:1 + len(names)])
        key = ctx.rng if ctx.rng is not None else jax.random.key(0)

        def step(prev, carry, t):
            env = ctx.run_body(body, [prev, *carry], rng=jax.random.fold_in(key, t), precision=None)
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
        return _greedy(step, start, inits, steps, node.attrs["until"])

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


def _greedy(step, start, inits, steps: int, until):
    """One token (or value) per step, each fed to the next; after `until`, every step emits it again."""
    def f(carry, t):
        prev, st, done = carry
        y, st2 = step(prev, st, t)
        if until is not None:
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
