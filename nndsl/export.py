"""Exported models: StableHLO through `jax.export`, with a symbolic batch size, runnable without
the `.nn` source. The weights travel inside the artifact as constants of the exported function."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp

from .errors import NndslError
from .io import atomic_write

MAGIC = b"NNDSLEXP1\n"


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
                             f"({t}); export needs the others fixed", g.node(nid).span, code="E611")
        specs.append(jax.ShapeDtypeStruct((sym,) + tuple(t.shape[1:]), jnp.dtype(t.dtype)))
    fn = jax.jit(lambda *xs: model.apply(variables, *xs))
    try:
        exp = export.export(fn)(*specs)
    except ImportError as e:
        raise NndslError(f"export needs the flatbuffers package ({e})", code="E612") from None
    names = [g.node(n).attrs["name"] for n in g.inputs]
    header = MAGIC + (",".join(names) + "\n").encode()
    atomic_write(Path(path), header + bytes(exp.serialize()))
    return Path(path)


def load_exported(path: str | Path):
    """(callable, input names): the callable takes the inputs as arrays and returns the outputs."""
    from jax import export
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise NndslError(f"{Path(path).name} is not an nndsl export", code="E613")
    rest = data[len(MAGIC):]
    names, _, blob = rest.partition(b"\n")
    try:
        exp = export.deserialize(bytearray(blob))
    except Exception as e:  # a corrupt artifact is the user's to hear about, not a traceback
        raise NndslError(f"cannot read {Path(path).name}: {e}", code="E614") from None
    return exp.call, names.decode().split(",")


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
    atomic_write(Path(path), MAGIC + b"train_state,batch,key_data\n" + bytes(exp.serialize()))
    return Path(path)
