"""The CLI's persistent compilation cache: a second run of the same program reuses XLA's work.

Runs as a user runs it (subprocesses), with the cache folder in tmp_path; the suite itself runs
with NNDSL_NO_CACHE=1 (tests/conftest.py), so only these processes write a cache.
"""
from __future__ import annotations

import os
import subprocess
import sys

from nndsl.lower import cache

PROGRAM = """
model Net {
  input x: [batch, 2]
  output logit = x -> dense(4) -> tanh -> dense(1)
}
train xor {
  data logic(gate="xor")
  model net = Net()
  logit = data.x -> net
  loss bce = bce_logits(logit, data.y)
  step net minimize bce with adam(lr=0.05)
  iterations 3
}
"""


def _train(tmp_path, *extra, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "NNDSL_NO_CACHE"}
    env.update({"JAX_PLATFORMS": "cpu", "NNDSL_CACHE_DIR": str(tmp_path / "cache"), **(env_extra or {})})
    src = tmp_path / "xor.nn"
    src.write_text(PROGRAM)
    r = subprocess.run([sys.executable, "-m", "nndsl.cli", "train", str(src), "--no-progress",
                        "--out", str(tmp_path / "run"), *extra], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def _entries(tmp_path) -> set:
    folder = tmp_path / "cache"
    return {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_second_run_finds_every_executable_in_the_cache(tmp_path):
    _train(tmp_path)
    first = _entries(tmp_path)
    assert first, "the first run wrote no cache entry"
    _train(tmp_path)
    assert _entries(tmp_path) == first  # nothing new compiled: every executable was found


def test_no_cache_flag_and_environment_leave_it_off(tmp_path):
    _train(tmp_path, "--no-cache")
    assert _entries(tmp_path) == set()
    _train(tmp_path, env_extra={"NNDSL_NO_CACHE": "1"})
    assert _entries(tmp_path) == set()


def test_cache_folder_is_per_jax_version_under_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("NNDSL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = cache.default_folder()
    assert folder.parent == tmp_path / "nndsl"
    import jax
    assert jax.__version__ in folder.name


def test_an_unwritable_cache_folder_is_a_note_not_a_failure(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder should be")
    env = {k: v for k, v in os.environ.items() if k != "NNDSL_NO_CACHE"}
    env.update({"JAX_PLATFORMS": "cpu", "NNDSL_CACHE_DIR": str(blocker / "sub")})
    src = tmp_path / "xor.nn"
    src.write_text(PROGRAM)
    r = subprocess.run([sys.executable, "-m", "nndsl.cli", "train", str(src), "--no-progress",
                        "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "compilation cache off" in r.stderr
