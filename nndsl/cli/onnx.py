"""`nndsl export --format onnx` and `nndsl convert-weights`: the command-line ends of nndsl/onnx
and nndsl/torch_weights."""
from __future__ import annotations

import jax

from ..errors import NndslError
from ..io import load_variables
from ..onnx import export_onnx
from ..torch_weights import convert_torch_weights
from .common import dims, kv, load_program


def export_onnx_cmd(prog, a, args: dict) -> int:
    if a.train:
        raise NndslError("--format onnx exports a model, not a training step; use --format jaxexport "
                         "with --train", code="E662")
    model = prog.model(a.model, **args)
    variables = load_variables(a.weights) if a.weights else None
    out = export_onnx(model, variables, a.output, dims=dims(getattr(a, "dim", None), "E664"))
    print(f"wrote {out}" + ("" if a.weights else " (fresh initial weights: no --weights given)"))
    return 0


def add_convert_parser(sub) -> None:
    c = sub.add_parser("convert-weights", help="PyTorch weights (a state_dict saved with safetensors) to "
                       "nndsl weights for a model", description="Maps a PyTorch state_dict onto a model's "
                       "parameters by module order and shape (torchvision's layout for the stdlib ResNet, "
                       "VGG and AlexNet). Never unpickles: save with "
                       "safetensors.torch.save_file(model.state_dict(), PATH).")
    c.add_argument("weights", help="the PyTorch state_dict, .safetensors")
    c.add_argument("--to", nargs=2, required=True, metavar=("FILE", "MODEL"), help="the .nn file and model")
    c.add_argument("-o", "--output", required=True, help="nndsl weights to write (.safetensors)")
    c.add_argument("--map", metavar="MAPFILE", help="lines `torch.module nndsl.layer` pairing modules "
                   "whose order is ambiguous")
    c.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")


def convert_cmd(a) -> int:
    file, name = a.to
    model = load_program(file).model(name, **kv(a.arg))
    variables = convert_torch_weights(a.weights, model, a.output, a.map)
    n = sum(int(getattr(v, "size", 0)) for v in jax.tree_util.tree_leaves(variables))
    print(f"wrote {a.output} ({n:,} numbers for `{name}`)")
    return 0
