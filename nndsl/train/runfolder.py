"""The run folder `nndsl train --out DIR` writes: checked before training, locked while a run
writes it, and never the only place a finished run's weights can go.

Why: an unwritable `--out` once let training run to the end and then lose everything with a
traceback, and two runs on the same folder both reported success while one silently overwrote the
other. So the folder is made and probed with a real file before the first step, an exclusive
`flock` on `DIR/.nndsl.lock` refuses a second run (the kernel drops the lock when a process dies,
so a killed run never leaves a stale one), and when saving fails anyway (a disk that filled up
during training) the weights go to a fallback folder and the message says where.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from ..errors import NndslError

LOCK_NAME = ".nndsl.lock"


def _why(e: OSError) -> str:
    return os.strerror(e.errno).lower() if e.errno else "an I/O error"


class RunFolder:
    """An exclusive hold on a run folder, from the check before training to the last save."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.fd: int | None = None

    def __enter__(self) -> RunFolder:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise NndslError(f"--out {out} is a file, not a folder", code="E610")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            in_way = next((p for p in [out, *out.parents] if p.exists() and not p.is_dir()), None)
            what = f"{in_way} is a file, not a folder" if in_way is not None else _why(e)
            raise NndslError(f"cannot create the run folder {out}: {what}", code="E640",
                             help="choose another --out; nothing was trained") from None
        self._probe()
        self._lock()

    def _probe(self) -> None:
        """A real write, not os.access: root passes access() on a read-only mount and on a
        folder it may not write, and only a write shows a full disk."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self.out, prefix=".nndsl-probe-", suffix=".tmp")
            try:
                os.write(fd, b"probe")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(tmp)
        except OSError as e:
            raise NndslError(f"cannot write in the run folder {self.out}: {_why(e)}", code="E641",
                             help="choose another --out, or make it writable; nothing was trained") from None

    def _lock(self) -> None:
        import fcntl
        path = self.out / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
        except OSError as e:
            raise NndslError(f"cannot lock the run folder {self.out}: {_why(e)}", code="E641") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise NndslError(f"another nndsl run is writing to {self.out}; two runs in one folder would "
                                 "overwrite each other's weights", code="E642",
                                 help="give this run another --out, or wait for the other to finish") from None
            raise NndslError(f"cannot lock the run folder {self.out}: {_why(e)}", code="E641") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock; the file stays, harmless, for the next run to lock
            self.fd = None

    def save(self, write) -> Path:
        """`write(folder)` into the run folder; if that fails, into a fallback folder, and an
        error saying where the weights are. Returns the folder written."""
        try:
            write(self.out)
            return self.out
        except OSError as e:
            first = e
        for base in _fallbacks(self.out):
            try:
                rescue = Path(tempfile.mkdtemp(prefix=f"nndsl-rescue-{self.out.name}-", dir=base))
                write(rescue)
            except OSError:
                continue
            raise NndslError(f"could not save the run to {self.out} ({_why(first)}); the trained weights and "
                             f"history were saved to {rescue} instead", code="E643",
                             help=f"move them from {rescue} to where they belong")
        raise NndslError(f"could not save the run to {self.out} ({_why(first)}), nor to any fallback "
                         "folder; the trained weights are lost", code="E643")


def _fallbacks(out: Path) -> list:
    bases = [tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd()]
    seen, out_list = set(), []
    for b in bases:
        if b and b not in seen and os.path.isdir(b):
            seen.add(b)
            out_list.append(b)
    return out_list
