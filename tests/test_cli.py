"""The `nndsl` command: its exit code, stdout and stderr.

Exit codes: 0 ok, 1 a mistake in the user's program or files, 2 a usage error. A user mistake
is reported as a located diagnostic, never as a Python traceback.

The main paths run as a user runs them, in a subprocess. Each subprocess spends seconds importing
JAX, so the long lists (every file in examples/ and stdlib/, every subcommand's help, the catalogue
of user mistakes) go through `nndsl.cli.main(argv)` in this process: an exception escaping `main`
is exactly the traceback a user would see.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
import numpy as np
import pytest

import nndsl

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).with_name("nndsl")
NNDSL = [str(_SCRIPT)] if _SCRIPT.is_file() else ([shutil.which("nndsl")] if shutil.which("nndsl")
                                                  else [sys.executable, "-m", "nndsl.cli"])
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore"}
LOCATED = re.compile(r"^(?P<file>\S+):(?P<line>\d+):(?P<col>\d+): error", re.M)

GOOD_FILES = sorted(p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("examples/*.nn"), *ROOT.glob("stdlib/*.nn")])

TINY = """
model Net(hidden: int = 6) {
  input x: [batch, 2]
  output logit = x -> dense(hidden) -> tanh -> dense(1)
}
model Two {
  input x: [batch, 2]
  output a = x -> dense(3)
  output b = x -> dense(2) -> relu
}
train xor {
  data logic(gate="xor")
  model net = Net()
  logit = data.x -> net
  loss bce = bce_logits(logit, data.y)
  metric acc = accuracy(logit, data.y, threshold=0.0)
  step net minimize bce with adam(lr=0.05)
  epochs 3
}
"""

BAD = """model Net {
  input x: [batch, 4]
  output y = x -> dense(4) -> sigmoud
}
"""


def nndsl_cli(*args, cwd=ROOT, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([*NNDSL, *map(str, args)], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def run_all(arglists, cwd=ROOT) -> list[subprocess.CompletedProcess]:
    """Several commands at once (each one is mostly JAX's import time)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda a: nndsl_cli(*a, cwd=cwd), arglists))


def cli_main(args, cwd, capsys) -> tuple[int, str, str]:
    """`nndsl ARGS` in this process, from folder `cwd`: (exit code, stdout, stderr)."""
    from nndsl.cli import main
    old = Path.cwd()
    capsys.readouterr()
    os.chdir(cwd)
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors and --help
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return code, out, err


def no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    (d / "tiny.nn").write_text(TINY)
    (d / "bad.nn").write_text(BAD)
    (d / "syntax.nn").write_text("model A {\n  input x: [batch, 4]\n  output y = x -> dense(4 ->\n}\n")
    return d


# ---------------------------------------------------------------------------- help and usage
def _subcommands() -> list[str]:
    import argparse
    from nndsl.cli import _parser
    [sub] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


SUBCOMMANDS = _subcommands()


def test_the_documented_subcommands_exist():
    assert {"check", "compile", "summary", "train", "run"} <= set(SUBCOMMANDS)


def test_top_level_help_lists_subcommands():
    r = nndsl_cli("--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: nndsl")
    for c in SUBCOMMANDS:
        assert c in r.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_subcommand_help(sub, capsys):
    code, out, _ = cli_main([sub, "--help"], ROOT, capsys)
    assert code == 0
    assert out.startswith(f"usage: nndsl {sub}")
    assert "file" in out or sub in ("lsp",)  # the language server reads its files from the editor


def test_version():
    r = nndsl_cli("--version")
    assert r.returncode == 0
    assert nndsl.__version__ in r.stdout


@pytest.mark.parametrize("args", [
    [],
    ["check"],
    ["compile", "examples/xor_mlp.nn", "--emit", "llvm"],
    ["summary", "examples/xor_mlp.nn", "--arg", "hidden"],
    ["run", "examples/xor_mlp.nn", "XorMLP", "--weights", "w.safetensors"],
    ["train", "examples/xor_mlp.nn", "--epochs", "many"],
], ids=["nothing", "check-no-file", "bad-emit", "arg-no-equals", "run-no-input", "epochs-not-int"])
def test_usage_errors_exit_2(args, capsys):
    code, _, err = cli_main(args, ROOT, capsys)
    assert code == 2
    assert "error" in err


def test_usage_error_in_a_subprocess():
    r = nndsl_cli("frobnicate")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
    no_traceback(r)


# ---------------------------------------------------------------------------- check
def test_there_are_files_to_check():
    assert any(f.startswith("examples/") for f in GOOD_FILES)
    assert "stdlib/lenet.nn" in GOOD_FILES


# Files of examples/ and stdlib/ that `nndsl check` rejects today (bugs reported, not fixed here).
KNOWN_BAD: dict = {}  # file -> reason, for a good file that a known bug stops from checking


@pytest.mark.parametrize("path", [pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BAD[f]))
                                  if f in KNOWN_BAD else f for f in GOOD_FILES])
