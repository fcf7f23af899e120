"""`nndsl check` means checked (issue 14): warnings for what is legal but probably wrong, the
hyperparameters and sizes the command line refuses, weights of the wrong dtype, and a non-finite
loss whose cause the data can show.

Each file in tests/warn/ is one warning, with the header of tests/bad/ (see test_diagnostics.py):
it must check without errors and report the warning at the place and with the text it names.
The golden error cases of issue 14 live in tests/bad/ with the others.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_diagnostics import read_case

import nndsl
from nndsl.api import check_report
from nndsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
WARN = Path(__file__).resolve().parent / "warn"
CASES = [read_case(p) for p in sorted(WARN.glob("*.nn"))]
OURS = {"W010", "W011", "W012", "W013"}


def _warnings(path: Path) -> list:
    prog = nndsl.load(path)
    errors, warnings = check_report(prog)
    assert errors == [], [str(e) for e in errors]
    from nndsl.lint import lint
    return warnings + lint(prog.defs)


@pytest.mark.parametrize("case", CASES, ids=[c.path.stem for c in CASES])
def test_warning_is_located_with_its_text(case):
    found = [w for w in _warnings(case.path) if w.code == case.code]
    assert found, f"no {case.code} in {case.path.name}"
    w = found[0]
    assert (w.span.line, w.span.col) == (case.line, case.col)
    text = "\n".join([w.message, w.help or ""] + [n for _, n in w.notes])
    for fragment in case.expect:
        assert fragment in text, (fragment, text)
    line = case.path.read_text().splitlines()[case.line - 1]
    if case.under:
        assert line[case.col - 1:].startswith(case.under)


@pytest.mark.parametrize("case", CASES[:3], ids=[c.path.stem for c in CASES[:3]])
def test_warnings_do_not_fail_the_check_command(case, capsys):
    capsys.readouterr()
    assert main(["check", str(case.path), "--format", "json"]) == 0
    diags = json.loads(capsys.readouterr().out)["diagnostics"]
    assert any(d["code"] == case.code and d["severity"] == "warning" and d["line"] == case.line for d in diags)


def test_examples_and_stdlib_check_without_errors_or_new_warnings():
    files = sorted((ROOT / "examples").glob("*.nn")) + sorted((ROOT / "stdlib").glob("*.nn"))
    assert len(files) > 20
    for f in files:
        errors, warnings = check_report(nndsl.load(f))
        assert errors == [], (f.name, [str(e) for e in errors])
        assert [w for w in warnings if w.code in OURS] == [], (f.name, [w.render() for w in warnings])


def test_stdlib_cells_are_checked_with_a_symbolic_hidden_size():
    """cells.nn uses none of its cells, and every one of them needs `hidden`: each is checked."""
    from nndsl.elaborate import build_model
    from nndsl.elaborate.builder import Builder
    from nndsl.values import Sym
    prog = nndsl.load(ROOT / "stdlib" / "cells.nn")
    for name in ("RNN", "LSTM", "GRU"):
        b = Builder(prog.defs)
        b.checking = True
        b.free = {"hidden"}
        g = build_model(prog.defs, name, {"hidden": Sym("hidden")}, builder=b)
        assert b.unchecked == [] and name in b.complete
        (out,) = g.outputs.values()
        assert g.node(out).type.shape[-1] == "hidden"


def test_a_use_with_real_values_checks_what_symbols_could_not():
    src = """
model Block(act: layer) {
  input x: [batch, 8]
  output y = x -> dense(8) -> act
}
model Net {
  input x: [batch, 8]
  output y = x -> Block(relu) -> dense(2)
}
"""
    errors, warnings = check_report(nndsl.loads(src))
    assert errors == [] and warnings == []


def test_a_string_argument_is_checked_for_each_value_it_is_compared_with():
    src = """
model Pick(mode: str) {
  input x: [batch, 8]
  h = x -> dense(16)
  output y = if mode == "sum" then h -> dense(2) else h @ h
}
"""
    errors, _ = check_report(nndsl.loads(src))
    assert len(errors) == 1 and "[batch, 16] @ [batch, 16]" in str(errors[0])


def test_a_symbolic_argument_reaches_the_shapes_of_messages():
    src = """
