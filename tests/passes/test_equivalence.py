"""-O0 against -O2 (and against every pass at once) on the suite's models: outputs, new batchnorm
statistics and gradients with respect to parameters and inputs agree on random weights and inputs.
The graph is verified after every pass (see conftest.py)."""
from __future__ import annotations

import jax
import pytest

from nndsl.passes import PASSES

from .util import assert_same, models

EVERY_PASS = ["simplify", "fold-constants", "cse", "fold-batchnorm", "fuse-parallel-dense", "conv-as-matmul",
              "split-concat-matmul", "hoist-scan-inputs", "hoist-scan-invariants", "scan-layers", "simplify", "cse", "dce"]
assert set(EVERY_PASS) == set(PASSES)

MLP = "import mlp"
LENET = "import lenet"
CELLS = """import cells
model Seq(hidden: int = 6) {
  input seq: [batch, time, 3]
  output h = seq -> LSTM(hidden)
  output g = seq -> GRU(hidden) -> last
  output r = seq -> bidirectional(RNN(4))
}
"""
RESNET = """import resnet
model Blocks {
  input x: [batch, 6, 6, 3]
  output y = x -> BasicBlock(4) -> BasicBlock(8, stride=2) -> BasicBlock(8)
}
"""
ATTENTION = """
model Attention(d: int = 8) {
  input x: [batch, time, 8]
  q = x -> dense(d)
  k = x -> dense(d)
  v = x -> dense(d, bias=false)
  w = q @ transpose(k, perm=[0, 2, 1]) / 2.0 -> softmax
  output y = (w @ v) * 1 + 0 -> dense(8)
}
"""
STACK = """
import resnet
model Deep {
  input x: [batch, 5]
  output y = x -> dense(6) -> (dense(6) -> relu -> dense(6) -> tanh -> dense(6) -> sigmoid -> dense(6) -> relu) * 8
    -> dense(2)
}
model Tower {
  input x: [batch, 4, 4, 3]
  output y = x -> BasicBlock(4) * 9 -> global_avg_pool
}
"""

x2 = jax.random.normal(jax.random.key(10), (3, 5))
CASES = [
    ("mlp", MLP, "MLP", {"hidden": 16}, [jax.random.normal(jax.random.key(11), (4, 12))]),
    ("lenet", LENET, "LeNet5", {}, [jax.random.normal(jax.random.key(12), (2, 32, 32, 1))]),
    ("cells", CELLS, "Seq", {}, [jax.random.normal(jax.random.key(13), (2, 5, 3))]),
    ("resnet", RESNET, "Blocks", {}, [jax.random.normal(jax.random.key(14), (2, 6, 6, 3))]),
    ("attention", ATTENTION, "Attention", {}, [jax.random.normal(jax.random.key(15), (2, 4, 8))]),
    ("stack", STACK, "Deep", {}, [x2]),
    ("tower", STACK, "Tower", {}, [jax.random.normal(jax.random.key(16), (2, 4, 4, 3))]),
]


# every pass at once where passes beyond -O2 on this CPU change something: fusion, scan hoisting
RUNS = [(c, "O2") for c in CASES] + [(c, "every") for c in CASES if c[0] in ("cells", "attention")]


@pytest.mark.parametrize("case,passes", RUNS, ids=[f"{c[0]}-{p}" for c, p in RUNS])
def test_optimized_models_compute_the_same(case, passes):
    label, src, name, args, xs = case
    base, opt = models(src, name, passes=None if passes == "O2" else EVERY_PASS, **args)
    # the tower's gradients cost a slow compile; the deep stack checks gradients through scan_layers
    assert_same(base, opt, xs, grads=label != "tower")


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("resnet", "stack", "mlp")], ids=lambda c: c[0])
def test_training_mode_agrees_including_new_state(case):
    label, src, name, args, xs = case
    base, opt = models(src, name, passes=EVERY_PASS, **args)
    assert_same(base, opt, xs, train=True, grads=label != "resnet")  # its convolutions: lenet's gradients
