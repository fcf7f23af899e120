"""Applying layers: ops, models used as layers, chains, stacks, bound instances, and cells."""
from __future__ import annotations

import itertools

from ..errors import NameResolutionError, ShapeError, TypeCheckError, UnsupportedError, LimitError
from ..ir.graph import Graph
from ..ir.types import DTYPES, TensorType, shape_str
from ..ops import OPS
from ..ops import init as I
from ..syntax import ast
from ..values import (BidirectionalLayer, BoundLayer, Captured, ChainLayer, Layer, ModelLayer, NamedInt, NeedsConcrete,
                      Poison, Poisoned,
                      OpLayer, Record, ReverseLayer, StackLayer, Sym, SymDim, TensorVal, TupleVal, UnrollLayer,
                      describe)
from . import order as ordering
from .builder import MAX_DEPTH, SPECIAL, Builder, Env, Scope


def apply_layer(b: Builder, layer: Layer, inputs: list, span, path: tuple | None = None):
    b.tick(span)
    if isinstance(layer, OpLayer):
        return _apply_op(b, layer, inputs, span, path)
    if isinstance(layer, ModelLayer):
        path = path or b.scope.fresh(layer.defn.name, layer.span or span)
        if layer.defn.kind == "cell":
            return apply_cell(b, layer, inputs, span, path)
        return elaborate_model(b, layer.defn, layer.args, inputs, path, span)
    if isinstance(layer, BoundLayer):
        return apply_layer(b, layer.layer, inputs, span, layer.scope + (layer.name,))
    if isinstance(layer, (ChainLayer, StackLayer)):
        items = layer.layers if isinstance(layer, ChainLayer) else itertools.repeat(layer.layer, layer.n)
        with _scoped(b, path):
            v = inputs
            for item in items:
                out = apply_layer(b, item, v, span)
                v = out.items if isinstance(out, TupleVal) else [out]
                if not all(isinstance(x, TensorVal) for x in v):
                    raise TypeCheckError(f"a layer in this chain gave {describe(out)}, "
                                         "which the next layer cannot take", span, code="E318")
        return v[0] if len(v) == 1 else TupleVal(v)
    if isinstance(layer, UnrollLayer):
        return apply_cell(b, layer.layer, inputs, span, path or b.scope.fresh("unroll", layer.span or span), unroll=layer.steps)
    if isinstance(layer, ReverseLayer):
        return apply_cell(b, layer.layer, inputs, span, path or b.scope.fresh("reverse", layer.span or span),
                          reverse=True)
    if isinstance(layer, BidirectionalLayer):
        path = path or b.scope.fresh("bidirectional", layer.span or span)
        fwd = apply_cell(b, layer.layer, inputs, span, path + ("forward",))
        bwd = apply_cell(b, layer.layer, inputs, span, path + ("backward",), reverse=True)
        out = b.add_node("concat", [fwd, bwd], {"axis": -1}, span, label="bidirectional")
        # Final states as a forward cell's (`r.h`: both directions' concatenated on the feature
        # axis, as the outputs are), and per direction (`r.forward.h`, `r.backward.h`).
        if fwd.fields is not None and bwd.fields is not None:
            out.fields = {n: b.add_node("concat", [fwd.fields[n], bwd.fields[n]], {"axis": -1}, span,
                                        label=f"bidirectional.{n}") for n in fwd.fields}
            out.fields.setdefault("forward", Record(dict(fwd.fields), "forward state"))
            out.fields.setdefault("backward", Record(dict(bwd.fields), "backward state"))
        return out
    for cls, fn in LAYER_APPLIERS.items():
        if isinstance(layer, cls):
            return fn(b, layer, inputs, span, path)
    raise TypeCheckError(f"expected a layer, found {describe(layer)}", span)


# Kinds of layer defined in other modules (elaborate/generate.py): class -> fn(b, layer, inputs, span, path).
LAYER_APPLIERS: dict = {}


class _scoped:
    """Runs a composite layer's parts under a fixed scope (a bound chain shares its weights)."""

    def __init__(self, b: Builder, path):
        self.b, self.path = b, path

    def __enter__(self):
        self.saved = self.b.scope
        if self.path is not None:
            self.b.scope = Scope(self.path)

    def __exit__(self, *exc):
        self.b.scope = self.saved


