"""Internal ops that only passes create (users cannot write them).

Parameters are read by `param` nodes (one leaf each) and state by `read_state` nodes, so a rewrite
can compute with weights as ordinary values (concatenate kernels, scale them by batchnorm's
statistics) while every leaf keeps the name the builder gave it.
"""
from __future__ import annotations

from ..ir.graph import ParamSpec
from ..ir.types import TensorType
from ..ops import OPS, OpDef, register
from ..ops.registry import Attr


@register
class ReadState(OpDef):
    """One state leaf as a value (batchnorm's running `mean`), read-only; its path is the leaf."""

    name = "read_state"
    inputs = ()
    attrs = (Attr("shape", "shape"), Attr("dtype", "str", "float32"))
    kind = "internal"

    def infer(self, shape, dtype):
        return TensorType(tuple(shape), dtype)

    def state(self, shape, dtype):
        return {"": ParamSpec(tuple(shape), None, dtype)}

    def apply(self, ctx, shape, dtype):
        return ctx.state[""]

    def flops(self, out, *xs, **kw):
        return 0


class ConvWithKernel(OpDef):
    """A convolution whose kernel and bias are inputs rather than parameters (a kernel with
    batchnorm folded in): conv(x, w) + b, with the attributes of the convolution it replaces."""

    inputs = ("x", "w", "b")
    kind = "internal"
    base = ""

    @property
    def attrs(self):
        return OPS[self.base].attrs

    def infer(self, x, w, b, **attrs):
        return OPS[self.base].infer(x, **attrs)

    def apply(self, ctx, x, w, b, **attrs):
        from ..ops import ApplyCtx
        inner = ApplyCtx(params={"kernel": w, "bias": b}, train=ctx.train, out_shape=ctx.out_shape)
        return OPS[self.base].apply(inner, x, **{**attrs, "bias": True})

    def flops(self, out, x, w, b, **attrs):
        return OPS[self.base].flops(out, x, **attrs)


for _n in (1, 2, 3):
    register(type(f"Conv{_n}DWithKernel", (ConvWithKernel,),
                  {"name": f"conv{_n}d_k", "base": f"conv{_n}d", "__doc__": ConvWithKernel.__doc__}))
