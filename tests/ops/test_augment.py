"""Augmentation ops (nndsl/ops/augment.py) against numpy: random when training and keyed (same key,
same draws), the identity or a center crop/resize when evaluating; and in a train block, inside
the jitted step, reproducible from the seed."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import nndsl

from .harness import model_of
from .test_numerics import covers


def _images(n=16, h=6, w=6, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, h, w, c)).astype(np.float32)


def _run(body, x, train, key=1):
    net = model_of(f"input x: [batch, {x.shape[1]}, {x.shape[2]}, {x.shape[3]}]\noutput y = x -> {body}")
    v = net.init(jax.random.key(0), x)
    if train:
        return np.asarray(net.apply(v, x, train=True, rngs=jax.random.key(key))[0])
    return np.asarray(net.apply(v, x))


@covers("random_crop")
def test_random_crop_windows_of_the_padded_image_and_center_crop_when_evaluating():
    x = _images(h=6, w=7)
    y = _run("random_crop(5, padding=2)", x, True)
    assert y.shape == (16, 5, 5, 3)
    xp = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = set()
    for i in range(16):
        hits = [(t, s) for t in range(xp.shape[1] - 4) for s in range(xp.shape[2] - 4)
                if np.array_equal(xp[i, t:t + 5, s:s + 5], y[i])]
        assert hits, f"example {i} is no window of its padded image"
        offsets.add(hits[0])
    assert len(offsets) > 3
    np.testing.assert_array_equal(y, _run("random_crop(5, padding=2)", x, True))  # same key, same crops
    assert not np.array_equal(y, _run("random_crop(5, padding=2)", x, True, key=2))
    np.testing.assert_array_equal(_run("random_crop(5, padding=2)", x, False), x[:, 0:5, 1:6])
    np.testing.assert_array_equal(_run("random_crop([6, 7], padding=0)", x, False), x)


@covers("random_flip")
def test_random_flip_mirrors_some_examples_and_is_the_identity_when_evaluating():
    x = _images(n=32)
    y = _run("random_flip", x, True)
    flipped = [np.array_equal(y[i], x[i, :, ::-1]) for i in range(32)]
    kept = [np.array_equal(y[i], x[i]) for i in range(32)]
    assert all(f or k for f, k in zip(flipped, kept)) and 4 < sum(flipped) < 28
    y = _run("random_flip(horizontal=false, vertical=true)", x, True)
    assert all(np.array_equal(y[i], x[i, ::-1]) or np.array_equal(y[i], x[i]) for i in range(32))
    np.testing.assert_array_equal(_run("random_flip(vertical=true)", x, False), x)


def _bilinear(x, size):
    """numpy bilinear resize with half-pixel centers, edges clamped (upsampling only)."""
    def axis(n):
        u = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
        i0 = np.floor(u).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        return i0, i1, (u - i0).astype(np.float32)
    r0, r1, fr = axis(x.shape[1])
    c0, c1, fc = axis(x.shape[2])
    rows = x[:, r0] * (1 - fr)[None, :, None, None] + x[:, r1] * fr[None, :, None, None]
    return rows[:, :, c0] * (1 - fc)[None, None, :, None] + rows[:, :, c1] * fc[None, None, :, None]


@covers("random_resized_crop")
def test_random_resized_crop_whole_box_is_a_resize_and_crops_stay_in_range():
    x = _images(n=8, h=4, w=4)
    whole = _run("random_resized_crop(8, scale=[1, 1], ratio=[1, 1])", x, True)
    evaluated = _run("random_resized_crop(8)", x, False)
    np.testing.assert_allclose(whole, _bilinear(x, 8), atol=1e-5)
    np.testing.assert_allclose(whole, evaluated, atol=1e-5)
    y = _run("random_resized_crop(5, scale=[0.2, 0.6])", _images(n=8, h=12, w=12), True)
    assert y.shape == (8, 5, 5, 3) and y.min() >= -1e-6 and y.max() <= 1 + 1e-6
    assert not np.allclose(y, _run("random_resized_crop(5, scale=[0.2, 0.6])", _images(n=8, h=12, w=12), False))


@covers("jitter")
def test_jitter_brightness_scales_each_image_and_evaluation_is_the_identity():
    x = _images(n=8) * 0.5
    y = _run("jitter(brightness=0.3, contrast=0.0)", x, True)
    for i in range(8):
        f = float(np.median(y[i] / np.maximum(x[i], 1e-3)))
        assert 0.7 - 1e-6 <= f <= 1.3 + 1e-6
        np.testing.assert_allclose(y[i], x[i] * f, atol=1e-5)
    x = 0.4 + 0.2 * _images(n=8)  # no clipping at any contrast factor
    y = _run("jitter(brightness=0.0, contrast=0.5)", x, True)
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    f = (y - m).std(axis=(1, 2, 3)) / (x - m).std(axis=(1, 2, 3))
    np.testing.assert_allclose(y, (x - m) * f[:, None, None, None] + m, atol=1e-5)
    assert ((0.5 <= f) & (f <= 1.5)).all() and f.std() > 0
    np.testing.assert_array_equal(_run("jitter", x, False), x)


@covers("normalize")
def test_normalize_per_channel():
    x = _images()
    m, s = [0.1, 0.2, 0.3], [0.5, 0.25, 2.0]
    want = (x - np.array(m, np.float32)) / np.array(s, np.float32)
    np.testing.assert_allclose(_run(f"normalize({m}, {s})", x, False), want, rtol=1e-6)
    np.testing.assert_allclose(_run("normalize(0.5, 0.5)", x, False), (x - 0.5) / 0.5, rtol=1e-6)


@pytest.mark.parametrize("body, what", [("random_crop(9)", "must fit"), ("normalize([1, 2], 1)", "2 values"),
                                        ("normalize(0, 0)", "positive"), ("jitter(brightness=2)", "[0, 1]"),
                                        ("random_resized_crop(4, scale=[0.5, 2])", "at most 1")])
def test_bad_arguments_are_located_errors(body, what):
    with pytest.raises(nndsl.NndslError) as e:
        model_of(f"input x: [batch, 6, 6, 3]\noutput y = x -> {body}").graph()
    assert what in str(e.value) and ":3:" in str(e.value)


TRAIN = """
model Net { input x: [batch, 8, 8, 1]
  output y = x -> flatten -> dense(10) }
train t {
  data digits(batch=32, split=0.8)
  model net = Net()
  x = data.x -> random_crop(8, padding=2) -> random_flip -> jitter(0.1, 0.1) -> normalize(0.3, 0.4)
  loss ce = cross_entropy(x -> net, data.y)
  step net minimize ce with adam(lr=1e-2)
  iterations 12
  eval_every 6
}
"""


def test_augmentation_in_the_train_step_is_seeded_and_changes_training():
    prog = nndsl.loads(TRAIN)
    a = prog.trainer("t").fit(progress=False)
    b = prog.trainer("t").fit(progress=False)
    for u, v in zip(jax.tree_util.tree_leaves(a.train_state), jax.tree_util.tree_leaves(b.train_state)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
    c = prog.trainer("t", seed=3).fit(progress=False)
    assert a.history["ce"] != c.history["ce"]
    plain = nndsl.loads(TRAIN.replace("-> random_crop(8, padding=2) -> random_flip -> jitter(0.1, 0.1) ", ""))
    p = plain.trainer("t").fit(progress=False)
    assert p.history["ce"] != a.history["ce"]
    # evaluation is deterministic: the crop is centered, flips and jitter off
    assert a.history["val_ce"] == b.history["val_ce"]
