"""Data on disk (issue 18) and the data-path trust rules (issue 13): every format is generated here,
with truncated and corrupt variants; paths outside the project tree are refused unless the user
grants a data root; nothing a file holds is quoted back."""
from __future__ import annotations

import gzip
import os
import zipfile

import numpy as np
import pytest

import nndsl
from nndsl.cli import main
from nndsl.data import synth

TRAIN = """
model Net(classes: int = 3) {
  input x: [batch, %(shape)s]
  output logits = x -> flatten -> dense(classes)
}
train t {
  data %(data)s
  model net = Net(%(args)s)
  logits = data.x -> net
  loss ce = cross_entropy(logits, data.y)
  metric acc = accuracy(logits, data.y)
  step net minimize ce with adam(lr=0.05)
  epochs 2
}
"""


def _write(tmp_path, data, shape, args="", name="t.nn"):
    p = tmp_path / name
    p.write_text(TRAIN % {"data": data, "shape": shape, "args": args})
    return p


def _error(fn):
    with pytest.raises(nndsl.NndslError) as e:
        fn()
    return e.value


# ------------------------------------------------------------------------ sources
def test_image_folder_classes_shapes_and_pixels(tmp_path):
    from PIL import Image
    synth.write_images(tmp_path / "imgs", per_class=4, classes=3, size=8, channels=3)
    p = _write(tmp_path, 'images("imgs", size=8, channels=3, batch=4, split=0.75)', "8, 8, 3")
    tr = nndsl.load(p).trainer("t")
    src = tr.spec.data
    assert src.classes == ["class0", "class1", "class2"] and src.count == (12, 0)
    assert tuple(src.fields["x"].shape) == (8, 8, 3)
    train, test = src.tables(0)
    assert len(train) == 9 and len(test) == 3
    # every row equals an independent decode of its file, scaled to [0, 1]
    files = sorted((tmp_path / "imgs").glob("*/*.png"))
    whole = src.table()[0].all()
    for i, f in enumerate(files):
        ref = np.asarray(Image.open(f).convert("RGB"), np.float32) / 255
        np.testing.assert_allclose(whole["x"][i], ref, atol=1e-6)
        assert whole["y"][i] == ["class0", "class1", "class2"].index(f.parent.name)
    r = tr.fit(progress=False)
    assert len(r.history["val_acc"]) == 2


def test_image_folder_grayscale_resize_jpeg_and_held_out_folder(tmp_path):
    synth.write_images(tmp_path / "train", per_class=3, classes=2, size=12, channels=3, fmt="jpeg")
    synth.write_images(tmp_path / "val", per_class=2, classes=2, size=12, channels=3, fmt="jpeg", seed=5)
    p = _write(tmp_path, 'images("train", size=6, channels=1, batch=2, held_out="val")', "6, 6, 1", "classes=2")
    src = nndsl.load(p).trainer("t").spec.data
    assert src.count == (6, 4)
    train, test = src.tables(0)
    assert len(train) == 6 and len(test) == 4
    b = train.take([0, 5])
    assert b["x"].shape == (2, 6, 6, 1) and b["x"].dtype == np.float32 and 0 <= b["x"].min() <= b["x"].max() <= 1


def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    synth.write_images(tmp_path / "imgs", per_class=2, classes=2, size=8)
    victim = min((tmp_path / "imgs" / "class1").glob("*.png"))
    victim.write_bytes(victim.read_bytes()[:30])  # truncated
    p = _write(tmp_path, 'images("imgs", size=8, batch=4, split=1.0)', "8, 8, 3", "classes=2")
    e = _error(lambda: nndsl.load(p).trainer("t").fit(progress=False))
    assert f"imgs/class1/{victim.name}" in str(e) and "t.nn:7:" in str(e) and e.diagnostics[0].code == "E356"


