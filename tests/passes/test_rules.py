"""Each pass on its own: the graph it leaves (a golden dump with ids renumbered, or the ops and
attributes that matter) and, where the rewrite computes differently, the numbers against -O0 or a
reference written here."""
from __future__ import annotations

import copy
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl
from nndsl.api import _type_of
from nndsl.ir.graph import Graph
from nndsl.ir.printer import print_graph
from nndsl.ir.types import TensorType
from nndsl.ops import OPS, ApplyCtx
from nndsl.passes import Context, optimize, verify
from nndsl.passes.cleanup import CommonSubexpressionElimination, DeadCodeElimination
from nndsl.passes.simplify import FoldConstants

from .util import assert_same, canonical, dump, models, ops, random_variables

T = TensorType


def opt(src, name, passes, **args):
    return nndsl.loads(src, opt_level=0, passes=passes).model(name, **args)


# ---------------------------------------------------------------------- simplify
SIMPLE = """
model S {
  input x: [batch, 4, 6]
  a = transpose(transpose(x, perm=[0, 2, 1]), perm=[0, 2, 1])
  b = (a * 1 + 0 - 0) / 1
  c = b -> reshape([24]) -> reshape([4, 6]) -> identity
  output y = c ** 1 -> dropout(0.5)
}
model T {
  input x: [batch, 4, 6]
  output y = transpose(transpose(x, perm=[0, 2, 1]), perm=[1, 0, 2]) -> relu -> relu
}
model Ints {
  input x: i32[batch, 3]
  output y = x * 1
}
"""
X3 = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, 6)), jnp.float32)


def test_simplify_removes_identities_transposes_reshapes_and_eval_dropout():
    m = opt(SIMPLE, "S", ["simplify", "dce"])
    assert dump(m, X3) == '%0 = input[name="x"]() : f32[2, 4, 6]\noutput y = %0'
    assert dump(m, X3, train=True) == ('%0 = input[name="x"]() : f32[2, 4, 6]\n'
                                       '%1 = dropout[rate=0.5](%0) : f32[2, 4, 6]  @dropout_0\n'
                                       'output y = %1')
    np.testing.assert_array_equal(m.apply({"params": {}, "state": {}}, X3), X3)


def test_two_transposes_become_one_and_relu_is_idempotent():
    m = opt(SIMPLE, "T", ["simplify", "dce"])
    assert dump(m, X3) == ('%0 = input[name="x"]() : f32[2, 4, 6]\n'
                           '%1 = transpose[perm=[2, 0, 1]](%0) : f32[6, 2, 4]\n'
                           '%2 = relu(%1) : f32[6, 2, 4]  @relu_0\n'
                           'output y = %2')
    want = np.maximum(np.transpose(np.transpose(X3, (0, 2, 1)), (1, 0, 2)), 0)
    np.testing.assert_allclose(m.apply({"params": {}, "state": {}}, X3), want)


def test_an_identity_that_would_change_the_dtype_stays():
    m = opt(SIMPLE, "Ints", ["simplify"])
    x = jnp.ones((2, 3), jnp.int32)
    assert "mul" in ops(dump(m, x))
    assert m.apply({"params": {}, "state": {}}, x).dtype == jnp.float32


# ---------------------------------------------------------------------- fold-constants, cse, dce
def scalar_graph():
    g = Graph()
    x = g.add("input", [], {"name": "x"}, T((2, 3)))
    g.inputs.append(x.id)
    two = g.add("const", [], {"value": 2.0, "dtype": "float32"}, T(()))
    three = g.add("const", [], {"value": 3.0, "dtype": "float32"}, T(()))
    six = g.add("mul", [two.id, three.id], {}, T(()))
    four = g.add("fill", [], {"shape": (2, 3), "value": 4.0}, T((2, 3)))
    root = g.add("sqrt", [four.id], {}, T((2, 3)))
    y = g.add("add", [g.add("mul", [x.id, six.id], {}, T((2, 3))).id, root.id], {}, T((2, 3)))
    g.outputs["y"] = y.id
    return g


