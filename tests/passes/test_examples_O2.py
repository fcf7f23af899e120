"""-O0 and -O2 agree on every example: one training iteration of each train block (every step
statement, optimizer updates included) from the same initial state and batch, and its losses
and metrics in evaluation mode (where batchnorm folding applies).

The step statements' optimizers are replaced by plain SGD for the comparison: Adam's first update
is lr * sign(gradient), so a weight whose gradient is zero up to rounding (a bias before
batchnorm) would move by +-lr at random in two correct programs; with SGD the parameters differ
by lr times the gradients' difference, which must be at rounding level."""
from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np
import pytest

import nndsl

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.nn"))


def with_sgd(text: str) -> str:
    """Every `with OPTIMIZER(...)` of the source as `with sgd(lr=0.1)` (nested parentheses kept apart)."""
    out, i = [], 0
    for m in re.finditer(r"\bwith\s+[A-Za-z_]\w*\(", text):
        if m.start() < i:
            continue
        depth, j = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        out += [text[i:m.start()], "with sgd(lr=0.1)"]
        i = j
    return "".join(out) + text[i:]


def _one_iteration(path: Path, level: int, block: str):
    tr = nndsl.loads(with_sgd(path.read_text()), name=str(path), base=path.parent, opt_level=level).trainer(block)
    ts = tr.init(jax.random.key(0))
    arrays = tr.spec.data.arrays(tr.seed)[0]
    batch = {f: np.asarray(a[:tr.batch_size]) for f, a in arrays.items()}
    before = jax.tree_util.tree_map(np.asarray, ts["params"])
    after, metrics = tr.step(ts, batch, jax.random.key(1))
    evaluated = tr._eval_fn(tr.batch_size)(after["params"], after["state"], batch, jax.random.key(2))
    return after, metrics, evaluated, before


def _blocks():
    for path in EXAMPLES:  # the blocks each file defines (an imported block is tested in its own file)
        for block in re.findall(r"^train\s+(\w+)", path.read_text(), re.M):
            yield pytest.param(path, block, id=f"{path.stem}-{block}")


@pytest.mark.parametrize("path,block", list(_blocks()))
def test_O0_and_O2_train_and_evaluate_alike(path, block):
    base, base_m, base_e, init = _one_iteration(path, 0, block)
    opt, opt_m, opt_e, _ = _one_iteration(path, 2, block)
    for k in base_m:
        np.testing.assert_allclose(np.asarray(opt_m[k]), np.asarray(base_m[k]), rtol=2e-4, atol=2e-5, err_msg=k)
    for k in base_e:
        np.testing.assert_allclose(np.asarray(opt_e[k]), np.asarray(base_e[k]), rtol=1e-3, atol=1e-4, err_msg=k)
    flat = lambda t: jax.tree_util.tree_flatten_with_path(t)[0]
    for (p, a), (_, b), (_, a0) in zip(flat(base["params"]), flat(opt["params"]), flat(init)):
        # rounding differs between the rewritten and the plain graph, and a batchnorm in training
        # mode amplifies it in the gradient: allow a small fraction of the step's own update (a
        # wrong rewrite is off by the whole update or more)
        update = float(np.max(np.abs(np.asarray(a) - a0))) if np.size(a) else 0.0
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=2e-4, atol=2e-5 + 5e-3 * update,
                                   err_msg=jax.tree_util.keystr(p))


def test_with_sgd_replaces_every_optimizer():
    text = "step a minimize l with adam(lr=cosine(2e-3, steps=5), b1=0.5)  # x\nstep b minimize m with sgd(lr=1)"
    assert with_sgd(text) == "step a minimize l with sgd(lr=0.1)  # x\nstep b minimize m with sgd(lr=0.1)"
