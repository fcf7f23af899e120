"""Datasets on disk: image folders, MNIST's IDX files, CIFAR-10's binary batches, `.npy` shards and
`.npz` archives.

Each is a `Table`: its size, classes and per-example shapes are known from folder listings and
file headers alone (so `nndsl check` reports them without reading every file), and rows are read
only when a batch asks for them: uncompressed arrays by memory mapping, images by decoding just
the files of that batch. Nothing is unpickled. Every header is checked against the file's size
before anything is allocated, so a truncated file or one whose header claims 10^9 rows is a clear
error naming the file, never a crash or a huge allocation. No message quotes the file's bytes.
"""
from __future__ import annotations

import gzip
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..attrs import OpError
from . import paths


class DataError(OpError):
    """A data file that cannot be used; `code` picks the documented error code."""

    def __init__(self, message: str, code: str = "E356", help: str | None = None):
        super().__init__(message, help)
        self.code = code


def memory_limit() -> int:
    from ..limits import machine_memory
    return paths.memory_limit() or machine_memory()


@dataclass
class Table:
    """Rows of a dataset read on demand: `take(indices)` returns one array per field.

    `fields` maps a field to (shape of one example, dtype after conversion); `classes` lists
    class names when the data has them. `read(idx)` returns the raw rows, `convert` turns them
    into what the program sees (float32 in [0, 1] for images)."""

    n: int
    fields: dict
    read: Callable[[np.ndarray], dict] = field(repr=False)
    classes: list | None = None
    where: str = ""  # shown in messages: the path as the .nn file wrote it
    ranges: dict = field(default_factory=dict)  # field -> (low, high) of its values, where known

    def __len__(self) -> int:
        return self.n

    def take(self, idx) -> dict:
        idx = np.asarray(idx, dtype=np.int64)
        return self.read(idx)

    def subset(self, idx) -> Table:
        base = np.asarray(idx, dtype=np.int64)
        return Table(len(base), self.fields, lambda i: self.read(base[i]), self.classes, self.where,
                     self.ranges)

    def all(self) -> dict:
        return self.take(np.arange(self.n))


# ----------------------------------------------------------------------------------- helpers
def _npy_header(f, shown: str) -> tuple[tuple, np.dtype, bool, int]:
    """(shape, dtype, fortran order, header length) of an open .npy stream, never unpickling."""
    try:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read(f, max_header_size=10_000)
    except (ValueError, OSError, EOFError, SyntaxError):
        raise DataError(f"{shown} is not a valid .npy array (bad or truncated header)") from None
    if dtype.hasobject:
        raise DataError(f"{shown} holds Python objects; only numeric arrays load")
    if dtype.kind not in "fiub":
        raise DataError(f"{shown}: arrays of type {dtype} are not supported (numbers only)")
    return tuple(int(s) for s in shape), dtype, bool(fortran), f.tell()


def _nbytes(shape, dtype) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n * np.dtype(dtype).itemsize


def _out_dtype(d) -> str:
    return "float32" if np.dtype(d).kind == "f" else "int32"


def _convert(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32 if a.dtype.kind == "f" else np.int32)


def _rows(real: Path, dtype, offset: int, shape: tuple, idx: np.ndarray, order: str = "C") -> np.ndarray:
    """Rows `idx` of an array stored at `offset` in `real`, read through a memory map that is
    unmapped again at once: the pages stay in the OS's file cache, not in this process's resident
    memory, so streaming a dataset larger than memory keeps resident memory flat."""
    m = np.memmap(real, dtype=dtype, mode="r", offset=offset, shape=shape, order=order)
    rows = np.array(m[idx])
    del m  # the last reference: numpy unmaps it
    return rows


def _check_rows(counts: dict, shown: str) -> int:
    n = set(counts.values())
    if len(n) != 1:
        detail = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise DataError(f"{shown}: the arrays have different numbers of examples ({detail})")
    return n.pop()


# ----------------------------------------------------------------------------------- .npy shards
SHARD = re.compile(r"^(?P<field>.+?)(?:[_.-](?P<num>\d+))?\.npy$")