def _apply_op(b: Builder, layer: OpLayer, inputs: list, span, path):
    opdef = OPS[layer.op]
    ins = list(inputs) + list(layer.bound)
    want = len(opdef.inputs)
    if not opdef.variadic and len(ins) != want:
        raise TypeCheckError(f"`{layer.op}` takes {want} input{'s' if want != 1 else ''}, given {len(ins)}",
                             span, code="E327")
    for x in ins:
        if not isinstance(x, TensorVal):
            raise TypeCheckError(f"`{layer.op}` needs tensor inputs, found {describe(x)}", span, code="E321")
    path = path or b.scope.fresh(layer.op, layer.span or span)
    return b.add_node(layer.op, ins, layer.attrs, layer.span or span, path=path, label=path[-1])


# ---------------------------------------------------------------------- models
def elaborate_model(b: Builder, defn, args: dict, inputs: list | None, path: tuple, span,
                    top_types: list | None = None):
    """Evaluates a model body. `inputs` are tensors when used as a layer; None at the top, where
    input nodes are created (with `top_types` when concrete shapes are known)."""
    if len(b.stack) >= MAX_DEPTH:
        raise _too_deep(b, defn, span)
    if defn.kind == "cell" and inputs is None:
        raise UnsupportedError(f"`{defn.name}` is a cell: apply it to a sequence inside a model",
                               defn.name_span)
    decls = [s for s in defn.body if isinstance(s, ast.Input)]
    if inputs is not None and len(inputs) != len(decls):
        raise TypeCheckError(f"model `{defn.name}` takes {len(decls)} input{'s' if len(decls) != 1 else ''}, "
                             f"given {len(inputs)}", span, code="E328")
    b.stack.append((defn.name, path))
    b.call_spans.append(span)
    saved = b.scope
    b.scope = Scope(path)
    before = len(b.unchecked)
    try:
        env = Env(dict(args))
        outputs = run_body(b, defn, env, inputs, top_types, call_span=span if inputs is not None else None)
        rename_in_source_order(b, b.scope)
    finally:
        b.scope = saved
        b.stack.pop()
        b.call_spans.pop()
    if not outputs:
        raise NameResolutionError(f"model `{defn.name}` has no output", defn.name_span, code="E206",
                                  help="add `output NAME = ...`")
    if any(isinstance(v, Poison) for v in outputs.values()):
        if inputs is None:
            b.raise_errors()
        raise Poisoned(defn.name)
    if len(b.unchecked) == before:
        b.complete.add(defn.name)
    if inputs is None:
        return outputs
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    return Record(outputs, f"`{defn.name}` result")


def _too_deep(b: Builder, defn, span) -> LimitError:
    """Only a definition that appears in its own chain of uses is asked about a base case; a long
    chain of distinct models is just deep."""
    names = [n for n, _ in b.stack] + [defn.name]
    if defn.name in names[:-1]:
        first = names.index(defn.name)
        loop = " -> ".join(names[first:])
        return LimitError(f"models nested deeper than {MAX_DEPTH}: `{defn.name}` uses itself ({loop}) and "
                          "never reaches a base case", span, code="E405",
                          help="stop the recursion with `if ... then ... else ...` on a static argument")
    shown = " -> ".join(names[:3] + ["..."] + names[-2:]) if len(names) > 6 else " -> ".join(names)
    return LimitError(f"models nested deeper than {MAX_DEPTH} ({shown}); no model here uses itself, but "
                      f"nndsl elaborates at most {MAX_DEPTH} levels of models inside models", span,
                      code="E405", help="apply some of these models one after another in a chain instead "
                                        "of each inside the next")


