"""Exported models: StableHLO through `jax.export`, with a symbolic batch size, runnable without
the `.nn` source. The weights travel inside the artifact as constants of the exported function.

An artifact (version 3) is MAGIC, a line `sha256:<hex>`, one JSON line, then the serialized
export. The hash covers the JSON line and the export, and is verified before anything is parsed
or deserialized: one flipped bit once ran with outputs off by 0.67. The JSON names the inputs and
records what the optimization level chose per platform: the passes that wrote the graph and the
XLA compiler options that `load_exported` compiles it with. Those options reach the compiler, and
some (`xla_dump_to`, on GPU options that substitute code) do far more than tune it, so an artifact
may only carry options from nndsl's own table (nndsl/lower/backend.py), each with a value nndsl
itself sets; anything else refuses the artifact.

Versions 1 and 2 carried no checksum, so a damaged one cannot be told from a good one: they are
refused with a message asking to export again, rather than run unverified.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp

from .errors import NndslError
from .io import atomic_write

MAGIC = b"NNDSLEXP3\n"
OLD_MAGICS = (b"NNDSLEXP1\n", b"NNDSLEXP2\n")
MAGIC_V1 = OLD_MAGICS[0]
MAX_HEADER_BYTES = 1 << 20


def _header(names: list[str], program) -> dict:
    from .lower.backend import OPTIONS, xla_options
    from .passes import pipeline
    return {"inputs": names, "opt_level": program.opt_level,
            "passes": pipeline(program.opt_level, program.passes),
            "xla_options": {p: xla_options(program.opt_level, p) for p in OPTIONS}}


def pack(meta: dict, blob: bytes) -> bytes:
    """An artifact's bytes: magic, checksum line, header line, payload."""
    line = json.dumps(meta, sort_keys=True).encode()
    digest = hashlib.sha256(line + b"\n" + blob).hexdigest().encode()
    return MAGIC + b"sha256:" + digest + b"\n" + line + b"\n" + blob


def read_header(data: bytes, name: str) -> tuple[dict, bytes]:
    """(metadata, serialized export) of an artifact's bytes, after its checksum and its header's
    form are verified."""
    if data.startswith(OLD_MAGICS):
        raise NndslError(f"{name} was exported by an older nndsl, without a checksum, so damage to it "
                         "could not be detected; it is not run", code="E630",
                         help="export the model again with this version (`nndsl export`)")
    if not data.startswith(MAGIC):
        raise NndslError(f"{name} is not an nndsl export", code="E613")
    rest = data[len(MAGIC):]
    sum_line, _, body = rest.partition(b"\n")
    want = sum_line[len(b"sha256:"):].decode("ascii", "replace") if sum_line.startswith(b"sha256:") else ""
    if len(want) != 64:
        raise NndslError(f"cannot read {name}: its checksum line is damaged", code="E614")
    if hashlib.sha256(body).hexdigest() != want:
        raise NndslError(f"{name} is damaged: its contents do not match the checksum it was written with",
                         code="E631", help="copy or export it again; a damaged artifact is never run")
    line, _, blob = body.partition(b"\n")
    try:
        meta = json.loads(line[:MAX_HEADER_BYTES])
    except ValueError:
        meta = None
    return _check_meta(meta, name), blob


def _check_meta(meta, name: str) -> dict:
    """The header's form, and its XLA options against nndsl's allow-list."""
    from .lower.backend import allowed_in_artifact

    def bad(what: str) -> NndslError:
        return NndslError(f"cannot read {name}: a damaged header ({what})", code="E614")
    if not isinstance(meta, dict):
        raise bad("not a JSON object")
    inputs = meta.get("inputs")
    if not (isinstance(inputs, list) and inputs and all(isinstance(n, str) and n for n in inputs)):
        raise bad("`inputs` is not a list of names")
    options = meta.get("xla_options", {})
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise bad("`xla_options` is not a table of options per platform")
    for platform, opts in options.items():
        for key, value in opts.items():
            if not allowed_in_artifact(platform, key, value):
                shown = "".join(c if c.isprintable() else "?" for c in f"{key}={value!r}")[:200]
                raise NndslError(f"{name} asks for the XLA option `{shown}` on {platform[:40]!r}, which nndsl "
                                 "never sets; it is not run", code="E632",
                                 help="an artifact may only carry the compiler options nndsl itself chooses "
                                      "(nndsl/lower/backend.py); export the model again")
    return meta


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
    atomic_write(Path(path), pack(_header(names, model.program), bytes(exp.serialize())))
    return Path(path)


def load_exported(path: str | Path):
    """(callable, input names): the callable takes the inputs as arrays and returns the outputs,
    compiled with the XLA options the artifact recorded for this platform."""
    from jax import export

    from .files import read_bytes
    from .limits import machine_memory
    from .lower.backend import jit_with, supported
    name = Path(path).name
    meta, blob = read_header(read_bytes(path, machine_memory(), "exported model", error=NndslError, name=name),
                             name)
    try:
        exp = export.deserialize(bytearray(blob))
    except Exception:  # noqa: BLE001 - verified yet unreadable: another JAX's format; the user hears it, not a traceback
        raise NndslError(f"cannot read {name}: this JAX ({jax.__version__}) cannot deserialize its model",
                         code="E614") from None
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
    atomic_write(Path(path), pack(_header(["train_state", "batch", "key_data"], trainer.program),
                                  bytes(exp.serialize())))
    return Path(path)
