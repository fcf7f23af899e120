"""The `nndsl` command. Thin over the Python API: every subcommand is a few calls into it.

Exit codes: 0 ok, 1 errors in the user's program or run, 2 usage errors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ErrorGroup, NndslError

EPILOG = """examples:
  nndsl check model.nn                      report every error in a file
  nndsl summary examples/lenet5.nn LeNet5   layers, shapes, parameters, FLOPs
  nndsl train examples/lenet5.nn --out runs/lenet
  nndsl run examples/lenet5.nn LeNet5 --weights runs/lenet/net.safetensors --input x.npy --output y.npy
  nndsl compile model.nn --emit graph       the dataflow graph as text
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nndsl", description="A declarative language for neural networks, "
                                "checked like a compiler and compiled to JAX.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"nndsl {__import__('nndsl').__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("check", help="parse and check a file; report every error")
    c.add_argument("file")
    c.add_argument("--max-memory", type=_size, metavar="SIZE", help="refuse models whose parameters "
                   "exceed SIZE (e.g. 8GiB; default: this machine's memory)")
    c.add_argument("--format", choices=["text", "json"], default="text", help="diagnostics as text or JSON")
    _data_root_arg(c)

    c = sub.add_parser("compile", help="print a compilation stage: ast, graph, jaxpr or hlo")
    c.add_argument("file")
    c.add_argument("model", nargs="?", help="model to compile (default: the last model in the file)")
    c.add_argument("--emit", choices=["ast", "graph", "jaxpr", "hlo"], default="graph")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="a static argument")
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic dimension for jaxpr/hlo (default 1 for batch, 8 otherwise)")
    c.add_argument("--debug-spans", action="store_true", help="show source positions in the graph")
    from .passes.cli import add_bench_parser, add_options
    add_options(c)
    add_bench_parser(sub)

    c = sub.add_parser("summary", help="layers, output shapes, parameters, FLOPs and memory")
    c.add_argument("file")
    c.add_argument("--max-memory", type=_size, metavar="SIZE", help="refuse models whose parameters "
                   "exceed SIZE (e.g. 8GiB; default: this machine's memory)")
    c.add_argument("model", nargs="?")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    c.add_argument("--batch", type=_positive_int, default=1, help="batch size for FLOPs and activation memory")
    c.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic dimension (e.g. time=32); repeat for several")
    c.add_argument("--plot", metavar="PNG", help="also draw parameters and FLOPs per layer (needs matplotlib)")
    c.add_argument("--depth", type=int, metavar="N", help="fold sub-models deeper than N levels into one row "
                   "each, and runs of identical blocks into one row with a count (default: every layer)")

    c = sub.add_parser("train", help="run a train block; save weights (safetensors) and history (JSON)")
    c.add_argument("file")
    c.add_argument("--max-memory", type=_size, metavar="SIZE", help="refuse models whose parameters "
                   "exceed SIZE (e.g. 8GiB; default: this machine's memory)")
    c.add_argument("train", nargs="?", help="train block (default: the only one)")
    c.add_argument("--epochs", type=int)
    c.add_argument("--iterations", type=int)
    c.add_argument("--seed", type=int)
    c.add_argument("--clip-norm", type=_positive_float, help="clip gradients to this global norm (> 0)")
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

    c = sub.add_parser("sample", help="generate text with a trained character model (one-to-many)")
    c.add_argument("file")
    c.add_argument("train", nargs="?", help="the train block that trained it (default: the only one)")
    c.add_argument("--weights", required=True, help="the model instance's .safetensors from `nndsl train`")
    c.add_argument("--model", help="model instance in the train block (default: the only one)")
    c.add_argument("--prompt", default="", help="text to start from")
    c.add_argument("--length", type=int, default=300, help="characters to generate")
    c.add_argument("--temperature", type=float, default=0.8, help="0 = always the likeliest character")
    c.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("plot", help="draw curves from history.json files (needs matplotlib)")
    c.add_argument("history", nargs="+", help="history.json files; LABEL=PATH names a curve")
    c.add_argument("--metric", action="append", help="which series (default: all)")
    c.add_argument("-o", "--output", required=True, help="PNG file to write")
    c.add_argument("--title", default="")
    c.add_argument("--log", action="store_true", help="logarithmic y axis")

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

    c = sub.add_parser("run", help="apply a model to an input array (.npy) with saved weights, or run an "
                                   "exported model (FILE ends in .jaxexport)")
    c.add_argument("file")
    c.add_argument("--max-memory", type=_size, metavar="SIZE", help="refuse models whose parameters exceed SIZE "
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
    from .tools.commands import register
    COMMANDS.update(register(sub))
    from .onnx.cli import add_convert_parser, convert_cmd
    add_convert_parser(sub)
    COMMANDS["convert-weights"] = lambda a: convert_cmd(a, _load, _kv)
    for name in CACHED:  # the commands that compile: XLA's work is kept on disk between runs
        if name in sub.choices:
            sub.choices[name].add_argument(
                "--no-cache", action="store_true",
                help="do not use the compilation cache (also NNDSL_NO_CACHE=1; folder: NNDSL_CACHE_DIR)")
    return p


def _data_root_arg(c) -> None:
    c.add_argument("--data-root", action="append", default=[], metavar="DIR",
                   help="a folder outside the .nn file's own tree its `data` statements may read (repeat for "
                        "several; also NNDSL_DATA_ROOT)")


CACHED = ("train", "run", "sample", "export", "bench", "compile")


def _compilation_cache(args) -> None:
    from .lower import cache
    if args.command in CACHED and not getattr(args, "no_cache", False) and not cache.disabled_by_env():
        cache.enable()


def _static(text: str):
    from .syntax import ast
    from .syntax.parser import parse
    try:
        m = parse(f"model _A {{ output a = {text} }}")
        e = m.items[0].body[0].value
    except NndslError:
        return text
    if isinstance(e, (ast.Number, ast.String, ast.Bool)):
        return e.value
    if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, ast.Number):
        return -e.operand.value
    return text


