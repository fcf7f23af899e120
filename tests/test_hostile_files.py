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
