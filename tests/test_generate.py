"""Generation inside the language: `unroll` of a bound cell with feedback, checked token for token
against decoders written by hand in JAX with the same weights."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl
from nndsl.ir.graph import stable_hash

V, H, D, T = 5, 8, 4, 4

PROGRAM = """
import cells

model S2S(vocab: int = 5, hidden: int = 8) {
  input src: i32[batch, time]
  input prev: i32[batch, time]
  emb = embed(vocab, 4)
  proj = dense(vocab)
  enc = src -> emb -> RNN(hidden)
  dec = RNN(hidden, h0=enc.h)
  output logits = prev -> emb -> dec -> proj
  go = full(src, 0)
  output greedy = go -> unroll(dec, steps=time, emit=proj -> argmax, feed=emb)
  output stopped = go -> unroll(dec, steps=time, emit=proj -> argmax, feed=emb, until=2)
  output sampled = go -> unroll(dec, steps=time, emit=proj -> sample(temperature=0.7, top_k=3), feed=emb)
  output nucleus = go -> unroll(dec, steps=time, emit=proj -> sample(top_p=0.6), feed=emb)
  output beam1 = go -> unroll(dec, steps=time, emit=proj, feed=emb, beam=1)
  output beam = go -> unroll(dec, steps=time, emit=proj, feed=emb, beam=BEAM)
}
"""


def _program(beam=V ** (T - 1)):
    return nndsl.loads(PROGRAM.replace("BEAM", str(beam)))


@pytest.fixture(scope="module")
def setup():
    prog = _program()
    m = prog.model("S2S")
    rs = np.random.RandomState(0)
    src = jnp.asarray(rs.randint(1, V, (6, T)), jnp.int32)
    v = m.init(jax.random.key(1), src, src)
    v = jax.tree_util.tree_map(lambda a: a * 3.0, v)  # sharper distributions: no near-ties in beam tests
    return prog, m, v, src


def _rnn(p, h, x):
    return jnp.tanh(jnp.concatenate([h, x], -1) @ p["dense_0"]["kernel"] + p["dense_0"]["bias"])


def _encode(P, src):
    E = P["emb"]["embedding"]
    h = jnp.zeros((src.shape[0], H))
    for t in range(src.shape[1]):
        h = _rnn(P["RNN_0"], h, E[src[:, t]])
    return h


def _logits(P, h, tok):
    h = _rnn(P["dec"], h, P["emb"]["embedding"][tok])
    return h, h @ P["proj"]["kernel"] + P["proj"]["bias"]


def _decode(P, src, choose):
    h, tok, out = _encode(P, src), jnp.zeros(src.shape[0], jnp.int32), []
    for t in range(src.shape[1]):
        h, logits = _logits(P, h, tok)
        tok = choose(t, logits)
        out.append(tok)
    return np.stack(out, 1)


def test_greedy_matches_a_hand_written_decoder(setup):
    prog, _m, v, src = setup
    out = prog.model("S2S.greedy").apply(v, src)
    ref = _decode(v["params"], src, lambda t, lg: jnp.argmax(lg, -1).astype(jnp.int32))
    np.testing.assert_array_equal(out, ref)
    assert out.dtype == jnp.int32 and out.shape == (6, T)


def test_teacher_forced_and_free_running_decoder_share_weights(setup):
    """Fed its own greedy tokens, the teacher-forced output agrees with the generated tokens."""
    prog, _m, v, src = setup
    greedy = prog.model("S2S.greedy").apply(v, src)
    prev = jnp.concatenate([jnp.zeros((6, 1), jnp.int32), greedy[:, :-1]], 1)
    np.testing.assert_array_equal(np.argmax(prog.model("S2S.logits").apply(v, src, prev), -1), greedy)


def test_until_repeats_the_end_token(setup):
    prog, _m, v, src = setup
    out = np.asarray(prog.model("S2S.stopped").apply(v, src))
    ref = _decode(v["params"], src, lambda t, lg: jnp.argmax(lg, -1).astype(jnp.int32))
    for row, r in zip(out, ref):
        hits = np.flatnonzero(r == 2)
        end = hits[0] if len(hits) else T
        np.testing.assert_array_equal(row[:end + 1], r[:end + 1])
        assert (row[end:] == 2).all()


def _sample_ref(key, path, temperature=1.0, top_k=0, top_p=1.0):
    """Key per step: the caller's key folded with the step, then with the op's path."""
    def choose(t, logits):
        k = jax.random.fold_in(jax.random.fold_in(key, t), stable_hash(path))
        lg = np.asarray(logits, np.float64) / temperature
        if top_k:
            kth = np.sort(lg, -1)[:, -top_k][:, None]
            lg = np.where(lg < kth, -np.inf, lg)
        if top_p < 1:
            keep = np.zeros(lg.shape, bool)
            for i, row in enumerate(lg):
                order = np.argsort(-row)
                p = np.exp(row[order] - row[order][0])
                p /= p.sum()
                before = np.cumsum(p) - p
                keep[i, order[before < top_p]] = True
            lg = np.where(keep, lg, -np.inf)
        return jax.random.categorical(k, jnp.asarray(lg, jnp.float32), -1).astype(jnp.int32)
    return choose


def test_sampling_matches_a_hand_written_sampler(setup):
    prog, m, v, src = setup
    key = jax.random.key(42)
    sampled, nucleus = prog.model("S2S.sampled"), prog.model("S2S.nucleus")
    out = {"sampled": sampled.apply(v, src, rngs=key), "nucleus": nucleus.apply(v, src, rngs=key)}
    paths = {n.path for gen in m.graph().nodes() if gen.op == "generate"
             for n in gen.attrs["body"].nodes() if n.op == "sample"}
    assert paths == {("sample_0",), ("sample_1",)}  # fresh layers, named in source order
    ref = _decode(v["params"], src, _sample_ref(key, ("sample_0",), 0.7, top_k=3))
    np.testing.assert_array_equal(out["sampled"], ref)
    ref = _decode(v["params"], src, _sample_ref(key, ("sample_1",), top_p=0.6))
    np.testing.assert_array_equal(out["nucleus"], ref)
    np.testing.assert_array_equal(sampled.apply(v, src, rngs=key), out["sampled"])
    assert not np.array_equal(sampled.apply(v, src, rngs=jax.random.key(7)), out["sampled"])



def _score(P, src, seqs):
    """Sum of log-probabilities of each candidate sequence under teacher forcing."""
    h = _encode(P, src)
    h = jnp.repeat(h[:, None], seqs.shape[0], 1).reshape(-1, H)  # [batch * n, H]
    seq = jnp.tile(seqs, (src.shape[0], 1))
    tok, total = jnp.zeros(seq.shape[0], jnp.int32), 0.0
    for t in range(seqs.shape[1]):
        h, logits = _logits(P, h, tok)
        total = total + jnp.take_along_axis(jax.nn.log_softmax(logits), seq[:, t:t + 1], 1)[:, 0]
        tok = seq[:, t]
    return total.reshape(src.shape[0], seqs.shape[0])


def test_beam_search_with_a_wide_beam_is_exhaustive_search(setup):
    """With k = V^(T-1) nothing is ever pruned: the result is the best of all V^T sequences."""
    prog, _m, v, src = setup
    everything = jnp.asarray(list(itertools.product(range(V), repeat=T)), jnp.int32)
    best = everything[jnp.argmax(_score(v["params"], src, everything), 1)]
    np.testing.assert_array_equal(prog.model("S2S.beam").apply(v, src), best)
    greedy = prog.model("S2S.greedy").apply(v, src)
    assert not np.array_equal(greedy, best), "pick weights where greedy is not already optimal"


def test_beam_of_one_is_greedy(setup):
    prog, _m, v, src = setup
    np.testing.assert_array_equal(prog.model("S2S.beam1").apply(v, src), prog.model("S2S.greedy").apply(v, src))


def _beam_ref(P, src, k, steps, eos=None, alpha=0.0):
    """Beam search written plainly, one batch row and one hypothesis at a time."""
    results = []
    for b in range(src.shape[0]):
        h0 = _encode(P, src[b:b + 1])
        beams = [(0.0, [], h0, False)]
        for t in range(steps):
            cands = []
            for score, seq, h, done in beams:
                if done:
                    cands.append((score, seq + [eos], h, True))
                    continue
                h2, logits = _logits(P, h, jnp.asarray([seq[-1] if seq else 0], jnp.int32))
                logp = np.asarray(jax.nn.log_softmax(logits)[0])
                for tok in range(len(logp)):
                    cands.append((score + logp[tok], seq + [tok], h2, eos is not None and tok == eos))
            cands.sort(key=lambda c: -c[0])
            beams = cands[:k]

        def rank(c):
            n = c[1].index(eos) + 1 if eos is not None and eos in c[1] else steps
            return c[0] / (((5 + n) / 6) ** alpha) if alpha else c[0]
        results.append(max(beams, key=rank)[1])
    return np.asarray(results)


@pytest.mark.parametrize("k,eos,alpha", [(2, None, 0.0), (3, 1, 0.0), (3, 1, 1.0)])
def test_beam_search_matches_a_plain_reference(setup, k, eos, alpha):
    _, _, v, src = setup
    extra = f", until={eos}" if eos is not None else ""
    extra += f", length_penalty={alpha}" if alpha else ""
    prog = nndsl.loads(PROGRAM.replace("beam=BEAM", f"beam={k}{extra}"))
    out = prog.model("S2S.beam").apply(v, src)
    np.testing.assert_array_equal(out, _beam_ref(v["params"], src, k, T, eos, alpha))


def test_continuous_feedback_matches_a_hand_written_loop():
    prog = nndsl.loads("""
