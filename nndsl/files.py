"""The one way nndsl opens a file a user or a program names: regular files only, never read past a
limit, every failure a located NndslError.

Why one helper: `Path.read_bytes()` blocks forever on a FIFO, reads /dev/zero until memory runs
out and reads a 4 GB file whole before any limit can apply; `Path.resolve()` raises RuntimeError
on a symlink loop and ValueError on a NUL in the name. Each of these reached users as a hang or a
traceback from some path (the main file, an import, `fmt`, the language server, an artifact, a
checkpoint). Here the file is opened non-blocking, checked to be a regular file with fstat (no race
between checking and opening), and read at most `limit + 1` bytes.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import ImportFailure, LimitError, NndslError
from .limits import MAX_SOURCE_BYTES


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def check_name(path: str | Path, what: str = "file", span=None, error=ImportFailure) -> Path:
    """`path` as a Path, refused if no file could ever have that name (a NUL byte)."""
    text = os.fspath(path)
    if "\x00" in text:
        raise error(f"the {what} name contains a NUL character, which no file name can", span, code="E520")
    return Path(text)


def resolve(path: str | Path, what: str = "file", span=None, error=ImportFailure,
            name: str | None = None) -> Path:
    """Path.resolve(), with a symlink loop and an impossible name as located errors."""
    p = check_name(path, what, span, error)
    shown = _show(name if name is not None else p)
    try:
        return p.resolve()
    except RuntimeError:  # pathlib's own report of a symlink loop (Python < 3.13)
        raise error(f"{shown}: a loop of symbolic links", span, code="E521") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error(f"{shown}: a loop of symbolic links", span, code="E521") from None
        raise error(f"cannot resolve {shown} ({os.strerror(e.errno or 0).lower()})", span,
                    code="E501") from None


def _show(p) -> str:
    """The name as a message prints it: no control characters from a hostile name."""
    s = os.fspath(p)
    return "".join(c if c.isprintable() else "?" for c in s)


def read_bytes(path: str | Path, limit: int = MAX_SOURCE_BYTES, what: str = "file", span=None,
               error=ImportFailure, name: str | None = None) -> bytes:
    """The contents of the regular file `path`, refused (never opened for a blocking read) if it is
    a directory, FIFO, socket or device, and refused unread past `limit` bytes."""
    p = check_name(path, what, span, error)
    shown = _show(name or p)
    try:
        st = os.stat(p)
    except OSError as e:
        raise _os_error(e, p, shown, what, span, error) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{shown} is {_kind(st.st_mode)}, not a regular file", span, code="E522",
                    help=None if stat.S_ISDIR(st.st_mode) else "nndsl reads only regular files, never pipes or devices")
    if st.st_size > limit:
        raise _too_big(shown, st.st_size, limit, span)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _os_error(e, p, shown, what, span, error) from None
    try:
        st = os.fstat(fd)  # what was opened, not what was checked: the name may have changed between
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{shown} is {_kind(st.st_mode)}, not a regular file", span, code="E522")
        chunks, total = [], 0
        while total <= limit:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            except OSError as e:
                raise _os_error(e, p, shown, what, span, error) from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:  # the file grew after fstat, or st_size lied (a /proc file)
        raise _too_big(shown, None, limit, span)
    return b"".join(chunks)


def _too_big(shown: str, size: int | None, limit: int, span) -> LimitError:
    have = f"{size:,} bytes" if size is not None else "more than that"
    return LimitError(f"{shown} is {have}; the limit is {limit:,} bytes", span, code="E402")


def _os_error(e: OSError, p: Path, shown: str, what: str, span, error) -> NndslError:
    if e.errno == errno.ENOENT:
        return error(f"no such {what}: {shown}", span, code="E501")
    if e.errno == errno.ENOTDIR:
        parent = next((q for q in p.parents if q.is_file()), None)
        because = f" ({_show(parent.name)} is a file, not a folder)" if parent is not None else ""
        return error(f"no such {what}: {shown}{because}", span, code="E501")
    if e.errno == errno.EISDIR:
        return error(f"{shown} is a directory, not a regular file", span, code="E522")
    if e.errno == errno.ELOOP:
        return error(f"{shown}: a loop of symbolic links", span, code="E521")
    if e.errno in (errno.EACCES, errno.EPERM):
        return error(f"cannot read {shown}: permission denied", span, code="E523")
    if e.errno == errno.ENAMETOOLONG:
        return error(f"cannot read {shown}: the name is too long", span, code="E501")
    return error(f"cannot read {shown} ({os.strerror(e.errno or 0).lower() or 'an I/O error'})", span,
                 code="E523")


def check_text(text, name: str = "<string>", limit: int = MAX_SOURCE_BYTES):
    """Text given directly (`loads`): the size limit a file's contents get. (What is not text at
    all is the API's own check.)"""
    if isinstance(text, str) and len(text) > limit // 4:  # a str of n characters is at most 4n bytes
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise LimitError(f"{_show(name)} is {size:,} bytes; the limit is {limit:,} bytes", code="E402")
    return text
