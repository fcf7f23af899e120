"""Internal ops that only passes create (users cannot write them).

Parameters are read by `param` nodes (one leaf each) and state by `read_state` nodes, so a rewrite
can compute with weights as ordinary values (concatenate kernels, scale them by batchnorm's
statistics) while every leaf keeps the name the builder gave it.
"""
from __future__ import annotations

import itertools

from ..ir.graph import Graph, ParamSpec
from ..ir.types import TensorType
from ..ops import OPS, OpDef, register
from ..ops.lowering import cast, leaves
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


class WithBatchnorm(OpDef):
    """A convolution or dense layer with the batchnorm after it folded in, for inference:
    w' = w * s and b' = (b - mean) * s + beta with s = scale / sqrt(var + eps), then the layer's
    own lowering with w' and b'. It reads its own parameters (its path) and the batchnorm's
    parameters and statistics (`reads`: the batchnorm's path), which keep their names."""

    kind = "internal"
    base = ""
    extra = (Attr("reads", "any"), Attr("eps", "float"), Attr("scale", "bool"), Attr("center", "bool"))

    @property
    def attrs(self):
        return OPS[self.base].attrs + self.extra

    def _own(self, attrs):
        return {k: v for k, v in attrs.items() if k not in ("reads", "eps", "scale", "center")}

    def infer(self, x, **attrs):
        return OPS[self.base].infer(x, **self._own(attrs))

    def params(self, x, **attrs):
        return OPS[self.base].params(x, **self._own(attrs))

    def flops(self, out, x, **attrs):
        return OPS[self.base].flops(out, x, **self._own(attrs))

    def apply(self, ctx, x, **attrs):
        import jax

        from ..ops import ApplyCtx
        bn, stats = ctx.params["bn"], ctx.state["bn"]
        s = jax.lax.rsqrt(stats["var"] + attrs["eps"])
        if attrs["scale"]:
            s = s * bn["scale"]
        b = (ctx.params["bias"] - stats["mean"]) * s if "bias" in ctx.params else -stats["mean"] * s
        if attrs["center"]:
            b = b + bn["bias"]
        own = {**self._own(attrs), "bias": True}
        inner = ApplyCtx(params={"kernel": ctx.params["kernel"] * s, "bias": b}, train=ctx.train,
                         out_shape=ctx.out_shape)
        return OPS[self.base].apply(inner, x, **own)


for _base in ("conv1d", "conv2d", "conv3d", "dense"):
    register(type(f"{_base.capitalize()}WithBatchnorm", (WithBatchnorm,),
                  {"name": f"{_base}_bn", "base": _base, "__doc__": WithBatchnorm.__doc__}))


class SameAsBase(OpDef):
    """An internal op that computes what `base` computes another way: the same attributes,
    parameters, type and FLOPs, only `apply` differs."""

    kind = "internal"
    base = ""

    @property
    def attrs(self):
        return OPS[self.base].attrs

    def infer(self, x, **attrs):
        return OPS[self.base].infer(x, **attrs)

    def params(self, x, **attrs):
        return OPS[self.base].params(x, **attrs)

    def flops(self, out, x, **attrs):
        return OPS[self.base].flops(out, x, **attrs)


def _zero_pad(x, widths):
    """`jnp.pad(x, widths)` as the one `lax.pad` it becomes, without `jnp.pad`'s nested jit,
    which JAX traces again under differentiation: the DCGAN step has 35 of these pads."""
    import jax
    import numpy as np
    return jax.lax.pad(x, np.zeros((), x.dtype), [(lo, hi, 0) for lo, hi in widths])


class ConvPatches(SameAsBase):
    """A convolution computed as one matmul over patches gathered with shifted strided slices
    (im2col): the same parameters, attributes and result as the convolution it replaces.
    Where the window times the input channels is small, XLA:CPU runs this faster than its
    convolution (benchmarks/RESULTS.md)."""

    def apply(self, ctx, x, filters, kernel, stride, padding, dilation, groups, bias):
        import jax.numpy as jnp

        from ..ops.conv import out_dim, resolve
        base = OPS[self.base]
        k, s, d, pad = base._geom(x, kernel, stride, padding, dilation)
        n = len(k)
        pad = resolve(pad, x.shape[1:-1], k, s, d)
        x = _zero_pad(x, [(0, 0), *pad, (0, 0)])
        outs = [out_dim(x.shape[1 + i], k[i], s[i], d[i], (0, 0)) for i in range(n)]
        # one spatial axis at a time, last first: k1 + ... + kn slices instead of k1 * ... * kn,
        # and the columns come out in the kernel's [*window, in] order. Against a slice per
        # window offset, the LeNet-5 training step (28x28, batch 128) ran 1.21x as fast (12.0 ->
        # 9.9 ms) and compiled in 1.3 s instead of 1.6 s; the DCGAN iteration the same.
        cols = x
        for i in reversed(range(n)):
            lead = (slice(None),) * (1 + i)
            cols = jnp.concatenate([cols[(*lead, slice(o * d[i], o * d[i] + (outs[i] - 1) * s[i] + 1, s[i]))]
                                    for o in range(k[i])], -1)
        w = ctx.params["kernel"]
        y = cols @ w.reshape(-1, w.shape[-1])
        return y + ctx.params["bias"] if bias else y


for _n in (1, 2, 3):
    register(type(f"Conv{_n}DPatches", (ConvPatches,),
                  {"name": f"conv{_n}d_patches", "base": f"conv{_n}d", "__doc__": ConvPatches.__doc__}))