import cells
model Free(steps: int = 5) {
  input x0: [batch, 3]
  cell = GRU(3)
  output ys = x0 -> unroll(cell, steps=steps)
  output scaled = x0 -> unroll(cell, steps=steps, feed=tanh)
}
""")
    m = prog.model("Free")
    x0 = jnp.asarray(np.random.RandomState(1).randn(2, 3), jnp.float32)
    v = m.init(jax.random.key(0), x0)
    P = v["params"]["cell"]

    def gru(h, x):
        hx = jnp.concatenate([h, x], -1)
        d = lambda i, a: a @ P[f"dense_{i}"]["kernel"] + P[f"dense_{i}"]["bias"]
        z, r = jax.nn.sigmoid(d(0, hx)), jax.nn.sigmoid(d(1, hx))
        n = jnp.tanh(d(2, jnp.concatenate([r * h, x], -1)))
        return (1 - z) * n + z * h
    out = m.apply(v, x0)
    for name, feed in (("ys", lambda y: y), ("scaled", jnp.tanh)):
        h, y, ys = jnp.zeros((2, 3)), x0, []
        for _ in range(5):
            h = gru(h, feed(y))
            y = h
            ys.append(y)
        np.testing.assert_allclose(out[name], jnp.stack(ys, 1), rtol=1e-5, atol=1e-6)


def _error(text):
    with pytest.raises(nndsl.NndslError) as e:
        nndsl.loads(text, "gen.nn").model("M")
    return str(e.value)


BASE = """import cells
model M {
  input src: i32[batch, 6]
  emb = embed(7, 4)
  proj = dense(7)
  dec = LSTM(8)
  h = src -> emb -> dec
  output y = full(src, 0) -> unroll(dec, steps=5, EXTRA)
}
"""


@pytest.mark.parametrize("extra,code,where,words", [
    ("emit=proj -> argmax", "E370", "unroll(dec", "reads floats"),
    ("emit=proj -> argmax, feed=dense(3) -> argmax", "E370", "feed=dense(3)", "reads floats"),
    ("emit=proj -> argmax, feed=emb -> sum(axis=1)", "E370", "feed=emb -> sum", "rank 2"),
    ("emit=proj, feed=emb", "E371", "emit=proj", "starts from i32[batch] but emits f32[batch, 7]"),
    ("emit=proj -> argmax, feed=emb, until=2.5", "E339", "until=2.5", "until"),
    ("emit=proj -> argmax, feed=emb, beam=2", "E372", "emit=proj -> argmax", "logits"),
    ("emit=proj -> argmax, feed=emb, length_penalty=0.6", "E339", "length_penalty=0.6", "beam"),
    ("emit=proj -> argmax, feed=emb, stride=2", "E323", "stride=2", "no argument"),
])
def test_feedback_mistakes_are_located(extra, code, where, words):
    text = _error(BASE.replace("EXTRA", extra))
    assert f"error[{code}]" in text and words in text, text
    assert "gen.nn:8:" in text and "Traceback" not in text, text
    source, carets = text.splitlines()[1:3]
    assert source[carets.index("^"):].startswith(where), text


def test_unroll_of_a_bound_layer_that_is_not_a_cell():
    text = _error(BASE.replace("EXTRA", "emit=proj -> argmax, feed=emb").replace("unroll(dec", "unroll(proj"))
    assert "error[E337]" in text and "unroll runs a cell" in text and "gen.nn:8:" in text, text


def test_entry_point_reads_only_its_inputs(setup):
    prog, m, v, src = setup
    e = prog.model("S2S.greedy")
    assert e.input_names == ["src"]
    np.testing.assert_array_equal(e.apply(v, src), m.apply(v, src, src)["greedy"])  # the whole model, once
    assert set(e.init(jax.random.key(0), src)["params"]) == set(v["params"])  # the same instance's weights
    with pytest.raises(nndsl.NndslError, match="E670"):
        prog.model("S2S.greedyy")


def test_a_prompt_is_read_then_continued():
    """`chars -> unroll(...)` with chars [batch, time]: the greedy continuation equals appending the
    teacher-forced argmax one character at a time."""
    prog = nndsl.loads("""
import cells
model C(vocab: int = 7, hidden: int = 8, length: int = 4) {
  input chars: i32[batch, time]
  emb = embed(vocab, 4)
  rnn = LSTM(hidden)
  proj = dense(vocab)
  output logits = chars -> emb -> rnn -> proj
  output text = chars -> unroll(rnn, steps=length, emit=proj -> argmax, feed=emb)
}
""")
    x = jnp.asarray(np.random.RandomState(2).randint(0, 7, (3, 6)), jnp.int32)
    v = prog.model("C").init(jax.random.key(0), x)
    v = jax.tree_util.tree_map(lambda a: a * 3.0, v)
    seq = x
    for _ in range(4):
        lg = prog.model("C.logits").apply(v, seq)
        seq = jnp.concatenate([seq, jnp.argmax(lg[:, -1], -1)[:, None].astype(jnp.int32)], 1)
    np.testing.assert_array_equal(prog.model("C.text").apply(v, x), seq[:, 6:])
    np.testing.assert_array_equal(prog.model("C.text").apply(v, x[:, :1]),
                                  prog.model("C.text").apply(v, x[:, :1]))