def npy_folder(folder: Path, shown: str, base) -> Table:
    """A folder of `.npy` shards: `x_000.npy, x_001.npy, ..., y_000.npy, ...` (or just `x.npy`,
    `y.npy`): the field is the name before the shard number; shards concatenate in number order.
    Every shard is memory-mapped, so a dataset larger than memory streams."""
    groups: dict = {}
    for p in sorted(folder.iterdir()):
        m = SHARD.match(p.name)
        if not m:
            continue
        real = paths.member(folder, p, base, f"{shown}/{p.name}")
        if real is None:
            continue
        groups.setdefault(m.group("field"), []).append((int(m.group("num") or 0), real, f"{shown}/{p.name}"))
    if not groups:
        raise DataError(f"{shown} holds no .npy files", help="name shards FIELD_000.npy, FIELD_001.npy, ...")
    maps: dict = {}
    fields, counts = {}, {}
    for fname, shards in groups.items():
        shards.sort()
        arrays, shape0, dtype0 = [], None, None
        for _, real, name in shards:
            with open(real, "rb") as f:
                shape, dtype, fortran, offset = _npy_header(f, name)
            if not shape:
                raise DataError(f"{name} holds a single number, not rows of examples")
            need = offset + _nbytes(shape, dtype)
            have = os.stat(real).st_size
            if have < need:
                raise DataError(f"{name} is truncated: its header describes {need:,} bytes, the file has {have:,}")
            if shape0 is not None and (shape[1:] != shape0 or dtype != dtype0):
                raise DataError(f"{name}: shard of shape {list(shape)} ({dtype}) does not match the first "
                                f"shard of `{fname}` ({list(shape0)}, {dtype0})")
            shape0, dtype0 = shape[1:], dtype
            arrays.append((real, offset, shape, dtype, fortran))
        maps[fname] = arrays
        fields[fname] = (shape0, _out_dtype(dtype0))
        counts[fname] = sum(a[2][0] for a in arrays)
    n = _check_rows(counts, shown)

    def read(idx):
        out = {}
        for fname, parts in maps.items():
            ends = np.cumsum([p[2][0] for p in parts])
            which = np.searchsorted(ends, idx, side="right")
            starts = np.concatenate([[0], ends[:-1]])
            res = np.empty((len(idx),) + tuple(fields[fname][0]), dtype=parts[0][3])
            for s in np.unique(which):
                sel = which == s
                r, o, shape, d, fo = parts[s]
                res[sel] = _rows(r, d, o, shape, idx[sel] - starts[s], "F" if fo else "C")
            out[fname] = _convert(res)
        return out
    return Table(n, fields, read, where=shown)


# ----------------------------------------------------------------------------------- .npz
# A compressed member expanding more than BOMB_RATIO-fold past BOMB_BYTES is refused whatever the
# memory limit: real numeric data compresses a few-fold (MNIST's mostly black pixels about 8x),
# deflate's ceiling is about 1,000x, and only constructed input comes near it.
BOMB_RATIO = 200
BOMB_BYTES = 64 << 20


@dataclass(frozen=True)
class _Member:
    """One array of an .npz archive as its headers describe it, checked before any data is read."""

    info: zipfile.ZipInfo
    shape: tuple
    dtype: np.dtype
    fortran: bool
    hlen: int  # length of the member's .npy header: the data starts right after it
    nbytes: int

    @property
    def stored(self) -> bool:
        return self.info.compress_type == zipfile.ZIP_STORED


def _npz_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, shown: str) -> _Member:
    """Read and check one member's header against its zip entry, so a forged row count, a
    truncated member or a zip bomb is refused from the headers alone, before decompressing."""
    with z.open(info) as f:
        shape, dtype, fortran, hlen = _npy_header(f, f"{shown} (array `{name}`)")
    if not shape:
        raise DataError(f"{shown}: array `{name}` is a single number, not rows of examples")
    nbytes = _nbytes(shape, dtype)
    if nbytes + hlen > info.file_size:
        raise DataError(f"{shown}: array `{name}` claims {nbytes:,} bytes but its member holds "
                        f"{info.file_size:,} (truncated or forged)")
    if (info.compress_type != zipfile.ZIP_STORED and nbytes > BOMB_BYTES
            and nbytes > BOMB_RATIO * max(info.compress_size, 1)):
        raise DataError(f"{shown}: array `{name}` would expand {nbytes // max(info.compress_size, 1):,}"
                        f"-fold to {nbytes:,} bytes (a zip bomb?)", code="E409",
                        help="save real data with np.savez (uncompressed: it is memory-mapped)")
    return _Member(info, shape, dtype, fortran, hlen, nbytes)


