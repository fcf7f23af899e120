"""The op registry: adding a layer means one OpDef subclass with @register, nothing else.

An OpDef holds everything about an op in one place: its tensor inputs, its static arguments with
types and defaults, its shape rule (`infer`), its parameters and state (declared, so they can be
counted before anything is allocated), and its lowering to pure jax.numpy (`apply`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax.numpy as jnp

from ..attrs import MAX_STATIC, PAD_WORDS, REQUIRED, ArgError, Attr, OpError  # noqa: F401  (re-exported)
from ..ir.graph import ParamSpec
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

    def body_inputs(self, *types: TensorType, **attrs) -> list:
        """For an op with a body graph (a loop): the types its body takes given these inputs, which
        the verifier checks. By default the inputs themselves."""
        return list(types)

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

    def attr_names(self) -> list[str]:
        return [a.name for a in self.attrs]


OPS: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    op = cls()
    assert op.name and op.name not in OPS, f"duplicate or unnamed op {op.name!r}"
    OPS[op.name] = op
    return cls


def simple(name: str, fn: Callable, *, attrs: tuple = (), kind: str = "function",
           doc: str = "", floating: bool = True, keep_f32: bool = False) -> None:
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
                                "apply": apply, "__doc__": doc, "keep_f32": keep_f32})
    register(cls)
