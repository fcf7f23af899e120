"""The streaming loader of file-backed sources (issue 18), three figures:

1. images/s of the loader alone on a generated folder of 32x32x3 PNGs in 10 classes (decode,
   batch, Grain's prefetch threads), against one thread decoding the same files;
2. a LeNet-5-sized training step fed from the folder against the same step fed from memory (the
   same pixels decoded beforehand, through the in-memory loop): the ratio of step times;
3. peak resident memory while training one pass over a `.npy`-shard dataset 4x larger than a
   `--max-memory` limit (run in a subprocess, so the figure is that run's own peak).

    python benchmarks/data_loader.py [--images 50000] [--dir DIR] [--limit-mib 512]

Generating 50,000 PNGs takes a while (96 s here); `--dir` reuses a folder made before.

Measured (2-core machine shared with other work, load average 12.5 on 2 cores, so wall times
are noisy; CPU times are not): loader alone 6,041 images/s wall, 102 us of CPU per image (about
19,600 images/s on 2 idle cores); LeNet-5 step at batch 128 after the first epoch: wall 0.83x,
CPU 1.05x of the in-memory step; the first epoch, decoding every PNG: wall 1.51x, CPU 1.78x
(decoded pixels are kept when they fit a quarter of the memory limit); 1 GiB of `.npy` shards
under `--max-memory 256MiB`: peak RSS 465 MiB, of which 420 MiB is the same program on 2,048
rows (Python, JAX, matplotlib): streaming added 45 MiB.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import nndsl
from nndsl.data import synth

LENET = """
import lenet
train bench {
  data images("%s", size=32, channels=1, batch=128, split=1.0)
  model net = LeNet5()
  loss ce = cross_entropy(data.x -> net, data.y)
  step net minimize ce with adam(lr=1e-3)
  iterations 10
  eval_every 100000
}
"""

LOADER = """
model Flat { input x: [batch, 32, 32, 3]
  output y = x -> flatten -> dense(10) }
train bench {
  data images("%s", size=32, channels=3, batch=256, split=1.0)
  model net = Flat()
  loss ce = cross_entropy(data.x -> net, data.y)
  step net minimize ce with sgd(lr=1e-3)
}
"""

SHARDS = """
model MLP { input x: [batch, %d]
  output y = x -> dense(10) }
train bench {
  data npy("shards", batch=256, split=1.0)
  model net = MLP()
  loss ce = cross_entropy(data.x -> net, data.y)
  step net minimize ce with sgd(lr=1e-3)
  epochs 1
}
"""


def make_folder(root: Path, n: int) -> float:
    t = time.perf_counter()
    synth.write_images(root, per_class=n // 10, classes=10, size=32, channels=3)
    return time.perf_counter() - t


def loader_alone(folder: Path, batches: int) -> tuple[float, float]:
    from nndsl.train.trainer import _StreamLoop
    prog = nndsl.loads(LOADER % folder.name, base=folder.parent)
    tr = prog.trainer()
    loop = _StreamLoop(tr, 0)
    loop.next()  # threads started, first batch
    t, c = time.perf_counter(), cpu()
    for _ in range(batches):
        loop.next()
    fast = batches * loop.bs / (time.perf_counter() - t)
    per_image = (cpu() - c) / (batches * loop.bs)
    loop.close()
    table = tr.spec.data.table()[0]
    idx = np.arange(2000)
    t = time.perf_counter()
    table.take(idx)
    single = len(idx) / (time.perf_counter() - t)
    return fast, single, per_image


def cpu() -> float:
    """CPU seconds this process has used: on a machine shared with other work, the cost per image
    or per step in CPU time is the figure the load does not distort (wall time is)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def step_times(folder: Path, epochs: int) -> tuple[list, list]:
    """Seconds per step in each epoch (the first includes compiling), streamed and from memory."""
    import jax
    from nndsl.data.sources import DataSource
    prog = nndsl.loads(LENET % folder.name, base=folder.parent)

    def per_epoch(tr):
        n = tr.spec.data.count[0] if tr.spec.data.count else len(tr.spec.data.loader()["y"])
        steps = n // tr.batch_size
        tr.settings = {"epochs": epochs, "eval_every": steps}
        marks, cpus = [time.perf_counter()], [cpu()]

        def cb(it, ts, vals):
            jax.block_until_ready(ts["params"])
            marks.append(time.perf_counter())
            cpus.append(cpu())
        tr.fit(progress=False, callback=cb)
        return ([(b - a) / steps for a, b in zip(marks, marks[1:])],
                [(b - a) / steps for a, b in zip(cpus, cpus[1:])])

    streamed = prog.trainer()
    memory = prog.trainer()
    src = memory.spec.data
    arrays = src.table()[0].all()
    memory.spec.data = DataSource("memory", src.batch, 1.0, src.fields, lambda: arrays)
    return per_epoch(streamed), per_epoch(memory)


