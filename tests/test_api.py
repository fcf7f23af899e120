"""The Python API end to end: the programs of LANGUAGE.md through load/model/init/apply.

Every numeric check recomputes the forward pass independently (numpy, or jax.numpy written by hand)
from the weights that `init` put in `variables`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl

TOL = dict(rtol=1e-5, atol=1e-5)

MLP = """
model MLP(hidden: int = 256, classes: int = 10) {
  input x: [batch, 784]
  h = x -> dense(hidden) -> relu -> dense(hidden) -> relu
  output logits = h -> dense(classes)
}
"""

PERCEPTRON = """
model Perceptron {
  input x: [batch, 2]
  param w: [2] ~ zeros
  param b: [] ~ zeros
  output y = step(x @ w + b)
}
"""


def shapes(tree):
    return jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), tree)


def np_dense(p, x):
    return np.asarray(x) @ np.asarray(p["kernel"]) + np.asarray(p["bias"])


def np_relu(x):
    return np.maximum(x, 0)


def np_mlp(params, x):
    h = np_relu(np_dense(params["dense_0"], x))
    h = np_relu(np_dense(params["dense_1"], h))
    return np_dense(params["dense_2"], h)


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture(scope="module")
def mlp_prog():
    return nndsl.loads(MLP)


@pytest.fixture(scope="module")
def mlp16(mlp_prog):
    """MLP(hidden=16) with variables for a [3, 784] input: shared by the tests that only read it."""
    net = mlp_prog.model("MLP", hidden=16)
    x = rand((3, 784))
    return net, net.init(jax.random.key(0), x), x


# ---------------------------------------------------------------------------- MLP and perceptron
def test_mlp_init_apply_shapes_and_numerics(mlp16):
    net, v, x = mlp16
    assert set(v) == {"params", "state"}
    assert shapes(v["params"]) == {
        "dense_0": {"kernel": (784, 16), "bias": (16,)},
        "dense_1": {"kernel": (16, 16), "bias": (16,)},
        "dense_2": {"kernel": (16, 10), "bias": (10,)},
    }
    y = net.apply(v, x)
    assert y.shape == (3, 10)
    np.testing.assert_allclose(np.asarray(y), np_mlp(v["params"], x), **TOL)


def test_mlp_default_args_give_published_shapes(mlp_prog):
    net = mlp_prog.model("MLP")
    assert net.param_count() == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    g = net.graph()
    assert g.params[("dense_1", "kernel")].shape == (256, 256)


def test_static_args_change_shapes(mlp_prog):
    x = rand((2, 784))
    a = mlp_prog.model("MLP", hidden=8, classes=3)
    va = a.init(jax.random.key(0), x)
    assert shapes(va["params"])["dense_1"]["kernel"] == (8, 8)
    assert shapes(va["params"])["dense_2"]["kernel"] == (8, 3)
    np.testing.assert_allclose(np.asarray(a.apply(va, x)), np_mlp(va["params"], x), **TOL)


def test_batch_size_is_symbolic(mlp16):
    net, v, _ = mlp16
    for n in (1, 5):
        x = rand((n, 784), seed=n)
        np.testing.assert_allclose(np.asarray(net.apply(v, x)), np_mlp(v["params"], x), **TOL)


def test_perceptron_raw_params_and_step():
    net = nndsl.loads(PERCEPTRON).model("Perceptron")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [-2, 3]], np.float32)
    v = net.init(jax.random.key(0), x)
    assert shapes(v["params"]) == {"w": (2,), "b": ()}
    np.testing.assert_array_equal(np.asarray(v["params"]["w"]), np.zeros(2))
    w, b = np.array([1.0, 1.0], np.float32), np.float32(-1.5)  # AND
    y = net.apply({"params": {"w": jnp.asarray(w), "b": jnp.asarray(b)}, "state": {}}, x)
    np.testing.assert_array_equal(np.asarray(y), (x @ w + b > 0).astype(np.float32))
    np.testing.assert_array_equal(np.asarray(y), [0, 0, 0, 1, 0])


def test_param_initializers():
    prog = nndsl.loads("""
