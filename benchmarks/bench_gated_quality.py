#!/usr/bin/env python
"""Held-out bits/char on tinyshakespeare after a wall-time budget: our gated cells (charrnn-train's data pass) vs a PyTorch LSTM script.

Both sides: the text's last 5% held out; B streams of T = 50 over the
training part (min-char-rnn's data pass for ours, as charrnn-train runs it;
the same cut into B contiguous parts for PyTorch). Scored the same way for
both once the budget is spent: the model reads the 10,000 characters before
the held-out text from a zero state, then its loss over the whole held-out
text is the figure (bits per character). The PyTorch side is the 40-line
script of the issue: nn.LSTM(V, 256) one-hot, nn.Linear, Adam 2e-3, float32.

  python benchmarks/bench_gated_quality.py --seconds 120 --configs lstm:256x32@0.05
  python benchmarks/bench_gated_quality.py --seconds 120 --torch
Config: CELL[:L]:HxB@LR[/DROPOUT][,adam][,eD]  (Adagrad unless adam; eD: an input
embedding of width D), e.g. lstm:256x32@0.002,adam,e64
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from charrnn_ext import CharRNN, Vocab

T, WARM = 50, 10_000
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def split(text):
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text).astype(np.int64)
    return ids, ids.size - int(ids.size * 0.05), len(vocab)


def parse(config: str):
    config, *options = config.split(",")
    cell, rest = config.split(":", 1)
    L = 1
    if rest.count(":"):
        L, rest = rest.split(":", 1)
    size, lr = rest.split("@")
    dropout = 0.0
    if "/" in lr:
        lr, dropout = lr.split("/")
    H, B = size.split("x")
    extra = {"optimizer": "adam" if "adam" in options else "adagrad",
             "embedding_size": next((int(o[1:]) for o in options if o.startswith("e")), 0)}
    return cell, int(L), int(H), int(B), float(lr), float(dropout), extra


def ours(ids, n_train, V, config, seconds):
    cell, L, H, B, lr, dropout, extra = parse(config)
    model = CharRNN(V, H, 0, cell=cell, num_layers=L, dropout=dropout, **extra)
    state, position, steps, t0 = None, 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, state, position = model.train(ids[:n_train], 5, T, state, position, lr, streams=B)
        steps += 5
    warm = ids[n_train - WARM:n_train]
    h = model.advance(warm[:-1])
    nats = model.loss(np.r_[warm[-1:], ids[n_train:-1]], ids[n_train:], h)
    return steps, nats / (ids.size - n_train) / math.log(2)


def pytorch(ids, n_train, V, seconds, H=256, B=32):
    import torch
    torch.manual_seed(0)
    rnn, out = torch.nn.LSTM(V, H, batch_first=True), torch.nn.Linear(H, V)
    params = list(rnn.parameters()) + list(out.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    part = n_train // B
    data = torch.as_tensor(ids[:part * B].reshape(B, part))
    eye = torch.eye(V)
    hx, p, steps, t0 = None, 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if p + T + 1 >= part:
            hx, p = None, 0
        x, y = data[:, p:p + T], data[:, p + 1:p + T + 1]
        o, hx = rnn(eye[x], hx)
        loss = torch.nn.functional.cross_entropy(out(o).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        hx = tuple(h.detach() for h in hx)
        p += T
        steps += 1
    with torch.no_grad():
        seq = torch.as_tensor(ids[n_train - WARM:])[None]
        o, _ = rnn(eye[seq[:, :-1]])
        nll = torch.nn.functional.cross_entropy(out(o)[0, WARM - 1:], seq[0, WARM:],
                                                reduction="sum").item()
    return steps, nll / (ids.size - n_train) / math.log(2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--configs", nargs="*", default=["lstm:256x32@0.05"])
    p.add_argument("--torch", action="store_true", help="also the PyTorch LSTM script")
    p.add_argument("--threads", type=int, default=0, help="torch and core threads (0: default)")
    args = p.parse_args(argv)
    ids, n_train, V = split(DATA.read_text())
    if args.threads:
        import charrnn_ext
        charrnn_ext.set_num_threads(args.threads)
    print(f"| side | {args.seconds:g} s: steps | held-out bits/char |\n|---|---|---|")
    for config in args.configs:
        steps, bpc = ours(ids, n_train, V, config, args.seconds)
        print(f"| ours {config} | {steps} | {bpc:.3f} |", flush=True)
    if args.torch:
        import torch
        if args.threads:
            torch.set_num_threads(args.threads)
        steps, bpc = pytorch(ids, n_train, V, args.seconds)
        print(f"| PyTorch LSTM-256 B32 Adam 2e-3 f32 | {steps} | {bpc:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
