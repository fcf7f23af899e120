"""Data sources for `data ...` in train blocks: digits, ring_gaussians, logic gates, npz, csv.

A source states its schema up front: per-example shapes and dtypes (`fields`) and, per field,
what its values can be (`values`: a range, or integer ids below a count of classes or a vocabulary
size). The checker reads both before any data is read: a train block is shape-checked, and
`cross_entropy`, `accuracy` and `embed` are checked against the labels and token ids they will
get. Arrays load only when training starts.

To declare a new source's schema: give DataSource its `fields` and a `values` dict with one
`Values` per field whose values are known (`Values(classes=10)` for labels 0..9,
`Values(vocab=n)` for token ids, `Values(low=0, high=1)` for pixels). A field left out is
simply not checked.
"""
from __future__ import annotations

import gzip
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..attrs import Attr, OpError
from ..ir.types import TensorType
from . import paths

DATA_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Values:
    """What one field's values can be, known without reading the data."""

    low: float | None = None  # inclusive bounds
    high: float | None = None
    classes: int | None = None  # integer class ids 0..classes-1
    vocab: int | None = None  # integer token ids 0..vocab-1

    @property
    def ids(self) -> int | None:
        """How many distinct integer ids the field may hold (classes or vocabulary), if known."""
        return self.classes if self.classes is not None else self.vocab

    def describe(self) -> str:
        if self.classes is not None:
            return f"class ids 0..{self.classes - 1} ({self.classes} classes)"
        if self.vocab is not None:
            return f"token ids 0..{self.vocab - 1} (a vocabulary of {self.vocab})"
        return f"values in [{self.low:g}, {self.high:g}]"


@dataclass
class DataSource:
    name: str
    batch: int
    split: float
    fields: dict  # name -> TensorType of one example (no batch axis)
    loader: Callable[[], dict] = field(repr=False)
    vocab: str | None = None  # characters of a text source, id = position
    statics: dict = field(default_factory=dict)  # static facts a program may read: data.vocab, data.classes
    args: dict = field(default_factory=dict)  # the arguments it was made with
    values: dict = field(default_factory=dict)  # field -> Values: the schema's value part
    # Files read on demand (nndsl/data/files.py): () -> (train Table, held-out Table or None).
    # Such a source streams through the trainer's prefetching loader instead of `loader`.
    table: Callable | None = field(default=None, repr=False)
    classes: list | None = None  # class names, written next to the weights after training
    count: int | None = None  # examples found (train, held-out), for `nndsl check`
    span: object = None  # the `data` statement, where a file found broken while training is reported
    ranges: dict = field(default_factory=dict)  # field -> (low, high) of its values, where the format says

    @property
    def streams(self) -> bool:
        return self.table is not None

    def tables(self, seed: int = 0):
        """(train, held-out) Tables: the held-out files when the source has them, else a seeded
        split like `arrays`; held-out is None when nothing is held out."""
        train, test = self.table()
        if test is not None or self.split >= 1:
            return train, test
        perm = np.random.default_rng(seed).permutation(len(train))
        k = round(len(train) * self.split)
        if k < 1:
            from .files import DataError
            raise DataError(f"split={self.split} leaves none of the {len(train)} examples for training")
        return train.subset(perm[:k]), (train.subset(perm[k:]) if k < len(train) else None)

    def arrays(self, seed: int = 0) -> tuple[dict, dict]:
        """(train, held-out) arrays, split with a seeded shuffle."""
        if self.table is not None:  # small file-backed data read whole (tests, samples)
            train, test = self.tables(seed)
            train_a = train.all()
            return train_a, (test.all() if test is not None else train_a)
        data = self.loader()
        n = len(next(iter(data.values())))
        perm = np.random.default_rng(seed).permutation(n)
        k = n if self.split >= 1 else round(n * self.split)
        train = {f: a[perm[:k]] for f, a in data.items()}
        test = {f: a[perm[k:]] for f, a in data.items()} if k < n else {f: a[:0] for f, a in data.items()}
        if self.split >= 1:
            test = train
        return train, test


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits shipped with nndsl: pixels 0..16 and labels 0..9."""
    with gzip.open(DATA_DIR / "digits.csv.gz", "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float32)
    return raw[:, :64].reshape(-1, 8, 8), raw[:, 64].astype(np.int32)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of [n, h, w] images (jax.image, so no image library is needed)."""
    import jax.image
    import jax.numpy as jnp
    n = images.shape[0]
    out = jax.image.resize(jnp.asarray(images), (n, size, size), "linear")
    return np.asarray(out)