def _npz_members(real: Path, shown: str) -> dict[str, _Member]:
    """Every .npy member of the archive, by array name; a damaged archive or one without arrays
    is one clear error rather than zipfile's own exceptions."""
    members = {}
    try:
        with zipfile.ZipFile(real) as z:
            for info in z.infolist():
                if info.filename.endswith(".npy"):
                    name = info.filename[:-4]
                    members[name] = _npz_member(z, info, name, shown)
    except zipfile.BadZipFile:
        raise DataError(f"{shown} is not a valid .npz (zip) archive") from None
    except (OSError, EOFError, NotImplementedError):
        raise DataError(f"{shown} cannot be read (truncated or damaged)") from None
    if not members:
        raise DataError(f"{shown} holds no arrays")
    return members


def _npz_check_memory(members: dict[str, _Member], shown: str) -> None:
    """Compressed members are decompressed whole, so together they must fit the memory limit;
    stored ones are memory-mapped and cost nothing up front."""
    packed = sum(m.nbytes for m in members.values() if not m.stored)
    limit = memory_limit()
    if packed > limit:
        from ..limits import human
        raise DataError(f"{shown}: its compressed arrays would take {human(packed)} in memory, more than the "
                        f"limit of {human(limit)}", code="E409",
                        help="save it uncompressed (np.savez) so it is memory-mapped, or raise --max-memory")


def _npz_offset(real: Path, shown: str, name: str, m: _Member) -> int:
    """Where a stored member's data starts in the file: after the zip local header (whose name
    and extra lengths may differ from the central directory's) and the .npy header."""
    with open(real, "rb") as f:
        f.seek(m.info.header_offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise DataError(f"{shown}: damaged zip entry for `{name}`")
        nlen, xlen = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    start = m.info.header_offset + 30 + nlen + xlen + m.hlen
    if start + m.nbytes > os.stat(real).st_size:
        raise DataError(f"{shown} is truncated (array `{name}`)")
    return start


def _npz_inflate(real: Path, shown: str, name: str, m: _Member) -> np.ndarray:
    """A compressed member decompressed whole (already checked against the memory limit); a
    member shorter than its header claims is an error, not a short array."""
    try:
        with zipfile.ZipFile(real) as z, z.open(m.info) as f:
            f.read(m.hlen)
            raw = f.read(m.nbytes)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise DataError(f"{shown}: array `{name}` is damaged (decompression failed)") from None
    if len(raw) != m.nbytes:
        raise DataError(f"{shown} is truncated (array `{name}`)")
    return np.frombuffer(raw, dtype=m.dtype).reshape(m.shape, order="F" if m.fortran else "C")


def npz_file(real: Path, shown: str) -> Table:
    """An .npz archive. Stored (uncompressed) members are memory-mapped in place; compressed ones
    are decompressed whole, but only after their headers' sizes pass the memory limit, so a zip
    bomb or a header claiming 10^9 rows is refused before anything is allocated."""
    members = _npz_members(real, shown)
    _npz_check_memory(members, shown)
    n = _check_rows({k: m.shape[0] for k, m in members.items()}, shown)
    fields = {k: (m.shape[1:], _out_dtype(m.dtype)) for k, m in members.items()}
    cache: dict = {}

    def array(name):
        """A stored member as (offset, dtype, shape, order), mapped per batch (see _rows); a
        compressed one as its decompressed array. Located or inflated once, on first use."""
        if name not in cache:
            m = members[name]
            cache[name] = ((_npz_offset(real, shown, name, m), m.dtype, m.shape, "F" if m.fortran else "C")
                           if m.stored else _npz_inflate(real, shown, name, m))
        return cache[name]

    def read(idx):
        out = {}
        for k in members:
            a = array(k)
            out[k] = _convert(_rows(real, a[1], a[0], a[2], idx, a[3]) if isinstance(a, tuple) else a[idx])
        return out
    return Table(n, fields, read, where=shown)


# ----------------------------------------------------------------------------------- MNIST (IDX)
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _idx_open(real: Path):
    return gzip.open(real, "rb") if real.name.endswith(".gz") else open(real, "rb")


def _idx_header(real: Path, shown: str) -> tuple[tuple, np.dtype, int]:
    try:
        with _idx_open(real) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] or head[1] or head[2] not in IDX_TYPES or not 1 <= head[3] <= 4:
                raise DataError(f"{shown} is not an IDX file (bad magic number)")
            dims = f.read(4 * head[3])
    except (OSError, EOFError, gzip.BadGzipFile):
        raise DataError(f"{shown} cannot be read (damaged or not gzip)") from None
    if len(dims) < 4 * head[3]:
        raise DataError(f"{shown} is truncated (inside its header)")
    shape = tuple(int.from_bytes(dims[i:i + 4], "big") for i in range(0, len(dims), 4))
    return shape, np.dtype(IDX_TYPES[head[2]]), 4 + 4 * head[3]


