"""The benchmark suite: nndsl training steps at -O0 and -O2 against the same networks written by
hand in JAX + optax, in one process, on the same data; flax and PyTorch where installed. Writes a
Markdown table of ratios to benchmarks/RESULTS.md.

Each model (and each other part of the report) runs in a fresh process. Timing: every variant of
a model is compiled first, then timed in interleaved rounds (each round the median of `--steps`
steps); the figure is the best round's, so that a noisy shared machine disturbs every variant
alike rather than whichever ran during a burst. "speed vs JAX" is hand-written
step time / nndsl step time: above 1 means nndsl is faster.

    python benchmarks/suite.py [--sizes small|train|all] [--quick] [--rounds 5 --steps 10]

`--sizes train` measures the five models at the batch sizes people train with (MLP 128, LeNet-5
128, LSTM 64, DCGAN 64, ResNet-18 32) against hand-written JAX and PyTorch eager in its own
interpreter (`--torch-python`); benchmarks/train_sizes.py says how.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nndsl
from nndsl.bench import peak_matmul_flops, xla_flops
from nndsl.passes import pipeline

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------- the programs
TRAIN = """
train bench {{
  data npz("bench.npz", batch={batch}, split=1.0)
  model net = {model}
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  step net minimize ce with adam(lr=1e-3)
}}
"""

MLP = """
model MLP {
  input x: [batch, 64]
  output logits = x -> dense(256) -> relu -> dense(256) -> relu -> dense(10)
}
""" + TRAIN.format(batch=128, model="MLP()")

LENET = "import lenet\n" + TRAIN.format(batch=64, model="LeNet5()")

LSTM = """
import cells
model Tagger {
  input seq: [batch, time, 32]
  output logits = seq -> LSTM(128) -> last -> dense(10)
}
""" + TRAIN.format(batch=32, model="Tagger()")

RESNET = """
import resnet
# ResNet-18's stages and widths for 32x32 inputs (CIFAR): a 3x3 stem and no max pool.
model ResNet18Cifar(classes: int = 10) {
  input image: [batch, 32, 32, 3]
  output logits = image
    -> conv2d(64, 3, padding="same", bias=false) -> batchnorm -> relu
    -> BasicBlock(64) * 2
    -> BasicBlock(128, stride=2) -> BasicBlock(128)
    -> BasicBlock(256, stride=2) -> BasicBlock(256)
    -> BasicBlock(512, stride=2) -> BasicBlock(512)
    -> global_avg_pool -> dense(classes)
}
""" + TRAIN.format(batch=8, model="ResNet18Cifar()")

DCGAN = """
# A small DCGAN on 16x16 images: transposed convolutions up, strided convolutions down.
model Generator(latent: int = 32) {
  input z: [batch, latent]
  output image = z -> dense(4 * 4 * 64) -> relu -> reshape([4, 4, 64])
    -> conv_transpose2d(32, 4, stride=2) -> batchnorm -> relu
    -> conv_transpose2d(1, 4, stride=2) -> tanh
}
model Discriminator {
  input image: [batch, 16, 16, 1]
  output logit = image
    -> conv2d(32, 4, stride=2, padding="same") -> leaky_relu(0.2)
    -> conv2d(64, 4, stride=2, padding="same") -> leaky_relu(0.2)
    -> flatten -> dense(1)
}
train bench {
  data npz("bench.npz", batch=64, split=1.0)
  model G = Generator()
  model D = Discriminator()
  z ~ normal([batch, 32])
  fake = z -> G
  loss d_loss = bce_logits(data.x -> D, 1) + bce_logits(fake -> D, 0)
  loss g_loss = bce_logits(fake -> D, 1)
  step D minimize d_loss with adam(lr=2e-4, b1=0.5)
  step G minimize g_loss with adam(lr=2e-4, b1=0.5)
}
"""


# ---------------------------------------------------------------------- hand-written JAX
def dense(p, x):
    return x @ p["kernel"] + p["bias"]


def conv(x, k, stride=1, padding="VALID", bias=None):
    y = jax.lax.conv_general_dilated(x, k, (stride, stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y if bias is None else y + bias


def hand_mlp(p, s, x, train):
    h = jax.nn.relu(dense(p["dense_0"], x))
    h = jax.nn.relu(dense(p["dense_1"], h))
    return dense(p["dense_2"], h), s


def hand_lenet(p, s, x, train):
    def pool(x):
        return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
    h = pool(jnp.tanh(conv(x, p["conv2d_0"]["kernel"], bias=p["conv2d_0"]["bias"])))
    h = pool(jnp.tanh(conv(h, p["conv2d_1"]["kernel"], bias=p["conv2d_1"]["bias"])))
    h = h.reshape(h.shape[0], -1)
    h = jnp.tanh(dense(p["dense_0"], h))
    h = jnp.tanh(dense(p["dense_1"], h))
    return dense(p["dense_2"], h), s


def _lstm(p, seq, fused):
    hidden = p["dense_0"]["kernel"].shape[1]
    if fused:
        w = jnp.concatenate([p[f"dense_{i}"]["kernel"] for i in range(4)], 1)
        b = jnp.concatenate([p[f"dense_{i}"]["bias"] for i in range(4)])

    def step(carry, x):
        h, c = carry
        hx = jnp.concatenate([h, x], -1)
        if fused:
            f, i, g, o = jnp.split(hx @ w + b, 4, -1)
        else:
            f, i, g, o = (dense(p[f"dense_{k}"], hx) for k in range(4))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), None
    z = jnp.zeros((seq.shape[0], hidden))
    (h, _), _ = jax.lax.scan(step, (z, z), jnp.swapaxes(seq, 0, 1))
    return h


def hand_lstm(fused):
    def net(p, s, x, train):
        return dense(p["dense_0"], _lstm(p["LSTM_0"], x, fused)), s
    return net


def batchnorm(p, s, x, train, momentum=0.9, eps=1e-5):
    if train:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axes)
        var = jnp.mean(jnp.square(x - mean), axes)
        s = {"mean": momentum * s["mean"] + (1 - momentum) * mean,
             "var": momentum * s["var"] + (1 - momentum) * var}
    else:
        mean, var = s["mean"], s["var"]
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["scale"] + p["bias"], s


def basic_block(p, s, x, ch, stride, train):
    s = dict(s)
    y = conv(x, p["conv2d_0"]["kernel"], stride, "SAME")
    y, s["batchnorm_0"] = batchnorm(p["batchnorm_0"], s["batchnorm_0"], y, train)
    y = conv(jax.nn.relu(y), p["conv2d_1"]["kernel"], 1, "SAME")
    y, s["batchnorm_1"] = batchnorm(p["batchnorm_1"], s["batchnorm_1"], y, train)
    if stride != 1 or x.shape[-1] != ch:
        x = conv(x, p["conv2d_2"]["kernel"], stride, "VALID")
        x, s["batchnorm_2"] = batchnorm(p["batchnorm_2"], s["batchnorm_2"], x, train)
    return jax.nn.relu(y + x), s


def hand_resnet(p, s, x, train):
    s = dict(s)
    h = conv(x, p["conv2d_0"]["kernel"], 1, "SAME")
    h, s["batchnorm_0"] = batchnorm(p["batchnorm_0"], s["batchnorm_0"], h, train)
    h = jax.nn.relu(h)
    plan = [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]
    for i, (ch, stride) in enumerate(plan):
        name = f"BasicBlock_{i}"
        h, s[name] = basic_block(p[name], s[name], h, ch, stride, train)
    return dense(p["dense_0"], jnp.mean(h, (1, 2))), s


def conv_t(x, k, stride, bias):
    """A "same" transposed convolution (output = input * stride), as Keras and nndsl define it."""
    kh = k.shape[0]
    start = max(kh - stride, 0) // 2
    pads = [(kh - 1 - start, stride - 1 + start)] * 2
    y = jax.lax.conv_general_dilated(x, jnp.flip(k, (0, 1)), (1, 1), pads, lhs_dilation=(stride, stride),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def hand_generator(p, s, z, train):
    h = jax.nn.relu(dense(p["dense_0"], z)).reshape(z.shape[0], 4, 4, 64)
    h = conv_t(h, p["conv_transpose2d_0"]["kernel"], 2, p["conv_transpose2d_0"]["bias"])
    h, bn = batchnorm(p["batchnorm_0"], s["batchnorm_0"], h, train)
    h = jax.nn.relu(h)
    h = conv_t(h, p["conv_transpose2d_1"]["kernel"], 2, p["conv_transpose2d_1"]["bias"])
    return jnp.tanh(h), {"batchnorm_0": bn}


def hand_discriminator(p, x):
    h = jax.nn.leaky_relu(conv(x, p["conv2d_0"]["kernel"], 2, "SAME", p["conv2d_0"]["bias"]), 0.2)
    h = jax.nn.leaky_relu(conv(h, p["conv2d_1"]["kernel"], 2, "SAME", p["conv2d_1"]["bias"]), 0.2)
    return dense(p["dense_0"], h.reshape(h.shape[0], -1))


def bce_logits(logits, target):
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits[:, 0], jnp.full(logits.shape[:1], target)))


def hand_classifier_step(net, guard: bool = False):
    """One Adam step. With `guard`, also what nndsl's trainer does besides: skip the update when the
    loss or gradient norm is not finite, and report the gradient norm."""
    tx = optax.adam(1e-3)

    def step(ts, batch):
        p, s, o = ts

        def loss(p):
            logits, s2 = net(p, s, batch["x"], True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean(), s2
        (value, s2), g = jax.value_and_grad(loss, has_aux=True)(p)
        u, o2 = tx.update(g, o, p)
        p2 = optax.apply_updates(p, u)
        if not guard:
            return p2, s2, o2
        norm = optax.global_norm(g)
        ok = jnp.isfinite(value) & jnp.isfinite(norm)
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)
        return keep(p2, p), keep(s2, s), keep(o2, o), optax.global_norm(g)
    return step, tx


def hand_gan_step(generator=hand_generator):
    tx = optax.adam(2e-4, b1=0.5)

    def step(ts, batch, key):
        p, s, (od, og) = ts
        z = jax.random.normal(key, (batch["x"].shape[0], 32))

        def d_loss(pd):
            fake, s2 = generator(p["G"], s["G"], z, True)
            real = hand_discriminator(pd, batch["x"])
            return bce_logits(real, 1.0) + bce_logits(hand_discriminator(pd, fake), 0.0), s2
        (_, _), gd = jax.value_and_grad(d_loss, has_aux=True)(p["D"])
        u, od = tx.update(gd, od, p["D"])
        pd = optax.apply_updates(p["D"], u)

        def g_loss(pg):
            fake, s2 = generator(pg, s["G"], z, True)
            return bce_logits(hand_discriminator(pd, fake), 1.0), s2
        (_, sg), gg = jax.value_and_grad(g_loss, has_aux=True)(p["G"])
        u, og = tx.update(gg, og, p["G"])
        return {"D": pd, "G": optax.apply_updates(p["G"], u)}, {"G": sg}, (od, og)
    return step, tx


GUARD = "hand JAX + the trainer's non-finite guard"  # not a reference: shows what the guard costs
OPTIONS = "hand JAX compiled with nndsl's XLA options"  # not a reference: what the options alone give


# ---------------------------------------------------------------------- timing
def interleaved(fns: dict, rounds: int, steps: int) -> dict:
    """name -> the best round's median step time. Rounds interleave the variants, and the best
    round is the one least disturbed by whatever else the machine was doing."""
    per: dict = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            ts = []
            for _ in range(steps):
                t = time.perf_counter()
                jax.block_until_ready(f())
                ts.append(time.perf_counter() - t)
            per[k].append(statistics.median(ts))
    return {k: min(v) for k, v in per.items()}


def compiled(fn, *args, options: dict | None = None):
    """(compiled function, seconds to lower and compile, XLA FLOPs)."""
    t = time.perf_counter()
    c = jax.jit(fn).lower(*args).compile(options or None)
    return c, time.perf_counter() - t, xla_flops(c)


def nndsl_step(src: str, level: int, tmp: Path, batch: dict, passes: list | None = None):
    """The trainer's step as `nndsl train` compiles it: the level's passes and XLA options."""
    prog = nndsl.loads(src, base=tmp, opt_level=level, passes=passes)
    trainer = prog.trainer("bench")
    ts = trainer.init(jax.random.key(0))
    key = jax.random.key(1)
    fn = trainer.step_fn(trainer.batch_size)
    c, secs, flops = compiled(lambda ts, b: fn(ts, b, key)[0], ts, batch, options=prog.xla_options)
    return (lambda: c(ts, batch)), secs, flops, ts


def bench_model(name: str, src: str, batch_size: int, x: np.ndarray, y: np.ndarray | None, hands: dict,
                tmp: Path, a) -> dict:
    np.savez(tmp / "bench.npz", **({"x": x, "y": y} if y is not None else {"x": x}))
    batch = {"x": jnp.asarray(x[:batch_size])}
    if y is not None:
        batch["y"] = jnp.asarray(y[:batch_size])
    fns, compile_s, flops = {}, {}, {}
    ts = None
    for level in (0, 2):
        f, secs, fl, ts = nndsl_step(src, level, tmp, batch)
        fns[f"nndsl -O{level}"], compile_s[f"nndsl -O{level}"], flops[f"nndsl -O{level}"] = f, secs, fl
    params, state = ts["params"], ts["state"]
    options = nndsl.loads(src, base=tmp, opt_level=2).xla_options
    for label, make in {**hands, OPTIONS: next(iter(hands.values()))}.items():
        made = make()
        step, tx = made[:2]
        opts = options if label == OPTIONS else None
        if name.startswith("DCGAN"):
            key = jax.random.key(1)
            hs = (params, state, (tx.init(params["D"]), tx.init(params["G"])))
            c, secs, fl = compiled(lambda ts, b: step(ts, b, key), hs, batch, options=opts)
        else:
            hs = made[2] if len(made) > 2 else (params["net"], state.get("net", {}), tx.init(params["net"]))
            c, secs, fl = compiled(step, hs, batch, options=opts)
        fns[label], compile_s[label], flops[label] = (lambda c=c, hs=hs: c(hs, batch)), secs, fl
    heavy = name.startswith("ResNet")
    times = interleaved(fns, max(3, a.rounds // 2) if heavy else a.rounds, max(3, a.steps // 3) if heavy else a.steps)
    return {"name": name, "times": times, "compile": compile_s, "flops": flops,
            "torch": torch_times(name.split(" ")[0], a)}


def torch_times(model: str, a) -> dict:
    """label -> the median over `a.torch_runs` fresh processes of torch_ref.py's step time (PyTorch
    eager swings between processes), or {} without PyTorch."""
    if not a.torch_runs or importlib.util.find_spec("torch") is None:
        return {}
    runs = []
    for _ in range(a.torch_runs):
        out = subprocess.run([sys.executable, str(HERE / "torch_ref.py"), model, "--rounds", str(a.rounds),
                              "--steps", str(a.steps if model != "ResNet-18" else max(3, a.steps // 3))],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r["times"][k] for r in runs) for k in runs[0]["times"]}


def flax_lstm_step():
    """flax.linen's OptimizedLSTMCell (fused gate matmul) over the same sequence, trained the same way."""
    from flax import linen as fnn

    class Tagger(fnn.Module):
        @fnn.compact
        def __call__(self, seq):
            return fnn.Dense(10)(fnn.RNN(fnn.OptimizedLSTMCell(128))(seq)[:, -1])
    net = Tagger()
    params = net.init(jax.random.key(0), jnp.zeros((32, 50, 32)))
    step, tx = hand_classifier_step(lambda p, s, x, train: (net.apply(p, x), s))
    return step, tx, (params, {}, tx.init(params))


