"""The AST: small frozen dataclasses, structure only, each carrying the span it came from.

Spans are excluded from equality so that `parse(unparse(t)) == t` can hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..source import Span


def _span():
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Node:
    pass


# ---- expressions
@dataclass(frozen=True)
class Name(Node):
    id: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Number(Node):
    value: int | float
    text: str = field(default="", compare=False)
    span: Span | None = _span()


@dataclass(frozen=True)
class String(Node):
    value: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Bool(Node):
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True)
class ListExpr(Node):
    items: tuple
    span: Span | None = _span()


@dataclass(frozen=True)
class Paren(Node):
    expr: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Kwarg(Node):
    name: str
    value: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Call(Node):
    func: Node
    args: tuple  # of expressions and Kwarg
    span: Span | None = _span()


@dataclass(frozen=True)
class Attr(Node):
    obj: Node
    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Index(Node):
    obj: Node
    index: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Chain(Node):
    """`a -> f -> g`, kept flat so a long chain is not a deep tree."""

    items: tuple
    span: Span | None = _span()


@dataclass(frozen=True)
class BinOps(Node):
    """A left-associative run of same-precedence operators: `a + b - c`, flat."""

    operands: tuple
    ops: tuple
    span: Span | None = _span()


@dataclass(frozen=True)
class Power(Node):
    base: Node
    exp: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Compare(Node):
    left: Node
    op: str
    right: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" | "or"
    operands: tuple
    span: Span | None = _span()


@dataclass(frozen=True)
class If(Node):
    cond: Node
    then: Node
    orelse: Node
    span: Span | None = _span()


# ---- statements
@dataclass(frozen=True)
class TypeExpr(Node):
    dtype: str | None
    dims: tuple
    span: Span | None = _span()


@dataclass(frozen=True)
class ArgDecl(Node):
    name: str
    type: str | None
    default: Node | None
    span: Span | None = _span()


@dataclass(frozen=True)
class Input(Node):
    name: str
    type: TypeExpr
    span: Span | None = _span()


@dataclass(frozen=True)
class State(Node):
    name: str
    type: TypeExpr
    init: Node | None
    span: Span | None = _span()


@dataclass(frozen=True)
class Param(Node):
    name: str
    type: TypeExpr
    init: Node | None
    span: Span | None = _span()


@dataclass(frozen=True)
class Output(Node):
    name: str
    value: Node | None
    span: Span | None = _span()


@dataclass(frozen=True)
class Assign(Node):
    targets: tuple  # of str; several for `a, b = split(...)`
    value: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Data(Node):
    value: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Instance(Node):
    name: str
    value: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Loss(Node):
    name: str
    value: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Metric(Node):
    name: str
    value: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Step(Node):
    models: tuple
    repeat: int
    loss: Node
    optimizer: Node
    span: Span | None = _span()
    model_spans: tuple = field(default=(), compare=False, repr=False)  # where each model is named


@dataclass(frozen=True)
class Setting(Node):
    key: str
    value: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Sample(Node):
    value: Node
    every: Node
    span: Span | None = _span()


@dataclass(frozen=True)
class Draw(Node):
    name: str
    dist: Node
    span: Span | None = _span()


# ---- definitions
@dataclass(frozen=True)
class ModelDef(Node):
    kind: str  # "model" | "cell"
    name: str
    params: tuple  # of ArgDecl
    body: tuple
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True)
class TrainDef(Node):
    name: str
    body: tuple
    span: Span | None = _span()
    name_span: Span | None = _span()


@dataclass(frozen=True)
class Import(Node):
    target: str
    is_path: bool
    span: Span | None = _span()


@dataclass(frozen=True)
class Module(Node):
    items: tuple
    span: Span | None = _span()


_CHILD_FIELDS: dict = {}


def children(node: Node):
    """The nodes directly under `node`, in field order (tuples flattened; spans skipped)."""
    names = _CHILD_FIELDS.get(type(node))
    if names is None:
        names = _CHILD_FIELDS[type(node)] = tuple(
            f for f in node.__dataclass_fields__ if f not in ("span", "name_span", "text"))
    for name in names:
        v = getattr(node, name)
        if isinstance(v, Node):
            yield v
        elif isinstance(v, tuple):
            for x in v:
                if isinstance(x, Node):
                    yield x
