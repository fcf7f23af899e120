"""Train blocks to a graph plus the plan that drives it: data, instances, losses, steps, settings.

The whole block is shape-checked here, before any data is read: logits against labels, each
model's output against the next model's input, every loss a scalar.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NameResolutionError, ShapeError, TypeCheckError, closest
from ..ir.graph import Graph
from ..ir.types import TensorType
from ..ops.registry import OPS, OpError
from ..syntax import ast
from ..values import BoundLayer, ModelLayer, Poison, Poisoned, Record, Sym, TensorVal, describe
from . import order as ordering
from .builder import Builder, Env, bind_args
from .exprs import as_layer, is_layer
from .optim import eval_optimizer
from .statements import Body, define, run_statement, statement


@dataclass
class StepSpec:
    models: tuple
    repeat: int
    loss: str
    loss_node: str
    optimizer: object
    span: object = None


@dataclass
class TrainSpec:
    name: str
    graph: Graph
    data: object | None
    data_inputs: dict = field(default_factory=dict)  # field -> input node id
    instances: dict = field(default_factory=dict)  # name -> span
    models: dict = field(default_factory=dict)  # instance name -> (model name, bound args)
    losses: dict = field(default_factory=dict)  # name -> node id
    metrics: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)
    span: object = None


SETTING_TYPES = {"epochs": int, "iterations": int, "seed": int, "clip_norm": float, "eval_every": int,
                 "precision": str}
# Upper bounds that no real run reaches but that keep counters, seeds and loops finite: a run of
# 10**20 iterations is a hang, not a plan; a seed must fit the 32-bit words of a JAX key.
SETTING_MAX = {"epochs": 10**6, "iterations": 10**9, "seed": 2**32 - 1, "eval_every": 10**9}
MAX_STEP_REPEAT = 10_000
# `precision NAME`: the dtype a train block's ops compute in (parameters stay float32)
PRECISION_NAMES = ("f32", "bf16", "f16")


def find_train(program, name: str | None):
    trains = program.trains()
    if name is None:
        if len(trains) == 1:
            return program.definitions[trains[0]]
        raise NameResolutionError(
            "this file has no train block" if not trains else
            f"this file has {len(trains)} train blocks; name one: {', '.join(trains)}", None, code="E212")
    if not isinstance(name, str):
        raise NameResolutionError(f"a train block is named by a string, found {type(name).__name__}", None,
                                  code="E212", help=f"train blocks: {', '.join(trains) or 'none'}")
    d = program.definitions.get(name)
    if not isinstance(d, ast.TrainDef):
        guess = closest(name, trains)
        raise NameResolutionError(f"no train block named `{name}`", None, code="E212",
                                  help=f"did you mean `{guess}`?" if guess
                                  else f"train blocks: {', '.join(trains) or 'none'}")
    return d


@dataclass
class TrainBody(Body):
    """A train block whose statements are running: the plan they fill in, and what `data` needs
    (the batch size, None for a symbolic one, and the folder data paths are read from)."""
    spec: TrainSpec = None
    batch: int | None = None
    base: Path | None = None
    kind = "train"


def build_train(program, name: str | None, batch: int | None = None, base: Path | None = None,
                builder: Builder | None = None) -> TrainSpec:
    defn = find_train(program, name)
    b = builder or Builder(program)
    spec = TrainSpec(defn.name, b.g, None, span=defn.name_span)
    body = TrainBody(b, Env({}), spec, batch, base)
    data_stmts = [s for s in defn.body if isinstance(s, ast.Data)]
    if len(data_stmts) > 1:
        raise TypeCheckError("a train block has one `data` statement", data_stmts[1].span, code="E341")
    for stmt in ordering.order(list(defn.body)):
        run_statement(body, stmt)
    if spec.data is not None:
        from .datacheck import check_ids
        b.errors.extend(check_ids(spec))
    b.raise_errors()
    # Outputs are the graph's roots: passes keep them (and keep their names when they rewrite).
    b.g.outputs.update(spec.losses)
    b.g.outputs.update(spec.metrics)
    for st in spec.steps:
        b.g.outputs.setdefault(st.loss, st.loss_node)
    for i, (nid, _, _) in enumerate(spec.samples):
        b.g.outputs[f"sample_{i}"] = nid
    if not spec.steps:
        raise TypeCheckError(f"train block `{defn.name}` has no `step`", defn.name_span, code="E345",
                             help="add `step MODEL minimize LOSS with adam(lr=1e-3)`")
    if "epochs" in spec.settings and "iterations" in spec.settings:
        raise TypeCheckError("give `epochs` or `iterations`, not both", defn.name_span, code="E346")
    return spec


# ---------------------------------------------------------------------- train block statements
@statement(ast.Data, only="train")
def _data_stmt(body: TrainBody, stmt: ast.Data):
    body.spec.data = _data(body.b, stmt, body.env, body.spec, body.batch, body.base)


@statement(ast.Instance, only="train")
def _instance(body: TrainBody, stmt: ast.Instance):
    """`model g = Generator(64)`: one instance, with its own parameters, that steps train."""
    layer = body.b.eval(stmt.value, body.env)
    if not is_layer(layer):
        raise TypeCheckError(f"`model {stmt.name} = ...` needs a model, found {describe(layer)}",
                             stmt.value.span, code="E342")
    inner = as_layer(body.b, layer, stmt.value.span)
    define(body.env, stmt.name, BoundLayer(stmt.name, inner, ()), stmt.span)
    body.spec.instances[stmt.name] = stmt.span
    if isinstance(inner, ModelLayer):
        body.spec.models[stmt.name] = (inner.defn.name, inner.args)


@statement(ast.Loss, only="train")
@statement(ast.Metric, only="train")
def _loss(body: TrainBody, stmt):
    v = body.b.eval(stmt.value, body.env)
    what = "loss" if isinstance(stmt, ast.Loss) else "metric"
    if not isinstance(v, TensorVal):
        raise TypeCheckError(f"{what} `{stmt.name}` must be a tensor, found {describe(v)}",
                             stmt.value.span, code="E343")
    if v.type.rank != 0:
        raise ShapeError(f"{what} `{stmt.name}` must be a scalar, found {v.type}", stmt.value.span,
                         code="E307", help="reduce it with mean(...) or sum(...)")
    define(body.env, stmt.name, v, stmt.span)
    (body.spec.losses if what == "loss" else body.spec.metrics)[stmt.name] = v.node


@statement(ast.Draw, only="train")
def _draw(body: TrainBody, stmt: ast.Draw):
    """`z ~ normal(...)`: a fresh sample every step, named after the variable."""
    b = body.b
    v = b.eval(stmt.dist, body.env)
    node = b.g.node(v.node) if isinstance(v, TensorVal) else None
    if node is None or node.op not in OPS or not OPS[node.op].random:
        raise TypeCheckError(f"`{stmt.name} ~ ...` draws from a distribution (normal, uniform, "
                             f"bernoulli, categorical), found {describe(v)}", stmt.dist.span, code="E344")
    node.path = ("~" + stmt.name,)
    define(body.env, stmt.name, v, stmt.span)


@statement(ast.Step, only="train")
def _step_stmt(body: TrainBody, stmt: ast.Step):
    body.spec.steps.append(_step(body.b, stmt, body.env, body.spec))


@statement(ast.Setting, only="train")
def _setting_stmt(body: TrainBody, stmt: ast.Setting):
    body.spec.settings[stmt.key] = _setting(body.b, stmt, body.env)


@statement(ast.Sample, only="train")
def _sample(body: TrainBody, stmt: ast.Sample):
    v = body.b.eval(stmt.value, body.env)
    every = body.b.eval(stmt.every, body.env)
    if not isinstance(v, TensorVal):
        raise TypeCheckError(f"`sample` needs a tensor, found {describe(v)}", stmt.value.span)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise TypeCheckError("`every` needs a positive integer", stmt.every.span)
    body.spec.samples.append((v.node, every, stmt.span))


def _data(b, stmt, env, spec, batch, base):
    from ..data.sources import SOURCES, make_source
    e = stmt.value
    fname = (e.id if isinstance(e, ast.Name)
            else e.func.id if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) else None)
    if fname not in SOURCES:
        guess = closest(fname or "", SOURCES)
        raise NameResolutionError(f"unknown data source{f' `{fname}`' if fname else ''}", e.span, code="E213",
                                  help=f"did you mean `{guess}`?" if guess else f"sources: {', '.join(SOURCES)}")
    pos, kw, spans = [], {}, {}
    for a in (e.args if isinstance(e, ast.Call) else ()):
        if isinstance(a, ast.Kwarg):
            kw[a.name], spans[a.name] = b.eval(a.value, env), a.span
        else:
            pos.append((b.eval(a, env), a.span))
    attrs = bind_args(fname, SOURCES[fname][0], pos, kw, e.span, spans)
    try:
        src = make_source(fname, attrs, base)
    except OpError as err:
        raise TypeCheckError(str(err), e.span, code=getattr(err, "code", "E347"), help=err.help) from None
    src.span = stmt.span
    size = batch if batch is not None else Sym("batch")
    dim = size.expr if isinstance(size, Sym) else size
    fields = {}
    for f, t in src.fields.items():
        tt = TensorType((dim,) + tuple(t.shape), t.dtype)
        node = b.g.add("input", [], {"name": f"data.{f}"}, tt, stmt.span, label=f"data.{f}")
        b.g.inputs.append(node.id)
        spec.data_inputs[f] = node.id
        fields[f] = TensorVal(node.id, tt, stmt.span)
    define(env, "data", Record({**src.statics, **fields}, "data source"), stmt.span)
    env.values.setdefault("batch", size)
    return src


def _step(b, stmt, env, spec) -> StepSpec:
    for i, m in enumerate(stmt.models):
        if isinstance(env.values.get(m), Poison):
            raise Poisoned(m)  # its own definition already reported the error
        if m not in spec.instances:
            guess = closest(m, spec.instances)
            where = stmt.model_spans[i] if i < len(stmt.model_spans) else stmt.span
            raise NameResolutionError(f"`step` over unknown model `{m}`", where, code="E214",
                                      help=f"did you mean `{guess}`?" if guess else
                                      "declare it with `model NAME = Model(...)`")
    loss = b.eval(stmt.loss, env)
    if not isinstance(loss, TensorVal):
        raise TypeCheckError(f"`minimize` needs a loss, found {describe(loss)}", stmt.loss.span, code="E343")
    if loss.type.rank != 0:
        raise ShapeError(f"`minimize` needs a scalar loss, found {loss.type}", stmt.loss.span, code="E307")
    loss_name = stmt.loss.id if isinstance(stmt.loss, ast.Name) else f"loss_{len(spec.steps)}"
    anc = b.g.ancestors([loss.node])
    touched = {b.g.node(n).path[0] for n in anc if b.g.node(n).path}
    if not set(stmt.models) & touched:
        raise TypeCheckError(f"loss `{loss_name}` does not depend on the parameters of "
                             f"{', '.join(stmt.models)}", stmt.loss.span, code="E348",
                             help="minimizing it would not change the model")
    if stmt.repeat < 1:
        raise TypeCheckError("a step repeats at least once", stmt.span)
    if stmt.repeat > MAX_STEP_REPEAT:
        raise TypeCheckError(f"a step repeats at most {MAX_STEP_REPEAT:,} times, found {stmt.repeat:,}",
                             stmt.span, code="E349")
    opt = eval_optimizer(b, stmt.optimizer, env)
    return StepSpec(stmt.models, stmt.repeat, loss_name, loss.node, opt, stmt.span)


def _setting(b, stmt, env):
    if stmt.key == "precision":  # a dtype's name, as in `input x: bf16[...]`
        v = stmt.value.id if isinstance(stmt.value, ast.Name) else None
        if v not in PRECISION_NAMES:
            raise TypeCheckError(f"`precision` takes one of {', '.join(PRECISION_NAMES)}", stmt.value.span,
                                 code="E349", help="e.g. `precision bf16`: ops compute in bfloat16, "
                                 "parameters and optimizer state stay float32")
        return v
    v = b.eval(stmt.value, env)
    want = SETTING_TYPES[stmt.key]
    if stmt.key == "seed" and isinstance(v, int) and not isinstance(v, bool) and v == 0:
        return v  # seed 0 is a seed
    if want is int and isinstance(v, float) and v.is_integer() and 1 <= v <= SETTING_MAX[stmt.key]:
        v = int(v)  # `iterations 1e4`
    if want is int and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
        raise TypeCheckError(f"`{stmt.key}` needs a positive integer, found {describe(v)}", stmt.value.span,
                             code="E349")
    if want is int and v > SETTING_MAX[stmt.key]:
        raise TypeCheckError(f"`{stmt.key}` is at most {SETTING_MAX[stmt.key]:,}, found {v:,}", stmt.value.span,
                             code="E349")
    if want is float and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0
                          or v == float("inf")):  # `not v > 0` also refuses nan
        raise TypeCheckError(f"`{stmt.key}` needs a finite positive number, found {describe(v)}", stmt.value.span,
                             code="E349")
    return v


def check_setting(key: str, v):
    """A setting given from outside the file (the command line, `Program.trainer(...)`), held to
    the same bounds as one written in the train block; `v` itself when it is fine."""
    lo = 0 if key == "seed" else 1
    if SETTING_TYPES[key] is float:
        import math
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise TypeCheckError(f"`{key}` must be a finite number above 0, found {v!r}"[:200], None, code="E349")
        return v
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= SETTING_MAX[key]:
        from ..bounds import short
        shown = short(v) if isinstance(v, (int, float)) else type(v).__name__
        raise TypeCheckError(f"`{key}` needs an integer from {lo} to {SETTING_MAX[key]:,}, found {shown}",
                             None, code="E349")
    return v


def check_memory(spec: TrainSpec, max_memory: int | None, what: str) -> None:
    """The train block's parameters, activations at its batch size and generated data against
    the memory limit: `nndsl check` and `nndsl train` ask the same question here."""
    from ..limits import check_graph
    data_span = None
    if spec.data_inputs:
        data_span = spec.graph.node(next(iter(spec.data_inputs.values()))).span
    batch = spec.data.batch if spec.data is not None else None
    check_graph(spec.graph, max_memory, what, batch=batch, data=spec.data, data_span=data_span)
