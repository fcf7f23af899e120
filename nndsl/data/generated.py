"""Generated data sets with a real signal to find, made from a seed: nothing is downloaded.

- motifs: 1-D sequences of noise with one class-specific waveform hidden at a random place.
- volumes: 3-D occupancy grids holding a noisy sphere, cube or cylinder.
- adding: the adding problem of Hochreiter and Schmidhuber (1997).
"""
from __future__ import annotations

import numpy as np


def motifs(n: int, length: int, classes: int, noise: float, seed: int) -> dict:
    """Class k hides a burst of a sine at frequency k+1 (period 16 / (k+1)) in Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = noise * rng.standard_normal((n, length)).astype(np.float32)
    width = 16
    t = np.arange(width)
    window = np.hanning(width)
    for i in range(n):
        start = rng.integers(0, length - width + 1)
        x[i, start:start + width] += window * np.sin(2 * np.pi * (y[i] + 1) * t / width)
    return {"x": x[..., None].astype(np.float32), "y": y.astype(np.int32)}


def volumes(n: int, size: int, noise: float, seed: int) -> dict:
    """Label 0 sphere, 1 cube, 2 cylinder (axis along a random grid axis); random size and place."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1).astype(np.float32)
    x = np.empty((n, size, size, size), np.float32)
    for i in range(n):
        r = rng.uniform(size * 0.18, size * 0.3)
        c = rng.uniform(r + 1, size - r - 1, 3)
        d = grid - c
        if y[i] == 0:
            shape = np.sum(d ** 2, -1) <= r ** 2
        elif y[i] == 1:
            shape = np.all(np.abs(d) <= r * 0.9, -1)
        else:
            axis = rng.integers(0, 3)
            other = [a for a in range(3) if a != axis]
            shape = (np.sum(d[..., other] ** 2, -1) <= (0.8 * r) ** 2) & (np.abs(d[..., axis]) <= size)
        x[i] = shape.astype(np.float32) + noise * rng.standard_normal((size,) * 3)
    return {"x": x[..., None], "y": y.astype(np.int32)}


def adding(n: int, length: int, seed: int) -> dict:
    """Two channels: uniform values, and a marker that is 1 at two random steps; the target is
    the sum of the two marked values. Always guessing 1.0 gives an MSE of about 0.167."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 1, (n, length)).astype(np.float32)
    marks = np.zeros((n, length), np.float32)
    for i in range(n):
        a = rng.integers(0, length // 2)
        b = rng.integers(length // 2, length)
        marks[i, a] = marks[i, b] = 1.0
    target = np.sum(values * marks, 1, keepdims=True)
    return {"x": np.stack([values, marks], -1), "y": target.astype(np.float32)}


def sentiment(n: int, length: int, vocab: int, seed: int) -> dict:
    """Token sequences of varying length with a rule that needs order: ids 1-8 are positive words,
    9-16 negative, 17 is `not` (it flips the word after it), the rest are filler; 0 pads. The label
    is 1 when the (flipped) positive words outnumber the negative ones; ties are not generated."""
    rng = np.random.default_rng(seed)
    xs, ys, ns = [], [], []
    while len(xs) < n:
        m = int(rng.integers(length // 3, length + 1))
        seq = rng.integers(18, vocab, m)
        score = 0
        for pos in rng.choice(m, int(rng.integers(1, 5)), replace=False):
            positive = rng.random() < 0.5
            seq[pos] = rng.integers(1, 9) if positive else rng.integers(9, 17)
            flip = pos > 0 and rng.random() < 0.3 and seq[pos - 1] >= 18
            if flip:
                seq[pos - 1] = 17
            score += (1 if positive else -1) * (-1 if flip else 1)
        if score == 0:
            continue
        xs.append(np.pad(seq, (0, length - m)))
        ys.append(int(score > 0))
        ns.append(m)
    return {"x": np.array(xs, np.int32), "y": np.array(ys, np.int32), "n": np.array(ns, np.int32)}


def tagging(n: int, length: int, vocab: int, seed: int) -> dict:
    """Tag token t with 1 when the token after it is larger than the token before it: a tagger
    must look both ways, which a forward-only recurrent layer cannot."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (n, length)).astype(np.int32)
    prev = np.pad(x, ((0, 0), (1, 0)))[:, :-1]
    nxt = np.pad(x, ((0, 0), (0, 1)))[:, 1:]
    return {"x": x, "y": (nxt > prev).astype(np.int32)}


