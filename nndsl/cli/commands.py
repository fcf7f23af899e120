"""The `nndsl` subcommands. Thin over the Python API: every subcommand is a few calls into it.

Exit codes: 0 ok, 1 errors in the user's program or run, 2 usage errors.
"""
from __future__ import annotations

import json
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..api import check_report
from ..dims import check_inputs, random_key
from ..distributed import initialize, is_main
from ..errors import ErrorGroup, NndslError
from ..export import export_model, export_train_step, load_exported
from ..frontend import read_source
from ..io import check_output, load_json_list, load_variables, read_array, save_json, save_outputs, save_variables
from ..ir.types import TensorType
from ..lint import lint
from ..lower.interpret import get_path
from ..plots import load_history, plot_histories, plot_layers
from ..sample import generate
from ..summary import group_rows, summarize
from ..syntax.parser import parse
from ..train import watch
from ..train.runfolder import RunFolder
from ..values import NeedsConcrete
from .common import dims, kv, load_program, pick_model, usage, with_dims
from .onnx import convert_cmd, export_onnx_cmd
from .passes import apply_options, cmd_bench, graph_text


def cmd_check(a) -> int:
    warnings = []
    try:
        prog = load_program(a.file)
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


def _concrete_types(model, dims: dict):
    g = model.graph()
    out = []
    for i in g.inputs:
        t = g.node(i).type
        shape = tuple(d if isinstance(d, int) else int(dims.get(d, 1 if d == "batch" else 8)) for d in t.shape)
        out.append(TensorType(shape, t.dtype))
    return out


def cmd_compile(a) -> int:
    prog = load_program(a.file)
    apply_options(prog, a)
    if a.emit == "ast":
        print(_ast_text(parse(read_source(Path(a.file)), a.file)))
        return 0
    model = prog.model(pick_model(prog, a.model), **kv(a.arg))
    if a.emit == "graph":
        model = with_dims(model, a)
        print(graph_text(model, a, spans=a.debug_spans))
        return 0
    types = _concrete_types(model, dims(a.dim, None))
    xs = [jax.ShapeDtypeStruct(t.shape, jnp.dtype(t.dtype)) for t in types]
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), *xs))
    fn = model.apply
    if a.emit == "jaxpr":
        print(jax.make_jaxpr(fn)(variables, *xs))
    else:
        print(jax.jit(fn).lower(variables, *xs).as_text())
    return 0


def _ast_text(node, indent=0) -> str:
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
    prog = load_program(a.file)
    model = with_dims(prog.model(pick_model(prog, a.model), **kv(a.arg)), a)
    if a.depth is not None and a.depth < 0:
        return usage("--depth must be 0 or more")
    info = summarize(model, a.batch, depth=a.depth)
    if a.plot:
        print(f"wrote {plot_layers(group_rows(info['rows'], a.depth), a.plot, model.name)}")
    return 0