def test_constant_subgraphs_are_evaluated_at_compile_time():
    g = scalar_graph()
    FoldConstants().run(g, Context())
    DeadCodeElimination().run(g, Context())
    verify(g, allow_dead=False)
    assert canonical(print_graph(g)) == (
        '%0 = input[name="x"]() : f32[2, 3]\n'
        '%1 = const[dtype="float32", value=6.0]() : f32[]\n'
        '%2 = mul(%0, %1) : f32[2, 3]\n'
        '%3 = fill[shape=[2, 3], value=2.0]() : f32[2, 3]\n'
        '%4 = add(%2, %3) : f32[2, 3]\n'
        'output y = %4')


def test_cse_merges_equal_pure_nodes_but_not_layers_or_draws():
    g = Graph()
    x = g.add("input", [], {"name": "x"}, T((2, 3)))
    g.inputs.append(x.id)
    t1, t2 = (g.add("tanh", [x.id], {}, T((2, 3))) for _ in range(2))
    d1, d2 = (g.add("dropout", [x.id], {"rate": 0.5}, T((2, 3)), path=(f"dropout_{i}",)) for i in range(2))
    z1, z2 = (g.add("normal", [], {"shape": (2, 3), "mean": 0.0, "std": 1.0}, T((2, 3)), path=("~z",))
              for _ in range(2))
    total = x.id
    for n in (t1, t2, d1, d2, z1, z2):
        total = g.add("add", [total, n.id], {}, T((2, 3))).id
    g.outputs["y"] = total
    assert CommonSubexpressionElimination().run(g, Context()) == 1
    assert [n.op for n in g.nodes()].count("tanh") == 1
    assert [n.op for n in g.nodes()].count("dropout") == 2 and [n.op for n in g.nodes()].count("normal") == 2
    verify(g, allow_dead=False)


CELL = """import cells
model Net {
  input seq: [batch, time, 3]
  output h = seq -> LSTM(4)
}
model G {
  input seq: [batch, time, 3]
  output h = seq -> GRU(4)
}
"""
SEQ = jnp.asarray(np.random.default_rng(1).standard_normal((2, 5, 3)), jnp.float32)


def test_dce_drops_unused_final_states_but_keeps_inputs():
    built = opt(CELL, "Net", [])
    kept = opt(CELL, "Net", ["dce"])
    assert ops(dump(built, SEQ)).count("get_item") == 3  # sequence, final h, final c
    assert ops(dump(kept, SEQ)).count("get_item") == 1
    g = kept.optimized_graph((_type_of(SEQ),))
    verify(g, allow_dead=False)


# ---------------------------------------------------------------------- fuse-parallel-dense
def test_the_four_lstm_gates_become_one_matmul_and_a_split():
    m = opt(CELL, "Net", ["fuse-parallel-dense", "dce"])
    text = dump(m, SEQ)
    body = [ln.strip() for ln in text.splitlines() if ln.startswith("    ")]
    assert "dense" not in ops(text)
    assert ops(text).count("matmul") == 1
    assert "%8 = param[dtype=\"float32\", init_name=\"glorot\", shape=[7, 4]]() : f32[7, 4]  @LSTM_0.dense_0.kernel" \
        in body
    assert "%12 = concat[axis=-1](%8, %9, %10, %11) : f32[7, 16]" in body
    assert "%13 = matmul(%7, %12) : f32[2, 16]" in body
    assert "%18 = concat[axis=-1](%14, %15, %16, %17) : f32[16]" in body
    assert "%20 = split[axis=-1, sections=[4, 4, 4, 4]](%19) : (f32[2, 4], f32[2, 4], f32[2, 4], f32[2, 4])" in body
    # parameters are still stored per layer, under the names the builder gave them
    built = opt(CELL, "Net", []).graph((_type_of(SEQ),))
    assert m.optimized_graph((_type_of(SEQ),)).params.keys() == built.params.keys()
    base, fused = models(CELL, "Net", passes=["fuse-parallel-dense", "dce"])
    assert_same(base, fused, [SEQ], grads=False)  # gradients: test_equivalence (every pass at once)


