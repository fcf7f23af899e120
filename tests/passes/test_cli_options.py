"""The command-line side of the passes: -O/--passes/--after for `compile --emit graph`, and
`nndsl bench` (its report, not its speed: no timing thresholds)."""
from __future__ import annotations

import argparse

import pytest

import nndsl
from nndsl.passes import DEFAULT_LEVEL, PassError
from nndsl.cli import passes as pcli

MODEL = """
model Net {
  input x: [batch, 2]
  output y = x -> dense(8) -> identity -> relu -> dense(2)
}
train fit {
  data ring_gaussians(modes=4, batch=16)
  model net = Net()
  loss l = mse(data.x -> net, data.x)
  step net minimize l with sgd(lr=0.1)
  iterations 2
}
"""


def parse(*argv):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser("compile")
    c.add_argument("file")
    pcli.add_options(c)
    pcli.add_bench_parser(sub)
    return p.parse_args(list(argv))


@pytest.fixture
def nn_file(tmp_path):
    path = tmp_path / "m.nn"
    path.write_text(MODEL)
    return path


def test_options_parse_levels_lists_and_after():
    a = parse("compile", "f.nn", "-O2", "--after", "cse", "--after", "dce")
    assert (a.opt_level, a.passes, a.after) == (2, None, ["cse", "dce"])
    a = parse("compile", "f.nn", "--passes", "cse, dce")
    assert a.passes == ["cse", "dce"] and pcli.program_options(a) == {"opt_level": DEFAULT_LEVEL, "passes": ["cse", "dce"]}
    assert not pcli.wants_passes(parse("compile", "f.nn"))
    with pytest.raises(SystemExit):
        parse("compile", "f.nn", "-O3")


def test_graph_text_is_the_built_graph_without_options_and_the_optimized_one_with_them():
    model = nndsl.loads(MODEL).model("Net")
    assert "identity" in pcli.graph_text(model, parse("compile", "f.nn"))
    assert "identity" not in pcli.graph_text(model, parse("compile", "f.nn", "-O1"))
    shown = pcli.graph_text(model, parse("compile", "f.nn", "--passes", "simplify,dce", "--after", "all"))
    assert shown.count("// after ") == 2 and shown.index("// after simplify") < shown.index("// after dce")
    with pytest.raises(PassError, match="cannot print after `fuse-parallel-dense`"):
        pcli.graph_text(model, parse("compile", "f.nn", "-O1", "--after", "fuse-parallel-dense"))


def test_apply_options_sets_the_programs_level():
    prog = nndsl.loads(MODEL)
    pcli.apply_options(prog, parse("compile", "f.nn", "-O0"))
    assert (prog.opt_level, prog.passes) == (0, None)


@pytest.mark.parametrize("target, what", [("Net", "model Net (inference)"), (None, "train fit (batch 16)")])
def test_bench_reports_every_compile_phase_step_time_and_flops(nn_file, capsys, target, what):
    argv = ["bench", str(nn_file)] + ([target, "--batch", "4"] if target else []) + ["--reps", "2", "-O1"]
    assert pcli.cmd_bench(parse(*argv)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{what} on cpu")
    for phase in ("parse", "check", "passes", "lowering", "xla", "total"):
        assert f"\n  {phase} " in out
    assert "step time (median): " in out and "% of matmul peak" in out
    assert "-O1: simplify fold-constants cse dce" in out
