"""Hostile files (issue 13): FIFOs, devices, symlink loops, oversized sources, damaged artifacts,
edited checkpoints, unwritable run folders. Each must end in a clear error, never a hang, a
traceback or lost work."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import nndsl
from nndsl.cli import main
from nndsl.errors import NndslError

MODEL = "model M {\n  input x: [batch, 2]\n  output y = x\n}\n"


def _err(fn, *args, **kw) -> NndslError:
    with pytest.raises(NndslError) as info:
        fn(*args, **kw)
    return info.value


def _cli(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out + out.err



# ------------------------------------------------------------------ the bounded source reader

def test_fifo_as_main_file_is_refused_without_opening_it(tmp_path, capsys):
    fifo = tmp_path / "pipe.nn"
    os.mkfifo(fifo)
    rc, out = _cli(capsys, "check", fifo)
    assert rc == 1 and "E522" in out and "FIFO" in out


def test_fifo_import_is_a_located_error(tmp_path):
    os.mkfifo(tmp_path / "pipe.nn")
    main_nn = tmp_path / "main.nn"
    main_nn.write_text('import "pipe.nn"\n' + MODEL)
    e = _err(nndsl.load, main_nn)
    assert e.diagnostics[0].code == "E522" and e.span is not None and e.span.line == 1


def test_fifo_as_an_import_does_not_hang_in_a_subprocess(tmp_path):
    """The same through the real command, with a timeout: the regression was a hang forever."""
    os.mkfifo(tmp_path / "pipe.nn")
    (tmp_path / "main.nn").write_text('import "pipe.nn"\n' + MODEL)
    r = subprocess.run([sys.executable, "-m", "nndsl.cli", "check", "main.nn"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1 and "E522" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_dev_zero_is_refused_before_reading(command, capsys):
    rc, out = _cli(capsys, command, "/dev/zero")
    assert rc == 1 and "E522" in out and "character device" in out


def test_directory_as_main_file(tmp_path, capsys):
    rc, out = _cli(capsys, "check", tmp_path)
    assert rc == 1 and "directory" in out


def test_oversized_file_is_refused_from_its_size(tmp_path, capsys):
    big = tmp_path / "big.nn"
    with open(big, "wb") as f:  # sparse: 4 GB claimed, nothing written, so reading it would show
        f.truncate(4 * 2**30)
    rc, out = _cli(capsys, "check", big)
    assert rc == 1 and "E402" in out and "4,294,967,296 bytes" in out


def test_oversized_import_is_refused_at_the_import(tmp_path):
    with open(tmp_path / "big.nn", "wb") as f:
        f.truncate(11 * 2**20)
    (tmp_path / "main.nn").write_text('import "big.nn"\n' + MODEL)
    e = _err(nndsl.load, tmp_path / "main.nn")
    assert e.diagnostics[0].code == "E402" and e.span.line == 1


def test_reader_stops_at_the_limit_when_the_size_lies(tmp_path):
    """A file that reports size 0 but yields more (a /proc file, a growing file) is read only up
    to the limit + 1 bytes."""
    from nndsl.files import read_bytes
    p = tmp_path / "f.nn"
    p.write_bytes(b"x" * 5000)
    with pytest.raises(NndslError) as info:
        read_bytes(p, limit=100)
    assert info.value.diagnostics[0].code == "E402"
    assert read_bytes(p, limit=5000) == b"x" * 5000


def test_loads_applies_the_same_size_limit():
    from nndsl.limits import MAX_SOURCE_BYTES
    text = MODEL + "#" * (MAX_SOURCE_BYTES + 1)
    e = _err(nndsl.loads, text)
    assert e.diagnostics[0].code == "E402"
    # multi-byte characters count as the bytes a file would hold
    e = _err(nndsl.loads, MODEL + "# " + "é" * (MAX_SOURCE_BYTES // 2 + 1))
    assert e.diagnostics[0].code == "E402"
    nndsl.loads(MODEL + "# " + "é" * 1000)


def test_symlink_loop_import(tmp_path):
    os.symlink("loop.nn", tmp_path / "loop.nn")
    (tmp_path / "main.nn").write_text('import "loop.nn"\n' + MODEL)
    e = _err(nndsl.load, tmp_path / "main.nn")
    assert e.diagnostics[0].code == "E521" and e.span.line == 1
    assert str(tmp_path) not in e.message  # the name as written, not the machine's path


def test_symlink_loop_as_main_file(tmp_path, capsys):
    os.symlink("a.nn", tmp_path / "b.nn")
    os.symlink("b.nn", tmp_path / "a.nn")
    rc, out = _cli(capsys, "check", tmp_path / "a.nn")
    assert rc == 1 and "E521" in out


def test_import_name_with_nul(tmp_path):
    (tmp_path / "main.nn").write_text('import "a\\0b.nn"\n' + MODEL)
    e = _err(nndsl.load, tmp_path / "main.nn")
    assert e.diagnostics[0].code == "E520" and e.span.line == 1 and "\x00" not in str(e)


def test_import_through_a_regular_file(tmp_path):
    (tmp_path / "x.nn").write_text(MODEL)
    (tmp_path / "main.nn").write_text('import "x.nn/y"\n' + MODEL.replace("M", "N"))
    e = _err(nndsl.load, tmp_path / "main.nn")
    assert e.diagnostics[0].code == "E501" and e.span.line == 1 and "x.nn is a file" in e.message


def test_compile_emit_ast_uses_the_bounded_reader(capsys):
    rc, out = _cli(capsys, "compile", "/dev/zero", "--emit", "ast")
    assert rc == 1 and "E522" in out


def test_language_server_import_of_a_fifo(tmp_path):
    from nndsl.tools.lsp import diagnostics
    os.mkfifo(tmp_path / "pipe.nn")
    text = 'import "pipe.nn"\n' + MODEL
    probs = diagnostics(text, str(tmp_path / "main.nn"))
    assert [p.code for p in probs] == ["E522"] and probs[0].line == 0


# ------------------------------------------------------------------ exported artifacts

XOR = "model XorMLP {\n  input x: [batch, 2]\n  output logit = x -> dense(4) -> tanh -> dense(1)\n}\n"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    import jax
    import numpy as np

    from nndsl.export import export_model
    folder = tmp_path_factory.mktemp("art")
    m = nndsl.loads(XOR).model("XorMLP")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    v = m.init(jax.random.key(0), x)
    path = export_model(m, v, folder / "m.jaxexport")
    np.save(folder / "x.npy", x)
    return path, path.read_bytes(), np.asarray(m.apply(v, x))


def _rewrite(data: bytes, edit) -> bytes:
    """The artifact with its header edited by `edit` and the checksum recomputed, as a forger would."""
    import json

    from nndsl.export import MAGIC, pack
    body = data[len(MAGIC):].partition(b"\n")[2]
    line, _, blob = body.partition(b"\n")
    meta = edit(json.loads(line))
    return pack(meta, blob)


def test_artifact_round_trip(artifact):
    import numpy as np
    path, _, want = artifact
    fn, names = nndsl.load_exported(path)
    assert names == ["x"]
    np.testing.assert_allclose(fn(np.load(path.parent / "x.npy")), want, rtol=1e-6)


def test_a_flipped_bit_anywhere_is_refused_before_deserializing(artifact, tmp_path):
    import random

    from nndsl.export import MAGIC
    _, data, _ = artifact
    rng = random.Random(0)
    positions = [len(MAGIC) + 7 + 64 + 1 + 3, len(data) - 1] + rng.sample(range(len(MAGIC) + 72, len(data)), 30)
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 1 << rng.randrange(8)
        p = tmp_path / "bad.jaxexport"
        p.write_bytes(bytes(bad))
        e = _err(nndsl.load_exported, p)
        assert e.diagnostics[0].code == "E631", (pos, str(e))


def test_a_damaged_checksum_line(artifact, tmp_path):
    from nndsl.export import MAGIC
    _, data, _ = artifact
    p = tmp_path / "bad.jaxexport"
    p.write_bytes(MAGIC + b"md5:1234\n" + data[len(MAGIC):].partition(b"\n")[2])
    assert _err(nndsl.load_exported, p).diagnostics[0].code == "E614"
    p.write_bytes(data[:len(MAGIC) + 30])
    assert _err(nndsl.load_exported, p).diagnostics[0].code == "E614"


@pytest.mark.parametrize("option", [("cpu", "xla_dump_to", "/tmp/dump"),
                                    ("gpu", "xla_gpu_cuda_data_dir", "/tmp/x"),
                                    ("cpu", "xla_cpu_experimental_ynn_fusion_type", "LIBRARY_FUSION_TYPE_ALL"),
                                    ("cpu", "xla_cpu_experimental_ynn_fusion_type", 3)])
def test_xla_options_outside_the_allow_list_refuse_the_artifact(artifact, tmp_path, capsys, option):
    platform, k, v = option

    def edit(meta):
        meta["xla_options"].setdefault(platform, {})[k] = v
        return meta
    p = tmp_path / "evil.jaxexport"
    p.write_bytes(_rewrite(artifact[1], edit))
    e = _err(nndsl.load_exported, p)
    assert e.diagnostics[0].code == "E632" and k in e.message
    rc, out = _cli(capsys, "run", p, "--input", artifact[0].parent / "x.npy", "--output", tmp_path / "y.npy")
    assert rc == 1 and "E632" in out
    assert not (tmp_path / "y.npy").exists() and not os.path.exists("/tmp/dump")


def test_the_allow_list_is_the_options_nndsl_sets():
    from nndsl.lower.backend import OPTIONS, allowed_in_artifact
    for platform, opts in OPTIONS.items():
        for k, v in opts.items():
            assert allowed_in_artifact(platform, k, v)
            assert not allowed_in_artifact("gpu" if platform != "gpu" else "cpu", k, v)
    assert not allowed_in_artifact("cpu", "xla_dump_to", "x")


@pytest.mark.parametrize("edit", [lambda m: [m], lambda m: "text", lambda m: None,
                                  lambda m: {**m, "inputs": "x"}, lambda m: {**m, "inputs": []},
                                  lambda m: {**m, "inputs": [1]}, lambda m: {k: v for k, v in m.items() if k != "inputs"},
                                  lambda m: {**m, "xla_options": ["cpu"]},
                                  lambda m: {**m, "xla_options": {"cpu": "x"}}])
def test_headers_of_the_wrong_form(artifact, tmp_path, capsys, edit):
    p = tmp_path / "odd.jaxexport"
    p.write_bytes(_rewrite(artifact[1], edit))
    assert _err(nndsl.load_exported, p).diagnostics[0].code == "E614"
    rc, out = _cli(capsys, "run", p, "--input", artifact[0].parent / "x.npy", "--output", tmp_path / "y.npy")
    assert rc == 1 and "E614" in out


def test_a_fifo_artifact_is_refused(tmp_path, capsys):
    os.mkfifo(tmp_path / "p.jaxexport")
    e = _err(nndsl.load_exported, tmp_path / "p.jaxexport")
    assert e.diagnostics[0].code == "E522"


# ------------------------------------------------------------------ checkpoints

RING = """
model MLP { input x: [batch, 2]
  output y = x -> dense(8) -> tanh -> dense(1) }
