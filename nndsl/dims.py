"""Sizes for symbolic dimensions given from outside (`--dim time=32`), so a sequence model or a
standalone block whose structure depends on a size can be drawn, summarized and exported."""
from __future__ import annotations

import jax

from .elaborate.apply import dtype_of
from .errors import NndslError
from .ir.graph import Graph
from .ir.types import TensorType
from .syntax import ast
from .values import NeedsConcrete


def fixed_types(model, plain) -> tuple:
    """The model's input types with the dimensions named in `model.dims` fixed; `plain` is the
    same model without them (nndsl/api.py makes it), whose graph gives the types to fix."""
    try:
        g = plain.graph()
        types = [g.node(i).type for i in g.inputs]
    except NeedsConcrete:  # decided only with sizes: read the declarations themselves
        types = declared_types(model)
    return tuple(TensorType(tuple(model.dims.get(d, d) if isinstance(d, str) else d for d in t.shape), t.dtype)
                 for t in types)


def declared_types(model) -> list:
    """Input types straight from `input NAME: [dims]` (a name stays symbolic unless it is a static
    argument; a number is its size)."""
    defn = model.program.defs.definitions[model.name]
    args = {p.name: p.default.value for p in defn.params if isinstance(p.default, ast.Number)}
    args.update(model.args)
    out = []
    for s in defn.body:
        if not isinstance(s, ast.Input) or s.name not in model.input_names:
            continue
        dims = []
        for d in s.type.dims:
            if isinstance(d, ast.Number) and isinstance(d.value, int):
                dims.append(d.value)
            elif isinstance(d, ast.Name) and isinstance(args.get(d.id), int):
                dims.append(args[d.id])
            elif isinstance(d, ast.Name) and d.id not in args:
                dims.append(d.id)
            else:
                raise NndslError(f"cannot read the size of input `{s.name}` from its declaration; give the "
                                 "symbolic sizes with --dim NAME=SIZE", d.span, code="E352")
        out.append(TensorType(tuple(dims), dtype_of(s.type)))
    return out


def check_inputs(model, arrays) -> None:
    """`run --dim`: the given arrays must have the sizes the dimensions were given."""
    if not model.dims:
        return
    g = model.graph()
    for nid, x, name in zip(g.inputs, arrays, model.input_names):
        t = g.node(nid).type
        plain = declared_types(model) if len(declared_types(model)) == len(arrays) else None
        for axis, (want, have) in enumerate(zip(t.shape, getattr(x, "shape", ()))):
            if isinstance(want, int) and want != have:
                what = plain[model.input_names.index(name)].shape[axis] if plain else axis
                raise NndslError(f"input `{name}` has size {have} on axis {axis}, but --dim gives "
                                 f"{what}={want}", code="E672")


def random_key(g, seed):
    """`run --seed`: a key for a graph that samples (from `seed`, else 0); None otherwise, so a
    model whose noise is optional (noise_injection) runs as it always has."""

    def samples(graph):
        return any(n.op == "sample" or (isinstance(n.attrs.get("body"), Graph) and samples(n.attrs["body"]))
                   for n in graph.nodes())
    if seed is None and not samples(g):
        return None
    return jax.random.key(seed or 0)