def _kv(items, cast=_static) -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            raise SystemExit(_usage(f"expected NAME=VALUE, got {it!r}"))
        k, v = it.split("=", 1)
        out[k.strip()] = cast(v.strip())
    return out


def _usage(msg: str) -> int:
    print(f"nndsl: error: {msg}", file=sys.stderr)
    return 2


def _size(text: str) -> int:
    import re
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


def _positive_float(text: str) -> float:
    """A finite number above zero: `--clip-norm -1` would flip the gradient, nan would poison it."""
    import math
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return v


_MAX_MEMORY = [None]


def _load(path: str):
    from .api import load
    prog = load(path)
    prog.max_memory = _MAX_MEMORY[0]
    return prog


def _pick_model(prog, name):
    if name:
        return name
    models = [m for m in prog.models if prog.defs.definitions[m].kind == "model"]
    entry_models = [m for m in models if prog.defs.definitions[m].span.source.name == prog.defs.entry]
    pool = entry_models or models
    if not pool:
        raise NndslError("this file defines no model", code="E215")
    return pool[-1]


def cmd_check(a) -> int:
    from .api import check_report
    from .lint import lint
    warnings = []
    try:
        prog = _load(a.file)
        errors, warnings = check_report(prog)
        warnings = warnings + lint(prog.defs)
    except ErrorGroup as e:
        errors = e.errors
    except NndslError as e:
        errors = [e]
    diags = [d for e in errors for d in e.diagnostics]
    n_errors = len(diags)
    if not n_errors:  # with errors, a warning is mostly their echo (`x` unused because of a typo)
        diags += warnings
    diags.sort(key=lambda d: (d.span.source.name if d.span else "", d.span.line if d.span else 0,
                              d.span.col if d.span else 0))
    if a.format == "json":
        print(json.dumps({"file": a.file, "diagnostics": [d.to_json() for d in diags]}, indent=2))
    else:
        for d in diags:
            print(d.render(), file=sys.stderr)
        nw = len(diags) - n_errors
        summary = ", ".join(x for x in (_count(n_errors, "error"), _count(nw, "warning")) if x)
        if n_errors:
            print(f"error: {summary}", file=sys.stderr)
        else:
            parts = [_count(len(prog.models), "model or cell", "models and cells"),
                     _count(len(prog.trains), "train block")]
            print(f"{a.file}: ok ({', '.join(p for p in parts if p) or 'nothing defined'})"
                  f"{', ' + summary if nw else ''}")
            for name, src in prog.data_found.items():
                print(f"  {name}: {_data_line(src)}")
    return 1 if n_errors else 0


