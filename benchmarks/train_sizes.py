"""The suite's "training sizes" class: the five models at the batch sizes people train them with,
as issue 20 measured them (a training step is forward, backward and Adam).

nndsl at the default level (-O2) and at -O1 run against a hand-written JAX step (optax Adam, jit,
donated buffers) in one process, interleaved, every variant updating its own state in place the
way `nndsl train` does. PyTorch eager (2 threads) runs in processes of its own, possibly from
another interpreter (`--torch-python` or NNDSL_TORCH_PYTHON). Every figure is the median over
processes that differ only in PYTHONHASHSEED: step times move between such processes (RESULTS.md,
"Variance"), so one process is a sample of one. Run through suite.py:

    python benchmarks/suite.py --sizes train [--processes 3] [--quick]
"""
from __future__ import annotations

import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nndsl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import suite  # the hand-written layers and the interleaved timer live there

TRAIN = suite.TRAIN

MLP = """
model MLP {
  input x: [batch, 784]
  output logits = x -> dense(256) -> relu -> dense(256) -> relu -> dense(10)
}
""" + TRAIN.format(batch=128, model="MLP()")

LENET28 = """
# LeNet-5 on 28x28 digits: the first convolution pads by 2, as LeCun's 32x32 input did.
model LeNet28 {
  input image: [batch, 28, 28, 1]
  output logits = image
    -> conv2d(6, 5, padding="same") -> tanh -> avg_pool(2)
    -> conv2d(16, 5) -> tanh -> avg_pool(2)
    -> flatten -> dense(120) -> tanh -> dense(84) -> tanh -> dense(10)
}
""" + TRAIN.format(batch=128, model="LeNet28()")

LSTM = suite.LSTM.replace("batch=32", "batch=64")
RESNET = suite.RESNET.replace("batch=8", "batch=32")
DCGAN = (suite.DCGAN.replace("16x16", "28x28").replace("4 * 4 * 64", "7 * 7 * 64")
         .replace("[4, 4, 64]", "[7, 7, 64]").replace("[batch, 16, 16, 1]", "[batch, 28, 28, 1]"))

# (name, program, batch, x shape, has labels, hand-written steps, torch_ref.py's model name)
MODELS = [
    ("MLP 784-256-256-10", MLP, 128, (784,), True, {"hand JAX": lambda: suite.hand_mlp}, "MLP"),
    ("LeNet-5 28x28", LENET28, 128, (28, 28, 1), True, {"hand JAX": lambda: hand_lenet28}, "LeNet-5"),
    ("LSTM h=128 T=50, gate equations", LSTM, 64, (50, 32), True,
     {"hand JAX, 4 matmuls": lambda: suite.hand_lstm(False), "hand JAX, fused matmul": lambda: suite.hand_lstm(True)},
     "LSTM"),
    ("DCGAN D+G iteration 28x28", DCGAN, 64, (28, 28, 1), False, {"hand JAX": None}, "DCGAN"),
    ("ResNet-18 32x32", RESNET, 32, (32, 32, 3), True, {"hand JAX": lambda: suite.hand_resnet}, "ResNet-18"),
]
HEAVY = ("ResNet",)  # a step of 0.5 s: fewer steps per round


def hand_lenet28(p, s, x, train):
    def pool(x):
        return jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
    h = pool(jnp.tanh(suite.conv(x, p["conv2d_0"]["kernel"], padding="SAME", bias=p["conv2d_0"]["bias"])))
    h = pool(jnp.tanh(suite.conv(h, p["conv2d_1"]["kernel"], bias=p["conv2d_1"]["bias"])))
    h = h.reshape(h.shape[0], -1)
    h = jnp.tanh(suite.dense(p["dense_0"], h))
    h = jnp.tanh(suite.dense(p["dense_1"], h))
    return suite.dense(p["dense_2"], h), s


