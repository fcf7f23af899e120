"""Recurrent conventions of issue 16: `reverse(Cell)`, the final states of `bidirectional(...)`
per direction, and stdlib's PeepholeLSTM, against a numpy loop written from ONNX's LSTM
equations and against onnx.reference's LSTM operator (directions forward, reverse and
bidirectional, with its peephole input P)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import nndsl
from tests.ops.harness import randomize

H, T, B, D = 4, 5, 2, 3


def build(body: str):
    return nndsl.loads(f"import cells\nmodel M {{\n  input x: [batch, {T}, {D}]\n{body}\n}}\n").model("M")


def run(body: str, seed: int = 1):
    net = build(body)
    x = np.random.default_rng(seed).normal(size=(B, T, D)).astype(np.float32)
    variables = randomize(net.init(jax.random.key(0), x), seed)
    out = net.apply(variables, x)
    return x, jax.tree.map(lambda a: np.asarray(a, np.float64), variables["params"]), \
        jax.tree.map(lambda a: np.asarray(a, np.float64), out)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_loop(x, p, reverse=False, peephole=True):
    """ONNX LSTM (activations sigmoid, tanh, tanh), peepholes on c for i and f, on c' for o;
    weights from nndsl's dense layers over [h, x] (dense_0..3 = f, i, g, o)."""
    h = np.zeros((x.shape[0], H))
    c = np.zeros((x.shape[0], H))
    ys = [None] * x.shape[1]
    zero = np.zeros(H)
    pf, pi, po = (p["p_f"], p["p_i"], p["p_o"]) if peephole else (zero, zero, zero)

    def lin(k, hx):
        return hx @ p[f"dense_{k}"]["kernel"] + p[f"dense_{k}"]["bias"]
    for t in (range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])):
        hx = np.concatenate([h, x[:, t]], -1)
        f = sigmoid(lin(0, hx) + pf * c)
        i = sigmoid(lin(1, hx) + pi * c)
        g = np.tanh(lin(2, hx))
        c = f * c + i * g
        o = sigmoid(lin(3, hx) + po * c)
        h = o * np.tanh(c)
        ys[t] = h
    return np.stack(ys, 1), h, c


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_peephole_lstm_matches_the_equations():
    x, p, out = run("  r = x -> PeepholeLSTM(4)\n  output y = r\n  output h = r.h\n  output c = r.c")
    y, h, c = lstm_loop(x.astype(np.float64), p["PeepholeLSTM_0"])
    close(out["y"], y)
    close(out["h"], h)
    close(out["c"], c)


def test_reverse_runs_from_the_last_step_keeping_input_order():
    x, p, out = run("  r = x -> reverse(LSTM(4))\n  output y = r\n  output h = r.h\n  output c = r.c")
    y, h, c = lstm_loop(x.astype(np.float64), p["reverse_0"], reverse=True, peephole=False)
    close(out["y"], y)
    close(out["h"], h)
    close(out["c"], c)


BIDI = ("  r = x -> bidirectional(PeepholeLSTM(4))\n  output y = r\n  output h = r.h\n  output c = r.c\n"
        "  output hf = r.forward.h\n  output cf = r.forward.c\n  output hb = r.backward.h\n"
        "  output cb = r.backward.c")


def test_bidirectional_exposes_final_states_per_direction():
    x, p, out = run(BIDI)
    yf, hf, cf = lstm_loop(x.astype(np.float64), p["bidirectional_0"]["forward"])
    yb, hb, cb = lstm_loop(x.astype(np.float64), p["bidirectional_0"]["backward"], reverse=True)
    close(out["y"], np.concatenate([yf, yb], -1))
    close(out["h"], np.concatenate([hf, hb], -1))
    close(out["c"], np.concatenate([cf, cb], -1))
    for k, v in dict(hf=hf, cf=cf, hb=hb, cb=cb).items():
        close(out[k], v)


def _onnx_weights(p):
    """nndsl's dense kernels [H + D, H] (h rows first) -> ONNX W [4H, D], R [4H, H], B [8H], P [3H]
    in ONNX's gate order i, o, f, c (peepholes i, o, f)."""
    order = [1, 3, 0, 2]  # ONNX i, o, f, c = nndsl dense_1, dense_3, dense_0, dense_2
    k = [p[f"dense_{j}"]["kernel"] for j in order]
    w = np.concatenate([m[H:].T for m in k])
    r = np.concatenate([m[:H].T for m in k])
    b = np.concatenate([np.concatenate([p[f"dense_{j}"]["bias"] for j in order]), np.zeros(4 * H)])
    peep = np.concatenate([p["p_i"], p["p_o"], p["p_f"]]) if "p_i" in p else None
    return w, r, b, peep


def _onnx_lstm(x, directions, dirs):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    ws = [_onnx_weights(p) for p in dirs]
    inputs = {"X": np.ascontiguousarray(np.transpose(x, (1, 0, 2))).astype(np.float32),
              "W": np.stack([w for w, *_ in ws]).astype(np.float32),
              "R": np.stack([r for _, r, *_ in ws]).astype(np.float32),
              "B": np.stack([b for _, _, b, _ in ws]).astype(np.float32)}
    names = ["X", "W", "R", "B"]
    if ws[0][3] is not None:
        inputs["seq"] = np.full(x.shape[0], x.shape[1], np.int32)
        inputs["h0"] = np.zeros((len(dirs), x.shape[0], H), np.float32)
        inputs["c0"] = np.zeros((len(dirs), x.shape[0], H), np.float32)
        inputs["P"] = np.stack([q for *_, q in ws]).astype(np.float32)
        names += ["seq", "h0", "c0", "P"]
    node = helper.make_node("LSTM", names, ["Y", "Y_h", "Y_c"], hidden_size=H, direction=directions)
    kinds = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("int32"): TensorProto.INT32}
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, kinds[inputs[n].dtype], inputs[n].shape)
                                            for n in names],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    return ReferenceEvaluator(model).run(None, {n: inputs[n] for n in names})


def test_bidirectional_peephole_lstm_matches_onnx():
    x, p, out = run(BIDI, seed=3)
    y, yh, yc = _onnx_lstm(x, "bidirectional", [p["bidirectional_0"]["forward"], p["bidirectional_0"]["backward"]])
    close(out["y"], np.concatenate([y[:, 0], y[:, 1]], -1).transpose(1, 0, 2))
    close(out["hf"], yh[0])
    close(out["hb"], yh[1])
    close(out["cf"], yc[0])
    close(out["cb"], yc[1])


def test_reverse_lstm_matches_onnx():
    x, p, out = run("  r = x -> reverse(LSTM(4))\n  output y = r\n  output h = r.h", seed=4)
    y, yh, _ = _onnx_lstm(x, "reverse", [p["reverse_0"]])
    close(out["y"], y[:, 0].transpose(1, 0, 2))
    close(out["h"], yh[0])


def test_reverse_needs_one_cell():
    with pytest.raises(nndsl.NndslError) as e:
        build("  output y = x -> reverse(dense(3))")
    assert "E337" in str(e.value) or "E339" in str(e.value)
