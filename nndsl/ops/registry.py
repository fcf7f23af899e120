"""The op registry: adding a layer means one OpDef subclass with @register, nothing else.

An OpDef holds everything about an op in one place: its tensor inputs, its static arguments with
types and defaults, its shape rule (`infer`), its parameters and state (declared, so they can be
counted before anything is allocated), and its lowering to pure jax.numpy (`apply`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp

from ..attrs import MAX_STATIC, PAD_WORDS, REQUIRED, ArgError, Attr, OpError  # noqa: F401  (re-exported)
from ..ir.graph import Graph, ParamSpec
from ..ir.types import TensorType


@dataclass
class ApplyCtx:
    """What an op's lowering may touch besides its inputs."""

    params: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    train: bool = False
    rng: Any = None  # a key folded with the node's path, or None
    new_state: dict = field(default_factory=dict)
    out_shape: tuple = ()

    def key(self):
        if self.rng is None:
            raise RuntimeError("this op needs randomness: pass rngs=... to apply")
        return self.rng


@dataclass
class LowerCtx:
    """What `OpDef.lower` gets: the interpreter's walk state (parameters, state, mode, key,
    precision), the enclosing graph with its inputs and the values computed so far, and `run`,
    the interpreter's graph walk itself, passed in so that ops import nothing from lower/."""

    run: Callable
    graph: Graph
    env: dict
    inputs: list
    params: dict
    state: dict
    train: bool = False
    rng: Any = None
    precision: Any = None

    def run_body(self, body: Graph, inputs: list, **kw) -> dict:
        """Evaluates `body` on `inputs` with this walk's parameters, state, mode, key and precision,
        each of which `kw` may replace."""
        kw = {"train": self.train, "rng": self.rng, "precision": self.precision, **kw}
        return self.run(body, kw.pop("params", self.params), kw.pop("state", self.state), inputs, **kw)


class OpDef:
    name: str = ""
    inputs: tuple = ("x",)  # "*xs" = any number (at least one)
    attrs: tuple = ()
    kind: str = "layer"  # layer | function | loss | metric | random
    needs_rng: bool = False
    # Static values may stand in for these inputs (a loss target of `1`).
    const_inputs: tuple = ()
    # Under mixed precision (`precision bf16`), computes in float32 anyway: sums of many terms
    # (softmax, normalization statistics) lose too much in 8 mantissa bits. Losses and metrics
    # always do.
    keep_f32: bool = False

    # ---------------------------------------------------------------- traits the passes ask
    # "unary" or "binary": computed element by element, so on uniform tensors (a `fill`) it gives
    # a uniform tensor, and on [batch, time, ...] inputs the same per time step.
    elementwise: str | None = None
    # Its outputs are its input's elements moved or picked, none computed (reshape, get_item): an
    # integer label passed through one is still the label (data checks follow ids through it).
    moves_values: bool = False
    # The attributes holding sub-graphs (a loop's body): printed, verified and drawn with the node.
    body_attrs: tuple = ()
    # A cell instance stepped over a sequence: its path names the cell, and its results are its
    # body's outputs in order (pictures draw it as its body).
    cell: bool = False

    @property
    def random(self) -> bool:
        """A draw from a distribution (`normal`, ...): every node is a new draw."""
        return self.kind == "random"

    @property
    def pure(self) -> bool:
        """Its value follows from its inputs, attributes and parameters alone, by its own `apply`:
        no randomness and no sub-graph, so a loop body may compute it once, outside the loop."""
        return not (self.random or self.needs_rng or self.body_attrs)

    @property
    def mergeable(self) -> bool:
        """Two nodes with the same inputs and attributes are one value (CSE); a sub-graph has no
        value to compare, a draw is new each time."""
        return not (self.random or self.body_attrs)

    @property
    def shareable(self) -> bool:
        """The builder hands out one node for equal applications: mergeable, and reading no
        parameters or key (those belong to the layer that was applied)."""
        return self.mergeable and not (self.has_params or self.needs_rng)

    @property
    def computes_in_f32(self) -> bool:
        return self.keep_f32 or self.kind in ("loss", "metric")

    def infer(self, *types: TensorType, **attrs) -> TensorType | tuple:
        return types[0]

    def params(self, *types: TensorType, **attrs) -> dict[str, ParamSpec]:
        return {}

    def state(self, *types: TensorType, **attrs) -> dict[str, ParamSpec]:
        return {}

    def apply(self, ctx: ApplyCtx, *xs, **attrs):
        raise NotImplementedError

    # ---------------------------------------------------------------- ops with sub-graphs
    def bodies(self, node) -> dict[str, Graph]:
        """The node's sub-graphs by attribute name (none for most ops)."""
        return {a: node.attrs[a] for a in self.body_attrs if isinstance(node.attrs.get(a), Graph)}

    def body_inputs(self, *types: TensorType, **attrs) -> list:
        """For an op with a body graph (a loop): the types its body takes given these inputs, which
        the verifier checks. By default the inputs themselves."""
        return list(types)

    def check_bodies(self, node, types: list) -> str | None:
        """What is wrong between the node and its bodies (a message), or None; the verifier then
        checks each body as a graph. By default each body takes `body_inputs`."""
        for body in self.bodies(node).values():
            takes = [body.node(i).type for i in body.inputs]
            if self.body_inputs(*types, **node.attrs) != takes:
                return (f"{node.id} ({node.op}) has inputs {_fmt(tuple(types))} but its body takes "
                        f"{_fmt(tuple(takes))}")
        return None

    def lower(self, node, args: list, ctx: LowerCtx):
        """The node's value, for an op `apply` cannot lower: one that runs a sub-graph or a part
        of the enclosing graph (`ctx.run`). The interpreter calls it in place of `apply`."""
        raise NotImplementedError

    @property
    def lowers_itself(self) -> bool:
        return type(self).lower is not OpDef.lower

    def flops(self, out: TensorType, *types: TensorType, **attrs) -> int:
        """Multiply-adds counted as 2 FLOPs; elementwise ops one per output element."""
        n = out.size() if isinstance(out, TensorType) else None
        return n or 0

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[0].startswith("*")

    @property
    def has_params(self) -> bool:
        return type(self).params is not OpDef.params or type(self).state is not OpDef.state


def _fmt(t) -> str:
    if isinstance(t, tuple):
        return "(" + ", ".join(map(str, t)) + ")"
    return str(t)


OPS: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    op = cls()
    assert op.name and op.name not in OPS, f"duplicate or unnamed op {op.name!r}"
    OPS[op.name] = op
    return cls


def simple(name: str, fn: Callable, *, attrs: tuple = (), kind: str = "function",
           doc: str = "", floating: bool = True, keep_f32: bool = False, elementwise: str | None = None) -> None:
    """Registers a shape-preserving elementwise op from a jnp function.

    A `floating` op (exp, sigmoid, ...) computes in float32 when given integers, as numpy does;
    the others (relu, abs, square) keep the input's dtype.
    """

    def infer(self, x, **kw):
        return TensorType(x.shape, "float32") if floating and not x.is_float else x

    def apply(self, ctx, x, **kw):
        if floating and not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.float32)
        return fn(x, **kw)

    cls = type(name, (OpDef,), {"name": name, "attrs": attrs, "kind": kind, "infer": infer,
                                "apply": apply, "__doc__": doc, "keep_f32": keep_f32,
                                "elementwise": elementwise})
    register(cls)
