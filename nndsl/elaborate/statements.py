"""Statements: one table, keyed by AST node class, of what each statement of a body does.

Model bodies, cell bodies and train blocks all run their statements through `run_statement`, in
dependency order (order.py), each guarded so that one mistake does not hide the next. A
statement that belongs in one kind of body only registers with `only="model"` or
`only="train"` (train.py registers the train block's own); in the other kind it is refused with
E332. Adding one, once its AST node exists:

    @statement(ast.Node)                   # or @statement(ast.Node, only="train")
    def _node(body, stmt):
        ...                                # body.b, body.env; ModelBody or TrainBody for the rest
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import NameResolutionError, TypeCheckError
from ..syntax import ast
from ..values import BoundLayer, Poison, Record, TensorVal, TupleVal, describe
from . import order as ordering
from .builder import Builder, Env
from .decls import bind_input, make_param
from .exprs import as_layer, is_layer

# AST class -> (handler(body, stmt), the kind of body it belongs in: "model", "train" or None for both)
STATEMENTS: dict = {}
MISPLACED = {"model": "`{}` statements belong in a `train` block",
             "train": "`{}` does not belong in a train block"}


def statement(cls, only: str | None = None):
    """Registers the function it decorates as what statement `cls` does."""
    def register(fn):
        STATEMENTS[cls] = (fn, only)
        return fn
    return register


@dataclass
class Body:
    """A body whose statements are running: the builder and the names defined so far."""
    b: Builder
    env: Env
    kind = "model"


@dataclass
class ModelBody(Body):
    """A model's or a cell's body: the tensors it is applied to (None at the top, where its
    inputs become input nodes, typed by `top_types` when concrete), a cell's states (None in a
    model, which may not declare any), and the outputs it defines."""
    defn: object = None
    inputs: list | None = None
    top_types: list | None = None
    states: dict | None = None
    call_span: object = None
    outputs: dict = field(default_factory=dict)
    decls: list = field(init=False)

    def __post_init__(self):
        self.decls = [s for s in self.defn.body if isinstance(s, ast.Input)]


def run_statement(body: Body, stmt) -> None:
    """Runs one statement; a mistake in it is recorded and the names it defines are poisoned
    (Builder.guarded), so the rest of the body is still checked."""
    def one():
        handler, only = STATEMENTS.get(type(stmt), (None, None))
        if handler is None or only not in (None, body.kind):
            raise TypeCheckError(MISPLACED[body.kind].format(type(stmt).__name__.lower()), stmt.span,
                                 code="E332")
        handler(body, stmt)
    body.b.guarded(stmt, ordering.provides(stmt), body.env, one)


def run_body(b: Builder, defn, env: Env, inputs, top_types, states: dict | None = None,
             call_span=None) -> dict:
    """A model's or cell's statements; its outputs by name (a Poison for one that failed)."""
    body = ModelBody(b, env, defn, inputs, top_types, states, call_span)
    for stmt in ordering.order(defn.body):
        run_statement(body, stmt)
        if isinstance(stmt, ast.Output) and stmt.name not in body.outputs:
            body.outputs[stmt.name] = Poison(stmt.name)
    return body.outputs


# ---------------------------------------------------------------------- model and cell bodies
@statement(ast.Input, only="model")
def _input(body: ModelBody, stmt: ast.Input):
    i = body.decls.index(stmt)
    actual = body.inputs[i] if body.inputs is not None else None
    ttype = body.top_types[i] if body.top_types is not None and i < len(body.top_types) else None
    value = bind_input(body.b, stmt, body.env, actual, ttype, body.call_span, body.defn.name)
    define(body.env, stmt.name, value, stmt.span)


@statement(ast.Param, only="model")
def _param(body: ModelBody, stmt: ast.Param):
    define(body.env, stmt.name, make_param(body.b, stmt, body.env), stmt.span)


@statement(ast.State, only="model")
def _state(body: ModelBody, stmt: ast.State):
    if body.states is None:
        raise TypeCheckError(f"`state` belongs in a `cell`; `{body.defn.name}` is a model", stmt.span,
                             code="E329", help=f"write `cell {body.defn.name}` to make it recurrent")
    define(body.env, stmt.name, body.states[stmt.name], stmt.span)


@statement(ast.Output, only="model")
def _output(body: ModelBody, stmt: ast.Output):
    b, env = body.b, body.env
    value = b.eval(stmt.value, env) if stmt.value is not None else b.eval(ast.Name(stmt.name, stmt.span), env)
    if not isinstance(value, (TensorVal, TupleVal, Record)):
        raise TypeCheckError(f"output `{stmt.name}` must be a tensor, found {describe(value)}",
                             stmt.span, code="E331", help="apply the layer to an input with `->`")
    if stmt.name in body.outputs:
        raise NameResolutionError(f"output `{stmt.name}` is defined twice", stmt.span, code="E201")
    if stmt.value is not None and not (isinstance(stmt.value, ast.Name) and stmt.value.id == stmt.name):
        define(env, stmt.name, value, stmt.span)
    body.outputs[stmt.name] = value


# ---------------------------------------------------------------------- any body
@statement(ast.Assign)
def _assign(body: Body, stmt: ast.Assign):
    """`a = ...`, or `a, b = ...` from a tuple. Only model bodies name the nodes their equations
    compute (what pictures of a model show)."""
    value = body.b.eval(stmt.value, body.env)
    named = body.kind == "model"
    if len(stmt.targets) == 1:
        define(body.env, stmt.targets[0], bind_value(body.b, stmt.targets[0], value), stmt.span)
        if named:
            _name_node(body.b, stmt.targets[0], value)
        return
    items = value.items if isinstance(value, TupleVal) else None
    if items is None or len(items) != len(stmt.targets):
        raise TypeCheckError(f"cannot unpack {describe(value)} into {len(stmt.targets)} names",
                             stmt.span, code="E330")
    for t, v in zip(stmt.targets, items):
        define(body.env, t, v, stmt.span)
        if named:
            _name_node(body.b, t, v)


def define(env: Env, name: str, value, span):
    if name in env.values:
        first = env.spans.get(name)
        raise NameResolutionError(f"`{name}` is defined twice", span, code="E201",
                                  notes=[(first, "first defined here")] if first else [],
                                  help="names are defined once; pick a new name")
    env.values[name] = value
    env.spans[name] = span


def bind_value(b: Builder, name: str, value):
    """`enc = Encoder(64)` binds one shared instance; every other value binds as it is."""
    if isinstance(value, BoundLayer):
        return value
    if is_layer(value):
        return BoundLayer(name, as_layer(b, value, None), b.scope.path)
    return value


def _name_node(b: Builder, name: str, value) -> None:
    """Remembers that equation `name` (`z`, `h_tilde`) computes this node, so pictures can say
    so; the first name wins (`a = x; b = a` names nothing new), inputs keep their own."""
    node = getattr(value, "node", None)
    if isinstance(value, TensorVal) and node in b.g and b.g.node(node).op != "input":
        b.g.names.setdefault(node, name)
