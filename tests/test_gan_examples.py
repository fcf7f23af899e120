"""The GAN examples reach the figures the README quotes (seeded runs, judged by
benchmarks/gan_digits_quality.py), and the StyleGAN and BigGAN sketches train with finite losses
and write sample grids."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import jax
import numpy as np
import pytest

import nndsl

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GAN_FILES = ["dcgan_digits.nn", "cgan_digits.nn", "cyclegan_digits.nn", "stylegan_small.nn", "biggan_small.nn"]


def quality():
    spec = importlib.util.spec_from_file_location("gan_digits_quality", ROOT / "benchmarks" / "gan_digits_quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def judge():
    return quality().classifier()


@pytest.mark.parametrize("file", GAN_FILES)
def test_gan_examples_check(file):
    assert nndsl.api.check_program(nndsl.load(EXAMPLES / file)) == []


def _train_briefly(file: str, block: str, iterations: int, tmp_path):
    tr = nndsl.load(EXAMPLES / file).trainer(block, iterations=iterations)
    r = tr.fit(progress=False, sample_dir=tmp_path)
    for name, values in r.history.items():
        assert values and all(math.isfinite(v) for v in values), (name, values)
    grids = sorted(p.name for p in tmp_path.iterdir())
    assert grids == [f"fake_{iterations:06d}.png"], grids
    return r


@pytest.mark.parametrize("file, block, ops", [
    ("stylegan_small.nn", "stylegan", {"adain", "noise_injection"}),
    ("biggan_small.nn", "biggan", {"conditional_batchnorm", "self_attention", "conv2d_sn", "dense_sn",
                                   "hinge_d", "hinge_g"}),
])
def test_style_and_big_gans_train_briefly(file, block, ops, tmp_path):
    tr = nndsl.load(EXAMPLES / file).trainer(block)
    assert ops <= {n.op for n in tr.spec.graph.nodes()}
    r = _train_briefly(file, block, 20, tmp_path)
    assert set(r.variables) == {"G", "D"}


@pytest.mark.slow
@pytest.mark.parametrize("file, block", [("stylegan_small.nn", "stylegan"), ("biggan_small.nn", "biggan")])
def test_style_and_big_gans_train_200_iterations(file, block, tmp_path):
    r = _train_briefly(file, block, 200, tmp_path)
    assert r.history["d_loss"][-1] != r.history["d_loss"][0]


def test_biggan_spectral_norm_state_advances_only_in_training():
    prog = nndsl.load(EXAMPLES / "biggan_small.nn")
    d = prog.model("BigDiscriminator")
    x = np.random.default_rng(0).uniform(size=(4, 16, 16, 1)).astype(np.float32)
    labels = np.arange(4, dtype=np.int32)
    v = d.init(jax.random.key(0), x, labels)
    sn = [k for k in v["state"] if k.startswith("conv2d_sn")]
    assert len(sn) == 3
    _, new = d.apply(v, x, labels, train=True)
    for k in sn:
        assert not np.allclose(new[k]["u"], v["state"][k]["u"])


@pytest.mark.slow
def test_dcgan_samples_are_recognizable_digits_of_every_class(judge):
    q = quality()
    prog, tr, variables, _ = q.train_gan("dcgan")
    share, counts = q.dcgan_figure(q._model(prog, tr, "G"), variables["G"], judge)
    assert share >= 0.80, (share, counts)
    assert (counts > 0).all(), counts


@pytest.mark.slow
def test_cgan_samples_have_the_class_asked_for(judge):
    q = quality()
    prog, tr, variables, _ = q.train_gan("cgan")
    share, per_class = q.cgan_figure(q._model(prog, tr, "G"), variables["G"], judge)
    assert share >= 0.80, (share, per_class)


@pytest.mark.slow
def test_cyclegan_translations_keep_their_class(judge):
    q = quality()
    prog, tr, variables, _ = q.train_gan("cyclegan")
    bold = q.classifier(None, "cyclegan_digits.nn", "classifier_bold")
    ab, ba = q.cyclegan_figure(prog, q._model(prog, tr, "G_ab"), q._model(prog, tr, "G_ba"), variables, judge, bold)
    assert ab >= 0.80 and ba >= 0.80, (ab, ba)
