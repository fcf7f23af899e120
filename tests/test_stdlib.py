"""The standard library: published parameter counts (counted from the graph, no weights allocated),
layer shapes, and forward passes against plain-numpy references with the same weights."""
from __future__ import annotations

import math
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl
from nndsl.api import check_program
from nndsl.ir.types import TensorType
from nndsl.resources import stdlib_dir

STDLIB = ["lenet", "alexnet", "vgg", "resnet", "mlp", "cells"]


def lib(name: str):
    return nndsl.load(stdlib_dir() / f"{name}.nn")


def count(graph) -> int:
    """Parameters from the ParamSpecs alone: no array is allocated."""
    total = 0
    for spec in graph.params.values():
        assert all(isinstance(d, int) for d in spec.shape), spec.shape
        total += math.prod(spec.shape)
    return total


# ---------------------------------------------------------------------- the library as files
def test_wheel_mapping_names_every_stdlib_file(root):
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"][
        "wheel"]["force-include"]
    mapped = {src.removeprefix("stdlib/").removesuffix(".nn") for src in mapping if src.startswith("stdlib/")}
    on_disk = {p.stem for p in (root / "stdlib").glob("*.nn")}
    assert mapped == on_disk == set(STDLIB)


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_file_checks_clean(name):
    prog = lib(name)
    assert prog.models, f"{name}.nn defines nothing"
    assert check_program(prog) == []


# ---------------------------------------------------------------------- published parameter counts
PUBLISHED = [
    ("lenet", "LeNet5", {"classes": 10}, 61_706),
    ("alexnet", "AlexNet", {}, 61_100_840),
    ("vgg", "VGG11", {}, 132_863_336),
    ("vgg", "VGG16", {}, 138_357_544),
    ("resnet", "ResNet18", {}, 11_689_512),
    ("resnet", "ResNet34", {}, 21_797_672),
    ("resnet", "ResNet50", {}, 25_557_032),
    ("resnet", "ResNet101", {}, 44_549_160),
    ("resnet", "ResNet152", {}, 60_192_808),
]


@pytest.mark.parametrize("file,model,args,expected", PUBLISHED, ids=[p[1] for p in PUBLISHED])
def test_published_parameter_count(file, model, args, expected):
    g = lib(file).model(model, **args).graph()
    assert count(g) == expected


def test_batchnorm_statistics_are_state_not_parameters():
    g = lib("resnet").model("ResNet18").graph()
    assert all(p[-1] not in ("mean", "var") for p in g.params)
    # 20 batchnorms (stem, 2 per block, 3 projections), each with mean and var of its width
    assert len(g.state) == 2 * 20
    assert sum(math.prod(s.shape) for s in g.state.values()) == 2 * 4_800


def test_init_agrees_with_graph_without_allocating():
    net = lib("resnet").model("ResNet50")
    x = jnp.zeros((1, 224, 224, 3))
    shapes = jax.eval_shape(lambda k: net.init(k, x), jax.random.key(0))
    leaves = jax.tree_util.tree_leaves_with_path(shapes["params"])
    assert sum(math.prod(leaf.shape) for _, leaf in leaves) == 25_557_032
    got = {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in leaves}
    assert got == {p: tuple(s.shape) for p, s in net.graph().params.items()}


def test_classes_argument_resizes_only_the_head():
    prog = lib("resnet")
    assert count(prog.model("ResNet18", classes=10).graph()) == 11_689_512 - 513 * 1000 + 513 * 10
    assert count(lib("vgg").model("VGG16", classes=10).graph()) == 138_357_544 - 4097 * 990


def test_resnet18_layer_shapes():
    p = lib("resnet").model("ResNet18").graph().params
    assert p[("conv2d_0", "kernel")].shape == (7, 7, 3, 64)
    assert p[("BasicBlock_0", "conv2d_0", "kernel")].shape == (3, 3, 64, 64)
    assert ("BasicBlock_1", "conv2d_2", "kernel") not in p  # identity shortcut
    assert p[("BasicBlock_2", "conv2d_0", "kernel")].shape == (3, 3, 64, 128)
    assert p[("BasicBlock_2", "conv2d_2", "kernel")].shape == (1, 1, 64, 128)  # projection
    assert p[("dense_0", "kernel")].shape == (512, 1000)
    assert not any(path[-1] == "bias" and "conv2d" in path[-2] for path in p)


