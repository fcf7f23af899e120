"""Resource limits, checked with Python integers before anything is allocated: JAX aborts the whole
process on some impossible shapes (an extent past 2**31), which no `except` can catch."""
from __future__ import annotations

import os

from .errors import LimitError

MAX_EXTENT = 2**31 - 1


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def human(n: float) -> str:
    if n >= 1024.0**7:  # past EiB (and past what a float holds): say how large, not the digits
        return f"about 2**{int(n).bit_length() - 1} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024:
            return f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} EiB"


def check_graph(g, max_memory: int | None = None, what: str = "the model") -> None:
    """Raises a located LimitError when the parameters alone exceed `max_memory` (default: this
    machine's memory) or any tensor has an extent JAX cannot represent."""
    limit = max_memory or machine_memory()
    total, biggest, where = 0, 0, None
    spans = {}
    for n in g.nodes():
        if n.path is not None:
            spans.setdefault(n.path, n.span)
    for registry in (g.params, g.state):
        for path, spec in registry.items():
            size = spec.size() or 0
            nbytes = size * 4
            total += nbytes
            if nbytes > biggest:
                biggest, where = nbytes, path
    if total > limit:
        span = spans.get(where[:-1]) or spans.get(where)
        raise LimitError(f"{what} would hold {total // 4:,} parameters ({human(total)} as f32), more than "
                         f"the memory limit of {human(limit)}; the largest is `{'.'.join(where)}` "
                         f"({human(biggest)})", span, code="E401",
                         help="use smaller layers, or raise the limit with --max-memory")
    for n in g.nodes():
        t = n.type
        for tt in (t if isinstance(t, tuple) else (t,)):
            # symbolic dims count as 1: if even that is too big, every batch size is
            size = 1
            for d in getattr(tt, "shape", ()):
                size *= d if isinstance(d, int) else 1
            if size > MAX_EXTENT:
                raise LimitError(f"{n.label or n.op} would produce {size:,} elements, more than one array "
                                 f"can hold ({MAX_EXTENT:,})", n.span, code="E401")
