"""Resource bombs and hostile values: every one is refused with a located diagnostic, before it
allocates or spins, and no CLI command or Python entry point answers with a traceback.

The CLI bombs run in one subprocess that reports its peak resident memory; each case has its own
alarm, so a hang fails that case instead of the whole run. Timeouts are generous (the machine may
be loaded): the tests assert the refusal, not a time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import nndsl
from nndsl import bounds
from nndsl.api import check_program
from nndsl.elaborate import builder
from nndsl.source import Source, Span, escape

ROOT = Path(__file__).resolve().parents[1]

MODEL = "model M {{\n  input x: [batch, 4]\n  output y = x -> {layer}\n}}\n"
TRAIN = """model M {{
  input x: [batch, 2]
  output y = x -> dense(1)
}}
train T {{
  data {data}
  model m = M()
  loss l = mean((data.x -> m) ** 2)
  step m{repeat} minimize l with {opt}
  {setting}
}}
"""


def train(data='logic(gate="and")', repeat="", opt="adam(lr=1e-3)", setting="iterations 2") -> str:
    return TRAIN.format(data=data, repeat=repeat, opt=opt, setting=setting)


FIB = """model F(n: int = 30) {
  input x: [batch, 4]
  output y = if n == 0 then x else (x -> F(n - 1)) + (x -> F(n - 1))
}
"""

# name -> (file text, extra CLI arguments, command, code the refusal must carry)
CLI_BOMBS = {
    "power_tower": (MODEL.format(layer="dense(10 ** 10 ** 10)"), [], "check", "E410"),
    "seven_to_thirty_million": (MODEL.format(layer="dense(7 ** 30000000)"), [], "check", "E410"),
    "literal_5000_digits": (MODEL.format(layer="dense(" + "9" * 5000 + ")"), [], "check", "E410"),
    "ten_to_400": (MODEL.format(layer="dense(10**400)"), [], "check", "E410"),
    "product_past_int64": (MODEL.format(layer="dense(3037000500 * 3037000500)"), [], "check", "E410"),
    "negative_base_fraction": (MODEL.format(layer="dense((0 - 8) ** 0.5)"), [], "check", "E410"),
    "stack_of_a_billion": (MODEL.format(layer="relu * 1000000000"), [], "check", "E404"),
    "stack_times_float": (MODEL.format(layer="step * 1e11"), [], "check", "E315"),
    "exponential_recursion": (FIB, [], "check", "E411"),
    "iterations_10_20": (train(setting="iterations 10**20"), [], "check", "E410"),
    "iterations_10_18": (train(setting="iterations 10**18"), [], "check", "E349"),
    "seed_1e26": (train(setting="seed 1e26"), [], "check", "E349"),
    "step_repeat": (train(repeat=" * 1000000"), [], "check", "E349"),
    "cosine_steps_0": (train(opt="adam(lr=cosine(1e-3, steps=0))"), [], "check", "E360"),
    "adam_b2_1": (train(opt="adam(b2=1)"), [], "check", "E360"),
    "lr_inf": (train(opt="adam(lr=1e400)"), [], "check", "E410"),
    "ring_3e12": (train(data="ring_gaussians(n=3e12)"), [], "check", "E401"),
    "ring_3e8_under_limit": (train(data="ring_gaussians(n=3e8)"), ["--max-memory", "1GiB"], "check", "E401"),
    "ring_negative_n": (train(data="ring_gaussians(n=-1)"), [], "check", "E347"),
    "train_ring_3e12": (train(data="ring_gaussians(n=3e12)"), ["--no-progress"], "train", "E401"),
    "train_seed_minus_1": (train(), ["--no-progress", "--seed", "-1"], "train", "E349"),
    "train_iterations_huge": (train(), ["--no-progress", "--iterations", str(10**20)], "train", "E349"),
    "train_cosine_steps_0": (train(opt="adam(lr=cosine(1e-3, steps=0))"), ["--no-progress"], "train", "E360"),
    "compile_dim_negative": (MODEL.format(layer="dense(3)"), ["--emit", "jaxpr", "--dim", "batch=-1"],
                             "compile", "E303"),
    "summary_batch_huge": (MODEL.format(layer="dense(3)"), ["--batch", str(10**20)], "summary", "E401"),
    "activations_at_run_batch": (MODEL.format(layer="reshape([batch, 4, 1]) -> upsample(4000000)"),
                                 ["M", "--input", "x4.npy", "--output", "y.npy", "--max-memory", "200MiB"], "run",
                                 "E401"),
}

CHILD = r"""
import io, json, resource, signal, sys, time, contextlib
from nndsl.cli import main

