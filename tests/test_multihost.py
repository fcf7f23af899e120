"""Multi-host training over loopback: two processes join with jax.distributed (gloo on CPU), each
feeding its half of every batch, and end where a single process ends."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = """
model MLP { input x: [batch, 8, 8, 1]
  output y = x -> flatten -> dense(32) -> relu -> dense(10) }
train t {
  data digits(batch=32, split=0.8)
  model net = MLP()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=1e-3)
  iterations 30
  eval_every 10
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_on_loopback_train_like_one(tmp_path):
    (tmp_path / "p.nn").write_text(PROGRAM)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    base = [sys.executable, "-m", "nndsl.cli", "train", "p.nn", "--no-progress"]
    single = subprocess.run(base + ["--out", "one"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert single.returncode == 0, single.stderr
    port = free_port()
    procs = [subprocess.Popen(base + ["--out", "two", "--coordinator", f"127.0.0.1:{port}",
                                      "--num-processes", "2", "--process-id", str(i)],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    one = json.loads((tmp_path / "one" / "history.json").read_text())
    two = json.loads((tmp_path / "two" / "history.json").read_text())
    assert one.keys() == two.keys()
    for k in one:
        for a, b in zip(one[k], two[k]):
            assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (k, a, b)
