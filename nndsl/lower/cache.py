"""JAX's persistent compilation cache, on by default for the command line.

Every `nndsl train` of the same program used to pay XLA's compile again (seconds for a CNN). JAX
can keep compiled executables on disk, keyed by the computation, the compiler options, the
backend and the jax/jaxlib versions, so an entry made by another jax version is simply never
found: sharing one folder across upgrades is safe. The folder name still carries the jax version
so that old entries are easy to recognise and delete.

The cache is a process-wide JAX setting, so only the CLI turns it on (`--no-cache` or
`NNDSL_NO_CACHE=1` to leave it off); code embedding nndsl decides for its own process.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import jax

_ENABLED: list[Path] = []


def default_folder() -> Path:
    """`$NNDSL_CACHE_DIR`, else the user's cache directory (`$XDG_CACHE_HOME` or `~/.cache`)."""
    explicit = os.environ.get("NNDSL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nndsl" / f"xla-jax{jax.__version__}"


def disabled_by_env() -> bool:
    return os.environ.get("NNDSL_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")


def enable(folder: str | Path | None = None) -> Path | None:
    """Turns the cache on in this process; returns the folder, or None where it cannot be used
    (a folder that cannot be created or written: compiling still works, only slower)."""
    if _ENABLED:
        return _ENABLED[0]
    path = Path(folder) if folder is not None else default_folder()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        print(f"note: compilation cache off ({path} is not writable: {e.strerror})", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # JAX caches only compiles over 1 s by default; nndsl's small models compile in less, and
    # those are the ones where the saved time is most of a short run.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _ENABLED.append(path)
    return path
