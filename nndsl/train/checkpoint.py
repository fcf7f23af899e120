"""Checkpoints that lose nothing: parameters, optimizer states, step counter and data position.

Protocol (RELIABILITY.md section 5): tensors go to `ckpt-N.safetensors` through a temporary file,
fsync and rename; then the manifest `ckpt-N.json`, carrying the tensors' SHA-256 and the data
order, is written the same way. The manifest is the commit point: a checkpoint without one, or
whose tensors no longer match its hash, is skipped (with a warning) for the one before it.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import re
import warnings
from pathlib import Path

import jax
import numpy as np

from ..errors import TrainingError
from ..io import atomic_write

PATTERN = re.compile(r"ckpt-(\d+)\.json$")


def _flat(ts) -> tuple[dict, object]:
    leaves, treedef = jax.tree_util.tree_flatten(ts)
    return {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}, treedef


def save(folder: Path, step: int, ts: dict, data_state: dict, keep: int = 3) -> Path:
    from safetensors.numpy import save as st_save
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, _ = _flat(ts)
    blob = st_save(arrays)
    tensors = folder / f"ckpt-{step:08d}.safetensors"
    atomic_write(tensors, blob)
    _fault("kill-during-checkpoint", step)  # tests: die between the tensors and the manifest
    manifest = {"step": step, "tensors": tensors.name, "sha256": hashlib.sha256(blob).hexdigest(),
                "leaves": len(arrays), "data": data_state}
    path = folder / f"ckpt-{step:08d}.json"
    atomic_write(path, json.dumps(manifest).encode())
    for old in sorted(_manifests(folder))[:-keep]:
        for p in (old, old.with_suffix(".safetensors")):
            p.unlink(missing_ok=True)
    return path


def _fault(name: str, step: int) -> None:
    """Fault injection for the kill tests: NNDSL_FAULT=kill-during-checkpoint:STEP sends this
    process SIGKILL at that point of that step's checkpoint."""
    spec = os.environ.get("NNDSL_FAULT", "")
    if spec == f"{name}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def _manifests(folder: Path) -> list[Path]:
    return sorted((p for p in Path(folder).glob("ckpt-*.json") if PATTERN.search(p.name)),
                  key=lambda p: int(PATTERN.search(p.name).group(1)))


def sweep(folder: Path) -> None:
    """Removes temporary files a killed run left behind."""
    for p in Path(folder).glob(".*.tmp"):
        p.unlink(missing_ok=True)


def load_latest(folder: Path, template: dict) -> tuple[int, dict, dict] | None:
    """(step, train_state, data_state) of the newest checkpoint that verifies, or None."""
    from safetensors.numpy import load as st_load
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(f"no checkpoint folder {folder}", code="E702")
    _, treedef = _flat(template)
    for manifest in reversed(_manifests(folder)):
        try:
            meta = json.loads(manifest.read_text())
            blob = (folder / meta["tensors"]).read_bytes()
            if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
                raise ValueError("checksum mismatch")
            arrays = st_load(blob)
            leaves = [arrays[f"leaf_{i:05d}"] for i in range(meta["leaves"])]
            ts = jax.tree_util.tree_unflatten(treedef, leaves)
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"checkpoint {manifest.name} is unusable ({e}); trying the one before it",
                          stacklevel=2)
            continue
        return meta["step"], ts, meta["data"]
    return None
