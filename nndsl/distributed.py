"""Multi-host training on JAX's own distributed runtime: `jax.distributed.initialize`, then one
global mesh; each process feeds its own rows of every batch. On CPU the collectives use gloo."""
from __future__ import annotations

from .errors import NndslError


def initialize(coordinator: str, num_processes: int, process_id: int) -> None:
    import jax
    if not 0 <= process_id < num_processes:
        raise NndslError(f"--process-id must be in [0, {num_processes}), got {process_id}", code="E708")
    try:
        if jax.config.jax_platforms in (None, "", "cpu") or str(jax.config.jax_platforms).startswith("cpu"):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except AttributeError:
        pass
    try:
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    except Exception as e:  # noqa: BLE001 - an unreachable coordinator, a port in use: the user's to fix
        raise NndslError(f"cannot join the run at {coordinator}: {str(e).splitlines()[0]}", code="E709") from None


def is_main() -> bool:
    import jax
    return jax.process_index() == 0
