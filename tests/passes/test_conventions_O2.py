"""-O2's convolution rewrites under the padding forms and transposed-convolution arguments of
issue 16: the patches rewrite computes asymmetric and "same_lower" padding as -O0 does, and the
overlap-add rewrite of strided transposed convolutions fires for crops it implements and stays
away from dilation, groups, output_padding and output_size."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import nndsl
from nndsl.ir.types import TensorType

CASES = [
    # (layer, input shape, the op -O2 must compute it as, or None for "left alone")
    ("conv2d(3, 3, padding=[[0, 2], [1, 1]])", (2, 6, 5, 2), "conv2d_patches"),
    ('conv2d(3, 3, stride=2, padding="same_lower")', (2, 7, 6, 2), "conv2d_patches"),
    ("conv_transpose2d(3, 3, stride=2, padding=[[0, 2], [1, 0]])", (2, 3, 4, 2), "conv_transpose2d_matmul"),
    ('conv_transpose2d(3, 4, stride=2, padding="same_lower")', (2, 3, 4, 2), "conv_transpose2d_matmul"),
    ("conv_transpose2d(4, 3, stride=2, groups=2)", (2, 3, 4, 2), None),
    ("conv_transpose2d(3, 3, stride=2, dilation=2)", (2, 3, 4, 2), None),
    ("conv_transpose2d(3, 3, stride=2, padding=1, output_padding=1)", (2, 3, 4, 2), None),
    ('conv_transpose2d(3, 3, stride=2, padding="same", output_size=[7, 9])', (2, 3, 4, 2), None),
]


@pytest.mark.parametrize("layer, shape, rewritten", CASES, ids=[c[0] for c in CASES])
def test_conv_as_matmul_agrees_with_O0(layer, shape, rewritten):
    if jax.default_backend() != "cpu":
        pytest.skip("the rewrites are measured for XLA:CPU only")
    src = f"model M {{\n  input x: [batch, {', '.join(map(str, shape[1:]))}]\n  output y = x -> {layer}\n}}\n"
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    nets = [nndsl.loads(src, opt_level=0).model("M"),
            nndsl.loads(src, opt_level=0, passes=["conv-as-matmul"]).model("M")]
    variables = nets[0].init(jax.random.key(1), x)
    variables = jax.tree.map(lambda a: a + 0.1 * np.random.default_rng(2).normal(size=a.shape).astype(a.dtype),
                             variables)
    want, got = (np.asarray(n.apply(variables, x)) for n in nets)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    ops = {n.op for n in nets[1].optimized_graph((TensorType(shape, "float32"),), False).nodes()}
    base = layer.split("(")[0]
    if rewritten:
        assert rewritten in ops and base not in ops, ops
    else:
        assert base in ops and not any(o.startswith(base + "_") for o in ops), ops