def test_mnist_idx_plain_and_gz_with_official_test_held_out(tmp_path):
    for gz in (False, True):
        root = synth.write_mnist(tmp_path / f"m{gz}", n_train=30, n_test=10, gz=gz)
        p = _write(tmp_path, f'mnist("m{gz}", batch=10)', "28, 28, 1", "classes=10", name=f"m{gz}.nn")
        tr = nndsl.load(p).trainer("t")
        src = tr.spec.data
        assert src.count == (30, 10) and src.statics["classes"] == 10
        train, test = src.tables(0)
        with (gzip.open if gz else open)(root / ("train-images-idx3-ubyte" + (".gz" if gz else "")), "rb") as f:
            raw = f.read()
        ref = np.frombuffer(raw[16:], np.uint8).reshape(30, 28, 28)[3] / 255
        np.testing.assert_allclose(train.take([3])["x"][0, ..., 0], ref, atol=1e-6)
        assert len(test) == 10
    r = tr.fit(progress=False)
    assert "val_acc" in r.history


@pytest.mark.parametrize("damage", ["truncate", "magic", "count"])
def test_broken_mnist_files_name_the_file(tmp_path, damage):
    root = synth.write_mnist(tmp_path / "m", n_train=20, n_test=5)
    f = root / "train-images-idx3-ubyte"
    b = bytearray(f.read_bytes())
    if damage == "truncate":
        b = b[:-100]
    elif damage == "magic":
        b[2] = 0x55
    else:
        (root / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + (19).to_bytes(4, "big") + bytes(19))
    f.write_bytes(bytes(b))
    p = _write(tmp_path, 'mnist("m", batch=5)', "28, 28, 1", "classes=10")
    e = _error(lambda: nndsl.load(p).trainer("t").fit(progress=False))
    assert "m/train-" in str(e) and "Traceback" not in str(e)


def test_gzip_bomb_in_mnist_stops_at_the_header_size(tmp_path):
    root = synth.write_mnist(tmp_path / "m", n_train=20, n_test=5)
    f = root / "train-images-idx3-ubyte"
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(f.read_bytes() + bytes(50_000_000)))
    f.unlink()
    p = _write(tmp_path, 'mnist("m", batch=5)', "28, 28, 1", "classes=10")
    train, _ = nndsl.load(p).trainer("t").spec.data.tables(0)
    assert train.take([0])["x"].shape == (1, 28, 28, 1)


def test_cifar10_binary_batches_and_test_batch(tmp_path):
    root = synth.write_cifar10(tmp_path / "c", n_train=25, n_test=7)
    p = _write(tmp_path, 'cifar10("c", batch=5)', "32, 32, 3", "classes=10")
    src = nndsl.load(p).trainer("t").spec.data
    assert src.count == (25, 7) and src.classes[0] == "airplane"
    train, _ = src.tables(0)
    rec = np.frombuffer((root / "data_batch_2.bin").read_bytes(), np.uint8).reshape(-1, 3073)[1]
    got = train.take([6])  # batch 2's second record: 5 records per batch file
    assert got["y"][0] == rec[0]
    np.testing.assert_allclose(got["x"][0], rec[1:].reshape(3, 32, 32).transpose(1, 2, 0) / 255, atol=1e-6)
    (root / "data_batch_3.bin").write_bytes((root / "data_batch_3.bin").read_bytes()[:-7])
    e = _error(lambda: nndsl.load(p).trainer("t"))
    assert "c/data_batch_3.bin is truncated" in str(e)


def test_npy_shards_concatenate_in_order_and_train(tmp_path):
    synth.write_npy_shards(tmp_path / "s", n=40, shards=3)
    p = _write(tmp_path, 'npy("s", batch=8, split=1.0)', "8")
    tr = nndsl.load(p).trainer("t")
    train, _ = tr.spec.data.tables(0)
    x = np.concatenate([np.load(tmp_path / "s" / f"x_{i:03d}.npy") for i in range(3)])
    idx = [0, 13, 39, 14, 27]
    np.testing.assert_array_equal(train.take(idx)["x"], x[idx])
    assert tr.fit(progress=False).history["acc"]


def test_npy_shard_whose_header_claims_a_billion_rows(tmp_path):
    synth.write_npy_shards(tmp_path / "s", n=20, shards=2)
    f = tmp_path / "s" / "x_001.npy"
    text = f.read_bytes().replace(b"(10, 8)", b"(1000000000, 8)")
    f.write_bytes(text)
    p = _write(tmp_path, 'npy("s", batch=8, split=1.0)', "8")
    e = _error(lambda: nndsl.load(p).trainer("t"))
    assert "s/x_001.npy is truncated" in str(e)


