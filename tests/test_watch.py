"""Watching a run: plain and JSON log lines when the output is not a terminal, TensorBoard event
files read back record by record, readable sample grids (rows by class for a conditional
generator), and the Callback hook point."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nndsl
from nndsl.train import samples, watch

ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONWARNINGS": "ignore"}

DIGITS = """
model Net {
  input x: [batch, 8, 8, 1]
  output logits = x -> flatten -> dense(16) -> relu -> dense(10)
}
train digits {
  data digits(batch=64, split=0.8)
  model net = Net()
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=3e-3)
  epochs 3
}
"""

CGAN = """
model G {
  input z: [batch, 4]
  input c: i32[batch]
  output img = concat(z, c -> embed(10, 4), axis=1) -> dense(16) -> sigmoid -> reshape([4, 4, 1])
}
model D {
  input x: [batch, 4, 4, 1]
  output score = x -> flatten -> dense(1)
}
train cgan {
  data digits(batch=20, split=1.0, size=4)
  model g = G()
  model d = D()
  z ~ normal([batch, 4])
  c ~ categorical([batch], classes=10)
  fake = g(z, c)
  loss d_loss = bce_logits(d(data.x), 1) + bce_logits(d(fake), 0)
  loss g_loss = bce_logits(d(fake), 1)
  step d minimize d_loss with adam(lr=1e-3)
  step g minimize g_loss with adam(lr=1e-3)
  sample fake every 2
  iterations 4
}
"""


def train_cli(tmp_path, *args) -> subprocess.CompletedProcess:
    """`nndsl train` with standard output going to a pipe, as under nohup, CI or a notebook."""
    (tmp_path / "m.nn").write_text(DIGITS)
    return subprocess.run([sys.executable, "-m", "nndsl.cli", "train", "m.nn", "--out", "run", *args],
                          cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("text")
    return train_cli(tmp), tmp / "run"


def test_piped_output_is_one_complete_line_per_epoch(text_run):
    r, out = text_run
    assert r.returncode == 0, r.stderr
    history = json.loads((out / "history.json").read_text())
    assert set(history) == {"ce", "acc", "val_ce", "val_acc"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("digits  epoch")]
    assert len(lines) == 3
    for e, line in enumerate(lines):
        assert line.startswith(f"digits  epoch {e + 1}/3  iteration ")
        for k, v in history.items():  # every loss, metric and held-out figure, at full width
            assert f"  {k} {watch.fmt_value(v[e])}  " in line, (k, line)
        assert "\x1b" not in line and "…" not in line and "━" not in line  # no bar frame, no escapes
    assert r.stdout.splitlines()[-2].startswith("digits: done in")


def test_no_progress_prints_the_lines_too(tmp_path):
    (tmp_path / "m.nn").write_text(DIGITS)
    r = train_cli(tmp_path, "--no-progress", "--epochs", "1", "--no-tensorboard")
    assert r.returncode == 0, r.stderr
    assert sum(ln.startswith("digits  epoch 1/1  iteration") for ln in r.stdout.splitlines()) == 1


def test_json_log_is_one_object_per_line(tmp_path):
    r = train_cli(tmp_path, "--log-format", "json", "--epochs", "2", "--no-tensorboard")
    assert r.returncode == 0, r.stderr
    records = [json.loads(ln) for ln in r.stdout.splitlines()]  # every line parses
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    reports = [x for x in records if x["event"] == "report"]
    assert [x["epoch"] for x in reports] == [1.0, 2.0]
    assert all(x["train"] == "digits" and x["total"] == reports[-1]["iteration"] for x in reports)
    for i, rec in enumerate(reports):
        assert rec["metrics"] == pytest.approx({k: v[i] for k, v in history.items()})
    assert records[-1]["event"] == "end" and records[-1]["interrupted"] is False
    assert "history.json" in records[-1]["saved"]
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))  # --no-tensorboard


def test_auto_progress_is_a_bar_only_on_a_terminal():
    class Tty:
        def isatty(self):
            return True
    assert isinstance(watch.reporters(True, Tty())[0], watch.ProgressBar)
    import io
    assert isinstance(watch.reporters(True, io.StringIO())[0], watch.LogLines)
    assert watch.reporters(False) == []
    assert watch.fmt_value(1.2e-5) == "1.2e-05" and watch.fmt_value(0.99791) == "0.99791"


# ---------------------------------------------------------------------- TensorBoard
def read_events(path: Path) -> list:
    """Event records of a TFRecord file (length, crc, payload, crc), parsed with the protobufs
    tensorboardX ships: an independent reader, not the writer's own code path."""
    from tensorboardX.proto.event_pb2 import Event
    data, pos, out = path.read_bytes(), 0, []
    while pos < len(data):
        (n,) = struct.unpack("<Q", data[pos:pos + 8])
        out.append(Event.FromString(data[pos + 12:pos + 12 + n]))
        pos += 12 + n + 4
    return out