def test_check_good_files(path, capsys):
    code, out, err = cli_main(["check", path], ROOT, capsys)
    assert code == 0, err
    assert "ok" in out
    assert not LOCATED.search(err)


def test_check_good_files_in_a_subprocess():
    rs = run_all([["check", "examples/lenet5.nn"], ["check", "stdlib/resnet.nn"]])
    for r in rs:
        assert r.returncode == 0, r.stderr
        assert ": ok" in r.stdout


def test_check_bad_file_text_and_json(work):
    text, js = run_all([["check", "bad.nn"], ["check", "bad.nn", "--format", "json"]], cwd=work)
    assert text.returncode == 1
    m = LOCATED.search(text.stderr)
    assert m and m.group(0) == "bad.nn:3:31: error", text.stderr
    assert "sigmoud" in text.stderr and "did you mean `sigmoid`" in text.stderr
    no_traceback(text)
    assert js.returncode == 1
    report = json.loads(js.stdout)
    [d] = report["diagnostics"]
    assert (d["file"], d["line"], d["col"], d["severity"]) == ("bad.nn", 3, 31, "error")
    assert isinstance(d["end_col"], int) and d["end_col"] == 31 + len("sigmoud")
    assert "sigmoud" in d["message"]


def test_check_json_on_a_good_file(capsys):
    code, out, err = cli_main(["check", "examples/xor_mlp.nn", "--format", "json"], ROOT, capsys)
    assert code == 0, err
    assert json.loads(out)["diagnostics"] == []


def test_check_reports_several_errors(work, capsys):
    (work / "two.nn").write_text("model A {\n  input x: [batch, 4]\n  output y = x -> foo\n}\n"
                                 "model B {\n  input x: [batch, 4]\n  output y = x -> dense(true)\n}\n")
    code, _, err = cli_main(["check", "two.nn"], work, capsys)
    assert code == 1
    assert [m.group(0) for m in LOCATED.finditer(err)] == ["two.nn:3:19: error", "two.nn:7:25: error"]


# ---------------------------------------------------------------------------- compile and summary
@pytest.fixture(scope="module")
def compiled(work):
    """graph and hlo in subprocesses; ast and jaxpr in this process (same code, less JAX importing)."""
    from types import SimpleNamespace as NS
    emits = ["graph", "hlo"]
    out = dict(zip(emits, run_all([["compile", "tiny.nn", "Net", "--emit", e, "--arg", "hidden=7"]
                                   for e in emits], cwd=work)))
    import contextlib
    import io
    from nndsl.cli import main
    for e in ["ast", "jaxpr"]:
        buf, err, old = io.StringIO(), io.StringIO(), Path.cwd()
        os.chdir(work)
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
                code = main(["compile", "tiny.nn", "Net", "--emit", e, "--arg", "hidden=7"])
        finally:
            os.chdir(old)
        out[e] = NS(returncode=code, stdout=buf.getvalue(), stderr=err.getvalue())
    return out


def test_compile_ast(compiled):
    r = compiled["ast"]
    assert r.returncode == 0, r.stderr
    assert "ModelDef" in r.stdout and "'Net'" in r.stdout and "TrainDef" in r.stdout


def test_compile_graph(compiled):
    r = compiled["graph"]
    assert r.returncode == 0, r.stderr
    assert re.search(r"dense\[.*units=7.*\].*f32\[batch, 7\]", r.stdout), r.stdout
    assert "output logit" in r.stdout
    assert "dense_0.kernel : f32[2, 7]" in r.stdout


def test_compile_jaxpr(compiled):
    r = compiled["jaxpr"]
    assert r.returncode == 0, r.stderr
    assert "lambda" in r.stdout and "dot_general" in r.stdout and "tanh" in r.stdout
    assert "f32[2,7]" in r.stdout


def test_compile_hlo(compiled):
    r = compiled["hlo"]
    assert r.returncode == 0, r.stderr
    assert "module" in r.stdout and "tensor<2x7xf32>" in r.stdout


def test_compile_default_model_is_the_last_one(work, capsys):
    code, out, err = cli_main(["compile", "tiny.nn"], work, capsys)
    assert code == 0, err
    assert "output a" in out and "output b" in out


