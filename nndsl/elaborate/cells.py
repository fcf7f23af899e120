"""Cells: a body run once per step of a sequence, carrying its states from step to step. A cell
applied to a sequence is a `scan` node whose body is the step as a sub-graph (lowered to one
`lax.scan`); `unroll` feeds each output back as the next input; one step of input runs it once."""
from __future__ import annotations

from ..errors import NameResolutionError, ShapeError, TypeCheckError
from ..ir.graph import Graph
from ..ir.types import TensorType
from ..ops import init as I
from ..syntax import ast
from ..values import Captured, ModelLayer, Poison, Poisoned, TensorVal, describe
from .builder import Builder, Env, rename_in_source_order
from .decls import dtype_of, eval_dims
from .statements import run_body


def apply_cell(b: Builder, layer, inputs: list, span, path: tuple, reverse=False, unroll: int | None = None):
    """A cell scanned over [batch, time, ...], run once on one step, or (`unroll`) fed its own
    outputs for that many steps."""
    if not (isinstance(layer, ModelLayer) and layer.defn.kind == "cell"):
        raise TypeCheckError(f"expected a cell, found {describe(layer)}", span, code="E337")
    defn = layer.defn
    decls = [s for s in defn.body if isinstance(s, ast.Input)]
    if len(inputs) != 1 or len(decls) != 1:
        raise TypeCheckError(f"cell `{defn.name}` is applied to one sequence", span, code="E328")
    (seq,) = inputs
    step_rank = len(decls[0].type.dims)
    if unroll is None and seq.type.rank == step_rank:
        return _cell_once(b, layer, seq, span, path)
    if unroll is None and seq.type.rank != step_rank + 1:
        raise ShapeError(f"cell `{defn.name}` steps over [batch, time, ...] (rank {step_rank + 1}), "
                         f"found {seq.type}", span, code="E304")
    if unroll is not None and seq.type.rank != step_rank:
        raise ShapeError(f"unroll feeds back one step of rank {step_rank}, found {seq.type}", span, code="E304")
    x_t = seq.type if unroll is not None else seq.type.with_shape(seq.type.shape[:1] + seq.type.shape[2:])
    body, out, states, inits, env = _scan_body(b, layer, decls[0], x_t, span, path, unroll)
    init_vals = [initial_state(b, inits[n], states[n].type, path, env) for n in states]
    time = unroll if unroll is not None else seq.type.shape[1]
    out_seq = out.type.with_shape(out.type.shape[:1] + (time,) + out.type.shape[1:])
    attrs = {"body": body, "states": tuple(states), "reverse": reverse, "unroll": unroll,
             "out_types": (out_seq,) + tuple(states[n].type for n in states)}
    res = b.add_node("scan", [seq] + init_vals, attrs, span, path=path, label=path[-1] if path else defn.name)
    out_val = res.items[0]
    out_val.fields = dict(zip(states, res.items[1:]))
    return out_val


def _scan_body(b: Builder, layer: ModelLayer, decl, x_t, span, path, unroll):
    """One step of the cell as a sub-graph: its inputs are the step's input and the states, its
    outputs the step's output and the states' next values."""
    defn = layer.defn
    outer = b.g
    body = Graph(params=b.root.params, state=b.root.state, counter=b.root.counter)
    b.g = body
    before = len(b.unchecked)
    try:
        with b.inside(defn.name, path, span):
            env = Env(dict(layer.args))
            x_node = body.add("input", [], {"name": decl.name}, x_t, span, label=decl.name)
            body.inputs.append(x_node.id)
            # State types may read dims of the input; bind the input first, then the states.
            _bind_dims_from(b, decl, env, x_t)
            states, inits = state_inputs(b, defn, env)
            env_body = captured_env(layer.args)
            outputs = run_body(b, defn, env_body, [TensorVal(x_node.id, x_t, span)], None, states)
            _require_nexts(defn, env_body, states)
            if any(isinstance(v, Poison) for v in list(outputs.values()) + list(env_body.values.values())):
                raise Poisoned(defn.name)
            rename_in_source_order(b, b.scope)
            nexts = check_states(defn, env_body, states)
            out = _step_output(defn, outputs, x_t, unroll, span)
            body.outputs = {"out": out.node, **{n: nexts[n].node for n in states}}
            if len(b.unchecked) == before:
                b.complete.add(defn.name)
    finally:
        b.g = outer
    return body, out, states, inits, env


def _step_output(defn, outputs: dict, x_t, unroll, span) -> TensorVal:
    if len(outputs) != 1:
        raise TypeCheckError(f"cell `{defn.name}` must have exactly one output", defn.name_span, code="E338")
    (out,) = outputs.values()
    if unroll is not None and (out.type.shape != x_t.shape):
        raise ShapeError(f"unroll feeds each output back as the next input, but `{defn.name}` maps "
                         f"{x_t} to {out.type}", span, code="E305")
    return out