def shards_rss(root: Path, limit_mib: int) -> dict:
    """Peak resident memory of `nndsl train --max-memory LIMIT` over one epoch of shards totalling
    4x the limit, against the same run over a 2,048-row shard (the fixed cost: Python, JAX, the
    compiled step, matplotlib for curves.png), each in its own process."""
    feat = 3072
    rows = (4 * limit_mib << 20) // (feat * 4)
    rng = np.random.default_rng(0)
    # VmHWM, not ru_maxrss: Linux carries a parent's ru_maxrss into its children
    hwm = "int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    out = {}
    for name, n in (("small", 2048), ("big", rows)):
        d = root / name / "shards"
        d.mkdir(parents=True, exist_ok=True)
        for i, start in enumerate(range(0, n, 8192)):
            k = min(8192, n - start)
            np.save(d / f"x_{i:04d}.npy", rng.standard_normal((k, feat), dtype=np.float32))
            np.save(d / f"y_{i:04d}.npy", rng.integers(0, 10, k).astype(np.int32))
        (root / name / "s.nn").write_text(SHARDS % feat)
        code = ("import time;from nndsl.cli import main;t=time.perf_counter();"
                f"main(['train',{str(root / name / 's.nn')!r},'--no-progress','--max-memory','{limit_mib}MiB',"
                f"'--out',{str(root / name / 'out')!r}]);"
                f"print('RSS',{hwm},'SECONDS',time.perf_counter()-t)")
        words = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
        out[name] = (int(words[words.index("RSS") + 1]) / 1024, float(words[words.index("SECONDS") + 1]))
    return {"data_mib": rows * (feat * 4 + 4) / 2**20, "limit_mib": limit_mib, "rows": rows,
            "peak_rss_mib": out["big"][0], "fixed_mib": out["small"][0], "seconds": out["big"][1]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--dir", help="a folder of generated images to reuse (made when missing)")
    p.add_argument("--batches", type=int, default=100)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit-mib", type=int, default=512)
    p.add_argument("--skip", action="append", default=[], choices=["loader", "step", "rss"])
    a = p.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(a.dir) if a.dir else Path(tmp) / "imgs"
        if not folder.exists():
            print(f"generating {a.images:,} PNGs: {make_folder(folder, a.images):.0f} s")
        if "loader" not in a.skip:
            fast, single, per_image = loader_alone(folder, a.batches)
            print(f"loader alone: {fast:,.0f} images/s wall (one thread decoding: {single:,.0f} images/s); "
                  f"{per_image * 1e6:.0f} us of CPU per image, so {2 / per_image:,.0f} images/s on 2 idle cores")
        if "step" not in a.skip:
            (s, sc), (m, mc) = step_times(folder, a.epochs)
            print("LeNet-5 step, batch 128, per step in each epoch (the first compiles), wall ms / CPU ms:")
            print("  from the folder: " + ", ".join(f"{x * 1e3:.1f} / {y * 1e3:.1f}" for x, y in zip(s, sc)))
            print("  from memory:     " + ", ".join(f"{x * 1e3:.1f} / {y * 1e3:.1f}" for x, y in zip(m, mc)))
            print(f"  ratio after the first epoch: wall {np.median(s[1:]) / np.median(m[1:]):.2f}x, "
                  f"CPU {np.median(sc[1:]) / np.median(mc[1:]):.2f}x; first epoch (decoding every image): "
                  f"wall {s[0] / m[0]:.2f}x, CPU {sc[0] / mc[0]:.2f}x")
        if "rss" not in a.skip:
            r = shards_rss(Path(tmp) / "rss", a.limit_mib)
            print(f"npy shards {r['data_mib']:,.0f} MiB ({r['rows']:,} rows), --max-memory {r['limit_mib']} MiB: "
                  f"peak RSS {r['peak_rss_mib']:,.0f} MiB; the same run over 2,048 rows: {r['fixed_mib']:,.0f} MiB; "
                  f"streaming added {r['peak_rss_mib'] - r['fixed_mib']:,.0f} MiB; one epoch in {r['seconds']:.0f} s")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