def _digits(batch, split, size, flat):
    if size < 1 or size > 256:
        raise OpError(f"digits size must be between 1 and 256, got {size}")

    def load():
        x, y = load_digits()
        x = x / 16.0
        if size != 8:
            x = resize(x, size)
        x = x[..., None].astype(np.float32)
        if flat:
            x = x.reshape(len(x), -1)
        return {"x": x, "y": y}
    shape = (size * size,) if flat else (size, size, 1)
    return DataSource("digits", batch, split, {"x": TensorType(shape), "y": TensorType((), "int32")}, load,
                      statics={"classes": 10}, values={"x": Values(0.0, 1.0), "y": Values(classes=10)})


def _ring(modes, batch, radius, std, n, seed):
    def load():
        rng = np.random.default_rng(seed)
        k = rng.integers(0, modes, n)
        ang = 2 * math.pi * k / modes
        x = np.stack([radius * np.cos(ang), radius * np.sin(ang)], 1) + std * rng.standard_normal((n, 2))
        return {"x": x.astype(np.float32), "y": k.astype(np.int32)}
    return DataSource("ring_gaussians", batch, 1.0,
                      {"x": TensorType((2,)), "y": TensorType((), "int32")}, load,
                      values={"y": Values(classes=modes)})


def _logic(gate, batch, signed):
    gates = {"and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
             "nand": lambda a, b: 1 - (a & b), "nor": lambda a, b: 1 - (a | b)}
    if gate not in gates:
        raise OpError(f"logic gate must be one of {', '.join(gates)}, got \"{gate}\"")

    def load():
        a = np.array([0, 0, 1, 1])
        b = np.array([0, 1, 0, 1])
        y = gates[gate](a, b).astype(np.float32)
        if signed:
            y = 2 * y - 1
        return {"x": np.stack([a, b], 1).astype(np.float32), "y": y}
    return DataSource("logic", batch, 1.0, {"x": TensorType((2,)), "y": TensorType(())}, load,
                      values={"x": Values(0.0, 1.0), "y": Values(-1.0 if signed else 0.0, 1.0)})


def _motifs(batch, split, length, classes, noise, n, seed):
    from .generated import motifs
    if length < 16:
        raise OpError(f"motifs need length of at least 16, got {length}")
    return DataSource("motifs", batch, split, {"x": TensorType((length, 1)), "y": TensorType((), "int32")},
                      lambda: motifs(n, length, classes, noise, seed), statics={"classes": classes},
                      values={"y": Values(classes=classes)})


def _volumes(batch, split, size, noise, n, seed):
    from .generated import volumes
    if size < 8:
        raise OpError(f"volumes need size of at least 8, got {size}")
    return DataSource("volumes", batch, split, {"x": TensorType((size, size, size, 1)),
                                                "y": TensorType((), "int32")},
                      lambda: volumes(n, size, noise, seed), statics={"classes": 3},
                      values={"y": Values(classes=3)})


def _adding(batch, split, length, n, seed):
    from .generated import adding
    if length < 2:
        raise OpError(f"the adding problem needs length of at least 2, got {length}")
    return DataSource("adding", batch, split, {"x": TensorType((length, 2)), "y": TensorType((1,))},
                      lambda: adding(n, length, seed), values={"x": Values(0.0, 1.0), "y": Values(0.0, 2.0)})