ATTENTION = """
model Attention(d: int = 8) {
  input x: [batch, time, 8]
  q = x -> dense(d)
  k = x -> dense(d)
  v = x -> dense(d, bias=false)
  output y = (q @ transpose(k, perm=[0, 2, 1]) -> softmax) @ v
}
"""


def test_only_dense_layers_alike_in_bias_are_fused():
    x = jnp.ones((2, 4, 8))
    text = dump(opt(ATTENTION, "Attention", ["fuse-parallel-dense", "dce"]), x)
    assert "split[axis=-1, sections=[8, 8]]" in text and ops(text).count("dense") == 1  # v stays


# ---------------------------------------------------------------------- fold-batchnorm
BLOCK = """import resnet
model B {
  input x: [batch, 6, 6, 3]
  output y = x -> BasicBlock(4)
}
model B16 {
  input x: [batch, 6, 6, 16]
  output y = x -> BasicBlock(4)
}
model D {
  input x: [batch, 5]
  output y = x -> dense(4) -> batchnorm -> relu
}
"""
IMG = jnp.asarray(np.random.default_rng(2).standard_normal((2, 6, 6, 3)), jnp.float32)


def test_batchnorm_is_folded_into_convolutions_for_inference_only():
    m = opt(BLOCK, "B", ["fold-batchnorm", "dce"])
    infer, train = ops(dump(m, IMG)), ops(dump(m, IMG, train=True))
    assert "batchnorm" not in infer and infer.count("conv2d_bn") == 3 and "conv2d" not in infer
    assert train.count("batchnorm") == 3 and "conv2d_bn" not in train
    assert ('reads=[["bn", ["BasicBlock_0", "batchnorm_0"]]], scale=true, stride=1](%0) : f32[2, 6, 6, 4]  '
            '@BasicBlock_0.conv2d_0') in dump(m, IMG)
    base, folded = models(BLOCK, "B", passes=["fold-batchnorm", "dce"])
    assert_same(base, folded, [IMG])
    assert_same(base, folded, [IMG], train=True, grads=False)


