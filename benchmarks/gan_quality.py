"""Quality of a trained ring GAN: how many of the modes 1,000 samples cover.

A mode is covered when 20 or more samples lie within 3 standard deviations of it.

    python benchmarks/gan_quality.py examples/gan_ring.nn runs/gan_ring [--train gan_ring]
"""
from __future__ import annotations

import argparse
import math

import jax
import numpy as np

import nndsl
from nndsl.io import load_variables


def ring_coverage(points: np.ndarray, modes: int, radius: float, std: float) -> tuple[int, list[int]]:
    ang = 2 * math.pi * np.arange(modes) / modes
    centers = np.stack([radius * np.cos(ang), radius * np.sin(ang)], 1)
    d = np.linalg.norm(points[:, None, :] - centers[None], axis=-1)
    near = (d < 3 * std).sum(0)
    return int((near >= 20).sum()), near.tolist()


def sample_generator(file: str, run: str, train: str | None, n: int = 1000, seed: int = 0):
    prog = nndsl.load(file)
    trainer = prog.trainer(train)
    spec = trainer.spec
    gen = next(m for m in spec.models if m.upper().startswith("G"))
    name, args = spec.models[gen]
    model = prog.model(name, **args)
    variables = load_variables(f"{run}/{gen}.safetensors")
    latent = model.graph().node(model.graph().inputs[0]).type.shape[-1]
    z = jax.random.normal(jax.random.key(seed), (n, latent))
    return np.asarray(model.apply(variables, z)), trainer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("run")
    ap.add_argument("--train")
    a = ap.parse_args()
    pts, trainer = sample_generator(a.file, a.run, a.train)
    args = trainer.spec.data.args
    covered, near = ring_coverage(pts, args["modes"], args["radius"], args["std"])
    print(f"{covered} of {args['modes']} modes covered by 1,000 samples (per mode: {near})")


if __name__ == "__main__":
    main()