def state_inputs(b: Builder, defn, env: Env) -> tuple[dict, dict]:
    """The cell's states as inputs of the step graph being built (b.g), and their declarations."""
    states, inits = {}, {}
    for st in (s for s in defn.body if isinstance(s, ast.State)):
        dims = eval_dims(b, st.type, env, None, f"state `{st.name}`")
        t = TensorType(dims, dtype_of(st.type))
        node = b.g.add("input", [], {"name": st.name, "carry": True}, t, st.span, label=st.name)
        b.g.inputs.append(node.id)
        states[st.name] = TensorVal(node.id, t, st.span)
        inits[st.name] = st
    return states, inits


def captured_env(args: dict) -> Env:
    """A step's environment: tensor arguments are from outside the step, so they may only give a
    state its initial value (E350)."""
    return Env({k: Captured(k) if isinstance(v, TensorVal) else v for k, v in args.items()})


def _bind_dims_from(b, decl, env, x_t):
    eval_dims(b, decl.type, env, x_t, f"input `{decl.name}`")


def _require_nexts(defn, env: Env, states: dict) -> None:
    """E208 before anything else about the body: a statement that failed (or could not be
    checked) elsewhere in the cell must not hide a state that never gets a next value."""
    for name in states:
        if name + "'" not in env.values:
            st = next(s for s in defn.body if isinstance(s, ast.State) and s.name == name)
            raise NameResolutionError(f"state `{name}` has no next value", st.span, code="E208",
                                      help=f"define `{name}' = ...`")


def check_states(defn, env: Env, states: dict) -> dict:
    nexts = {}
    for name, cur in states.items():
        nxt = env.values.get(name + "'")
        if nxt is None:
            st = next(s for s in defn.body if isinstance(s, ast.State) and s.name == name)
            raise NameResolutionError(f"state `{name}` has no next value", st.span, code="E208",
                                      help=f"define `{name}' = ...`")
        if not isinstance(nxt, TensorVal):
            raise TypeCheckError(f"`{name}'` must be a tensor, found {describe(nxt)}", env.spans[name + "'"])
        if tuple(nxt.type.shape) != tuple(cur.type.shape):
            raise ShapeError(f"state `{name}` is {cur.type} but `{name}'` is {nxt.type}: a state keeps its "
                             "shape across steps", env.spans[name + "'"], code="E306")
        nexts[name] = nxt
    for n in env.values:
        if n.endswith("'") and n.rstrip("'") not in states:
            raise NameResolutionError(f"`{n}` is the next value of `{n.rstrip(chr(39))}`, which is not a state",
                                      env.spans[n], code="E209")
    return nexts


def initial_state(b: Builder, st: ast.State, t: TensorType, path, env) -> TensorVal:
    """zeros (the default), ones, a number, `learned` (a trained vector shared by the batch), or a
    tensor passed in as an argument (a decoder starting from an encoder's final state)."""
    e = st.init
    if e is None or (isinstance(e, ast.Name) and e.id == "zeros"):
        return b.add_node("fill", [], {"shape": t.shape, "value": 0.0}, st.span)
    if isinstance(e, ast.Name) and e.id == "ones":
        return b.add_node("fill", [], {"shape": t.shape, "value": 1.0}, st.span)
    if isinstance(e, ast.Number):
        return b.add_node("fill", [], {"shape": t.shape, "value": float(e.value)}, st.span)
    if isinstance(e, ast.Name) and e.id == "learned":
        p = b.add_node("param", [], {"shape": t.shape[1:], "init": I.zeros, "init_name": "zeros",
                                     "dtype": t.dtype}, st.span, path=path + (f"{st.name}_init",),
                       label=f"{st.name}_init")
        zero = b.add_node("fill", [], {"shape": t.shape, "value": 0.0}, st.span)
        return b.add_node("add", [zero, p], {}, st.span)
    v = b.eval(e, env)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return b.add_node("fill", [], {"shape": t.shape, "value": float(v)}, st.span)
    if not isinstance(v, TensorVal):
        raise TypeCheckError(f"initial state `{st.name}` must be zeros, ones, a number, `learned` or a "
                             f"tensor argument, found {describe(v)}", e.span, code="E351")
    if tuple(v.type.shape) != tuple(t.shape) and all(isinstance(d, int) for d in v.type.shape + t.shape):
        raise ShapeError(f"initial state `{st.name}` must be {t}, found {v.type}", e.span, code="E306")
    return v


def _cell_once(b: Builder, layer, x: TensorVal, span, path):
    """A cell applied to one step (one-to-one): runs the body once from its initial state."""
    res = apply_cell(b, layer, [_add_time(b, x, span)], span, path)
    return b.add_node("last", [res], {}, span)


def _add_time(b, x, span):
    return b.add_node("expand_dims", [x], {"axis": 1}, span)
