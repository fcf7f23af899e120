"""Watching a run: the progress bar, plain or JSON log lines, TensorBoard event files, and the
hook point for other trackers (MLflow, Weights & Biases, ...).

Everything here is a `Callback`: `Trainer.fit(callbacks=[...])` calls each one at the start, once
per iteration, at every report (each epoch, or every `eval_every` iterations), for every sample
the train block draws, and at the end. A tracker nndsl does not ship is a few lines:

    class MLflowLog(nndsl.train.watch.Callback):
        def on_report(self, iteration, metrics, train_state):
            mlflow.log_metrics(metrics, step=iteration)

    prog.trainer("digits").fit(callbacks=[MLflowLog()])

Why a bar only on a terminal: rich redraws its bar in place; written to a file, a pipe or a CI
log, only its last frame survives, squashed to 80 columns. Off a terminal each report is one
complete line instead, flushed at once so `tail -f` and notebooks see it as it happens.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class RunInfo:
    """What a callback may want to know about the run it watches."""

    name: str  # the train block
    total: int  # iterations in the whole run
    start: int  # first iteration (non-zero when resumed)
    per_epoch: int  # iterations per pass over the training data
    epochs: int | None  # the run's length in epochs, when it was given in epochs
    trainer: object = None
    batch: int = 0  # examples per iteration, for a rate (0: no rate shown)
    unit: str = "ex/s"  # "img/s" for image sources


class Callback:
    """Hook points of `Trainer.fit`; override what you need (every method does nothing here).
    `metrics` are Python floats: the means of the losses and metrics since the last report, the
    held-out ones prefixed `val_`, and `grad_norm_<model>` for adversarial blocks."""

    def on_start(self, info: RunInfo) -> None:
        pass

    def on_iteration(self, iteration: int) -> None:
        pass

    def on_report(self, iteration: int, metrics: dict, train_state: dict) -> None:
        pass

    def on_sample(self, name: str, iteration: int, values: np.ndarray, labels: np.ndarray | None) -> None:
        """`values` as the train block's `sample` statement computed them; `labels` the classes a
        conditional generator was asked for (rows of the grid), if there were any."""

    def on_end(self, result) -> None:
        """`result` is the FitResult (also after Ctrl-C), or None when the run failed with an error."""


def reporters(progress, stream=None) -> list[Callback]:
    """The console reporter for `progress`: True picks a bar on a terminal and plain lines
    elsewhere; "bar", "text" or "json" force one; False or None print nothing."""
    if not progress:
        return []
    stream = stream or sys.stdout
    if progress is True:
        progress = "bar" if _is_terminal(stream) else "text"
    if progress == "bar":
        return [ProgressBar()]
    if progress in ("text", "json"):
        return [LogLines(stream, progress)]
    raise ValueError(f"progress must be True, False, 'bar', 'text' or 'json', not {progress!r}")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def fmt_value(v: float) -> str:
    """Five significant digits: 0.9979, 0.0019 and 1.2e-05 all stay readable (a fixed .4f would
    print the last as 0.0000)."""
    return f"{v:.5g}"


class ProgressBar(Callback):
    """A rich progress bar with the latest losses and metrics (terminals only)."""

    def on_start(self, info: RunInfo) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        if info.batch:  # examples per second: iterations per second times the batch
            cols.append(TextColumn("{task.fields[rate]}"))
        self.batch, self.unit = info.batch, info.unit
        self.p = Progress(*cols, TextColumn("{task.fields[info]}"), transient=False)
        self.p.start()
        self.task = self.p.add_task(info.name, total=info.total, info="", rate="")
        if info.start:
            self.p.advance(self.task, info.start)

    def on_iteration(self, iteration: int) -> None:
        self.p.advance(self.task, 1)
        speed = self.p.tasks[0].speed if self.batch else None
        if speed:
            self.p.update(self.task, rate=f"{speed * self.batch:,.0f} {self.unit}")

    def on_report(self, iteration: int, metrics: dict, train_state: dict) -> None:
        self.p.update(self.task, info="  ".join(f"{k} {fmt_value(v)}" for k, v in metrics.items()))

    def on_end(self, result) -> None:
        self.p.stop()


class LogLines(Callback):
    """One complete line per report: `text` for people (`digits epoch 3/20 iteration 66/440
    ce 0.1234 ...`), `json` one object per line for machines."""

    def __init__(self, stream=None, fmt: str = "text"):
        self.stream = stream or sys.stdout
        self.fmt = fmt

    def on_start(self, info: RunInfo) -> None:
        self.info = info
        self.t0 = time.perf_counter()

    def on_report(self, iteration: int, metrics: dict, train_state: dict) -> None:
        info = self.info
        epoch = iteration / info.per_epoch if info.epochs is not None else None
        seconds = round(time.perf_counter() - self.t0, 2)
        if self.fmt == "json":
            rec = {"event": "report", "train": info.name, "iteration": iteration, "total": info.total}
            if epoch is not None:
                rec.update(epoch=round(epoch, 4), epochs=info.epochs)
            rec.update(seconds=seconds, metrics={k: json_float(v) for k, v in metrics.items()})
            line = json.dumps(rec)
        else:
            where = f"iteration {iteration}/{info.total}"
            if epoch is not None:
                where = f"epoch {epoch:.4g}/{info.epochs}  " + where
            line = "  ".join([info.name, where, *(f"{k} {fmt_value(v)}" for k, v in metrics.items()),
                              f"{seconds:.1f}s"])
        try:
            print(line, file=self.stream, flush=True)
        except (BrokenPipeError, ValueError):  # the reader went away: training goes on
            pass


def json_float(v: float):
    """NaN and infinity are not JSON: they become null (the text log shows them as nan/inf)."""
    return v if np.isfinite(v) else None


# ---------------------------------------------------------------------- TensorBoard
def tensorboard_available() -> bool:
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        return False
    return True


def scalar_tag(key: str) -> str:
    """TensorBoard groups tags by their first `/`: training, held-out and gradient-norm series
    each get their own section, so the losses are not drawn at the scale of the norms."""
    if key.startswith("val_"):
        return f"val/{key[4:]}"
    if key.startswith("grad_norm_"):
        return f"grad_norm/{key[10:]}"
    return f"train/{key}"


class TensorBoard(Callback):
    """Event files under `logdir` (`tensorboard --logdir runs` shows every run below it): the
    scalars at every report, each sample as an image (grids upscaled as in samples/), the train
    block's graph once, and histograms of every weight at the first report, every
    `histogram_every` reports after it, and at the end. Written with tensorboardX, which needs no
    TensorFlow."""

    def __init__(self, logdir: str | Path, histogram_every: int = 10):
        from tensorboardX import SummaryWriter
        self.logdir = Path(logdir)
        self.writer = SummaryWriter(logdir=str(self.logdir), flush_secs=10)
        self.every = max(1, histogram_every)
        self.reports = 0
        self.last = None

    def on_start(self, info: RunInfo) -> None:
        if info.trainer is not None:
            try:
                self.writer._get_file_writer().add_onnx_graph(graph_def(info.trainer.spec.graph))
            except Exception:  # noqa: BLE001 - a picture of the graph is never worth a failed run
                pass

    def on_report(self, iteration: int, metrics: dict, train_state: dict) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(scalar_tag(k), v, iteration)
        if self.reports % self.every == 0:
            self._histograms(iteration, train_state)
        self.reports += 1
        self.last = (iteration, train_state)

    def on_sample(self, name: str, iteration: int, values: np.ndarray, labels) -> None:
        from .samples import readable_grid
        values = np.asarray(values)
        if values.ndim == 4 and values.shape[-1] in (1, 3):
            grid = readable_grid(values, labels)
            if grid.shape[-1] == 1:
                grid = np.repeat(grid, 3, axis=-1)
            self.writer.add_image(f"samples/{name}", grid, iteration, dataformats="HWC")
        elif values.ndim == 2 and values.shape[1] == 2:
            fig = _scatter(values)
            if fig is not None:
                self.writer.add_figure(f"samples/{name}", fig, iteration)

    def on_end(self, result) -> None:
        if self.last is not None and (self.reports - 1) % self.every:
            self._histograms(*self.last)
        self.writer.flush()
        self.writer.close()

    def _histograms(self, iteration: int, train_state: dict) -> None:
        import jax
        leaves = jax.tree_util.tree_flatten_with_path(train_state.get("params", {}))[0]
        for path, leaf in leaves:
            name = "/".join(str(getattr(p, "key", p)) for p in path)
            arr = np.asarray(leaf, np.float32).ravel()
            if arr.size and np.all(np.isfinite(arr)):
                self.writer.add_histogram(f"weights/{name}", arr, iteration)


def _scatter(points: np.ndarray):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(points[:, 0], points[:, 1], s=3, c="#d62728")
    ax.set_aspect("equal")
    return fig


def graph_def(g):
    """The dataflow graph as a TensorBoard GraphDef: one node per op, named by its layer path so
    TensorBoard folds each layer (and each sub-model) into one box."""
    from tensorboardX.proto.attr_value_pb2 import AttrValue
    from tensorboardX.proto.graph_pb2 import GraphDef
    from tensorboardX.proto.node_def_pb2 import NodeDef
    from tensorboardX.proto.versions_pb2 import VersionDef
    names: dict = {}
    used: set = set()
    for n in g.nodes():
        base = "/".join(str(p) for p in n.path) + f"/{n.op}" if n.path else (n.label or n.op)
        name, i = base, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        names[n.id] = name
    nodes = []
    for n in g.nodes():
        shape = getattr(n.type, "shape", None)
        attr = {"shape": AttrValue(s=str(list(shape)).encode())} if shape is not None else {}
        nodes.append(NodeDef(name=names[n.id], op=n.op, input=[names[i] for i in g.input_ids(n.id)],
                             attr=attr))
    return GraphDef(node=nodes, versions=VersionDef(producer=22))