model P {
  input x: [batch, 3]
  param a: [3, 4] ~ ones
  param c: [4] ~ uniform(2, 3)
  param d: [300, 4] ~ normal(0.01)
  output y = x @ a + c + mean(d, axis=0)
}
""")
    net = prog.model("P")
    x = rand((2, 3))
    v = net.init(jax.random.key(0), x)
    p = jax.tree_util.tree_map(np.asarray, v["params"])
    np.testing.assert_array_equal(p["a"], np.ones((3, 4)))
    assert ((p["c"] >= 2) & (p["c"] <= 3)).all()
    assert 0.005 < p["d"].std() < 0.02
    np.testing.assert_allclose(np.asarray(net.apply(v, x)), x @ p["a"] + p["c"] + p["d"].mean(0), **TOL)


# ---------------------------------------------------------------------------- JAX transformations
def test_jit_apply(mlp16):
    net, v, x = mlp16
    y = jax.jit(net.apply)(v, x)
    np.testing.assert_allclose(np.asarray(y), np_mlp(v["params"], x), **TOL)


def test_grad_wrt_params_matches_hand_written_reference(mlp16):
    net, v, x = mlp16

    def ref(params):
        h = jax.nn.relu(x @ params["dense_0"]["kernel"] + params["dense_0"]["bias"])
        h = jax.nn.relu(h @ params["dense_1"]["kernel"] + params["dense_1"]["bias"])
        y = h @ params["dense_2"]["kernel"] + params["dense_2"]["bias"]
        return jnp.sum(jnp.tanh(y) ** 2)

    g = jax.grad(lambda p: jnp.sum(jnp.tanh(net.apply({"params": p, "state": {}}, x)) ** 2))(v["params"])
    g_ref = jax.grad(ref)(v["params"])
    assert shapes(g) == shapes(g_ref)
    for a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(g_ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert any(float(jnp.abs(a).max()) > 0 for a in jax.tree_util.tree_leaves(g))


def test_vmap_over_stacked_parameter_sets(mlp_prog):
    net = mlp_prog.model("MLP", hidden=8, classes=3)
    x = rand((2, 784))
    keys = jax.random.split(jax.random.key(0), 3)
    stacked = jax.vmap(lambda k: net.init(k, x))(keys)
    assert shapes(stacked["params"])["dense_0"]["kernel"] == (3, 784, 8)
    ys = jax.vmap(net.apply, in_axes=(0, None))(stacked, x)
    assert ys.shape == (3, 2, 3)
    for i in range(3):
        p_i = jax.tree_util.tree_map(lambda a: a[i], stacked["params"])
        np.testing.assert_allclose(np.asarray(ys[i]), np_mlp(p_i, x), **TOL)
        p_direct = net.init(keys[i], x)["params"]
        np.testing.assert_allclose(np.asarray(p_i["dense_0"]["kernel"]),
                                   np.asarray(p_direct["dense_0"]["kernel"]), **TOL)
    assert not np.allclose(np.asarray(ys[0]), np.asarray(ys[1]))


def test_vmap_over_inputs(mlp16):
    net, v, _ = mlp16
    x = rand((4, 2, 784))
    ys = jax.vmap(net.apply, in_axes=(None, 0))(v, x)
    np.testing.assert_allclose(np.asarray(ys), np.stack([np_mlp(v["params"], xi) for xi in x]), **TOL)


# ---------------------------------------------------------------------------- parameter naming
def test_bound_instance_shares_one_param_set():
    prog = nndsl.loads("""
