"""The tooling subcommands: `nndsl fmt`, `nndsl graph`, `nndsl lsp`.

nndsl/cli.py adds them with `COMMANDS.update(register(sub))`; `python -m nndsl.tools ...` runs
them on their own. Exit codes as for the rest of the CLI: 0 ok, 1 an error (or, for `fmt --check`,
files that would change), 2 a usage error.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from ..errors import NndslError, run_command


def register(sub) -> dict:
    """Adds `fmt`, `graph` and `lsp` to an argparse subparsers object; returns name -> function."""
    c = sub.add_parser("fmt", help="rewrite .nn files in the canonical layout (comments kept)",
                       description="Rewrites files in place in one layout, as black and gofmt do; "
                       "`-` reads standard input and writes standard output. Folders are searched "
                       "for .nn files.")
    c.add_argument("files", nargs="+", metavar="FILE", help=".nn files or folders; - for standard input")
    c.add_argument("--check", action="store_true",
                   help="change nothing; list the files that would change and exit 1 if any")
    c.add_argument("--diff", action="store_true", help="change nothing; print what would change as a diff")

    c = sub.add_parser("graph", help="draw a model's or a train block's dataflow graph (Graphviz)",
                       description="Draws the dataflow graph: shapes on edges, sub-models as clusters, "
                       "cells with their recurrence. With --train, a train block: which step updates "
                       "which model and which losses read which outputs.")
    c.add_argument("file")
    c.add_argument("model", nargs="?", help="the model to draw (default: the file's last model, or its "
                   "only train block)")
    c.add_argument("--train", metavar="NAME", help="draw this train block instead of a model")
    c.add_argument("-o", "--output", metavar="OUT", help="OUT.dot, .gv, .svg, .png or .pdf "
                   "(default: DOT text on standard output)")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="a static argument")
    c.add_argument("--depth", type=int, metavar="N", help="draw sub-models deeper than N levels as single "
                   "boxes (default: all levels for a model, 0 for a train block)")
    c.add_argument("--after", metavar="PASS", help="the graph after this pass of the -O pipeline")
    c.add_argument("-O", "--opt-level", dest="opt_level", type=int, choices=[0, 1, 2], metavar="LEVEL",
                   help="the pass pipeline for --after (default -O2)")
    c.add_argument("--passes", metavar="A,B,C", help="run exactly these passes (with --after: up to it)")
    c.add_argument("--rankdir", choices=["TB", "LR"], default="TB", help="top to bottom (default) or left "
                   "to right")

    c = sub.add_parser("lsp", help="run the language server on standard input and output (for editors)",
                       description="A Language Server Protocol server: diagnostics as one types and each "
                       "value's inferred shape on hover. Editors start it as `nndsl lsp`.")
    c.add_argument("--tcp", metavar="PORT", type=int, help="listen on a TCP port instead of standard I/O")
    return {"fmt": cmd_fmt, "graph": cmd_graph, "lsp": cmd_lsp}


# ---------------------------------------------------------------------- fmt
def _nn_files(args: list[str]) -> list[str]:
    out = []
    for a in args:
        p = Path(a)
        if a != "-" and p.is_dir():
            out.extend(str(f) for f in sorted(p.rglob("*.nn")))
        else:
            out.append(a)
    return out


def cmd_fmt(a) -> int:
    from .fmt import format_text
    files = _nn_files(a.files)
    changed, failed, same = [], 0, 0
    for f in files:
        try:
            if f == "-":
                text = sys.stdin.read()
            else:
                from ..frontend import read_source
                text = read_source(Path(f))
            out = format_text(text, "<stdin>" if f == "-" else f)
        except NndslError as e:
            print(str(e), file=sys.stderr)
            failed += 1
            continue
        if f == "-" and not (a.check or a.diff):
            sys.stdout.write(out)
            continue
        if out == text:
            same += 1
            continue
        changed.append(f)
        if a.diff:
            name = "<stdin>" if f == "-" else f
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), out.splitlines(True),
                                                       f"{name} (original)", f"{name} (formatted)"))
        elif a.check:
            print(f"would reformat {f}")
        else:
            Path(f).write_text(out)
            print(f"reformatted {f}", file=sys.stderr)
    if files != ["-"] or a.check or a.diff:
        verb = "would be reformatted" if (a.check or a.diff) else "reformatted"
        parts = [f"{len(changed)} file{'s' if len(changed) != 1 else ''} {verb}"]
        if same:
            parts.append(f"{same} unchanged")
        if failed:
            parts.append(f"{failed} could not be read or parsed")
        print(", ".join(parts), file=sys.stderr)
    return 1 if failed or ((a.check or a.diff) and changed) else 0


# ---------------------------------------------------------------------- graph
def _pick(prog, name: str | None) -> tuple[str, str]:
    """("model" or "train", name): the named model, else the last model of the file itself, else
    its only train block."""
    if name:
        return "model", name
    defs = prog.defs.definitions
    entry = [m for m in prog.models if defs[m].kind == "model" and defs[m].span.source.name == prog.defs.entry]
    if entry:
        return "model", entry[-1]
    trains = [t for t in prog.trains if defs[t].span.source.name == prog.defs.entry]
    if len(trains) == 1:
        return "train", trains[0]
    raise NndslError("this file defines no model; name one, or a train block with --train", code="E215")


def _static_args(items: list[str]) -> dict:
    """--arg NAME=VALUE: numbers, strings and booleans as the language writes them."""
    from ..syntax import ast
    from ..syntax.parser import parse
    out = {}
    for item in items:
        if "=" not in item:
            raise NndslError(f"--arg takes NAME=VALUE, got `{item}`", code="E610")
        key, text = (x.strip() for x in item.split("=", 1))
        try:
            e = parse(f"model _A {{ output a = {text} }}").items[0].body[0].value
        except NndslError:
            e = None
        neg = isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, ast.Number)
        out[key] = (-e.operand.value if neg else e.value if isinstance(e, (ast.Number, ast.String, ast.Bool))
                    else text)
    return out


def cmd_graph(a) -> int:
    from ..api import load
    from .graphviz import model_picture, train_picture, write
    prog = load(a.file)
    if a.train is not None and a.model is not None:
        print("nndsl: error: give a model or --train, not both", file=sys.stderr)
        return 2
    kind, name = ("train", a.train) if a.train is not None else _pick(prog, a.model)
    if kind == "train":
        pic = train_picture(prog, name, depth=0 if a.depth is None else a.depth, rankdir=a.rankdir)
    else:
        model = prog.model(name, **_static_args(a.arg))
        passes = [p.strip() for p in a.passes.split(",") if p.strip()] if a.passes else None
        pic = model_picture(model, depth=a.depth, after=a.after, opt_level=a.opt_level, passes=passes,
                            rankdir=a.rankdir)
    result = write(pic, a.output)
    if a.output is None or a.output == "-":
        sys.stdout.write(result)
    else:
        print(f"wrote {result}")
    return 0


# ---------------------------------------------------------------------- lsp
def cmd_lsp(a) -> int:
    from .lsp import serve
    serve(tcp_port=a.tcp)
    return 0


# ---------------------------------------------------------------------- on their own
def main(argv=None) -> int:
    """`python -m nndsl.tools fmt|graph|lsp ...`, the same commands without nndsl/cli.py."""
    p = argparse.ArgumentParser(prog="python -m nndsl.tools")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    commands = register(sub)
    args = p.parse_args(argv)
    return run_command(commands[args.command], args)
