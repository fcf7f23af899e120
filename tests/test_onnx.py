"""ONNX export, checked in ONNX Runtime: every model in stdlib/ and examples/ is exported with
random weights (batchnorm statistics away from 0 and 1), passed through onnx's checker with full
shape inference, run in onnxruntime at batch 1 and 7 and compared with `model.apply`."""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

import nndsl
from nndsl.errors import NndslError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

export_onnx = nndsl.export_onnx

ROOT = Path(__file__).resolve().parents[1]

# Static arguments that keep the models small, and sizes for symbolic dimensions other than batch
# and time (those two stay symbolic in the file; time is fed as 5).
ARGS = {"CharLSTM": {"vocab": 7, "hidden": 8}, "Reverser": {"vocab": 7, "hidden": 8},
        "SentimentLSTM": {"vocab": 7, "hidden": 8}, "BiTagger": {"vocab": 7, "hidden": 8},
        "ForwardTagger": {"vocab": 7, "hidden": 8}, "AddingLSTM": {"hidden": 8},
        "AddingRNN": {"hidden": 8}, "BasicBlock": {"ch": 4}, "Bottleneck": {"ch": 2},
        "VGGStage": {"ch": 4, "n": 2}, "MLP": {"hidden": 8}, "UpBlock": {"ch": 4}}
DIMS = {"h": 6, "w": 6, "c": 4, "features": 5, "steps": 3}
# A building block whose channel count must be static to build at all: exported inside BigGenerator.
PARTS = {"UpBlock"}
BIG = {"AlexNet", "VGG11", "VGG16", "ResNet18", "ResNet34", "ResNet50", "ResNet101", "ResNet152", "VGGHead"}


def all_models():
    out = []
    for path in sorted([*ROOT.glob("stdlib/*.nn"), *ROOT.glob("examples/*.nn")]):
        prog = nndsl.load(path)
        for name in prog.models:
            d = prog.defs.definitions[name]
            if d.span is not None and d.span.source.name != prog.defs.entry:
                continue  # imported: tested in its own file
            if getattr(d, "kind", "model") != "model" or name in PARTS:
                continue
            out.append(pytest.param(path, name, id=f"{path.parent.name}/{path.stem}:{name}",
                                    marks=[pytest.mark.slow] if name in BIG else []))
    return out