def test_batchnorm_after_dense_is_folded_into_its_kernel():
    x = jnp.asarray(np.random.default_rng(3).standard_normal((3, 5)), jnp.float32)
    m = opt(BLOCK, "D", ["fold-batchnorm", "dce"])
    assert ops(dump(m, x)) == ["input", "dense_bn", "relu"]
    v = random_variables(m, [x])
    p, s = v["params"], v["state"]
    bn = (x @ p["dense_0"]["kernel"] + p["dense_0"]["bias"] - s["batchnorm_0"]["mean"]) / np.sqrt(
        s["batchnorm_0"]["var"] + 1e-5) * p["batchnorm_0"]["scale"] + p["batchnorm_0"]["bias"]
    np.testing.assert_allclose(m.apply(v, x), np.maximum(bn, 0), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- conv-as-matmul
def test_small_convolutions_become_patches_and_large_ones_stay():
    lenet = opt("import lenet", "LeNet5", ["conv-as-matmul"])
    text = dump(lenet, jnp.ones((1, 32, 32, 1)))
    assert ops(text).count("conv2d_patches") == 2 and "conv2d[" not in text  # windows x channels: 25, 150
    block = opt(BLOCK, "B16", ["conv-as-matmul"])
    ops_b = ops(dump(block, jnp.ones((1, 6, 6, 16))))
    # 3x3x16 = 144 as patches; 3x3x4 as patches; the 1x1 projection stays a convolution
    assert ops_b.count("conv2d_patches") == 2 and ops_b.count("conv2d") == 1


GEOMETRIES = [(3, 1, "valid", 1), (3, 2, "same", 1), (2, 2, "same", 1), (3, 1, 1, 2), (4, 2, "same", 1),
              (5, 3, 2, 1)]


CONVS = [(r, *geo) for r in (1, 2) for geo in GEOMETRIES] + [(3, *geo) for geo in GEOMETRIES[:3]]


@pytest.mark.parametrize("rank,kernel,stride,padding,dilation", CONVS)
def test_patches_compute_the_convolution(rank, kernel, stride, padding, dilation):
    rng = np.random.default_rng(rank)
    shape = {1: (2, 11, 3), 2: (2, 9, 10, 3), 3: (1, 7, 6, 8, 2)}[rank]
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    attrs = dict(filters=4, kernel=kernel, stride=stride, padding=padding, dilation=dilation, groups=1, bias=True)
    specs = OPS[f"conv{rank}d"].params(T(shape), **attrs)
    p = {k: jnp.asarray(rng.standard_normal(v.shape), jnp.float32) for k, v in specs.items()}
    # the reference: XLA's own convolution, through lax directly
    dn = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}[rank]
    pad = padding.upper() if isinstance(padding, str) else [(padding, padding)] * rank
    want = jax.lax.conv_general_dilated(x, p["kernel"], (stride,) * rank, pad, rhs_dilation=(dilation,) * rank,
                                        dimension_numbers=dn) + p["bias"]
    got = OPS[f"conv{rank}d_patches"].apply(ApplyCtx(params=p), x, **attrs)
    assert OPS[f"conv{rank}d_patches"].infer(T(shape), **attrs).shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------- scan hoisting
def test_invariant_kernels_are_concatenated_once_before_the_scan():
    m = opt(CELL, "Net", ["fuse-parallel-dense", "hoist-scan-invariants", "dce"])
    text = dump(m, SEQ)
    outer = [ln for ln in text.splitlines() if not ln.startswith("    ")]
    assert any("concat[axis=-1]" in ln and "f32[7, 16]" in ln for ln in outer)
    assert any(ln.startswith("%13 = scan[n_consts=2,") for ln in outer)
    assert '    %18 = input[name="const_3"]() : f32[7, 16]' in text.splitlines()
    base, hoisted = models(CELL, "Net", passes=["fuse-parallel-dense", "hoist-scan-invariants", "dce"])
    assert_same(base, hoisted, [SEQ], grads=False)


def test_the_input_half_of_the_gates_runs_as_one_matmul_over_all_steps():
    m = opt(CELL, "Net", ["fuse-parallel-dense", "hoist-scan-inputs", "dce"])
    lines = dump(m, SEQ).splitlines()
    assert "%10 = matmul(%0, %9) : f32[2, 5, 16]" in lines  # x @ W_x for every step at once
    assert "%16 = add(%10, %15) : f32[2, 5, 16]" in lines  # with the bias
    assert any(ln.startswith("%17 = scan[n_seqs=1,") and ln.endswith("@LSTM_0") for ln in lines)
    assert "    %28 = matmul(%19, %27) : f32[2, 16]" in lines  # h @ W_h stays in the loop
    assert "    %30 = add(%29, %28) : f32[2, 16]" in lines
    base, hoisted = models(CELL, "Net", passes=["fuse-parallel-dense", "hoist-scan-inputs", "dce"])
    assert_same(base, hoisted, [SEQ], grads=False)


