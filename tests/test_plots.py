"""Curves: separate panels for losses, metrics and gradient norms, log axes where values span
decades, an unknown `--metric` named with the ones that exist; curves.png's absence said once."""
from __future__ import annotations

import json

import pytest

from nndsl import plots
from nndsl.cli import main
from nndsl.errors import NndslError

pytest.importorskip("matplotlib")

GAN = {"d_loss": [1.4, 1.2, 1.1], "g_loss": [0.7, 0.9, 1.0], "d_real": [0.6, 0.55, 0.5],
       "grad_norm_D": [300.0, 20.0, 0.5], "grad_norm_G": [40.0, 10.0, 2.0]}


def test_losses_metrics_and_norms_get_their_own_panels():
    fig = plots.histories_figure({"": GAN}, None, losses={"d_loss", "g_loss"}, metrics={"d_real"})
    axes = fig.get_axes()
    assert [a.get_title(loc="left") for a in axes] == ["losses", "metrics", "gradient norms"]
    labels = [sorted(line.get_label() for line in a.get_lines()) for a in axes]
    assert labels == [["d_loss", "g_loss"], ["d_real"], ["grad_norm_D", "grad_norm_G"]]
    # the norms span three decades: log axis; losses and metrics stay linear
    assert [a.get_yscale() for a in axes] == ["linear", "linear", "log"]


def test_history_alone_tells_metrics_by_name():
    hist = {"ce": [2.0, 0.01], "acc": [0.5, 0.99], "val_ce": [2.1, 0.02], "val_acc": [0.4, 0.98]}
    fig = plots.histories_figure({"": hist}, None)
    axes = fig.get_axes()
    assert [a.get_title(loc="left") for a in axes] == ["losses", "metrics"]
    assert sorted(line.get_label() for line in axes[1].get_lines()) == ["acc", "val_acc"]
    assert axes[0].get_yscale() == "log"  # 2.1 down to 0.01
    assert plots.panel_of("val_ce", {"ce"}, {"acc"}) == "losses"
    assert plots.panel_of("val_acc", {"ce"}, {"acc"}) == "metrics"


def test_plot_unknown_metric_lists_those_that_exist(tmp_path, capsys):
    h = tmp_path / "history.json"
    h.write_text(json.dumps({"ce": [1.0, 0.5], "acc": [0.5, 0.9]}))
    out = tmp_path / "c.png"
    code = main(["plot", str(h), "--metric", "nope", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert "error[E811]" in err and "`nope`" in err and "acc, ce" in err
    assert not out.exists()
    assert main(["plot", str(h), "--metric", "acc", "-o", str(out)]) == 0 and out.stat().st_size > 0
    with pytest.raises(NndslError):
        plots.plot_histories({"a": {"ce": [1.0]}, "b": {"acc": [1.0]}}, ["loss"], out)


def test_missing_matplotlib_is_said_once(tmp_path, capsys, monkeypatch):
    import builtins

    from nndsl import cli
    real = builtins.__import__

    def no_matplotlib(name, *a, **kw):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    cli._loss_curves(tmp_path, {"ce": [1.0]})
    err = capsys.readouterr().err
    assert err.count("matplotlib is not installed") == 1 and "nndsl[plot]" in err
    assert not (tmp_path / "curves.png").exists()
