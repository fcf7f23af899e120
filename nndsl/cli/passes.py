"""Command-line options for the passes and `nndsl bench`.

    nndsl compile FILE --emit graph -O2            the graph after -O2
    nndsl compile FILE --emit graph -O2 --after fuse-parallel-dense
    nndsl compile FILE --passes cse,dce --emit jaxpr
    nndsl bench FILE [MODEL|TRAIN] -O2 --batch 64
"""
from __future__ import annotations

import argparse
import copy

from ..bench import run
from ..ir.printer import print_graph
from ..passes import DEFAULT_LEVEL, optimize
from .common import dims, kv


def add_options(p: argparse.ArgumentParser) -> None:
    """-O0/-O1/-O2, --passes a,b,c, --after PASS, --verify-passes."""
    p.add_argument("-O", "--opt-level", dest="opt_level", type=int, choices=[0, 1, 2], default=None,
                   metavar="LEVEL", help="optimization level: -O0 none (XLA's defaults), -O1 cheap rewrites "
                   "and the platform's XLA options, -O2 (default) also the fusions, loop and "
                   "convolution rewrites measured faster on this platform")
    p.add_argument("--passes", type=_names, default=None, metavar="A,B,C",
                   help="run exactly these passes, in order (an unknown name lists them)")
    p.add_argument("--after", action="append", default=[], metavar="PASS",
                   help="print the graph after PASS (repeatable; `all` for every pass)")
    p.add_argument("--verify-passes", action="store_true", help="check the IR after every pass")


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def program_options(a) -> dict:
    """Keyword arguments for nndsl.load: the optimization the command line asked for."""
    level = a.opt_level if a.opt_level is not None else DEFAULT_LEVEL
    return {"opt_level": level, "passes": a.passes}


def wants_passes(a) -> bool:
    return a.opt_level is not None or a.passes is not None or bool(a.after) or a.verify_passes


def apply_options(prog, a) -> None:
    """Gives a loaded program the optimization the command line asked for (if it asked)."""
    if wants_passes(a):
        opts = program_options(a)
        prog.opt_level, prog.passes = opts["opt_level"], opts["passes"]


def graph_text(model, a, spans: bool = False) -> str:
    """`compile --emit graph`: the graph as built, or after the requested passes; with --after,
    the graph after each named pass (to stdout, in pipeline order)."""
    g = model.graph()
    if not wants_passes(a):
        return print_graph(g, spans=spans)
    opts = program_options(a)
    shown: list[str] = []
    g = optimize(copy.deepcopy(g), opts["opt_level"], opts["passes"], False, verify=a.verify_passes or None,
                 print_after=a.after, out=shown.append)
    return "\n".join(shown) if a.after else print_graph(g, spans=spans)


def add_bench_parser(sub) -> argparse.ArgumentParser:
    c = sub.add_parser("bench", help="compile-time breakdown, step time and achieved FLOP/s")
    c.add_argument("file")
    c.add_argument("target", nargs="?", metavar="MODEL|TRAIN",
                   help="a model or train block (default: the only train block, else the last model)")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="a static argument")
    c.add_argument("--batch", type=int, help="batch size (default: the train block's, or 32)")
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of another symbolic dimension (default 16)")
    c.add_argument("--grad", action="store_true", help="time forward + backward of a model, not inference")
    c.add_argument("--reps", type=int, default=20, help="timed steps (the median is reported)")
    add_options(c)
    return c


def cmd_bench(a) -> int:
    opts = program_options(a)
    r = run(a.file, a.target, level=opts["opt_level"], passes=opts["passes"], args=kv(a.arg),
            batch=a.batch, dims=dims(a.dim, None), grad=a.grad, reps=a.reps)
    print(r.text())
    return 0