train ring {
  data ring_gaussians(modes=4, batch=16, n=400)
  model net = MLP()
  z ~ normal([batch, 1])
  loss err = mse(data.x -> net, z)
  step net minimize err with adam(lr=1e-2)
  iterations 40
  eval_every 10
}
train other {
  data ring_gaussians(modes=4, batch=16, n=400)
  model net = MLP()
  loss err = mse(data.x -> net, data.x -> net)
  step net minimize err with sgd(lr=1e-2)
  iterations 40
}
"""


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """One uninterrupted run that checkpoints every 7 iterations (not a multiple of the report
    interval, 10), keeping every checkpoint."""
    folder = tmp_path_factory.mktemp("ckpt")
    prog = nndsl.loads(RING)
    result = prog.trainer("ring").fit(progress=False, checkpoint_dir=folder, checkpoint_every=7, keep=100)
    return prog, folder, result


def _only(folder, step, dest):
    """A checkpoint folder holding only checkpoint `step`: as if the run had been killed after it."""
    import shutil
    dest.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(folder / f"ckpt-{step:08d}{suffix}", dest)
    return dest


def _leaves(tree):
    import jax
    import numpy as np
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


@pytest.mark.parametrize("step", [7, 14, 21, 35])
def test_resumed_history_is_identical_when_intervals_do_not_divide(ring_run, tmp_path, step):
    import numpy as np
    prog, folder, straight = ring_run
    resumed = prog.trainer("ring").fit(progress=False, resume=_only(folder, step, tmp_path / "c"))
    assert resumed.history == straight.history
    for a, b in zip(_leaves(straight.train_state), _leaves(resumed.train_state)):
        np.testing.assert_array_equal(a, b)


def test_history_json_of_a_killed_and_resumed_cli_run_matches(tmp_path, capsys):
    """Through the command line: a run stopped after checkpoint 14 (simulated by removing the later
    ones) resumes to the same history.json, byte for byte, as a run that never stopped."""
    import shutil
    (tmp_path / "p.nn").write_text(RING)
    rc, _ = _cli(capsys, "train", tmp_path / "p.nn", "ring", "--no-progress", "--out", tmp_path / "a",
                 "--checkpoint-every", "7", "--keep", "100")
    assert rc == 0
    ck = tmp_path / "a" / "checkpoints"
    for p in list(ck.glob("ckpt-*")):
        if int(p.name[5:13]) > 14:
            p.unlink()
    shutil.copytree(ck, tmp_path / "ck")
    rc, _ = _cli(capsys, "train", tmp_path / "p.nn", "ring", "--no-progress", "--out", tmp_path / "b",
                 "--resume", tmp_path / "ck")
    assert rc == 0
    assert (tmp_path / "a" / "history.json").read_bytes() == (tmp_path / "b" / "history.json").read_bytes()


def test_another_train_block_with_the_same_layout_cannot_resume(ring_run, tmp_path):
    prog, folder, _ = ring_run
    e = _err(prog.trainer("other").fit, progress=False, resume=_only(folder, 21, tmp_path / "c"))
    assert e.diagnostics[0].code == "E720"


def _forge(folder, step, edit, name=None):
    """Edits checkpoint `step`'s manifest and recomputes its checksum, as a deliberate forger would."""
    import json

    from nndsl.train.checkpoint import _digest
    path = folder / f"ckpt-{step:08d}.json"
    meta = json.loads(path.read_text())
    edit(meta)
    meta["manifest_sha256"] = _digest(meta)
    target = folder / (name or path.name)
    if name:
        path.unlink()
    target.write_text(json.dumps(meta))
    return meta


