"""How convolutions are computed: XLA's convolution, or patches and one matmul.

Strided transposed convolutions become `conv_transposeNd_matmul` (one matmul, then an
overlap-add of each pixel's footprint) instead of XLA's convolution over the stride-dilated
input, which multiplies mostly zeros: on XLA:CPU the DCGAN iteration ran 1.3-1.4x faster.

`conv-as-matmul` rewrites a convolution whose window times input channels is at most
`MAX_PATCH` into `convNd_patches` (the same parameters and result, computed as im2col from
shifted strided slices plus one matmul). The limit is per platform, measured with
benchmarks/suite.py: on XLA:CPU the patches win for LeNet-5's small convolutions and lose once
a patch is hundreds of values long (ResNet's 3x3x64).
"""
from __future__ import annotations

import math

import jax

from ..ir.graph import Graph, Node
from ..ops.conv import tup
from .rewrite import Context, Pass, rule

MAX_PATCH = {"cpu": 160}  # platform -> largest window * input channels computed as patches
TRANSPOSED_AS_MATMUL = {"cpu"}  # platforms where the overlap-add measured faster
KNOWN = {"filters", "kernel", "stride", "padding", "dilation", "groups", "bias"}  # what the patches op implements


def max_patch() -> int:
    return MAX_PATCH.get(jax.default_backend(), 0)


@rule("conv1d", "conv2d", "conv3d")
def conv_as_matmul(g: Graph, n: Node, ctx: Context):  # conv(x) -> concat(shifted slices of x) @ kernel
    x = g.node(g.input_ids(n.id)[0]).type
    c = x.shape[-1]
    if set(n.attrs) != KNOWN or n.attrs["groups"] != 1 or not isinstance(c, int) or x.dtype != "float32":
        return None
    window = math.prod(tup(n.attrs["kernel"], x.rank - 2, "kernel"))
    if window == 1:  # a 1x1 convolution is a matmul already (and measured slower as patches)
        return None
    if window * c > ctx.options.get("max_patch", max_patch()):
        return None
    return _computed_as(g, n, f"{n.op}_patches")


def _computed_as(g: Graph, n: Node, op: str) -> str:
    """A node of internal op `op` standing for `n`: same inputs, attributes, type and names."""
    return g.add(op, g.input_ids(n.id), dict(n.attrs), n.type, n.span, n.path, n.label).id


@rule("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def conv_transpose_as_matmul(g: Graph, n: Node, ctx: Context):  # convT(x) -> overlap-add(x @ kernel)
    x = g.node(g.input_ids(n.id)[0]).type
    s = tup(n.attrs["stride"], x.rank - 2, "stride")
    if x.dtype != "float32" or min(s) < 2 or jax.default_backend() not in TRANSPOSED_AS_MATMUL:
        return None  # at stride 1 nothing is dilated: XLA's convolution is the better kernel
    a = n.attrs
    if a.get("groups", 1) != 1 or set(tup(a.get("dilation", 1), x.rank - 2, "dilation")) != {1} \
            or set(tup(a.get("output_padding", 0), x.rank - 2, "output_padding")) != {0} \
            or a.get("output_size") is not None:
        return None  # the overlap-add implements the plain transposed convolution only
    return _computed_as(g, n, f"{n.op}_matmul")


class ConvAsMatmul(Pass):
    """Small convolutions become patches and one matmul, strided transposed convolutions one
    matmul and an overlap-add (where measured faster)."""

    name = "conv-as-matmul"
    rules = (conv_as_matmul, conv_transpose_as_matmul)
