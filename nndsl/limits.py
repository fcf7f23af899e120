"""Resource limits, checked with Python integers before anything is allocated: JAX aborts the whole
process on some impossible shapes (an extent past 2**31), which no `except` can catch."""
from __future__ import annotations

import os

from .errors import LimitError

MAX_EXTENT = 2**31 - 1
MAX_SOURCE_BYTES = 10 * 1024 * 1024  # one .nn file, read from disk or given to loads()


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


def check_graph(g, max_memory: int | None = None, what: str = "the model", batch: int | None = None,
                data=None, data_span=None) -> None:
    """Raises a located LimitError when the parameters, the parameters with every activation at
    `batch` (when the graph's batch is symbolic) and the data set `data` exceed `max_memory`
    (default: this machine's memory), or any tensor has an extent JAX cannot represent. `check`,
    `init`, `apply` and training all ask here, so they agree on what fits."""
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
    acts, big_act, big_node = 0, 0, None
    for n in g.nodes():
        t = n.type
        for tt in (t if isinstance(t, tuple) else (t,)):
            # symbolic dims count as 1 (`batch` as the batch given): if even that is too big, every
            # size is
            size = 1
            for d in getattr(tt, "shape", ()):
                size *= d if isinstance(d, int) else batch if d == "batch" and batch else 1
            if size > MAX_EXTENT:
                raise LimitError(f"{n.label or n.op} would produce {size:,} elements, more than one array "
                                 f"can hold ({MAX_EXTENT:,})", n.span, code="E401")
            nbytes = size * ITEMSIZE.get(getattr(tt, "dtype", "float32"), 4)
            acts += nbytes
            if nbytes > big_act:
                big_act, big_node = nbytes, n
    data_bytes = data_size(data)
    if total + acts + data_bytes > limit:
        # every intermediate value at once: an upper bound on what one step keeps alive (training
        # keeps them all for the backward pass), checked before anything is allocated
        parts = ", ".join(f"{k} {human(v)}" for k, v in (("parameters", total), ("activations", acts),
                                                         ("data", data_bytes)) if v)
        if data_bytes >= acts:
            raise LimitError(f"{what} needs about {human(total + acts + data_bytes)} ({parts}), more than the "
                             f"memory limit of {human(limit)}; the data set alone is {human(data_bytes)}",
                             data_span, code="E401",
                             help="generate fewer examples (`n=`), or raise the limit with --max-memory")
        label = big_node.label or big_node.op
        raise LimitError(f"{what} needs about {human(total + acts + data_bytes)} ({parts})"
                         f"{f' at batch {batch}' if batch else ''}, more than the memory limit of {human(limit)}; "
                         f"the largest activation is {label}'s {human(big_act)}", big_node.span, code="E401",
                         help="use a smaller batch or smaller layers, or raise the limit with --max-memory")


ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int32": 4, "int64": 8, "int16": 2,
            "int8": 1, "uint8": 1, "bool": 1}


def data_size(data) -> int:
    """Bytes a data source will hold once loaded, when known before loading (generated sources
    know it from their arguments: examples x features x dtype, and the temporaries that make them)."""
    return int(getattr(data, "nbytes", 0) or 0) if data is not None else 0