def _two(folder, dest):
    """Checkpoints 14 and 21: the newest can be spoiled, the one before must then be used."""
    import shutil
    _only(folder, 14, dest)
    for suffix in (".json", ".safetensors"):
        shutil.copy(folder / f"ckpt-{21:08d}{suffix}", dest)
    return dest


def _resumes_from_14(prog, folder, match):
    with pytest.warns(UserWarning, match=match):
        r = prog.trainer("ring").fit(progress=False, resume=folder)
    return r


def test_an_edited_step_breaks_the_manifest_checksum(ring_run, tmp_path):
    import json
    prog, folder, straight = ring_run
    c = _two(folder, tmp_path / "c")
    p = c / "ckpt-00000021.json"
    meta = json.loads(p.read_text())
    meta["step"] = 30
    p.write_text(json.dumps(meta))
    r = _resumes_from_14(prog, c, "checksum")
    assert r.history == straight.history


@pytest.mark.parametrize("edit,match", [
    (lambda m: m.update(step=2**70), "step"),
    (lambda m: m.update(step=-1), "step"),
    (lambda m: m.update(step=21.0), "step"),
    (lambda m: m.update(step=True), "step"),
    (lambda m: m.update(tensors="/dev/zero"), "tensors"),
    (lambda m: m.update(tensors="../ckpt-00000021.safetensors"), "tensors"),
    (lambda m: m.update(bytes=10), "limit"),
    (lambda m: m.update(bytes="many"), "bytes"),
    (lambda m: m.update(leaves=1), "arrays"),
    (lambda m: m.update(data=[]), "data"),
    (lambda m: m.pop("format"), "older nndsl"),
])
def test_forged_manifest_fields_are_validated(ring_run, tmp_path, edit, match):
    prog, folder, straight = ring_run
    c = _two(folder, tmp_path / "c")
    _forge(c, 21, edit)
    r = _resumes_from_14(prog, c, match)
    assert r.history == straight.history


