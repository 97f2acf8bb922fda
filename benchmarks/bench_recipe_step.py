"""The batched recipe's step (B 32, H 256, T 50): ours in float64 and float32 beside PyTorch's nn.RNN in float32 and float64, 1 and 2 threads, quiet and with another process busy."""
# Each side trains the same shape of model for the same chunks of ids: an input
# embedding, a tanh RNN of 256 units, a linear output layer over V = 65, B = 32 streams
# of T = 50 steps, elementwise clipping to [-5, 5]. Ours: the batched recipe
# (CharRNN(..., embedding_size=64, optimizer="adam"), model.train: calls of `call`
# steps); PyTorch: nn.Embedding(V, 256) -> nn.RNN(tanh) -> nn.Linear with Adagrad (the
# issue's script). Sides run in interleaved rounds (who goes first rotates), each
# round `seconds` long; the figure is the median time per step over the rounds, and
# characters/s = B * T / that. "busy": one process spinning in a Python loop beside.
from __future__ import annotations

import multiprocessing as mp
import sys
import time

import numpy as np

from harness import (Parser, Report, core_threads, interleave, load_peer, median, missing,
                     progress, torch_threads)

torch = load_peer("torch")

from charrnn_ext import CharRNN  # noqa: E402  (after the peer: see harness.load_peer)

B, H, T, V, D = 32, 256, 50, 65, 64
FULL = dict(seconds=1.5, rounds=7)
QUICK = dict(seconds=0.2, rounds=2)
SIZES = dict(seconds="seconds per round and side", rounds="interleaved rounds per side")
CONDITIONS = ("quiet", "busy")


class Ours:
    def __init__(self, dtype: str, data: np.ndarray, call: int = 20):
        self.model = CharRNN(V, H, seed=0, embedding_size=D, optimizer="adam",
                             init="pytorch", dtype=dtype)
        self.data, self.call, self.h, self.pos = data, call, None, 0

    def run(self, seconds: float) -> list:
        times, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            _, self.h, self.pos = self.model.train(self.data, self.call, T, self.h, self.pos,
                                                   0.002, streams=B)
            times.append((time.perf_counter() - t0) / self.call)
        return times


class Torch:
    def __init__(self, dtype, data: np.ndarray):
        nn = torch.nn
        torch.manual_seed(0)
        self.embed, self.rnn = nn.Embedding(V, H).to(dtype), nn.RNN(H, H, batch_first=True).to(dtype)
        self.out = nn.Linear(H, V).to(dtype)
        self.params = [*self.embed.parameters(), *self.rnn.parameters(), *self.out.parameters()]
        self.opt = torch.optim.Adagrad(self.params, lr=0.1)
        part = data.size // B
        self.data = torch.from_numpy(data[:part * B].astype(np.int64).reshape(B, part))
        self.part, self.h, self.pos = part, None, 0

    def step(self):
        if self.pos + T + 1 > self.part:
            self.h, self.pos = None, 0
        x = self.data[:, self.pos:self.pos + T]
        y = self.data[:, self.pos + 1:self.pos + T + 1]
        out, h = self.rnn(self.embed(x), self.h)
        loss = torch.nn.functional.cross_entropy(self.out(out).reshape(-1, V), y.reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        for p in self.params:
            p.grad.clamp_(-5, 5)
        self.opt.step()
        self.h, self.pos = h.detach(), self.pos + T

    def run(self, seconds: float) -> list:
        times, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - t0)
        return times


def _spin(stop):
    while not stop.is_set():
        sum(range(1000))


def measure(sides: dict, threads: int, args) -> dict:
    """{side: median seconds per step} over interleaved rounds, on ``threads``."""
    times = {k: [] for k in sides}
    for side in sides.values():      # warm-up: first calls allocate and choose threads
        with core_threads(threads), torch_threads(torch, threads) if torch else core_threads(None):
            side.run(0.3)
    for _, k in interleave(sides, args.rounds):
        with core_threads(threads), torch_threads(torch, threads) if torch else core_threads(None):
            times[k].append(median(sides[k].run(args.seconds)))
    return {k: median(v) for k, v in times.items()}


def main(argv=None) -> int:
    p = Parser(__doc__, FULL, QUICK, SIZES, only=CONDITIONS, seed=False)
    args = p.parse_args(argv)
    data = np.random.default_rng(0).integers(0, V, 400_000).astype(np.int32)
    sides = {"ours float64": Ours("float64", data), "ours float32": Ours("float32", data)}
    if torch is None:
        progress(missing("torch", "only our sides are timed"))
    else:
        sides["torch float32"] = Torch(torch.float32, data)
        sides["torch float64"] = Torch(torch.float64, data)
    r = Report("The batched recipe's step against PyTorch's nn.RNN", args, [
        ["shape", f"B {B}, H {H}, T {T}, V {V}; ours: embedding {D}, Adam (model.train); "
                  f"PyTorch: nn.Embedding -> nn.RNN(tanh) -> nn.Linear, Adagrad, clip 5"]])
    rows = []
    for condition in args.only or CONDITIONS:
        stop, spinner = None, None
        if condition == "busy":
            ctx = mp.get_context("spawn")
            stop = ctx.Event()
            spinner = ctx.Process(target=_spin, args=(stop,))
            spinner.start()
        try:
            for threads in (1, 2):
                res = measure(sides, threads, args)
                base = res.get("torch float32")
                for k, sec in res.items():
                    ratio = f"{base / sec:.2f}x" if base else "-"
                    rows.append([condition, threads, k, f"{sec * 1e3:.2f}",
                                 f"{B * T / sec / 1e3:,.0f}k", ratio])
                    progress(f"{condition}, {threads} thread(s): {k} {sec * 1e3:.2f} ms/step")
        finally:
            if spinner is not None:
                stop.set()
                spinner.join()
    r.table(["machine", "threads", "side", "ms/step", "chars/s", "vs torch float32"], rows)
    r.finish(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
