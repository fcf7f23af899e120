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
    """The nested tree of a flat `a/b/c` table. A name that is both an array and a folder of
    arrays (`params/dense_0` beside `params/dense_0/kernel`) fits no tree: E602, not a crash."""
    out: dict = {}
    for key, v in flat.items():
        node = out
        parts = key.split("/")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise NndslError(f"the weights hold both `{'/'.join(parts[:i + 1])}` and `{key}`: one name "
                                 "cannot be an array and a group of arrays", code="E602")
        if isinstance(node.get(parts[-1]), dict):
            raise NndslError(f"the weights hold both `{key}` and arrays under `{key}/`: one name cannot be an "
                             "array and a group of arrays", code="E602")
        node[parts[-1]] = v
    return out


def atomic_write(path: Path, data: bytes) -> None:
    """Writes `path` whole or not at all. A destination that exists and is not a regular file
    (`-o /dev/full`, a FIFO, a folder) is refused: the rename would replace a device node, as
    root, with a regular file."""
    import stat
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise NndslError(f"cannot write {path}: it is not a regular file (a folder, device or pipe)", code="E634")
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
    import stat
    p = Path(path)
    if not p.exists():
        raise NndslError(f"no such weights file: {p}", code="E601")
    if not stat.S_ISREG(p.stat().st_mode):  # safetensors and numpy would block on a FIFO
        raise NndslError(f"weights {p} is not a regular file", code="E522")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as f:
                flat = {k: f[k] for k in f.files}
        else:
            from safetensors.numpy import load_file
            flat = load_file(str(p))
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file is the user's problem to hear about, clearly
        raise NndslError(f"cannot read weights {p.name}: {e}", code="E602") from None
    tree = unflatten(flat)
    tree.setdefault("params", {})
    tree.setdefault("state", {})
    return tree


def save_json(path: Path, obj) -> None:
    atomic_write(Path(path), json.dumps(obj, indent=2).encode())


# ---------------------------------------------------------------- `nndsl run`'s arrays

OUTPUT_FORMATS = {".npy": "one array", ".npz": "arrays by output name"}


def read_array(path: str) -> np.ndarray:
    """An `--input` .npy through the bounded reader: a FIFO or device is refused, not read."""
    import io as _io

    from .files import read_bytes
    from .limits import machine_memory
    data = read_bytes(path, machine_memory(), "input", error=NndslError, name=str(path))
    try:
        return np.load(_io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError):
        raise NndslError(f"cannot read input {path}: not a .npy array (pickled objects are never loaded)",
                         code="E603") from None


def check_output(path: str, several: list | None = None) -> Path:
    """The `--output` file, refused before anything runs when nndsl could not write exactly it:
    a name whose extension says no format nndsl writes (`result.txt` once became
    `result.txt.npy`), or a destination that is not a regular file (`/dev/full` once became a
    regular file `/dev/full.npy`), or a .npy for `several` outputs (named), which it cannot hold."""
    import os
    import stat
    p = Path(path)
    if p.suffix.lower() not in OUTPUT_FORMATS:
        raise NndslError(f"--output {path}: nndsl writes .npy (one output) or .npz (several outputs, "
                         "by name), and writes exactly the file named", code="E633",
                         help=f"name the file {p.stem or p.name}.npy or {p.stem or p.name}.npz")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError:
        raise NndslError(f"cannot write {path}: its folder cannot be reached", code="E609") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise NndslError(f"--output {path} is not a regular file (a directory, device or pipe); "
                         "nndsl writes outputs only to regular files", code="E634")
    if not p.resolve().parent.is_dir():
        raise NndslError(f"cannot write {path}: its folder does not exist", code="E609")
    if several is not None and p.suffix.lower() == ".npy":
        raise NndslError(f"the model has {len(several)} outputs ({', '.join(several)}), and a .npy file holds "
                         "one array", code="E635", help=f"name a .npz file: --output {p.with_suffix('.npz')}")
    return p


def save_outputs(path: str, y, names: list | None = None) -> str:
    """Writes exactly `path` (atomically) and says what it wrote. One output: .npy, or .npz with
    the output's name; several (a dict by output name): .npz only, since a .npy holds one array."""
    import io as _io
    arrays = {k: np.asarray(v) for k, v in y.items()} if isinstance(y, dict) else None
    p = check_output(path, list(arrays) if arrays is not None else None)
    buf = _io.BytesIO()
    if p.suffix.lower() == ".npz":
        if arrays is None:
            arrays = {(names or ["output"])[0]: np.asarray(y)}
        np.savez(buf, **arrays)
        what = ", ".join(f"{k} {_desc(v)}" for k, v in arrays.items())
    else:
        arr = np.asarray(y)
        np.save(buf, arr)
        what = _desc(arr)
    atomic_write(p, buf.getvalue())
    return f"wrote {path}: {what}"


def _desc(a: np.ndarray) -> str:
    return f"{a.dtype}{list(a.shape)}"


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