def test_a_step_past_the_runs_total_is_an_error_not_done(ring_run, tmp_path):
    prog, folder, _ = ring_run
    c = _only(folder, 21, tmp_path / "c")
    e = _err(prog.trainer("ring", iterations=20).fit, progress=False, resume=c)
    assert e.diagnostics[0].code == "E721" and "20 iterations" in e.message


def test_tensors_symlinked_out_of_the_folder(ring_run, tmp_path):
    prog, folder, straight = ring_run
    c = _two(folder, tmp_path / "c")
    (c / "ckpt-00000021.safetensors").unlink()
    os.symlink("/dev/zero", c / "ckpt-00000021.safetensors")
    r = _resumes_from_14(prog, c, "outside")
    assert r.history == straight.history


def test_tensors_replaced_by_a_fifo_or_a_bigger_file(ring_run, tmp_path):
    prog, folder, straight = ring_run
    c = _two(folder, tmp_path / "c")
    t = c / "ckpt-00000021.safetensors"
    t.write_bytes(t.read_bytes() + b"\0" * 1000)
    _resumes_from_14(prog, c, "limit")
    t.unlink()
    os.mkfifo(t)
    r = _resumes_from_14(prog, c, "FIFO")
    assert r.history == straight.history


def test_manifest_that_is_a_fifo(ring_run, tmp_path):
    prog, folder, straight = ring_run
    c = _two(folder, tmp_path / "c")
    (c / "ckpt-00000021.json").unlink()
    os.mkfifo(c / "ckpt-00000021.json")
    r = _resumes_from_14(prog, c, "FIFO")
    assert r.history == straight.history


