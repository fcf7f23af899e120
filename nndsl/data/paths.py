"""The one gate every data path a `.nn` file names goes through.

A `.nn` file is untrusted text (it arrives in pull requests and is checked by CI and the language
server), so the file alone may only name data inside its own project tree: the entry file's
folder and below. Real datasets live elsewhere (`~/datasets/cifar10`), and only the user, never
the file, grants more: `--data-root DIR` on the command line, `data_roots=` in the Python API, or
the environment variable `NNDSL_DATA_ROOT` (folders separated by the platform's path separator).
Symlinks are resolved first and the result is checked again, so a link cannot lead out; only
regular files (or, for folder sources, directories) are opened, never FIFOs or devices, which
would hang or never end. Messages name the path the file wrote, never anything read from it.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from pathlib import Path

from ..attrs import OpError

ENV = "NNDSL_DATA_ROOT"

_granted: contextvars.ContextVar[tuple] = contextvars.ContextVar("nndsl_data_roots", default=())


@contextlib.contextmanager
def granted(roots):
    """Grants the folders `roots` (besides the project tree) while the block runs."""
    token = _granted.set(tuple(Path(r).expanduser().resolve() for r in (roots or ())))
    try:
        yield
    finally:
        _granted.reset(token)


def grant(roots) -> None:
    """Grants `roots` for the rest of this context (the command line calls it once)."""
    _granted.set(tuple(Path(r).expanduser().resolve() for r in (roots or ())))


def current() -> tuple:
    """The folders granted in this context (not counting the environment variable)."""
    return _granted.get()


def roots(base: Path | None) -> list[Path]:
    """Every folder data may be read from: the project tree, then what the user granted."""
    out = [Path(base).resolve() if base is not None else Path.cwd().resolve()]
    out += list(_granted.get())
    for part in os.environ.get(ENV, "").split(os.pathsep):
        if part.strip():
            out.append(Path(part.strip()).expanduser().resolve())
    return out


def _err(message: str, code: str = "E347", help: str | None = None) -> OpError:
    e = OpError(message, help)
    e.code = code
    return e


def _inside(p: Path, root: Path) -> bool:
    return p == root or root in p.parents


def resolve(path: str, base: Path | None, kind: str = "file") -> Path:
    """The real path of `path` (relative to the `.nn` file's folder, or absolute) after checking
    it lies under a permitted root and is a regular file (`kind="file"`) or a folder
    (`kind="dir"`). Raises OpError otherwise; the builder locates it on the `data` statement."""
    if not isinstance(path, str) or not path or "\x00" in path:
        raise OpError("a data path must be a non-empty string")
    allowed = roots(base)
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = allowed[0] / p
    try:
        real = p.resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop
        raise OpError(f"data path \"{path}\" cannot be resolved (a symlink loop?)") from None
    if not any(_inside(real, r) for r in allowed):
        raise _err(f"data path \"{path}\" is outside the project folder and every granted data root", "E506",
                   help=f"a .nn file may only read data under its own folder; grant another folder with "
                        f"--data-root DIR or the {ENV} environment variable")
    try:
        st = os.stat(real)
    except OSError:
        raise OpError(f"no such data {'file' if kind == 'file' else 'folder'}: {path}") from None
    if kind == "dir":
        if not stat.S_ISDIR(st.st_mode):
            raise _err(f"data path {path} is not a folder", "E507")
    elif not stat.S_ISREG(st.st_mode):
        what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise _err(f"data path {path} is {what}; only regular files are read", "E507")
    return real


def member(folder: Path, p: Path, base: Path | None, shown: str) -> Path | None:
    """A file found inside a granted folder, checked again after resolving links (a link in a
    dataset folder must not lead out of it); None for anything that is not a regular file."""
    try:
        real = p.resolve(strict=True)
        st = os.stat(real)
    except (OSError, RuntimeError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if not any(_inside(real, r) for r in roots(base)):
        raise _err(f"{shown}: a link inside the data folder leads outside every permitted folder", "E506")
    return real


_memory: contextvars.ContextVar = contextvars.ContextVar("nndsl_data_memory", default=None)


def memory_limit() -> int | None:
    """The user's `--max-memory` (bytes) while data is opened; None means this machine's memory."""
    return _memory.get()


@contextlib.contextmanager
def memory(limit: int | None):
    token = _memory.set(limit)
    try:
        yield
    finally:
        _memory.reset(token)


def set_memory(limit: int | None) -> None:
    _memory.set(limit)


@contextlib.contextmanager
def scope(roots, max_memory: int | None):
    """What a program's data is opened under, as one block: the folders it was granted, or else
    those granted in this context (the command line's `--data-root`), and its memory limit.
    Checking and training a program both open its data, and must see the same gate."""
    with granted(roots or current()), memory(max_memory):
        yield


MAX_MEMBER_BYTES = 256 << 20


def read_member(folder: Path, p: Path, base: Path | None, shown: str) -> bytes:
    """The bytes of a file inside a data folder whose own subfolders were checked already: opened
    without following a final symlink and without blocking (a FIFO is refused, not waited on),
    then checked to be a regular file. A symlinked file takes the slower path through `member`,
    which resolves it and checks the target against the permitted roots."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(p, flags)
    except OSError:
        real = member(folder, p, base, shown)
        if real is None:
            raise _err(f"{shown} is not a regular file", "E507") from None
        fd = os.open(real, flags & ~getattr(os, "O_NOFOLLOW", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _err(f"{shown} is not a regular file", "E507")
        if st.st_size > MAX_MEMBER_BYTES:
            raise _err(f"{shown} is over {MAX_MEMBER_BYTES >> 20} MiB", "E409")
        chunks, left = [], st.st_size
        while left > 0:
            b = os.read(fd, left)
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)