def _sentiment(batch, split, length, vocab, n, seed):
    from .generated import sentiment
    if vocab < 20:
        raise OpError(f"sentiment needs a vocabulary of at least 20, got {vocab}")
    return DataSource("sentiment", batch, split, {"x": TensorType((length,), "int32"),
                                                  "y": TensorType((), "int32"), "n": TensorType((), "int32")},
                      lambda: sentiment(n, length, vocab, seed), statics={"vocab": vocab, "classes": 2},
                      values={"x": Values(vocab=vocab), "y": Values(classes=2),
                              "n": Values(float(length // 3), float(length))})


def _tagging(batch, split, length, vocab, n, seed):
    from .generated import tagging
    return DataSource("tagging", batch, split, {"x": TensorType((length,), "int32"),
                                                "y": TensorType((length,), "int32")},
                      lambda: tagging(n, length, vocab, seed), statics={"vocab": vocab, "classes": 2},
                      values={"x": Values(vocab=vocab), "y": Values(classes=2)})


def _reverse(batch, split, length, vocab, n, seed):
    from .generated import reverse
    t = TensorType((length,), "int32")
    return DataSource("reverse", batch, split, {"x": t, "y": t, "prev": t},
                      lambda: reverse(n, length, vocab, seed), statics={"vocab": vocab},
                      values={f: Values(vocab=vocab) for f in ("x", "y", "prev")})


TEXTS = {"sonnets": "sonnets.txt"}


def text_vocab(name: str) -> str:
    from .generated import text_windows
    return text_windows((DATA_DIR / TEXTS[name]).read_text(), 2, 1)[1]


def _text(name, batch, split, seq, stride):
    from .generated import text_windows
    if name not in TEXTS:
        raise OpError(f"no bundled text \"{name}\"; texts: {', '.join(TEXTS)}")
    vocab = text_vocab(name)
    src = DataSource("text", batch, split, {"x": TensorType((seq,), "int32"), "y": TensorType((seq,), "int32")},
                     lambda: text_windows((DATA_DIR / TEXTS[name]).read_text(), seq, stride)[0])
    src.vocab = vocab
    src.statics = {"vocab": len(vocab)}
    src.values = {"x": Values(vocab=len(vocab)), "y": Values(vocab=len(vocab))}
    return src


def _npz(path, batch, split, base):
    from .files import npz_file
    real = paths.resolve(path, base)
    table = npz_file(real, path)
    fields = {k: TensorType(tuple(shape), dt) for k, (shape, dt) in table.fields.items()}
    src = DataSource("npz", batch, split, fields, table.all, table=lambda: (npz_file(real, path), None))
    src.count = (len(table), 0)
    return src


MAX_CSV_BYTES = 1 << 30


def _csv(path, batch, split, label, base):
    from .files import DataError
    real = paths.resolve(path, base)
    cols = _csv_width(real, path)
    if cols < 2:
        raise DataError(f"{path}: a row needs at least two columns (features and a label)")
    lab = label % cols

    def load():
        raw = _csv_rows(real, path, None)
        x = np.delete(raw, lab, axis=1)
        return {"x": x, "y": raw[:, lab].astype(np.int32)}
    return DataSource("csv", batch, split, {"x": TensorType((cols - 1,)), "y": TensorType((), "int32")}, load)


def _csv_width(real: Path, shown: str) -> int:
    """Columns of the first row, reading at most 1 MiB (what `nndsl check` reads of a CSV file)."""
    from .files import DataError
    try:
        with open(real, "rb") as f:
            while True:
                line = f.readline(1 << 20)
                if not line:
                    raise DataError(f"{shown} holds no rows")
                if len(line) >= 1 << 20 and not line.endswith(b"\n"):
                    raise DataError(f"{shown}: the first row is over 1 MiB; is it a CSV file?")
                text = line.decode("utf-8", errors="replace").split("#", 1)[0].strip()
                if text:
                    break
    except OSError:
        raise DataError(f"{shown} cannot be read") from None
    cells = text.split(",")
    for j, c in enumerate(cells, 1):
        try:
            float(c)
        except ValueError:
            raise DataError(f"{shown}: column {j} of the first row is not a number",
                            help="csv(...) reads numbers only, without a header row") from None
    return len(cells)


def _csv_rows(real: Path, shown: str, max_rows: int | None) -> np.ndarray:
    """Numbers of a CSV file. A ragged row or a cell that is not a number is an error naming the
    file, line and column; the cell itself is never quoted (the file may be anything)."""
    import os

    from .files import DataError
    if os.stat(real).st_size > MAX_CSV_BYTES:
        raise DataError(f"{shown} is over {MAX_CSV_BYTES >> 20:,} MiB; save large data as .npy shards",
                        code="E409")
    try:
        return np.loadtxt(real, delimiter=",", dtype=np.float32, ndmin=2, max_rows=max_rows)
    except (ValueError, OSError, UnicodeDecodeError):
        pass
    width = None
    try:
        with open(real, "rb") as f:
            for i, raw in enumerate(f, 1):
                if max_rows is not None and i > max_rows:
                    break
                line = raw.decode("utf-8", errors="replace").split("#", 1)[0].strip()
                if not line:
                    continue
                cells = line.split(",")
                if width is None:
                    width = len(cells)
                elif len(cells) != width:
                    raise DataError(f"{shown}:{i}: a row of {len(cells)} values where the first row has {width}",
                                    help="every row of a CSV file needs the same number of columns")
                for j, c in enumerate(cells, 1):
                    try:
                        float(c)
                    except ValueError:
                        raise DataError(f"{shown}:{i}: column {j} is not a number") from None
    except OSError:
        raise DataError(f"{shown} cannot be read") from None
    raise DataError(f"{shown} is not a CSV file of numbers" if width else f"{shown} holds no rows")


def _table_source(name, batch, split, make) -> DataSource:
    """A source over files read on demand; shapes, count and classes come from headers and
    listings only (what `nndsl check` reports)."""
    from .files import DataError
    train, test = make()
    if len(train) == 0:
        raise DataError(f"{train.where or name} holds no examples")
    fields = {k: TensorType(tuple(shape), dt) for k, (shape, dt) in train.fields.items()}
    src = DataSource(name, batch, split, fields, lambda: train.all(), table=make)
    if train.classes is not None:
        src.classes = list(train.classes)
        src.statics = {"classes": len(train.classes)}
    src.count = (len(train), len(test) if test is not None else 0)
    src.ranges = {k: v for k, v in train.ranges.items() if v is not None}
    # the schema the checker reads (labels against logits, pixels' range)
    if src.classes and "y" in fields and not fields["y"].is_float:
        src.values["y"] = Values(classes=len(src.classes))
    for k, (lo, hi) in src.ranges.items():
        src.values.setdefault(k, Values(float(lo), float(hi)))
    return src


def _images(path, size, channels, batch, split, held_out, base):
    from .files import image_folder
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise OpError("images(...) decodes with Pillow, which is not installed",
                      help="pip install 'nndsl[images]'") from None
    if channels not in (1, 3):
        raise OpError(f"images need channels=1 (grayscale) or 3 (RGB), got {channels}")
    if not 1 <= size <= 1024:
        raise OpError(f"images size must be between 1 and 1024, got {size}")
    folder = paths.resolve(path, base, "dir")
    other = paths.resolve(held_out, base, "dir") if held_out else None

    def make():
        train = image_folder(folder, path, base, size, channels)
        test = image_folder(other, held_out, base, size, channels, train.classes) if other else None
        return train, test
    return _table_source("images", batch, 1.0 if other else split, make)


def _mnist(path, batch, base):
    from .files import mnist_folder
    folder = paths.resolve(path, base, "dir")
    return _table_source("mnist", batch, 1.0, lambda: mnist_folder(folder, path, base))


def _cifar10(path, batch, base):
    from .files import cifar10_folder
    folder = paths.resolve(path, base, "dir")
    return _table_source("cifar10", batch, 1.0, lambda: cifar10_folder(folder, path, base))


def _npy(path, batch, split, base):
    from .files import npy_folder
    folder = paths.resolve(path, base, "dir")
    return _table_source("npy", batch, split, lambda: (npy_folder(folder, path, base), None))


SOURCES = {
    "digits": ((Attr("batch", "int", 64), Attr("split", "float", 0.8), Attr("size", "int", 8),
                Attr("flat", "bool", False)), _digits),
    "ring_gaussians": ((Attr("modes", "int", 8), Attr("batch", "int", 256), Attr("radius", "float", 2.0),
                        Attr("std", "float", 0.02), Attr("n", "int", 50_000), Attr("seed", "int", 0)), _ring),
    "logic": ((Attr("gate", "str", "and"), Attr("batch", "int", 4), Attr("signed", "bool", False)), _logic),
    "motifs": ((Attr("batch", "int", 64), Attr("split", "float", 0.8), Attr("length", "int", 64),
                Attr("classes", "int", 3), Attr("noise", "float", 0.5), Attr("n", "int", 2000),
                Attr("seed", "int", 0)), _motifs),
    "volumes": ((Attr("batch", "int", 32), Attr("split", "float", 0.8), Attr("size", "int", 16),
                 Attr("noise", "float", 0.2), Attr("n", "int", 900), Attr("seed", "int", 0)), _volumes),
    "adding": ((Attr("batch", "int", 64), Attr("split", "float", 0.9), Attr("length", "int", 100),
                Attr("n", "int", 20000), Attr("seed", "int", 0)), _adding),
    "sentiment": ((Attr("batch", "int", 64), Attr("split", "float", 0.8), Attr("length", "int", 24),
                   Attr("vocab", "int", 40), Attr("n", "int", 4000), Attr("seed", "int", 0)), _sentiment),
    "tagging": ((Attr("batch", "int", 64), Attr("split", "float", 0.8), Attr("length", "int", 20),
                 Attr("vocab", "int", 10), Attr("n", "int", 3000), Attr("seed", "int", 0)), _tagging),
    "reverse": ((Attr("batch", "int", 64), Attr("split", "float", 0.8), Attr("length", "int", 8),
                 Attr("vocab", "int", 10), Attr("n", "int", 6000), Attr("seed", "int", 0)), _reverse),
    "text": ((Attr("name", "str", "sonnets"), Attr("batch", "int", 32), Attr("split", "float", 0.9),
              Attr("seq", "int", 64), Attr("stride", "int", 3)), _text),
    "npz": ((Attr("path", "str"), Attr("batch", "int", 64), Attr("split", "float", 0.8)), _npz),
    "csv": ((Attr("path", "str"), Attr("batch", "int", 64), Attr("split", "float", 0.8),
             Attr("label", "int", -1)), _csv),
    "images": ((Attr("path", "str"), Attr("size", "int", 32), Attr("channels", "int", 3),
                Attr("batch", "int", 64), Attr("split", "float", 0.8), Attr("held_out", "str", "")), _images),
    "mnist": ((Attr("path", "str"), Attr("batch", "int", 64)), _mnist),
    "cifar10": ((Attr("path", "str"), Attr("batch", "int", 64)), _cifar10),
    "npy": ((Attr("path", "str"), Attr("batch", "int", 64), Attr("split", "float", 0.8)), _npy),
}
FILE_SOURCES = {"npz", "csv", "images", "mnist", "cifar10", "npy"}


def make_source(name: str, attrs: dict, base: Path | None) -> DataSource:
    _, factory = SOURCES[name]
    if attrs.get("batch", 1) < 1:
        raise OpError(f"batch must be at least 1, got {attrs['batch']}")
    if "split" in attrs and not 0 < attrs["split"] <= 1:
        raise OpError(f"split must be in (0, 1], got {attrs['split']}")
    from .generated import check_args, footprint
    check_args(name, attrs)
    src = factory(**attrs, base=base) if name in FILE_SOURCES else factory(**attrs)
    src.args = dict(attrs)
    src.nbytes = footprint(src)  # known before anything is generated: limits.check_graph counts it
    return src