class ConvTransposeMatmul(SameAsBase):
    """A strided transposed convolution as one matmul and an overlap-add: every input pixel times
    the kernel reshaped to [in_channels, window * filters] gives each pixel's whole scattered
    footprint at once; footprints then add into the output with shifted pads, stride by stride.
    The same parameters, attributes and result as the op it replaces. XLA computes the op as a
    convolution of the stride-dilated input, three quarters zeros at stride 2; here no zero is
    multiplied (benchmarks/RESULTS.md: the DCGAN iteration 1.3-1.4x faster on XLA:CPU)."""

    def apply(self, ctx, x, filters, kernel, stride, padding, bias, **unit):
        # `unit`: output_padding 0, dilation 1, groups 1, the only values the rule rewrites
        import jax.numpy as jnp

        from ..ops.conv import tup
        base = OPS[self.base]
        n = base.n
        k, s = tup(kernel, n, "kernel"), tup(stride, n, "stride")
        m = [-(-ki // si) for ki, si in zip(k, s)]  # kernel taps per stride, rounded up
        w = ctx.params["kernel"]
        sizes = x.shape[1:-1]
        y = x @ jnp.moveaxis(w, -2, 0).reshape(w.shape[-2], -1)  # [N, *sizes, prod(k) * filters]
        y = y.reshape(*x.shape[:-1], *k, filters)
        # pad each kernel axis to m * s taps, then split it into (m, s)
        y = _zero_pad(y, [(0, 0)] * (n + 1) + [(0, mi * si - ki) for ki, si, mi in zip(k, s, m)] + [(0, 0)])
        y = y.reshape(*x.shape[:-1], *itertools.chain(*zip(m, s)), filters)
        # y axes: N, H1..Hn, (m1, s1), ..., (mn, sn), C; tap a shifts by a strides: N, (H1, s1), ..., C
        interleave = [0] + list(itertools.chain(*((1 + i, n + 1 + i) for i in range(n)))) + [2 * n + 1]
        out = None
        for a in itertools.product(*(range(mi) for mi in m)):
            part = y[(slice(None),) * (n + 1) + tuple(itertools.chain(*((ai, slice(None)) for ai in a)))]
            part = jnp.transpose(part, interleave)  # N, H1..Hn, s1..sn, C -> N, H1, s1, ..., C
            part = _zero_pad(part, [(0, 0)] + list(itertools.chain(
                *(((ai, mi - 1 - ai), (0, 0)) for ai, mi in zip(a, m)))) + [(0, 0)])
            out = part if out is None else out + part
        full = out.reshape(x.shape[0], *((hi + mi - 1) * si for hi, mi, si in zip(sizes, m, s)), filters)
        idx = []
        for i, (lo, hi) in enumerate(base._crops(padding, k, s, (1,) * n, (0,) * n)):
            length = (sizes[i] - 1) * s[i] + k[i] - lo - hi
            idx.append(slice(lo, lo + length))
        y = full[(slice(None), *idx, slice(None))]
        return y + ctx.params["bias"] if bias else y


for _n in (1, 2, 3):
    register(type(f"ConvTranspose{_n}DMatmul", (ConvTransposeMatmul,),
                  {"name": f"conv_transpose{_n}d_matmul", "base": f"conv_transpose{_n}d",
                   "__doc__": ConvTransposeMatmul.__doc__}))


@register
class ScanLayers(OpDef):
    """`Block * n` as one loop: the body (the first copy) runs `copies` times, each time reading
    the parameters of the next copy (named in `paths`); the interpreter stacks them for lax.scan.
    Inputs: the value entering the first copy, then values every copy reads from outside."""

    name = "scan_layers"
    inputs = ("*xs",)
    attrs = (Attr("body", "any"), Attr("copies", "int"), Attr("paths", "any"))
    kind = "internal"
    body_attrs = ("body",)

    def infer(self, *xs, body, copies, paths):
        return body.node(body.outputs["out"]).type

    def lower(self, node, args, ctx):
        """Each copy's parameters (and read-only state) are stacked along a new leading axis, and
        the body (the first copy) reads its slice where the first copy's live."""
        import jax
        import jax.numpy as jnp
        body: Graph = node.attrs["body"]
        copies = node.attrs["paths"].paths  # per copy, the scope of each parameterized body node
        slots = copies[0]

        def stacked(tree):
            out = []
            for j in range(len(slots)):
                per_copy = [leaves(tree, c[j]) for c in copies]
                out.append({k: jnp.stack([lv[k] for lv in per_copy]) for k in per_copy[0]})
            return out

        def step(carry, sl):
            p_sl, s_sl = sl
            env = ctx.run_body(body, [carry, *args[1:]], params=_overlay(ctx.params, slots, p_sl),
                               state=_overlay(ctx.state, slots, s_sl))
            out = env[body.outputs["out"]]
            return (cast(out, carry.dtype) if hasattr(carry, "dtype") else out), None

        out, _ = jax.lax.scan(step, args[0], (stacked(ctx.params), stacked(ctx.state)))
        return out

    def flops(self, out, *xs, body, copies, paths):
        from ..ops.cost import graph_flops
        return graph_flops(body) * copies


def _overlay(tree: dict, paths, values) -> dict:
    """`tree` with the leaves at each path replaced (a copy along each path; `tree` is untouched)."""
    out = dict(tree)
    for path, val in zip(paths, values):
        if not val:
            continue
        node = out
        for k in path[:-1]:
            node[k] = dict(node.get(k, {}))
            node = node[k]
        node[path[-1]] = val[""] if "" in val else {**node.get(path[-1], {}), **val}
    return out
