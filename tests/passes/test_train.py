"""Train blocks optimized: one jitted iteration at -O0 and at -O2 (and with every pass) moves the
parameters, optimizer state and batchnorm statistics to the same values. The train graph has
several inputs, draws (`z ~ normal`), dropout, two models and their losses.

(A convolution bias right before batchnorm would have a gradient of pure rounding noise, which
Adam's normalization turns into steps of size lr: those differ between any two orders of
summation, so the convolution here has no bias, as in ResNet.)"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl

from .test_equivalence import EVERY_PASS

GAN = """
model G {
  input z: [batch, 4]
  output x = z -> dense(16) -> relu -> dense(16) -> relu -> dense(2)
}
model D {
  input x: [batch, 2]
  output s = x -> dense(16) -> relu -> dropout(0.2) -> dense(1)
}
train gan {
  data ring_gaussians(modes=4, batch=8)
  model gen = G()
  model disc = D()
  z ~ normal([batch, 4])
  fake = z -> gen
  loss d_loss = bce_logits(data.x -> disc, 1) + bce_logits(fake -> disc, 0)
  loss g_loss = bce_logits(fake -> disc, 1)
  step disc minimize d_loss with adam(lr=1e-2)
  step gen minimize g_loss with adam(lr=1e-2)
}
"""

CONV = """
model C {
  input image: [batch, 8, 8, 1]
  output logits = image -> conv2d(4, 3, padding="same", bias=false) -> batchnorm -> relu -> avg_pool(2)
    -> conv2d(6, 3) -> relu -> flatten -> dense(10)
}
train digits8 {
  data digits(batch=16, split=0.8)
  model net = C()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=1e-2)
}
"""


def one_step(src, name, **opt):
    trainer = nndsl.loads(src, **opt).trainer(name)
    ts = trainer.init(jax.random.key(0))
    train, _ = trainer.spec.data.arrays(0)
    batch = {k: jnp.asarray(v[:trainer.batch_size]) for k, v in train.items()}
    ts, metrics = trainer.step(ts, batch, jax.random.key(1))
    return ts, metrics


@pytest.mark.parametrize("src, name, opt", [(GAN, "gan", {"passes": EVERY_PASS}), (CONV, "digits8", {"opt_level": 2})],
                         ids=["gan-every", "conv-O2"])
def test_an_optimized_iteration_moves_the_parameters_the_same_way(src, name, opt):
    base, base_m = one_step(src, name, opt_level=0)
    got, got_m = one_step(src, name, **opt)
    for k in base_m:
        np.testing.assert_allclose(got_m[k], base_m[k], rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                           {k: base[k] for k in ("params", "state", "opt")},
                           {k: got[k] for k in ("params", "state", "opt")})