def _data_line(src) -> str:
    """The data a train block found, from listings and headers only: count, classes, shapes."""
    parts = [f"data {src.name}" + (f"(\"{_printable(src.args['path'])}\")" if "path" in src.args else "")]
    if src.count is not None:
        parts.append(f"{src.count[0]:,} examples" + (f" (+{src.count[1]:,} held out)" if src.count[1] else ""))
    if src.classes:
        shown = ", ".join(_printable(n) for n in src.classes[:10]) + (", ..." if len(src.classes) > 10 else "")
        parts.append(f"{len(src.classes)} classes ({shown})")
    parts.append(", ".join(f"{k} {t}" for k, t in src.fields.items()))
    return ": ".join(parts[:1]) + ": " + "; ".join(parts[1:])


def _printable(name: str) -> str:
    """A class name (a folder's name, a line of classes.json) with control characters escaped."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)


def _print_classes(weights: str, y) -> None:
    """With classes.json beside the weights (written by `nndsl train`), names the predicted class
    of each row of a [batch, classes] output."""
    import numpy as np
    from .io import load_json_list
    names = load_json_list(Path(weights).parent / "classes.json")
    y = np.asarray(y)
    if not names or y.ndim != 2 or y.shape[1] != len(names):
        return
    for i, k in enumerate(y.argmax(1)[:20]):
        print(f"  {i}: {_printable(names[int(k)])}")
    if len(y) > 20:
        print(f"  ... ({len(y) - 20:,} more)")


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}" if n else ""


def _with_dims(model, a):
    """`--dim NAME=SIZE`: the model with those symbolic dimensions fixed (nndsl/dims.py)."""
    if not getattr(a, "dim", None):
        return model
    try:
        dims = _kv(a.dim, int)
    except ValueError:
        raise NndslError(f"--dim takes NAME=SIZE with an integer size, got {a.dim}", code="E673") from None
    return model.with_dims(**dims)


def _concrete_types(model, dims: dict):
    from .ir.types import TensorType
    g = model.graph()
    out = []
    for i in g.inputs:
        t = g.node(i).type
        shape = tuple(d if isinstance(d, int) else int(dims.get(d, 1 if d == "batch" else 8)) for d in t.shape)
        out.append(TensorType(shape, t.dtype))
    return out


def cmd_compile(a) -> int:
    prog = _load(a.file)
    from .passes.cli import apply_options, graph_text
    apply_options(prog, a)
    if a.emit == "ast":
        from .syntax.parser import parse
        from .frontend import read_source
        print(_ast_text(parse(read_source(Path(a.file)), a.file)))
        return 0
    model = prog.model(_pick_model(prog, a.model), **_kv(a.arg))
    if a.emit == "graph":
        model = _with_dims(model, a)
        print(graph_text(model, a, spans=a.debug_spans))
        return 0
    import jax
    import jax.numpy as jnp
    try:
        dims = _kv(a.dim, int)
    except ValueError:
        return _usage(f"--dim takes NAME=SIZE with an integer size, got {a.dim}")
    types = _concrete_types(model, dims)
    xs = [jax.ShapeDtypeStruct(t.shape, jnp.dtype(t.dtype)) for t in types]
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *xs))
    fn = lambda v, *x: model.apply(v, *x)
    if a.emit == "jaxpr":
        print(jax.make_jaxpr(fn)(variables, *xs))
    else:
        print(jax.jit(fn).lower(variables, *xs).as_text())
    return 0


def _ast_text(node, indent=0) -> str:
    from dataclasses import fields, is_dataclass
    pad = "  " * indent
    if is_dataclass(node):
        parts = [f"{pad}{type(node).__name__}"]
        for f in fields(node):
            if f.name in ("span", "name_span", "text"):
                continue
            v = getattr(node, f.name)
            if is_dataclass(v) or (isinstance(v, tuple) and v and is_dataclass(v[0])):
                parts.append(f"{pad}  {f.name}:")
                for x in (v if isinstance(v, tuple) else (v,)):
                    parts.append(_ast_text(x, indent + 2))
            else:
                parts.append(f"{pad}  {f.name}: {v!r}")
        return "\n".join(parts)
    return f"{pad}{node!r}"


def cmd_summary(a) -> int:
    from .summary import summarize
    prog = _load(a.file)
    model = _with_dims(prog.model(_pick_model(prog, a.model), **_kv(a.arg)), a)
    if a.depth is not None and a.depth < 0:
        return _usage("--depth must be 0 or more")
    info = summarize(model, a.batch, depth=a.depth)
    if a.plot:
        from .plots import plot_layers
        from .summary import group_rows
        print(f"wrote {plot_layers(group_rows(info['rows'], a.depth), a.plot, model.name)}")
    return 0


def cmd_train(a) -> int:
    from .io import save_json, save_variables
    if a.epochs is not None and a.iterations is not None:
        return _usage("give --epochs or --iterations, not both")
    for flag in ("epochs", "iterations", "checkpoint_every", "keep"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            return _usage(f"--{flag.replace('_', '-')} must be at least 1")
    prog = _load(a.file)
    _platform(a.platform)
    if a.coordinator:
        from .distributed import initialize
        if a.num_processes is None or a.process_id is None:
            return _usage("--coordinator needs --num-processes and --process-id")
        initialize(a.coordinator, a.num_processes, a.process_id)
    trainer = prog.trainer(a.train, epochs=a.epochs, iterations=a.iterations, seed=a.seed,
                           clip_norm=a.clip_norm, devices=a.devices, mesh=_mesh_arg(a.mesh),
                           precision=a.precision)
    out = Path(a.out or Path("runs") / trainer.name)
    from .distributed import is_main
    from .train import watch
    from .train.runfolder import RunFolder
    folder = RunFolder(out)  # checked, and locked against a second run, before the first step
    if is_main():
        folder.open()
    try:
        ckpt_dir = out / "checkpoints" if a.checkpoint_every else None
        progress = "json" if a.log_format == "json" else "text" if a.no_progress else True
        hooks = [watch.TensorBoard(out)] if not a.no_tensorboard and is_main() and watch.tensorboard_available() \
            else []
        result = trainer.fit(progress=progress, on_nan=a.on_nan, checkpoint_dir=ckpt_dir,
                             checkpoint_every=a.checkpoint_every, keep=a.keep, resume=a.resume,
                             sample_dir=out / "samples" if trainer.spec.samples else None, callbacks=hooks)
        if not is_main():  # every process holds the same replicated result; process 0 writes it
            return 130 if result.interrupted else 0

        def write(d: Path) -> None:
            for name, v in result.variables.items():
                save_variables(d / f"{name}.safetensors", v)
            save_json(d / "history.json", result.history)
            if trainer.spec.data is not None and trainer.spec.data.classes:
                save_json(d / "classes.json", trainer.spec.data.classes)  # `nndsl run` prints these names
        folder.save(write)
    finally:
        folder.close()
    _loss_curves(out, result.history, set(trainer.spec.losses), set(trainer.spec.metrics))
    last = {k: round(v[-1], 4) for k, v in result.history.items() if v}
    if a.log_format == "json":
        print(json.dumps({"event": "end", "train": trainer.name, "interrupted": result.interrupted,
                          "seconds": round(result.seconds, 2),
                          "metrics": {k: watch.json_float(v) for k, v in last.items()}, "out": str(out),
                          "saved": [f"{n}.safetensors" for n in result.variables] + ["history.json"]}))
        return 130 if result.interrupted else 0
    status = "interrupted; saved what was trained" if result.interrupted else "done"
    print(f"{trainer.name}: {status} in {result.seconds:.1f}s  " + "  ".join(f"{k}={v}" for k, v in last.items()))
    print(f"saved {', '.join(f'{n}.safetensors' for n in result.variables)} and history.json to {out}")
    return 130 if result.interrupted else 0


def _mesh_arg(text: str | None) -> dict | None:
    if not text:
        return None
    try:
        return {k.strip(): int(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise SystemExit(_usage(f"--mesh takes AXIS=N,... (e.g. data=2,model=2), got {text!r}")) from None


def _platform(name: str | None) -> None:
    if not name:
        return
    import jax
    try:
        jax.config.update("jax_platforms", name)
        jax.devices(name)
    except RuntimeError as e:
        raise NndslError(f"platform `{name}` is not available here ({str(e).splitlines()[0]})", code="E706",
                         help="for NVIDIA GPUs: pip install 'jax[cuda12]'") from None


def _loss_curves(out: Path, history: dict, losses: set | None = None, metrics: set | None = None) -> None:
    """curves.png beside history.json when matplotlib is there; training never fails for a plot,
    but a missing picture is said once (on stderr, so a JSON log stays JSON)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("note: matplotlib is not installed, so no curves.png (pip install 'nndsl[plot]', or draw "
              "history.json later with `nndsl plot`)", file=sys.stderr)
        return
    from .plots import plot_histories
    if history:
        try:
            plot_histories({"": history}, None, out / "curves.png", title=str(out.name), losses=losses,
                           metrics=metrics)
        except OSError:  # a full disk after the weights were saved: the plot is the one thing missing
            print(f"warning: could not write {out / 'curves.png'}", file=sys.stderr)