def inference_rows(tmp: Path, a) -> list:
    """ResNet-18 (32x32) inference: batchnorm folded against unfolded, and the ceiling of what
    folding can gain: the same network with no batchnorm at all. -O0 is the hand-written network
    op for op (the same jaxpr): its difference from the hand-written time is measurement noise."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((32, 32, 32, 3)), jnp.float32)
    progs = {f"-O{lv}": nndsl.loads(RESNET, base=tmp, opt_level=lv) for lv in (0, 1, 2)}
    progs["-O1 + fold-batchnorm"] = nndsl.loads(RESNET, base=tmp, passes=pipeline(1) + ["fold-batchnorm", "dce"])
    v = progs["-O0"].model("ResNet18Cifar").init(jax.random.key(0), x)
    options = progs["-O1"].xla_options
    fns = {}
    for k, prog in progs.items():
        m = prog.model("ResNet18Cifar")
        c = jax.jit(lambda v, x, m=m: m.apply(v, x)).lower(v, x).compile(prog.xla_options or None)
        fns[k] = (lambda c=c: c(v, x))
    hand = jax.jit(lambda v, x: hand_resnet(v["params"], v["state"], x, False)[0]).lower(v, x)
    fns["hand"] = (lambda c=hand.compile(): c(v, x))
    fns["hand, XLA options"] = (lambda c=hand.compile(options or None): c(v, x))
    global batchnorm
    kept, batchnorm = batchnorm, (lambda p, s, x, train: (x, s))
    try:
        bare = jax.jit(lambda v, x: hand_resnet(v["params"], v["state"], x, False)[0]).lower(v, x)
    finally:
        batchnorm = kept
    fns["hand, XLA options, no batchnorm"] = (lambda c=bare.compile(options or None): c(v, x))
    return [interleaved(fns, a.rounds, max(3, a.steps // 2))]


def choice_rows(tmp: Path, a) -> dict:
    """The measurements behind -O2's choices on this platform: LSTM training step with each
    recurrent rewrite on its own (fusion, hoisting), against -O1."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((128, 50, 32)).astype(np.float32), rng.integers(0, 10, 128).astype(np.int32)
    np.savez(tmp / "bench.npz", x=x, y=y)
    batch = {"x": jnp.asarray(x[:32]), "y": jnp.asarray(y[:32])}
    clean = pipeline(1)
    fuse, split, inv = "fuse-parallel-dense", "split-concat-matmul", "hoist-scan-invariants"
    variants = {"-O1": clean, fuse: clean + [fuse],
                f"{fuse} + {inv}": clean + [fuse, inv, "dce"],
                f"{split} + {inv}": clean + [split, inv, "dce"],
                f"{fuse} + {split} + {inv} (in -O2 here)": clean + [fuse, split, inv, "dce"],
                "hoist-scan-inputs": clean + ["hoist-scan-inputs", "dce"],
                f"{fuse} + hoist-scan-inputs + {inv}": clean + [fuse, "hoist-scan-inputs", inv, "dce"]}
    fns = {k: nndsl_step(LSTM, 1, tmp, batch, passes=v)[0] for k, v in variants.items()}
    return interleaved(fns, a.rounds, a.steps)


