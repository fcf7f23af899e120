"""AST to graph. `build_model` is the entry point for one model with bound static arguments."""
from __future__ import annotations

from ..errors import NameResolutionError, TypeCheckError
from ..ir.graph import Graph
from ..syntax import ast
from ..values import TensorVal
from . import apply as _apply
from . import calls, exprs  # noqa: F401  (fill EXPRS, which Builder.eval dispatches on)
from . import generate as _generate  # noqa: F401  (unroll with feedback)
from .builder import Builder
from .calls import bind_model_args


def find_model(program, name: str, span=None):
    from ..errors import closest
    d = program.definitions.get(name)
    if not isinstance(d, ast.ModelDef):
        guess = closest(name, program.models())
        raise NameResolutionError(f"no model named `{name}`", span, code="E210",
                                  help=f"did you mean `{guess}`?" if guess else
                                  f"models here: {', '.join(program.models()) or 'none'}")
    return d


def build_model(program, name: str, args: dict, input_types=None, builder: Builder | None = None) -> Graph:
    """Elaborates model `name`; symbolic dims unless `input_types` gives concrete ones. `builder`
    is a fresh Builder set up by the caller (the checker's, which records what it could not decide)."""
    defn = find_model(program, name)
    if defn.kind == "cell":
        return build_cell(program, defn, args, input_types, builder)
    b = builder or Builder(program)
    bound = bind_model_args(b, defn, [], dict(args), defn.name_span)
    outs = _apply.elaborate_model(b, defn, bound, None, (), defn.name_span, input_types)
    b.raise_errors()
    for oname, v in outs.items():
        if not isinstance(v, TensorVal):
            raise TypeCheckError(f"output `{oname}` of the applied model must be one tensor", defn.name_span)
        b.g.outputs[oname] = v.node
    return b.g


def build_cell(program, defn, args, input_types=None, builder: Builder | None = None) -> Graph:
    """A cell on its own is checked as a scan over [batch, time, ...] of its declared step input."""
    from ..ir.types import TensorType
    from ..values import ModelLayer
    from .builder import Env
    from .cells import apply_cell
    from .decls import bind_input
    b = builder or Builder(program)
    bound = bind_model_args(b, defn, [], dict(args), defn.name_span)
    decls = [s for s in defn.body if isinstance(s, ast.Input)]
    if len(decls) != 1:
        raise TypeCheckError(f"cell `{defn.name}` needs exactly one input", defn.name_span, code="E328")
    env = Env(dict(bound))
    step = bind_input(b, decls[0], env, None, None).type
    b.g = Graph(params=b.root.params, state=b.root.state, counter=b.root.counter)  # discard the probe
    seq_t = input_types[0] if input_types else TensorType(step.shape[:1] + ("time",) + step.shape[1:], step.dtype)
    b.g = b.root = Graph()
    node = b.g.add("input", [], {"name": decls[0].name}, seq_t, decls[0].span, label=decls[0].name)
    b.g.inputs.append(node.id)
    from ..values import Poisoned
    try:
        out = apply_cell(b, ModelLayer(defn, bound), [TensorVal(node.id, seq_t, decls[0].span)],
                         defn.name_span, ())
    except Poisoned:
        b.raise_errors()
        raise
    b.raise_errors()
    b.g.outputs["out"] = out.node
    return b.g