model Encoder(d: int) {
  input x: [batch, 4]
  output y = x -> dense(d) -> tanh
}
model Siamese {
  input a: [batch, 4]
  input b: [batch, 4]
  enc = Encoder(8)
  output ya = a -> enc
  output yb = b -> enc
  output d = (a -> enc) - (b -> enc)
}
""")
    net = prog.model("Siamese")
    a, b = rand((3, 4), 1), rand((3, 4), 2)
    v = net.init(jax.random.key(0), a, b)
    assert shapes(v["params"]) == {"enc": {"dense_0": {"kernel": (4, 8), "bias": (8,)}}}
    out = net.apply(v, a, b)
    assert isinstance(out, dict) and set(out) == {"ya", "yb", "d"}
    p = v["params"]["enc"]["dense_0"]
    np.testing.assert_allclose(np.asarray(out["ya"]), np.tanh(np_dense(p, a)), **TOL)
    np.testing.assert_allclose(np.asarray(out["yb"]), np.tanh(np_dense(p, b)), **TOL)
    np.testing.assert_allclose(np.asarray(out["d"]), np.tanh(np_dense(p, a)) - np.tanh(np_dense(p, b)), **TOL)


def test_each_textual_occurrence_owns_its_params():
    prog = nndsl.loads("""
model Encoder(d: int) {
  input x: [batch, 4]
  output y = x -> dense(d) -> tanh
}
model Twice {
  input a: [batch, 4]
  output y = (a -> Encoder(4)) + (a -> Encoder(4))
}
""")
    net = prog.model("Twice")
    a = rand((2, 4))
    v = net.init(jax.random.key(0), a)
    assert set(v["params"]) == {"Encoder_0", "Encoder_1"}
    p0, p1 = v["params"]["Encoder_0"]["dense_0"], v["params"]["Encoder_1"]["dense_0"]
    assert not np.allclose(np.asarray(p0["kernel"]), np.asarray(p1["kernel"]))
    np.testing.assert_allclose(np.asarray(net.apply(v, a)),
                               np.tanh(np_dense(p0, a)) + np.tanh(np_dense(p1, a)), **TOL)


def test_adding_a_layer_keeps_the_other_initial_weights():
    base = """
