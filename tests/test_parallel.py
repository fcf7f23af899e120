"""Data parallelism on JAX's own sharding: the same seed gives the same losses on 1 and 4 devices.

Runs in a subprocess because the number of CPU devices is fixed when JAX starts."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
import jax
import nndsl
src = '''
model MLP { input x: [batch, 8, 8, 1]
  output y = x -> flatten -> dense(32) -> relu -> dense(10) }
train t {
  data digits(batch=64, split=0.8)
  model net = MLP()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=1e-3)
  iterations 40
  eval_every 10
}
'''
out = {}
for n in (1, 4):
    r = nndsl.loads(src).trainer("t", devices=n).fit(progress=False)
    out[n] = r.history
print(json.dumps({"devices": len(jax.devices()), "h": out}))
"""


def test_one_device_and_four_devices_give_the_same_history():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["devices"] == 4
    one, four = res["h"]["1"], res["h"]["4"]
    assert one.keys() == four.keys()
    for k in one:
        for a, b in zip(one[k], four[k]):
            assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (k, a, b)


def test_asking_for_more_devices_than_exist_is_a_clear_error():
    import nndsl
    src = ("model M { input x: [batch, 2]\n output y = x -> dense(1) }\n"
           "train t { data logic(gate=\"and\")\n model net = M()\n loss l = mse(data.x -> net, data.y)\n"
           " step net minimize l with sgd(lr=0.1) }")
    try:
        nndsl.loads(src).trainer("t", devices=64)
    except nndsl.NndslError as e:
        assert "64 devices asked for" in str(e)
    else:
        raise AssertionError("expected an error")


MESH_SCRIPT = r"""
import json
import nndsl
src = '''
model MLP { input x: [batch, 8, 8, 1]
  h = x -> flatten -> dense(64, shard="model") -> relu
  output y = shard(h, "data", "model") -> dense(10) }
train t {
  data digits(batch=64, split=0.8)
  model net = MLP()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=1e-3)
  iterations 30
  eval_every 10
}
'''
one = nndsl.loads(src).trainer("t").fit(progress=False).history
mesh = nndsl.loads(src).trainer("t", mesh={"data": 2, "model": 2}).fit(progress=False).history
print(json.dumps({"one": one, "mesh": mesh}))
"""


def test_a_2x2_data_and_model_mesh_gives_the_same_results_as_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", MESH_SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for k in res["one"]:
        for a, b in zip(res["one"][k], res["mesh"][k]):
            assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (k, a, b)
