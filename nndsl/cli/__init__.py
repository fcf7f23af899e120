"""The `nndsl` command: every argparse parser of the project lives in this package (parser.py and
the parsers of passes.py and onnx.py); the subcommands are thin over the Python API (commands.py).

Exit codes: 0 ok, 1 errors in the user's program or run, 2 usage errors.
"""
from __future__ import annotations

import sys

from ..data import paths
from ..errors import run_command
from ..lower import cache
from .commands import COMMANDS, _loss_curves  # noqa: F401  (the commands by name; tests call _loss_curves)
from .common import MAX_MEMORY
from .parser import CACHED
from .parser import parser as _parser


def _compilation_cache(args) -> None:
    if args.command in CACHED and not getattr(args, "no_cache", False) and not cache.disabled_by_env():
        cache.enable()


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    MAX_MEMORY[0] = getattr(args, "max_memory", None)
    paths.grant(getattr(args, "data_root", None) or ())
    paths.set_memory(MAX_MEMORY[0])
    _compilation_cache(args)
    try:
        return run_command(COMMANDS[args.command], args)
    except (TypeError, ValueError) as e:
        if args.command == "run":
            print(f"nndsl: error: {e}", file=sys.stderr)
            return 1
        raise