model M {
  input x: [batch, 6]
  output y = x -> dense(8) -> relu -> dense(8) -> relu -> dense(4)%s
}
"""
    x = rand((2, 6))
    v1 = nndsl.loads(base % "").model("M").init(jax.random.key(3), x)
    v2 = nndsl.loads(base % " -> tanh -> dense(2)").model("M").init(jax.random.key(3), x)
    assert set(v2["params"]) == set(v1["params"]) | {"dense_3"}
    for name in v1["params"]:
        for leaf in v1["params"][name]:
            np.testing.assert_array_equal(np.asarray(v1["params"][name][leaf]),
                                          np.asarray(v2["params"][name][leaf]))
    # and the layers are not initialized alike: each one's key derives from its own name
    assert not np.allclose(np.asarray(v1["params"]["dense_0"]["kernel"][:6, :8]),
                           np.asarray(v1["params"]["dense_1"]["kernel"][:6, :8]))
    v3 = nndsl.loads(base % "").model("M").init(jax.random.key(4), x)
    assert not np.allclose(np.asarray(v1["params"]["dense_0"]["kernel"]),
                           np.asarray(v3["params"]["dense_0"]["kernel"]))


# ---------------------------------------------------------------------------- outputs and train mode
def test_several_outputs_return_a_dict():
    net = nndsl.loads(PERCEPTRON.replace("output y = step(x @ w + b)",
                                         "output score = x @ w + b\n  output y = step(score)")).model("Perceptron")
    x = rand((4, 2))
    v = {"params": {"w": jnp.array([0.5, -1.0]), "b": jnp.array(0.25)}, "state": {}}
    out = net.apply(v, x)
    assert isinstance(out, dict) and set(out) == {"score", "y"}
    score = x @ np.array([0.5, -1.0], np.float32) + 0.25
    np.testing.assert_allclose(np.asarray(out["score"]), score, **TOL)
    np.testing.assert_array_equal(np.asarray(out["y"]), (score > 0).astype(np.float32))


BN = """
model BN {
  input x: [batch, 3]
  output y = x -> dense(4) -> batchnorm(momentum=0.8) -> relu -> dropout(0.5)
}
"""


def test_train_true_returns_outputs_and_new_state():
    net = nndsl.loads(BN).model("BN")
    x = rand((16, 3)) * 3 + 1
    v = net.init(jax.random.key(0), x)
    assert shapes(v["state"]) == {"batchnorm_0": {"mean": (4,), "var": (4,)}}
    p = v["params"]
    h = np_dense(p["dense_0"], x)
    # evaluation: running statistics (initially mean 0, var 1), dropout off
    y_eval = net.apply(v, x)
    ref_eval = np_relu(h / np.sqrt(1 + 1e-5) * np.asarray(p["batchnorm_0"]["scale"])
                       + np.asarray(p["batchnorm_0"]["bias"]))
    np.testing.assert_allclose(np.asarray(y_eval), ref_eval, **TOL)
    # training: batch statistics, updated running statistics, dropout from rngs
    y, new_state = net.apply(v, x, train=True, rngs=jax.random.key(1))
    mu, var = h.mean(0), h.var(0)
    norm = np_relu((h - mu) / np.sqrt(var + 1e-5))
    y = np.asarray(y)
    kept = y != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(y[kept], (norm / 0.5)[kept], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(new_state["batchnorm_0"]["mean"]), 0.2 * mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(new_state["batchnorm_0"]["var"]), 0.8 + 0.2 * var, rtol=1e-4, atol=1e-5)
    # another key drops other units
    y2, _ = net.apply(v, x, train=True, rngs=jax.random.key(2))
    assert not np.array_equal(np.asarray(y2) != 0, kept)


def test_train_mode_under_jit():
    net = nndsl.loads(BN).model("BN")
    x = rand((8, 3))
    v = net.init(jax.random.key(0), x)
    f = jax.jit(lambda v, x, k: net.apply(v, x, train=True, rngs=k))
    y, st = f(v, x, jax.random.key(5))
    y_ref, st_ref = net.apply(v, x, train=True, rngs=jax.random.key(5))
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)
    np.testing.assert_allclose(np.asarray(st["batchnorm_0"]["var"]), np.asarray(st_ref["batchnorm_0"]["var"]), **TOL)


# ---------------------------------------------------------------------------- structure of models
def test_stacking_a_parenthesized_chain_makes_n_copies():
    net = nndsl.loads("""
model Deep(n: int = 3) {
  input x: [batch, 4]
  output y = x -> (dense(5) -> relu) * n -> dense(2)
}
""").model("Deep")
    x = rand((3, 4))
    v = net.init(jax.random.key(0), x)
    assert set(v["params"]) == {"dense_0", "dense_1", "dense_2", "dense_3"}
    p = v["params"]
    assert shapes(p["dense_0"])["kernel"] == (4, 5) and shapes(p["dense_2"])["kernel"] == (5, 5)
    assert not np.allclose(np.asarray(p["dense_1"]["kernel"]), np.asarray(p["dense_2"]["kernel"]))
    h = x
    for i in range(3):
        h = np_relu(np_dense(p[f"dense_{i}"], h))
    np.testing.assert_allclose(np.asarray(net.apply(v, x)), np_dense(p["dense_3"], h), **TOL)
    net5 = nndsl.loads("""
model Deep(n: int = 3) {
  input x: [batch, 4]
  output y = x -> (dense(5) -> relu) * n -> dense(2)
}
""").model("Deep", n=5)
    assert len(net5.init(jax.random.key(0), x)["params"]) == 6


def test_model_stacked_as_layer_and_nested_models():
    prog = nndsl.loads("""
