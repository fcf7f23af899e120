"""The suite's models in PyTorch eager (CPU), for benchmarks/suite.py: the same layers, batch sizes
and Adam step as the nndsl programs there, timed the same way (best of interleaved rounds, each the
median of several steps).

PyTorch eager step times move between processes (the glibc allocator's state), so suite.py runs
this file in several fresh processes and takes the median:

    python benchmarks/torch_ref.py MODEL [--sizes small|train] [--threads 2] [--rounds 5 --steps 10]

prints one JSON line. `--sizes train` gives suite.py's "training sizes" (benchmarks/train_sizes.py):
the MLP on 784 inputs at batch 128, LeNet-5 on 28x28 at 128, the LSTM at 64, the DCGAN on 28x28
images and ResNet-18 at 32.

MODEL is one of MLP, LeNet-5, LSTM, DCGAN, ResNet-18. The LSTM is timed twice: torch.nn.LSTM
(PyTorch's own fused kernel, the strongest baseline) and an LSTM written from its gate equations
with torch operations, the way nndsl's is written.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


def mlp():
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def mlp784():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def lenet(pad: int = 0):
    """LeNet-5; `pad=2` for 28x28 inputs (the first convolution "same")."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=pad), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


class LastLSTM(nn.Module):
    """torch.nn.LSTM, then a dense layer on the last hidden state."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(32, 128, batch_first=True)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.out(h[0])


class GateLSTM(nn.Module):
    """The lecture's LSTM from its gate equations: four dense layers on [h, x]."""

    def __init__(self, hidden=128, features=32):
        super().__init__()
        self.gates = nn.ModuleList(nn.Linear(hidden + features, hidden) for _ in range(4))
        self.out = nn.Linear(hidden, 10)
        self.hidden = hidden

    def forward(self, x):
        h = c = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            hx = torch.cat([h, x[:, t]], 1)
            f, i, g, o = (layer(hx) for layer in self.gates)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.out(h)


class BasicBlock(nn.Module):
    def __init__(self, cin, ch, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.skip = (nn.Sequential(nn.Conv2d(cin, ch, 1, stride, bias=False), nn.BatchNorm2d(ch))
                     if stride != 1 or cin != ch else nn.Identity())

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.skip(x))


def resnet18_cifar():
    layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for ch, stride in [(64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1)]:
        layers.append(BasicBlock(cin, ch, stride))
        cin = ch
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))


def generator(side: int = 4):
    """From a side x side x 64 start to 4 * side square images."""
    return nn.Sequential(
        nn.Linear(32, side * side * 64), nn.ReLU(), nn.Unflatten(1, (64, side, side)),
        nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Tanh())


def discriminator(side: int = 4):
    return nn.Sequential(
        nn.Conv2d(1, 32, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(32, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(64 * side * side, 1))


def classifier_step(net, x, y):
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def gan_step(batch, size: int = 16):
    g, d = generator(size // 4), discriminator(size // 4)
    og = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.tanh(torch.randn(batch, 1, size, size))
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    bce = F.binary_cross_entropy_with_logits

    def step():
        z = torch.randn(batch, 32)
        od.zero_grad(set_to_none=True)
        fake = g(z)
        d_loss = bce(d(real), ones) + bce(d(fake.detach()), zeros)
        d_loss.backward()
        od.step()
        og.zero_grad(set_to_none=True)
        g_loss = bce(d(fake), ones)
        g_loss.backward()
        og.step()
        return g_loss
    return step


def steps(model: str) -> dict:
    """label -> a function running one training step, on the suite's shapes (NCHW for images)."""
    torch.manual_seed(0)
    labels = lambda n: torch.randint(0, 10, (n,))
    if model == "MLP":
        return {"PyTorch": classifier_step(mlp(), torch.randn(128, 64), labels(128))}
    if model == "LeNet-5":
        return {"PyTorch": classifier_step(lenet(), torch.randn(64, 1, 32, 32), labels(64))}
    if model == "LSTM":
        x, y = torch.randn(32, 50, 32), labels(32)
        return {"PyTorch nn.LSTM": classifier_step(LastLSTM(), x, y),
                "PyTorch, gate equations": classifier_step(GateLSTM(), x, y)}
    if model == "DCGAN":
        return {"PyTorch": gan_step(64)}
    if model == "ResNet-18":
        return {"PyTorch": classifier_step(resnet18_cifar(), torch.randn(8, 3, 32, 32), labels(8))}
    raise SystemExit(f"unknown model {model!r}")


def train_steps(model: str) -> dict:
    """`steps` at the training sizes of benchmarks/train_sizes.py."""
    torch.manual_seed(0)
    labels = lambda n: torch.randint(0, 10, (n,))
    if model == "MLP":
        return {"PyTorch": classifier_step(mlp784(), torch.randn(128, 784), labels(128))}
    if model == "LeNet-5":
        return {"PyTorch": classifier_step(lenet(pad=2), torch.randn(128, 1, 28, 28), labels(128))}
    if model == "LSTM":
        x, y = torch.randn(64, 50, 32), labels(64)
        return {"nn.LSTM": classifier_step(LastLSTM(), x, y),
                "gate equations": classifier_step(GateLSTM(), x, y)}
    if model == "DCGAN":
        return {"PyTorch": gan_step(64, size=28)}
    if model == "ResNet-18":
        return {"PyTorch": classifier_step(resnet18_cifar(), torch.randn(32, 3, 32, 32), labels(32))}
    raise SystemExit(f"unknown model {model!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--sizes", choices=["small", "train"], default="small")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    fns = (train_steps if a.sizes == "train" else steps)(a.model)
    for f in fns.values():  # warm up: first-call allocations and kernel selection
        for _ in range(3):
            f()
    per = {k: [] for k in fns}
    for _ in range(a.rounds):
        for k, f in fns.items():
            ts = []
            for _ in range(a.steps):
                t = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t)
            per[k].append(statistics.median(ts))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                      "times": {k: min(v) for k, v in per.items()}}))


if __name__ == "__main__":
    main()
