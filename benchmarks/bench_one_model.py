#!/usr/bin/env python
"""Optional benchmark: microseconds per training step of model.train, this checkout against another build of charrnn_ext, for every cell.

The one-model issue moved the gated and stacked models' training loop into the
core (one call runs many steps, as min-char-rnn's model always did); before,
it was a Python loop of one core call per step. This times ``model.train``
(steps of B streams x T characters, V = 65, Adagrad) for each configuration
below in a fresh process per side and round, the two sides interleaved round
by round; the figure is the median over rounds, and the ratio before / after
(above 1: this checkout is faster).

  python benchmarks/bench_one_model.py --before ""        # against the installed charrnn_ext
  python benchmarks/bench_one_model.py --before ../old    # a checkout with its built core
  python benchmarks/bench_one_model.py --quick

Say the CPU (lscpu) and the load beside any figure (benchmarks/README.md).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (label, cell, layers, dropout, H, B, T, dtype)
CONFIGS = [
    ("tanh tiny", "rnn", 1, 0.0, 16, 1, 25, "float64"),
    ("lstm tiny", "lstm", 1, 0.0, 16, 1, 25, "float64"),
    ("gru tiny", "gru", 1, 0.0, 16, 1, 25, "float64"),
    ("tanh 2L tiny", "rnn", 2, 0.0, 16, 1, 25, "float64"),
    ("min-char-rnn H100", "rnn", 1, 0.0, 100, 1, 25, "float64"),
    ("lstm H100", "lstm", 1, 0.0, 100, 1, 25, "float64"),
    ("gru H256 B32 f32", "gru", 1, 0.0, 256, 32, 50, "float32"),
    ("lstm 2L H128 B32 do0.2 f32", "lstm", 2, 0.2, 128, 32, 50, "float32"),
]

CHILD = r"""
import json, sys, time
import numpy as np
import charrnn_ext
from charrnn_ext import CharRNN
label, cell, L, dropout, H, B, T, dtype, seconds = json.loads(sys.argv[1])
model = CharRNN(65, H, 0, cell=cell, num_layers=L, dropout=dropout, dtype=dtype)
data = np.random.default_rng(0).integers(0, 65, 200_000)
model.train(data, 3, T, learning_rate=0.05, streams=B)          # warm: buffers, threads
n, spent = 4, 0.0
while spent < seconds:                                          # steps enough for `seconds`
    start = time.perf_counter()
    model.train(data, n, T, learning_rate=0.05, streams=B)
    spent = time.perf_counter() - start
    n *= 2
print(json.dumps(spent / (n // 2) * 1e6))
"""


def time_side(path: str | None, config, seconds: float) -> float:
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = path
    else:
        env.pop("PYTHONPATH", None)
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(list(config) + [seconds])],
                         env=env, cwd="/" if not path else path, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--before", default="", help="the other build's directory ('': installed)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3, help="timed training per sample")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 0.15 s")
    args = ap.parse_args()
    rounds, seconds = (3, 0.15) if args.quick else (args.rounds, args.seconds)
    before = os.path.abspath(args.before) if args.before else None
    print(f"us per step, median of {rounds} interleaved rounds; before: "
          f"{before or 'the installed charrnn_ext'}, after: {HERE}")
    print(f"{'configuration':28s} {'before':>10s} {'after':>10s} {'before/after':>13s}")
    for config in CONFIGS:
        times = {"before": [], "after": []}
        for _ in range(rounds):
            times["before"].append(time_side(before, config, seconds))
            times["after"].append(time_side(HERE, config, seconds))
        b, a = (statistics.median(times[k]) for k in ("before", "after"))
        print(f"{config[0]:28s} {b:10.1f} {a:10.1f} {b / a:12.2f}x", flush=True)


if __name__ == "__main__":
    main()