def cmd_export(a) -> int:
    from .export import export_model, export_train_step
    from .io import load_variables
    prog = _load(a.file)
    if a.format == "onnx":
        from .onnx.cli import export_onnx_cmd
        return export_onnx_cmd(prog, a, _kv(a.arg))
    if a.train:
        out = export_train_step(prog.trainer(a.model), a.output)
    else:
        model = _with_dims(prog.model(a.model, **_kv(a.arg)), a)
        variables = load_variables(a.weights) if a.weights else {"params": {}, "state": {}}
        g = model.graph()
        if g.params or g.state:
            if not a.weights:
                raise NndslError(f"`{a.model}` has parameters: give --weights", code="E604")
            _check_model_weights(model, variables)
        out = export_model(model, variables, a.output)
    print(f"wrote {out}")
    return 0


def _read_inputs(paths: list) -> list:
    """`--input` files as arrays (.npy, no pickles, regular files only)."""
    from .io import read_array
    return [read_array(path) for path in paths]


def _save_outputs(path: str, y, names: list | None = None) -> None:
    """Exactly the named file: one output as .npy or .npz, several only as .npz (nndsl/io.py)."""
    from .io import save_outputs
    print(save_outputs(path, y, names))


def _run_exported(a) -> int:
    from .export import load_exported
    from .io import check_output
    check_output(a.output)
    fn, names = load_exported(a.file)
    xs = _read_inputs(a.input)
    if len(xs) != len(names):
        raise NndslError(f"the exported model takes {len(names)} inputs ({', '.join(names)}), given {len(xs)}",
                         code="E328")
    try:
        y = fn(*xs)
    except Exception as e:  # shape or dtype mismatch with the exported signature
        raise NndslError(f"the exported model cannot take these inputs: {str(e).splitlines()[0]}",
                         code="E616") from None
    _save_outputs(a.output, y)
    return 0