def run_body(b: Builder, defn, env: Env, inputs, top_types, states: dict | None = None,
             call_span=None) -> dict:
    decls = [s for s in defn.body if isinstance(s, ast.Input)]
    outputs: dict = {}
    for stmt in ordering.order(defn.body):
        def one(stmt=stmt):
            if isinstance(stmt, ast.Input):
                i = decls.index(stmt)
                actual = inputs[i] if inputs is not None else None
                ttype = top_types[i] if top_types is not None and i < len(top_types) else None
                _define(env, stmt.name, bind_input(b, stmt, env, actual, ttype, call_span, defn.name), stmt.span)
            elif isinstance(stmt, ast.Param):
                _define(env, stmt.name, make_param(b, stmt, env), stmt.span)
            elif isinstance(stmt, ast.State):
                if states is None:
                    raise TypeCheckError(f"`state` belongs in a `cell`; `{defn.name}` is a model", stmt.span,
                                         code="E329", help=f"write `cell {defn.name}` to make it recurrent")
                _define(env, stmt.name, states[stmt.name], stmt.span)
            elif isinstance(stmt, ast.Assign):
                value = b.eval(stmt.value, env)
                if len(stmt.targets) > 1:
                    items = value.items if isinstance(value, TupleVal) else None
                    if items is None or len(items) != len(stmt.targets):
                        raise TypeCheckError(f"cannot unpack {describe(value)} into {len(stmt.targets)} names",
                                             stmt.span, code="E330")
                    for t, v in zip(stmt.targets, items):
                        _define(env, t, v, stmt.span)
                        _name_node(b, t, v)
                else:
                    _define(env, stmt.targets[0], bind_value(b, stmt.targets[0], value), stmt.span)
                    _name_node(b, stmt.targets[0], value)
            elif isinstance(stmt, ast.Output):
                value = b.eval(stmt.value, env) if stmt.value is not None else _lookup(b, env, stmt)
                if not isinstance(value, (TensorVal, TupleVal, Record)):
                    raise TypeCheckError(f"output `{stmt.name}` must be a tensor, found {describe(value)}",
                                         stmt.span, code="E331", help="apply the layer to an input with `->`")
                if stmt.name in outputs:
                    raise NameResolutionError(f"output `{stmt.name}` is defined twice", stmt.span, code="E201")
                if stmt.value is not None and not (isinstance(stmt.value, ast.Name) and stmt.value.id == stmt.name):
                    _define(env, stmt.name, value, stmt.span)
                outputs[stmt.name] = value
            else:
                raise TypeCheckError(f"`{type(stmt).__name__.lower()}` statements belong in a `train` block",
                                     stmt.span, code="E332")

        b.guarded(stmt, ordering.provides(stmt), env, one)
        if isinstance(stmt, ast.Output) and stmt.name not in outputs:
            outputs[stmt.name] = Poison(stmt.name)
    return outputs


def rename_in_source_order(b: Builder, scope: Scope) -> None:
    """Renumbers a scope's layers by their place in the text (only needed when equations were
    written out of order)."""
    renames = scope.source_order_renames()
    if not renames:
        return
    n = len(scope.path)

    def fix(path):
        if path is not None and len(path) > n and path[:n] == scope.path and path[n] in renames:
            return path[:n] + (renames[path[n]],) + path[n + 1:]
        return path
    for registry in (b.root.params, b.root.state):
        items = list(registry.items())
        registry.clear()
        registry.update({fix(k): v for k, v in items})
    graphs = [b.root]
    while graphs:
        g = graphs.pop()
        for node in g.nodes():
            node.path = fix(node.path)
            if node.label and node.path:
                node.label = node.path[-1]
            if node.op == "scan":
                graphs.append(node.attrs["body"])


def _lookup(b, env, stmt):
    return b.eval(ast.Name(stmt.name, stmt.span), env)


def _define(env: Env, name: str, value, span):
    if name in env.values:
        first = env.spans.get(name)
        raise NameResolutionError(f"`{name}` is defined twice", span, code="E201",
                                  notes=[(first, "first defined here")] if first else [],
                                  help="names are defined once; pick a new name")
    env.values[name] = value
    env.spans[name] = span


def _name_node(b: Builder, name: str, value) -> None:
    """Remembers that equation `name` (`z`, `h_tilde`) computes this node, so pictures can say
    so; the first name wins (`a = x; b = a` names nothing new), inputs keep their own."""
    node = getattr(value, "node", None)
    if isinstance(value, TensorVal) and node in b.g and b.g.node(node).op != "input":
        b.g.names.setdefault(node, name)


def bind_value(b: Builder, name: str, value):
    """`enc = Encoder(64)` binds one shared instance; every other value binds as it is."""
    if isinstance(value, BoundLayer):
        return value
    if b.is_layer(value):
        return BoundLayer(name, b.as_layer(value, None), b.scope.path)
    return value


