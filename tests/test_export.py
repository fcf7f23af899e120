"""Exported models (jax.export, StableHLO, symbolic batch) give the same outputs as the source
model, with no `.nn` file at hand; the exported training step runs one iteration identically."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

import nndsl
from nndsl.export import export_model, export_train_step

ROOT = Path(__file__).resolve().parents[1]


def test_exported_model_round_trips_for_any_batch(tmp_path, key):
    prog = nndsl.load(ROOT / "examples" / "resnet_digits.nn")
    m = prog.model("SmallResNet")
    x = jax.random.normal(key, (2, 16, 16, 1))
    v = m.init(key, x)
    export_model(m, v, tmp_path / "m.jaxexport")
    fn, names = nndsl.load_exported(tmp_path / "m.jaxexport")
    assert names == ["image"]
    for n in (1, 5):
        xs = jax.random.normal(jax.random.key(n), (n, 16, 16, 1))
        np.testing.assert_allclose(fn(xs), m.apply(v, xs), rtol=1e-5, atol=1e-6)


def test_exported_model_runs_in_a_process_without_the_source(tmp_path, key):
    prog = nndsl.load(ROOT / "examples" / "xor_mlp.nn")
    m = prog.model("XorMLP")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    v = m.init(key, x)
    export_model(m, v, tmp_path / "xor.jaxexport")
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([sys.executable, "-m", "nndsl.cli", "run", "xor.jaxexport", "--input", "x.npy",
                        "--output", "y.npy"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), m.apply(v, x), rtol=1e-6)


def test_exported_training_step_equals_the_live_one(tmp_path):
    prog = nndsl.load(ROOT / "examples" / "xor_mlp.nn")
    tr = prog.trainer("xor")
    export_train_step(tr, tmp_path / "step.jaxexport")
    fn, _ = nndsl.load_exported(tmp_path / "step.jaxexport")
    ts = tr.init(jax.random.key(0))
    batch = {"x": np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32),
             "y": np.array([0, 1, 1, 0], np.float32)}
    key = jax.random.key(3)
    live, live_m = tr.step(ts, batch, key)
    leaves, exp_m = fn(jax.tree_util.tree_leaves(ts), batch, jax.random.key_data(key))
    for a, b in zip(jax.tree_util.tree_leaves(live), leaves):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(live_m["bce"], exp_m["bce"], rtol=1e-6)


def test_a_corrupt_artifact_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.jaxexport"
    p.write_bytes(b"not an export")
    try:
        nndsl.load_exported(p)
    except nndsl.NndslError as e:
        assert "not an nndsl export" in str(e)
    else:
        raise AssertionError("expected an error")


def test_the_artifact_records_the_choices_per_platform(tmp_path, key):
    """The passes and each platform's XLA options travel in the header, so a machine running the
    artifact compiles it as the optimization level chose, without the source."""
    from nndsl.export import read_header
    from nndsl.lower.backend import OPTIONS, xla_options
    prog = nndsl.load(ROOT / "examples" / "lenet5.nn", opt_level=2)
    m = prog.model("LeNet5")
    x = jax.random.normal(key, (2, 32, 32, 1))
    v = m.init(key, x)
    export_model(m, v, tmp_path / "m.jaxexport")
    meta, _ = read_header((tmp_path / "m.jaxexport").read_bytes(), "m.jaxexport")
    assert meta["inputs"] == ["image"] and meta["opt_level"] == 2
    assert "conv-as-matmul" in meta["passes"]
    assert set(meta["xla_options"]) == set(OPTIONS)
    assert meta["xla_options"]["cpu"] == xla_options(2, "cpu")
    fn, _ = nndsl.load_exported(tmp_path / "m.jaxexport")
    np.testing.assert_allclose(fn(x), m.apply(v, x), rtol=1e-5, atol=1e-6)


def test_an_unchecksummed_version_1_artifact_is_refused(tmp_path, key):
    """Versions 1 and 2 carried no checksum: a damaged one would run, so neither runs (E630)."""
    from jax import export
    from nndsl.export import MAGIC_V1
    prog = nndsl.load(ROOT / "examples" / "xor_mlp.nn")
    m = prog.model("XorMLP")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    v = m.init(key, x)
    exp = export.export(jax.jit(lambda x: m.apply(v, x)))(jax.ShapeDtypeStruct(x.shape, x.dtype))
    (tmp_path / "old.jaxexport").write_bytes(MAGIC_V1 + b"x\n" + bytes(exp.serialize()))
    try:
        nndsl.load_exported(tmp_path / "old.jaxexport")
    except nndsl.NndslError as e:
        assert e.diagnostics[0].code == "E630" and "export the model again" in str(e)
    else:
        raise AssertionError("an unverifiable artifact loaded")


def test_a_loaded_artifact_can_be_called_inside_the_users_own_jit(tmp_path, key):
    """The recorded XLA options apply where the artifact is the top-level computation; inside
    another jit (where JAX refuses compiler options) it still runs."""
    prog = nndsl.load(ROOT / "examples" / "lenet5.nn", opt_level=2)
    m = prog.model("LeNet5")
    x = jax.random.normal(key, (2, 32, 32, 1))
    v = m.init(key, x)
    export_model(m, v, tmp_path / "m.jaxexport")
    fn, _ = nndsl.load_exported(tmp_path / "m.jaxexport")
    np.testing.assert_allclose(jax.jit(lambda x: fn(x) * 2)(x), 2 * m.apply(v, x), rtol=1e-5, atol=1e-6)
