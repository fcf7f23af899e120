"""Optimizers and learning-rate schedules as a `.nn` file names them (`with adam(lr=1e-3)`): the
names, their arguments and the ranges those may take, checked while a train block is elaborated.
nndsl/train/optim.py turns the specs made here into optax transformations."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..attrs import Attr
from ..bounds import short
from ..errors import NameResolutionError, TypeCheckError, closest
from ..syntax import ast
from .builder import bind_args

OPTIMIZERS = {
    "sgd": (Attr("lr", "schedule", 0.01), Attr("momentum", "float", 0.0), Attr("nesterov", "bool", False)),
    "momentum": (Attr("lr", "schedule", 0.01), Attr("beta", "float", 0.9), Attr("nesterov", "bool", False)),
    "adam": (Attr("lr", "schedule", 1e-3), Attr("b1", "float", 0.9), Attr("b2", "float", 0.999),
             Attr("eps", "float", 1e-8)),
    "adamw": (Attr("lr", "schedule", 1e-3), Attr("b1", "float", 0.9), Attr("b2", "float", 0.999),
              Attr("eps", "float", 1e-8), Attr("weight_decay", "float", 1e-4)),
    "rmsprop": (Attr("lr", "schedule", 1e-3), Attr("decay", "float", 0.9), Attr("eps", "float", 1e-8),
                Attr("momentum", "float", 0.0)),
    "adagrad": (Attr("lr", "schedule", 1e-2), Attr("eps", "float", 1e-7)),
}

SCHEDULES = {
    "constant": (Attr("lr", "float"),),
    "cosine": (Attr("lr", "float"), Attr("steps", "int"), Attr("alpha", "float", 0.0)),
    "exponential": (Attr("lr", "float"), Attr("steps", "int"), Attr("rate", "float", 0.5),
                    Attr("staircase", "bool", False)),
    "warmup_cosine": (Attr("lr", "float"), Attr("warmup", "int"), Attr("steps", "int"),
                      Attr("end", "float", 0.0)),
    "linear": (Attr("start", "float"), Attr("end", "float"), Attr("steps", "int")),
}


@dataclass(frozen=True)
class OptSpec:
    name: str
    args: tuple  # sorted (name, value) pairs; values may be ScheduleSpecs

    def kwargs(self) -> dict:
        return dict(self.args)


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    args: tuple


def eval_optimizer(builder, e, env) -> OptSpec:
    v = _eval(builder, e, env)
    if not isinstance(v, OptSpec):
        raise TypeCheckError("`with` names an optimizer, such as `adam(lr=1e-3)`", e.span, code="E340",
                             help=f"optimizers: {', '.join(OPTIMIZERS)}")
    return v


def _eval(builder, e, env):
    name = (e.id if isinstance(e, ast.Name)
            else e.func.id if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) else None)
    table = OPTIMIZERS if name in OPTIMIZERS else SCHEDULES if name in SCHEDULES else None
    if table is None:
        if name in NOT_NUMBERS and not env.has(name):
            raise TypeCheckError(f"`{name}` is not a number in nndsl; a hyperparameter must be a finite number",
                                 e.span, code="E360", help="write the value itself, such as `lr=1e-3`")
        if name is not None and not env.has(name) and name not in builder.program.definitions:
            guess = closest(name, list(OPTIMIZERS) + list(SCHEDULES))
            raise NameResolutionError(f"unknown optimizer or schedule `{name}`", e.span, code="E211",
                                      help=f"did you mean `{guess}`?" if guess else
                                      f"optimizers: {', '.join(OPTIMIZERS)}; schedules: {', '.join(SCHEDULES)}")
        return builder.eval(e, env)
    pos, kw, spans = [], {}, {}
    for a in (e.args if isinstance(e, ast.Call) else ()):
        if isinstance(a, ast.Kwarg):
            kw[a.name] = _eval(builder, a.value, env)
            spans[a.name] = a.span
        else:
            pos.append((_eval(builder, a, env), a.span))
    attrs = bind_args(name, table[name], pos, kw, e.span, spans)
    for k, v in attrs.items():
        if k == "lr" and table is OPTIMIZERS and (
                isinstance(v, bool) or not isinstance(v, (int, float, ScheduleSpec))):
                raise TypeCheckError(f"`lr` must be a number or a schedule, found {v!r}", spans.get(k, e.span),
                                     code="E326")
    for k, v in attrs.items():
        _check_range(name, k, v, spans.get(k, e.span))
    if name == "warmup_cosine" and attrs["warmup"] > attrs["steps"]:
        raise TypeCheckError(f"`warmup_cosine` warms up for {attrs['warmup']} of its {attrs['steps']} steps; "
                             "warmup cannot be longer than steps", spans.get("warmup", e.span), code="E349")
    spec_cls = OptSpec if table is OPTIMIZERS else ScheduleSpec
    return spec_cls(name, tuple(sorted(attrs.items())))


NOT_NUMBERS = {"nan", "NaN", "inf", "Inf", "infinity"}
# Where each argument makes sense, as (low, high, low_open, high_open); optax takes the rest and fails
# at the first step (`cosine(steps=0)` raised from inside optax), trains on garbage (`b2 = 1`) or
# climbs the loss (a negative rate).
RANGES = {
    "lr": (0.0, None, True, False),
    "steps": (1, 10**9, False, False), "warmup": (0, 10**9, False, False),
    "b1": (0.0, 1.0, False, True), "b2": (0.0, 1.0, False, True), "beta": (0.0, 1.0, False, True),
    "momentum": (0.0, 1.0, False, True), "decay": (0.0, 1.0, False, True), "rate": (0.0, None, True, False),
    "eps": (0.0, None, True, False), "weight_decay": (0.0, None, False, False), "alpha": (0.0, 1.0, False, False),
}


def _check_range(owner, k, v, span):
    """A NaN or infinite hyperparameter trains nothing (every update is NaN) and one out of its
    range fails inside optax or trains on garbage: both are refused where the value is written."""
    if isinstance(v, (ScheduleSpec, bool)) or not isinstance(v, (int, float)):
        return
    if not math.isfinite(v):
        raise TypeCheckError(f"argument `{k}` of `{owner}` must be a finite number, found {v}", span, code="E360")
    if k not in RANGES:
        return
    lo, hi, lo_open, hi_open = RANGES[k]
    if owner in SCHEDULES and k == "lr":
        lo_open = False  # a schedule may decay to 0
    bad = (v < lo or (lo_open and v == lo)) or (hi is not None and (v > hi or (hi_open and v == hi)))
    if bad:
        want = (f"{'>' if lo_open else '>='} {lo:g}" if hi is None else
                f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")
        raise TypeCheckError(f"argument `{k}` of `{owner}` must be {want}, found {short(v)}", span, code="E360")
