"""The streaming loader (Grain) of file-backed sources: seeded order reshuffled every epoch, its
position in checkpoints, and a run killed mid-epoch that resumes to bit-identical weights."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file

import nndsl
from nndsl.data import synth

PROGRAM = """
model Net { input x: [batch, 8, 8, 3]
  output y = x -> conv2d(4, 3) -> relu -> flatten -> dense(3) }
train t {
  data images("imgs", size=8, batch=4, split=1.0)
  model net = Net()
  z ~ normal([batch, 3])
  logits = data.x -> net
  loss ce = cross_entropy(logits + 0.01 * z, data.y)
  step net minimize ce with adam(lr=1e-2)
  epochs 3
}
"""


def _project(tmp_path):
    synth.write_images(tmp_path / "imgs", per_class=6, classes=3, size=8)  # 18 images: 4 batches an epoch
    (tmp_path / "p.nn").write_text(PROGRAM)
    return tmp_path / "p.nn"


def leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def test_every_epoch_sees_every_example_in_a_new_seeded_order(tmp_path):
    tr = nndsl.load(_project(tmp_path)).trainer("t")
    from nndsl.train.trainer import _StreamLoop
    a, b = _StreamLoop(tr, 0), _StreamLoop(tr, 0)
    table = tr.spec.data.table()[0]
    every = table.all()["x"].reshape(18, -1)

    def rows(batch):
        return [int(np.flatnonzero((every == r).all(1))[0]) for r in batch["x"].reshape(len(batch["x"]), -1)]
    seq = [rows(a.next()) for _ in range(9)]  # 36 rows: two whole epochs
    assert seq == [rows(b.next()) for _ in range(9)]
    flat = [i for batch in seq for i in batch]
    assert sorted(flat[:18]) == list(range(18)) and sorted(flat[18:36]) == list(range(18))
    assert flat[:18] != flat[18:36]
    c = _StreamLoop(tr, 1)
    assert [rows(c.next()) for _ in range(2)] != seq[:2]


def test_resume_mid_epoch_is_bit_exact(tmp_path):
    prog = nndsl.load(_project(tmp_path))
    straight = prog.trainer("t").fit(progress=False)
    ck = tmp_path / "ck"
    prog.trainer("t", iterations=6).fit(progress=False, checkpoint_dir=ck, checkpoint_every=3)  # 6 = mid epoch 2
    resumed = prog.trainer("t").fit(progress=False, resume=ck)
    for x, y in zip(leaves(straight.train_state), leaves(resumed.train_state)):
        np.testing.assert_array_equal(x, y)
    assert int(resumed.train_state["iteration"]) == 12


def test_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    _project(tmp_path)

    def train(out, *extra, env=env):
        cmd = [sys.executable, "-m", "nndsl.cli", "train", str(tmp_path / "p.nn"), "--no-progress",
               "--out", str(out), "--checkpoint-every", "3", *extra]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    r = train(tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a" / "classes.json").read_text().count("class") == 3
    # SIGKILL while writing the checkpoint of iteration 9 (mid epoch 3): resume from iteration 6
    r = train(tmp_path / "b", env={**env, "NNDSL_FAULT": "kill-during-checkpoint:9"})
    assert r.returncode == -signal.SIGKILL
    r = train(tmp_path / "b", "--resume", str(tmp_path / "b" / "checkpoints"))
    assert r.returncode == 0, r.stderr
    a, b = load_file(str(tmp_path / "a" / "net.safetensors")), load_file(str(tmp_path / "b" / "net.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.slow  # three processes start JAX: about a minute on the 2-core machine
def test_two_processes_each_read_their_rows_and_train_like_one(tmp_path):
    """Multi-host: each process reads only its half of every global batch from the shards."""
    import json
    import socket
    synth.write_npy_shards(tmp_path / "s", n=96, shards=3)
    (tmp_path / "p.nn").write_text("""
model MLP { input x: [batch, 8]
  output y = x -> dense(16) -> relu -> dense(3) }
train t {
  data npy("s", batch=16, split=1.0)
  model net = MLP()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  step net minimize ce with adam(lr=1e-2)
  iterations 12
  eval_every 4
}
""")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    base = [sys.executable, "-m", "nndsl.cli", "train", "p.nn", "--no-progress"]
    single = subprocess.run(base + ["--out", "one"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen(base + ["--out", "two", "--coordinator", f"127.0.0.1:{port}",
                                      "--num-processes", "2", "--process-id", str(i)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    one = json.loads((tmp_path / "one" / "history.json").read_text())
    two = json.loads((tmp_path / "two" / "history.json").read_text())
    for a, b in zip(one["ce"], two["ce"]):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (a, b)
