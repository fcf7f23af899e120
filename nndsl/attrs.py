"""Static arguments of ops and data sources: each declared with what it accepts, and checked
before any shape rule runs.

Both the op registry (nndsl/ops/registry.py) and the data sources (nndsl/data/sources.py) declare
their arguments with `Attr` and report a rejected value with `OpError`, so this sits below both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

REQUIRED = object()


class OpError(Exception):
    """Raised by a shape rule; the builder adds the span and the layer name."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


MAX_STATIC = 2**31 - 1  # no window, stride, size or count of an op is larger than an int32


class ArgError(Exception):
    """An argument value an op does not accept; the message says what it accepts."""


PAD_WORDS = ("valid", "same", "same_lower")


@dataclass(frozen=True)
class Attr:
    """One static argument, declared with everything needed to validate it before any shape rule
    runs: `type` is its form (int float bool str ints shape any dtype, and `padding`), `lo`/`hi`
    bound numbers (each entry of an `ints`), `choices` the words a `str` or `padding` may be.
    `check` turns every unaccepted value into an `ArgError` naming what is accepted, so no shape
    rule ever sees a value it would fail on with a Python error."""

    name: str
    type: str  # int float bool str ints shape any dtype padding
    default: Any = REQUIRED
    lo: Any = None
    hi: Any = None
    choices: tuple | None = None  # None: a padding's usual words; (): no words

    def __post_init__(self):
        # Window geometry (kernels, strides, dilations, sizes) is bounded here; counts (units,
        # filters, vocab) are left to the memory limit, whose message names the parameters.
        if self.type in ("ints", "padding") and self.lo is not None and self.hi is None:
            object.__setattr__(self, "hi", MAX_STATIC)

    # ---------------------------------------------------------------- what is accepted
    def _number(self, word: str) -> str:
        lo, hi = self.lo, self.hi
        if self.type == "float":
            if lo is not None and hi is not None:
                return f"a number from {lo:g} to {hi:g}"
            if lo is not None:
                return "a positive number" if lo > 0 else f"a number >= {lo:g}"
            return "a number"
        if lo == 1:
            base = f"a positive {word}"
        elif lo == 0:
            base = f"a non-negative {word}"
        elif lo is not None:
            base = f"an {word} >= {lo}"
        else:
            base = f"an {word}"
        return base + (f" (at most {hi})" if hi is not None and hi != MAX_STATIC else "")

    def accepts(self, too_big: bool = False) -> str:
        """What this argument accepts, in the words a diagnostic uses (with its upper bound where
        the value passed it)."""
        t = self.type
        if too_big and t in ("int", "ints") and self.hi is not None:
            return f"{self.accepts()}, {'each ' if t == 'ints' else ''}at most {self.hi}"
        if t == "int":
            return self._number("integer")
        if t == "float":
            return self._number("number")
        if t == "floats":
            one = "a positive number" if self.lo is not None and self.lo > 0 else "a number"
            return f"{one}, or a list of them (one per axis)"
        if t == "ints":
            one = self._number("integer")
            return f"{one}, or a list of them (one per axis)"
        if t == "padding":
            words = ", ".join(f'"{w}"' for w in (PAD_WORDS if self.choices is None else self.choices))
            return ((f"{words}, " if words else "") + "a non-negative integer (the same before and after every "
                    "axis), a list of one per axis, or a list of [before, after] pairs, one per axis")
        if t == "str" and self.choices:
            return "one of " + ", ".join(f'"{c}"' for c in self.choices)
        return {"bool": "true or false", "str": "a string", "shape": "a list of dimensions",
                "dtype": "an element type"}.get(t, "a static value")

    # ---------------------------------------------------------------- validation
    def _in_range(self, v) -> bool:
        if isinstance(v, float) and v != v:  # NaN passes no bound
            return self.lo is None and self.hi is None
        return (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi)

    def _over(self, v) -> bool:
        return isinstance(v, int) and self.hi is not None and v > self.hi

    def check(self, v):
        """The value as the op receives it (lists as tuples); ArgError if it is not accepted.
        Called after the builder has coerced the value's type, on concrete values only."""
        if v is None and self.default is None:
            return v
        t = self.type
        if t == "float" and isinstance(v, float) and v != v:
            raise ArgError(self.accepts() + " (not NaN)")
        if t in ("int", "float"):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not self._in_range(v):
                raise ArgError(self.accepts(self._over(v)))
        elif t == "ints":
            vals = v if isinstance(v, (tuple, list)) else (v,)
            if not all(isinstance(x, int) and not isinstance(x, bool) and self._in_range(x) for x in vals):
                raise ArgError(self.accepts(any(self._over(x) for x in vals)))
            return tuple(v) if isinstance(v, (tuple, list)) else v
        elif t == "floats":
            vals = v if isinstance(v, (tuple, list)) else (v,)
            if not vals or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                   and self._in_range(x) for x in vals):
                raise ArgError(self.accepts())
            return tuple(float(x) for x in v) if isinstance(v, (tuple, list)) else float(v)
        elif t == "str" and self.choices:
            if v not in self.choices:
                raise ArgError(self.accepts())
        elif t == "padding":
            return self._padding(v)
        return v

    def _padding(self, v):
        def count(x):
            return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_STATIC
        if isinstance(v, str):
            if v.lower() in (PAD_WORDS if self.choices is None else self.choices):
                return v.lower()
        elif count(v):
            return v
        elif isinstance(v, (list, tuple)) and v:
            if all(count(x) for x in v):
                return tuple(v)
            if all(isinstance(p, (list, tuple)) and len(p) == 2 and all(count(x) for x in p) for p in v):
                return tuple(tuple(p) for p in v)
        raise ArgError(self.accepts())
