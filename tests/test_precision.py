"""Mixed precision: `precision bf16|f16` computes in the lower precision, keeps float32 masters.

References are written here with jax.numpy and the same weights: the same casts at the same
places (parameters cast at the op, losses and softmax in float32).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nndsl
from nndsl.errors import NndslError
from nndsl.train import step as step_mod

MLP = """
model Net {
  input x: [batch, 4]
  output y = x -> dense(8) -> tanh -> dense(3)
}
train fit {
  data npz("d.npz", batch=4)
  model net = Net()
  y = data.x -> net
  loss l = mse(y, data.t)
  step net minimize l with sgd(lr=0.1)
  iterations 4
  precision PREC
}
"""


def _program(tmp_path, prec: str, scale: float = 1.0):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((8, 4)).astype(np.float32),
             t=(scale * rng.standard_normal((8, 3))).astype(np.float32))
    return nndsl.loads(MLP.replace("PREC", prec), base=tmp_path)


def _batch(tmp_path):
    d = np.load(tmp_path / "d.npz")
    return {"x": d["x"][:4], "t": d["t"][:4]}


def _reference_loss(p, batch, dtype):
    c = lambda a: a.astype(dtype)
    h = jnp.tanh(c(batch["x"]) @ c(p["dense_0"]["kernel"]) + c(p["dense_0"]["bias"]))
    y = h @ c(p["dense_1"]["kernel"]) + c(p["dense_1"]["bias"])
    return jnp.mean((y.astype(jnp.float32) - batch["t"]) ** 2)


@pytest.mark.parametrize("prec,dtype", [("bf16", jnp.bfloat16), ("f16", jnp.float16)])
def test_step_computes_in_the_lower_precision_and_keeps_float32_masters(tmp_path, prec, dtype):
    trainer = _program(tmp_path, prec).trainer()
    ts = trainer.init(jax.random.key(0))
    p0 = jax.tree_util.tree_map(np.asarray, ts["params"]["net"])
    batch = _batch(tmp_path)
    ts1, m = trainer.step(ts, batch, jax.random.key(1))
    # jitted like the step: XLA keeps fused bf16 elementwise chains in float32 between roundings
    ref = jax.jit(_reference_loss, static_argnums=2)(p0, batch, dtype)
    f32 = jax.jit(_reference_loss, static_argnums=2)(p0, batch, jnp.float32)
    assert float(m["l"]) == pytest.approx(float(ref), rel=1e-6)
    assert abs(float(ref) - float(f32)) > 1e-6  # the lower precision really was used
    g = jax.jit(jax.grad(_reference_loss), static_argnums=2)(p0, batch, dtype)
    for layer in ("dense_0", "dense_1"):
        for leaf in ("kernel", "bias"):
            new = ts1["params"]["net"][layer][leaf]
            assert new.dtype == jnp.float32
            np.testing.assert_allclose(np.asarray(new), p0[layer][leaf] - 0.1 * np.asarray(g[layer][leaf]),
                                       rtol=1e-5, atol=1e-6)


def test_f16_loss_scale_halves_on_overflow_and_skips_that_update(tmp_path):
    trainer = _program(tmp_path, "f16", scale=3000.0).trainer()
    ts = trainer.init(jax.random.key(0))
    assert float(ts["loss_scale"]["scale"]) == step_mod.LOSS_SCALE_INIT
    before = np.asarray(ts["params"]["net"]["dense_0"]["kernel"])
    ts1, m = trainer.step(ts, _batch(tmp_path), jax.random.key(1))
    # d loss / d y = 2 (y - t) / n, about 1e3, times 2**15 overflows float16 (max 65504)
    assert float(ts1["loss_scale"]["scale"]) == step_mod.LOSS_SCALE_INIT / 2
    np.testing.assert_array_equal(np.asarray(ts1["params"]["net"]["dense_0"]["kernel"]), before)
    assert bool(m["finite"])  # an overflow is the scale's business, not divergence
    for _ in range(12):
        ts1, m = trainer.step(ts1, _batch(tmp_path), jax.random.key(1))
    assert float(ts1["loss_scale"]["scale"]) < step_mod.LOSS_SCALE_INIT / 8
    assert not np.array_equal(np.asarray(ts1["params"]["net"]["dense_0"]["kernel"]), before)


def test_f16_loss_scale_grows_after_a_run_of_good_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(step_mod, "LOSS_SCALE_GROWTH_EVERY", 3)
    monkeypatch.setattr(step_mod, "LOSS_SCALE_INIT", 4.0)
    trainer = _program(tmp_path, "f16").trainer()
    ts = trainer.init(jax.random.key(0))
    scales = []
    for _ in range(6):
        ts, _ = trainer.step(ts, _batch(tmp_path), jax.random.key(1))
        scales.append(float(ts["loss_scale"]["scale"]))
    assert scales == [4.0, 4.0, 8.0, 8.0, 8.0, 16.0]


def test_precision_setting_is_checked(tmp_path):
    with pytest.raises(NndslError) as e:
        _program(tmp_path, "f8").trainer()
    assert "E349" in str(e.value) and "precision" in str(e.value)
    with pytest.raises(NndslError):
        _program(tmp_path, "f32").trainer(precision="int8")


def test_cli_override_trains_in_bf16(tmp_path, capsys):
    from nndsl.cli import main
    _program(tmp_path, "f32")
    (tmp_path / "m.nn").write_text(MLP.replace("PREC", "f32"))
    assert main(["train", str(tmp_path / "m.nn"), "--precision", "bf16", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    from safetensors.numpy import load_file
    weights = load_file(str(tmp_path / "run" / "net.safetensors"))
    assert all(v.dtype == np.float32 for v in weights.values())


@pytest.mark.slow
def test_lenet5_in_bf16_reaches_the_float32_held_out_accuracy(root):
    prog = nndsl.load(root / "examples" / "lenet5.nn")
    acc = {}
    for prec in ("f32", "bf16"):
        r = prog.trainer(prog.trains[0], precision=prec).fit(progress=False)
        acc[prec] = r.history["val_acc"][-1]
    assert acc["bf16"] >= acc["f32"] - 0.003, acc
