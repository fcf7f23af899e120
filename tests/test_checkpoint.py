"""Checkpoints lose nothing: a resumed run is bit-identical to one that never stopped, and a
corrupted checkpoint is detected and skipped for the one before it."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import nndsl

SRC = """
model MLP { input x: [batch, 2]
  output y = x -> dense(16) -> tanh -> dense(1) }
train ring {
  data ring_gaussians(modes=4, batch=32, n=2000)
  model net = MLP()
  z ~ normal([batch, 1])
  loss err = mse(data.x -> net, z)
  step net minimize err with adam(lr=1e-2)
  iterations 40
  eval_every 10
}
"""


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_resume_is_bit_exact(tmp_path):
    prog = nndsl.loads(SRC)
    straight = prog.trainer("ring").fit(progress=False)
    first = prog.trainer("ring", iterations=20).fit(progress=False, checkpoint_dir=tmp_path, checkpoint_every=10)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["ckpt-00000010.json", "ckpt-00000020.json"]
    resumed = prog.trainer("ring").fit(progress=False, resume=tmp_path)
    for a, b in zip(leaves(straight.train_state), leaves(resumed.train_state)):
        np.testing.assert_array_equal(a, b)
    assert resumed.history["err"] == straight.history["err"]
    assert first.history["err"] == straight.history["err"][:2]


def test_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    prog = nndsl.loads(SRC)
    prog.trainer("ring", iterations=20).fit(progress=False, checkpoint_dir=tmp_path, checkpoint_every=10)
    newest = tmp_path / "ckpt-00000020.safetensors"
    data = bytearray(newest.read_bytes())
    data[-3] ^= 0xFF  # one flipped bit in the tensor data: safetensors alone would not notice
    newest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="ckpt-00000020"):
        r = prog.trainer("ring", iterations=30).fit(progress=False, resume=tmp_path)
    assert int(r.train_state["iteration"]) == 30


def test_keep_last_k_and_temp_files_are_swept(tmp_path):
    prog = nndsl.loads(SRC)
    (tmp_path / ".ckpt-00000099.safetensors.abc.tmp").write_bytes(b"half written")
    prog.trainer("ring").fit(progress=False, checkpoint_dir=tmp_path, checkpoint_every=5, keep=2)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["ckpt-00000035.json", "ckpt-00000040.json"]
    assert not list(tmp_path.glob(".*.tmp"))


NAN = """
model M { input x: [batch, 2]
  output y = x -> dense(1) }
train blowup {
  data ring_gaussians(modes=4, batch=8, n=64)
  model net = M()
  loss l = mean(log((data.x -> net) - 1000))
  step net minimize l with sgd(lr=0.1)
  iterations 5
}
"""


def test_non_finite_loss_stops_with_a_located_error_and_keeps_parameters():
    tr = nndsl.loads(NAN, "nan.nn").trainer("blowup")
    with pytest.raises(nndsl.NndslError, match="non-finite at iteration 1") as e:
        tr.fit(progress=False)
    assert "nan.nn:" in str(e.value)


def test_on_nan_skip_keeps_the_parameters_finite():
    tr = nndsl.loads(NAN).trainer("blowup", iterations=3)
    r = tr.fit(progress=False, on_nan="skip")
    assert all(np.isfinite(x).all() for x in leaves(r.variables))


def test_a_non_finite_gradient_under_a_finite_loss_is_caught_in_the_step():
    """sqrt at 0: the loss is 0, its gradient NaN; the step refuses the update by itself."""
    src = NAN.replace("mean(log((data.x -> net) - 1000))", "mean(sqrt((data.x -> net) * 0))")
    tr = nndsl.loads(src).trainer("blowup")
    ts = tr.init(jax.random.key(0))
    batch = {"x": np.ones((8, 2), np.float32), "y": np.zeros(8, np.int32)}
    after, metrics = tr.step(ts, batch, jax.random.key(1))
    assert float(metrics["l"]) == 0.0 and not bool(metrics["finite"])
    for a, b in zip(leaves(ts["params"]), leaves(after["params"])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(leaves(ts["opt"]), leaves(after["opt"])):
        np.testing.assert_array_equal(a, b)


def test_on_nan_rollback_restores_the_last_checkpoint(tmp_path):
    src = NAN.replace("iterations 5", "iterations 6")
    tr = nndsl.loads(src).trainer("blowup")
    with pytest.raises(nndsl.NndslError, match="no checkpoint to roll back to|before the first checkpoint"):
        tr.fit(progress=False, on_nan="rollback")
    ok = SRC.replace("iterations 40", "iterations 12")
    r = nndsl.loads(ok).trainer("ring").fit(progress=False, on_nan="rollback", checkpoint_dir=tmp_path,
                                             checkpoint_every=4)
    assert int(r.train_state["iteration"]) == 12  # finite runs are untouched by the policy


def test_imports_do_not_follow_symlinks_out_of_the_project(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.nn").write_text("model X { input x: [batch, 2]\n output y = x }\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "link").symlink_to(outside, target_is_directory=True)
    (proj / "main.nn").write_text('import "link/x.nn"\nmodel M { input x: [batch, 2]\n output y = x }\n')
    with pytest.raises(nndsl.NndslError, match="leaves the project") as e:
        nndsl.load(proj / "main.nn")
    assert "main.nn:1:1" in str(e.value)
