"""Checkpoints that lose nothing: parameters, optimizer states, step counter and data position.

Protocol (RELIABILITY.md section 5): tensors go to `ckpt-N.safetensors` through a temporary file,
fsync and rename; then the manifest `ckpt-N.json`, carrying the tensors' SHA-256 and the data
order, is written the same way. The manifest is the commit point: a checkpoint without one, or
whose tensors no longer match its hash, is skipped (with a warning) for the one before it.

The manifest itself is checksummed too (`manifest_sha256`, over its other fields in canonical
JSON), and every field is validated before it is used: an edited `step` once resumed silently into
a different run, `step = 2**70` reported "done", and a `tensors` path of `/dev/zero` was read until
memory ran out. So: `step` is a non-negative int equal to the number in the file's name and within
the run's total; `tensors` is exactly `ckpt-N.safetensors` beside the manifest, a regular file of
the recorded size, read no further; `identity` names the train block (and its parameter layout)
that wrote it, so another block with the same layout cannot resume from it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import warnings
from pathlib import Path

import jax
import numpy as np

from ..errors import NndslError, TrainingError
from ..io import atomic_write

PATTERN = re.compile(r"ckpt-(\d+)\.json$")
FORMAT = "nndsl-checkpoint-2"
MAX_MANIFEST_BYTES = 256 * 2**20  # the data order and the history travel in it


def _digest(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _flat(ts) -> tuple[dict, object]:
    leaves, treedef = jax.tree_util.tree_flatten(ts)
    return {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(leaves)}, treedef


def save(folder: Path, step: int, ts: dict, data_state: dict, keep: int = 3, identity: str | None = None) -> Path:
    from safetensors.numpy import save as st_save
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, _ = _flat(ts)
    blob = st_save(arrays)
    tensors = folder / f"ckpt-{step:08d}.safetensors"
    atomic_write(tensors, blob)
    _fault("kill-during-checkpoint", step)  # tests: die between the tensors and the manifest
    manifest = {"format": FORMAT, "step": step, "tensors": tensors.name, "bytes": len(blob),
                "sha256": hashlib.sha256(blob).hexdigest(), "leaves": len(arrays), "data": data_state,
                "identity": identity}
    manifest["manifest_sha256"] = _digest(manifest)
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


class Unusable(ValueError):
    """A checkpoint that does not verify: skipped, with a warning, for the one before it."""


def load_latest(folder: Path, template: dict, total: int | None = None,
                identity: str | None = None) -> tuple[int, dict, dict] | None:
    """(step, train_state, data_state) of the newest checkpoint that verifies, or None. A
    checkpoint written by another train block, or past this run's `total`, is an error: falling
    back to an older one would not help."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(f"no checkpoint folder {folder}", code="E702")
    leaves_t, treedef = jax.tree_util.tree_flatten(template)
    for manifest in reversed(_manifests(folder)):
        try:
            meta = _read_manifest(folder, manifest)
            step = meta["step"]
            if identity is not None and meta.get("identity") != identity:
                raise TrainingError(f"checkpoint {manifest.name} in {folder} was written by another train block "
                                    "(or a model with other parameters); resuming from it would mix two runs",
                                    code="E720", help="resume with the train block that wrote it, or start afresh")
            if total is not None and step > total:
                raise TrainingError(f"checkpoint {manifest.name} is at iteration {step:,}, past this run's "
                                    f"{total:,} iterations", code="E721",
                                    help="resume with at least as many iterations (--iterations/--epochs)")
            ts = jax.tree_util.tree_unflatten(treedef, _read_tensors(folder, meta, leaves_t))
        except (OSError, Unusable, NndslError) as e:
            if isinstance(e, TrainingError) and e.diagnostics[0].code in ("E720", "E721"):
                raise
            why = e.message if isinstance(e, NndslError) else str(e)
            warnings.warn(f"checkpoint {manifest.name} is unusable ({why}); trying the one before it",
                          stacklevel=2)
            continue
        return step, ts, meta["data"]
    return None


def _read_manifest(folder: Path, manifest: Path) -> dict:
    from ..files import read_bytes
    try:
        meta = json.loads(read_bytes(manifest, MAX_MANIFEST_BYTES, "checkpoint manifest", error=NndslError,
                                     name=manifest.name))
    except (ValueError, RecursionError):
        raise Unusable("its manifest is not JSON") from None
    if not isinstance(meta, dict):
        raise Unusable("its manifest is not a JSON object")
    if meta.get("format") != FORMAT or "manifest_sha256" not in meta:
        raise Unusable("written by an older nndsl, without a manifest checksum")
    if meta["manifest_sha256"] != _digest(meta):
        raise Unusable("its manifest was changed after it was written (checksum mismatch)")
    step = meta.get("step")
    if type(step) is not int or step < 0 or step != int(PATTERN.search(manifest.name).group(1)):
        raise Unusable("its step is not the non-negative whole number its name says")
    if meta.get("tensors") != f"ckpt-{step:08d}.safetensors":
        raise Unusable("its tensors are not the file beside it that its step names")
    for key in ("bytes", "leaves"):
        if type(meta.get(key)) is not int or meta[key] < 0:
            raise Unusable(f"its `{key}` is not a whole number")
    if not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("data"), dict):
        raise Unusable("its `sha256` or `data` field is missing")
    return meta


def _read_tensors(folder: Path, meta: dict, template: list) -> list:
    """The leaves, after the file is checked to be a regular file inside `folder` of the recorded
    size (read no further) whose hash matches, holding arrays of the template's shapes."""
    from safetensors.numpy import load as st_load

    from ..files import read_bytes
    path = (folder / meta["tensors"]).resolve()
    if path.parent != folder.resolve():
        raise Unusable("its tensors file leads outside the checkpoint folder")
    if meta["leaves"] != len(template):
        raise Unusable(f"it holds {meta['leaves']} arrays, this run has {len(template)}")
    blob = read_bytes(path, meta["bytes"], "checkpoint", error=NndslError, name=meta["tensors"])
    if len(blob) != meta["bytes"]:
        raise Unusable("its tensors file is shorter than recorded")
    if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
        raise Unusable("checksum mismatch")
    try:
        arrays = st_load(blob)
    except Exception:  # noqa: BLE001 - verified bytes that safetensors still refuses: another version's format
        raise Unusable("its tensors cannot be read") from None
    leaves = []
    for i, t in enumerate(template):
        a = arrays.get(f"leaf_{i:05d}")
        want = np.asarray(t) if not hasattr(t, "dtype") else t
        if a is None or tuple(a.shape) != tuple(np.shape(want)) or a.dtype != np.dtype(want.dtype):
            raise Unusable(f"array {i} does not have the shape and type this run's state has")
        leaves.append(a)
    return leaves
