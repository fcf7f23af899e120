"""`nndsl export --format onnx` and `nndsl convert-weights`: the CLI ends of nndsl/onnx, kept here so
nndsl/cli.py only dispatches."""
from __future__ import annotations

from ..errors import NndslError


def export_onnx_cmd(prog, a, args: dict) -> int:
    from ..io import load_variables
    from . import export_onnx
    if a.train:
        raise NndslError("--format onnx exports a model, not a training step; use --format jaxexport "
                         "with --train", code="E642")
    model = prog.model(a.model, **args)
    variables = load_variables(a.weights) if a.weights else None
    out = export_onnx(model, variables, a.output)
    print(f"wrote {out}" + ("" if a.weights else " (fresh initial weights: no --weights given)"))
    return 0