# ------------------------------------------------------------------ run folders

TINY = """
model M { input x: [batch, 2]
  output y = x -> dense(1) }
train tiny {
  data ring_gaussians(modes=4, batch=8, n=64)
  model net = M()
  loss l = mse(data.x -> net, data.x -> net -> relu)
  step net minimize l with sgd(lr=0.1)
  iterations 3
}
"""


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "t.nn"
    p.write_text(TINY)
    return p


def _no_training(monkeypatch):
    """Fails the test if training starts: the destination must be refused first."""
    from nndsl.train.trainer import Trainer

    def boom(*a, **k):
        raise AssertionError("training started before the destination was checked")
    monkeypatch.setattr(Trainer, "fit", boom)


def test_out_with_a_file_in_the_way_is_refused_before_training(tiny, tmp_path, capsys, monkeypatch):
    _no_training(monkeypatch)
    (tmp_path / "blocker").write_text("x")
    rc, out = _cli(capsys, "train", tiny, "--no-progress", "--out", tmp_path / "blocker" / "run")
    assert rc == 1 and "E640" in out and "blocker is a file" in out
    rc, out = _cli(capsys, "train", tiny, "--no-progress", "--out", tmp_path / "blocker")
    assert rc == 1 and "E610" in out


def test_an_unwritable_out_is_refused_before_training(tiny, tmp_path, capsys, monkeypatch):
    """Tests run as root, for whom a read-only folder is still writable: the refusal a real
    read-only folder gives is simulated where the probe writes."""
    import errno
    import tempfile
    _no_training(monkeypatch)
    real = tempfile.mkstemp

    def readonly(*a, dir=None, **k):
        if dir is not None and str(dir).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EROFS, "Read-only file system")
        return real(*a, dir=dir, **k)
    monkeypatch.setattr(tempfile, "mkstemp", readonly)
    rc, out = _cli(capsys, "train", tiny, "--no-progress", "--out", tmp_path / "ro")
    assert rc == 1 and "E641" in out and "read-only file system" in out


def test_a_full_disk_at_save_time_rescues_the_weights(tiny, tmp_path, capsys, monkeypatch):
    import errno

    import numpy as np
    from safetensors.numpy import load_file

    import nndsl.io
    out_dir = tmp_path / "run"
    real = nndsl.io.atomic_write

    def full(path, data):
        if str(path).startswith(str(out_dir)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)
    monkeypatch.setattr(nndsl.io, "atomic_write", full)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    rc, out = _cli(capsys, "train", tiny, "--no-progress", "--out", out_dir)
    assert rc == 1 and "E643" in out and "no space left on device" in out
    rescued = [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("nndsl-rescue-run-")]
    assert len(rescued) == 1 and str(rescued[0]) in out
    w = load_file(rescued[0] / "net.safetensors")
    assert any(k.endswith("kernel") for k in w) and all(np.isfinite(v).all() for v in w.values())
    assert (rescued[0] / "history.json").is_file()


