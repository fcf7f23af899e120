"""Arithmetic with numpy broadcasting, activations and elementwise math."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from ..ir.types import TensorType, broadcast, dims_equal, promote, shape_str
from .registry import Attr, OpDef, OpError, register, simple


class Binary(OpDef):
    """Elementwise with numpy broadcasting; a static number on either side is a float32 scalar."""

    inputs = ("a", "b")
    kind = "function"
    const_inputs = ("a", "b")
    fn = None
    symbol = "?"

    def infer(self, a, b):
        shape = broadcast(a.shape, b.shape)
        if shape is None:
            raise OpError(f"cannot {self.verb} values of shapes {shape_str(a.shape)} and "
                          f"{shape_str(b.shape)}", help="shapes must be equal or broadcast (numpy rules)")
        return TensorType(shape, promote(a.dtype, b.dtype))

    def apply(self, ctx, a, b):
        return type(self).fn(a, b)


@register
class Add(Binary):
    """`a + b`, broadcasting."""

    name, verb, fn = "add", "add", staticmethod(jnp.add)
    elementwise = "binary"


@register
class Sub(Binary):
    """`a - b`, broadcasting."""

    name, verb, fn = "sub", "subtract", staticmethod(jnp.subtract)
    elementwise = "binary"


@register
class Mul(Binary):
    """`a * b` on tensors (on a layer, `*` stacks copies instead), broadcasting."""

    name, verb, fn = "mul", "multiply", staticmethod(jnp.multiply)
    elementwise = "binary"


@register
class Div(Binary):
    """`a / b`, true division: integers divide to float32."""

    name, verb, fn = "div", "divide", staticmethod(jnp.divide)
    elementwise = "binary"

    def infer(self, a, b):
        t = super().infer(a, b)
        return t if t.is_float else TensorType(t.shape, "float32")


@register
class Pow(Binary):
    """`a ** b`, broadcasting."""

    name, verb, fn = "pow", "raise", staticmethod(jnp.power)
    elementwise = "binary"


@register
class Maximum(Binary):
    """max(a, b) elementwise, broadcasting (`max` reduces over axes instead)."""

    name, verb, fn = "maximum", "take the maximum of", staticmethod(jnp.maximum)
    elementwise = "binary"


@register
class Minimum(Binary):
    """min(a, b) elementwise, broadcasting (`min` reduces over axes instead)."""

    name, verb, fn = "minimum", "take the minimum of", staticmethod(jnp.minimum)
    elementwise = "binary"


@register
class Matmul(OpDef):
    """`a @ b` as numpy: [..., n, k] @ [k, m], vectors on either side, batch dims broadcast."""

    name = "matmul"
    inputs = ("a", "b")
    kind = "function"

    def infer(self, a, b):
        if a.rank == 0 or b.rank == 0:
            raise OpError("`@` needs at least one axis on each side, found a scalar")
        ka = a.shape[-1]
        kb = b.shape[0] if b.rank == 1 else b.shape[-2]
        if not dims_equal(ka, kb):
            raise OpError(f"cannot multiply {shape_str(a.shape)} @ {shape_str(b.shape)}: "
                          f"inner dimensions {ka} and {kb} differ")
        dtype = promote(a.dtype, b.dtype)
        if b.rank == 1:
            return TensorType(a.shape[:-1], dtype)
        if a.rank == 1:
            return TensorType(b.shape[:-2] + b.shape[-1:], dtype)
        batch = broadcast(a.shape[:-2], b.shape[:-2])
        if batch is None:
            raise OpError(f"cannot multiply {shape_str(a.shape)} @ {shape_str(b.shape)}: batch axes differ")
        return TensorType(batch + (a.shape[-2], b.shape[-1]), dtype)

    def apply(self, ctx, a, b):
        return jnp.matmul(a, b)

    def flops(self, out, a, b):
        n = out.size()
        return 2 * n * a.shape[-1] if n and isinstance(a.shape[-1], int) else 0


@register
class Neg(OpDef):
    """`-x`."""

    name = "neg"
    elementwise = "unary"
    kind = "function"

    def apply(self, ctx, x):
        return -x


@register
class Step(OpDef):
    """Heaviside step, 1 where x > 0: the perceptron's activation. Its gradient is zero."""

    name = "step"
    elementwise = "unary"

    def infer(self, x):
        return TensorType(x.shape, "float32")

    def apply(self, ctx, x):
        return (x > 0).astype(jnp.float32)


