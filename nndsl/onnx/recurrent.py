"""Cells stepped over time. A scan whose body is exactly a stdlib cell (RNN, LSTM, GRU,
GRUResetAfter) becomes ONNX's own `RNN` / `LSTM` / `GRU` node, which runtimes implement with
fused kernels; any other cell (written by equations) becomes an ONNX `Scan` whose body is the
cell's graph lowered op by op; `unroll(cell, steps=n)` is written out step by step.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from .cells import standard_cell
from .emit import DTYPES, Emitter


def lower_scan(e: Emitter, g, node, ins: list, walk) -> tuple:
    a = node.attrs
    body = a["body"]
    if a.get("unroll") is not None:
        return _unrolled(e, node, ins, body, walk)
    cell = standard_cell(body)
    if cell is not None:
        return _standard(e, g, node, ins, body, cell)
    return _scan(e, node, ins, body, walk)


# ---------------------------------------------------------------------- ONNX LSTM / GRU
def _denses(e, body):
    out = []
    for nid in body.topo_order():
        n = body.node(nid)
        if n.op == "dense":
            out.append((e.leaf(n.path, "kernel"), e.leaf(n.path, "bias")))
    return out


def _is_zero_fill(g, nid) -> bool:
    n = g.node(nid)
    return n.op == "fill" and n.attrs.get("value", 0) == 0


def _standard(e, g, node, ins, body, cell):
    seq, inits = ins[0], ins[1:]
    init_ids = g.input_ids(node.id)[1:]
    name = node.label or "scan"
    prefix = ".".join(node.path) if node.path else name
    d = _denses(e, body)
    hidden = d[0][1].shape[0]
    if cell == "RNN":  # one dense on [h, x]
        ((k, bb),) = d
        w, r = k[hidden:].T, k[:hidden].T
        b = np.concatenate([bb, np.zeros(hidden, np.float32)])
        op_type, extra = "RNN", {"activations": ["Tanh"]}
    elif cell == "LSTM":  # nndsl's dense_0..3 are f, i, g, o; ONNX wants i, o, f, c
        f, i, gg, o = d
        order = (i, o, f, gg)
        w = np.concatenate([k[hidden:].T for k, _ in order])
        r = np.concatenate([k[:hidden].T for k, _ in order])
        b = np.concatenate([np.concatenate([bb for _, bb in order]), np.zeros(4 * hidden, np.float32)])
        op_type, extra = "LSTM", {}
    elif cell == "GRU":  # z, r, n with the reset gate before the candidate's matmul
        w = np.concatenate([k[hidden:].T for k, _ in d])
        r = np.concatenate([k[:hidden].T for k, _ in d])
        b = np.concatenate([np.concatenate([bb for _, bb in d]), np.zeros(3 * hidden, np.float32)])
        op_type, extra = "GRU", {"linear_before_reset": 0}
    else:  # GRUResetAfter: (x, h) denses for r, z, n; ONNX wants z, r, n
        (rx, rh, zx, zh, nx, nh) = d
        w = np.concatenate([k.T for k, _ in (zx, rx, nx)])
        r = np.concatenate([k.T for k, _ in (zh, rh, nh)])
        b = np.concatenate([bb for _, bb in (zx, rx, nx, zh, rh, nh)])
        op_type, extra = "GRU", {"linear_before_reset": 1}
    weights = [e.init(f"{prefix}.W", w[None]), e.init(f"{prefix}.R", r[None]), e.init(f"{prefix}.B", b[None])]
    x = e.op("Transpose", [seq], f"{name}/time_major", perm=[1, 0, 2])
    states = []
    for nid, v in zip(init_ids, inits):
        states.append("" if _is_zero_fill(g, nid) else e.op("Unsqueeze", [v, e.ints([0])]))
    n_out = 3 if op_type == "LSTM" else 2  # Y, Y_h (and Y_c)
    outs = e.op(op_type, [x, *weights, "", *states], name, outputs=n_out, hidden_size=int(hidden),
                direction="reverse" if node.attrs["reverse"] else "forward", **extra)
    ys = e.op("Transpose", [e.op("Squeeze", [outs[0], e.ints([1])])], f"{name}/batch_major", perm=[1, 0, 2])
    finals = [e.op("Squeeze", [s, e.ints([0])]) for s in outs[1:]]
    return (ys, *finals)


# ---------------------------------------------------------------------- unroll(cell, steps=n)
def _unrolled(e, node, ins, body, walk):
    """A cell fed its own output for a static number of steps, written out step by step: an
    autoregressive decoder of a few steps reads more plainly unrolled than as a Loop."""
    names = list(node.attrs["states"])
    x, states = ins[0], dict(zip(names, ins[1:]))
    ys = []
    for _ in range(int(node.attrs["unroll"])):
        env = {}
        for nid in body.inputs:
            n = body.node(nid)
            env[nid] = states[n.attrs["name"]] if n.attrs.get("carry") else x
        walk(e, body, env)
        x = env[body.outputs["out"]]
        states = {k: env[body.outputs[k]] for k in names}
        ys.append(e.op("Unsqueeze", [x, e.ints([1])]))
    seq = e.op("Concat", ys, node.label, axis=1) if len(ys) > 1 else ys[0]
    return (seq, *(states[k] for k in names))


# ---------------------------------------------------------------------- ONNX Scan
def _scan(e: Emitter, node, ins, body, walk):
    names = list(node.attrs["states"])
    name = node.label or "scan"
    sub = Emitter(e.params, e.state, e.inits, e.taken)
    sub.sizes = e.sizes  # the outer graph's inputs are visible inside the body
    env, carried, step_in = {}, {}, None
    for nid in body.inputs:
        n = body.node(nid)
        v = sub.fresh(f"{name}/{n.attrs['name']}")
        env[nid] = v
        info = helper.make_tensor_value_info(v, DTYPES.get(n.type.dtype, 1), None)
        if n.attrs.get("carry"):
            carried[n.attrs["name"]] = info
        else:
            step_in = info
    walk(sub, body, env)
    outs = []
    for k in [*names, "out"]:
        v = sub.op("Identity", [env[body.outputs[k]]], f"{name}/{k}'")
        tt = body.node(body.outputs[k]).type
        outs.append(helper.make_tensor_value_info(v, DTYPES.get(tt.dtype, 1), None))
    graph = helper.make_graph(sub.nodes, f"{name}_body", [carried[n] for n in names] + [step_in], outs)
    rev = 1 if node.attrs["reverse"] else 0
    res = e.op("Scan", [*ins[1:], ins[0]], name, outputs=len(names) + 1, body=graph,
               num_scan_inputs=1, scan_input_axes=[1], scan_output_axes=[1],
               scan_input_directions=[rev], scan_output_directions=[rev])
    res = res if isinstance(res, list) else [res]
    return (res[-1], *res[:-1])
