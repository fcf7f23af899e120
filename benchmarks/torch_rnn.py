"""PyTorch eager (CPU, 2 threads) for benchmarks/rnn_vjp.py: the same training step (T=50, 32
features, hidden 128, `-> last -> dense(10)`, cross-entropy, Adam) with torch.nn.LSTM / nn.GRU
(PyTorch's own recurrent kernels: input projection for all steps at once, weight gradients as
one matmul after the loop) and with an LSTM written from its gate equations. Run it in separate
fresh processes (eager step times move between processes) with an interpreter that has torch:

    python benchmarks/torch_rnn.py [--batch 32 64 --rounds 7 --steps 10]    # prints a table
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

FEATURES, HIDDEN, TIME = 32, 128, 50


class Library(nn.Module):
    """torch.nn.LSTM or nn.GRU, then a dense layer on the last hidden state."""

    def __init__(self, kind):
        super().__init__()
        self.rnn = kind(FEATURES, HIDDEN, batch_first=True)
        self.out = nn.Linear(HIDDEN, 10)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.out(y[:, -1])


class GateLSTM(nn.Module):
    """The LSTM from its gate equations: one fused dense layer on [h, x], split into f, i, g, o."""

    def __init__(self):
        super().__init__()
        self.gates = nn.Linear(HIDDEN + FEATURES, 4 * HIDDEN)
        self.out = nn.Linear(HIDDEN, 10)

    def forward(self, x):
        h = c = x.new_zeros(x.shape[0], HIDDEN)
        for t in range(x.shape[1]):
            f, i, g, o = self.gates(torch.cat([h, x[:, t]], -1)).chunk(4, -1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return self.out(h)


MODELS = {"torch.nn.LSTM": lambda: Library(nn.LSTM), "torch.nn.GRU": lambda: Library(nn.GRU),
          "LSTM from gate equations": GateLSTM}


def step_fn(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, 2 threads; load average {os.getloadavg()[0]:.1f}; median round of "
          f"{a.rounds} interleaved, each the median of {a.steps} steps (wall; CPU time)")
    print("| model | batch | ms |\n|---|---|---|")
    for batch in a.batch:
        x, y = torch.randn(batch, TIME, FEATURES), torch.randint(0, 10, (batch,))
        steps = {k: step_fn(make(), x, y) for k, make in MODELS.items()}
        per: dict = {k: ([], []) for k in steps}
        for _ in range(a.rounds):
            for k, step in steps.items():
                wall, cpu = [], []
                for _ in range(a.steps):
                    t, c = time.perf_counter(), time.process_time()
                    step()
                    wall.append(time.perf_counter() - t)
                    cpu.append(time.process_time() - c)
                per[k][0].append(statistics.median(wall))
                per[k][1].append(statistics.median(cpu))
        for k, (w, c) in per.items():
            print(f"| {k} | {batch} | {1e3 * statistics.median(w):.2f}; {1e3 * statistics.median(c):.2f} |")


if __name__ == "__main__":
    main()