model Block(d: int) {
  input x: [batch, n]
  output y = relu(x -> dense(d)) + (x -> dense(d, bias=false))
}
model Net {
  input x: [batch, 3]
  output y = x -> Block(4) * 2 -> Block(2)
}
""")
    net = prog.model("Net")
    x = rand((5, 3))
    v = net.init(jax.random.key(0), x)
    assert set(v["params"]) == {"Block_0", "Block_1", "Block_2"}
    assert shapes(v["params"]["Block_2"]) == {"dense_0": {"kernel": (4, 2), "bias": (2,)},
                                              "dense_1": {"kernel": (4, 2)}}

    def block(p, h):
        return np_relu(np_dense(p["dense_0"], h)) + h @ np.asarray(p["dense_1"]["kernel"])
    h = x
    for i in range(3):
        h = block(v["params"][f"Block_{i}"], h)
    np.testing.assert_allclose(np.asarray(net.apply(v, x)), h, **TOL)


def test_if_then_else_is_a_static_choice():
    prog = nndsl.loads("""
model M(deep: bool = true, width: int = 6) {
  input x: [batch, 4]
  output y = if deep and width > 2
             then x -> dense(width) -> relu -> dense(3)
             else x -> dense(3)
}
""")
    x = rand((2, 4))
    deep = prog.model("M")
    vd = deep.init(jax.random.key(0), x)
    assert set(vd["params"]) == {"dense_0", "dense_1"}
    np.testing.assert_allclose(np.asarray(deep.apply(vd, x)),
                               np_dense(vd["params"]["dense_1"], np_relu(np_dense(vd["params"]["dense_0"], x))),
                               **TOL)
    for kw in ({"deep": False}, {"width": 2}):
        shallow = prog.model("M", **kw)
        vs = shallow.init(jax.random.key(0), x)
        assert list(vs["params"]) == ["dense_0"]
        assert shapes(vs["params"])["dense_0"]["kernel"] == (4, 3)
        np.testing.assert_allclose(np.asarray(shallow.apply(vs, x)), np_dense(vs["params"]["dense_0"], x), **TOL)


def test_arithmetic_on_static_args():
    net = nndsl.loads("""
model M(h: int = 3) {
  input x: [batch, 4]
  output y = x -> dense(h * 2 + 1) -> dense(h ** 2 - h)
}
""").model("M", h=4)
    x = rand((2, 4))
    v = net.init(jax.random.key(0), x)
    assert shapes(v["params"])["dense_0"]["kernel"] == (4, 9)
    assert shapes(v["params"])["dense_1"]["kernel"] == (9, 12)


DIMS = """
model Head {
  input x: [batch, h, w, c]
  output y = x -> global_avg_pool -> dense(c * 2 + h)
}
model Wrap {
  input img: [batch, 5, 5, 3]
  output y = img -> Head
}
"""


def _check_head(net, x):
    v = net.init(jax.random.key(0), x)
    p = v["params"]["Head_0"] if "Head_0" in v["params"] else v["params"]
    assert shapes(p)["dense_0"]["kernel"] == (3, 11)
    np.testing.assert_allclose(np.asarray(net.apply(v, x)), np_dense(p["dense_0"], x.mean((1, 2))), **TOL)


def test_dims_read_from_input_shape_inside_a_model():
    _check_head(nndsl.loads(DIMS).model("Wrap"), rand((2, 5, 5, 3)))


def test_dims_read_from_input_shape_applied_directly():
    _check_head(nndsl.loads(DIMS).model("Head"), rand((2, 5, 5, 3)))


ORDER = """
model M {
  output y = h2 -> dense(2)
  h2 = h1 -> relu
  h1 = x -> dense(5)
  input x: [batch, 4]
}
"""


def test_statement_order_does_not_matter():
    net = nndsl.loads(ORDER).model("M")
    x = rand((3, 4))
    v = net.init(jax.random.key(0), x)
    by_shape = {shapes(p)["kernel"]: p for p in v["params"].values()}
    assert set(by_shape) == {(4, 5), (5, 2)}
    ref = np_dense(by_shape[(5, 2)], np_relu(np_dense(by_shape[(4, 5)], x)))
    np.testing.assert_allclose(np.asarray(net.apply(v, x)), ref, **TOL)


def test_layer_names_follow_source_order_not_evaluation_order():
    net = nndsl.loads(ORDER).model("M")
    v = net.init(jax.random.key(0), rand((3, 4)))
    assert shapes(v["params"]) == {"dense_0": {"kernel": (5, 2), "bias": (2,)},
                                   "dense_1": {"kernel": (4, 5), "bias": (5,)}}


def test_cyclic_equations_are_an_error():
    prog = nndsl.loads("""
