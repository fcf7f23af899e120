"""One DCGAN iteration (a D step, then a G step) compiled by nndsl against the same iteration
written by hand in JAX + optax, in this process, on the same batch.

The networks are those of examples/dcgan_digits.nn (8x8 digits, batch 64); the benchmark's
train block drops the example's extra metrics, so both sides compute the same two losses, two
gradients and two Adam updates (nndsl also computes each model's gradient norm and its finite
checks, as it always does). Before timing, the hand-written G and D are checked against nndsl's
on the same weights. The figure is the median time per iteration and the ratio
nndsl / hand-written (1.0 = as fast).

    python benchmarks/dcgan_time.py [--iterations 300]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nndsl
from nndsl.data.sources import load_digits

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dcgan_digits.nn"
BLOCK = """
train bench {
  data digits(batch=64, split=1.0, size=8)
  model G = DCGenerator(latent=32)
  model D = DCDiscriminator()
  z ~ normal([batch, 32])
  fake = z -> G
  loss d_loss = bce_logits(data.x -> D, 0.9) + bce_logits(fake -> D, 0)
  loss g_loss = bce_logits(fake -> D, 1)
  step D minimize d_loss with adam(lr=5e-4, b1=0.5)
  step G minimize g_loss with adam(lr=5e-4, b1=0.5)
}
"""
NHWC = ("NHWC", "HWIO", "NHWC")


# ---------------------------------------------------------------------- the hand-written networks
def batchnorm(p, s, x, train, momentum=0.9, eps=1e-5):
    if train:
        axes = tuple(range(x.ndim - 1))
        mean, var = x.mean(axes), x.var(axes)
        s = {"mean": momentum * s["mean"] + (1 - momentum) * mean,
             "var": momentum * s["var"] + (1 - momentum) * var}
    else:
        mean, var = s["mean"], s["var"]
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"], s


def conv_transpose(x, p):
    """Kernel 4, stride 2, "same": the stride-dilated input correlated with the flipped kernel."""
    w = jnp.flip(p["kernel"], (0, 1))
    return jax.lax.conv_general_dilated(x, w, (1, 1), [(2, 2), (2, 2)], lhs_dilation=(2, 2),
                                        dimension_numbers=NHWC) + p["bias"]


def conv(x, p):
    return jax.lax.conv_general_dilated(x, p["kernel"], (2, 2), "SAME", dimension_numbers=NHWC) + p["bias"]


def generator(p, s, z, train):
    h = (z @ p["dense_0"]["kernel"] + p["dense_0"]["bias"]).reshape(-1, 2, 2, 64)
    h, s0 = batchnorm(p["batchnorm_0"], s["batchnorm_0"], h, train)
    h, s1 = batchnorm(p["batchnorm_1"], s["batchnorm_1"], conv_transpose(jax.nn.relu(h), p["conv_transpose2d_0"]),
                      train)
    out = jax.nn.sigmoid(conv_transpose(jax.nn.relu(h), p["conv_transpose2d_1"]))
    return out, {"batchnorm_0": s0, "batchnorm_1": s1}


def discriminator(p, x):
    h = jax.nn.leaky_relu(conv(x, p["conv2d_0"]), 0.2)
    h = jax.nn.leaky_relu(conv(h, p["conv2d_1"]), 0.2)
    return h.reshape(h.shape[0], -1) @ p["dense_0"]["kernel"] + p["dense_0"]["bias"]


def bce(logits, target):
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def hand_iteration(tx_d, tx_g):
    @jax.jit
    def iteration(carry, x, key):
        params, state, opt_d, opt_g, it = carry
        z = jax.random.normal(jax.random.fold_in(key, it), (x.shape[0], 32))  # fresh noise per iteration

        def d_loss(pd):
            fake, sg = generator(params["G"], state["G"], z, True)
            return bce(discriminator(pd, x), 0.9) + bce(discriminator(pd, fake), 0.0), sg
        (_, sg), gd = jax.value_and_grad(d_loss, has_aux=True)(params["D"])
        upd, opt_d = tx_d.update(gd, opt_d, params["D"])
        pd = optax.apply_updates(params["D"], upd)

        def g_loss(pg):
            fake, sg2 = generator(pg, sg, z, True)
            return bce(discriminator(pd, fake), 1.0), sg2
        (_, sg), gg = jax.value_and_grad(g_loss, has_aux=True)(params["G"])
        upd, opt_g = tx_g.update(gg, opt_g, params["G"])
        pg = optax.apply_updates(params["G"], upd)
        return {"G": pg, "D": pd}, {"G": sg, "D": state["D"]}, opt_d, opt_g, it + 1
    return iteration


# ---------------------------------------------------------------------- checks and timing
def check_same_networks(prog, ts, x):
    """The hand-written G and D compute what nndsl's do, on the same weights."""
    gen, disc = prog.model("DCGenerator", latent=32), prog.model("DCDiscriminator")
    z = jax.random.normal(jax.random.key(3), (x.shape[0], 32))
    g = {"params": ts["params"]["G"], "state": ts["state"]["G"]}
    d = {"params": ts["params"]["D"], "state": {}}
    for train in (False, True):
        ours = gen.apply(g, z, train=train)
        ours = ours[0] if train else ours
        np.testing.assert_allclose(ours, generator(g["params"], g["state"], z, train)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(disc.apply(d, x), discriminator(d["params"], x), rtol=1e-4, atol=1e-5)


def timeit(fn, carry, n):
    carry = fn(carry)  # compile
    jax.block_until_ready(carry)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        carry = fn(carry)
        jax.block_until_ready(carry)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=300)
    a = ap.parse_args()
    prog = nndsl.loads(EXAMPLE.read_text() + BLOCK, base=EXAMPLE.parent)
    trainer = prog.trainer("bench")
    ts = trainer.init(jax.random.key(0))
    images = (load_digits()[0][:64] / 16.0)[..., None].astype(np.float32)
    x = jnp.asarray(images)
    check_same_networks(prog, ts, x)
    batch = {"x": x, "y": jnp.zeros((64,), jnp.int32)}
    key = jax.random.key(1)

    step = trainer.step
    t_nn = timeit(lambda s: step(s, batch, key)[0], ts, a.iterations)

    tx_d, tx_g = optax.adam(5e-4, b1=0.5), optax.adam(5e-4, b1=0.5)
    params, state = ts["params"], {"G": ts["state"]["G"], "D": {}}
    hand = hand_iteration(tx_d, tx_g)
    carry = (params, state, tx_d.init(params["D"]), tx_g.init(params["G"]), jnp.zeros((), jnp.int32))
    t_jax = timeit(lambda c: hand(c, x, key), carry, a.iterations)
    print(f"device: {jax.devices()[0].platform}, DCGAN on 8x8 digits, batch 64, median of {a.iterations} iterations")
    print("| iteration (D step + G step) | nndsl ms | hand-written JAX + optax ms | ratio |")
    print("|---|---|---|---|")
    print(f"| dcgan_digits.nn | {1e3 * t_nn:.3f} | {1e3 * t_jax:.3f} | {t_nn / t_jax:.2f} |")


if __name__ == "__main__":
    main()
