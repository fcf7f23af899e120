"""The `nndsl` command line's arguments: one function per subcommand, all argparse in one place
(the pass options and `bench` in nndsl/cli/passes.py, `convert-weights` in nndsl/cli/onnx.py, the
tools' `fmt`, `graph` and `lsp` in nndsl/tools/commands.py)."""
from __future__ import annotations

import argparse
import math
import re

from .. import __version__
from ..tools.commands import register as register_tools
from .commands import COMMANDS
from .onnx import add_convert_parser
from .passes import add_bench_parser, add_options

EPILOG = """examples:
  nndsl check model.nn                      report every error in a file
  nndsl summary examples/lenet5.nn LeNet5   layers, shapes, parameters, FLOPs
  nndsl train examples/lenet5.nn --out runs/lenet
  nndsl run examples/lenet5.nn LeNet5 --weights runs/lenet/net.safetensors --input x.npy --output y.npy
  nndsl compile model.nn --emit graph       the dataflow graph as text
"""

CACHED = ("train", "run", "sample", "export", "bench", "compile")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nndsl", description="A declarative language for neural networks, "
                                "checked like a compiler and compiled to JAX.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"nndsl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _check(sub)
    _compile(sub)
    add_bench_parser(sub)
    for add in (_summary, _train, _sample, _plot, _export, _run):
        add(sub)
    COMMANDS.update(register_tools(sub))
    add_convert_parser(sub)
    for name in CACHED:  # the commands that compile: XLA's work is kept on disk between runs
        if name in sub.choices:
            sub.choices[name].add_argument(
                "--no-cache", action="store_true",
                help="do not use the compilation cache (also NNDSL_NO_CACHE=1; folder: NNDSL_CACHE_DIR)")
    return p


def _check(sub) -> None:
    """`nndsl check FILE`"""
    c = sub.add_parser("check", help="parse and check a file; report every error")
    c.add_argument("file")
    c.add_argument("--max-memory", type=size, metavar="SIZE", help="refuse models whose parameters "
                   "exceed SIZE (e.g. 8GiB; default: this machine's memory)")
    c.add_argument("--format", choices=["text", "json"], default="text", help="diagnostics as text or JSON")
    _data_root_arg(c)


def _compile(sub) -> None:
    """`nndsl compile FILE [MODEL] --emit ...` (with the pass options)"""
    c = sub.add_parser("compile", help="print a compilation stage: ast, graph, jaxpr or hlo")
    c.add_argument("file")
    c.add_argument("model", nargs="?", help="model to compile (default: the last model in the file)")
    c.add_argument("--emit", choices=["ast", "graph", "jaxpr", "hlo"], default="graph")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="a static argument")
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic dimension for jaxpr/hlo (default 1 for batch, 8 otherwise)")
    c.add_argument("--debug-spans", action="store_true", help="show source positions in the graph")
    add_options(c)


def _summary(sub) -> None:
    """`nndsl summary FILE [MODEL]`"""
    c = sub.add_parser("summary", help="layers, output shapes, parameters, FLOPs and memory")
    c.add_argument("file")
    c.add_argument("--max-memory", type=size, metavar="SIZE", help="refuse models whose parameters "
                   "exceed SIZE (e.g. 8GiB; default: this machine's memory)")
    c.add_argument("model", nargs="?")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    c.add_argument("--batch", type=positive_int, default=1, help="batch size for FLOPs and activation memory")
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic dimension (e.g. time=32); repeat for several")
    c.add_argument("--plot", metavar="PNG", help="also draw parameters and FLOPs per layer (needs matplotlib)")
    c.add_argument("--depth", type=int, metavar="N", help="fold sub-models deeper than N levels into one row "
                   "each, and runs of identical blocks into one row with a count (default: every layer)")


def _train(sub) -> None:
    """`nndsl train FILE [TRAIN]`"""
    c = sub.add_parser("train", help="run a train block; save weights (safetensors) and history (JSON)")
    c.add_argument("file")
    c.add_argument("--max-memory", type=size, metavar="SIZE", help="refuse models whose parameters "
                   "exceed SIZE (e.g. 8GiB; default: this machine's memory)")
    c.add_argument("train", nargs="?", help="train block (default: the only one)")
    c.add_argument("--epochs", type=int)
    c.add_argument("--iterations", type=int)
    c.add_argument("--seed", type=int)
    c.add_argument("--clip-norm", type=positive_float, help="clip gradients to this global norm (> 0)")
    c.add_argument("--precision", choices=["f32", "bf16", "f16"],
                   help="compute in bfloat16/float16 with float32 master weights (overrides the block's)")
    c.add_argument("--out", default=None, help="output folder (default: runs/<train block>)")
    c.add_argument("--on-nan", choices=["stop", "skip", "rollback"], default="stop",
                   help="a non-finite loss or gradient: stop (default), skip that update, or roll back to "
                        "the last checkpoint (needs --checkpoint-every)")
    c.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="save the whole training state every N iterations to OUT/checkpoints")
    c.add_argument("--keep", type=int, default=3, help="checkpoints to keep (default 3)")
    c.add_argument("--resume", metavar="DIR", help="continue exactly from the newest good checkpoint in DIR")
    c.add_argument("--devices", type=int, help="data-parallel over N devices (batch split on a mesh axis `data`)")
    c.add_argument("--mesh", metavar="AXIS=N,...", help="a device mesh with named axes, e.g. data=2,model=2, "
                   "for the program's sharding annotations")
    c.add_argument("--platform", choices=["cpu", "gpu", "tpu"], help="run on this platform (error if missing)")
    c.add_argument("--coordinator", metavar="HOST:PORT", help="multi-host: the address of process 0")
    c.add_argument("--num-processes", type=int, help="multi-host: how many processes take part")
    c.add_argument("--process-id", type=int, help="multi-host: this process's index (0 writes the outputs)")
    c.add_argument("--no-progress", action="store_true", help="no progress bar: one plain line per report "
                   "(the default when the output is not a terminal)")
    c.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="json: one JSON object per report (and one at the end) on standard output")
    c.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files to --out "
                   "(written by default when tensorboardX is installed)")
    _data_root_arg(c)