def test_a_full_disk_for_a_checkpoint_costs_only_that_checkpoint(tiny, tmp_path, capsys, monkeypatch):
    import errno

    import nndsl.train.checkpoint as ck
    real = ck.atomic_write
    calls = []

    def full(path, data):
        calls.append(path)
        if len(calls) == 1:  # the first checkpoint's tensors
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)
    monkeypatch.setattr(ck, "atomic_write", full)
    with pytest.warns(UserWarning, match="no space left"):
        rc, out = _cli(capsys, "train", tiny, "--no-progress", "--out", tmp_path / "run",
                       "--checkpoint-every", "1")
    assert rc == 0 and (tmp_path / "run" / "net.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.json")) == \
        ["ckpt-00000002.json", "ckpt-00000003.json"]


def test_a_second_run_on_the_same_folder_is_refused(tiny, tmp_path, capsys, monkeypatch):
    """The first run holds the lock (here a RunFolder held open, as a running train would), the
    second refuses naming the folder; once the first ends, the folder is free again."""
    from nndsl.train.runfolder import RunFolder
    out_dir = tmp_path / "run"
    with RunFolder(out_dir):
        _no_training(monkeypatch)
        rc, out = _cli(capsys, "train", tiny, "--no-progress", "--out", out_dir)
        assert rc == 1 and "E642" in out and str(out_dir) in out
        monkeypatch.undo()
    rc, out = _cli(capsys, "train", tiny, "--no-progress", "--out", out_dir)
    assert rc == 0 and (out_dir / "net.safetensors").is_file()


