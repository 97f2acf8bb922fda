#!/usr/bin/env python
"""Optional benchmark: ms per training step of our LSTM / GRU against PyTorch's nn.LSTM / nn.GRU (float64, float32) and the numpy reference.

Ours runs in float64 (the default) and float32 (--dtype float32).
A step is one chunk of B streams x T characters (V = 65): forward, backward,
the gradients clipped to [-5, 5] and one Adagrad update, from the states the
previous step left. PyTorch's step is the same computation with one-hot
inputs into nn.LSTM / nn.GRU (batch_first), nn.Linear, summed cross-entropy
/ B, clip_grad_value_ and torch.optim.Adagrad. Sides run interleaved in
rounds (each round times every side once over a few steps); the figure is
the median over rounds. Threads: 1 and 2 (charrnn_ext.set_num_threads and
torch.set_num_threads). The numpy reference is timed once per size at B 1
(it is the obvious loop: seconds per step).

  python benchmarks/bench_gated.py                 # every size, ~10 min on 2 cores
  python benchmarks/bench_gated.py --quick         # H 128, B 1 and 32, a few rounds
  python benchmarks/bench_gated.py --cells lstm --hidden 256 --batch 32
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

try:
    import torch
except ImportError:   # optional
    torch = None

import charrnn_ext  # noqa: E402
from charrnn_ext import CharRNN
from charrnn_ext.core import reference_gated  # noqa: E402

perf = time.perf_counter
V, T, LR = 65, 50, 0.05


class OurSide:
    def __init__(self, cell, H, B, dtype="float64", seed=0):
        self.model = CharRNN(V, H, seed, cell=cell, num_layers=1, dtype=dtype)
        self.state = None

    def step(self, x, y):
        _, self.state = self.model.train_step(x, y, self.state, LR)


class TorchSide:
    def __init__(self, cell, H, B, dtype, params):
        kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
        self.rnn = kind(V, H, batch_first=True).to(dtype)
        self.out = torch.nn.Linear(H, V).to(dtype)
        with torch.no_grad():   # the same weights as ours
            for name, p in self.rnn.named_parameters():
                p.copy_(torch.as_tensor(params[name]))
            self.out.weight.copy_(torch.as_tensor(params["Why"]))
            self.out.bias.copy_(torch.as_tensor(params["by"]))
        self.params = list(self.rnn.parameters()) + list(self.out.parameters())
        self.opt = torch.optim.Adagrad(self.params, lr=LR, eps=1e-8)
        self.dtype, self.B, self.hx = dtype, B, None
        self.eye = torch.eye(V, dtype=dtype)

    def step(self, x, y):
        xs = self.eye[torch.as_tensor(x)]                      # (B, T, V) one-hot
        out, hx = self.rnn(xs, self.hx)
        logits = self.out(out)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), torch.as_tensor(y).reshape(-1), reduction="sum") / self.B
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, 5.0)
        self.opt.step()
        self.hx = tuple(h.detach() for h in hx) if isinstance(hx, tuple) else hx.detach()


def chunks(B, n, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))) for _ in range(n)]


def time_sides(sides: dict, B: int, rounds: int, steps: int, threads: int) -> dict:
    """{name: median ms per step} over interleaved rounds."""
    data = chunks(B, steps)
    times = {name: [] for name in sides}
    for name, side in sides.items():   # warm-up
        side.step(*data[0])
    for _ in range(rounds):
        for name, side in sides.items():
            t0 = perf()
            for x, y in data:
                side.step(x, y)
            times[name].append((perf() - t0) / steps * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def time_reference(cell, H):
    params = reference_gated.init_params(cell, V, H, 1, 0)
    x, y = chunks(1, 1)[0]
    t0 = perf()
    reference_gated.batch_lossFun(cell, 1, x, y, None, params)
    return (perf() - t0) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    p.add_argument("--hidden", nargs="+", type=int, default=[128, 256, 512])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 32])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args(argv)
    if args.quick:
        args.hidden, args.rounds = [128], 3
    if torch is None:
        print("PyTorch is not installed: only our step is timed", file=sys.stderr)
    print(f"# bench_gated: ms per training step (V {V}, T {T}), median of {args.rounds} "
          f"interleaved rounds\n")
    print("| cell | H | B | threads | ours f64 | ours f32 | torch f64 | torch f32 "
          "| torch f64 / ours f64 | torch f32 / ours f32 | numpy ref |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cell in args.cells:
        for H in args.hidden:
            ref = time_reference(cell, H)
            for B in args.batch:
                steps = max(2, int(200 / (B * H / 64)))   # about the same work per round
                steps = min(steps, 20)
                for threads in args.threads:
                    charrnn_ext.set_num_threads(threads)
                    sides = {"ours": OurSide(cell, H, B), "ours32": OurSide(cell, H, B, "float32")}
                    if torch is not None:
                        torch.set_num_threads(threads)
                        params = {k: np.array(v) for k, v in sides["ours"].model.params.items()}
                        sides["f64"] = TorchSide(cell, H, B, torch.float64, params)
                        sides["f32"] = TorchSide(cell, H, B, torch.float32, params)
                    ms = time_sides(sides, B, args.rounds, steps, threads)
                    f64, f32 = ms.get("f64", float("nan")), ms.get("f32", float("nan"))
                    print(f"| {cell} | {H} | {B} | {threads} | {ms['ours']:.2f} | "
                          f"{ms['ours32']:.2f} | {f64:.2f} | {f32:.2f} | "
                          f"{f64 / ms['ours']:.2f}x | {f32 / ms['ours32']:.2f}x | {ref:.0f} |",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
