"""`nndsl summary --depth`: sub-models folded to N levels and runs of identical blocks folded
with a count, so ResNets read in a screenful; per-layer plots that stay readable."""
from __future__ import annotations

from pathlib import Path

import pytest

import nndsl
from nndsl.summary import group_rows, rows, summarize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def resnet50():
    return nndsl.load(ROOT / "stdlib" / "resnet.nn").model("ResNet50", classes=10)


def test_depth_folds_blocks_and_repeats(resnet50):
    full = rows(resnet50)
    folded = group_rows(full, 1)
    assert len(full) > 150 and len(folded) == 14
    names = [r["layer"] for r in folded]
    assert names[:5] == ["conv2d_0", "batchnorm_0", "relu_0", "max_pool_0", "Bottleneck_0"]
    assert "Bottleneck_8..12 (×5)" in names  # `Bottleneck(256) * 5`: one row
    row = folded[names.index("Bottleneck_8..12 (×5)")]
    assert row["op"] == "Bottleneck" and row["count"] == 5
    # every parameter and FLOP is still counted once (the skip's `+` folded into its block)
    assert sum(r["params"] for r in folded) == sum(r["params"] for r in full) == 23_528_522
    assert sum(r["flops"] for r in folded) == sum(r["flops"] for r in full)
    assert all(not r["layer"].startswith("%") for r in folded)
    assert names[names.index("Bottleneck_8..12 (×5)") - 1] == "Bottleneck_7"  # the stride-2 block differs
    assert group_rows(full, None) is full


def test_depth_two_keeps_layers_inside_blocks(resnet50):
    folded = group_rows(rows(resnet50), 2)
    assert "Bottleneck_0.conv2d_0" in [r["layer"] for r in folded]


def test_summary_cli_depth_prints_a_short_whole_table(capsys, monkeypatch):
    from nndsl.cli import main
    monkeypatch.delenv("COLUMNS", raising=False)  # a pipe's width is not 80 unless the user says so
    assert main(["summary", str(ROOT / "stdlib" / "resnet.nn"), "ResNet50", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "ResNet50 (depth 1)" in out and "Bottleneck_8..12 (×5)" in out and "…" not in out
    assert len(out.splitlines()) < 30
    assert main(["summary", str(ROOT / "stdlib" / "resnet.nn"), "ResNet50", "--depth", "-1"]) == 2


def test_layer_plot_is_per_block_and_has_no_bars_for_zero(resnet50):
    pytest.importorskip("matplotlib")
    from nndsl.plots import layers_figure
    fig = layers_figure(rows(resnet50), "ResNet50")
    params_ax, flops_ax = fig.get_axes()
    labels = [t.get_text() for t in params_ax.get_yticklabels()]
    assert len(labels) == 14 and "relu_0" in labels and "Bottleneck_8..12 (×5)" in labels
    assert "per block" in fig._suptitle.get_text()
    # relu_0 and max_pool_0 have no parameters: no bar (a bar of width 1 would read as "1")
    assert len(params_ax.patches) == 14 - 3  # relu_0, max_pool_0, global_avg_pool_0
    assert min(p.get_width() for p in params_ax.patches) > 1
    assert len(flops_ax.patches) == 14
    many = [{"layer": f"l{i}", "op": "dense", "params": i + 1, "flops": i + 1, "path": None}
            for i in range(100)]
    fig = layers_figure(many, "wide", top=40)
    assert len(fig.get_axes()[1].patches) == 40 and "the 40 of 100" in fig._suptitle.get_text()
    assert [t.get_text() for t in fig.get_axes()[0].get_yticklabels()][0] == "l60"


def test_summarize_returns_totals(resnet50):
    import io

    from rich.console import Console
    info = summarize(resnet50, console=Console(file=io.StringIO()), depth=1)
    assert info["params"] == 23_528_522