def _sample(sub) -> None:
    """`nndsl sample FILE [TRAIN]`"""
    c = sub.add_parser("sample", help="generate text with a trained character model (one-to-many)")
    c.add_argument("file")
    c.add_argument("train", nargs="?", help="the train block that trained it (default: the only one)")
    c.add_argument("--weights", required=True, help="the model instance's .safetensors from `nndsl train`")
    c.add_argument("--model", help="model instance in the train block (default: the only one)")
    c.add_argument("--prompt", default="", help="text to start from")
    c.add_argument("--length", type=int, default=300, help="characters to generate")
    c.add_argument("--temperature", type=float, default=0.8, help="0 = always the likeliest character")
    c.add_argument("--seed", type=int, default=0)


def _plot(sub) -> None:
    """`nndsl plot HISTORY...`"""
    c = sub.add_parser("plot", help="draw curves from history.json files (needs matplotlib)")
    c.add_argument("history", nargs="+", help="history.json files; LABEL=PATH names a curve")
    c.add_argument("--metric", action="append", help="which series (default: all)")
    c.add_argument("-o", "--output", required=True, help="PNG file to write")
    c.add_argument("--title", default="")
    c.add_argument("--log", action="store_true", help="logarithmic y axis")


def _export(sub) -> None:
    """`nndsl export FILE MODEL`"""
    c = sub.add_parser("export", help="serialize a model with its weights (jax.export, StableHLO, symbolic batch)")
    c.add_argument("file")
    c.add_argument("model", help="model to export, or with --train the train block whose step to export")
    c.add_argument("--weights", help=".safetensors from `nndsl train` (none for a model without parameters)")
    c.add_argument("--train", action="store_true", help="export one training iteration of the train block MODEL")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    c.add_argument("--format", choices=["jaxexport", "onnx"], default="jaxexport",
                   help="onnx: an ONNX file (opset 17, symbolic batch); weights default to fresh ones")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic dimension besides the batch (e.g. time=32)")


def _run(sub) -> None:
    """`nndsl run FILE [MODEL]`"""
    c = sub.add_parser("run", help="apply a model to an input array (.npy) with saved weights, or run an "
                                   "exported model (FILE ends in .jaxexport)")
    c.add_argument("file")
    c.add_argument("--max-memory", type=size, metavar="SIZE", help="refuse models whose parameters exceed SIZE "
                   "(e.g. 8GiB; default: this machine's memory)")
    c.add_argument("model", nargs="?")
    c.add_argument("--weights", help=".safetensors or .npz written by `nndsl train` (none for a "
                   "model without parameters)")
    c.add_argument("--input", required=True, action="append", help=".npy input (repeat for several)")
    c.add_argument("--output", required=True, help=".npy (one output) or .npz (several)")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size a symbolic dimension must have in the inputs (e.g. time=32)")
    c.add_argument("--seed", type=int, help="key for a model that samples (`sample`; default 0)")


def _data_root_arg(c) -> None:
    c.add_argument("--data-root", action="append", default=[], metavar="DIR",
                   help="a folder outside the .nn file's own tree its `data` statements may read (repeat for "
                        "several; also NNDSL_DATA_ROOT)")


def size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTP]?)(i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 8GiB or 500MB)")
    scale = {"": 1, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5}[m.group(2).upper()]
    base = 1024 if (m.group(3) or "").lower() == "ib" or not m.group(3) else 1000
    try:
        n = int(float(m.group(1)) * base ** scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 8GiB or 500MB)") from None
    if n < 1:  # 0 would read as "no limit" further down: refuse it rather than mean the opposite
        raise argparse.ArgumentTypeError(f"a memory limit must be at least 1 byte, got {text!r}")
    return n


def positive_float(text: str) -> float:
    """A finite number above zero: `--clip-norm -1` would flip the gradient, nan would poison it."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return v
