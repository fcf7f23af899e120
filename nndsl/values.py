"""What an expression evaluates to during elaboration: a tensor in the graph, a static value,
a layer (something `->` can apply), or a record of named values (`data.x`, several outputs)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import NndslError
from .ir.types import SymDim, TensorType, dim_op  # noqa: F401  (SymDim re-exported)
from .source import Span


class NeedsConcrete(NndslError):
    """A static decision depends on a symbolic dimension; decided once shapes are bound.

    `nndsl check` skips such a model on its own (it is checked where it is used); anywhere else it
    is a located error."""

    code = "E352"

    def __init__(self, what: str, span: Span | None = None):
        super().__init__(f"cannot decide {what} before the input shapes are known", span,
                         help="give the input concrete sizes (`--dim NAME=SIZE` on the command line), or use the "
                              "model inside one that does")


@dataclass(frozen=True)
class Sym:
    """A symbolic dimension (`batch`) or an expression of them; a static value of unknown size."""

    expr: str

    def _op(self, op, other, flip=False):
        a, b = (other, self) if flip else (self, other)
        a = a.expr if isinstance(a, Sym) else a
        b = b.expr if isinstance(b, Sym) else b
        r = dim_op(a, op, b)
        return Sym(r) if isinstance(r, str) else r

    def __add__(self, o): return self._op("+", o)
    def __radd__(self, o): return self._op("+", o, True)
    def __sub__(self, o): return self._op("-", o)
    def __rsub__(self, o): return self._op("-", o, True)
    def __mul__(self, o): return self._op("*", o)
    def __rmul__(self, o): return self._op("*", o, True)
    def __floordiv__(self, o): return self._op("//", o)
    def __truediv__(self, o): return self._op("//", o)
    def __rtruediv__(self, o): return self._op("//", o, True)

    def __neg__(self):
        return self._op("-", 0, True)

    def __str__(self):
        return self.expr


@dataclass(frozen=True)
class Opaque:
    """A static argument the checker has no stand-in for (a `layer`, an untyped value, a string
    compared with nothing): a statement that needs its value is reported as not checked."""

    name: str
    type: str | None = None


class NamedInt(int):
    """A dimension's size that remembers its name (`batch` bound to 64), so a rule such as
    `reshape([batch, 7, 7, 64])` can still tell the batch axis from a per-example size."""

    dim_name: str = ""

    def __new__(cls, value: int, name: str = ""):
        obj = super().__new__(cls, value)
        obj.dim_name = name
        return obj

    def __reduce__(self):
        return (NamedInt, (int(self), self.dim_name))


@dataclass
class TensorVal:
    node: str
    type: TensorType
    span: Span | None = None
    fields: dict | None = None  # a cell's final states: `enc.h` after `enc = src -> LSTM(64)`


class Poisoned(Exception):
    """A statement read a value whose own definition already failed: no second error for it."""


@dataclass
class Poison:
    """The value of a name whose definition had an error (so later errors are still reported)."""

    name: str


@dataclass
class Captured:
    """A tensor argument seen from inside a cell step, where only a state may read it."""

    name: str


@dataclass
class TupleVal:
    items: list


@dataclass
class Record:
    fields: dict
    what: str = "record"


@dataclass
class OpRef:
    """A registered op named without arguments (`relu`): a layer with defaults when applied."""

    name: str
    span: Span | None = None


@dataclass
class DefRef:
    name: str
    defn: Any
    span: Span | None = None


@dataclass
class Layer:
    span: Span | None = field(default=None, kw_only=True)


@dataclass
class OpLayer(Layer):
    op: str
    attrs: dict
    bound: list = field(default_factory=list)  # trailing tensor inputs given at the call
    kind_name: str | None = None


@dataclass
class ModelLayer(Layer):
    defn: Any  # ast.ModelDef
    args: dict


@dataclass
class ChainLayer(Layer):
    layers: list


@dataclass
class StackLayer(Layer):
    layer: Layer
    n: int


@dataclass
class BoundLayer(Layer):
    name: str
    layer: Layer
    scope: tuple = ()


@dataclass
class UnrollLayer(Layer):
    layer: Layer
    steps: int


@dataclass
class ReverseLayer(Layer):
    """`reverse(Cell(...))`: the cell run from the last step to the first (ONNX's
    direction="reverse"); outputs stay in input order, final states are after the first step."""

    layer: Layer


@dataclass
class BidirectionalLayer(Layer):
    layer: Layer
    merge: str = "concat"


def describe(v) -> str:
    if isinstance(v, TensorVal):
        return f"a tensor {v.type}"
    if isinstance(v, (Layer, OpRef)):
        return "a layer"
    if isinstance(v, DefRef):
        return f"the {getattr(v.defn, 'kind', 'train')} `{v.name}`"
    if isinstance(v, Record):
        return f"a {v.what} with fields {', '.join(v.fields)}"
    if isinstance(v, TupleVal):
        return f"a tuple of {len(v.items)} values"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        from .bounds import short
        return f"the number {short(v)}"
    if isinstance(v, str):
        from .source import escape
        return f'the string "{escape(v)}"'
    if isinstance(v, Sym):
        return f"the dimension `{v}`"
    if isinstance(v, list):
        return "a list"
    return type(v).__name__
