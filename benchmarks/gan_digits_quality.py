"""Quality of the digit GANs, judged by a digits classifier that nndsl trains (the `classifier`
block of examples/dcgan_digits.nn, 8x8, about 99% held out):

- dcgan: the share of 1,000 samples the classifier labels with confidence over 0.9, and which
  classes appear among them;
- cgan: 100 samples asked for each class k; the share the classifier labels k;
- cyclegan: every one of the 1,797 digits translated to the other domain (thin -> bold, and
  bold -> thin from their bold versions); the share whose class is still read, bold digits by the
  `classifier_bold` block of examples/cyclegan_digits.nn, thin ones by the classifier above.

Each run trains the classifier and the GAN in this process (seeded: the figure is reproducible),
or reads weights that `nndsl train` saved:

    python benchmarks/gan_digits_quality.py dcgan cgan cyclegan
    nndsl train examples/dcgan_digits.nn dcgan --out runs/dcgan
    nndsl train examples/dcgan_digits.nn classifier --out runs/digits8
    python benchmarks/gan_digits_quality.py dcgan --gan-run runs/dcgan --classifier-run runs/digits8
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

import nndsl
from nndsl.data.sources import load_digits
from nndsl.io import load_variables

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = {"dcgan": "dcgan_digits.nn", "cgan": "cgan_digits.nn", "cyclegan": "cyclegan_digits.nn"}


def _model(prog, trainer, instance):
    name, args = trainer.spec.models[instance]
    return prog.model(name, **args)


def classifier(run: str | None = None, file: str = "dcgan_digits.nn", block: str = "classifier"):
    """(model, variables) of a judge: trained here, or read from `run`/net.safetensors."""
    prog = nndsl.load(EXAMPLES / file)
    tr = prog.trainer(block)
    v = load_variables(f"{run}/net.safetensors") if run else tr.fit(progress=False).variables["net"]
    return _model(prog, tr, "net"), v


def train_gan(kind: str, run: str | None = None, iterations: int | None = None):
    """(program, trainer, variables by instance, seconds) of the `kind` example."""
    prog = nndsl.load(EXAMPLES / FILES[kind])
    tr = prog.trainer(kind, iterations=iterations)
    t = time.perf_counter()
    if run:
        variables = {m: load_variables(f"{run}/{m}.safetensors") for m in tr.spec.models}
    else:
        variables = tr.fit(progress=False).variables
    return prog, tr, variables, time.perf_counter() - t


def judge(clf, images) -> np.ndarray:
    """Class probabilities, [n, 10]."""
    model, v = clf
    return np.asarray(jax.nn.softmax(model.apply(v, np.asarray(images, np.float32))))


def latent_size(gen) -> int:
    g = gen.graph()
    return g.node(g.inputs[0]).type.shape[-1]


def dcgan_figure(gen, g_vars, clf, n: int = 1000, seed: int = 0):
    """(share labelled with confidence > 0.9, per-class counts of those)."""
    z = jax.random.normal(jax.random.key(seed), (n, latent_size(gen)))
    probs = judge(clf, gen.apply(g_vars, z))
    confident = probs.max(1) > 0.9
    return float(confident.mean()), np.bincount(probs.argmax(1)[confident], minlength=10)


def cgan_figure(gen, g_vars, clf, per_class: int = 100, seed: int = 0):
    """(share of samples asked for class k that are labelled k, the same share per class)."""
    labels = np.repeat(np.arange(10), per_class).astype(np.int32)
    z = jax.random.normal(jax.random.key(seed), (len(labels), latent_size(gen)))
    hit = judge(clf, gen.apply(g_vars, z, labels)).argmax(1) == labels
    return float(hit.mean()), [float(hit[labels == k].mean()) for k in range(10)]


def cyclegan_figure(prog, gen_ab, gen_ba, variables, clf, clf_bold):
    """(share of the digits that keep their class through G_ab, judged as bold digits; the same
    for their bold versions through G_ba, judged as thin digits)."""
    x, y = load_digits()
    x = (x / 16.0)[..., None].astype(np.float32)
    bold = np.asarray(prog.model("Bold").apply({"params": {}, "state": {}}, x))
    ab = gen_ab.apply(variables["G_ab"], x)
    ba = gen_ba.apply(variables["G_ba"], bold)
    return float((judge(clf_bold, ab).argmax(1) == y).mean()), float((judge(clf, ba).argmax(1) == y).mean())


def measure(kind: str, clf, run: str | None = None, iterations: int | None = None,
            bold_run: str | None = None) -> str:
    prog, tr, variables, secs = train_gan(kind, run, iterations)
    took = "" if run else f" (trained in {secs:.0f} s)"
    if kind == "dcgan":
        share, counts = dcgan_figure(_model(prog, tr, "G"), variables["G"], clf)
        return (f"dcgan: {share:.1%} of 1,000 samples labelled with confidence > 0.9; classes present: "
                f"{int((counts > 0).sum())}; per class: {counts.tolist()}{took}")
    if kind == "cgan":
        share, per = cgan_figure(_model(prog, tr, "G"), variables["G"], clf)
        return (f"cgan: {share:.1%} of samples asked for class k are labelled k; per class: "
                f"{[round(p, 2) for p in per]}{took}")
    clf_bold = classifier(bold_run, "cyclegan_digits.nn", "classifier_bold")
    ab, ba = cyclegan_figure(prog, _model(prog, tr, "G_ab"), _model(prog, tr, "G_ba"), variables, clf, clf_bold)
    return f"cyclegan: class kept by {ab:.1%} of thin -> bold and {ba:.1%} of bold -> thin translations{took}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*", choices=sorted(FILES), default=sorted(FILES))
    ap.add_argument("--gan-run", help="a folder of weights from `nndsl train` (one kind only)")
    ap.add_argument("--classifier-run", help="the judge's weights from `nndsl train ... classifier`")
    ap.add_argument("--bold-classifier-run", help="weights of `nndsl train examples/cyclegan_digits.nn "
                                                  "classifier_bold`")
    ap.add_argument("--iterations", type=int, help="train the GANs for this many iterations instead")
    a = ap.parse_args()
    if a.gan_run and len(a.kinds) != 1:
        ap.error("--gan-run needs exactly one kind")
    clf = classifier(a.classifier_run)
    for kind in a.kinds:
        print(measure(kind, clf, a.gan_run, a.iterations, a.bold_classifier_run), flush=True)


if __name__ == "__main__":
    main()