@pytest.mark.parametrize("name", ["Net", "G"])
def test_inputs_hoist_after_the_invariants_did(name):
    """After hoist-scan-invariants, the weights reach the body as constants (body inputs): the
    input half computed outside must read the scan's own operand, not a copy of the body's input
    node (which the verifier rejects: an input the outer graph does not have)."""
    passes = ["fuse-parallel-dense", "split-concat-matmul", "hoist-scan-invariants", "hoist-scan-inputs", "dce"]
    m = nndsl.loads(CELL, opt_level=0, passes=passes).model(name)
    text = dump(m, SEQ)
    outer = [ln for ln in text.splitlines() if not ln.startswith("    ")]
    assert not any("= input[" in ln and "seq" not in ln for ln in outer)
    assert any("n_seqs=" in ln and "scan[" in ln for ln in outer)
    base, hoisted = models(CELL, name, passes=passes)
    assert_same(base, hoisted, [SEQ])


def test_gru_hoists_what_does_not_read_the_state():
    m = opt(CELL, "G", ["hoist-scan-inputs", "dce"])
    text = dump(m, SEQ)
    outer = [ln for ln in text.splitlines() if not ln.startswith("    ")]
    assert sum("matmul(%0," in ln and "f32[2, 5, 4]" in ln for ln in outer) == 3  # z, r and n: their x halves
    assert any("scan[n_seqs=3," in ln for ln in outer)
    body = ops("\n".join(ln for ln in text.splitlines() if ln.startswith("    ")))
    assert body.count("matmul") == 3  # h @ W_z, h @ W_r and (r * h) @ W_n stay
    base, hoisted = models(CELL, "G", passes=["hoist-scan-inputs", "dce"])
    assert_same(base, hoisted, [SEQ])


# ---------------------------------------------------------------------- scan-layers
STACKS = """import resnet
model Deep {
  input x: [batch, 5]
  output y = x -> dense(6) -> (dense(6) -> relu -> dense(6) -> tanh -> dense(6) -> sigmoid -> dense(6) -> relu) * 8
    -> dense(2)
}
model Short {
  input x: [batch, 5]
  output y = x -> (dense(5) -> relu) * 3
}
model Peek {
  input x: [batch, 5]
  a = x -> (dense(5) -> relu) * 2
  output b = a -> (dense(5) -> relu) * 2
  output a = a
}
model Tower {
  input x: [batch, 4, 4, 3]
  output y = x -> BasicBlock(4) * 9 -> global_avg_pool
}
"""


def test_identical_copies_become_one_scan_and_keep_their_parameter_names():
    m = opt(STACKS, "Deep", ["scan-layers"])
    x = jnp.ones((3, 5))
    assert dump(m, x) == (
        '%0 = input[name="x"]() : f32[3, 5]\n'
        '%1 = dense[bias=true, shard=none, units=6](%0) : f32[3, 6]  @dense_0\n'
        '%2 = scan_layers[copies=8, paths=[dense_1..dense_8, dense_9..dense_16, dense_17..dense_24, '
        'dense_25..dense_32]](%1) : f32[3, 6]\n'
        '    %3 = input[name="carry"]() : f32[3, 6]\n'  # the body: the first copy
        '    %4 = dense[bias=true, shard=none, units=6](%3) : f32[3, 6]  @dense_1\n'
        '    %5 = relu(%4) : f32[3, 6]  @relu_0\n'
        '    %6 = dense[bias=true, shard=none, units=6](%5) : f32[3, 6]  @dense_9\n'
        '    %7 = tanh(%6) : f32[3, 6]  @tanh_0\n'
        '    %8 = dense[bias=true, shard=none, units=6](%7) : f32[3, 6]  @dense_17\n'
        '    %9 = sigmoid(%8) : f32[3, 6]  @sigmoid_0\n'
        '    %10 = dense[bias=true, shard=none, units=6](%9) : f32[3, 6]  @dense_25\n'
        '    %11 = relu(%10) : f32[3, 6]  @relu_8\n'
        '    output out = %11\n'
        '%12 = dense[bias=true, shard=none, units=2](%2) : f32[3, 2]  @dense_33\n'
        'output y = %12')
    g = m.optimized_graph((_type_of(x),))
    node = next(n for n in g.nodes() if n.op == "scan_layers")
    paths = node.attrs["paths"].paths
    assert paths[0] == (("dense_1",), ("dense_9",), ("dense_17",), ("dense_25",))
    assert paths[7] == (("dense_8",), ("dense_16",), ("dense_24",), ("dense_32",))
    assert ops(canonical(print_graph(node.attrs["body"]))) == ["input", "dense", "relu", "dense", "tanh", "dense",
                                                               "sigmoid", "dense", "relu"]
    assert g.params.keys() == opt(STACKS, "Deep", []).graph((_type_of(x),)).params.keys()