# name, function, static arguments, math (the docstring), whether integers become float32
_ACT = (
    ("sigmoid", jax.nn.sigmoid, (), "1 / (1 + exp(-x))", True),
    ("tanh", jnp.tanh, (), "tanh(x)", True),
    ("relu", jax.nn.relu, (), "max(x, 0)", False),
    ("gelu", lambda x, approximate: jax.nn.gelu(x, approximate=approximate),
     (Attr("approximate", "bool", True),),
     "x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), the tanh form, by default; "
     "`approximate=false` gives the exact x/2 * (1 + erf(x / sqrt(2))) (PyTorch's and ONNX's "
     "default, `approximate=\"tanh\"` there selects the tanh form). The default stays the tanh "
     "form because nndsl always computed it: programs and their trained weights keep their "
     "meaning", True),
    ("identity", lambda x: x, (), "x unchanged", False),
    ("softplus", jax.nn.softplus, (), "log(1 + exp(x)), computed stably", True),
    ("silu", jax.nn.silu, (), "x * sigmoid(x)", True),
    ("swish", jax.nn.silu, (), "x * sigmoid(x) (another name for silu)", True),
    ("relu6", jax.nn.relu6, (), "min(max(x, 0), 6)", True),
    ("hard_tanh", jax.nn.hard_tanh, (), "clip(x, -1, 1)", True),
    ("leaky_relu", lambda x, alpha: jax.lax.select(x >= 0, x, alpha * x), (Attr("alpha", "float", 0.01),),
     "x where x >= 0, alpha * x elsewhere", True),
    ("elu", lambda x, alpha: jax.nn.elu(x, alpha), (Attr("alpha", "float", 1.0),),
     "x where x > 0, alpha * (exp(x) - 1) elsewhere", True),
    ("selu", jax.nn.selu, (),
     "gamma * (x where x > 0, alpha * (exp(x) - 1) elsewhere), alpha = 1.6732632, "
     "gamma = 1.0507010 (ONNX Selu's and PyTorch's constants)", True),
    ("celu", lambda x, alpha: jnp.maximum(x, 0) + jnp.minimum(alpha * jnp.expm1(x / alpha), 0),
     (Attr("alpha", "float", 1.0),), "max(x, 0) + min(alpha * (exp(x / alpha) - 1), 0)", True),
    ("hard_sigmoid", lambda x, alpha, beta: jnp.clip(alpha * x + beta, 0, 1),
     (Attr("alpha", "float", 1 / 6), Attr("beta", "float", 0.5)),
     "max(0, min(1, alpha * x + beta)); alpha = 1/6 as PyTorch's Hardsigmoid (ONNX HardSigmoid's "
     "default alpha is 0.2: write alpha=0.2)", True),
    ("hard_swish", lambda x: x * jnp.clip(x / 6 + 0.5, 0, 1), (),
     "x * max(0, min(1, x / 6 + 1/2)) (ONNX HardSwish, PyTorch Hardswish)", True),
    ("mish", lambda x: x * jnp.tanh(jax.nn.softplus(x)), (), "x * tanh(log(1 + exp(x)))", True),
    ("softsign", lambda x: x / (1 + jnp.abs(x)), (), "x / (1 + |x|)", True),
    ("softmax", lambda x, axis: jax.nn.softmax(x, axis=axis), (Attr("axis", "int", -1),),
     "exp(x) / sum(exp(x)) along `axis` (the last by default), shifted by the max for stability",
     True),
    ("log_softmax", lambda x, axis: jax.nn.log_softmax(x, axis=axis), (Attr("axis", "int", -1),),
     "x - log(sum(exp(x))) along `axis`, computed stably", True),
)
# Every activation but the two that work along an axis is elementwise: the passes fold it and
# distribute it over time steps; softmax and log_softmax compute in float32 under bf16.
_ALONG_AN_AXIS = ("softmax", "log_softmax")
for _name, _fn, _attrs, _math, _float in _ACT:
    _axis = _name in _ALONG_AN_AXIS
    simple(_name, _fn, attrs=_attrs, kind="layer", floating=_float,
           doc=f"Activation, {'along an axis' if _axis else 'elementwise'}: {_math}.", keep_f32=_axis,
           elementwise=None if _axis else "unary")