def cmd_run(a) -> int:
    from .io import load_variables
    if a.file.endswith(".jaxexport"):
        return _run_exported(a)
    if not a.model:
        return _usage("run needs MODEL (or an exported .jaxexport file)")
    prog = _load(a.file)
    model = _with_dims(prog.model(a.model, **_kv(a.arg)), a)
    variables = load_variables(a.weights) if a.weights else {"params": {}, "state": {}}
    xs = _read_inputs(a.input)
    from .dims import check_inputs
    check_inputs(model, xs)
    g = model._graph_for(xs)
    _check_weights(g, variables)
    from .io import check_output
    check_output(a.output, list(g.outputs) if len(g.outputs) > 1 else None)  # refused before running
    from .dims import random_key
    y = model.apply(variables, *xs, rngs=random_key(g, a.seed))
    _save_outputs(a.output, y, list(g.outputs))
    if a.weights and not isinstance(y, dict):
        _print_classes(a.weights, y)
    return 0


def _check_weights(g, variables):
    from .lower.interpret import get_path
    for kind, specs in (("params", g.params), ("state", g.state)):
        for path, spec in specs.items():
            try:
                arr = get_path(variables[kind], path)
            except (KeyError, TypeError):
                raise NndslError(f"the weights have no {kind} `{'/'.join(path)}` (were they trained for "
                                 "this model?)", code="E604") from None
            if len(arr.shape) != len(spec.shape) or any(isinstance(d, int) and d != n
                                                         for d, n in zip(spec.shape, arr.shape)):
                raise NndslError(f"weights `{'/'.join(path)}` have shape {list(arr.shape)}, the model "
                                 f"needs {list(spec.shape)}", code="E605")
            _check_weight_dtype(path, arr, spec)