def eval_dims(b: Builder, texpr: ast.TypeExpr, env: Env, actual: TensorType | None, what: str,
              call_span=None):
    dims = []
    for i, d in enumerate(texpr.dims):
        have = actual.shape[i] if actual is not None and i < actual.rank else None
        if isinstance(d, ast.Name) and not env.has(d.id):
            val = Sym(d.id) if have is None else (Sym(have) if isinstance(have, str) else NamedInt(have, d.id))
            env.values[d.id] = val
            env.spans[d.id] = d.span
        else:
            val = b.eval(d, env)
            if isinstance(val, bool) or not isinstance(val, (int, Sym)):
                raise TypeCheckError(f"a dimension must be an integer, found {describe(val)}", d.span,
                                     code="E333")
            if isinstance(val, int) and val < 0:
                raise ShapeError(f"a dimension cannot be negative ({val})", d.span, code="E333")
            if isinstance(val, int) and isinstance(have, int) and val != have:
                raise ShapeError(f"{what} expects {shape_str(_dims_of(b, texpr, env))}, found "
                                 f"{shape_str(actual.shape)}", call_span or texpr.span, code="E303",
                                 help=f"axis {i}: expected {val}, found {have}",
                                 notes=[(texpr.span, "declared here")] if call_span else [])
        if isinstance(val, Sym):
            val = SymDim(val.expr) if val.expr in b.free else val.expr
        dims.append(val)
    return tuple(dims)


def _dims_of(b, texpr, env):
    out = []
    for d in texpr.dims:
        try:
            v = b.eval(d, env)
            out.append(v.expr if isinstance(v, Sym) else v)
        except Exception:
            out.append("?")
    return out


def dtype_of(texpr: ast.TypeExpr) -> str:
    if texpr.dtype is None:
        return "float32"
    if texpr.dtype not in DTYPES:
        from ..errors import closest
        guess = closest(texpr.dtype, DTYPES)
        raise TypeCheckError(f"unknown element type `{texpr.dtype}`", texpr.span, code="E334",
                             help=f"did you mean `{guess}`?" if guess else f"types: {', '.join(DTYPES)}")
    return DTYPES[texpr.dtype]


def bind_input(b: Builder, stmt: ast.Input, env: Env, actual: TensorVal | None,
               top_type: TensorType | None, call_span=None, owner: str = "") -> TensorVal:
    dtype = dtype_of(stmt.type)
    known = actual.type if actual is not None else top_type
    who = f"`{owner}` input `{stmt.name}`" if owner else f"input `{stmt.name}`"
    notes = [(stmt.type.span, "declared here")] if call_span else []
    if known is not None and known.rank != len(stmt.type.dims):
        raise ShapeError(f"{who} expects rank {len(stmt.type.dims)} "
                         f"{shape_str(_dims_of(b, stmt.type, env))}, found {shape_str(known.shape)} "
                         f"(rank {known.rank})", call_span or stmt.type.span, code="E303", notes=notes)
    dims = eval_dims(b, stmt.type, env, known, who, call_span)
    if actual is not None:
        want_int = not dtype.startswith(("float", "bfloat"))
        if stmt.type.dtype is not None and want_int == actual.type.is_float:
            raise TypeCheckError(f"{who} expects {TensorType(dims, dtype)}, found "
                                 f"{actual.type}", call_span or stmt.type.span, code="E335", notes=notes)
        return actual
    t = TensorType(dims if top_type is None else top_type.shape, dtype)
    node = b.g.add("input", [], {"name": stmt.name}, t, stmt.span, label=stmt.name)
    b.g.inputs.append(node.id)
    return TensorVal(node.id, t, stmt.span)


def make_param(b: Builder, stmt: ast.Param, env: Env) -> TensorVal:
    dims = eval_dims(b, stmt.type, env, None, f"param `{stmt.name}`")
    init, text = eval_init(b, stmt.init, env, len(dims))
    path = b.scope.path + (stmt.name,)
    return b.add_node("param", [], {"shape": dims, "init": init, "init_name": text,
                                    "dtype": dtype_of(stmt.type)}, stmt.span, path=path, label=stmt.name)


