"""PyTorch state_dicts (safetensors) onto nndsl models, checked against torch's own outputs.

The fixtures in tests/fixtures/torch were made once with torch by tests/fixtures/make_torch_fixtures.py
(CI has no torch): each is a seeded torch module's state_dict, an input and torch's output, in
torch's layout (NCHW, batch-first sequences); here they are converted and compared within 1e-5.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nndsl
from nndsl.errors import NndslError
from nndsl.torch_weights import natural

convert_torch_weights = nndsl.convert_torch_weights

FIX = Path(__file__).parent / "fixtures" / "torch"

PROGRAM = """
import cells
import resnet
import vgg

model t_linear { input x: [batch, 5]
  output y = x -> dense(8) -> relu -> dense(3) }
model t_conv1d { input x: [batch, time, 2]
  output y = x -> conv1d(4, 3, padding=1) -> relu -> conv1d(3, 3, stride=2, dilation=2) }
model t_conv2d_bn { input x: [batch, 9, 9, 3]
  output y = x -> conv2d(4, 3, stride=2, padding=1) -> batchnorm -> relu
    -> conv2d(6, 3, padding=1, groups=2, bias=false) }
model t_conv3d { input x: [batch, 5, 5, 5, 2]
  output y = x -> conv3d(3, 3, padding=1) -> batchnorm }
model t_conv_transpose { input x: [batch, 5, 5, 4]
  output y = x -> conv_transpose2d(3, 4, stride=2, padding=1) -> relu
    -> conv_transpose2d(2, 3, padding=1, bias=false) }
model t_conv_transpose1d { input x: [batch, 6, 2]
  output y = x -> conv_transpose1d(3, 3, stride=2, padding=1) }
model t_conv_transpose3d { input x: [batch, 3, 3, 3, 2]
  output y = x -> conv_transpose3d(2, 2, stride=2, padding=0) }
model t_batchnorm1d { input x: [batch, 5]
  output y = x -> dense(6) -> batchnorm }
model t_layernorm { input x: [batch, 5]
  output y = x -> dense(6) -> layernorm }
model t_embedding { input x: i32[batch, time]
  output y = x -> embed(10, 4) -> dense(3) }
model t_lstm { input x: [batch, time, 3]
  output y = x -> LSTM(5) -> LSTM(5) -> dense(2) }
model t_bilstm { input x: [batch, time, 3]
  output y = x -> bidirectional(LSTM(4)) }
model t_gru { input x: [batch, time, 3]
  output y = x -> GRUResetAfter(5) -> dense(2) }
model t_rnn { input x: [batch, time, 3]
  output y = x -> RNN(5) }
model t_resnet_basic { input x: [batch, 32, 32, 3]
  output y = x -> conv2d(8, 7, stride=2, padding=3, bias=false) -> batchnorm -> relu
    -> max_pool(3, stride=2, padding=1)
    -> BasicBlock(8) -> BasicBlock(16, stride=2) -> BasicBlock(16)
    -> global_avg_pool -> dense(5) }
model t_resnet_bottleneck { input x: [batch, 32, 32, 3]
  output y = x -> conv2d(8, 7, stride=2, padding=3, bias=false) -> batchnorm -> relu
    -> max_pool(3, stride=2, padding=1)
    -> Bottleneck(4) -> Bottleneck(4) -> Bottleneck(8, stride=2)
    -> global_avg_pool -> dense(5) }
model t_vgg { input x: [batch, 12, 12, 3]
  output y = x -> VGGStage(8) -> VGGStage(16, n=2) -> flatten
    -> dense(12) -> relu -> dropout -> dense(12) -> relu -> dropout -> dense(5) }
