"""The real-data examples: the image-folder CNN on a generated folder (runs anywhere) and the
CIFAR-10 ResNet on tiny generated CIFAR files (on the real files too, when the user has them)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import nndsl
from nndsl.cli import main
from nndsl.data import synth

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_image_folder_example_learns_the_generated_classes(tmp_path, capsys):
    shutil.copy(EXAMPLES / "image_folder" / "shapes.nn", tmp_path)
    synth.write_images(tmp_path / "photos", per_class=40, classes=4, size=32)
    assert main(["check", str(tmp_path / "shapes.nn")]) == 0
    out = capsys.readouterr().out
    assert "160 examples" in out and "4 classes (class0, class1, class2, class3)" in out
    r = nndsl.load(tmp_path / "shapes.nn").trainer(epochs=4).fit(progress=False)
    assert r.history["val_acc"][-1] >= 0.9


def _tiny_cifar(tmp_path):
    shutil.copy(EXAMPLES / "cifar10" / "resnet_cifar10.nn", tmp_path)
    synth.write_cifar10(tmp_path / "data", n_train=20, n_test=8)
    return nndsl.load(tmp_path / "resnet_cifar10.nn")


def test_cifar10_example_checks_on_tiny_generated_cifar_files(tmp_path):
    prog = _tiny_cifar(tmp_path)
    assert nndsl.api.check_program(prog) == []
    tr = prog.trainer(iterations=1)
    assert tr.spec.data.count == (20, 8) and tr.spec.data.classes[-1] == "truck"
    assert tr.spec.data.tables(0)[0].take([0, 19])["x"].shape == (2, 32, 32, 3)


@pytest.mark.slow
def test_cifar10_example_trains_on_tiny_generated_cifar_files(tmp_path):
    r = _tiny_cifar(tmp_path).trainer(iterations=1).fit(progress=False)
    assert r.history["ce"] and "val_acc" in r.history


@pytest.mark.slow
@pytest.mark.skipif(not (EXAMPLES / "cifar10" / "data" / "data_batch_1.bin").exists(),
                    reason="the CIFAR-10 files are not in examples/cifar10/data")
def test_cifar10_example_on_the_real_files():
    tr = nndsl.load(EXAMPLES / "cifar10" / "resnet_cifar10.nn").trainer(iterations=20)
    assert tr.spec.data.count == (50_000, 10_000)
    assert tr.fit(progress=False).history["ce"]