def eval_init(b: Builder, e, env, rank: int):
    """`~ normal(0.01)`: initializers are their own small namespace, not ops."""
    if e is None:
        return (I.glorot, "glorot") if rank >= 2 else (I.zeros, "zeros")
    if isinstance(e, ast.Number):
        return I.constant(e.value), str(e.value)
    name, args, kw = None, [], {}
    if isinstance(e, ast.Name):
        name = e.id
    elif isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
        name = e.func.id
        for a in e.args:
            if isinstance(a, ast.Kwarg):
                kw[a.name] = b.eval(a.value, env)
            else:
                args.append((b.eval(a, env), a.span))
    if name in I.PLAIN and not args and not kw:
        return I.PLAIN[name], name
    if name in I.FACTORIES:
        # declared like an op's arguments, so a wrong one says what is accepted (E322-E326)
        from ..elaborate.builder import bind_args
        bound = bind_args(name, I.ARGS[name], args, kw, e.span, {})
        return I.FACTORIES[name](**bound), f"{name}({', '.join(str(v) for v, _ in args)})"
    from ..errors import closest
    known = list(I.PLAIN) + list(I.FACTORIES)
    guess = closest(name or "", known)
    raise NameResolutionError(f"unknown initializer{f' `{name}`' if name else ''}", e.span, code="E207",
                              help=f"did you mean `{guess}`?" if guess else f"initializers: {', '.join(known)}")


# ---------------------------------------------------------------------- cells
def apply_cell(b: Builder, layer, inputs: list, span, path: tuple, reverse=False, unroll: int | None = None):
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
    outer = b.g
    body = Graph(params=b.root.params, state=b.root.state, counter=b.root.counter)
    b.g = body
    saved = b.scope
    b.scope = Scope(path)
    b.stack.append((defn.name, path))
    b.call_spans.append(span)
    before = len(b.unchecked)
    try:
        env = Env(dict(layer.args))
        x_node = body.add("input", [], {"name": decls[0].name}, x_t, span, label=decls[0].name)
        body.inputs.append(x_node.id)
        states, inits = {}, {}
        # State types may read dims of the input; bind the input first, then the states.
        _bind_dims_from(b, decls[0], env, x_t)
        for st in (s for s in defn.body if isinstance(s, ast.State)):
            dims = eval_dims(b, st.type, env, None, f"state `{st.name}`")
            t = TensorType(dims, dtype_of(st.type))
            node = body.add("input", [], {"name": st.name, "carry": True}, t, st.span, label=st.name)
            body.inputs.append(node.id)
            states[st.name] = TensorVal(node.id, t, st.span)
            inits[st.name] = st
        env_body = Env({k: Captured(k) if isinstance(v, TensorVal) else v for k, v in layer.args.items()})
        outputs = run_body(b, defn, env_body, [TensorVal(x_node.id, x_t, span)], None, states)
        _require_nexts(defn, env_body, states)
        if any(isinstance(v, Poison) for v in list(outputs.values()) + list(env_body.values.values())):
            raise Poisoned(defn.name)
        rename_in_source_order(b, b.scope)
        nexts = _check_states(defn, env_body, states)
        if len(outputs) != 1:
            raise TypeCheckError(f"cell `{defn.name}` must have exactly one output", defn.name_span, code="E338")
        (out,) = outputs.values()
        if unroll is not None and (out.type.shape != x_t.shape):
            raise ShapeError(f"unroll feeds each output back as the next input, but `{defn.name}` maps "
                             f"{x_t} to {out.type}", span, code="E305")
        body.outputs = {"out": out.node, **{n: nexts[n].node for n in states}}
        if len(b.unchecked) == before:
            b.complete.add(defn.name)
    finally:
        b.g = outer
        b.scope = saved
        b.stack.pop()
        b.call_spans.pop()
    init_vals = [_initial_state(b, inits[n], states[n].type, path, env) for n in states]
    time = unroll if unroll is not None else seq.type.shape[1]
    out_seq = out.type.with_shape(out.type.shape[:1] + (time,) + out.type.shape[1:])
    attrs = {"body": body, "states": tuple(states), "reverse": reverse, "unroll": unroll,
             "out_types": (out_seq,) + tuple(states[n].type for n in states)}
    res = b.add_node("scan", [seq] + init_vals, attrs, span, path=path, label=path[-1] if path else defn.name)
    out_val = res.items[0]
    out_val.fields = dict(zip(states, res.items[1:]))
    return out_val


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