def test_short_runs_stay_unless_asked_and_inner_outputs_block_stacking():
    x = jnp.ones((2, 5))
    assert "scan_layers" not in dump(opt(STACKS, "Short", ["scan-layers"]), x)  # 3 copies < 8
    for name, stacked in (("Short", True), ("Peek", False)):
        g = copy.deepcopy(opt(STACKS, name, []).graph((_type_of(x),)))
        optimize(g, passes=["scan-layers", "dce"], verify=True, options={"min_copies": 2, "min_unit": 1})
        assert any(n.op == "scan_layers" for n in g.nodes()) == stacked
    g = copy.deepcopy(opt(STACKS, "Peek", []).graph((_type_of(x),)))
    optimize(g, passes=["scan-layers"], options={"min_copies": 2, "min_unit": 1})
    assert sum(n.op == "scan_layers" for n in g.nodes()) == 0  # `a` is read outside its copies


def test_blocks_with_batchnorm_stack_for_inference_but_not_for_training():
    m = opt(STACKS, "Tower", ["fold-batchnorm", "scan-layers", "dce"])
    x = jnp.ones((2, 4, 4, 3))
    assert "scan_layers[copies=8," in dump(m, x)  # the first block projects 3 -> 4 channels: not a copy
    assert "scan_layers" not in dump(m, x, train=True)  # batchnorm updates its statistics per copy


# ---------------------------------------------------------------------- transposed convolutions
def scatter_add_reference(x, kernel, stride, crop):
    """The definition, in numpy: out[i * s + k] += x[i] @ kernel[k], then the kept window."""
    n = x.ndim - 2
    sizes, k = x.shape[1:-1], kernel.shape[:n]
    full = np.zeros((x.shape[0], *((h - 1) * s + max(kk, s) for h, s, kk in zip(sizes, stride, k)), kernel.shape[-1]))
    for i in itertools.product(*(range(h) for h in sizes)):
        for o in itertools.product(*(range(kk) for kk in k)):
            at = tuple(ii * s + oo for ii, s, oo in zip(i, stride, o))
            full[(slice(None), *at)] += x[(slice(None), *i)] @ kernel[o]
    idx = tuple(slice(start, start + (h - 1) * s + kk + extra)
                for (start, extra), h, s, kk in zip(crop, sizes, stride, k))
    return full[(slice(None), *idx)]


TRANSPOSED = [(1, 4, 2, "same"), (1, 3, 2, "valid"), (1, 5, 3, 1), (2, 4, 2, "same"), (2, 3, 2, "same"),
              (2, 2, 3, "valid"), (2, 5, 2, 2), (3, 4, 2, "same"), (3, 3, 2, "valid")]


