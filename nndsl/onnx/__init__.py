"""Models out to ONNX, weights in from PyTorch.

ONNX export lowers nndsl's own graph (as built and checked, before the optimization passes) one op
at a time through the table in nndsl/onnx/table.py, rather than converting the jaxpr: the graph
still knows what each layer is, so a conv becomes one `Conv` node named `conv2d_0` with the
initializer `conv2d_0.kernel`, a stdlib LSTM becomes one `LSTM` node, and batchnorm is
`BatchNormalization` with its running statistics. A jaxpr has already dissolved those into
`conv_general_dilated`, `dot_general` and elementwise arithmetic.

The `onnx` package is imported only here, so nndsl works without the `[onnx]` extra.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import NndslError


def _need_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise NndslError("ONNX export needs the onnx package", code="E615",
                         help="pip install 'nndsl[onnx]'") from None


TRAIN_ONLY = {"loss", "metric", "random"}


def walk(e, g, env: dict) -> None:
    """Lowers every node of `g` not yet in `env` (its inputs are), in order."""
    from ..ops.registry import OPS
    from .emit import Unsupported
    from .recurrent import lower_scan
    from .table import LOWER, unhandled
    needed = g.ancestors(list(g.outputs.values()))
    for nid in g.topo_order():
        if nid in env or nid not in needed:
            continue
        node = g.node(nid)
        ins = [env[i] for i in g.input_ids(nid)]
        types = [g.node(i).type for i in g.input_ids(nid)]
        try:
            if node.op == "scan":
                env[nid] = lower_scan(e, g, node, ins, walk)
                continue
            fn = LOWER.get(node.op)
            extra = unhandled(node)
            if extra:
                raise Unsupported(f"the argument{'s' if len(extra) > 1 else ''} "
                                  f"{', '.join(f'`{k}`' for k in extra)} {'have' if len(extra) > 1 else 'has'} "
                                  f"no ONNX form here yet")
            if fn is None:
                kind = getattr(OPS.get(node.op), "kind", "internal")
                why = ("it draws random numbers, and an exported model is deterministic" if kind == "random" else
                       "a loss or metric belongs to training" if kind in TRAIN_ONLY or node.op == "grad" else
                       "it has no ONNX form yet")
                raise Unsupported(f"{why}")
            if node.label is None:  # a name for the ONNX node (the emitter makes it unique)
                node = dataclasses.replace(node, label=node.op)
            env[nid] = fn(e, node, ins, types)
        except Unsupported as u:
            raise NndslError(f"cannot export `{node.op}` to ONNX: {u}", node.span, code="E660",
                             help="export a model without it, or with the jaxexport format") from None


def export_onnx(model, variables: dict | None, path: str | Path, dims: dict | None = None,
                opset: int = 17, check: bool = True) -> Path:
    """Writes `model` with these variables ({"params", "state"}; None for fresh ones from key 0)
    as an ONNX file. Sizes that stay symbolic in the model's inputs (`batch`, `time`) stay
    symbolic in the ONNX graph; `dims` fixes some of them ({"time": 20})."""
    _need_onnx()
    from ..io import atomic_write
    from .emit import Emitter, prune, tidy_transposes

    g = _graph_for(model, dict(dims or {}))
    e = Emitter(*_weights(model, g, variables))
    env: dict = {}
    inputs = _emit_inputs(e, g, env)
    walk(e, g, env)
    outputs, out_names = _emit_outputs(e, g, env)
    nodes = prune(tidy_transposes(e.nodes, e.inits), out_names)
    m = _assemble(model.name, e, nodes, inputs, outputs, opset)
    if check:
        checked(m)
    atomic_write(Path(path), m.SerializeToString())
    return Path(path)


def _graph_for(model, dims: dict):
    """The model's graph with the sizes `dims` fixes put into its declared input types (the
    graph as declared when there are none), so what stays symbolic stays a name in ONNX."""
    from ..ir.types import TensorType
    types = [TensorType(tuple(dims.get(d, d) if isinstance(d, str) else d for d in t.shape), t.dtype)
             for t in _declared(model)]
    return model.graph(tuple(types)) if dims else model.graph()


def _weights(model, g, variables: dict | None) -> tuple[dict, dict]:
    """(params, state) as numpy trees, checked against the graph. Fresh ones (no variables given)
    need every parameter size fixed: a symbolic size has no value to draw weights for."""
    import jax
    import numpy as np
    if variables is None:
        unsized = sorted({d for spec in (*g.params.values(), *g.state.values()) for d in spec.shape
                          if not isinstance(d, int)})
        if unsized:
            raise NndslError(f"`{model.name}` has parameters sized by {', '.join(f'`{d}`' for d in unsized)}: "
                             f"fresh weights need {'them' if len(unsized) > 1 else 'it'} fixed", code="E663",
                             help="give the sizes (export_onnx(..., dims={...})) or trained --weights")
        variables = _fresh(model, g)
    params = jax.tree_util.tree_map(np.asarray, variables.get("params", {}))
    state = jax.tree_util.tree_map(np.asarray, variables.get("state", {}))
    _check_weights(g, params, state)
    return params, state


def _emit_inputs(e, g, env: dict) -> list:
    """The graph inputs' value infos; each symbolic size is recorded with the first input axis
    that carries it, where ops that need the size at run time (a reshape) read it."""
    from .emit import value_info
    inputs = []
    for nid in g.inputs:
        n = g.node(nid)
        name = e.fresh(n.attrs["name"])
        env[nid] = name
        inputs.append(value_info(name, n.type))
        for axis, d in enumerate(n.type.shape):
            if isinstance(d, str):
                e.sizes.setdefault(d, (name, axis))
    return inputs


def _emit_outputs(e, g, env: dict) -> tuple[list, set]:
    """(value infos, names) of the outputs. Each is an Identity named by the model's output, so
    the ONNX graph's outputs keep the .nn names even where one value is two outputs or an input;
    a symbolic size no input binds is left unnamed, since nothing at run time would give it."""
    from onnx import helper

    from .emit import value_info
    outputs = []
    out_names = set()
    for oname, nid in g.outputs.items():
        v = env[nid]
        name = e.fresh(oname) if oname in e.taken else oname
        e.taken.add(name)
        e.add_node(helper.make_node("Identity", [v], [name], name=e.fresh(f"output/{oname}")))
        outputs.append(value_info(name, g.node(nid).type, lambda d: d in e.sizes))
        out_names.add(name)
    return outputs, out_names


def _assemble(name: str, e, nodes: list, inputs: list, outputs: list, opset: int):
    """The ModelProto: only the initializers some kept node reads, and the opset and IR version
    asked for (never below what the emitter's ops need)."""
    from onnx import helper

    from .emit import OPSET
    used = {i for n in nodes for i in _all_reads(n)}
    inits = [v for k, v in e.inits.items() if k in used]
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(opset, OPSET))],
                          producer_name="nndsl", producer_version=__import__("nndsl").__version__)
    # the oldest IR version that carries this opset: what older runtimes still load
    m.ir_version = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}.get(max(opset, OPSET), 10)
    return m