def _check_weight_dtype(path, arr, spec) -> None:
    """Only shapes were compared before: int32 or bool tensors then ran as weights, silently
    truncated or turned into 0/1. A float parameter takes any float width; nothing else."""
    import numpy as np
    kind = np.dtype(arr.dtype).kind
    want_float = str(spec.dtype).startswith(("float", "bfloat"))
    if (kind == "f" or str(arr.dtype) == "bfloat16") != want_float:
        raise NndslError(f"weights `{'/'.join(path)}` hold {arr.dtype} values, the model needs "
                         f"{spec.dtype}", code="E620",
                         help="the file was not written by `nndsl train` for this model, or was converted wrongly")


def _check_model_weights(model, variables) -> None:
    """`run`'s check (E604/E605) for commands that have no inputs to build the graph from:
    sizes a caller decides are not compared."""
    from .values import NeedsConcrete
    try:
        g = model.graph()
    except NeedsConcrete:
        return
    _check_weights(g, variables)


def cmd_sample(a) -> int:
    from .io import load_variables
    from .sample import generate
    prog = _load(a.file)
    trainer = prog.trainer(a.train)
    spec = trainer.spec
    if spec.data is None or spec.data.vocab is None:
        raise NndslError(f"train block `{spec.name}` does not read a text (`data text(...)`), so there is "
                         "no vocabulary to sample from", spec.span, code="E607")
    names = list(spec.models)
    inst = a.model or (names[0] if len(names) == 1 else None)
    if inst not in spec.models:
        raise NndslError(f"name the model instance to sample with --model ({', '.join(names)})", code="E608")
    mname, margs = spec.models[inst]
    model = prog.model(mname, **margs)
    variables = load_variables(a.weights)
    _check_model_weights(model, variables)
    if a.length < 1:
        return _usage("--length must be at least 1")
    print(generate(model, variables, spec.data.vocab, a.prompt, a.length, a.temperature, a.seed))
    return 0


def cmd_plot(a) -> int:
    from .plots import load_history, plot_histories
    runs = {}
    for h in a.history:
        label, _, path = h.rpartition("=") if "=" in h else (Path(h).parent.name or h, "", h)
        runs[label] = load_history(path)
    out = plot_histories(runs, a.metric, a.output, a.title, a.log)
    print(f"wrote {out}")
    return 0


COMMANDS = {"check": cmd_check, "compile": cmd_compile, "summary": cmd_summary, "train": cmd_train, "sample": cmd_sample, "plot": cmd_plot, "export": cmd_export,
            "run": cmd_run}


def _bench(a) -> int:
    from .passes.cli import cmd_bench
    return cmd_bench(a)


COMMANDS["bench"] = _bench


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    _MAX_MEMORY[0] = getattr(args, "max_memory", None)
    from .data import paths
    paths.grant(getattr(args, "data_root", None) or ())
    paths.set_memory(_MAX_MEMORY[0])
    _compilation_cache(args)
    try:
        return COMMANDS[args.command](args)
    except NndslError as e:
        print(str(e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nndsl ... | head`: the reader left; that is not an error
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (TypeError, ValueError) as e:
        if args.command == "run":
            print(f"nndsl: error: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
