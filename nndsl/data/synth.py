"""Small datasets written in the real formats (image folders, MNIST IDX, CIFAR-10 binary, `.npy`
shards), for tests, the runnable image-folder example and the loader benchmark: nothing is ever
downloaded. Classes are learnable: class k is a bright square in the k-th cell of a grid, on
noise, so a small CNN separates them in a few epochs.

    python -m nndsl.data.synth images DIR [--per-class N] [--classes K] [--size S]
    python -m nndsl.data.synth cifar10 DIR [--train N] [--test N]
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np


def pictures(n: int, size: int, channels: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images [n, size, size, channels] and their labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 90, (n, size, size, channels)).astype(np.uint8)
    grid = int(np.ceil(np.sqrt(classes)))
    cell = max(1, size // grid)
    for i, k in enumerate(y):
        r, c = divmod(int(k), grid)
        x[i, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 230
    return x, y.astype(np.int64)


def write_images(root, per_class: int = 20, classes: int = 3, size: int = 16, channels: int = 3,
                 fmt: str = "png", seed: int = 0, names=None) -> Path:
    """An ImageFolder tree: root/<class>/<i>.png."""
    from PIL import Image
    root = Path(root)
    names = names or [f"class{k}" for k in range(classes)]
    rng = np.random.default_rng(seed)
    i = 0
    for k in range(classes):
        d = root / names[k]
        d.mkdir(parents=True, exist_ok=True)
        for _ in range(per_class):
            img = _one(rng, size, channels, classes, k)
            im = Image.fromarray(img[..., 0] if channels == 1 else img, "L" if channels == 1 else "RGB")
            if fmt == "jpeg":
                im.save(d / f"{i:06d}.jpg", quality=95)
            else:
                im.save(d / f"{i:06d}.png")
            i += 1
    return root


def _one(rng, size, channels, classes, k):
    img = rng.integers(0, 90, (size, size, channels)).astype(np.uint8)
    grid = int(np.ceil(np.sqrt(classes)))
    cell = max(1, size // grid)
    r, c = divmod(k, grid)
    img[r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 230
    return img


def _idx(path: Path, a: np.ndarray, gz: bool) -> None:
    code = {np.dtype(np.uint8): 0x08}[a.dtype]
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    data = head + a.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist(root, n_train: int = 60, n_test: int = 20, size: int = 28, gz: bool = False, seed: int = 0) -> Path:
    """The four IDX files of MNIST, with 10 classes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for part, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        x, y = pictures(n, size, 1, 10, s)
        _idx(root / f"{part}-images-idx3-ubyte", x[..., 0], gz)
        _idx(root / f"{part}-labels-idx1-ubyte", y.astype(np.uint8), gz)
    return root


def write_cifar10(root, n_train: int = 50, n_test: int = 20, batches: int = 5, seed: int = 0) -> Path:
    """data_batch_1.bin .. data_batch_<batches>.bin and test_batch.bin: records of a label byte and
    3,072 channel-major pixel bytes, as in the official binary version."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    def records(n, s):
        x, y = pictures(n, 32, 3, 10, s)
        planes = x.transpose(0, 3, 1, 2).reshape(n, -1)
        return np.concatenate([y.astype(np.uint8)[:, None], planes], 1).tobytes()
    per = max(1, n_train // batches)
    for b in range(batches):
        (root / f"data_batch_{b + 1}.bin").write_bytes(records(per, seed + b))
    (root / "test_batch.bin").write_bytes(records(n_test, seed + 100))
    return root


def write_npy_shards(root, n: int = 100, shards: int = 4, shape=(8,), classes: int = 3, seed: int = 0) -> Path:
    """x_000.npy ... and y_000.npy ...: float32 features whose mean tells the class."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.int32)
    x = (rng.standard_normal((n,) + tuple(shape)) + y.reshape((-1,) + (1,) * len(shape))).astype(np.float32)
    for i, part in enumerate(np.array_split(np.arange(n), shards)):
        np.save(root / f"x_{i:03d}.npy", x[part])
        np.save(root / f"y_{i:03d}.npy", y[part])
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nndsl.data.synth", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("images")
    c.add_argument("dir")
    c.add_argument("--per-class", type=int, default=100)
    c.add_argument("--classes", type=int, default=10)
    c.add_argument("--size", type=int, default=32)
    c = sub.add_parser("cifar10")
    c.add_argument("dir")
    c.add_argument("--train", type=int, default=1000)
    c.add_argument("--test", type=int, default=200)
    a = p.parse_args(argv)
    if a.what == "images":
        out = write_images(a.dir, a.per_class, a.classes, a.size)
    else:
        out = write_cifar10(a.dir, a.train, a.test)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