model Head(classes: int) {
  input x: [batch, 8]
  output y = (x -> dense(classes)) * x
}
"""
    errors, _ = check_report(nndsl.loads(src))
    assert len(errors) == 1 and "[batch, classes] and [batch, 8]" in str(errors[0]), [str(e) for e in errors]


# ---------------------------------------------------------------------------- hyperparameters
SMALL = """
model A {
  input x: [batch, 2]
  output y = x -> dense(1)
}
train t {
  data logic(gate="xor")
  model net = A()
  loss l = mse(data.x -> net, data.y)
  step net minimize l with OPT
  epochs 1
}
"""


@pytest.mark.parametrize("opt, fragment", [
    ("adam(lr=1e-3, b1=1.5)", "`b1` of `adam` must be in [0.0, 1.0), found 1.5"),
    ("sgd(lr=0)", "`lr` of `sgd` must be > 0, found 0"),
    ("adamw(lr=1e-3, weight_decay=-1)", "`weight_decay` of `adamw` must be >= 0"),
    ("adam(lr=cosine(lr=-1.0, steps=10))", "`lr` of `cosine` must be >= 0, found -1"),
    ("sgd(lr=inf)", "`inf` is not a number in nndsl"),
])
def test_hyperparameters_out_of_range_are_located_errors(opt, fragment):
    errors = check_report(nndsl.loads(SMALL.replace("OPT", opt)))[0]
    assert len(errors) == 1 and errors[0].diagnostics[0].code == "E360", [str(e) for e in errors]
    assert fragment in str(errors[0])
    assert errors[0].span.line == 10


@pytest.mark.parametrize("argv", [
    ["train", "F", "--clip-norm", "-1"], ["train", "F", "--clip-norm", "nan"], ["train", "F", "--clip-norm", "0"],
    ["check", "F", "--max-memory", "0"], ["summary", "F", "--batch", "-5"], ["summary", "F", "--batch", "0"],
])
def test_the_command_line_refuses_values_that_would_mean_something_else(argv, tmp_path, capsys):
    f = tmp_path / "m.nn"
    f.write_text(SMALL.replace("OPT", "sgd(lr=0.1)"))
    with pytest.raises(SystemExit) as e:
        main([str(f) if a == "F" else a for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert argv[2] in err and "Traceback" not in err


def test_the_api_refuses_them_too():
    prog = nndsl.loads(SMALL.replace("OPT", "sgd(lr=0.1)"))
    for bad in (-1.0, float("nan"), float("inf"), 0):
        with pytest.raises(nndsl.NndslError, match="`clip_norm` must be a finite number above 0"):
            prog.trainer(clip_norm=bad)
    from nndsl.summary import rows
    with pytest.raises(nndsl.NndslError, match="batch size must be a positive integer"):
        rows(prog.model("A"), -5)


# ---------------------------------------------------------------------------- weights
def test_weights_of_the_wrong_dtype_are_refused(tmp_path, capsys):
    from nndsl.io import save_variables
    (tmp_path / "m.nn").write_text(SMALL.replace("OPT", "sgd(lr=0.1)"))
    np.save(tmp_path / "x.npy", np.ones((3, 2), np.float32))
    for dtype in (np.int32, np.bool_):
        save_variables(tmp_path / "w.safetensors", {"params": {"dense_0": {
            "kernel": np.ones((2, 1), dtype), "bias": np.zeros((1,), dtype)}}, "state": {}})
        capsys.readouterr()
        code = main(["run", str(tmp_path / "m.nn"), "A", "--weights", str(tmp_path / "w.safetensors"),
                     "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")])
        err = capsys.readouterr().err
        assert code == 1 and "error[E620]" in err and np.dtype(dtype).name in err, err
    assert not (tmp_path / "y.npy").exists()


# ---------------------------------------------------------------------------- non-finite losses
NPZ_BLOCK = """
model Net {
  input x: [batch, 4]
  output logits = x -> dense(5)
}
train t {
  data npz("d.npz", batch=16)
  model net = Net()
  loss l = cross_entropy(data.x -> net, data.y)
  step net minimize l with adam(lr=1e-3)
  iterations 3
}
"""


def _fit(tmp_path, x, y):
    np.savez(tmp_path / "d.npz", x=x, y=y)
    (tmp_path / "t.nn").write_text(NPZ_BLOCK)
    trainer = nndsl.load(tmp_path / "t.nn").trainer()
    with pytest.raises(nndsl.NndslError) as e:
        trainer.fit(progress=False)
    return e.value


def test_a_non_finite_loss_names_labels_past_the_logits(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 64).astype(np.int32)
    y[0] = 9
    e = _fit(tmp_path, rng.standard_normal((64, 4)).astype(np.float32), y)
    d = e.diagnostics[0]
    assert d.code == "E701"
    assert "the cause: `data.y` holds ids from 0 to 9, but `cross_entropy` (" in d.message, d.message
    assert "t.nn:9:12) has logits with 5 classes" in d.message, d.message
    assert "learning rate is not the problem" in d.help


def test_a_non_finite_loss_names_nan_in_the_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    x[:, 0] = np.nan
    e = _fit(tmp_path, x, rng.integers(0, 5, 64).astype(np.int32))
    assert "`data.x` holds non-finite values" in e.diagnostics[0].message
    assert "learning rate" not in e.diagnostics[0].help


def test_the_schema_of_every_builtin_source_is_declared():
    """Each field whose values a source knows is declared, and matches the data it loads."""
    from nndsl.data.sources import SOURCES, make_source
    checked = 0
    for name, (attrs, _) in SOURCES.items():
        if name in ("npz", "csv", "text"):
            continue
        from nndsl.ops.registry import REQUIRED
        if any(a.default is REQUIRED for a in attrs):
            continue  # a file source (images, mnist, ...): its schema comes from its files
        args = {a.name: a.default for a in attrs if a.default is not REQUIRED}
        if "n" in args:
            args["n"] = min(args["n"], 200)
        src = make_source(name, args, None)
        arrays = src.loader()
        for f, v in src.values.items():
            a = arrays[f]
            if v.ids is not None:
                assert a.min() >= 0 and a.max() < v.ids, (name, f)
                assert np.issubdtype(a.dtype, np.integer), (name, f)
            else:
                assert v.low <= a.min() and a.max() <= v.high, (name, f)
            checked += 1
    assert checked >= 12
