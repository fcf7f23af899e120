"""The device mesh a program runs on, for sharding annotations (`shard(x, "data", none)`,
`dense(4096, shard="model")`). Without a mesh the annotations do nothing, so a program annotated
for 8 devices still runs on one. It sits with the ops that read it (`shard`, `dense(shard=)`);
the trainer sets it."""
from __future__ import annotations

import contextlib
from contextvars import ContextVar

import jax
from jax.sharding import NamedSharding, PartitionSpec

CURRENT: ContextVar = ContextVar("nndsl_mesh", default=None)


@contextlib.contextmanager
def using(mesh):
    token = CURRENT.set(mesh)
    try:
        yield mesh
    finally:
        CURRENT.reset(token)


def constrain(x, axes: tuple):
    """`with_sharding_constraint` on the current mesh; axes not in the mesh are left replicated."""
    mesh = CURRENT.get()
    if mesh is None:
        return x
    names = set(mesh.axis_names)
    spec = PartitionSpec(*[a if a in names else None for a in axes])
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