class _forced:
    """Lowers scan-layers' size thresholds for a measurement (they are what the measurement decides)."""

    def __enter__(self):
        from nndsl.passes import stack
        self.saved = stack.MIN_UNIT, stack.MIN_COPIES
        stack.MIN_UNIT, stack.MIN_COPIES = 1, 3

    def __exit__(self, *exc):
        from nndsl.passes import stack
        stack.MIN_UNIT, stack.MIN_COPIES = self.saved


def compile_rows(a) -> dict:
    """Front-end time (parse + check + passes + lowering, XLA excluded) of ResNet-18..152 at
    224x224; total compile time (XLA included) of deep MLPs and ResNet-152, with and without scan
    over layers, and the step time it costs. A warm-up on other sizes first: the process's first
    imports, traces and XLA compiles are slower, and the same sizes would hit JAX's caches."""
    _compile_rows_once(a, warm_up=True)
    return _compile_rows_once(a)


def _compile_rows_once(a, warm_up: bool = False) -> dict:
    out = {"resnet": {}, "deep": {}, "deep_step": {}, "r152": {}}
    classes, width = (10, 256) if warm_up else (1000, 512)
    options = nndsl.loads("", opt_level=2).xla_options or None
    for depth in (18, 50) if warm_up else (18, 50, 101, 152):  # warm-up: a basic and a bottleneck network
        x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
        t = time.perf_counter()
        m = nndsl.loads("import resnet", opt_level=2).model(f"ResNet{depth}", classes=classes)
        v = jax.eval_shape(lambda: m.init(jax.random.key(0), x))
        lowered = jax.jit(lambda v, x: m.apply(v, x)).lower(v, x)
        out["resnet"][depth] = time.perf_counter() - t
        if depth == 152:
            t = time.perf_counter()
            lowered.compile(options)
            out["r152"]["-O2 (scan-layers: 35 bottlenecks stacked)"] = out["resnet"][depth] + time.perf_counter() - t
            t = time.perf_counter()
            m = nndsl.loads("import resnet", passes=[p for p in pipeline(2) if p != "scan-layers"]).model("ResNet152")
            jax.jit(lambda v, x: m.apply(v, x)).lower(v, x).compile(options)
            out["r152"]["-O2 without scan-layers"] = time.perf_counter() - t
    steps = {}
    for n in (6, 48):
        src = f"model Deep {{\n  input x: [batch, {width}]\n  output y = x -> (dense({width}) -> relu) * {n}\n}}\n"
        x = jnp.ones((8, width))
        for label, forced in (("-O2", False), ("-O2, scan-layers forced", True)):
            with _forced() if forced else contextlib.nullcontext():
                t = time.perf_counter()
                m = nndsl.loads(src, opt_level=2).model("Deep")
                v = m.init(jax.random.key(0), x)
                c = jax.jit(lambda v, x, m=m: m.apply(v, x)).lower(v, x).compile(options)
                out["deep"][(n, label)] = time.perf_counter() - t
            steps[(n, label)] = (lambda c=c, v=v: c(v, x))
    if not warm_up:
        out["deep_step"] = interleaved(steps, a.rounds, a.steps)
    return out


