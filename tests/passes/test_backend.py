"""Per-platform XLA options (nndsl/lower/backend.py): -O0 keeps XLA's defaults, higher levels
compile the trainer's step with the platform's options, and an option this XLA does not know is
dropped rather than failing the compile."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import nndsl
from nndsl.lower import backend

SRC = """
model Net {
  input image: [batch, 12, 12, 32]
  output logits = image -> conv2d(32, 3) -> relu -> flatten -> dense(4)
}
train t {
  data npz("d.npz", batch=8, split=1.0)
  model net = Net()
  loss ce = cross_entropy(data.image -> net, data.label)
  step net minimize ce with sgd(lr=0.1)
}
"""


def _trainer(tmp_path, level):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", image=rng.standard_normal((16, 12, 12, 32)).astype(np.float32),
             label=rng.integers(0, 4, 16).astype(np.int32))
    return nndsl.loads(SRC, base=tmp_path, opt_level=level).trainer("t")


def test_O0_uses_xla_defaults_and_higher_levels_the_platform_options():
    assert backend.xla_options(0) == {}
    assert backend.xla_options(1, "cpu") == backend.xla_options(2, "cpu")
    assert backend.xla_options(1, "no-such-platform") == {}


def test_an_option_this_xla_does_not_know_is_dropped(monkeypatch):
    platform = jax.default_backend()
    monkeypatch.setitem(backend.OPTIONS, platform, {"xla_no_such_option_at_all": True})
    assert backend.xla_options(1) == {}
    f = backend.jit(lambda x: x * 2, 1)
    assert float(f(3.0)) == 6.0


def test_a_known_option_beside_an_unknown_one_is_kept(monkeypatch):
    """The whole set is probed at once; refused, each option is probed alone, so one flag a newer
    XLA renamed does not cost the others."""
    platform = jax.default_backend()
    monkeypatch.setitem(backend.OPTIONS, platform, {"xla_no_such_option_at_all": True,
                                                    "xla_backend_optimization_level": 2})
    assert backend.xla_options(1) == {"xla_backend_optimization_level": 2}


def ynn_convolutions(hlo: str) -> int:
    """How many YNNPACK fusions in compiled HLO text call a computation with a convolution."""
    with_conv = set()
    for block in hlo.split("\n\n"):
        head = block.strip().split(" ", 1)[0]
        if head.startswith("%") and "convolution(" in block:
            with_conv.add(head[1:])
    return sum(1 for line in hlo.splitlines() if "__ynn_fusion" in line
               and any(f"calls=%{name}," in line for name in with_conv))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU choice")
def test_cpu_convolutions_leave_ynnpack_at_O1(tmp_path):
    """The measured choice on XLA:CPU: convolutions compile to XLA's own kernels, not YNNPACK
    (dots stay with YNNPACK). Checked in the compiled step, not assumed from the option."""
    if not backend.xla_options(1, "cpu"):
        pytest.skip("this jaxlib has no YNNPACK fusion option")
    texts = {}
    for level in (0, 1):
        tr = _trainer(tmp_path, level)
        ts = tr.init(jax.random.key(0))
        batch = {"image": np.zeros((8, 12, 12, 32), np.float32), "label": np.zeros(8, np.int32)}
        step = backend.jit(tr.step_fn(8), level)
        texts[level] = step.lower(ts, batch, jax.random.key(1)).compile().as_text()
    assert ynn_convolutions(texts[0]) > 0  # XLA's default: the detector sees them
    assert ynn_convolutions(texts[1]) == 0 and "convolution(" in texts[1]
    # and the two levels train alike
    a, b = _trainer(tmp_path, 0), _trainer(tmp_path, 1)
    sa, sb = a.init(jax.random.key(0)), b.init(jax.random.key(0))
    batch = {"image": np.ones((8, 12, 12, 32), np.float32), "label": np.arange(8, dtype=np.int32) % 4}
    (sa, ma), (sb, mb) = a.step(sa, batch, jax.random.key(1)), b.step(sb, batch, jax.random.key(1))
    np.testing.assert_allclose(ma["ce"], mb["ce"], rtol=1e-5)
    for x, y in zip(jax.tree_util.tree_leaves(sa["params"]), jax.tree_util.tree_leaves(sb["params"])):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
