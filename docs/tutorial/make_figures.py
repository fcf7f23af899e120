"""Makes every figure of the tutorial with nndsl's own tools, from the tutorial's own programs.

    python docs/tutorial/make_figures.py            # all figures, into docs/tutorial/img/
    python docs/tutorial/make_figures.py lstm.nn    # only those made from the named programs

The `nn` blocks of the chapters are written to a scratch folder under their `# file:` names;
pictures come from `nndsl graph`, curves from `nndsl train` (the blocks as written, nothing
shortened) and `nndsl plot`, and GAN samples are the PNGs `nndsl train` writes for `sample`.
Needs matplotlib and Graphviz's `dot`; about ten minutes on two CPU cores.
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMG = HERE / "img"

# (kind, program, arguments, output image). Kinds: graph (nndsl graph arguments), curves
# ({label: train block}, metric, title, log y), sample (train block, sample file).
FIGURES = [
    ("graph", "perceptron.nn", ["Perceptron"], "perceptron_graph.png"),
    ("curves", "perceptron.nn", ({"AND": "and_gate", "OR": "or_gate", "XOR": "xor_gate"}, "acc",
                                 "Perceptron: training accuracy", False), "perceptron_acc.png"),
    ("curves", "mlp_digits.nn", ({"sigmoid": "mlp_sigmoid", "tanh": "mlp_tanh", "relu": "mlp_relu"},
                                 "val_acc", "MLP on the digits: held-out accuracy", False), "activations.png"),
    ("graph", "chain_rule.nn", ["OneLayer"], "chain_rule.png"),
    ("graph", "small_cnn.nn", ["SmallCNN"], "small_cnn.png"),
    ("graph", "lenet_model.nn", ["LeNet5"], "lenet.png"),
    ("graph", "basic_block.nn", ["OneBlock"], "basic_block.png"),
    ("graph", "resnet_digits.nn", ["SmallResNet", "--depth", "0"], "resnet_blocks.png"),
    ("curves", "lenet_digits.nn", ({"LeNet-5": "lenet_digits"}, "val_acc", "", False), None),
    ("curves", "resnet_digits.nn", ({"LeNet-5": "lenet_digits", "SmallResNet": "resnet_digits"}, "val_acc",
                                    "Digits: held-out accuracy", False), "lenet_vs_resnet.png"),
    ("graph", "elman.nn", ["BothWays"], "bidirectional.png"),
    ("curves", "tagging.nn", ({"bidirectional LSTM": "bidirectional", "forward LSTM": "forward"}, "val_acc",
                              "Tagging: held-out accuracy", False), "tagging.png"),
    ("graph", "lstm.nn", ["AddingLSTM"], "lstm_cell.png"),
    ("curves", "lstm.nn", ({"LSTM": "lstm", "RNN": "rnn"}, "val_err", "Adding problem: held-out MSE", True),
     "adding.png"),
    ("graph", "gan_ring.nn", ["--train", "gan_ring"], "gan_ring_train.png"),
    ("curves", "gan_ring.nn", ({"": "gan_ring"}, ["d_real", "d_fake"], "GAN on the ring", False), "gan_curves.png"),
    ("sample", "gan_ring.nn", ("gan_ring", "fake_003000.png"), "gan_samples.png"),
    ("graph", "wgan_gp.nn", ["--train", "wgan_gp"], "wgan_gp_train.png"),
]


def programs() -> dict:
    """file name -> source, for every `nn` block of the chapters."""
    out = {}
    for md in sorted(HERE.glob("[0-9]*.md")):
        for body in re.findall(r"^```nn[^\n]*\n(.*?)^```", md.read_text(), re.S | re.M):
            m = re.match(r"# file: (\S+\.nn)", body)
            if not m:
                raise SystemExit(f"{md.name}: an nn block without a `# file: NAME.nn` first line")
            if m.group(1) in out:
                raise SystemExit(f"{md.name}: {m.group(1)} is named twice")
            out[m.group(1)] = body
    return out


def _run(argv: list[str]) -> None:
    from nndsl.cli import main as cli_main
    from nndsl.tools.commands import main as tools_main
    print("nndsl", " ".join(argv), flush=True)
    code = (tools_main if argv[0] in ("graph", "fmt") else cli_main)(argv)
    if code:
        raise SystemExit(f"nndsl {argv[0]} failed ({code})")


def make(only: set[str] | None = None) -> None:
    IMG.mkdir(exist_ok=True)
    progs = programs()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, text in progs.items():
            (work / name).write_text(text)
        runs = work / "runs"
        trained: set = set()

        def train(prog: str, block: str) -> Path:
            out = runs / block
            if block not in trained:
                owner = next(n for n, t in progs.items() if re.search(rf"^train {block} \{{", t, re.M))
                _run(["train", str(work / owner), block, "--out", str(out), "--no-progress"])
                trained.add(block)
            return out

        for kind, prog, args, image in FIGURES:
            if only and prog not in only:
                continue
            if kind == "graph":
                _run(["graph", str(work / prog), *args, "-o", str(IMG / image)])
            elif kind == "curves":
                blocks, metric, title, log = args
                hist = [f"{label}={train(prog, b) / 'history.json'}" if label else str(train(prog, b) / "history.json")
                        for label, b in blocks.items()]
                if image is None:
                    continue
                metrics = metric if isinstance(metric, list) else [metric]
                argv = ["plot", *hist, *sum((["--metric", m] for m in metrics), []), "-o", str(IMG / image)]
                argv += ["--title", title] if title else []
                argv += ["--log"] if log else []
                _run(argv)
            elif kind == "sample":
                block, fname = args
                shutil.copy(train(prog, block) / "samples" / fname, IMG / image)
                print(f"copied {block}/samples/{fname} to {IMG / image}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    make(set(sys.argv[1:]) or None)