def _idx_read(real: Path, shown: str, shape, dtype, hlen) -> np.ndarray:
    nbytes = _nbytes(shape, dtype)
    if nbytes > memory_limit():
        raise DataError(f"{shown}: its header claims {nbytes:,} bytes, more than the memory limit", code="E409")
    if not real.name.endswith(".gz"):
        have = os.stat(real).st_size
        if have < hlen + nbytes:
            raise DataError(f"{shown} is truncated: its header describes {hlen + nbytes:,} bytes, the file "
                            f"has {have:,}")
        return np.memmap(real, dtype=dtype, mode="r", offset=hlen, shape=shape)
    try:
        with gzip.open(real, "rb") as f:
            f.read(hlen)
            raw = f.read(nbytes)  # bounded: a gzip bomb stops at what the header promised
    except (OSError, EOFError, gzip.BadGzipFile):
        raise DataError(f"{shown} is damaged (gzip data does not decompress)") from None
    if len(raw) < nbytes:
        raise DataError(f"{shown} is truncated: its header describes {hlen + nbytes:,} bytes, it holds "
                        f"{hlen + len(raw):,}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(folder: Path, stem: str, base, shown: str) -> tuple[Path, str] | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = folder / name
        if p.exists() or p.is_symlink():
            real = paths.member(folder, p, base, f"{shown}/{name}")
            if real is None:
                raise DataError(f"{shown}/{name} is not a regular file")
            return real, f"{shown}/{name}"
    return None


def mnist_folder(folder: Path, shown: str, base) -> tuple[Table, Table | None]:
    """MNIST (or Fashion-MNIST) as distributed: four IDX files, optionally gzipped; the official
    10,000-image test set is the held-out data."""
    out = []
    for part, (imgs, labs) in MNIST_FILES.items():
        fi, fl = _find(folder, imgs, base, shown), _find(folder, labs, base, shown)
        if fi is None or fl is None:
            if part == "test" and fi is None and fl is None:
                out.append(None)
                continue
            missing = imgs if fi is None else labs
            raise DataError(f"{shown} has no {missing} (or {missing}.gz)",
                            help="the MNIST folder holds train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                 "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, gzipped or not")
        (ri, si), (rl, sl) = fi, fl
        shape_i, dt_i, hi = _idx_header(ri, si)
        shape_l, dt_l, hl = _idx_header(rl, sl)
        if len(shape_i) != 3:
            raise DataError(f"{si} holds arrays of rank {len(shape_i)}, not images (rank 3)")
        if len(shape_l) != 1 or shape_l[0] != shape_i[0]:
            raise DataError(f"{sl} holds {shape_l[0] if shape_l else 0:,} labels for {shape_i[0]:,} images in {si}")
        out.append(_idx_table(ri, si, shape_i, dt_i, hi, rl, sl, shape_l, dt_l, hl, shown))
    return out[0], out[1]


def _idx_table(ri, si, shape_i, dt_i, hi, rl, sl, shape_l, dt_l, hl, shown) -> Table:
    cache: dict = {}

    def load():
        if not cache:
            cache["x"] = _idx_read(ri, si, shape_i, dt_i, hi)
            cache["y"] = _idx_read(rl, sl, shape_l, dt_l, hl)
        return cache["x"], cache["y"]

    def read(idx):
        x, y = load()
        xs = np.asarray(x[idx], dtype=np.float32)
        if dt_i == np.uint8:
            xs /= 255.0
        return {"x": xs[..., None], "y": np.asarray(y[idx], dtype=np.int32)}
    fields = {"x": (tuple(shape_i[1:]) + (1,), "float32"), "y": ((), "int32")}
    return Table(shape_i[0], fields, read, [str(i) for i in range(10)], shown,
                 {"x": (0.0, 1.0) if dt_i == np.uint8 else None, "y": (0, 9)})


# ----------------------------------------------------------------------------------- CIFAR-10
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_RECORD = 1 + 32 * 32 * 3


def cifar10_folder(folder: Path, shown: str, base) -> tuple[Table, Table | None]:
    """CIFAR-10's binary version: `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`
    (in the folder or its `cifar-10-batches-bin`), records of one label byte and 3,072 pixel bytes
    (channel-major), memory-mapped; the official test batch is the held-out data."""
    if not (folder / "data_batch_1.bin").exists() and (folder / "cifar-10-batches-bin").is_dir():
        folder, shown = folder / "cifar-10-batches-bin", f"{shown}/cifar-10-batches-bin"
    train = sorted(folder.glob("data_batch_*.bin"), key=lambda p: p.name)
    if not train:
        raise DataError(f"{shown} has no data_batch_1.bin",
                        help="unpack the binary version (cifar-10-binary.tar.gz) into this folder")
    names = CIFAR10_CLASSES
    meta = folder / "batches.meta.txt"
    real_meta = paths.member(folder, meta, base, f"{shown}/batches.meta.txt") if meta.exists() else None
    if real_meta is not None and os.stat(real_meta).st_size < 4096:
        lines = [ln.strip() for ln in real_meta.read_text(errors="replace").splitlines() if ln.strip()]
        if len(lines) == 10 and all(ln.isprintable() and len(ln) < 40 for ln in lines):
            names = lines

    def table(files) -> Table:
        parts = []
        for p in files:
            name = f"{shown}/{p.name}"
            real = paths.member(folder, p, base, name)
            if real is None:
                raise DataError(f"{name} is not a regular file")
            size = os.stat(real).st_size
            if size == 0 or size % CIFAR_RECORD:
                raise DataError(f"{name} is truncated or not a CIFAR-10 batch: {size:,} bytes is not a whole "
                                f"number of {CIFAR_RECORD:,}-byte records")
            parts.append((real, size // CIFAR_RECORD, name))
        n = sum(k for _, k, _ in parts)
        ends = np.cumsum([k for _, k, _ in parts])
        starts = np.concatenate([[0], ends[:-1]])

        def read(idx):
            which = np.searchsorted(ends, idx, side="right")
            rec = np.empty((len(idx), CIFAR_RECORD), np.uint8)
            for s in np.unique(which):
                sel = which == s
                r, k, _ = parts[s]
                rec[sel] = _rows(r, np.uint8, 0, (k, CIFAR_RECORD), idx[sel] - starts[s])
            y = rec[:, 0].astype(np.int32)
            if (y > 9).any():
                bad = parts[int(which[np.argmax(y > 9)])][2]
                raise DataError(f"{bad} is not a CIFAR-10 batch: a label byte is above 9")
            x = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float32) / 255.0
            return {"x": x, "y": y}
        return Table(n, {"x": ((32, 32, 3), "float32"), "y": ((), "int32")}, read, list(names), shown,
                     {"x": (0.0, 1.0), "y": (0, 9)})
    test = folder / "test_batch.bin"
    return table(train), table([test]) if test.exists() else None


# ----------------------------------------------------------------------------------- image folders
IMAGE_EXT = {".png", ".jpg", ".jpeg"}


def _image_listing(folder: Path, shown: str, base, classes: list | None) -> tuple[list, list, list]:
    """(classes, files, labels) from the folder listing alone. Given `classes` (the training
    data's), a folder lacking one is allowed but an extra one is an error: its label would mean
    nothing to the trained model. A class folder reached by a link must stay inside a permitted
    folder, like every other path the program reads."""
    found = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes is None:
        classes = found
        if not classes:
            raise DataError(f"{shown} has no class subfolders",
                            help="put each class's images in a subfolder named by the class: "
                                 f"{shown}/cat/001.png, {shown}/dog/001.png, ...")
    files, labels = [], []
    for k, c in enumerate(classes):
        d = folder / c
        if not d.is_dir():
            continue
        if not any(paths._inside(d.resolve(), r) for r in paths.roots(base)):
            raise DataError(f"{shown}/{c}: a link inside the data folder leads outside every permitted folder",
                            code="E506")
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in IMAGE_EXT:
                files.append(p)
                labels.append(k)
    extra = [c for c in found if c not in classes]
    if extra:
        raise DataError(f"{shown} has class folders the training data lacks: {', '.join(extra[:5])}")
    if not files:
        raise DataError(f"{shown} holds no .png or .jpg images")
    return classes, files, labels


def _decode_image(folder: Path, p: Path, base, shown: str, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (size, size, channels). It is read through the path gate and decoded
    from memory; an image too large to decode safely, or one Pillow cannot read, is an error
    naming the file, never Pillow's own exception."""
    import io

    from PIL import Image, UnidentifiedImageError
    rel = f"{shown}/{p.parent.name}/{p.name}"
    data = paths.read_member(folder, p, base, rel)
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > 64_000_000:
                raise DataError(f"{rel} is {im.width}x{im.height} pixels, too large to decode")
            im = im.convert("L" if channels == 1 else "RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8).reshape(size, size, channels)
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise DataError(f"{rel} is not a readable PNG or JPEG image (truncated or damaged)") from None


def image_folder(folder: Path, shown: str, base, size: int, channels: int,
                 classes: list | None = None) -> Table:
    """torchvision's ImageFolder layout: one subfolder per class, named by the class, holding PNG
    or JPEG files. The listing alone gives the count and classes; pixels are decoded (Pillow),
    converted to `channels` and resized to size x size only when a batch needs them."""
    classes, files, labels = _image_listing(folder, shown, base, classes)
    labels = np.array(labels, np.int32)
    # Decoded pixels are kept (uint8) when they fit in a quarter of the memory limit: every epoch
    # after the first reads memory instead of decoding again. Rows are filled by whichever loader
    # thread decodes them first; distinct rows, so no lock is needed.
    per = size * size * channels
    cache = {"on": len(files) * per <= memory_limit() // 4}
    if cache["on"]:  # np.zeros takes pages from the OS only as rows are written
        cache["x"], cache["have"] = np.zeros((len(files), size, size, channels), np.uint8), np.zeros(len(files), bool)

    def decode(i: int) -> np.ndarray:
        if cache["on"] and cache["have"][i]:
            return cache["x"][i]
        a = _decode_image(folder, files[i], base, shown, size, channels)
        if cache["on"]:
            cache["x"][i] = a
            cache["have"][i] = True
        return a

    def read(idx):
        if "have" in cache and cache["have"][idx].all():  # every row decoded before: one gather
            x = cache["x"][idx].astype(np.float32)
        else:
            x = np.empty((len(idx), size, size, channels), np.float32)
            for j, i in enumerate(idx):
                x[j] = decode(int(i))
        x *= 1.0 / 255.0
        return {"x": x, "y": labels[idx]}
    return Table(len(files), {"x": ((size, size, channels), "float32"), "y": ((), "int32")}, read,
                 list(classes), shown, {"x": (0.0, 1.0), "y": (0, len(classes) - 1)})