class Hang(Exception):
    pass

def alarm(*_):
    raise Hang()

signal.signal(signal.SIGALRM, alarm)
out = {}
for name, argv in json.loads(sys.argv[1]).items():
    err = io.StringIO()
    t = time.perf_counter()
    signal.alarm(TIMEOUT)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except Hang:
        rc = "hang"
    except BaseException as e:
        import traceback
        rc = "exception"
        err.write(traceback.format_exc())
    signal.alarm(0)
    out[name] = {"rc": rc, "stderr": err.getvalue(), "seconds": time.perf_counter() - t}
# VmHWM is this process image's own peak: ru_maxrss also carries the peak of the (large) test
# worker this process was forked from, which Linux keeps across exec
out["_maxrss_kib"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    np.save(folder / "x4.npy", np.zeros((4, 4), np.float32))
    argvs = {}
    for name, (text, extra, command, _) in CLI_BOMBS.items():
        (folder / f"{name}.nn").write_text(text)
        argvs[name] = [command, str(folder / f"{name}.nn")] + extra + (
            ["--out", str(folder / f"run_{name}")] if command == "train" else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", CHILD.replace("TIMEOUT", "20"), json.dumps(argvs)],
                       capture_output=True, text=True, env=env, cwd=folder, timeout=20 * len(argvs) + 120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(CLI_BOMBS))
def test_cli_bomb_is_refused_with_a_located_diagnostic(cli_results, name):
    res = cli_results[name]
    code = CLI_BOMBS[name][3]
    assert res["rc"] == 1, (res["rc"], res["stderr"][-2000:])
    assert f"[{code}]" in res["stderr"], res["stderr"][-2000:]
    assert "Traceback" not in res["stderr"]
    assert len(res["stderr"]) < 5000, "a refusal is a short message, not the number it refused"


def test_check_accepts_what_run_refuses_only_for_the_batch(tmp_path):
    """At batch 1 (what `check` assumes for a free batch) the model fits in 200 MiB; at the batch
    `run` is given it does not: the same estimate, asked with the sizes each knows."""
    prog = nndsl.loads(CLI_BOMBS["activations_at_run_batch"][0])
    prog.max_memory = 200 * 2**20
    assert check_program(prog) == []
    with pytest.raises(nndsl.NndslError, match="activations"):
        prog.model("M").apply({}, np.zeros((4, 4), np.float32))


def test_cli_bombs_stay_under_500_mb(cli_results):
    assert cli_results["_maxrss_kib"] < 500 * 1024, cli_results["_maxrss_kib"]


# ---------------------------------------------------------------------- static numbers
@pytest.mark.parametrize("expr, ok", [
    ("2 ** 62", True), ("2 ** 63", False), ("-(2 ** 62) * 2", True), ("0 - 2 ** 62 * 2 - 1", False),
    ("1 ** 10000000000", True), ("0 ** 10000000000", True), ("(0 - 1) ** 10000000001", True),
    ("0.5 ** 10000000000", True), ("1.5 ** 100000", False), ("10 ** 18", True), ("10 ** 19", False),
    ("2 ** (0 - 100000000)", True), ("1e308 * 10", False), ("3 ** 39", True), ("3 ** 40", False),
])
def test_static_arithmetic_bounds(expr, ok):
    src = f"model M(n: any = {expr}) {{\n  input x: [batch, 4]\n  output y = x\n}}\n"
    errors = check_program(nndsl.loads(src))
    assert (not errors) == ok, [str(e) for e in errors]
    if not ok:
        assert errors[0].diagnostics[0].code == "E410" and errors[0].span.line == 1


def test_short_never_prints_thousands_of_digits():
    assert len(bounds.short(10 ** 5000)) < 60
    assert bounds.short(123) == "123" and bounds.short(10**7) == "10,000,000"


def test_memory_message_formats_any_size():
    from nndsl.limits import human
    assert human(10 ** 400).startswith("about 2**")


def test_model_arguments_from_python_are_bounded():
    prog = nndsl.loads(MODEL.format(layer="dense(3)").replace("model M {", "model M(n: int = 1) {"))
    with pytest.raises(nndsl.NndslError, match="too large"):
        prog.model("M", n=10 ** 30)


# ---------------------------------------------------------------------- the elaboration budget
def test_work_budget_refuses_exponential_recursion_at_its_first_recursive_use():
    [e] = check_program(nndsl.loads(FIB))
    d = e.diagnostics[0]
    assert d.code == "E411" and (d.span.line, d.span.col) == (3, 42), str(e)


def test_work_budget_grows_with_the_text_so_long_plain_programs_pass(monkeypatch):
    monkeypatch.setattr(builder, "MAX_WORK", 500)
    lines = "\n".join(f"  h{i} = h{i - 1} -> relu" for i in range(1, 1500))
    src = f"model M {{\n  input h0: [batch, 4]\n{lines}\n  output y = h1499\n}}\n".replace("h1499", "h1499")
    src = src.replace("output y = h1499", "output y = h1499 -> relu")
    assert check_program(nndsl.loads(src)) == []
    [e] = check_program(nndsl.loads(FIB.replace("30", "12")))
    assert e.diagnostics[0].code == "E411"


def test_a_stack_is_bounded_before_it_is_expanded():
    [e] = check_program(nndsl.loads(MODEL.format(layer="(dense(4) -> relu) * 1000000000")))
    assert e.diagnostics[0].code == "E404"


def test_budget_error_is_reported_once_not_per_statement():
    body = "\n".join(f"  a{i} = x -> F()" for i in range(50))
    src = FIB.replace("model F", "model F") + f"model G {{\n  input x: [batch, 4]\n{body}\n  output y = a0\n}}\n"
    errors = check_program(nndsl.loads(src))
    assert len([d for e in errors for d in e.diagnostics if d.code == "E411"]) <= 2


# ---------------------------------------------------------------------- warnings at scale
def test_source_lines_are_indexed_once_and_agree_with_split():
    rng = np.random.default_rng(0)
    for _ in range(50):
        text = "".join(rng.choice(list("ab\n\r\t ")) for _ in range(int(rng.integers(0, 40))))
        src = Source(text)
        lines = text.split("\n")
        for n in range(-1, len(lines) + 3):
            assert src.line(n) == (lines[n - 1] if 0 < n <= len(lines) else "")
    src = Source("a\nb\n" * 10)
    src.line(3)
    assert "_starts" in src.__dict__  # cached: each further line() is a slice, not a split


def test_many_unused_names_warn_each_once():
    from nndsl.lint import lint
    n = 3000
    body = "\n".join(f"  a{i} = x" for i in range(n))
    defs = nndsl.loads(f"model M {{\n  input x: [batch, 4]\n{body}\n  output y = x\n}}\n").defs
    warnings = lint(defs)
    assert len(warnings) == n
    text = "\n".join(w.render() for w in warnings)
    assert text.count("W001") == n and f"a{n - 1} = x" in text


def test_a_very_long_line_is_excerpted_as_a_window():
    line = "x" * 5000 + "HERE" + "y" * 5000
    out = Span(Source(line), 1, 5001, 1, 5005).excerpt()
    assert "HERE" in out and len(out) < 1500
    text, carets = out.split("\n")
    assert text[carets.index("^"):carets.index("^") + 4] == "HERE"


# ---------------------------------------------------------------------- escaping
def test_escape_makes_control_characters_visible():
    assert escape("a\x1b[2Jb\rc\x00d\ne\u202e") == "a\\x1b[2Jb\\rc\\0d\\ne\\u202e"
    assert escape("x" * 1000).endswith("...") and len(escape("x" * 1000)) < 300


@pytest.mark.parametrize("literal", ['"\\r\\x1b[32mok\\x1b[0m"', '"\\0\\x07\\x9b"', '"a\\nerror: fake"'])
def test_no_message_carries_a_raw_control_character(literal):
    for layer in (f"conv2d(2, 3, padding={literal})", f"dense({literal})"):
        src = MODEL.format(layer=layer).replace("[batch, 4]", "[batch, 4, 4, 1]")
        [e] = check_program(nndsl.loads(src, name="bad\x1b[2J.nn"))
        text = str(e)
        assert all(c == "\n" or c.isprintable() for c in text), repr(text)
        assert text.count("\n") == str(e).count("\n")
        d = e.diagnostics[0]
        assert "\n" not in d.message and all(c.isprintable() for c in d.message), repr(d.message)
        assert "bad\\x1b[2J.nn" in text


# ---------------------------------------------------------------------- the Python API
@pytest.mark.parametrize("arg", [None, 42, ["model M {}"], b"\xff\xfe"])
def test_loads_refuses_what_is_not_program_text(arg):
    with pytest.raises(nndsl.NndslError):
        nndsl.loads(arg)


def test_loads_reads_bytes_as_utf8():
    prog = nndsl.loads(MODEL.format(layer="dense(3)").encode())
    assert prog.models == ["M"]


@pytest.fixture(scope="module")
def dense_model():
    prog = nndsl.loads(MODEL.format(layer="dense(3)"))
    m = prog.model("M")
    return prog, m, m.init(jax.random.key(0), np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("call", [
    lambda p, m, v: p.model(None),
    lambda p, m, v: p.model(3),
    lambda p, m, v: m.apply(v, None),
    lambda p, m, v: m.apply(v, "abc"),
    lambda p, m, v: m.apply(v, {"x": 1}),
    lambda p, m, v: m.apply(v),
    lambda p, m, v: m.apply(v, np.zeros((2, 4)), np.zeros((2, 4))),
    lambda p, m, v: m.apply({}, np.zeros((2, 4), np.float32)),
    lambda p, m, v: m.apply({"params": {"dense_0": {}}}, np.zeros((2, 4), np.float32)),
    lambda p, m, v: m.apply(None, np.zeros((2, 4), np.float32)),
    lambda p, m, v: m.apply({"params": {"dense_0": {"kernel": np.zeros((5, 3)), "bias": np.zeros(3)}}},
                            np.zeros((2, 4), np.float32)),
    lambda p, m, v: m.apply(v, np.zeros((0, 4), np.float32)),
    lambda p, m, v: m.init(jax.random.key(0), np.zeros((0, 4), np.float32)),
    lambda p, m, v: m.init(None, np.zeros((2, 4), np.float32)),
    lambda p, m, v: m.init("key", np.zeros((2, 4), np.float32)),
    lambda p, m, v: nndsl.loads(train()).trainer(123),
    lambda p, m, v: nndsl.loads(train()).trainer().init(None),
], ids=["model_none", "model_int", "input_none", "input_str", "input_dict", "no_input", "two_inputs",
        "no_variables", "missing_kernel", "variables_none", "wrong_shape", "apply_batch_0", "init_batch_0", "init_key_none", "init_key_str", "trainer_name_int",
        "trainer_init_key_none"])
def test_api_misuse_raises_nndsl_errors(dense_model, call):
    with pytest.raises(nndsl.NndslError) as info:
        call(*dense_model)
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize("override", [dict(seed=-1), dict(seed=2**40), dict(seed=1.5), dict(iterations=10**20),
                                      dict(iterations=0), dict(epochs=-3), dict(clip_norm=float("nan"))])
def test_trainer_overrides_are_range_checked(override):
    with pytest.raises(nndsl.NndslError, match="E349|`"):
        nndsl.loads(train()).trainer(**override)


def test_generated_sources_refuse_unusable_arguments():
    for data in ("ring_gaussians(modes=0)", "tagging(vocab=1)", "sentiment(length=2)", "motifs(n=0)",
                 "text(seq=0)", "text(stride=0)", "text(seq=100000000)", "reverse(vocab=1)"):
        errors = check_program(nndsl.loads(train(data=data)))
        d = errors[0].diagnostics[0]
        assert d.code == "E347" and d.span.line == 6, str(errors[0])


def test_sample_length_is_bounded_before_anything_is_built():
    from nndsl.sample import MAX_LENGTH, generate
    for length in (0, MAX_LENGTH + 1, 10 ** 8, 2.5):
        with pytest.raises(nndsl.NndslError, match="sample length"):
            generate(None, {}, "ab", "a", length)
    with pytest.raises(nndsl.NndslError, match="seed"):
        generate(None, {}, "ab", "a", 10, seed=-1)


def test_metrics_between_reports_are_the_mean_of_the_steps():
    """Metrics are kept as running sums between reports (memory stays flat however far apart
    reports are); the reported value is still the mean of the per-step values, checked against
    the same steps done by hand."""
    prog = nndsl.loads(train(opt="sgd(lr=0.1)", setting="iterations 6\n  eval_every 3"))
    tr = prog.trainer()
    res = tr.fit(progress=False)
    p = tr.init(jax.random.key(tr.seed))["params"]["m"]["dense_0"]
    w, b = np.asarray(p["kernel"], np.float64), np.asarray(p["bias"], np.float64)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    losses = []
    for _ in range(6):
        r = X @ w + b
        losses.append(np.mean(r ** 2))
        g = 2 * r / len(X)
        w, b = w - 0.1 * X.T @ g, b - 0.1 * g.sum(0)
    np.testing.assert_allclose(res.history["l"], [np.mean(losses[:3]), np.mean(losses[3:])], rtol=1e-5)