def text_windows(text: str, seq: int, stride: int) -> tuple[dict, str]:
    """Character windows of a text and the next character at each position; the vocabulary is
    the sorted set of characters."""
    chars = "".join(sorted(set(text)))
    ids = np.array([chars.index(c) for c in text], np.int32)
    starts = np.arange(0, len(ids) - seq - 1, stride)
    x = np.stack([ids[s:s + seq] for s in starts])
    y = np.stack([ids[s + 1:s + seq + 1] for s in starts])
    return {"x": x, "y": y}, chars


def reverse(n: int, length: int, vocab: int, seed: int) -> dict:
    """A toy translation: the target is the source reversed. Token 0 starts the decoder's input
    (the target shifted right by one, as in teacher forcing); tokens are 1..vocab-1."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (n, length)).astype(np.int32)
    y = x[:, ::-1].copy()
    prev = np.concatenate([np.zeros((n, 1), np.int32), y[:, :-1]], 1)
    return {"x": x, "y": y, "prev": prev}


# ---------------------------------------------------------------------- arguments and size
# The smallest sensible value of each integer argument of a generated source (numpy would raise
# from deep inside the generator, or loop forever, on less); `seed` may be 0.
MINIMUM = {"n": 1, "modes": 1, "classes": 1, "length": 1, "size": 1, "vocab": 2, "seed": 0, "batch": 1,
           "seq": 1, "stride": 1}
COPIES = 3  # the generated arrays, the temporaries that make them, and the train/held-out split


def check_args(name: str, attrs: dict) -> None:
    """Refuses arguments a generator cannot use, with the argument's name (an OpError, located
    at the `data` statement by the caller)."""
    from ..attrs import OpError
    from ..bounds import short
    for k, v in attrs.items():
        low = MINIMUM.get(k)
        if low is not None and isinstance(v, int) and not isinstance(v, bool) and v < low:
            raise OpError(f"{name}: `{k}` must be at least {low}, got {short(v)}")
    if name == "text" and isinstance(attrs.get("seq"), int):
        from .sources import DATA_DIR, TEXTS
        if attrs.get("name") in TEXTS:
            size = len((DATA_DIR / TEXTS[attrs["name"]]).read_text())
            if attrs["seq"] > size - 2:
                raise OpError(f"text: `seq` must be shorter than the text ({size - 2:,} characters), "
                              f"got {short(attrs['seq'])}")
    if name == "sentiment" and attrs.get("length", 3) < 3:
        raise OpError(f"sentiment: `length` must be at least 3, got {attrs['length']}")
    if name == "sentiment" and attrs.get("vocab", 40) <= 18:
        raise OpError(f"sentiment: `vocab` must be more than 18, got {attrs['vocab']}")


def footprint(source) -> int:
    """Bytes the source will hold once generated, from its arguments alone: examples x the size
    of one example, times the copies made on the way. `ring_gaussians(n=3e8)` is refused from
    this number before a single example is drawn."""
    from ..limits import ITEMSIZE
    n = source.args.get("n")
    if not isinstance(n, int):
        return 0
    per = 0
    for t in source.fields.values():
        size = 1
        for d in t.shape:
            size *= d if isinstance(d, int) else 1
        per += size * max(ITEMSIZE.get(t.dtype, 4), 8)  # generators draw in float64/int64 first
    return COPIES * n * per