model t_alexnet { input x: [batch, 127, 127, 3]
  output y = x -> conv2d(4, 11, stride=4, padding=2) -> relu -> max_pool(3, stride=2)
    -> conv2d(6, 5, padding=2) -> relu -> max_pool(3, stride=2)
    -> conv2d(8, 3, padding=1) -> relu -> conv2d(8, 3, padding=1) -> relu
    -> conv2d(8, 3, padding=1) -> relu -> max_pool(3, stride=2)
    -> flatten -> dropout -> dense(10) -> relu -> dropout -> dense(10) -> relu -> dense(5) }
"""

CASES = sorted(p.stem for p in FIX.glob("*.safetensors"))


@pytest.fixture(scope="module")
def prog():
    return nndsl.loads(PROGRAM)


def channels_last(a: np.ndarray) -> np.ndarray:
    """torch's [b, c, *spatial] as nndsl's [b, *spatial, c]."""
    return np.moveaxis(a, 1, -1)


def test_fixtures_cover_every_module_family():
    assert set(CASES) >= {"linear", "conv1d", "conv2d_bn", "conv3d", "conv_transpose", "batchnorm1d",
                          "layernorm", "embedding", "lstm", "bilstm", "gru", "rnn", "resnet_basic",
                          "resnet_bottleneck", "vgg", "alexnet"}
    assert sum(p.stat().st_size for p in FIX.iterdir()) < 5_000_000


@pytest.mark.parametrize("name", CASES)
def test_converted_weights_reproduce_torch(prog, name):
    model = prog.model(f"t_{name}")
    variables = convert_torch_weights(FIX / f"{name}.safetensors", model)
    io = np.load(FIX / f"{name}.npz")
    x, y = io["x"], io["y"]
    spatial = x.ndim > 2 and x.dtype.kind == "f" and name not in ("lstm", "bilstm", "gru", "rnn")
    if spatial:
        x = channels_last(x)
    out = np.asarray(model.apply(variables, x.astype(np.int32) if x.dtype.kind == "i" else x))
    if spatial and out.ndim > 2:
        out = np.moveaxis(out, -1, 1)
    np.testing.assert_allclose(out, y, rtol=1e-5, atol=1e-5)


def test_cli_writes_nndsl_weights(tmp_path, capsys):
    from nndsl.cli import main
    from nndsl.io import load_variables
    src = tmp_path / "m.nn"
    src.write_text(PROGRAM)
    out = tmp_path / "net.safetensors"
    assert main(["convert-weights", str(FIX / "lstm.safetensors"), "--to", str(src), "t_lstm", "-o", str(out)]) == 0
    io = np.load(FIX / "lstm.npz")
    y = nndsl.load(src).model("t_lstm").apply(load_variables(out), io["x"])
    np.testing.assert_allclose(np.asarray(y), io["y"], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- refusals, located and named
def save(path, tensors):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(path))
    return path


def linear_sd():
    from safetensors.numpy import load_file
    return load_file(str(FIX / "linear.safetensors"))


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_pickles_are_refused_with_the_safetensors_recipe(prog, tmp_path, suffix):
    p = tmp_path / f"model{suffix}"
    p.write_bytes(b"\x80\x02}q\x00.")  # a pickle; never opened as one
    with pytest.raises(NndslError) as e:
        convert_torch_weights(p, prog.model("t_linear"))
    assert e.value.diagnostics[0].code == "E650"
    assert "save_file(model.state_dict()" in str(e.value) and "unpickle" in str(e.value)


def test_a_torch_save_zip_renamed_safetensors_is_not_read(prog, tmp_path):
    p = tmp_path / "w.safetensors"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    with pytest.raises(NndslError) as e:
        convert_torch_weights(p, prog.model("t_linear"))
    assert e.value.diagnostics[0].code == "E651" and "zip or pickle" in str(e.value)


def test_a_left_over_tensor_is_named(prog, tmp_path):
    sd = {**linear_sd(), "head.weight": np.zeros((2, 3))}
    with pytest.raises(NndslError) as e:
        convert_torch_weights(save(tmp_path / "w.safetensors", sd), prog.model("t_linear"))
    assert e.value.diagnostics[0].code == "E653" and "`head`" in str(e.value)


def test_a_shape_that_fits_no_layer_is_named(prog, tmp_path):
    sd = linear_sd()
    sd["2.weight"] = np.zeros((4, 8))
    sd["2.bias"] = np.zeros((4,))
    with pytest.raises(NndslError) as e:
        convert_torch_weights(save(tmp_path / "w.safetensors", sd), prog.model("t_linear"))
    msg = str(e.value)
    assert "`2`" in msg and "[8, 4]" in msg and "(8, 3)" in msg.replace("[8, 3]", "(8, 3)")


def test_torch_gru_onto_the_reset_before_gru_says_which_cell_to_use(tmp_path):
    prog = nndsl.loads("import cells\nmodel g { input x: [batch, time, 3]\n output y = x -> GRU(5) -> dense(2) }")
    with pytest.raises(NndslError) as e:
        convert_torch_weights(FIX / "gru.safetensors", prog.model("g"))
    assert "GRUResetAfter(5)" in str(e.value)


def test_order_by_name_fails_then_shape_decides(prog, tmp_path):
    # `z_first` sorts after `a_second` but comes first; the shapes differ, so pairing by shape works
    sd = linear_sd()
    named = {"z_first.weight": sd["0.weight"], "z_first.bias": sd["0.bias"],
             "a_second.weight": sd["2.weight"], "a_second.bias": sd["2.bias"]}
    v = convert_torch_weights(save(tmp_path / "w.safetensors", named), prog.model("t_linear"))
    np.testing.assert_array_equal(v["params"]["dense_0"]["kernel"], sd["0.weight"].T)


def test_map_file_pairs_what_order_and_shape_cannot(tmp_path):
    prog = nndsl.loads("model m { input x: [batch, 4]\n output y = x -> dense(4) -> relu -> dense(4) }")
    rng = np.random.default_rng(0)
    w = {k: rng.normal(size=(4, 4) if k.endswith("weight") else (4,)) for k in
         ("enc.weight", "enc.bias", "dec.weight", "dec.bias")}
    path = save(tmp_path / "w.safetensors", w)
    by_order = convert_torch_weights(path, prog.model("m"))  # dec < enc: the wrong way round, silently
    np.testing.assert_allclose(by_order["params"]["dense_0"]["kernel"], w["dec.weight"].T, rtol=1e-6)
    mp = tmp_path / "pairs.map"
    mp.write_text("# torch  nndsl\nenc dense_0\ndec dense_1\n")
    v = convert_torch_weights(path, prog.model("m"), map_file=mp)
    np.testing.assert_allclose(v["params"]["dense_0"]["kernel"], w["enc.weight"].T, rtol=1e-6)
    np.testing.assert_allclose(v["params"]["dense_1"]["bias"], w["dec.bias"], rtol=1e-6)
    mp.write_text("enc dense_0\nnope dense_1\n")
    with pytest.raises(NndslError) as e:
        convert_torch_weights(path, prog.model("m"), map_file=mp)
    assert e.value.diagnostics[0].code == "E655" and "pairs.map:2:1" in str(e.value)


def test_natural_order_puts_features_10_after_9():
    assert sorted(["features.10", "features.9", "features.0"], key=natural) == \
        ["features.0", "features.9", "features.10"]


# ---------------------------------------------------------------------- torchvision's key layout
def torchvision_resnet(depth: int, classes: int = 1000) -> dict:
    """Zero tensors under torchvision.models.resnetNN's state_dict keys and shapes."""
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    bottleneck = depth >= 50
    sd, z = {}, np.zeros

    def bn(name, c):
        sd.update({f"{name}.weight": z(c), f"{name}.bias": z(c), f"{name}.running_mean": z(c),
                   f"{name}.running_var": z(c), f"{name}.num_batches_tracked": z(())})
    sd["conv1.weight"] = z((64, 3, 7, 7))
    bn("bn1", 64)
    cin = 64
    for i, (n, ch) in enumerate(zip(blocks, (64, 128, 256, 512)), 1):
        for j in range(n):
            p = f"layer{i}.{j}"
            out = 4 * ch if bottleneck else ch
            if bottleneck:
                shapes = [(ch, cin, 1, 1), (ch, ch, 3, 3), (out, ch, 1, 1)]
            else:
                shapes = [(ch, cin, 3, 3), (ch, ch, 3, 3)]
            for k, s in enumerate(shapes, 1):
                sd[f"{p}.conv{k}.weight"] = z(s)
                bn(f"{p}.bn{k}", s[0])
            if j == 0 and (i > 1 or cin != out):
                sd[f"{p}.downsample.0.weight"] = z((out, cin, 1, 1))
                bn(f"{p}.downsample.1", out)
            cin = out
    sd["fc.weight"], sd["fc.bias"] = z((classes, cin)), z(classes)
    return sd


