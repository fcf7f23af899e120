"""Applying layers: ops, models used as layers, chains, stacks and bound instances; cells are
in cells.py, `unroll` with feedback in generate.py (registered in LAYER_APPLIERS)."""
from __future__ import annotations

import itertools

from ..errors import LimitError, NameResolutionError, TypeCheckError, UnsupportedError
from ..ops import OPS
from ..syntax import ast
from ..values import (
    BidirectionalLayer,
    BoundLayer,
    ChainLayer,
    Layer,
    ModelLayer,
    OpLayer,
    Poison,
    Poisoned,
    Record,
    ReverseLayer,
    StackLayer,
    TensorVal,
    TupleVal,
    UnrollLayer,
    describe,
)
from .builder import MAX_DEPTH, Builder, Env, Scope, rename_in_source_order
from .cells import apply_cell
from .decls import dtype_of  # noqa: F401  (re-exported: nndsl/dims.py reads it here)
from .statements import run_body


def apply_layer(b: Builder, layer: Layer, inputs: list, span, path: tuple | None = None):
    """Applies a layer to its inputs; `path` names its parameters (fresh in the current scope
    unless given: a bound instance's own)."""
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
        return _apply_chain(b, layer, inputs, span, path)
    if isinstance(layer, UnrollLayer):
        return apply_cell(b, layer.layer, inputs, span, path or b.scope.fresh("unroll", layer.span or span),
                          unroll=layer.steps)
    if isinstance(layer, ReverseLayer):
        return apply_cell(b, layer.layer, inputs, span, path or b.scope.fresh("reverse", layer.span or span),
                          reverse=True)
    if isinstance(layer, BidirectionalLayer):
        return _apply_bidirectional(b, layer, inputs, span, path)
    for cls, fn in LAYER_APPLIERS.items():
        if isinstance(layer, cls):
            return fn(b, layer, inputs, span, path)
    raise TypeCheckError(f"expected a layer, found {describe(layer)}", span)


def _apply_chain(b: Builder, layer, inputs: list, span, path):
    """`a -> b -> c`, or `a * n`: each layer's outputs are the next one's inputs."""
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


def _apply_bidirectional(b: Builder, layer: BidirectionalLayer, inputs: list, span, path):
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
    before = len(b.unchecked)
    with b.inside(defn.name, path, span):
        env = Env(dict(args))
        outputs = run_body(b, defn, env, inputs, top_types, call_span=span if inputs is not None else None)
        rename_in_source_order(b, b.scope)
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