def test_summary_lenet5_parameter_count():
    r = nndsl_cli("summary", "examples/lenet5.nn", "LeNet5")
    assert r.returncode == 0, r.stderr
    assert "61,706" in r.stdout
    assert "conv2d_0" in r.stdout and "dense_2" in r.stdout


# ---------------------------------------------------------------------------- train and run
@pytest.fixture(scope="module")
def trained(work):
    r = nndsl_cli("train", "tiny.nn", "--out", "run1", "--no-progress", "--seed", "1", cwd=work)
    return r, work / "run1"


def test_train_writes_weights_and_history(trained):
    r, out = trained
    assert r.returncode == 0, r.stderr
    no_traceback(r)
    assert (out / "net.safetensors").is_file()
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"bce", "acc"}
    assert all(len(v) == 3 for v in history.values())
    from safetensors.numpy import load_file
    flat = load_file(str(out / "net.safetensors"))
    assert {k: v.shape for k, v in flat.items()} == {
        "params/dense_0/kernel": (2, 6), "params/dense_0/bias": (6,),
        "params/dense_1/kernel": (6, 1), "params/dense_1/bias": (1,)}


def test_train_matches_the_python_api(trained, work):
    _, out = trained
    history = json.loads((out / "history.json").read_text())
    result = nndsl.load(work / "tiny.nn").trainer("xor", seed=1).fit(progress=False)
    for k, v in result.history.items():
        np.testing.assert_allclose(history[k], v, rtol=1e-5)