# ---------------------------------------------------------------------- the report
def optional(name: str) -> str:
    try:
        __import__(name)
        return "installed"
    except ImportError:
        return "not installed"


NOTES = """
## What nndsl chooses here, and what was tried

- **XLA options (-O1 and -O2)**: XLA:CPU in this jaxlib hands convolutions to YNNPACK by default,
  and its convolutions measured slower than XLA's own (Eigen) ones on every convolutional model:
  the rows "hand JAX compiled with nndsl's XLA options" show the gain for the same hand-written
  program (LeNet-5 about 1.2x, ResNet-18 training 1.2-1.3x, inference 1.35x; DCGAN and the dense
  models unchanged). nndsl keeps YNNPACK for dots only. The options are per executable (jax.jit
  `compiler_options`, never the process's XLA_FLAGS), dropped if a jaxlib does not know them, and
  recorded per platform in exported artifacts, which compile with them where they run.
- **conv-as-matmul**: LeNet-5's 5x5 convolutions on 1 and 6 channels as shifted slices + one
  matmul (the slices taken one spatial axis at a time, 5 + 5 instead of 25: the LeNet-5 training
  step 1.21x faster and its compile 1.6 -> 1.3 s; at a limit of 25 values per patch, only the
  first convolution, the step measured 11.0 ms, at 160 10.4 ms, with none 13.0 ms); strided transposed convolutions as one matmul + an overlap-add of each pixel's footprint
  instead of XLA's convolution over the stride-dilated input (three quarters zeros at stride 2):
  the DCGAN iteration 1.3-1.4x faster. Larger convolutions as patches were slower (ResNet-18 step
  117 ms with the limit of 160 values per patch, 178 ms at 600, 202 ms with every 3x3 as patches).
- **LSTM from its gate equations**: -O2 fuses the four gate matmuls, splits the fused matmul on
  `[h, x]` into `x @ W_x + h @ W_h` inside the loop (no concatenation per step, none to take apart
  in the backward loop) and prepares the kernel halves outside it; `last` of a scan reads the
  final state instead of stacking every step's output. The hand-written fused LSTM pays for its
  per-step concatenation; flax's OptimizedLSTMCell does not, and -O2 matches or beats it. Hoisting
  the input half out of the loop (one big matmul over all steps) measured slower again (table
  above). Also tried: `lax.scan` unroll 2-8 (slower), a fully unrolled Python loop (1.8x slower),
  and XLA flags (concurrency-optimized
  scheduler, fast math, XNNPACK graph fusion, vector width, Eigen threading: all within 5%).
- **Against PyTorch eager** at the small sizes of the first table: see the training-sizes bullet
  below for the sizes people train with. PyTorch calls one library kernel for a convolution
  (oneDNN) and for `torch.nn.LSTM` that XLA:CPU has no equivalent for; for a 3x3x64 convolution on
  8x32x32, XLA's forward takes 1.5 ms, its input gradient 1.5 ms and its weight gradient 2.0 ms.
  Patches + matmul for the weight gradient was slower (14.8 vs 5.1 ms for the whole gradient at 64
  channels), and so were the XLA flags above.
- **Batchnorm folding**: the inference table's control row is the point. The same network with no
  batchnorm at all runs at the speed of the network with it, because XLA fuses batchnorm into one
  elementwise pass after each convolution, and that pass is not what costs. Folding also rescales
  every kernel on every call. It measured 0.87-0.89x here, so -O2 on CPU leaves it out (it remains
  a pass, on by default for platforms not measured yet); the 1.1x target cannot be met on this CPU.
- **Scan over layers** trades step time for compile time. Stacking the copies' weights costs
  memory traffic every step (the deep MLP above: several times slower steps), and for training
  graphs XLA:CPU compiled the gradient of a loop over a small body more slowly than the unrolled
  layers. It pays for long runs of large blocks (ResNet-152 inference compiles about 2x faster),
  so -O2 stacks runs of at least 8 copies with at least 2 weighted layers each.
  `(dense(512) -> relu) * 48` already compiles in about the time of `* 6` on XLA:CPU without it.
- **The non-finite guard**: nndsl's step checks that the loss and the sum of the gradients are
  finite and skips the optimizer update otherwise, with one `lax.cond` (a `jnp.where` per leaf made
  XLA copy every Adam moment first: 1.24x a hand-written step on the MLP). The sum reduces each
  matrix's rows with a ones-vector product first: XLA:CPU runs a float reduction element by
  element (it may not reorder the adds) but a matrix-vector product vectorized, 3x faster on a
  784x256 kernel. `benchmarks/step_tax.py` (idle machine): the MLP step 1.19x -> 1.07x a
  hand-written donating step with no guard, counter or key at all; without the gradient sum it
  measured 1.01x, so what remains is that sum.
- **Recurrent gradient** (`nndsl/ops/scan_vjp.py`, on by default): a custom VJP for every scan
  over a cell, derived from the traced step. The forward loop keeps each step's activations, the
  backward loop carries only the state's gradient and emits each `h @ W` output's gradient, and
  after the loop each weight's gradient is one matmul over all steps (as cuDNN's and PyTorch's
  LSTM backward do). `benchmarks/rnn_vjp.py` on an idle machine, T=50, hidden 128, whole training
  step, speed against the same level with `lax.scan`'s own gradient: LSTM 1.14x (-O1) and 1.20x
  (-O2) at batch 32, 0.99x and 1.10x at batch 64; GRU 1.19x and 1.18x, 1.10x and 1.07x. With it,
  -O2 is faster than -O1 on both cells (LSTM batch 64: 20.0 vs 23.3 ms). On a loaded machine the
  same comparison came out mixed (0.85-1.26x): such wall times say little.
- **Training sizes** (the table "at the batch sizes people train with", idle machine, load
  1.6-1.9 from the benchmark itself). -O2 is now the default level. Against hand-written JAX,
  -O2 measured 0.95x on the MLP, 1.41x on LeNet-5 (1.19x before its patches were gathered one
  axis at a time), 1.05x on the LSTM (with the recurrent gradient below), 1.32x on the DCGAN and
  1.09x on ResNet-18 (issue 20's independent figures: 0.78-0.88, 1.02-1.12, 0.94-1.06,
  1.14-1.29 and 1.20). Against PyTorch eager (torch 2.14.1, a CUDA build run on the CPU with 2
  threads) nndsl is ahead on LeNet-5 (1.17x) and behind where the time is a library kernel
  PyTorch has and XLA:CPU does not: DCGAN 0.70x and ResNet-18 0.73x (oneDNN's convolutions; no
  layout, Winograd or XLA option closed that gap, next bullet), the LSTM 0.65x against
  `torch.nn.LSTM` (written from the same gate equations, PyTorch is 2-3x slower than nndsl).
  Whole-process modes move these figures: PyTorch's LeNet-5 step took 8.4 ms in some fresh
  processes and 11.3-12.4 ms in others (6 processes, hash seeds 1-6, seed 2 in both modes on
  two runs), and the MLP step of every variant took 2.2 ms instead of 1.3 ms in two of this
  table's three processes (all variants alike, so its JAX ratios hold; against PyTorch, timed in
  other processes, it reads 0.80x, and 1.31x in the run before where no process was slow).
  PyTorch's figures also fall apart under load: its two OpenMP threads wait for each other at
  every operation (the MLP step 1.7 ms at load 3, 66 ms at load 11).
- **Compile** (idle machine, median of 3 fresh processes). Warm, from the compilation cache a
  previous run left (`benchmarks/warm_compile.py examples/*.nn`, first iteration of `nndsl
  train`'s step at the default -O2): 14 of the 19 examples with a train block under 0.5 s
  (LeNet-5 0.21 s, the MLP 0.14 s, DCGAN 0.49 s, CycleGAN 0.47 s); CGAN and ResNet 0.51 s,
  WGAN-GP 0.56 s, BigGAN 1.12 s and StyleGAN 1.20 s. What remains there is JAX's own work
  before the cache can answer: tracing the step in Python (BigGAN 0.52 s), lowering it (0.18 s)
  and loading the cached executable (0.33 s); the cache is keyed by the lowered program, so
  neither can be skipped without a key of nndsl's own. Tracing is cheaper where nndsl called
  jnp functions that wrap a nested jit (`jnp.pad`, `jax.nn.leaky_relu`), which JAX traces again
  under differentiation: the conv-as-matmul rewrites pad with one `lax.pad`, leaky_relu is one
  `lax.select` (DCGAN's trace 0.22 -> 0.20 s, its lowering 0.10 -> 0.085 s). Cold, nothing
  cached (`benchmarks/cold_compile.py`: parse, check, passes, `init`, tracing, XLA's compile and
  one call, against tracing, compiling and calling the hand-written step; both sides start in a
  fresh process with nothing compiled before the clock): LeNet-5 28x28 2.14 s at -O2 (of it
  `init` 0.51 s) against 1.20 s, so 1.35x leaving `init` out and 1.78x with it; -O1 1.18x and
  1.62x. DCGAN at -O2: 1.31x and 1.56x (-O1 1.08x and 1.33x). (An earlier version of the
  benchmark made the hand-written side's initial values with nndsl's own -O0 `init` and step,
  which warmed XLA and JAX's tracing caches for that side alone: 1.52x and 1.63x read there.)
  `init` is one jitted function compiled with `backend.INIT_OPTIONS` (LLVM at -O1 and XLA's
  older loop emitters): the same values bit for bit as XLA's defaults, 2.3-3.5x faster to
  compile (LeNet-5 1.73 s -> 0.52 s, ResNet-18 4.62 s -> 1.92 s); LLVM at -O0 changes the last
  bit of some draws, so it is not used. The key is split inside that function: an eager split
  compiled a program of its own (0.17 s). The XLA options are checked with one compile per set
  (16 ms), not one per option. For the training step, XLA's older emitters compiled LeNet-5's
  step 1.7x faster but ran the steps 1.03-1.36x slower; LLVM at -O1 or -O2 instead of -O3, a
  single codegen split, no loop unrolling, size optimization, no SLP vectorizer, multi-output
  fusion and the list scheduler all compiled within the default's run-to-run spread (LeNet-5
  1.2-1.4 s, DCGAN 2.3-2.8 s) and ran the steps as fast, except LLVM -O2: the LSTM 1.34x slower. So
  the step keeps XLA's defaults; compiling `init` and the step at once in two threads gained
  nothing on 2 cores.
- **Convolutions at training sizes** (`benchmarks/conv_experiments.py`: a 3x3 stride-1
  convolution's forward and both gradients, interleaved in one process, load average 10-12 while
  it ran): against XLA's NHWC convolution (what nndsl emits), NCHW/OIHW measured 0.87, 1.00, 0.97
  and 0.94x at ResNet-18's four stages (batch 32; 1.05 and 1.00x at LeNet-5's sizes, batch 128),
  and Winograd F(2x2, 3x3) written in jnp (strided slices for the transforms, one batched matmul)
  0.65, 0.91, 0.97 and 1.01x (LeNet-5: 0.97 and 0.28x): it materializes 16 transformed tiles,
  4x the input, and XLA fuses neither transform into the matmul. Neither wins, so there is no
  rewrite for them in nndsl/passes/convs.py. Of the XLA:CPU options for convolutions, YNNPACK's
  (XLA's default) measured 0.88-1.07x; the options for oneDNN and XNNPACK convolutions, Eigen
  without threads and the concurrency-optimized scheduler are accepted by this jaxlib but give
  results bit-identical to the baseline's (the same kernel runs), and their times, 0.89-1.20x,
  show how far this load moves one figure. Fast math is left out: it changes numerics.
- Timings come from a shared 2-core machine (its load average is in the header). Each part of the
  report runs in fresh processes: XLA:CPU step times drift with what a process ran before (the
  LSTM step measured 1.6x slower after the other models had run in the same process), and between
  processes that run the very same program. So every time here is the median over processes with
  different hash seeds (`--processes`). Differences under about 10% are within what repeated runs
  move by.

## Variance

Issue 20 saw the LSTM step 1.6x slower in some processes than in others that differed only in
PYTHONHASHSEED (an earlier session here: 5.0-5.7 against 8.2-8.5 ms, seed 0 the slow one). The
compiler is not the cause: the optimized IR of the LSTM train step and of ResNet-18, the
LSTM step's StableHLO and its compiled HLO are identical under hash seeds 0, 1 and 2 (at -O1 and
-O2; `tests/test_deterministic_ir.py` keeps it so). What remains is the process itself: where its
memory lands and where its threads run. `benchmarks/hash_seed.py` times the training-sizes LSTM
(batch 64) in one process per seed; under load 12-13 (this session):

| PYTHONHASHSEED | nndsl -O1 ms | nndsl -O2 ms | hand JAX ms |
|---|---|---|---|
| 0 | 84.5 | 102.4 | 40.0 |
| 1 | 61.7 | 36.1 | 33.7 |
| 2 | 104.1 | 33.6 | 95.9 |
| 3 | 73.3 | 103.9 | 59.6 |
| 0 again | 76.0 | 40.0 | 38.9 |
| 0 again | 70.4 | 52.0 | 36.5 |

The same seed moved -O2 by 2.6x (40-102 ms), as much as different seeds did, and the variants of
one process did not move together. At this load the swing is the machine's, not the seed's;
whether a seed-tied swing remains on a quiet machine is for `hash_seed.py --seeds 0,1,2,3,4,5
--repeat 0,0,0` there. Either way one process is a sample of one: each figure here is the median
over processes, and the training-sizes ratios are taken within a process, between variants that
ran interleaved.
"""