def inputs_for(g, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    xs = []
    for nid in g.inputs:
        t = g.node(nid).type
        shape = tuple(batch if d == "batch" else 5 if d == "time" else DIMS.get(d, d) for d in t.shape)
        if t.dtype.startswith("int"):
            xs.append(rng.integers(0, 2, shape).astype(t.dtype))  # any vocabulary and class count takes 0, 1
        else:
            xs.append(rng.normal(size=shape).astype(np.float32))
    return xs


def graph_for(model, dims):
    if not dims:
        return model.graph()
    from nndsl.ir.types import TensorType
    from nndsl.onnx import _declared
    return model.graph(tuple(TensorType(tuple(dims.get(d, d) if isinstance(d, str) else d for d in t.shape), t.dtype)
                             for t in _declared(model)))


def random_variables(model, g, seed=1):
    """Weights drawn here in numpy (fan-in scaled normals; batchnorm statistics and scales away
    from 0 and 1 so that they matter), laid out by the graph's parameter specs."""
    from nndsl.lower.interpret import set_path
    rng = np.random.default_rng(seed)
    out = {"params": {}, "state": {}}
    for tree, specs in (("params", g.params), ("state", g.state)):
        for path, spec in sorted(g.params.items() if tree == "params" else g.state.items()):
            shape = tuple(spec.shape)
            if path[-1] == "var":
                a = rng.uniform(0.5, 2.0, shape)
            elif path[-1] in ("scale", "gamma") or "u" == path[-1]:
                a = rng.uniform(0.5, 1.5, shape)
            else:
                a = rng.normal(size=shape) / np.sqrt(max(int(np.prod(shape[:-1])), 1))
            set_path(out[tree], path, a.astype(spec.dtype))
    return out


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def roundtrip(model, tmp_path, dims=None, batches=(1, 7)):
    g = graph_for(model, dims)
    v = random_variables(model, g)
    path = export_onnx(model, v, tmp_path / "m.onnx", dims=dims)
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    sess = session(path)
    # One apply at the larger batch; every op is per-example at inference, so its first row is
    # the answer for batch 1 (and jit compiles once instead of once per batch size).
    xs = inputs_for(g, max(batches), 0)
    want = jax.jit(model.apply)(v, *xs)
    names = [o.name for o in sess.get_outputs()]
    want = [np.asarray(want[n]) for n in names] if isinstance(want, dict) else [np.asarray(want)]
    for b in batches:
        got = sess.run(names, {i.name: x[:b] for i, x in zip(sess.get_inputs(), xs)})
        assert len(got) == len(want)
        for w, o in zip(want, got):
            w = w[:b]
            assert o.shape == w.shape
            scale = max(float(np.abs(w).max()), 1e-6)
            assert float(np.abs(o - w).max()) <= 1e-4 * scale, (b, float(np.abs(o - w).max()), scale)
    return m


@pytest.mark.parametrize("path,name", all_models())
def test_every_stdlib_and_example_model_round_trips(tmp_path, path, name):
    prog = nndsl.load(path)
    model = prog.model(name, **ARGS.get(name, {}))
    d = prog.defs.definitions[name]
    declared = {dd.id for s in d.body if type(s).__name__ == "Input" for dd in s.type.dims
                if type(dd).__name__ == "Name"}
    dims = {k: v for k, v in DIMS.items() if k in declared} or None
    decodes = "unroll(" in d.span.source.text and any(
        "emit=" in d.span.source.line(ln) for ln in range(d.span.line, d.span.end_line + 1))
    if decodes:
        # an in-language decoding loop has no ONNX form yet: the whole model is refused at the
        # `unroll` line, and its teacher-forced output (an entry point of its own) exports
        with pytest.raises(nndsl.NndslError, match="E660") as e:
            roundtrip(model, tmp_path, dims)
        assert "cannot export" in str(e.value) and "unroll" in str(e.value)
        model = prog.model(f"{name}.logits", **ARGS.get(name, {}))
    roundtrip(model, tmp_path, dims)


# ---------------------------------------------------------------------- what the file looks like
def nodes(m):
    return {n.name: n for n in m.graph.node}


def test_layers_keep_their_names_and_real_nodes(tmp_path):
    prog = nndsl.load(ROOT / "stdlib" / "lenet.nn")
    m = roundtrip(prog.model("LeNet5"), tmp_path)
    assert m.opset_import[0].version >= 17
    ops = {n.name: n.op_type for n in m.graph.node}
    assert ops["conv2d_0"] == "Conv" and ops["dense_0"] == "Gemm"
    inits = {i.name: tuple(i.dims) for i in m.graph.initializer}
    assert inits["conv2d_0.kernel"][0] == 6  # ONNX's [out, in, kh, kw]
    assert "conv2d_0.bias" in inits and "dense_0.kernel" in inits
    batch = m.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"


def test_batchnorm_is_inference_form(tmp_path):
    prog = nndsl.loads("model M { input x: [batch, 6, 6, 3]\n output y = x -> conv2d(4, 3) -> batchnorm -> relu }")
    m = roundtrip(prog.model("M"), tmp_path)
    (bn,) = [n for n in m.graph.node if n.op_type == "BatchNormalization"]
    assert bn.name == "batchnorm_0" and len(bn.output) == 1
    assert {"batchnorm_0.mean", "batchnorm_0.var"} <= {i.name for i in m.graph.initializer}


@pytest.mark.parametrize("cell,op_type,lbr", [("LSTM", "LSTM", None), ("GRU", "GRU", 0),
                                              ("GRUResetAfter", "GRU", 1), ("RNN", "RNN", None)])
def test_stdlib_cells_become_onnx_recurrent_nodes(tmp_path, cell, op_type, lbr):
    prog = nndsl.loads(f"import cells\nmodel M {{ input x: [batch, time, 3]\n"
                       f" output y = x -> bidirectional({cell}(4)) -> {cell}(3) }}")
    m = roundtrip(prog.model("M"), tmp_path)
    rec = [n for n in m.graph.node if n.op_type == op_type]
    assert len(rec) == 3 and not any(n.op_type == "Scan" for n in m.graph.node)
    assert min(n.name for n in rec).startswith(cell)
    if lbr is not None:
        assert all(a.i == lbr for n in rec for a in n.attribute if a.name == "linear_before_reset")
    # time stays symbolic: the same file runs 2 and 9 steps
    sess = session(tmp_path / "m.onnx")
    for steps in (2, 9):
        assert sess.run(None, {"x": np.zeros((2, steps, 3), np.float32)})[0].shape == (2, steps, 3)


def test_a_cell_written_by_equations_becomes_a_scan(tmp_path):
    prog = nndsl.loads("""
cell Leaky(hidden: int) {
  input x: [batch, features]
  state h: [batch, hidden]
  h' = 0.5 * h + 0.5 * tanh([h, x] -> dense(hidden))
  output h'
}
model M { input x: [batch, time, 3]
  output y = x -> Leaky(4) -> last -> dense(2) }
""")
    m = roundtrip(prog.model("M"), tmp_path)
    (scan,) = [n for n in m.graph.node if n.op_type == "Scan"]
    assert scan.name == "Leaky_0"


def test_unrolled_decoder_is_written_out(tmp_path):
    prog = nndsl.loads("import cells\nmodel M { input x: [batch, 4]\n output y = x -> unroll(GRU(4), steps=3) }")
    roundtrip(prog.model("M"), tmp_path)


@pytest.mark.slow
def test_resnet152_exports_and_checks(tmp_path):
    prog = nndsl.load(ROOT / "stdlib" / "resnet.nn")
    path = export_onnx(prog.model("ResNet152", classes=10), None, tmp_path / "r.onnx")
    m = onnx.load(str(path))
    assert sum(1 for n in m.graph.node if n.op_type == "Conv") == 155
    assert sum(1 for n in m.graph.node if n.op_type == "BatchNormalization") == 155


# ---------------------------------------------------------------------- refusals
def test_random_op_is_a_located_error_naming_it(tmp_path):
    prog = nndsl.loads("model M {\n  input x: [batch, 3]\n  output y = (x -> dense(3)) + normal([3])\n}\n")
    with pytest.raises(NndslError) as e:
        export_onnx(prog.model("M"), None, tmp_path / "m.onnx")
    d = e.value.diagnostics[0]
    assert d.code == "E660" and "`normal`" in d.message and d.span.line == 3
    assert not (tmp_path / "m.onnx").exists()


def test_fresh_weights_need_every_parameter_size(tmp_path):
    prog = nndsl.load(ROOT / "stdlib" / "mlp.nn")
    with pytest.raises(NndslError) as e:
        export_onnx(prog.model("MLP"), None, tmp_path / "m.onnx")
    assert e.value.diagnostics[0].code == "E663" and "`features`" in str(e.value)
    export_onnx(prog.model("MLP"), None, tmp_path / "m.onnx", dims={"features": 5})


def test_missing_onnx_package_is_a_clear_error(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "onnx", None)
    prog = nndsl.load(ROOT / "stdlib" / "lenet.nn")
    with pytest.raises(NndslError) as e:
        export_onnx(prog.model("LeNet5"), None, tmp_path / "m.onnx")
    assert e.value.diagnostics[0].code == "E615" and "nndsl[onnx]" in str(e.value)


# ---------------------------------------------------------------------- the command
def test_cli_exports_with_trained_weights(tmp_path, capsys):
    from nndsl.cli import main
    from nndsl.io import save_variables
    src = ROOT / "examples" / "resnet_digits.nn"
    model = nndsl.load(src).model("SmallResNet")
    v = random_variables(model, model.graph())
    save_variables(tmp_path / "net.safetensors", v)
    out = tmp_path / "net.onnx"
    assert main(["export", str(src), "SmallResNet", "--format", "onnx", "--weights",
                 str(tmp_path / "net.safetensors"), "-o", str(out)]) == 0
    x = inputs_for(model.graph(), 3, 0)[0]
    np.testing.assert_allclose(session(out).run(None, {"image": x})[0], np.asarray(jax.jit(model.apply)(v, x)),
                               rtol=1e-4, atol=1e-5)
    assert main(["export", str(src), "SmallResNet", "--format", "onnx", "-o", str(out)]) == 0
    assert "fresh initial weights" in capsys.readouterr().out


def test_an_argument_the_table_does_not_read_is_refused_not_dropped(tmp_path, monkeypatch):
    from nndsl.onnx import table
    monkeypatch.setitem(table.HANDLES, "conv2d", table.HANDLES["conv2d"] - {"dilation"})
    prog = nndsl.loads("model M {\n  input x: [batch, 8, 8, 1]\n  output y = x -> conv2d(2, 3, dilation=2)\n}\n")
    with pytest.raises(NndslError) as e:
        export_onnx(prog.model("M"), None, tmp_path / "m.onnx")
    assert e.value.diagnostics[0].code == "E660" and "`dilation`" in str(e.value)
    prog = nndsl.loads("model M {\n  input x: [batch, 8, 8, 1]\n  output y = x -> conv2d(2, 3)\n}\n")
    export_onnx(prog.model("M"), None, tmp_path / "m.onnx")  # at its default it is no obstacle


def test_cli_reports_the_op_at_its_line(tmp_path, capsys):
    from nndsl.cli import main
    src = tmp_path / "m.nn"
    src.write_text("model M {\n  input x: [batch, 3]\n  output y = (x -> dense(3)) + uniform([3])\n}\n")
    assert main(["export", str(src), "M", "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "m.nn:3:" in err and "error[E660]" in err and "`uniform`" in err and "Traceback" not in err
    assert main(["export", str(ROOT / "examples" / "xor_mlp.nn"), "XorMLP", "--train", "--format", "onnx",
                 "-o", str(tmp_path / "m.onnx")]) == 1
    assert "error[E662]" in capsys.readouterr().err


def test_dims_given_on_the_command_line_fix_sizes(tmp_path):
    from nndsl.cli.common import dims
    assert dims(["time=5", "h = 3"], "E664") == {"time": 5, "h": 3}
    with pytest.raises(NndslError) as e:
        dims(["time"], "E664")
    assert e.value.diagnostics[0].code == "E664"
    prog = nndsl.load(ROOT / "examples" / "adding_problem.nn")
    path = export_onnx(prog.model("AddingLSTM", hidden=3), None, tmp_path / "m.onnx",
                       dims=dims(["time=4"], "E664"))
    m = onnx.load(str(path))
    assert [d.dim_value or d.dim_param for d in m.graph.input[0].type.tensor_type.shape.dim] == ["batch", 4, 2]


def test_weights_of_the_wrong_shape_are_named(tmp_path):
    prog = nndsl.loads("model M { input x: [batch, 3]\n output y = x -> dense(2) }")
    v = {"params": {"dense_0": {"kernel": np.zeros((4, 2), np.float32), "bias": np.zeros(2, np.float32)}}}
    with pytest.raises(NndslError) as e:
        export_onnx(prog.model("M"), v, tmp_path / "m.onnx")
    assert e.value.diagnostics[0].code == "E605" and "dense_0.kernel" in str(e.value)


ZOO = {  # statements before the output, the output expression
    "activations": ("[batch, 6]", "", (
        "x -> dense(6) -> gelu -> elu(0.5) -> dense(6) -> softplus -> silu -> relu6 "
        "-> hard_tanh -> leaky_relu(0.1) -> clip(min=-0.5, max=0.7) -> dense(4) -> log_softmax")),
    "arithmetic": ("[batch, 6]", "", (
        "maximum(sqrt(abs(x)) * 2 - exp(-square(x)), minimum(x, 0.5)) / (1 + sigmoid(x)) "
        "+ log(1 + x * x) + (x > 0) + (x == x) + cos(x) - sin(x) + x ** 2")),
    "shapes": ("[batch, 4, 6]", "a, b = split(transpose(x, perm=[0, 2, 1]), 2, axis=1)",
               "concat(b, a, axis=2) -> reshape([batch, 24]) -> dense(3)"),
    "reductions": ("[batch, 4, 6]", "", (
        "mean(x, axis=1) + sum(x, axis=-2) - max(x, axis=1) "
        "+ min(x, axis=1) + max(mean(x, axis=1), axis=1, keepdims=true)")),
    "pools": ("[batch, 7, 7, 2]", "", (
        'x -> avg_pool(3, stride=2, padding="same") -> upsample(2) '
        '-> max_pool(2, stride=1) -> conv2d(3, 3, dilation=2, padding="same") -> global_max_pool')),
    "norms": ("[batch, 4, 4, 3]", "", (
        "x -> instance_norm -> self_attention(reduction=2) -> layernorm "
        "-> conv2d_sn(4, 3) -> flatten -> dense_sn(5)")),
    "matmul": ("[batch, 3, 4]", "", "matmul(x, transpose(x)) -> softmax"),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_op_zoo_round_trips(tmp_path, name):
    shape, stmt, expr = ZOO[name]
    prog = nndsl.loads(f"model M {{\n  input x: {shape}\n  {stmt}\n  output y = {expr}\n}}\n")
    roundtrip(prog.model("M"), tmp_path)
