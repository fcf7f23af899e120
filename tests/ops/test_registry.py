"""The registry against its tests, and each op's shape rule against what its lowering computes.

- Every user-visible op in OPS has a numeric test (test_numerics.COVERED), so adding an OpDef
  without a reference fails here.
- For every numeric row (and the stateful/random models below), every node's inferred type equals
  the shape and dtype that jax.eval_shape finds for its lowering, with concrete shapes.
- Shape mistakes are nndsl.ShapeErrors that point at the offending expression.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

import nndsl
from nndsl.ir.types import TensorType
from nndsl.lower import interpret
from nndsl.ops import OPS

from .harness import F, Int, Case, concrete_graph, make_inputs, model_of, randomize
from .test_numerics import ALL, CASES, COVERED

USER_OPS = sorted(name for name, op in OPS.items() if op.kind != "internal")


def test_every_user_visible_op_has_a_numeric_test():
    missing = sorted(set(USER_OPS) - COVERED)
    assert not missing, f"ops without a numeric test in tests/ops/test_numerics.py: {missing}"


def test_covered_names_are_ops():
    assert COVERED <= set(OPS), f"not ops: {sorted(COVERED - set(OPS))}"


def test_cases_have_unique_ids():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_op_documents_itself():
    undocumented = [n for n in USER_OPS if not (type(OPS[n]).__doc__ or "").strip()]
    assert not undocumented, f"OpDefs without a docstring: {undocumented}"


# -------------------------------------------------------------------- inferred types vs eval_shape
def _as_types(t):
    return t if isinstance(t, tuple) else (t,)


def _check_types(g, env, what):
    for nid in g.topo_order():
        node = g.node(nid)
        if nid not in env:
            continue
        want = _as_types(node.type)
        got = env[nid] if isinstance(env[nid], tuple) else (env[nid],)
        assert len(want) == len(got), f"{what}: {node.op} gives {len(got)} values, inferred {len(want)}"
        for t, v in zip(want, got):
            assert isinstance(t, TensorType) and t.static, f"{what}: {node.op} inferred {t}"
            assert (tuple(t.shape), t.dtype) == (tuple(v.shape), str(v.dtype)), (
                f"{what}: {node.op} inferred {t}, its lowering gives {v.dtype}{list(v.shape)}")


def _check_model(net, xs, variables, what, train=False):
    g = concrete_graph(net, xs)
    rng = jax.random.key(0)

    def run(params, state, *inputs):
        return interpret.run(g, params, state, list(inputs), train=train, rng=rng)

    env = jax.eval_shape(run, variables["params"], variables["state"], *xs)
    _check_types(g, env, what)
    outs = jax.eval_shape(lambda v, *a: net.apply(v, *a, train=train, rngs=rng), variables, *xs)
    if train:
        outs = outs[0]
    outs = outs if isinstance(outs, dict) else {next(iter(g.outputs)): outs}
    for name, nid in g.outputs.items():
        t = g.node(nid).type
        assert (tuple(t.shape), t.dtype) == (outs[name].shape, str(outs[name].dtype)), (what, name)


@pytest.mark.parametrize("case", ALL)
def test_inferred_types_match_lowering(case: Case):
    net = model_of(case.body)
    xs = make_inputs(case)
    variables = jax.eval_shape(net.init, jax.random.key(0), *xs)
    _check_model(net, xs, variables, case.id)


STATEFUL = [
    ("batchnorm", "input x: [batch, 3, 3, 2]\noutput y = x -> batchnorm", [F(4, 3, 3, 2)]),
    ("dropout", "input x: [batch, 6]\noutput y = x -> dropout(0.5) -> dense(2)", [F(4, 6)]),
    ("draws", "input x: [batch, 2]\nz = normal([batch, 3]) + uniform([batch, 3]) * bernoulli([batch, 3])\n"
              "output y = [x, z]\noutput c = categorical([batch], classes=4)", [F(4, 2)]),
    ("int-ops", "input t: i32[batch, 3]\noutput a = t * 2 + 1\noutput b = t / 2\noutput c = sqrt(t)\n"
                "output d = relu(t) + abs(t)\noutput e = mean(t, axis=1)\noutput f = t -> dense(2)",
     [Int(2, 3, high=5)]),
]


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name, body, inputs", STATEFUL, ids=[s[0] for s in STATEFUL])
def test_inferred_types_match_lowering_stateful(name, body, inputs, train):
    case = Case(name, (), body, tuple(inputs), None)
    net = model_of(body)
    xs = make_inputs(case)
    variables = randomize(jax.eval_shape(net.init, jax.random.key(0), *xs), 0)
    _check_model(net, xs, variables, name, train=train)


# -------------------------------------------------------------------- shape errors
SHAPE_ERRORS = [
    ("dense-on-scalar", "input x: []\noutput y = x -> dense(3)", "dense(3)", "scalar"),
    ("conv2d-on-rank-2", "input x: [batch, 8]\noutput y = x -> conv2d(4, 3)", "conv2d(4, 3)", "[batch, 8]"),
    ("concat-mismatch", "input a: [batch, 8, 3]\ninput b: [batch, 6, 4]\noutput y = concat(a, b, axis=1)",
     "concat(a, b, axis=1)", "[batch, 6, 4]"),
    ("brackets-mismatch", "input a: [batch, 8, 3]\ninput b: [batch, 6, 4]\noutput y = [a, b]", "[a, b]",
     "[batch, 6, 4]"),
    ("add-mismatch", "input a: [batch, 8]\ninput b: [batch, 6]\noutput y = a + b", "a + b", "[batch, 6]"),
    ("matmul-inner", "input a: [batch, 8]\nparam w: [6, 3] ~ zeros\noutput y = a @ w", "a @ w", "[6, 3]"),
    ("reshape-count", "input a: [batch, 8]\noutput y = a -> reshape([3, 3])", "reshape([3, 3])", "[batch, 8]"),
    ("reshape-count-static", "input a: [4, 8]\noutput y = a -> reshape([3, 3])", "reshape([3, 3])", "[4, 8]"),
    ("reshape-minus-one", "input a: [batch, 8]\noutput y = a -> reshape([-1, 3])", "reshape([-1, 3])", "[batch, 8]"),
    ("split-not-dividing", "input a: [batch, 7]\ns, t = split(a, 2)\noutput y = s", "split(a, 2)", "7"),
    ("conv-kernel-too-big", "input x: [batch, 4, 4, 1]\noutput y = x -> conv2d(2, 5)", "conv2d(2, 5)", "4"),
    ("pool-rank", "input x: [batch, 4]\noutput y = x -> max_pool(2)", "max_pool(2)", "rank 2"),
    ("loss-mismatch", "input y: [batch, 3]\ninput t: [batch, 4]\noutput l = mse(y, t)", "mse(y, t)", "[batch, 4]"),
    ("labels-mismatch", "input z: [batch, 5]\ninput t: i32[batch, 2]\noutput l = cross_entropy(z, t)",
     "cross_entropy(z, t)", "[batch, 2]"),
    ("conv-groups", "input x: [batch, 5, 5, 3]\noutput y = x -> conv2d(4, 3, groups=2)",
     "conv2d(4, 3, groups=2)", "groups"),
]


@pytest.mark.parametrize("name, body, fragment, mentions", SHAPE_ERRORS, ids=[s[0] for s in SHAPE_ERRORS])
def test_shape_errors_point_at_the_expression(name, body, fragment, mentions):
    with pytest.raises(nndsl.ShapeError) as info:
        nndsl.loads(f"model M {{\n{body}\n}}").model("M")
    err = info.value
    span = err.span
    assert span is not None, f"{name}: no span"
    line = span.source.line(span.line)
    assert span.end_line == span.line
    assert line[span.col - 1:span.end_col - 1] == fragment, str(err)
    assert mentions in err.message, str(err)
    assert f":{span.line}:{span.col}:" in str(err) and "^" in str(err)


def test_shape_errors_also_at_apply_time():
    """A mistake that only concrete sizes reveal is reported when the model meets them."""
    net = model_of("input a: [batch, n]\noutput y = a -> reshape([3, 3])")
    x = np.zeros((2, 8), np.float32)
    with pytest.raises(nndsl.ShapeError) as info:
        net.init(jax.random.key(0), x)
    assert info.value.span is not None and "reshape" in str(info.value)