def hand_generator(p, s, z, train):
    """suite.hand_generator for any square start: the side comes from the first dense layer's width."""
    side = round((p["dense_0"]["kernel"].shape[1] // 64) ** 0.5)
    h = jax.nn.relu(suite.dense(p["dense_0"], z)).reshape(z.shape[0], side, side, 64)
    h = suite.conv_t(h, p["conv_transpose2d_0"]["kernel"], 2, p["conv_transpose2d_0"]["bias"])
    h, bn = suite.batchnorm(p["batchnorm_0"], s["batchnorm_0"], h, train)
    h = jax.nn.relu(h)
    h = suite.conv_t(h, p["conv_transpose2d_1"]["kernel"], 2, p["conv_transpose2d_1"]["bias"])
    return jnp.tanh(h), {"batchnorm_0": bn}


# ---------------------------------------------------------------------- one process
def looping(step, state, *args, take=lambda out: out):
    """A timer callable running `state = take(step(state, *args))`: with donated buffers the old
    state is gone after each call, so the loop carries the new one, as a training loop does."""
    box = [state]

    def call():
        box[0] = take(step(box[0], *args))
        return box[0]
    return call


def nndsl_loop(src: str, level: int, tmp: Path, batch: dict):
    """`nndsl train`'s own compiled step (the level's passes and XLA options, donated state)."""
    trainer = nndsl.loads(src, base=tmp, opt_level=level).trainer("bench")
    ts = trainer.init(jax.random.key(0))
    params, state = jax.tree_util.tree_map(jnp.copy, (ts["params"], ts["state"]))
    step = trainer.donating_step  # (train state, metrics)
    return looping(step, ts, batch, jax.random.key(1), take=lambda out: out[0]), params, state


def hand_loop(model: str, make, params: dict, state: dict, batch: dict):
    """The hand-written step, jitted with donated state, on a copy of nndsl's initial values."""
    if model.startswith("DCGAN"):
        step, tx = suite.hand_gan_step(hand_generator)
        hs = (params, state, (tx.init(params["D"]), tx.init(params["G"])))
        key = jax.random.key(1)
        fn = jax.jit(lambda ts, b: step(ts, b, key), donate_argnums=0)
    else:
        step, tx = suite.hand_classifier_step(make())
        hs = (params["net"], state.get("net", {}), tx.init(params["net"]))
        fn = jax.jit(step, donate_argnums=0)
    return looping(fn, jax.tree_util.tree_map(jnp.copy, hs), batch)


def bench_data(index: int) -> tuple[Path, dict]:
    """MODELS[index]'s batch: written as the `bench.npz` its program reads (the folder is returned)
    and as arrays by field. Images a generator should match lie in [-1, 1]; labels are 10 classes."""
    _, _, bs, shape, labelled, _, _ = MODELS[index]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((bs, *shape)).astype(np.float32)
    data = {"x": np.tanh(x) if not labelled else x}
    if labelled:
        data["y"] = rng.integers(0, 10, bs).astype(np.int32)
    tmp = Path(tempfile.mkdtemp())
    np.savez(tmp / "bench.npz", **data)
    return tmp, {k: jnp.asarray(v) for k, v in data.items()}


def measure(index: int, rounds: int, steps: int) -> dict:
    """label -> step seconds for MODELS[index], every variant in this process, interleaved."""
    name, src, _, _, _, hands, _ = MODELS[index]
    tmp, batch = bench_data(index)
    fns = {}
    for level in (1, 2):
        fns[f"nndsl -O{level}"], params, state = nndsl_loop(src, level, tmp, batch)
    for label, make in hands.items():
        fns[label] = hand_loop(name, make, params, state, batch)
    for f in fns.values():  # compile and warm up
        for _ in range(2):
            jax.block_until_ready(f())
    heavy = name.startswith(HEAVY)
    return suite.interleaved(fns, rounds, max(2, steps // 3) if heavy else steps)


# ---------------------------------------------------------------------- PyTorch, other processes
def torch_python(option: str | None) -> str | None:
    """The interpreter that has torch (`--torch-python`, NNDSL_TORCH_PYTHON, else this one), or
    None when torch does not import there."""
    exe = option or os.environ.get("NNDSL_TORCH_PYTHON") or sys.executable
    ok = subprocess.run([exe, "-c", "import torch"], check=False, capture_output=True).returncode == 0
    return exe if ok else None


def torch_times(exe: str, model: str, seed: int, rounds: int, steps: int) -> dict:
    out = subprocess.run([exe, str(HERE / "torch_ref.py"), model, "--sizes", "train", "--threads", "2",
                          "--rounds", str(rounds), "--steps", str(steps)],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONHASHSEED": str(seed)})
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- the driver
def isolated(index: int, seed: int, rounds: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.pkl"
        subprocess.run([sys.executable, __file__, str(index), str(rounds), str(steps), out], check=True,
                       env={**os.environ, "PYTHONHASHSEED": str(seed)})
        return pickle.loads(out.read_bytes())


def run(processes: int, rounds: int, steps: int, torch_exe: str | None, only=None) -> dict:
    """Every model: per-process times (one dict per hash seed) for JAX and for PyTorch, and the
    highest 1-minute load average seen while it ran."""
    rows = []
    for i, (name, *_rest, tname) in enumerate(MODELS):
        if only and not any(name.startswith(o) for o in only):
            continue
        load = os.getloadavg()[0]
        steps_here = max(2, steps // 3) if name.startswith(HEAVY) else steps
        jx = [isolated(i, seed, rounds, steps) for seed in range(1, processes + 1)]
        pt = [torch_times(torch_exe, tname, seed, rounds, steps_here) for seed in range(1, processes + 1)] \
            if torch_exe else []
        rows.append({"name": name, "batch": MODELS[i][2], "jax": jx, "torch": pt,
                     "load": max(load, os.getloadavg()[0])})
        print(name, [{k: f"{1e3 * v:.2f}" for k, v in r.items()} for r in jx], file=sys.stderr, flush=True)
    first = next((r["torch"][0] for r in rows if r["torch"]), None)
    return {"rows": rows, "processes": processes, "rounds": rounds, "steps": steps,
            "torch": f"torch {first['torch']}, {first['threads']} threads" if first else None}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _med(xs) -> float:
    return statistics.median(xs)


def _span(xs) -> str:
    """The median of per-process ratios, with their range where processes disagree."""
    lo, hi, mid = min(xs), max(xs), _med(xs)
    return f"{mid:.2f}" if len(xs) == 1 or hi - lo < 0.005 else f"{mid:.2f} ({lo:.2f}-{hi:.2f})"


def table_row(r: dict) -> str:
    """Ratios are taken within each process (the variants ran interleaved there), then the median."""
    hands = [k for k in r["jax"][0] if not k.startswith("nndsl")]
    best = min(hands, key=lambda k: _med([p[k] for p in r["jax"]]))
    ms = lambda k: 1e3 * _med([p[k] for p in r["jax"]])
    vs = lambda lv: _span([p[best] / p[f"nndsl -O{lv}"] for p in r["jax"]])
    label = f"{r['name']} ({r['batch']})" + (f", vs {best}" if len(hands) > 1 else "")
    cells = [label, f"{r['load']:.1f}", str(len(r["jax"])), f"{ms('nndsl -O1'):.2f}", f"{ms('nndsl -O2'):.2f}", f"{ms(best):.2f}", vs(1), vs(2)]
    if r["torch"]:
        tk = min(r["torch"][0]["times"], key=lambda k: _med([p["times"][k] for p in r["torch"]]))
        t = _med([p["times"][tk] for p in r["torch"]])
        cells += [f"{1e3 * t:.2f} ({tk})", f"{t / _med([p['nndsl -O2'] for p in r['jax']]):.2f}"]
    else:
        cells += ["skipped: no torch", "–"]
    return "| " + " | ".join(cells) + " |"


def markdown(res: dict, seconds: float) -> str:
    loads = [r["load"] for r in res["rows"]]
    head = [
        "## Training step at the batch sizes people train with", "",
        (f"Measured under load {max(loads, default=0):.0f} (the 1-minute load average, highest while each "
        f"row ran, is the second column) on {cpu_model()}, {len(os.sched_getaffinity(0))} cores, "
        f"jax {jax.__version__}, optax {optax.__version__}; PyTorch eager: {res['torch'] or 'not measured'}. "
        f"`benchmarks/suite.py --sizes train`: each time the best of {res['rounds']} interleaved rounds "
        f"of {res['steps']} steps (ResNet-18: a third), the median over the processes of the third column, "
        f"with PYTHONHASHSEED 1, 2, ... (the run that wrote the last rows: {seconds:.0f} s). Ratios are hand JAX's "
        "(or PyTorch's) time over nndsl's, taken within each process and then the median, with the "
        "range over processes in brackets: above 1, nndsl is faster. All steps donate their state."),
        "",
        HEADER,
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(head + [table_row(r) for r in res["rows"]]) + "\n"


HEADER = ("| model (batch) | load | processes | nndsl -O1 ms | nndsl -O2 (default) ms | hand JAX ms | -O1 vs JAX | "
          "-O2 vs JAX | PyTorch ms | -O2 vs PyTorch |")


def merged(old_block: str, new_block: str) -> str:
    """`new_block`, plus the rows of `old_block` for models it did not measure (a run with
    --only replaces its own rows), in MODELS' order."""
    def rows(block):
        return {m[0]: line for line in block.splitlines() for m in MODELS if line.startswith(f"| {m[0]} (")}
    old, new = rows(old_block) if HEADER in old_block else {}, rows(new_block)
    keep = {**old, **new}
    head = [line for line in new_block.splitlines() if not any(line == v for v in new.values())]
    return "\n".join(head + [keep[m[0]] for m in MODELS if m[0] in keep]) + "\n"


BEGIN, END = "<!-- training sizes: begin -->", "<!-- training sizes: end -->"


def splice(text: str, block: str) -> str:
    """RESULTS.md with the training-sizes block replaced (or added before the notes); rows of
    models `block` lacks are kept from the old block."""
    if BEGIN in text and END in text:
        block = merged(text.split(BEGIN)[1].split(END)[0], block)
        return text.split(BEGIN)[0] + f"{BEGIN}\n{block}{END}\n\n" + text.split(END, 1)[1].lstrip("\n")
    block = f"{BEGIN}\n{block}{END}\n"
    marker = "## What nndsl chooses here"
    if marker in text:
        return text.replace(marker, block + "\n" + marker, 1)
    return text + "\n" + block


if __name__ == "__main__":
    index, rounds, steps, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    out.write_bytes(pickle.dumps(measure(index, rounds, steps)))
