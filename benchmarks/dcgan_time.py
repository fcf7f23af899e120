"""One DCGAN iteration (a D step, then a G step) compiled by nndsl against the same iteration
written by hand in JAX + optax, in this process, on the same batch.

The networks are those of examples/dcgan_digits.nn (8x8 digits, batch 64); the benchmark's
train block drops the example's extra metrics, so both sides compute the same two losses, two
gradients and two Adam updates (nndsl also computes each model's gradient norm and its finite
checks, as it always does). Before timing, the hand-written G and D are checked against nndsl's
on the same weights. The two are timed in alternating blocks of 10 iterations; the figures are
the median time per iteration of each and the median ratio nndsl / hand-written over the rounds
(1.0 = as fast).

    python benchmarks/dcgan_time.py [--rounds 100]
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


def discriminator(p, s, x, train):
    h = jax.nn.leaky_relu(conv(x, p["conv2d_0"]), 0.2)
    h, s0 = batchnorm(p["batchnorm_0"], s["batchnorm_0"], conv(h, p["conv2d_1"]), train)
    h = jax.nn.leaky_relu(h, 0.2)
    return h.reshape(h.shape[0], -1) @ p["dense_0"]["kernel"] + p["dense_0"]["bias"], {"batchnorm_0": s0}


def bce(logits, target):
    return optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)).mean()


def hand_iteration(tx_d, tx_g):
    @jax.jit
    def iteration(carry, x, key):
        params, state, opt_d, opt_g, it = carry
        z = jax.random.normal(jax.random.fold_in(key, it), (x.shape[0], 32))  # fresh noise per iteration

        def d_loss(pd):
            fake, sg = generator(params["G"], state["G"], z, True)
            real, _ = discriminator(pd, state["D"], x, True)
            fake, sd = discriminator(pd, state["D"], fake, True)
            return bce(real, 0.9) + bce(fake, 0.0), (sg, sd)
        (_, (sg, sd)), gd = jax.value_and_grad(d_loss, has_aux=True)(params["D"])
        upd, opt_d = tx_d.update(gd, opt_d, params["D"])
        pd = optax.apply_updates(params["D"], upd)

        def g_loss(pg):
            fake, sg2 = generator(pg, sg, z, True)
            score, sd2 = discriminator(pd, sd, fake, True)
            return bce(score, 1.0), (sg2, sd2)
        (_, (sg, sd)), gg = jax.value_and_grad(g_loss, has_aux=True)(params["G"])
        upd, opt_g = tx_g.update(gg, opt_g, params["G"])
        pg = optax.apply_updates(params["G"], upd)
        return {"G": pg, "D": pd}, {"G": sg, "D": sd}, opt_d, opt_g, it + 1
    return iteration


# ---------------------------------------------------------------------- checks and timing
def check_same_networks(prog, ts, x):
    """The hand-written G and D compute what nndsl's do, on the same weights."""
    gen, disc = prog.model("DCGenerator", latent=32), prog.model("DCDiscriminator")
    z = jax.random.normal(jax.random.key(3), (x.shape[0], 32))
    g = {"params": ts["params"]["G"], "state": ts["state"]["G"]}
    d = {"params": ts["params"]["D"], "state": ts["state"]["D"]}
    for net, hand, v, arg in ((gen, generator, g, z), (disc, discriminator, d, x)):
        for train in (False, True):
            ours = net.apply(v, arg, train=train)
            ours = ours[0] if train else ours
            np.testing.assert_allclose(ours, hand(v["params"], v["state"], arg, train)[0], rtol=1e-4, atol=1e-5)


def interleaved(fns, carries, rounds: int, block: int = 10):
    """Median seconds per iteration of each function, timed in alternating blocks so that both see
    the same machine load (a shared CPU drifts), and the median of the per-round ratios."""
    carries = [f(c) for f, c in zip(fns, carries)]  # compile
    jax.block_until_ready(carries)
    per = [[] for _ in fns]
    for _ in range(rounds):
        for i, f in enumerate(fns):
            t = time.perf_counter()
            for _ in range(block):
                carries[i] = f(carries[i])
            jax.block_until_ready(carries[i])
            per[i].append((time.perf_counter() - t) / block)
    ratios = [a / b for a, b in zip(per[0], per[1])]
    return [statistics.median(p) for p in per], statistics.median(ratios)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
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
    tx_d, tx_g = optax.adam(5e-4, b1=0.5), optax.adam(5e-4, b1=0.5)
    params, state = ts["params"], ts["state"]
    hand = hand_iteration(tx_d, tx_g)
    carry = (params, state, tx_d.init(params["D"]), tx_g.init(params["G"]), jnp.zeros((), jnp.int32))
    (t_nn, t_jax), ratio = interleaved([lambda s: step(s, batch, key)[0], lambda c: hand(c, x, key)],
                                       [ts, carry], a.rounds)
    print(f"device: {jax.devices()[0].platform}, DCGAN on 8x8 digits, batch 64, {a.rounds} rounds of 10 "
          f"iterations each, alternating")
    print("| iteration (D step + G step) | nndsl ms | hand-written JAX + optax ms | ratio |")
    print("|---|---|---|---|")
    print(f"| dcgan_digits.nn | {1e3 * t_nn:.3f} | {1e3 * t_jax:.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