for _name, _fn, _float in (("exp", jnp.exp, True), ("log", jnp.log, True), ("sqrt", jnp.sqrt, True),
                           ("abs", jnp.abs, False), ("square", jnp.square, False),
                           ("sin", jnp.sin, True), ("cos", jnp.cos, True)):
    simple(_name, _fn, floating=_float, doc=f"Elementwise {_name}(x), as numpy's.", elementwise="unary")


@register
class Clip(OpDef):
    """min(max(x, min), max); either bound may be left out."""

    name = "clip"
    elementwise = "unary"
    attrs = (Attr("min", "float", None), Attr("max", "float", None))
    kind = "function"

    def apply(self, ctx, x, min, max):
        return jnp.clip(x, min, max)


@register
class Const(OpDef):
    """A static number used as a tensor; broadcasts like a numpy scalar."""

    name = "const"
    inputs = ()
    attrs = (Attr("value", "any"), Attr("dtype", "str", "float32"))
    kind = "function"

    def infer(self, value, dtype):
        return TensorType((), dtype)

    def apply(self, ctx, value, dtype):
        return jnp.asarray(value, dtype)


class Comparison(Binary):
    """Elementwise comparison with broadcasting, giving float32 1.0 or 0.0 so that `mean` of it is
    a rate (`mean(argmax(logits) == labels)`). Piecewise constant: its gradient is zero."""

    def infer(self, a, b):
        t = super().infer(a, b)
        return TensorType(t.shape, "float32")

    def apply(self, ctx, a, b):
        return type(self).fn(a, b).astype(jnp.float32)


@register
class Equal(Comparison):
    """`a == b` on tensors."""

    name, verb, fn = "equal", "compare", staticmethod(jnp.equal)


@register
class NotEqual(Comparison):
    """`a != b` on tensors."""

    name, verb, fn = "not_equal", "compare", staticmethod(jnp.not_equal)


@register
class Less(Comparison):
    """`a < b` on tensors."""

    name, verb, fn = "less", "compare", staticmethod(jnp.less)


@register
class LessEqual(Comparison):
    """`a <= b` on tensors."""

    name, verb, fn = "less_equal", "compare", staticmethod(jnp.less_equal)


@register
class Greater(Comparison):
    """`a > b` on tensors."""

    name, verb, fn = "greater", "compare", staticmethod(jnp.greater)


@register
class GreaterEqual(Comparison):
    """`a >= b` on tensors."""

    name, verb, fn = "greater_equal", "compare", staticmethod(jnp.greater_equal)


@register
class PRelu(OpDef):
    """Leaky relu with a learned slope: x where x >= 0, slope * x elsewhere. `slope`: one per
    channel (the last axis), initialized to 0.25 (PyTorch's PReLU(num_parameters=channels));
    `per_channel=false` learns one slope for all (PyTorch's default PReLU())."""

    name = "prelu"
    attrs = (Attr("per_channel", "bool", True),)

    def infer(self, x, per_channel):
        if per_channel and (x.rank == 0 or not isinstance(x.shape[-1], int)):
            raise OpError(f"prelu needs a static channel axis, found {shape_str(x.shape)}")
        return x if x.is_float else TensorType(x.shape, "float32")

    def params(self, x, per_channel):
        from ..ir.graph import ParamSpec
        from . import init as I
        return {"slope": ParamSpec((x.shape[-1],) if per_channel else (1,), I.constant(0.25),
                                   init_name="constant(0.25)")}

    def apply(self, ctx, x, per_channel):
        return jnp.where(x >= 0, x, ctx.params["slope"] * x)
