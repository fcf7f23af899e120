"""Tensor types with static and symbolic dimensions.

A dimension is an `int` or a `str` naming a symbolic size (`batch`, `time`, or an expression built
from them such as `(h-4)//2`). Symbolic dimensions are assumed to match each other; static ones are
checked exactly. At `init`/`apply` time every symbol is bound to the real size and the model is
checked again with only integers.
"""
from __future__ import annotations

from dataclasses import dataclass

Dim = int | str


def is_static(d: Dim) -> bool:
    return isinstance(d, int)


def _wrap(d: Dim) -> str:
    s = str(d)
    return s if s.isidentifier() or s.lstrip("-").isdigit() else f"({s})"


def dim_op(a: Dim, op: str, b: Dim) -> Dim:
    """`a op b` on dimensions; symbolic when either side is."""
    if isinstance(a, int) and isinstance(b, int):
        return {"+": a + b, "-": a - b, "*": a * b, "//": a // b if b else 0}[op]
    if op == "*" and (a == 1 or b == 1):
        return b if a == 1 else a
    if op in "+-" and b == 0:
        return a
    if op == "//" and b == 1:
        return a
    return f"{_wrap(a)}{op}{_wrap(b)}"


def dims_equal(a: Dim, b: Dim) -> bool:
    """False when both are static and differ, or when one is static and the other a free size:
    `batch` (any batch size) or a static argument checked without a value (`classes`). Other
    symbols (an input's `features`) are bound by the caller and checked again once bound."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, int) or isinstance(b, int):
        sym = b if isinstance(a, int) else a
        return not is_free(sym)
    return True


def is_free(d: Dim) -> bool:
    """A symbolic size that stands for every size: no rule may require it to equal a number."""
    return isinstance(d, SymDim) or d == "batch"


class SymDim(str):
    """A static integer argument checked without a value (`dense(classes)` in `nndsl check`): it
    enters shapes as the symbolic dimension `classes`, counts as a positive size (`units <= 0` is
    false), and any other arithmetic or comparison on it raises TypeError, which the checker turns
    into "cannot check this without a value" rather than a wrong answer."""

    def _no(self, *_):
        raise TypeError(f"`{self}` has no value during checking")

    __radd__ = __rmod__ = __rsub__ = _no
    __hash__ = str.__hash__

    # arithmetic with the identity of each operation keeps the size (`filters % groups` with one
    # group, `units * 1`); anything else has no answer without a value
    def __add__(self, o): return self if o == 0 and not isinstance(o, bool) else self._no()
    def __sub__(self, o): return self if o == 0 and not isinstance(o, bool) else self._no()
    def __mul__(self, o): return self if o == 1 and not isinstance(o, bool) else self._no()
    __rmul__ = __mul__
    def __floordiv__(self, o): return self if o == 1 and not isinstance(o, bool) else self._no()
    __truediv__ = __floordiv__
    def __mod__(self, o): return 0 if o == 1 and not isinstance(o, bool) else self._no()

    def __gt__(self, o): return True if isinstance(o, int) and not isinstance(o, bool) and o <= 0 else self._no()
    def __ge__(self, o): return True if isinstance(o, int) and not isinstance(o, bool) and o <= 1 else self._no()
    def __lt__(self, o): return False if isinstance(o, int) and not isinstance(o, bool) and o <= 1 else self._no()
    def __le__(self, o): return False if isinstance(o, int) and not isinstance(o, bool) and o <= 0 else self._no()

    def __index__(self):  # noqa: PLE0305 - never returns: refuses, like the comparisons above
        self._no()

    def __iter__(self):  # never a sequence of characters where a rule takes `int or list of ints`
        self._no()

    def __len__(self):  # noqa: PLE0303 - never returns: refuses
        self._no()




def fmt_dim(d: Dim) -> str:
    return str(d)


DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64",
          "i32": "int32", "i64": "int64", "i8": "int8", "u8": "uint8", "bool": "bool"}
SHORT = {v: k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    def size(self) -> int | None:
        n = 1
        for d in self.shape:
            if not isinstance(d, int):
                return None
            n *= d
        return n

    def with_shape(self, shape) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith(("float", "bfloat"))

    def __str__(self) -> str:
        return f"{SHORT.get(self.dtype, self.dtype)}[{', '.join(fmt_dim(d) for d in self.shape)}]"


def shape_str(shape) -> str:
    return "[" + ", ".join(fmt_dim(d) for d in shape) + "]"


def broadcast(a: tuple, b: tuple) -> tuple | None:
    """numpy broadcasting of two shapes; None when they cannot broadcast."""
    out = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif dims_equal(x, y):
            out.append(x if isinstance(x, int) else y)
        else:
            return None
    return tuple(reversed(out))


def promote(a: str, b: str) -> str:
    order = ["bool", "uint8", "int8", "int32", "int64", "bfloat16", "float16", "float32", "float64"]
    return a if order.index(a) >= order.index(b) else b