def test_tensorboard_event_file_holds_the_scalars(text_run):
    _, out = text_run
    files = list(out.glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = read_events(files[0])
    scalars: dict = {}
    hist_tags, graph = set(), None
    for e in events:
        if e.HasField("graph_def"):
            from tensorboardX.proto.graph_pb2 import GraphDef
            graph = GraphDef.FromString(e.graph_def)
        for v in e.summary.value:
            if v.HasField("histo"):
                hist_tags.add(v.tag)
            elif v.HasField("simple_value") or v.metadata.plugin_data.plugin_name == "scalars":
                val = v.simple_value if v.HasField("simple_value") else v.tensor.float_val[0]
                scalars.setdefault(v.tag, []).append((e.step, val))
    history = json.loads((out / "history.json").read_text())
    per_epoch = scalars["train/ce"][0][0]
    assert set(scalars) == {"train/ce", "train/acc", "val/ce", "val/acc"}
    for k, series in (("ce", "train/ce"), ("acc", "train/acc"), ("val_ce", "val/ce"), ("val_acc", "val/acc")):
        assert [s for s, _ in scalars[series]] == [per_epoch * (i + 1) for i in range(3)]
        assert [v for _, v in scalars[series]] == pytest.approx(history[k], rel=1e-6)
    assert {"weights/net/dense_0/kernel", "weights/net/dense_1/bias"} <= hist_tags
    assert graph is not None and {"dense", "relu"} <= {n.op for n in graph.node}
    assert any(n.name.startswith("net/dense_0/") for n in graph.node)


def test_adversarial_tags_and_sample_images(tmp_path):
    prog = nndsl.loads(CGAN)
    tb = watch.TensorBoard(tmp_path)
    r = prog.trainer("cgan").fit(progress=False, callbacks=[tb], sample_dir=tmp_path / "samples")
    events = read_events(next(tmp_path.glob("events.out.tfevents.*")))
    tags = {v.tag for e in events for v in e.summary.value}
    assert {"train/d_loss", "train/g_loss", "grad_norm/g", "grad_norm/d", "samples/fake"} <= tags
    images = [v.image for e in events for v in e.summary.value if v.tag == "samples/fake"]
    assert len(images) == 2 and max(images[0].height, images[0].width) >= 512  # 10 class rows of 2
    assert set(r.history) >= {"grad_norm_g", "grad_norm_d"}


# ---------------------------------------------------------------------- sample grids
def test_grids_are_scaled_up_to_be_readable():
    x = np.random.default_rng(0).random((64, 16, 16, 1))
    g = samples.readable_grid(x)
    assert g.shape[0] >= 512 and g.shape[1] >= 512  # 8 rows of 8, not 135 pixels
    scale = 4
    # nearest neighbour: each source pixel is a solid block of scale x scale
    np.testing.assert_allclose(g[:scale, :scale, 0], np.full((scale, scale), x[0, 0, 0, 0] / 1.0), atol=0.05)
    lo, hi = x.min(), x.max()
    np.testing.assert_allclose(g[:16 * scale:scale, :16 * scale:scale, 0], (x[0, :, :, 0] - lo) / (hi - lo), atol=1e-5)


def test_conditional_grid_has_one_row_per_class():
    n, classes = 30, 10
    labels = np.arange(n) % classes
    x = np.zeros((n, 4, 4, 1))
    x[:, :, :, 0] = labels[:, None, None]  # each image is its class, as a grey level
    g = samples.readable_grid(x, labels)
    scale = -(-512 // max(classes * 4, 3 * 4))
    rows = [g[r * (4 * scale + 2) + 1, 1, 0] for r in range(classes)]
    np.testing.assert_allclose(rows, np.arange(classes) / (classes - 1), atol=1e-5)
    assert g.shape[0] == classes * (4 * scale + 2) - 2 and g.shape[1] == 3 * (4 * scale + 2) - 2


def test_conditional_generator_is_sampled_for_every_class(tmp_path):
    tr = nndsl.loads(CGAN).trainer("cgan")
    seen = []

    class Keep(watch.Callback):
        def on_sample(self, name, iteration, values, labels):
            seen.append((name, iteration, values.shape, None if labels is None else labels.tolist()))
    tr.fit(progress=False, callbacks=[Keep()], sample_dir=tmp_path)
    assert seen == [("fake", 2, (20, 4, 4, 1), [i % 10 for i in range(20)]),
                    ("fake", 4, (20, 4, 4, 1), [i % 10 for i in range(20)])]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake_000002.png", "fake_000004.png"]


class Recorder(watch.Callback):
    """The shape of a tracker hook (what an MLflow or W&B callback would log)."""

    def __init__(self):
        self.calls = []

    def on_start(self, info):
        self.calls.append(("start", info.name, info.total))

    def on_report(self, iteration, metrics, train_state):
        self.calls.append(("report", iteration, sorted(metrics)))

    def on_end(self, result):
        self.calls.append(("end", result.interrupted))


def test_callbacks_see_start_reports_and_end():
    rec = Recorder()
    r = nndsl.loads(DIGITS).trainer("digits", epochs=2).fit(progress=False, callbacks=[rec])
    per_epoch = 1437 // 64
    assert rec.calls == [("start", "digits", 2 * per_epoch),
                         ("report", per_epoch, sorted(r.history)), ("report", 2 * per_epoch, sorted(r.history)),
                         ("end", False)]
