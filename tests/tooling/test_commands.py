"""The subcommands plug into nndsl's own argument parser without clashing."""
from __future__ import annotations

import argparse

from nndsl import cli
from nndsl.tools.commands import register


def test_register_adds_fmt_graph_lsp_to_the_cli_parser():
    p = cli._parser()  # the CLI wires register() in: the tools are ordinary subcommands
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"fmt", "graph", "lsp"} <= set(sub.choices)
    assert all(callable(cli.COMMANDS[c]) for c in ("fmt", "graph", "lsp"))
    fresh = argparse.ArgumentParser().add_subparsers(dest="command")
    commands = register(fresh)
    assert set(commands) == {"fmt", "graph", "lsp"} and all(callable(f) for f in commands.values())
    a = p.parse_args(["graph", "m.nn", "Net", "--train", "t", "-o", "g.svg", "--depth", "1"])
    assert (a.command, a.file, a.model, a.train, a.output, a.depth) == ("graph", "m.nn", "Net", "t", "g.svg", 1)
    a = p.parse_args(["fmt", "--check", "a.nn", "-"])
    assert a.files == ["a.nn", "-"] and a.check
    assert p.parse_args(["lsp"]).tcp is None