model M {
  input x: [batch, 4]
  a = b + 1
  b = a + 1
  output y = a + x
}
""")
    with pytest.raises(nndsl.NndslError) as e:
        prog.model("M")
    assert "cyclic" in str(e.value)
    assert "<string>:4:3: error" in str(e.value)


def test_concat_and_function_call_syntax():
    net = nndsl.loads("""
model M {
  input a: [batch, 2]
  input b: [batch, 3]
  g = [a, b] -> dense(4) -> sigmoid
  output y = g * tanh(g)
  output s = sum(g, axis=1)
}
""").model("M")
    a, b = rand((2, 2), 1), rand((2, 3), 2)
    v = net.init(jax.random.key(0), a, b)
    out = net.apply(v, a, b)
    g = 1 / (1 + np.exp(-np_dense(v["params"]["dense_0"], np.concatenate([a, b], 1))))
    np.testing.assert_allclose(np.asarray(out["y"]), g * np.tanh(g), **TOL)
    np.testing.assert_allclose(np.asarray(out["s"]), g.sum(1), **TOL)


def test_wrong_number_of_inputs_is_a_clear_error(mlp16):
    net = mlp16[0]
    with pytest.raises(TypeError, match="takes 1 input"):
        net.init(jax.random.key(0), rand((2, 784)), rand((2, 784)))


def test_unknown_model_name():
    with pytest.raises(nndsl.NndslError, match="did you mean `MLP`"):
        nndsl.loads(MLP).model("MLPs")


# ---------------------------------------------------------------------------- imports
def test_load_with_relative_import(tmp_path):
    (tmp_path / "blocks").mkdir()
    (tmp_path / "blocks" / "enc.nn").write_text("""
model Encoder(d: int) {
  input x: [batch, n]
  output y = x -> dense(d) -> tanh
}
""")
    (tmp_path / "main.nn").write_text("""
import "blocks/enc.nn"
model Net {
  input x: [batch, 3]
  enc = Encoder(4)
  output y = x -> enc -> dense(2)
}
""")
    prog = nndsl.load(tmp_path / "main.nn")
    assert {"Encoder", "Net"} <= set(prog.models)
    net = prog.model("Net")
    x = rand((2, 3))
    v = net.init(jax.random.key(0), x)
    assert set(v["params"]) == {"enc", "dense_0"}
    ref = np_dense(v["params"]["dense_0"], np.tanh(np_dense(v["params"]["enc"]["dense_0"], x)))
    np.testing.assert_allclose(np.asarray(net.apply(v, x)), ref, **TOL)


def test_import_stdlib_lenet():
    prog = nndsl.loads("import lenet\n")
    assert "LeNet5" in prog.models
    net = prog.model("LeNet5", classes=10)
    assert net.param_count() == 61_706
    x = rand((2, 32, 32, 1))
    v = jax.jit(net.init)(jax.random.key(0), x)
    assert shapes(v["params"])["conv2d_0"] == {"kernel": (5, 5, 1, 6), "bias": (6,)}
    assert jax.jit(net.apply)(v, x).shape == (2, 10)


def test_load_file_from_any_cwd(tmp_path, monkeypatch, root):
    monkeypatch.chdir(tmp_path)
    prog = nndsl.load(root / "examples" / "lenet5.nn")
    assert "LeNet5" in prog.models and prog.trains