def cmd_train(a) -> int:
    if a.epochs is not None and a.iterations is not None:
        return usage("give --epochs or --iterations, not both")
    for flag in ("epochs", "iterations", "checkpoint_every", "keep"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            return usage(f"--{flag.replace('_', '-')} must be at least 1")
    prog = load_program(a.file)
    _platform(a.platform)
    if a.coordinator:
        if a.num_processes is None or a.process_id is None:
            return usage("--coordinator needs --num-processes and --process-id")
        initialize(a.coordinator, a.num_processes, a.process_id)
    trainer = prog.trainer(a.train, epochs=a.epochs, iterations=a.iterations, seed=a.seed,
                           clip_norm=a.clip_norm, devices=a.devices, mesh=_mesh_arg(a.mesh),
                           precision=a.precision)
    out = Path(a.out or Path("runs") / trainer.name)
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
        raise SystemExit(usage(f"--mesh takes AXIS=N,... (e.g. data=2,model=2), got {text!r}")) from None


def _platform(name: str | None) -> None:
    if not name:
        return
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
    if history:
        try:
            plot_histories({"": history}, None, out / "curves.png", title=str(out.name), losses=losses,
                           metrics=metrics)
        except OSError:  # a full disk after the weights were saved: the plot is the one thing missing
            print(f"warning: could not write {out / 'curves.png'}", file=sys.stderr)


def cmd_export(a) -> int:
    prog = load_program(a.file)
    if a.format == "onnx":
        return export_onnx_cmd(prog, a, kv(a.arg))
    if a.train:
        out = export_train_step(prog.trainer(a.model), a.output)
    else:
        model = with_dims(prog.model(a.model, **kv(a.arg)), a)
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
    return [read_array(path) for path in paths]


def _save_outputs(path: str, y, names: list | None = None) -> None:
    """Exactly the named file: one output as .npy or .npz, several only as .npz (nndsl/io.py)."""
    print(save_outputs(path, y, names))


def _run_exported(a) -> int:
    check_output(a.output)
    fn, names = load_exported(a.file)
    xs = _read_inputs(a.input)
    if len(xs) != len(names):
        raise NndslError(f"the exported model takes {len(names)} inputs ({', '.join(names)}), given {len(xs)}",
                         code="E328")
    try:
        y = fn(*xs)
    except Exception as e:  # noqa: BLE001 - shape or dtype mismatch with the exported signature
        raise NndslError(f"the exported model cannot take these inputs: {str(e).splitlines()[0]}",
                         code="E616") from None
    _save_outputs(a.output, y)
    return 0


def cmd_run(a) -> int:
    if a.file.endswith(".jaxexport"):
        return _run_exported(a)
    if not a.model:
        return usage("run needs MODEL (or an exported .jaxexport file)")
    prog = load_program(a.file)
    model = with_dims(prog.model(a.model, **kv(a.arg)), a)
    variables = load_variables(a.weights) if a.weights else {"params": {}, "state": {}}
    xs = _read_inputs(a.input)
    check_inputs(model, xs)
    g = model._graph_for(xs)
    _check_weights(g, variables)
    check_output(a.output, list(g.outputs) if len(g.outputs) > 1 else None)  # refused before running
    y = model.apply(variables, *xs, rngs=random_key(g, a.seed))
    _save_outputs(a.output, y, list(g.outputs))
    if a.weights and not isinstance(y, dict):
        _print_classes(a.weights, y)
    return 0


def _check_weights(g, variables):
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
    kind = np.dtype(arr.dtype).kind
    want_float = str(spec.dtype).startswith(("float", "bfloat"))
    if (kind == "f" or str(arr.dtype) == "bfloat16") != want_float:
        raise NndslError(f"weights `{'/'.join(path)}` hold {arr.dtype} values, the model needs "
                         f"{spec.dtype}", code="E620",
                         help="the file was not written by `nndsl train` for this model, or was converted wrongly")


def _check_model_weights(model, variables) -> None:
    """`run`'s check (E604/E605) for commands that have no inputs to build the graph from:
    sizes a caller decides are not compared."""
    try:
        g = model.graph()
    except NeedsConcrete:
        return
    _check_weights(g, variables)


def cmd_sample(a) -> int:
    prog = load_program(a.file)
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
        return usage("--length must be at least 1")
    print(generate(model, variables, spec.data.vocab, a.prompt, a.length, a.temperature, a.seed))
    return 0


def cmd_plot(a) -> int:
    runs = {}
    for h in a.history:
        label, _, path = h.rpartition("=") if "=" in h else (Path(h).parent.name or h, "", h)
        runs[label] = load_history(path)
    out = plot_histories(runs, a.metric, a.output, a.title, a.log)
    print(f"wrote {out}")
    return 0


# the subcommands by name; nndsl/cli/parser.py adds the tools' (fmt, graph, lsp)
COMMANDS = {"check": cmd_check, "compile": cmd_compile, "bench": cmd_bench, "summary": cmd_summary,
            "train": cmd_train, "sample": cmd_sample, "plot": cmd_plot, "export": cmd_export, "run": cmd_run,
            "convert-weights": convert_cmd}