def test_resnet50_bottleneck_shapes():
    p = lib("resnet").model("ResNet50").graph().params
    b0 = {k[1]: v.shape for k, v in p.items() if k[0] == "Bottleneck_0" and k[-1] == "kernel"}
    assert b0 == {"conv2d_0": (1, 1, 64, 64), "conv2d_1": (3, 3, 64, 64), "conv2d_2": (1, 1, 64, 256),
                  "conv2d_3": (1, 1, 64, 256)}
    assert ("Bottleneck_1", "conv2d_3", "kernel") not in p
    assert p[("Bottleneck_3", "conv2d_1", "kernel")].shape == (3, 3, 128, 128)  # stride sits on the 3x3
    assert p[("dense_0", "kernel")].shape == (2048, 1000)


VGG_CONFIG = {"VGG11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
              "VGG16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                        512, 512, 512, "M"]}


@pytest.mark.parametrize("model", sorted(VGG_CONFIG))
def test_vgg_follows_torchvision_config(model):
    p = lib("vgg").model(model).graph().params
    kernels = sorted((k for k in p if k[-1] == "kernel" and "conv2d" in k[-2]),
                     key=lambda k: (int(k[0].split("_")[1]), int(k[1].split("_")[1])))
    want = [c for c in VGG_CONFIG[model] if c != "M"]
    assert [p[k].shape for k in kernels] == [(3, 3, a, b) for a, b in zip([3] + want[:-1], want)]
    stages = [sum(1 for c in run.split(",") if c) for run in ",".join(map(str, VGG_CONFIG[model])).split("M")]
    assert [sum(1 for k in kernels if k[0] == f"VGGStage_{i}") for i in range(5)] == stages[:5]
    assert p[("VGGHead_0", "dense_0", "kernel")].shape == (7 * 7 * 512, 4096)


def test_alexnet_layer_shapes():
    p = lib("alexnet").model("AlexNet").graph().params
    assert [p[(f"conv2d_{i}", "kernel")].shape for i in range(5)] == [
        (11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    assert [p[(f"dense_{i}", "kernel")].shape for i in range(3)] == [(9216, 4096), (4096, 4096), (4096, 1000)]


# ---------------------------------------------------------------------- numpy references
def conv_np(x, k, b=None, stride=1, padding="valid"):
    """Cross-correlation, NHWC x [kh, kw, cin, cout]; "same" pads as XLA does (extra on the high side)."""
    kh, kw = k.shape[:2]
    pads = []
    for n, kk in zip(x.shape[1:3], (kh, kw)):
        if padding == "same":
            total = max((-(-n // stride) - 1) * stride + kk - n, 0)
            pads.append((total // 2, total - total // 2))
        elif padding == "valid":
            pads.append((0, 0))
        else:
            pads.append((padding, padding))
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    oh = (xp.shape[1] - kh) // stride + 1
    ow = (xp.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, k.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :] @ k[i, j]
    return out if b is None else out + b


def pool_np(x, window, stride, reduce, padding="valid"):
    pads = [(0, 0), (0, 0)] if padding == "valid" else [(padding, padding)] * 2 if isinstance(padding, int) else []
    if padding == "same":
        pads = []
        for n in x.shape[1:3]:
            total = max((-(-n // stride) - 1) * stride + window - n, 0)
            pads.append((total // 2, total - total // 2))
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=-np.inf)
    oh = (xp.shape[1] - window) // stride + 1
    ow = (xp.shape[2] - window) // stride + 1
    wins = [xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
            for i in range(window) for j in range(window)]
    return reduce(np.stack(wins), axis=0)


def bn_np(x, p, s, eps=1e-5):
    return (x - s["mean"]) / np.sqrt(s["var"] + eps) * p["scale"] + p["bias"]


def dense_np(x, p):
    return x @ p["kernel"] + p["bias"]


def relu(x):
    return np.maximum(x, 0)


def basic_block_np(x, p, s, ch, stride):
    y = relu(bn_np(conv_np(x, p["conv2d_0"]["kernel"], stride=stride, padding=1), p["batchnorm_0"],
                   s["batchnorm_0"]))
    y = bn_np(conv_np(y, p["conv2d_1"]["kernel"], padding=1), p["batchnorm_1"], s["batchnorm_1"])
    if stride != 1 or x.shape[-1] != ch:
        x = bn_np(conv_np(x, p["conv2d_2"]["kernel"], stride=stride), p["batchnorm_2"], s["batchnorm_2"])
    else:
        assert "conv2d_2" not in p
    return relu(y + x)


def bottleneck_np(x, p, s, ch, stride):
    y = relu(bn_np(conv_np(x, p["conv2d_0"]["kernel"]), p["batchnorm_0"], s["batchnorm_0"]))
    y = relu(bn_np(conv_np(y, p["conv2d_1"]["kernel"], stride=stride, padding=1), p["batchnorm_1"],
                   s["batchnorm_1"]))
    y = bn_np(conv_np(y, p["conv2d_2"]["kernel"]), p["batchnorm_2"], s["batchnorm_2"])
    if stride != 1 or x.shape[-1] != 4 * ch:
        x = bn_np(conv_np(x, p["conv2d_3"]["kernel"], stride=stride), p["batchnorm_3"], s["batchnorm_3"])
    else:
        assert "conv2d_3" not in p
    return relu(y + x)


def random_variables(graph, seed=0):
    """Variables laid out by the graph's ParamSpecs and drawn here, as float32 numpy (the references
    compute in float64 from these exact values): weights He-scaled normal, batchnorm statistics and
    scales away from the identity."""
    rng = np.random.default_rng(seed)

    def draw(path, shape):
        name = path[-1]
        if name in ("kernel", "embedding"):
            std = np.float32(np.sqrt(2.0 / math.prod(shape[:-1])))
            return rng.standard_normal(shape, dtype=np.float32) * std
        if name in ("scale", "var"):
            return rng.random(shape, dtype=np.float32) + np.float32(0.5)
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)  # bias, mean, raw params

    out = {"params": {}, "state": {}}
    for kind, specs in (("params", graph.params), ("state", graph.state)):
        for path, spec in sorted(specs.items()):
            tree = out[kind]
            for k in path[:-1]:
                tree = tree.setdefault(k, {})
            tree[path[-1]] = draw(path, tuple(spec.shape))
    return out


def close(got, want, rtol=1e-4):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, np.abs(want).max()))


def run(prog, model, x, seed=0, **args):
    """Applies `model` to x with weights drawn by `random_variables`; returns (output, weights)."""
    net = prog.model(model, **args)
    x32 = jnp.asarray(x, jnp.float32)
    v = random_variables(net.graph((TensorType(x32.shape),)), seed)
    return net.apply(jax.tree.map(jnp.asarray, v), x32), v


def wrap(layer: str, shape) -> nndsl.Program:
    """A user model applying a stdlib layer to an input of concrete shape."""
    dims = ", ".join(["batch"] + [str(d) for d in shape[1:]])
    return nndsl.loads(f"import resnet\nmodel T {{ input x: [{dims}]\n output y = x -> {layer} }}")


# ---------------------------------------------------------------------- forward passes
def test_lenet5_forward_matches_numpy():
    x = np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 1))
    y, v = run(lib("lenet"), "LeNet5", x, classes=10)
    p = v["params"]
    h = pool_np(np.tanh(conv_np(x, p["conv2d_0"]["kernel"], p["conv2d_0"]["bias"])), 2, 2, np.mean)
    h = pool_np(np.tanh(conv_np(h, p["conv2d_1"]["kernel"], p["conv2d_1"]["bias"])), 2, 2, np.mean)
    h = h.reshape(2, -1)
    assert h.shape == (2, 400)
    h = np.tanh(dense_np(np.tanh(dense_np(h, p["dense_0"])), p["dense_1"]))
    close(y, dense_np(h, p["dense_2"]))


@pytest.mark.parametrize("shape,ch,stride", [((2, 8, 8, 4), 4, 1), ((2, 8, 8, 4), 8, 2), ((2, 7, 7, 4), 6, 1)])
def test_basic_block_matches_numpy(shape, ch, stride):
    x = np.random.default_rng(2).normal(size=shape)
    y, v = run(wrap(f"BasicBlock({ch}, stride={stride})", shape), "T", x)
    close(y, basic_block_np(x, v["params"]["BasicBlock_0"], v["state"]["BasicBlock_0"], ch, stride))


@pytest.mark.parametrize("shape,ch,stride", [((2, 6, 6, 8), 2, 1), ((2, 6, 6, 8), 4, 2)])
def test_bottleneck_matches_numpy(shape, ch, stride):
    x = np.random.default_rng(3).normal(size=shape)
    y, v = run(wrap(f"Bottleneck({ch}, stride={stride})", shape), "T", x)
    close(y, bottleneck_np(x, v["params"]["Bottleneck_0"], v["state"]["Bottleneck_0"], ch, stride))


def test_basic_block_training_uses_batch_statistics():
    x = np.random.default_rng(4).normal(size=(4, 6, 6, 3))
    net = lib("resnet").model("BasicBlock", ch=5, stride=2)  # stride 2 decides the shortcut statically
    v = random_variables(net.graph((TensorType(x.shape),)))
    y, new_state = net.apply(jax.tree.map(jnp.asarray, v),
                             jnp.asarray(x, jnp.float32), train=True)
    # the reference: each batchnorm's running statistics replaced by its own batch's
    p, batch_stats, want_state = v["params"], {}, {}

    def stats(h, name):
        m, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
        batch_stats[name] = {"mean": m, "var": var}
        old = v["state"][name]
        want_state[name] = {"mean": 0.9 * old["mean"] + 0.1 * m, "var": 0.9 * old["var"] + 0.1 * var}
        return bn_np(h, p[name], batch_stats[name])

    h = relu(stats(conv_np(x, p["conv2d_0"]["kernel"], stride=2, padding=1), "batchnorm_0"))
    h = stats(conv_np(h, p["conv2d_1"]["kernel"], padding=1), "batchnorm_1")
    skip = stats(conv_np(x, p["conv2d_2"]["kernel"], stride=2), "batchnorm_2")
    close(y, relu(h + skip))
    for name, leaves in want_state.items():
        for leaf, want in leaves.items():
            close(new_state[name][leaf], want)


def test_bind_basic_block_from_python_defers_shape_dependent_choice():
    x = np.random.default_rng(11).normal(size=(2, 8, 8, 4))
    y, v = run(lib("resnet"), "BasicBlock", x, ch=4)  # c == ch: identity shortcut, known only from x
    close(y, basic_block_np(x, v["params"], v["state"], 4, 1))


def test_resnet_cifar_forward_matches_numpy():
    x = np.random.default_rng(5).normal(size=(2, 32, 32, 3))
    y, v = run(lib("resnet"), "ResNetCifar", x, n=1, classes=10)
    p, s = v["params"], v["state"]
    h = relu(bn_np(conv_np(x, p["conv2d_0"]["kernel"], padding=1), p["batchnorm_0"], s["batchnorm_0"]))
    for i, (ch, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
        h = basic_block_np(h, p[f"BasicBlock_{i}"], s[f"BasicBlock_{i}"], ch, stride)
    assert h.shape == (2, 8, 8, 64)
    close(y, dense_np(h.mean(axis=(1, 2)), p["dense_0"]))


def test_resnet18_forward_matches_numpy():
    x = np.random.default_rng(6).normal(size=(1, 224, 224, 3))
    y, v = run(lib("resnet"), "ResNet18", x, classes=7)
    p, s = v["params"], v["state"]
    h = relu(bn_np(conv_np(x, p["conv2d_0"]["kernel"], stride=2, padding=3), p["batchnorm_0"],
                   s["batchnorm_0"]))
    h = pool_np(h, 3, 2, np.max, padding=1)
    assert h.shape == (1, 56, 56, 64)
    plan = [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]
    for i, (ch, stride) in enumerate(plan):
        h = basic_block_np(h, p[f"BasicBlock_{i}"], s[f"BasicBlock_{i}"], ch, stride)
    assert h.shape == (1, 7, 7, 512)
    close(y, dense_np(h.mean(axis=(1, 2)), p["dense_0"]), rtol=1e-3)


def test_alexnet_forward_matches_numpy():
    x = np.random.default_rng(7).normal(size=(1, 224, 224, 3))
    prog = lib("alexnet")
    y, v = run(prog, "AlexNet", x, classes=5)  # dropout is the identity outside training
    p = v["params"]
    h = pool_np(relu(conv_np(x, p["conv2d_0"]["kernel"], p["conv2d_0"]["bias"], stride=4, padding=2)),
                3, 2, np.max)
    h = pool_np(relu(conv_np(h, p["conv2d_1"]["kernel"], p["conv2d_1"]["bias"], padding=2)), 3, 2, np.max)
    for i in (2, 3, 4):
        h = relu(conv_np(h, p[f"conv2d_{i}"]["kernel"], p[f"conv2d_{i}"]["bias"], padding=1))
    h = pool_np(h, 3, 2, np.max)
    assert h.shape == (1, 6, 6, 256)
    h = relu(dense_np(relu(dense_np(h.reshape(1, -1), p["dense_0"])), p["dense_1"]))
    close(y, dense_np(h, p["dense_2"]), rtol=1e-3)
    # in training, dropout draws a fresh mask from each key
    net, v32 = prog.model("AlexNet", classes=5), jax.tree.map(jnp.asarray, v)
    a, _ = net.apply(v32, jnp.asarray(x, jnp.float32), train=True, rngs=jax.random.key(1))
    b, _ = net.apply(v32, jnp.asarray(x, jnp.float32), train=True, rngs=jax.random.key(2))
    assert not np.allclose(a, b) and not np.allclose(a, y)


@pytest.mark.parametrize("act,np_act", [("relu", relu), ("tanh", np.tanh),
                                        ("leaky_relu(0.2)", lambda z: np.where(z > 0, z, 0.2 * z))])
def test_mlp_forward_matches_numpy(act, np_act):
    prog = nndsl.loads(f"import mlp\nmodel M {{ input x: [batch, 12]\n"
                       f"  output y = x -> MLP(hidden=9, classes=4, act={act}, depth=3) }}")
    x = np.random.default_rng(8).normal(size=(5, 12))
    y, v = run(prog, "M", x)
    p = v["params"]["MLP_0"]
    assert sorted(p) == ["dense_0", "dense_1", "dense_2", "dense_3"]
    h = x
    for i in range(3):
        h = np_act(dense_np(h, p[f"dense_{i}"]))
    close(y, dense_np(h, p["dense_3"]))


def test_mlp_defaults():
    g = lib("mlp").model("MLP").graph((TensorType((2, 784)),))
    assert count(g) == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10


def test_perceptron_matches_numpy():
    x = np.random.default_rng(9).normal(size=(6, 3))
    out, v = run(lib("mlp"), "Perceptron", x)
    score = x @ v["params"]["w"] + v["params"]["b"]
    close(out["score"], score)
    np.testing.assert_array_equal(np.asarray(out["y"]), (score > 0).astype(np.float32))


# ---------------------------------------------------------------------- imports from user programs
def test_import_resnet_from_user_program(tmp_path):
    (tmp_path / "mine.nn").write_text(
        "import resnet\n"
        "model Mine(classes: int = 10) {\n"
        "  input image: [batch, 224, 224, 3]\n"
        "  output logits = image -> ResNet18(classes)\n"
        "}\n"
        "model Tiny {\n"
        "  input x: [batch, 16, 16, 8]\n"
        "  output y = x -> BasicBlock(8) -> Bottleneck(2, stride=2)\n"
        "}\n")
    prog = nndsl.load(tmp_path / "mine.nn")
    assert {"BasicBlock", "Bottleneck", "ResNet18", "ResNet152", "Mine", "Tiny"} <= set(prog.models)
    assert count(prog.model("Mine").graph()) == 11_689_512 - 513 * 990
    assert check_program(prog) == []
    x = np.random.default_rng(10).normal(size=(2, 16, 16, 8))
    y, v = run(prog, "Tiny", x)
    p, s = v["params"], v["state"]
    h = basic_block_np(x, p["BasicBlock_0"], s["BasicBlock_0"], 8, 1)
    close(y, bottleneck_np(h, p["Bottleneck_0"], s["Bottleneck_0"], 2, 2))


def test_import_every_stdlib_module_together():
    prog = nndsl.loads("\n".join(f"import {m}" for m in STDLIB))
    assert {"LeNet5", "AlexNet", "VGG11", "VGG16", "ResNet18", "ResNet50", "MLP", "Perceptron"} <= set(prog.models)
    assert check_program(prog) == []