def test_run_output_equals_the_python_api(trained, work):
    _, out = trained
    x = np.random.default_rng(0).standard_normal((5, 2)).astype(np.float32)
    np.save(work / "x.npy", x)
    r = nndsl_cli("run", "tiny.nn", "Net", "--weights", out / "net.safetensors", "--input", "x.npy",
                  "--output", "y.npy", cwd=work)
    assert r.returncode == 0, r.stderr
    y = np.load(work / "y.npy")
    from safetensors.numpy import load_file
    flat = load_file(str(out / "net.safetensors"))
    params = {"dense_0": {"kernel": flat["params/dense_0/kernel"], "bias": flat["params/dense_0/bias"]},
              "dense_1": {"kernel": flat["params/dense_1/kernel"], "bias": flat["params/dense_1/bias"]}}
    net = nndsl.load(work / "tiny.nn").model("Net")
    api = np.asarray(net.apply({"params": params, "state": {}}, x))
    assert y.shape == (5, 1)
    np.testing.assert_allclose(y, api, rtol=1e-6, atol=1e-6)
    ref = np.tanh(x @ params["dense_0"]["kernel"] + params["dense_0"]["bias"]) @ params["dense_1"]["kernel"] \
        + params["dense_1"]["bias"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_run_several_outputs_writes_npz(work, capsys):
    from nndsl.io import save_variables
    net = nndsl.load(work / "tiny.nn").model("Two")
    x = np.ones((3, 2), np.float32)
    v = jax.tree_util.tree_map(np.asarray, net.init(jax.random.key(0), x))
    save_variables(work / "two.safetensors", v)
    np.save(work / "ones.npy", x)
    code, _, err = cli_main(["run", "tiny.nn", "Two", "--weights", "two.safetensors", "--input", "ones.npy",
                             "--output", "two_out.npz"], work, capsys)
    assert code == 0, err
    with np.load(work / "two_out.npz") as f:
        assert set(f.files) == {"a", "b"}
        np.testing.assert_allclose(f["a"], x @ v["params"]["dense_0"]["kernel"] + v["params"]["dense_0"]["bias"],
                                   rtol=1e-5)


# ---------------------------------------------------------------------------- user mistakes: exit 1, no traceback
USER_MISTAKES = {
    "missing-file": ["check", "nope.nn"],
    "directory": ["check", "."],
    "unknown-model": ["summary", "tiny.nn", "Nett"],
    "unknown-train": ["train", "tiny.nn", "nope", "--no-progress"],
    "bad-static-arg": ["compile", "tiny.nn", "Net", "--arg", "hidden=\"wide\""],
    "unknown-static-arg": ["summary", "tiny.nn", "Net", "--arg", "hiddn=3"],
    "missing-weights": ["run", "tiny.nn", "Net", "--weights", "nope.safetensors", "--input", "x2.npy",
                        "--output", "o.npy"],
    "corrupt-weights": ["run", "tiny.nn", "Net", "--weights", "junk.safetensors", "--input", "x2.npy",
                        "--output", "o.npy"],
    "weights-for-another-model": ["run", "tiny.nn", "Net", "--arg", "hidden=3", "--weights", "w6.safetensors",
                                  "--input", "x2.npy", "--output", "o.npy"],
    "wrong-input-shape": ["run", "tiny.nn", "Net", "--weights", "w6.safetensors", "--input", "x3.npy",
                          "--output", "o.npy"],
    "missing-input": ["run", "tiny.nn", "Net", "--weights", "w6.safetensors", "--input", "nope.npy",
                      "--output", "o.npy"],
    "too-many-inputs": ["run", "tiny.nn", "Net", "--weights", "w6.safetensors", "--input", "x2.npy",
                        "--input", "x2.npy", "--output", "o.npy"],
    "syntax-error-in-compile": ["compile", "syntax.nn", "--emit", "ast"],
}


@pytest.fixture(scope="module")
def mistake_files(work):
    from nndsl.io import save_variables
    net = nndsl.load(work / "tiny.nn").model("Net")
    np.save(work / "x2.npy", np.ones((4, 2), np.float32))
    np.save(work / "x3.npy", np.ones((4, 3), np.float32))
    save_variables(work / "w6.safetensors",
                   jax.tree_util.tree_map(np.asarray, net.init(jax.random.key(0), np.ones((1, 2), np.float32))))
    (work / "junk.safetensors").write_bytes(b"not a safetensors file")
    return work


@pytest.mark.parametrize("case", list(USER_MISTAKES))
def test_user_mistakes_exit_1_without_traceback(mistake_files, case, capsys):
    code, _, err = cli_main(USER_MISTAKES[case], mistake_files, capsys)
    assert code == 1, err
    assert "error" in err


@pytest.mark.parametrize("case,fragment", [
    ("unknown-model", "did you mean `Net`"),
    ("missing-file", "nope.nn"),
    ("weights-for-another-model", "[2, 6]"),
    ("weights-for-another-model", "[2, 3]"),
    ("wrong-input-shape", "tiny.nn:3:"),
    ("unknown-static-arg", "hidden"),
    ("syntax-error-in-compile", "syntax.nn:4:1: error"),
    ("missing-input", "nope.npy"),
])
def test_mistake_messages_say_what_is_wrong(mistake_files, case, fragment, capsys):
    _, _, err = cli_main(USER_MISTAKES[case], mistake_files, capsys)
    assert fragment in err


def test_user_mistakes_in_a_subprocess(mistake_files):
    cases = ["unknown-model", "wrong-input-shape"]
    for case, r in zip(cases, run_all([USER_MISTAKES[c] for c in cases], cwd=mistake_files)):
        assert r.returncode == 1, (case, r.stderr)
        no_traceback(r)
        assert "error" in r.stderr


# Mistakes that used to surface as Python tracebacks.
@pytest.mark.parametrize("args,code", [
    pytest.param(["compile", "tiny.nn", "Net", "--emit", "jaxpr", "--dim", "batch=abc"], 2,),
    pytest.param(["run", "tiny.nn", "Net", "--weights", "w6.safetensors", "--input", "x2.npy",
                  "--output", "no/such/dir/o.npy"], 1,),
    pytest.param(["train", "tiny.nn", "--epochs", "1", "--no-progress", "--out", "tiny.nn"], 1,),
], ids=["dim-not-int", "run-output-dir-missing", "train-out-is-a-file"])
def test_more_mistakes_without_traceback(mistake_files, args, code, capsys):
    assert cli_main(args, mistake_files, capsys)[0] == code


@pytest.mark.parametrize("main", ["nndsl.cli", "nndsl.tools.commands"])
def test_both_command_lines_report_a_mistake_and_ctrl_c_without_a_traceback(main, monkeypatch, capsys):
    """`nndsl` and `python -m nndsl.tools` run their commands through one errors.run_command."""
    import importlib

    from nndsl.errors import TrainingError
    mod = importlib.import_module(main)
    table = mod.COMMANDS if main == "nndsl.cli" else None
    for exc, code, said in ((TrainingError("the loss is nan", code="E700"), 1, "the loss is nan"),
                            (KeyboardInterrupt(), 130, "interrupted")):
        def boom(args, exc=exc):
            raise exc
        if table is not None:
            monkeypatch.setitem(table, "check", boom)
            assert mod.main(["check", "x.nn"]) == code
        else:
            def register(sub, boom=boom):
                sub.add_parser("fmt")
                return {"fmt": boom}
            monkeypatch.setattr(mod, "register", register)
            assert mod.main(["fmt"]) == code
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err