@pytest.mark.parametrize("rank,kernel,stride,padding", TRANSPOSED)
def test_transposed_convolution_as_matmul_computes_the_definition(rank, kernel, stride, padding):
    rng = np.random.default_rng(kernel * 10 + stride)
    shape = {1: (2, 5, 3), 2: (2, 4, 5, 3), 3: (1, 3, 4, 3, 2)}[rank]
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    attrs = dict(filters=4, kernel=kernel, stride=stride, padding=padding, bias=True)
    base = OPS[f"conv_transpose{rank}d"]
    specs = base.params(T(shape), **attrs)
    p = {k: jnp.asarray(rng.standard_normal(v.shape), jnp.float32) for k, v in specs.items()}
    crop = base._crop(padding, (kernel,) * rank, (stride,) * rank)
    want = scatter_add_reference(np.asarray(x, np.float64), np.asarray(p["kernel"], np.float64),
                                 (stride,) * rank, crop) + np.asarray(p["bias"])
    matmul = OPS[f"conv_transpose{rank}d_matmul"]
    got = matmul.apply(ApplyCtx(params=p), x, **attrs)
    assert matmul.infer(T(shape), **attrs).shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # and the gradients agree with XLA's convolution (the op it replaces)
    loss = lambda op: lambda p, x: jnp.sum(jnp.sin(op.apply(ApplyCtx(params=p), x, **attrs)))
    g_want = jax.grad(loss(base), (0, 1))(p, x)
    g_got = jax.grad(loss(matmul), (0, 1))(p, x)
    for a, b in zip(jax.tree_util.tree_leaves(g_want), jax.tree_util.tree_leaves(g_got)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


UPSAMPLER = """
model Up {
  input z: [batch, 3, 3, 4]
  output y = z -> conv_transpose2d(8, 4, stride=2) -> relu -> conv_transpose2d(2, 3) -> tanh
}
"""


def test_strided_transposed_convolutions_become_matmuls_and_stride_one_stays():
    m = opt(UPSAMPLER, "Up", ["conv-as-matmul"])
    got = ops(dump(m, jnp.ones((2, 3, 3, 4))))
    assert got.count("conv_transpose2d_matmul") == 1 and got.count("conv_transpose2d") == 1
    z = jnp.asarray(np.random.default_rng(5).standard_normal((2, 3, 3, 4)), jnp.float32)
    base, rewritten = models(UPSAMPLER, "Up", passes=["conv-as-matmul"])
    assert_same(base, rewritten, [z])


# ---------------------------------------------------------------------- split-concat-matmul
def test_the_gate_matmul_on_h_and_x_is_split_inside_the_loop():
    passes = ["fuse-parallel-dense", "split-concat-matmul", "hoist-scan-invariants", "dce"]
    m = opt(CELL, "Net", passes)
    text = dump(m, SEQ)
    body = [ln for ln in text.splitlines() if ln.startswith("    ")]
    outer = [ln for ln in text.splitlines() if not ln.startswith("    ")]
    assert not any("concat" in ln for ln in body)  # no [h, x] per step
    assert sum("matmul(" in ln for ln in body) == 2  # x @ W_x and h @ W_h, gates fused
    assert any("split[axis=0, sections=[4, 3]]" in ln for ln in outer)  # the kernel's halves, once
    assert any(ln.startswith("%") and "scan[n_consts=3," in ln for ln in outer)
    base, split = models(CELL, "Net", passes=passes)
    assert_same(base, split, [SEQ])


# ---------------------------------------------------------------------- last of a scan
LAST = """import cells
model L {
  input seq: [batch, time, 3]
  output y = seq -> LSTM(4) -> last
}
model Both {
  input seq: [batch, time, 3]
  h = seq -> LSTM(4)
  output y = h -> last
  output all = h
}
"""


def test_last_of_a_scan_is_its_final_state_and_stops_stacking():
    m = opt(LAST, "L", ["simplify", "dce"])
    text = dump(m, SEQ)
    assert "last" not in ops(text) and "stack_out=false" in text
    assert any(ln.startswith("%") and "get_item[index=1]" in ln for ln in text.splitlines())
    base, simple = models(LAST, "L", passes=["simplify", "dce"])
    assert_same(base, simple, [SEQ])
    # when the sequence is also read, `last` still becomes the state but the outputs stay stacked
    both = opt(LAST, "Both", ["simplify", "dce"])
    text = dump(both, SEQ)
    assert "last" not in ops(text) and "stack_out" not in text
    base, simple = models(LAST, "Both", passes=["simplify", "dce"])
    assert_same(base, simple, [SEQ])