def test_two_processes_on_one_folder(tiny, tmp_path):
    """Across processes, as the issue found it: a process holding the folder's lock makes a real
    `nndsl train` on it refuse."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from nndsl.train.runfolder import RunFolder\n"
                               f"f = RunFolder({str(tmp_path / 'run')!r}); f.open()\n"
                               "print('locked', flush=True); sys.stdin.read()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = subprocess.run([sys.executable, "-m", "nndsl.cli", "train", str(tiny), "--no-progress", "--out",
                            str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and "E642" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


# ------------------------------------------------------------------ nndsl run --output

TWO = XOR + "model Two {\n  input x: [batch, 2]\n  output a = x -> dense(3)\n  output b = x -> dense(2) -> relu\n}\n"


@pytest.fixture
def runnable(tmp_path):
    import jax
    import numpy as np

    from nndsl.io import save_variables
    (tmp_path / "m.nn").write_text(TWO)
    prog = nndsl.load(tmp_path / "m.nn")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    np.save(tmp_path / "x.npy", x)
    for name in ("XorMLP", "Two"):
        v = prog.model(name).init(jax.random.key(1), x)
        save_variables(tmp_path / f"{name}.safetensors", jax.tree_util.tree_map(np.asarray, v))
    return tmp_path, prog, x


def _run(capsys, d, model, output, *extra):
    return _cli(capsys, "run", d / "m.nn", model, "--weights", d / f"{model}.safetensors", "--input", d / "x.npy",
                "--output", output, *extra)


def test_run_writes_exactly_the_named_npy(runnable, capsys):
    import numpy as np

    from nndsl.io import load_variables
    d, prog, x = runnable
    rc, out = _run(capsys, d, "XorMLP", d / "y.npy")
    assert rc == 0 and f"wrote {d / 'y.npy'}: float32[4, 1]" in out
    want = prog.model("XorMLP").apply(load_variables(d / "XorMLP.safetensors"), x)
    np.testing.assert_allclose(np.load(d / "y.npy"), want, rtol=1e-6)
    assert sorted(p.name for p in d.iterdir() if p.name.startswith("y")) == ["y.npy"]


def test_run_refuses_an_extension_it_does_not_write(runnable, capsys):
    d, _, _ = runnable
    rc, out = _run(capsys, d, "XorMLP", d / "result.txt")
    assert rc == 1 and "E633" in out and "result.npy" in out
    assert not list(d.glob("result*"))


@pytest.mark.parametrize("dest", ["/dev/full", "dir", "fifo"])
def test_run_refuses_destinations_that_are_not_regular_files(runnable, capsys, dest):
    d, _, _ = runnable
    if dest == "dir":
        target = d / "out.npy"
        target.mkdir()
    elif dest == "fifo":
        target = d / "out.npy"
        os.mkfifo(target)
    else:
        target = dest
    rc, out = _run(capsys, d, "XorMLP", target)
    if dest == "/dev/full":  # the extension is refused first; either way nothing is created
        assert rc == 1 and "E633" in out and not os.path.exists("/dev/full.npy")
        return
    assert rc == 1 and "E634" in out
    assert not list(d.glob("out.npy.*"))


def test_run_multi_output_needs_npz_and_writes_it_exactly(runnable, capsys):
    import numpy as np

    from nndsl.io import load_variables
    d, prog, x = runnable
    rc, out = _run(capsys, d, "Two", d / "pools.npy")
    assert rc == 1 and "E635" in out and "pools.npz" in out
    assert not list(d.glob("pools*"))
    rc, out = _run(capsys, d, "Two", d / "pools.npz")
    assert rc == 0 and "a float32[4, 3], b float32[4, 2]" in out
    want = prog.model("Two").apply(load_variables(d / "Two.safetensors"), x)
    with np.load(d / "pools.npz") as f:
        assert sorted(f.files) == ["a", "b"]
        np.testing.assert_allclose(f["a"], want["a"], rtol=1e-6)
        np.testing.assert_allclose(f["b"], want["b"], rtol=1e-6)
    assert sorted(p.name for p in d.glob("pools*")) == ["pools.npz"]


def test_run_one_output_into_npz_uses_the_outputs_name(runnable, capsys):
    import numpy as np
    d, _, _ = runnable
    rc, out = _run(capsys, d, "XorMLP", d / "y.npz")
    assert rc == 0
    with np.load(d / "y.npz") as f:
        assert f.files == ["logit"]


def test_run_exported_output_rules(artifact, tmp_path, capsys):
    path = artifact[0]
    rc, out = _cli(capsys, "run", path, "--input", path.parent / "x.npy", "--output", tmp_path / "r.txt")
    assert rc == 1 and "E633" in out and not list(tmp_path.iterdir())


def test_run_input_that_is_a_fifo(runnable, capsys):
    d, _, _ = runnable
    os.mkfifo(d / "in.npy")
    rc, out = _cli(capsys, "run", d / "m.nn", "XorMLP", "--weights", d / "XorMLP.safetensors",
                   "--input", d / "in.npy", "--output", d / "y.npy")
    assert rc == 1 and "E522" in out


# ------------------------------------------------------------------ weights, sample, export, plot

def test_weights_with_a_name_that_is_both_array_and_group(runnable, capsys):
    import numpy as np
    from safetensors.numpy import save_file
    d, _, _ = runnable
    for keys in (["params/dense_0", "params/dense_0/kernel"], ["params/dense_0/kernel", "params/dense_0"]):
        save_file({k: np.zeros((2, 2), np.float32) for k in keys}, str(d / "both.safetensors"))
        e = _err(nndsl.io.load_variables, d / "both.safetensors")
        assert e.diagnostics[0].code == "E602" and "params/dense_0" in e.message
        rc, out = _cli(capsys, "run", d / "m.nn", "XorMLP", "--weights", d / "both.safetensors",
                       "--input", d / "x.npy", "--output", d / "y.npy")
        assert rc == 1 and "E602" in out


def test_weights_that_are_a_fifo(runnable, capsys):
    d, _, _ = runnable
    os.mkfifo(d / "w.safetensors")
    rc, out = _cli(capsys, "run", d / "m.nn", "XorMLP", "--weights", d / "w.safetensors",
                   "--input", d / "x.npy", "--output", d / "y.npy")
    assert rc == 1 and "E522" in out


def test_export_with_another_models_weights(runnable, capsys):
    d, _, _ = runnable
    rc, out = _cli(capsys, "export", d / "m.nn", "XorMLP", "--weights", d / "Two.safetensors",
                   "-o", d / "x.jaxexport")
    assert rc == 1 and ("E604" in out or "E605" in out) and not (d / "x.jaxexport").exists()


CHARS = """
import cells

