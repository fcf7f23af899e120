"""Optimizers and learning-rate schedules built with optax from the specs a train block's
elaboration made (nndsl/elaborate/optim.py names and checks them)."""
from __future__ import annotations

import optax

from ..elaborate.optim import OPTIMIZERS, SCHEDULES, OptSpec, ScheduleSpec  # noqa: F401  (re-exported)


def schedule(v):
    if not isinstance(v, ScheduleSpec):
        return float(v)
    a = dict(v.args)
    if v.name == "constant":
        return optax.constant_schedule(a["lr"])
    if v.name == "cosine":
        return optax.cosine_decay_schedule(a["lr"], a["steps"], a["alpha"])
    if v.name == "exponential":
        return optax.exponential_decay(a["lr"], a["steps"], a["rate"], staircase=a["staircase"])
    if v.name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, a["lr"], a["warmup"], a["steps"], a["end"])
    return optax.linear_schedule(a["start"], a["end"], a["steps"])


def make_optax(spec: OptSpec, clip_norm: float | None = None) -> optax.GradientTransformation:
    a = spec.kwargs()
    lr = schedule(a["lr"])
    if spec.name == "sgd":
        tx = optax.sgd(lr, momentum=a["momentum"] or None, nesterov=a["nesterov"])
    elif spec.name == "momentum":
        tx = optax.sgd(lr, momentum=a["beta"], nesterov=a["nesterov"])
    elif spec.name == "adam":
        tx = optax.adam(lr, b1=a["b1"], b2=a["b2"], eps=a["eps"])
    elif spec.name == "adamw":
        tx = optax.adamw(lr, b1=a["b1"], b2=a["b2"], eps=a["eps"], weight_decay=a["weight_decay"])
    elif spec.name == "rmsprop":
        tx = optax.rmsprop(lr, decay=a["decay"], eps=a["eps"], momentum=a["momentum"] or None)
    else:
        tx = optax.adagrad(lr, eps=a["eps"])
    if clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx
