"""The machinery: the rewrite driver, the pass manager and the verifier, on tiny hand-built graphs
(one behaviour per test, as tinygrad tests its pattern matcher)."""
from __future__ import annotations

import copy

import pytest

from nndsl.ir.graph import Graph, ParamSpec
from nndsl.ir.types import TensorType
from nndsl.ops import init as I
from nndsl.passes import (LEVELS, PASSES, Context, Pass, PassError, PassManager, VerifyError, level_passes,
                          optimize, rewrite, rule, verify)
from nndsl.passes.simplify import drop_repeated_idempotent

T = TensorType


def chain(*ops, shape=(2, 3)):
    """x -> op1 -> op2 ...; returns the graph and the node ids."""
    g = Graph()
    x = g.add("input", [], {"name": "x"}, T(shape))
    g.inputs.append(x.id)
    ids = [x.id]
    for op in ops:
        ids.append(g.add(op, [ids[-1]], {}, T(shape)).id)
    g.outputs["y"] = ids[-1]
    return g, ids


def op_list(g):
    return [n.op for n in g.nodes()]


# ---------------------------------------------------------------------- driver
def test_a_rule_that_never_matches_changes_nothing():
    g, _ = chain("relu", "tanh")

    @rule("relu")
    def never(g, n, ctx):
        return None
    assert rewrite(g, [never], Context()) == 0
    assert op_list(g) == ["input", "relu", "tanh"]


def test_rewrites_repeat_until_nothing_matches():
    g, ids = chain("relu", "relu", "relu", "tanh")
    assert rewrite(g, [drop_repeated_idempotent], Context()) == 2
    assert op_list(g) == ["input", "relu", "tanh"]
    verify(g, allow_dead=False)


def test_a_replaced_node_and_what_only_it_read_are_erased():
    g, ids = chain("relu", "tanh", "sigmoid")
    side = g.add("exp", [ids[1]], {}, T((2, 3)))  # relu is read by something else too
    g.outputs["z"] = side.id

    @rule("sigmoid")
    def to_input(g, n, ctx):  # sigmoid(...) -> x (wrong, but the driver does not care)
        return g.inputs[0]
    rewrite(g, [to_input], Context())
    assert g.outputs["y"] == ids[0]
    assert ids[3] not in g and ids[2] not in g  # sigmoid, and tanh that only it read
    assert ids[1] in g  # relu is still read by exp


def test_a_rule_that_always_fires_is_stopped_with_a_pass_error():
    g, _ = chain("relu")

    @rule("relu")
    def forever(g, n, ctx):  # relu(x) -> a fresh relu(x), without end
        return g.add("relu", g.input_ids(n.id), {}, n.type).id
    with pytest.raises(PassError, match="fixpoint"):
        rewrite(g, [forever], Context())


def test_rules_indexed_by_op_only_see_their_ops():
    g, _ = chain("relu", "tanh")
    seen = []

    @rule("tanh")
    def watch(g, n, ctx):
        seen.append(n.op)
    rewrite(g, [watch], Context())
    assert seen == ["tanh"]


# ---------------------------------------------------------------------- manager
def test_levels_and_unknown_names():
    assert LEVELS[0] == [] and set(LEVELS[1]) == {"simplify", "fold-constants", "cse", "dce"}
    assert set(level_passes(2, "cpu")) >= set(LEVELS[1]) | {"conv-as-matmul"}
    assert "fold-batchnorm" in level_passes(2, "an unmeasured platform")
    # measured on XLA:CPU (benchmarks/RESULTS.md): hoisting the input half out of the loop and
    # folding batchnorm were slower there
    assert not {"hoist-scan-inputs", "fold-batchnorm"} & set(level_passes(2, "cpu"))
    assert {"fuse-parallel-dense", "split-concat-matmul", "hoist-scan-invariants"} <= set(level_passes(2, "cpu"))
    assert "conv-as-matmul" not in level_passes(2, "some-unmeasured-platform")
    with pytest.raises(PassError, match="unknown pass `cce`") as e:
        PassManager(["cce"])
    assert "cse" in str(e.value)
    with pytest.raises(PassError, match="-O3"):
        optimize(Graph(), 3)


def test_level_zero_returns_the_graph_untouched():
    g, _ = chain("identity")
    assert optimize(g, 0) is g and op_list(g) == ["input", "identity"]


def test_print_after_shows_the_graph_after_that_pass():
    g, _ = chain("identity", "relu", "relu")
    shown = []
    optimize(g, passes=["simplify", "dce"], print_after=["simplify"], out=shown.append)
    assert len(shown) == 1 and shown[0].startswith("// after simplify (2 rewrites)")
    assert "identity" not in shown[0] and shown[0].count("relu") == 1


class Breaks(Pass):
    name = "break-types"

    def run_on(self, g, ctx):
        for n in g.nodes():
            if n.op == "relu":
                n.type = T((9,))
        return 1


class Crashes(Pass):
    name = "crash"

    def run_on(self, g, ctx):
        raise KeyError("boom")


def test_a_pass_that_breaks_the_graph_is_named_with_the_passes_before_it(monkeypatch):
    monkeypatch.setitem(PASSES, "break-types", Breaks)
    g, _ = chain("relu", "tanh")
    with pytest.raises(PassError, match=r"pass `break-types` left an invalid graph \(after cse, dce\)"):
        optimize(g, passes=["cse", "dce", "break-types"], verify=True)


def test_a_pass_that_crashes_is_named(monkeypatch):
    monkeypatch.setitem(PASSES, "crash", Crashes)
    g, _ = chain("relu")
    with pytest.raises(PassError, match="pass `crash` failed.*KeyError"):
        optimize(g, passes=["crash"])


def test_train_only_and_eval_only_passes_skip_the_other_mode():
    g, _ = chain("relu")

    class EvalOnly(Breaks):
        eval_only = True
    assert EvalOnly().run(g, Context(train=True)) == 0
    assert EvalOnly().run(g, Context(train=False)) == 1


# ---------------------------------------------------------------------- verifier
def test_verify_accepts_a_built_graph_and_names_what_is_wrong():
    g, ids = chain("relu", "tanh")
    verify(g)
    g.node(ids[2]).type = T((2, 4))
    with pytest.raises(VerifyError, match=r"tanh\) has type f32\[2, 4\] but its inputs give f32\[2, 3\]"):
        verify(g)


@pytest.mark.parametrize("damage, message", [
    (lambda g, ids: g.set_inputs(ids[1], [ids[2]]), "cycle"),
    (lambda g, ids: g.erase(ids[1]), r"tanh\) reads %1, which is not a node"),
    (lambda g, ids: g.set_inputs(ids[2], [ids[1], ids[0]]), "has 2 inputs, it takes 1"),
    (lambda g, ids: g.outputs.update(z="%99"), "output `z` names %99"),
    (lambda g, ids: g.inputs.append(ids[1]), "is a relu"),
    (lambda g, ids: setattr(g.node(ids[1]), "op", "frobnicate"), "unknown op `frobnicate`"),
    (lambda g, ids: setattr(g.node(ids[1]), "type", None), "has no type"),
])
def test_verify_finds_broken_invariants(damage, message):
    g, ids = chain("relu", "tanh")
    damage(g, ids)
    with pytest.raises(VerifyError, match=message):
        verify(g)


def test_verify_checks_that_parameters_read_are_declared():
    g, ids = chain()
    d = g.add("dense", [ids[0]], {"units": 4, "bias": False}, T((2, 4)), path=("dense_0",))
    g.outputs["y"] = d.id
    with pytest.raises(VerifyError, match="reads parameter dense_0/kernel, which is not declared"):
        verify(g)
    g.params[("dense_0", "kernel")] = ParamSpec((3, 4), I.glorot)
    verify(g)


def test_verify_reports_dead_nodes_only_when_asked():
    g, ids = chain("relu")
    g.add("tanh", [ids[0]], {}, T((2, 3)))
    verify(g)
    with pytest.raises(VerifyError, match="dead nodes"):
        verify(g, allow_dead=False)


def test_verify_looks_inside_scan_bodies():
    import nndsl
    from nndsl.api import _type_of
    import jax.numpy as jnp
    net = nndsl.loads("import cells\nmodel M {\n input s: [batch, time, 3]\n output h = s -> RNN(4)\n}",
                      opt_level=0).model("M")
    g = copy.deepcopy(net.graph((_type_of(jnp.ones((2, 5, 3))),)))
    scan = next(n for n in g.nodes() if n.op == "scan")
    body = scan.attrs["body"]
    tanh = next(n for n in body.nodes() if n.op == "tanh")
    tanh.type = T((2, 5))
    with pytest.raises(VerifyError, match=r"scan %\d+: %\d+ \(tanh\)"):
        verify(g)


# ---------------------------------------------------------------------- the graph copy passes work on
def test_deepcopy_is_independent_but_shares_parameter_specs():
    import nndsl
    from nndsl.api import _type_of
    import jax.numpy as jnp
    # a cell's state shape is bound from named dimensions (NamedInt), which plain deepcopy could not copy
    net = nndsl.loads("import cells\nmodel M {\n input s: [batch, time, 3]\n output h = s -> LSTM(4)\n}",
                      opt_level=0).model("M")
    g = net.graph((_type_of(jnp.ones((2, 5, 3))),))
    c = copy.deepcopy(g)
    assert c.params is g.params and c.outputs == g.outputs and c.outputs is not g.outputs
    scan_c = next(n for n in c.nodes() if n.op == "scan")
    scan_g = next(n for n in g.nodes() if n.op == "scan")
    assert scan_c.attrs["body"] is not scan_g.attrs["body"]
    assert scan_c.attrs["body"].counter is c.counter  # ids stay unique across a copy and its bodies
    before = len(g)
    c.erase(c.inputs[0])
    assert len(g) == before