def test_npz_bombs_refused_before_allocation(tmp_path):
    import resource
    x = np.zeros((1000, 1000), np.float32)
    np.savez_compressed(tmp_path / "bomb.npz", x=x, y=np.zeros(1000, np.int32))
    p = _write(tmp_path, 'npz("bomb.npz", batch=8)', "1000")
    prog = nndsl.load(p)
    prog.max_memory = 1 << 20
    e = _error(lambda: prog.trainer("t"))
    assert e.diagnostics[0].code == "E409" and "bomb.npz" in str(e)
    # a real zip bomb (256 MiB of zeros in a few hundred KiB) is refused whatever the limit
    with zipfile.ZipFile(tmp_path / "zb.npz", "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                    "shape": (65536, 1024)})
            zero = bytes(1 << 20)
            for _ in range(256):
                f.write(zero)
    e = _error(lambda: nndsl.load(_write(tmp_path, 'npz("zb.npz", batch=8)', "1024", name="z.nn")).trainer("t"))
    assert e.diagnostics[0].code == "E409" and "zip bomb" in str(e)
    # a header claiming 10^9 rows in a small member: refused from the header alone
    np.savez(tmp_path / "liar.npz", x=np.zeros((4, 3), np.float32), y=np.zeros(4, np.int32))
    with zipfile.ZipFile(tmp_path / "liar.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["x.npy"] = members["x.npy"].replace(b"(4, 3)", b"(1000000000, 3)")
    with zipfile.ZipFile(tmp_path / "liar.npz", "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    e = _error(lambda: nndsl.load(_write(tmp_path, 'npz("liar.npz", batch=8)', "3", name="l.nn")).trainer("t"))
    assert "liar.npz" in str(e) and "claims" in str(e)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB


def test_npz_stored_members_are_memory_mapped(tmp_path):
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 3)
    from nndsl.data.files import npz_file
    t = npz_file(tmp_path / "d.npz", "d.npz")
    np.testing.assert_array_equal(t.take([19, 0, 7])["x"], x[[19, 0, 7]])


# ------------------------------------------------------------------------ csv
def test_ragged_csv_is_a_located_error_without_the_row(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,3,0\n4,5,6,1\nSECRET_TOKEN,9\n")
    p = _write(tmp_path, 'csv("d.csv", batch=2, split=1.0)', "3")
    e = _error(lambda: nndsl.load(p).trainer("t").fit(progress=False))
    assert "d.csv:3:" in str(e) and "SECRET" not in str(e) and "t.nn:7:" in str(e)
    (tmp_path / "d.csv").write_text("1,2,3,0\n4,SECRET,6,1\n")
    e = _error(lambda: nndsl.load(p).trainer("t").fit(progress=False))
    assert "d.csv:2: column 2" in str(e) and "SECRET" not in str(e)


def test_first_line_of_a_file_is_never_quoted(tmp_path, capsys):
    (tmp_path / "env").write_text("GITHUB_TOKEN=ghp_abcdef\n")
    p = _write(tmp_path, 'csv("env", batch=2)', "3")
    assert main(["check", str(p)]) == 1
    err = capsys.readouterr().err
    assert "ghp_abcdef" not in err and "GITHUB_TOKEN" not in err and "env" in err


# ------------------------------------------------------------------------ where data may come from
def test_absolute_and_parent_paths_are_refused_unless_granted(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NNDSL_DATA_ROOT", raising=False)
    outside = tmp_path / "datasets"
    synth.write_npy_shards(outside / "s", n=20, shards=1)
    (tmp_path / "proj").mkdir()
    for path in (str(outside / "s"), "../datasets/s", "/proc/self"):
        p = _write(tmp_path / "proj", f'npy("{path}", batch=4)', "8")
        e = _error(lambda p=p: nndsl.load(p).trainer("t"))
        assert e.diagnostics[0].code == "E506" and "t.nn:7:" in str(e), str(e)
        assert main(["check", str(p), "--format", "json"]) == 1
        assert '"E506"' in capsys.readouterr().out
    p = _write(tmp_path / "proj", 'npy("../datasets/s", batch=4)', "8")
    assert nndsl.load(p, data_roots=[outside]).trainer("t").spec.data.count == (20, 0)
    assert main(["check", str(p), "--data-root", str(outside)]) == 0
    assert "20 examples" in capsys.readouterr().out
    monkeypatch.setenv("NNDSL_DATA_ROOT", str(outside))
    assert nndsl.load(p).trainer("t").spec.data.count == (20, 0)


def test_symlinks_are_resolved_then_checked_and_only_regular_files_read(tmp_path, monkeypatch):
    monkeypatch.delenv("NNDSL_DATA_ROOT", raising=False)
    (tmp_path / "proj").mkdir()
    (tmp_path / "secret.csv").write_text("1,2,3,0\n")
    os.symlink(tmp_path / "secret.csv", tmp_path / "proj" / "link.csv")
    p = _write(tmp_path / "proj", 'csv("link.csv", batch=1)', "3")
    assert _error(lambda: nndsl.load(p).trainer("t")).diagnostics[0].code == "E506"
    # a link inside a dataset folder leading out is refused as well
    synth.write_npy_shards(tmp_path / "proj" / "s", n=10, shards=1)
    synth.write_npy_shards(tmp_path / "elsewhere", n=10, shards=1)
    os.symlink(tmp_path / "elsewhere" / "x_000.npy", tmp_path / "proj" / "s" / "x_001.npy")
    os.symlink(tmp_path / "elsewhere" / "y_000.npy", tmp_path / "proj" / "s" / "y_001.npy")
    p = _write(tmp_path / "proj", 'npy("s", batch=1)', "8")
    assert _error(lambda: nndsl.load(p).trainer("t")).diagnostics[0].code == "E506"
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "proj" / "fifo.csv")
        p = _write(tmp_path / "proj", 'csv("fifo.csv", batch=1)', "3")
        e = _error(lambda: nndsl.load(p).trainer("t"))
        assert e.diagnostics[0].code == "E507"


def test_language_server_does_not_read_outside(tmp_path, monkeypatch):
    monkeypatch.delenv("NNDSL_DATA_ROOT", raising=False)
    from nndsl.tools import lsp
    (tmp_path / "proj").mkdir()
    text = TRAIN % {"data": 'csv("/etc/passwd", batch=2)', "shape": "3", "args": ""}
    diags = lsp.diagnostics(text, str(tmp_path / "proj" / "t.nn")) if hasattr(lsp, "diagnostics") else None
    if diags is None:
        pytest.skip("the language server exposes no diagnostics function")
    msgs = " ".join(str(d) for d in diags)
    assert "E506" in msgs or "outside" in msgs
    assert "root:" not in msgs


def test_class_names_written_after_training_and_printed_by_run(tmp_path, capsys):
    synth.write_images(tmp_path / "imgs", per_class=3, classes=2, size=8, names=["cat", "dog"])
    p = _write(tmp_path, 'images("imgs", size=8, batch=2, split=1.0)', "8, 8, 3", "classes=2")
    assert main(["train", str(p), "--iterations", "2", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    import json
    assert json.loads((tmp_path / "run" / "classes.json").read_text()) == ["cat", "dog"]
    np.save(tmp_path / "in.npy", np.zeros((3, 8, 8, 3), np.float32))
    capsys.readouterr()
    assert main(["run", str(p), "Net", "--arg", "classes=2", "--weights", str(tmp_path / "run" / "net.safetensors"),
                 "--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "out.npy")]) == 0
    out = capsys.readouterr().out
    logits = np.load(tmp_path / "out.npy")
    for i in range(3):
        assert f"  {i}: {['cat', 'dog'][int(logits[i].argmax())]}" in out


def test_data_sources_state_their_value_ranges(tmp_path):
    synth.write_cifar10(tmp_path / "c", n_train=5, n_test=2)
    p = _write(tmp_path, 'cifar10("c", batch=5)', "32, 32, 3", "classes=10")
    assert nndsl.load(p).trainer("t").spec.data.ranges == {"x": (0.0, 1.0), "y": (0, 9)}
