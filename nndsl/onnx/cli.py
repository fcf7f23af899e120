"""`nndsl export --format onnx` and `nndsl convert-weights`: the CLI ends of nndsl/onnx, kept here so
nndsl/cli.py only dispatches."""
from __future__ import annotations

from ..errors import NndslError


def export_onnx_cmd(prog, a, args: dict) -> int:
    from ..io import load_variables
    from . import export_onnx
    if a.train:
        raise NndslError("--format onnx exports a model, not a training step; use --format jaxexport "
                         "with --train", code="E662")
    model = prog.model(a.model, **args)
    variables = load_variables(a.weights) if a.weights else None
    out = export_onnx(model, variables, a.output, dims=_dims(getattr(a, "dim", None)))
    print(f"wrote {out}" + ("" if a.weights else " (fresh initial weights: no --weights given)"))
    return 0


def _dims(items) -> dict:
    """`--dim NAME=SIZE` values, where the export command has that option."""
    out = {}
    for item in items or []:
        if isinstance(item, str):
            name, _, size = item.partition("=")
            try:
                out[name.strip()] = int(size)
            except ValueError:
                raise NndslError(f"--dim takes NAME=SIZE, got {item!r}", code="E664") from None
        elif isinstance(item, tuple) and len(item) == 2:
            out[item[0]] = int(item[1])
    return out


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


def convert_cmd(a, load, kv) -> int:
    from ..torch_weights import convert_torch_weights
    file, name = a.to
    model = load(file).model(name, **kv(a.arg))
    variables = convert_torch_weights(a.weights, model, a.output, a.map)
    import jax
    n = sum(int(getattr(v, "size", 0)) for v in jax.tree_util.tree_leaves(variables))
    print(f"wrote {a.output} ({n:,} numbers for `{name}`)")
    return 0