@pytest.mark.parametrize("depth", [18, 50])
def test_stdlib_resnet_takes_torchvisions_keys(tmp_path, depth):
    sd = torchvision_resnet(depth, classes=10)
    sd["fc.bias"] = np.arange(10.0)
    prog = nndsl.load(Path(nndsl.__file__).parents[1] / "stdlib" / "resnet.nn")
    v = convert_torch_weights(save(tmp_path / "r.safetensors", sd), prog.model(f"ResNet{depth}", classes=10))
    np.testing.assert_array_equal(v["params"]["dense_0"]["bias"], np.arange(10.0))


def torchvision_features(cfg, classifier: list[int], head: list[tuple]) -> dict:
    """torchvision VGG/AlexNet keys: `features.N` convs where cfg has (out, in, k), `classifier.N`."""
    sd, i = {}, 0
    for item in cfg:
        if item == "M":
            i += 1
            continue
        sd[f"features.{i}.weight"], sd[f"features.{i}.bias"] = np.zeros(item), np.zeros(item[0])
        i += 2
    for idx, (out, inp) in zip(classifier, head):
        sd[f"classifier.{idx}.weight"], sd[f"classifier.{idx}.bias"] = np.zeros((out, inp)), np.zeros(out)
    return sd


@pytest.mark.slow
def test_stdlib_vgg_and_alexnet_take_torchvisions_keys(tmp_path):
    lib = Path(nndsl.__file__).parents[1] / "stdlib"
    vgg11 = [(64, 3, 3, 3), "M", (128, 64, 3, 3), "M", (256, 128, 3, 3), (256, 256, 3, 3), "M",
             (512, 256, 3, 3), (512, 512, 3, 3), "M", (512, 512, 3, 3), (512, 512, 3, 3), "M"]
    sd = torchvision_features(vgg11, [0, 3, 6], [(4096, 25088), (4096, 4096), (10, 4096)])
    v = convert_torch_weights(save(tmp_path / "v.safetensors", sd), nndsl.load(lib / "vgg.nn").model("VGG11", classes=10))
    assert v["params"]["VGGHead_0"]["dense_0"]["kernel"].shape == (25088, 4096)
    alex = [(64, 3, 11, 11), "M", (192, 64, 5, 5), "M", (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3), "M"]
    sd = torchvision_features(alex, [1, 4, 6], [(4096, 9216), (4096, 4096), (10, 4096)])
    # torchvision's AlexNet has a ReLU after each conv: features 0, 3, 6, 8, 10
    assert sorted(k for k in sd if k.endswith("weight") and k.startswith("f")) == \
        sorted(f"features.{i}.weight" for i in (0, 3, 6, 8, 10))
    v = convert_torch_weights(save(tmp_path / "a.safetensors", sd), nndsl.load(lib / "alexnet.nn").model("AlexNet", classes=10))
    assert v["params"]["dense_2"]["kernel"].shape == (4096, 10)
