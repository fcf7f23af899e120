"""Exported models: StableHLO through `jax.export`, with a symbolic batch size, runnable without
the `.nn` source. The weights travel inside the artifact as constants of the exported function.

An artifact is MAGIC, one JSON line, then the serialized export. The JSON names the inputs and
records what the optimization level chose per platform: the passes that wrote the graph and the
XLA compiler options (nndsl/lower/backend.py) that `load_exported` compiles it with on each
platform. Version-1 artifacts (a line of input names instead of JSON) still load.
"""
from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp

from .errors import NndslError
from .io import atomic_write

MAGIC = b"NNDSLEXP2\n"
MAGIC_V1 = b"NNDSLEXP1\n"


def _header(names: list[str], program) -> bytes:
    from .lower.backend import OPTIONS, xla_options
    from .passes import pipeline
    meta = {"inputs": names, "opt_level": program.opt_level,
            "passes": pipeline(program.opt_level, program.passes),
            "xla_options": {p: xla_options(program.opt_level, p) for p in OPTIONS}}
    return MAGIC + json.dumps(meta, sort_keys=True).encode() + b"\n"


def read_header(data: bytes, name: str) -> tuple[dict, bytes]:
    """(metadata, serialized export) of an artifact's bytes."""
    if data.startswith(MAGIC_V1):
        names, _, blob = data[len(MAGIC_V1):].partition(b"\n")
        return {"inputs": names.decode().split(","), "xla_options": {}}, blob
    if not data.startswith(MAGIC):
        raise NndslError(f"{name} is not an nndsl export", code="E613")
    line, _, blob = data[len(MAGIC):].partition(b"\n")
    try:
        meta = json.loads(line)
    except ValueError as e:
        raise NndslError(f"cannot read {name}: a damaged header ({e})", code="E614") from None
    return meta, blob


def export_model(model, variables, path: str | Path, batch: str = "b") -> Path:
    """Serializes `apply` with these weights baked in; the first axis of every input is `batch`."""
    from jax import export
    g = model.graph()
    (sym,) = export.symbolic_shape(batch)
    specs = []
    for nid in g.inputs:
        t = g.node(nid).type
        if any(not isinstance(d, int) for d in t.shape[1:]):
            raise NndslError(f"input `{g.node(nid).attrs['name']}` has a symbolic size besides the batch "
                             f"({t}); export needs the others fixed", g.node(nid).span, code="E611",
                             help="give their sizes with --dim NAME=SIZE (e.g. --dim time=32)")
        specs.append(jax.ShapeDtypeStruct((sym,) + tuple(t.shape[1:]), jnp.dtype(t.dtype)))
    fn = jax.jit(lambda *xs: model.apply(variables, *xs))
    try:
        exp = export.export(fn)(*specs)
    except ImportError as e:
        raise NndslError(f"export needs the flatbuffers package ({e})", code="E612") from None
    names = [g.node(n).attrs["name"] for n in g.inputs]
    atomic_write(Path(path), _header(names, model.program) + bytes(exp.serialize()))
    return Path(path)


def load_exported(path: str | Path):
    """(callable, input names): the callable takes the inputs as arrays and returns the outputs,
    compiled with the XLA options the artifact recorded for this platform."""
    from jax import export
    from .lower.backend import jit_with, supported
    meta, blob = read_header(Path(path).read_bytes(), Path(path).name)
    try:
        exp = export.deserialize(bytearray(blob))
    except Exception as e:  # a corrupt artifact is the user's to hear about, not a traceback
        raise NndslError(f"cannot read {Path(path).name}: {e}", code="E614") from None
    platform = jax.default_backend()
    options = supported(meta.get("xla_options", {}).get(platform, {}), platform)
    return jit_with(exp.call, options), list(meta["inputs"])


def export_train_step(trainer, path: str | Path) -> Path:
    """One training iteration as a portable artifact: (state_leaves, batch, key_data) ->
    (state_leaves, metrics), with the batch size of the train block. The train state travels as
    its flat list of leaves (jax.tree_util order: optimizer states are not serializable pytrees),
    and key_data is `jax.random.key_data(key)`, since typed keys do not cross the boundary."""
    from jax import export
    n = trainer.batch_size
    step = trainer.step_fn(n)
    ts = jax.eval_shape(lambda: trainer.init(jax.random.key(0)))
    spec = trainer.spec_for(n)
    batch = {f: jax.ShapeDtypeStruct(tuple(spec.graph.node(nid).type.shape), jnp.dtype(spec.graph.node(nid).type.dtype))
             for f, nid in spec.data_inputs.items()}
    kd = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))

    leaves, treedef = jax.tree_util.tree_flatten(ts)

    def fn(flat, batch, key_data):
        new, metrics = step(jax.tree_util.tree_unflatten(treedef, flat), batch, jax.random.wrap_key_data(key_data))
        return jax.tree_util.tree_leaves(new), metrics
    exp = export.export(jax.jit(fn))(leaves, batch, kd)
    atomic_write(Path(path), _header(["train_state", "batch", "key_data"], trainer.program) + bytes(exp.serialize()))
    return Path(path)