def _check_states(defn, env: Env, states: dict) -> dict:
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


def _initial_state(b: Builder, st: ast.State, t: TensorType, path, env) -> TensorVal:
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


# ---------------------------------------------------------------------- special forms
def _unroll(b: Builder, e, pos, kw, env):
    if not pos:
        raise TypeCheckError("unroll(Cell(...), steps=n) needs a cell", e.span, code="E339")
    steps = kw.get("steps", pos[1][0] if len(pos) > 1 else None)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise TypeCheckError("unroll needs `steps`, a positive integer", e.span, code="E339")
    return UnrollLayer(b.as_layer(pos[0][0], pos[0][1]), steps, span=e.span)


def _bidirectional(b: Builder, e, pos, kw, env):
    if len(pos) != 1:
        raise TypeCheckError("bidirectional(Cell(...)) takes one cell", e.span, code="E339")
    return BidirectionalLayer(b.as_layer(pos[0][0], pos[0][1]), span=e.span)


def _reverse(b: Builder, e, pos, kw, env):
    if len(pos) != 1 or kw:
        raise TypeCheckError("reverse(Cell(...)) takes one cell", e.span, code="E339")
    return ReverseLayer(b.as_layer(pos[0][0], pos[0][1]), span=e.span)


def _grad(b: Builder, e, pos, kw, env):
    """`grad(expr, wrt)`: the gradient of a scalar with respect to a tensor it depends on (WGAN-GP's
    penalty). Lowered by re-running the part of the graph between `wrt` and `expr` under jax.grad."""
    args = [p for p, _ in pos] + [kw.pop(k) for k in ("expr", "wrt") if k in kw]
    if kw or len(args) != 2 or not all(isinstance(a, TensorVal) for a in args):
        raise TypeCheckError("grad(expr, wrt) takes a scalar tensor and the tensor to differentiate by",
                             e.span, code="E353")
    out, wrt = args
    if out.type.rank != 0:
        raise ShapeError(f"grad needs a scalar to differentiate, found {out.type}", pos[0][1] if pos else e.span,
                         code="E307", help="reduce it first, e.g. sum(...)")
    if wrt.node not in b.g.ancestors([out.node]):
        raise TypeCheckError("grad: the expression does not depend on `wrt`", e.span, code="E354")
    return b.add_node("grad", [out, wrt], {}, e.span)


def _last(b: Builder, e, pos, kw, env):
    """`seq -> last(lengths=n)` picks each sequence's final valid step; plain `last` the final one."""
    if "lengths" not in kw:
        return NotImplemented
    lengths = kw.pop("lengths")
    if kw or len(pos) > 1:
        raise TypeCheckError("last takes a sequence and `lengths=`", e.span, code="E322")
    if not isinstance(lengths, TensorVal):
        raise TypeCheckError(f"`lengths` must be a tensor, found {describe(lengths)}", e.span, code="E321")
    layer = OpLayer("last_masked", {}, bound=[lengths], span=e.span)
    return b.apply(layer, [pos[0][0]], e.span) if pos else layer


def _shard(b: Builder, e, pos, kw, env):
    """`shard(x, "data", none)`: one mesh axis name (or none) per axis of x."""
    if kw or not pos or not isinstance(pos[0][0], TensorVal):
        raise TypeCheckError('shard(x, AXIS, ...) takes a tensor and one mesh axis name or `none` per axis',
                             e.span, code="E355")
    axes = tuple(v for v, _ in pos[1:])
    for v, s in pos[1:]:
        if v is not None and not isinstance(v, str):
            raise TypeCheckError(f"a mesh axis is a name in quotes or `none`, found {describe(v)}", s, code="E355")
    return b.add_node("shard", [pos[0][0]], {"axes": axes}, e.span)


SPECIAL.update({"shard": _shard, "last": _last, "unroll": _unroll, "bidirectional": _bidirectional,
                "reverse": _reverse,
                "grad": _grad})
