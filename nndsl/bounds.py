"""Bounds on the numbers a program computes while it is elaborated, checked BEFORE computing them.

Python integers have no size limit, so `10 ** 10 ** 10` would run until memory runs out, and a
number that fits in memory can still break everything after it (a 400-digit width overflows every
float conversion on the way to a message). Every static number in nndsl is a size, a count, a seed
or a hyperparameter, so one bound serves them all: integers within int64, floats finite. The size
of a product or a power is estimated from the operands' bit lengths first, so a refusal costs
nothing. One place decides, so literals, arithmetic, settings and command-line values agree.
"""
from __future__ import annotations

import math

from .errors import LimitError

MAX_INT = 2**63 - 1  # int64: the widest integer any array, seed or counter downstream can hold
MAX_BITS = MAX_INT.bit_length()
MAX_LITERAL_CHARS = 400  # a literal longer than this cannot denote a finite float or an int64
HELP = f"static numbers are integers up to {MAX_INT:,} (2**63 - 1) or finite floats"


def short(v) -> str:
    """A number as a message may quote it: never thousands of digits, never an exception."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int) and v.bit_length() > 128:
        return f"a {'negative ' if v < 0 else ''}number of about {int(v.bit_length() * math.log10(2)) + 1:,} digits"
    return f"{v:,}" if isinstance(v, int) and abs(v) >= 10**6 else repr(v)


def too_big(what: str, span, code: str = "E410"):
    return LimitError(f"{what} is too large", span, code=code, help=HELP)


def check(v, span, what: str = "this number", quiet: bool = False):
    """`v` itself, or a located LimitError when it is outside the bounds."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if -MAX_INT - 1 <= v <= MAX_INT:
            return v
        raise too_big(what if quiet else f"{what} ({short(v)})", span)
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        raise too_big(what if quiet or math.isnan(v) else f"{what} ({v})", span)
    if isinstance(v, complex):
        raise LimitError(f"{what} is not a real number", span, code="E410",
                         help="a negative number to a fractional power has no real value")
    return v


def literal(text: str, span):
    """The value of a number literal; an over-long one is refused before it is converted (Python
    would spend quadratic time on, or refuse with its own message, a 5000-digit integer)."""
    if len(text) > MAX_LITERAL_CHARS:
        raise too_big(f"a number literal of {len(text):,} characters", span)
    v = float(text) if any(c in text for c in ".eE") else int(text)
    return check(v, span, f"the number {text}" if len(text) <= 40 else f"a number literal of {len(text)} digits",
                 quiet=True)


def _bits(v) -> float:
    """log2 of |v| for an int or a float (0 for zero)."""
    if isinstance(v, int):
        return float(v.bit_length())
    return math.log2(abs(v)) if v else 0.0


def arith(op: str, a, b, span):
    """`a op b` on two static numbers already within the bounds, refused before it is computed
    when the result cannot be (a power), and checked after (a sum or a product of two int64s
    costs nothing). Python's own errors (0 ** -1) are left to the caller."""
    if op == "**" and isinstance(b, int) and not isinstance(b, bool) and b > 0 and isinstance(a, (int, float)):
        if (isinstance(a, int) and a in (0, 1, -1)) or (isinstance(a, float) and abs(a) <= 1.0):
            pass
        elif ((isinstance(a, int) and (_bits(a) - 1) * b > MAX_BITS + 1)
              or (isinstance(a, float) and math.log2(abs(a)) * b > 1024)):
            raise too_big(f"`{short(a)} ** {short(b)}`", span)
    if op == "*" and isinstance(a, int) and isinstance(b, int) and _bits(a) + _bits(b) > 2 * MAX_BITS + 2:
        raise too_big(f"`{short(a)} * {short(b)}`", span)  # unreachable for checked operands; kept as a guard
    v = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
         "**": lambda: a ** b}[op]()
    return check(v, span, f"the result of `{op}`")