def _all_reads(n):
    from .emit import _reads
    return _reads(n)


def checked(m):
    """The model through onnx's checker with full shape inference: what a runtime will trust."""
    import onnx
    try:
        onnx.checker.check_model(m, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:  # our bug: no traceback
        raise NndslError(f"the ONNX graph nndsl wrote fails onnx's checker ({str(exc).splitlines()[0]})",
                         code="E661", help="please report this with the .nn file") from None
    return m


def _declared(model) -> list:
    """The inputs' declared types, read from the definition: a model whose structure depends on
    an input size (a block that projects only when widths differ) has no graph until `dims` fix it."""
    from ..ir.types import DTYPES, TensorType
    from ..syntax import ast
    defn = model.program.defs.definitions[model.name]
    out = []
    for stmt in defn.body:
        if isinstance(stmt, ast.Input):
            shape = []
            for d in stmt.type.dims:
                if isinstance(d, ast.Name):
                    shape.append(d.id)
                elif isinstance(d, ast.Number) and isinstance(d.value, int):
                    shape.append(d.value)
                else:  # an expression of the model's arguments: the built graph knows its value
                    return [model.graph().node(n).type for n in model.graph().inputs]
            out.append(TensorType(tuple(shape), DTYPES.get(stmt.type.dtype or "f32", "float32")))
    return out


def _fresh(model, g) -> dict:
    import jax

    from ..lower import interpret
    return interpret.init_variables(g.params, g.state, jax.random.key(0))


def _check_weights(g, params, state) -> None:
    """Every parameter the graph names is there with its shape (shapes with symbolic sizes aside)."""
    from ..lower.interpret import get_path
    for tree, specs, what in ((params, g.params, "parameter"), (state, g.state, "state")):
        for path, spec in specs.items():
            try:
                v = get_path(tree, path)
            except (KeyError, TypeError):
                raise NndslError(f"the weights lack the {what} `{'.'.join(path)}`", code="E604") from None
            if all(isinstance(d, int) for d in spec.shape) and tuple(v.shape) != tuple(spec.shape):
                raise NndslError(f"`{'.'.join(path)}` has shape {list(v.shape)}, the model needs "
                                 f"{list(spec.shape)}", code="E605")
