"""Quality of generated digits, judged by a digits classifier that nndsl trained: the share of
1,000 samples it labels with confidence over 0.9, and which classes appear.

    python benchmarks/gan_digits_quality.py examples/dcgan_digits.nn runs/dcgan runs/digits16
"""
from __future__ import annotations

import argparse

import jax
import numpy as np

import nndsl
from nndsl.io import load_variables


def judge(images, prog, clf_dir, clf_train="classifier"):
    tr = prog.trainer(clf_train)
    name, args = tr.spec.models["net"]
    clf = prog.model(name, **args)
    probs = np.asarray(jax.nn.softmax(clf.apply(load_variables(f"{clf_dir}/net.safetensors"), images)))
    conf = probs.max(1)
    label = probs.argmax(1)
    confident = conf > 0.9
    counts = np.bincount(label[confident], minlength=10)
    return float(confident.mean()), counts


def generate(prog, gan_dir, gan_train="dcgan", n=1000, seed=0, labels=None):
    tr = prog.trainer(gan_train)
    name, args = tr.spec.models["G"]
    gen = prog.model(name, **args)
    g = gen.graph()
    z_t = g.node(g.inputs[0]).type
    z = jax.random.normal(jax.random.key(seed), (n, z_t.shape[-1]))
    v = load_variables(f"{gan_dir}/G.safetensors")
    return np.asarray(gen.apply(v, z) if labels is None else gen.apply(v, z, labels))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("gan_run")
    ap.add_argument("classifier_run")
    a = ap.parse_args()
    prog = nndsl.load(a.file)
    share, counts = judge(generate(prog, a.gan_run), prog, a.classifier_run)
    print(f"{share:.1%} of 1,000 samples labelled with confidence > 0.9; per class: {counts.tolist()}; "
          f"classes present: {int((counts > 0).sum())}")


if __name__ == "__main__":
    main()
