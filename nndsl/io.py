"""Weights on disk: safetensors, never pickle, written atomically (temp file, fsync, rename)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import NndslError


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        else:
            out[key] = np.asarray(v)
    return out


def unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        node = out
        parts = key.split("/")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


def atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_variables(path: Path, variables: dict) -> None:
    from safetensors.numpy import save
    flat = flatten(variables)
    meta = {"format": "nndsl-variables-1"}
    atomic_write(Path(path), save({k: np.ascontiguousarray(v) for k, v in flat.items()}, metadata=meta))


def load_variables(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise NndslError(f"no such weights file: {p}", code="E601")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                flat = {k: f[k] for k in f.files}
        else:
            from safetensors.numpy import load_file
            flat = load_file(str(p))
    except Exception as e:  # a corrupt or foreign file is the user's problem to hear about, clearly
        raise NndslError(f"cannot read weights {p.name}: {e}", code="E602") from None
    tree = unflatten(flat)
    tree.setdefault("params", {})
    tree.setdefault("state", {})
    return tree


def save_json(path: Path, obj) -> None:
    atomic_write(Path(path), json.dumps(obj, indent=2).encode())


def load_json_list(path: Path) -> list | None:
    """A small JSON list of strings (class names), or None when absent, too large or malformed."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > 1 << 20:
            return None
        v = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
