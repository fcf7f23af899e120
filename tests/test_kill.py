"""Kill tests: a training process killed with SIGKILL, in the middle of training or in the middle
of writing a checkpoint, resumes and ends with parameters bit-identical to an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

PROGRAM = """
model MLP { input x: [batch, 8, 8, 1]
  output y = x -> flatten -> dense(32) -> tanh -> dense(10) }
train digits {
  data digits(batch=32, split=0.8)
  model net = MLP()
  z ~ normal([batch, 10])
  logits = data.x -> net
  loss ce = cross_entropy(logits + 0.01 * z, data.y)
  step net minimize ce with adam(lr=1e-3)
  iterations 400
}
"""
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def train(folder: Path, *extra, env=None, wait=True):
    cmd = [sys.executable, "-m", "nndsl.cli", "train", str(folder / "p.nn"), "--no-progress",
           "--out", str(folder / "out"), "--checkpoint-every", "20", *extra]
    p = subprocess.Popen(cmd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if wait:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    return p


def params(folder: Path) -> dict:
    return load_file(str(folder / "out" / "net.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    (d / "p.nn").write_text(PROGRAM)
    train(d)
    return params(d)


def same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_killed_in_the_middle_of_training_resumes_bit_exactly(tmp_path, reference):
    (tmp_path / "p.nn").write_text(PROGRAM)
    p = train(tmp_path, wait=False)
    ckpts = tmp_path / "out" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(ckpts.glob("ckpt-*.json"))) < 3:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    train(tmp_path, "--resume", str(ckpts))
    same(reference, params(tmp_path))


def test_killed_while_writing_a_checkpoint_resumes_from_the_one_before(tmp_path, reference):
    (tmp_path / "p.nn").write_text(PROGRAM)
    p = train(tmp_path, env={**ENV, "NNDSL_FAULT": "kill-during-checkpoint:60"}, wait=False)
    p.wait(timeout=300)
    assert p.returncode == -signal.SIGKILL
    ckpts = tmp_path / "out" / "checkpoints"
    assert (ckpts / "ckpt-00000060.safetensors").exists()      # tensors written...
    assert not (ckpts / "ckpt-00000060.json").exists()         # ...but never committed
    train(tmp_path, "--resume", str(ckpts))
    same(reference, params(tmp_path))


def test_diverging_run_stops_and_the_last_good_checkpoint_is_intact(tmp_path):
    import jax

    import nndsl
    from nndsl.train import checkpoint as ckpt
    src = PROGRAM.replace("adam(lr=1e-3)", "sgd(lr=10)").replace(
        "loss ce = cross_entropy(logits + 0.01 * z, data.y)", "loss ce = mse(logits, z)")  # diverges
    tr = nndsl.loads(src).trainer("digits")
    with pytest.raises(nndsl.NndslError, match="non-finite"):
        tr.fit(progress=False, checkpoint_dir=tmp_path, checkpoint_every=1)
    found = ckpt.load_latest(tmp_path, tr.init(jax.random.key(0)))
    assert found is not None
    step, ts, _ = found
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree_util.tree_leaves(ts["params"]))