model Chars(vocab: int, length: int = 300, temperature: float = 0.8) {
  input chars: i32[batch, time]
  emb = embed(vocab, 4)
  rnn = RNN(8)
  proj = dense(vocab)
  output logits = chars -> emb -> rnn -> proj
  output text = chars -> unroll(rnn, steps=length, emit=proj -> sample(temperature=temperature), feed=emb)
}
model Other(vocab: int) {
  input chars: i32[batch, time]
  output logits = chars -> embed(vocab, 3) -> dense(vocab)
}
train t {
  data text("sonnets", batch=4, seq=8)
  model net = Chars(vocab=data.vocab)
  loss ce = cross_entropy(net(data.x).logits, data.y)
  step net minimize ce with sgd(lr=0.1)
  iterations 1
}
"""


def test_sample_with_another_models_weights(tmp_path, capsys):
    import jax
    import numpy as np
    from nndsl.io import save_variables
    (tmp_path / "c.nn").write_text(CHARS)
    prog = nndsl.load(tmp_path / "c.nn")
    vocab = len(prog.trainer("t").spec.data.vocab)
    x = np.zeros((1, 8), np.int32)
    for name, other_vocab in (("Other", vocab), ("Chars", vocab + 5)):
        v = prog.model(name, vocab=other_vocab).init(jax.random.key(0), x)
        save_variables(tmp_path / "w.safetensors", jax.tree_util.tree_map(np.asarray, v))
        rc, out = _cli(capsys, "sample", tmp_path / "c.nn", "--weights", tmp_path / "w.safetensors",
                       "--length", "5")
        assert rc == 1 and ("E605" in out or "E604" in out), out
    v = prog.model("Chars", vocab=vocab).init(jax.random.key(0), x)
    save_variables(tmp_path / "w.safetensors", jax.tree_util.tree_map(np.asarray, v))
    rc, out = _cli(capsys, "sample", tmp_path / "c.nn", "--weights", tmp_path / "w.safetensors", "--length", "5")
    assert rc == 0


@pytest.mark.parametrize("content", [b"[1, 2, 3]", b'{"loss": 3}', b'{"loss": ["a"]}', b'{"loss": [[1]]}',
                                     b'{"loss": [true]}', b"not json", b"\xff\xfe", b'{"a": {"b": 1}}',
                                     b"[" * 100000])
def test_plot_of_a_malformed_history(tmp_path, capsys, content):
    pytest.importorskip("matplotlib")
    (tmp_path / "history.json").write_bytes(content)
    rc, out = _cli(capsys, "plot", tmp_path / "history.json", "-o", tmp_path / "c.png")
    assert rc == 1 and "E802" in out and not (tmp_path / "c.png").exists()


def test_plot_of_a_fifo_history(tmp_path, capsys):
    os.mkfifo(tmp_path / "history.json")
    rc, out = _cli(capsys, "plot", tmp_path / "history.json", "-o", tmp_path / "c.png")
    assert rc == 1 and "E522" in out


def test_plot_of_a_good_history(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    (tmp_path / "history.json").write_text('{"loss": [3.0, 2.0, 1.5], "acc": [0.1, 0.5, NaN]}')
    rc, out = _cli(capsys, "plot", tmp_path / "history.json", "-o", tmp_path / "c.png")
    assert rc == 0 and (tmp_path / "c.png").stat().st_size > 0


def test_atomic_write_never_replaces_a_device_fifo_or_folder(tmp_path):
    import stat
    from nndsl.io import atomic_write
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for target in (tmp_path / "fifo", tmp_path / "dir", "/dev/null"):
        e = _err(atomic_write, target, b"data")
        assert e.diagnostics[0].code == "E634"
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode) and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_to_a_device_is_refused(runnable, capsys):
    import stat
    d, _, _ = runnable
    rc, out = _cli(capsys, "export", d / "m.nn", "XorMLP", "--weights", d / "XorMLP.safetensors", "-o", "/dev/null")
    assert rc == 1 and "E634" in out and stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("edit", [lambda m: m["data"]["loop"].update(pos=10**9),
                                  lambda m: m["data"]["loop"].update(order=[10**9] * 3),
                                  lambda m: m["data"]["loop"].update(rng={"state": 1}),
                                  lambda m: m["data"].update(history=[1]),
                                  lambda m: m["data"].update(acc={"err": {"dtype": "float32", "values": "x"}})])
def test_a_forged_data_position_is_refused(ring_run, tmp_path, edit):
    prog, folder, _ = ring_run
    c = _only(folder, 21, tmp_path / "c")
    _forge(c, 21, edit)
    e = _err(prog.trainer("ring").fit, progress=False, resume=c)
    assert e.diagnostics[0].code == "E722"


def test_a_file_name_with_control_characters_is_escaped_in_messages(tmp_path, capsys):
    name = tmp_path / "a\x1b[32mok\rb.nn"
    os.mkfifo(name)
    rc, out = _cli(capsys, "check", name)
    assert rc == 1 and "E522" in out and "\x1b" not in out and "\r" not in out