def markdown(rows: list, inference: list, choices: dict, comp: dict, peak: float, a, seconds: float) -> str:
    dev = jax.devices()[0]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines = [
        "# Benchmark results", "",
        f"Written by `benchmarks/suite.py` on {platform.machine()} ({dev.platform}, "
        f"{jax.device_count()} device, {_cores()} cores, load average {load}), jax {jax.__version__}, "
        f"optax {optax.__version__}, python {platform.python_version()}; matmul peak here {peak / 1e9:.0f} "
        f"GFLOP/s. Training steps: the best of {a.rounds} interleaved rounds, each the median of {a.steps} "
        f"steps (ResNet-18: fewer), then the median over {a.processes} processes with different hash "
        f"seeds (see \"Variance\"); the whole run took {seconds:.0f} s.", "",
        f"-O2 on {dev.platform}: {', '.join(pipeline(2))}.", "",
        "## Training step: nndsl against hand-written JAX + optax, flax and PyTorch eager", "",
        "speed vs X = X's ms / nndsl's ms (above 1: nndsl faster). The reference is the fastest "
        "version of each kind (for the LSTM: of the two hand-written JAX LSTMs and flax's "
        "OptimizedLSTMCell; of torch.nn.LSTM and the gate equations in PyTorch). Hand-written JAX "
        "is compiled with XLA's defaults, as a person would; the row \"compiled with nndsl's XLA "
        "options\" shows what the backend options alone give it. PyTorch: eager, "
        f"{_torch_version()}, the median of {a.torch_runs} fresh processes (benchmarks/torch_ref.py). "
        "GFLOP/s from XLA's cost analysis, which counts a loop body once (so the LSTM's figure is "
        "far too low).", "",
        "| model | nndsl -O0 ms | nndsl -O2 ms | hand JAX ms | -O0 speed vs JAX | -O2 speed vs JAX | "
        "PyTorch ms | -O2 speed vs PyTorch | -O2 GFLOP/s | -O2 compile s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines += _model_rows(r)
    lines += ["", f"flax: {optional('flax')}; PyTorch: {optional('torch')}.", ""]
    if inference:
        t = inference[0]
        lines += ["## ResNet-18 (32x32, batch 32) inference: batchnorm folding", "",
                  "| variant | ms | speed vs -O1 |", "|---|---|---|"]
        lines += [f"| {k} | {1e3 * v:.2f} | {t['-O1'] / v:.2f} |" for k, v in t.items()]
        lines += ["", f"Folding alone: {t['-O1'] / t['-O1 + fold-batchnorm']:.2f}x. The most folding could "
                  f"gain is what removing batchnorm entirely gains: {t['hand, XLA options'] / t['hand, XLA options, no batchnorm']:.2f}x "
                  "(hand-written, same XLA options, with and without batchnorm).", ""]
    if choices:
        base = choices["-O1"]
        lines += ["## Recurrent rewrites on this platform (LSTM training step, T=50, batch 32)", "",
                  "| passes added to -O1 | ms | speed vs -O1 |", "|---|---|---|"]
        lines += [f"| {k} | {1e3 * v:.2f} | {base / v:.2f} |" for k, v in choices.items()]
        lines.append("")
    if comp:
        lines += _compile_rows(comp)
    return "\n".join(lines) + NOTES


def _model_rows(r: dict) -> list:
    """The model's row against its fastest hand-written JAX and fastest PyTorch versions, then a
    row per other variant (speed of -O2 against each)."""
    t, pt = r["times"], r["torch"]
    hands = {k: v for k, v in t.items() if not k.startswith("nndsl") and k not in (GUARD, OPTIONS)}
    best = min(hands, key=hands.get)
    h, o2 = hands[best], t["nndsl -O2"]
    gf = r["flops"]["nndsl -O2"] / o2 / 1e9
    refs = [best] if len(hands) > 1 else []
    torch_cells = "– | –"
    if pt:
        tbest = min(pt, key=pt.get)
        refs += [tbest] if len(pt) > 1 else []
        torch_cells = f"{1e3 * pt[tbest]:.2f} | {pt[tbest] / o2:.2f}"
    label = r["name"] + (f" (vs {', '.join(refs)})" if refs else "")
    out = [f"| {label} | {1e3 * t['nndsl -O0']:.2f} | {1e3 * o2:.2f} | {1e3 * h:.2f} | "
           f"{h / t['nndsl -O0']:.2f} | {h / o2:.2f} | {torch_cells} | {gf:.1f} | {r['compile']['nndsl -O2']:.1f} |"]
    for k in [k for k in t if not k.startswith("nndsl") and k != best]:
        out.append(f"| ↳ {k} | | | {1e3 * t[k]:.2f} | {t[k] / t['nndsl -O0']:.2f} | {t[k] / o2:.2f} | | | | |")
    for k in [k for k in pt if k != min(pt, key=pt.get)]:
        out.append(f"| ↳ {k} | | | | | | {1e3 * pt[k]:.2f} | {pt[k] / o2:.2f} | | |")
    return out


def _compile_rows(comp: dict) -> list:
    lines = ["## Compile time", "",
             "| ResNet (224x224, batch 1), -O2 | parse + check + passes + lowering, XLA excluded |", "|---|---|"]
    lines += [f"| ResNet-{d} | {1e3 * s:.0f} ms |" for d, s in comp["resnet"].items()]
    lines += ["", "| ResNet-152 inference, total compile (XLA included) | s |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in comp["r152"].items()]
    labels = ("-O2", "-O2, scan-layers forced")
    lines += ["", "| `(dense(512) -> relu) * n`, inference, batch 8 | " + " | ".join(
        f"{k}: compile s | {k}: step ms" for k in labels) + " |", "|---|---|---|---|---|"]
    for n in (6, 48):
        lines.append(f"| n = {n} | " + " | ".join(
            f"{comp['deep'][(n, k)]:.2f} | {1e3 * comp['deep_step'][(n, k)]:.3f}" for k in labels) + " |")
    lines.append("| compile ratio 48 / 6 | " + " | ".join(
        f"{comp['deep'][(48, k)] / comp['deep'][(6, k)]:.2f} | " for k in labels) + " |")
    return lines + [""]


def _torch_version() -> str:
    try:
        import torch
        return f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        return "not installed"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def models(rng) -> list:
    return [
        ("MLP", MLP, rng.standard_normal((512, 64)), rng.integers(0, 10, 512),
         {"hand JAX": lambda: hand_classifier_step(hand_mlp),
          GUARD: lambda: hand_classifier_step(hand_mlp, guard=True)}),
        ("LeNet-5", LENET, rng.standard_normal((256, 32, 32, 1)), rng.integers(0, 10, 256),
         {"hand JAX": lambda: hand_classifier_step(hand_lenet),
          GUARD: lambda: hand_classifier_step(hand_lenet, guard=True)}),
        ("LSTM (gate equations, T=50)", LSTM, rng.standard_normal((128, 50, 32)), rng.integers(0, 10, 128),
         {"hand JAX, 4 matmuls": lambda: hand_classifier_step(hand_lstm(False)),
          "hand JAX, fused matmul": lambda: hand_classifier_step(hand_lstm(True)),
          **({"flax OptimizedLSTMCell": flax_lstm_step} if importlib.util.find_spec("flax") else {}),
          GUARD: lambda: hand_classifier_step(hand_lstm(False), guard=True)}),
        ("DCGAN iteration (16x16)", DCGAN, np.tanh(rng.standard_normal((256, 16, 16, 1))), None,
         {"hand JAX": hand_gan_step}),
        ("ResNet-18 (32x32, batch 8)", RESNET, rng.standard_normal((64, 32, 32, 3)), rng.integers(0, 10, 64),
         {"hand JAX": lambda: hand_classifier_step(hand_resnet)}),
    ]


def section(name: str, a):
    """One part of the report, measured in this process."""
    tmp = Path(tempfile.mkdtemp())
    if name == "inference":
        return inference_rows(tmp, a)
    if name == "choices":
        return choice_rows(tmp, a)
    if name == "compile":
        return compile_rows(a)
    if name == "peak":
        return peak_matmul_flops()
    for model, src, x, y, hands in models(np.random.default_rng(0)):
        if model == name:
            batch = int(src.split("batch=")[1].split(",")[0])
            labels = None if y is None else y.astype(np.int32)
            r = bench_model(model, src, batch, x.astype(np.float32), labels, hands, tmp, a)
            print(model, {k: f"{1e3 * v:.2f} ms" for k, v in r["times"].items()}, file=sys.stderr, flush=True)
            return r
    raise SystemExit(f"no section {name!r}")


def isolated(name: str, a, seed: int = 1, torch_runs: int | None = None):
    """`section(name)` in a fresh process. XLA:CPU step times drift with what a process ran before
    (the LSTM step measured 1.6x slower after the other models had run in the same process), so
    each part starts clean; within a part, nndsl and its references still share one process."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.pkl"
        runs = a.torch_runs if torch_runs is None else torch_runs
        subprocess.run([sys.executable, __file__, "--section", name, "--result", str(out), "--rounds", str(a.rounds),
                        "--steps", str(a.steps), "--torch-runs", str(runs)], check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)})
        return pickle.loads(out.read_bytes())


def replicated(name: str, a):
    """The median over `a.processes` processes, each with its own PYTHONHASHSEED, of each time.
    The same program (identical StableHLO and compiled HLO) ran the LSTM step in 5.0-5.7 ms in
    some processes and 8.2-8.5 ms in others (RESULTS.md, "Variance"): one process is a sample of one."""
    runs = [isolated(name, a, seed, None if seed == 1 else 0) for seed in range(1, a.processes + 1)]
    first = runs[0]

    def med(dicts):
        return {k: statistics.median(d[k] for d in dicts) for k in dicts[0]}
    if isinstance(first, dict) and "times" in first:
        return {**first, "times": med([r["times"] for r in runs])}
    if isinstance(first, list):
        return [med([r[0] for r in runs])]
    return med(runs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", choices=["small", "train", "all"], default="small",
                    help="small: the rows below (small batches, and the inference, rewrite and compile tables); "
                         "train: the five models at training batch sizes (benchmarks/train_sizes.py)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 process, 2 rounds of 3 steps")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--torch-runs", type=int, default=5, help="PyTorch processes per model (0: none)")
    ap.add_argument("--torch-python", help="the interpreter with torch for --sizes train (default: "
                    "$NNDSL_TORCH_PYTHON, else this one)")
    ap.add_argument("--processes", type=int, default=3, help="processes (hash seeds) per measurement")
    ap.add_argument("--only", help="comma-separated model names (MLP, LeNet-5, LSTM, DCGAN, ResNet-18)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--section", help=argparse.SUPPRESS)  # internal: one part, in this process
    ap.add_argument("--result", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        a.processes, a.rounds, a.steps, a.torch_runs = 1, 2, 3, 1
    if a.section:
        Path(a.result).write_bytes(pickle.dumps(section(a.section, a)))
        return
    if a.sizes in ("small", "all"):
        small_sizes(a)
    if a.sizes in ("train", "all"):
        train_sizes(a)


def small_sizes(a):
    """The small-batch rows and the other tables; the training-sizes block of --out is kept."""
    import train_sizes as ts
    t0 = time.perf_counter()
    only = set(a.only.split(",")) if a.only else None
    peak = isolated("peak", a)
    rows = [replicated(name, a) for name, *_ in models(np.random.default_rng(0))
            if not only or any(name.startswith(o) for o in only)]
    everything = not only
    inference = replicated("inference", a) if everything else []
    choices = replicated("choices", a) if everything else {}
    comp = isolated("compile", a) if everything else {}
    text = markdown(rows, inference, choices, comp, peak, a, time.perf_counter() - t0)
    out = Path(a.out)
    old = out.read_text() if out.exists() else ""
    if ts.BEGIN in old and ts.END in old:
        text = ts.splice(text, old.split(ts.BEGIN)[1].split(ts.END)[0].lstrip("\n"))
    out.write_text(text)
    print(text)


def train_sizes(a):
    """The training-sizes table: printed (Markdown, ready to paste) and spliced into --out."""
    import train_sizes as ts
    t0 = time.perf_counter()
    exe = ts.torch_python(a.torch_python) if a.torch_runs else None
    if a.torch_runs and exe is None:
        print("PyTorch rows skipped: torch does not import in the interpreter given "
              "(--torch-python or NNDSL_TORCH_PYTHON)", file=sys.stderr)
    res = ts.run(a.processes, a.rounds, a.steps, exe, a.only.split(",") if a.only else None)
    block = ts.markdown(res, time.perf_counter() - t0)
    out = Path(a.out)
    out.write_text(ts.splice(out.read_text() if out.exists() else "", block))
    print(block)


if __name__ == "__main__":
    main()
