#!/usr/bin/env python
"""Fine-tuning against training from scratch: a tinyshakespeare model fine-tuned on a small different text (--init-from) and a model trained on that text alone, for the same wall time; held-out bits/char side by side.

The small text: the first --chars characters of charrnn-train's built-in demo
corpus (the source of Python standard-library modules: English docstrings
and comments, and code), which every Python installation has. Both runs
use charrnn-train with the base model's settings (its cell, sizes, Adam at
its rate) and --time-limit SECONDS, its last 5% held out; the figure is
charrnn-train's own validation figure at the end of the run. The base
model: a checkpoint given with --model (trained on tinyshakespeare).

  python benchmarks/bench_finetune.py --model gru.npz --seconds 120
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from charrnn_ext import load_checkpoint
from charrnn_ext.text.corpus import demo_corpus


def progress(msg: str) -> None:
    print(f"[bench_finetune] {msg}", file=sys.stderr, flush=True)


def run(args: list[str], cwd: Path) -> tuple[float, int, str]:
    """charrnn-train with args: (validation bits/char at the end, iterations, the command)."""
    cmd = [sys.executable, "-m", "charrnn_ext.train", *args, "--no-keep-best"]
    progress("charrnn-train " + " ".join(args))
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout
    val = float(re.search(r"validation (\d+\.\d+)", out).group(1))
    iters = int(re.search(r"summary: ([\d,]+) iteration", out).group(1).replace(",", ""))
    return val, iters, "charrnn-train " + " ".join(args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="the tinyshakespeare model")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--chars", type=int, default=60_000, help="characters of the small text")
    p.add_argument("--output", help="also write the report here")
    args = p.parse_args()
    base = load_checkpoint(args.model)
    hyper = base.hyperparameters
    same = ["--cell", base.model.cell, "--num-layers", str(base.model.num_layers),
            "--hidden-size", str(base.model.hidden_size), "--embedding-size",
            str(base.model.embedding_size), "--dtype", base.model.dtype.name,
            "--batch-size", str(hyper.get("batch_size", 1)),
            "--learning-rate", str(hyper.get("learning_rate")),
            "--optimizer", base.model.optimizer]
    text = demo_corpus()[0][:args.chars]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "small.txt").write_text(text, encoding="utf-8")
        limit = ["--time-limit", f"{args.seconds:g}"]
        tuned = run(["small.txt", "--init-from", str(args.model.resolve()), *limit,
                     "--checkpoint", "tuned.npz"], d)
        scratch = run(["small.txt", *same, *limit, "--checkpoint", "scratch.npz"], d)
        new = sorted(set(text) - set(base.vocab.chars))
    lines = [f"# Fine-tuning against training from scratch, {args.seconds:g} s each", "",
             f"base model: `{base.model!r}`, {base.iteration:,} iterations on tinyshakespeare "
             f"({args.model.name}); small text: the first {len(text):,} characters of the demo "
             f"corpus, {len(new)} characters the base model lacks; machine: "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
             f"average {os.getloadavg()[0]:.1f} at the end", "",
             "| run | iterations | held-out bits/char |", "|---|---|---|",
             f"| fine-tuned: `{tuned[2]}` | {tuned[1]:,} | {tuned[0]:.4f} |",
             f"| from scratch: `{scratch[2]}` | {scratch[1]:,} | {scratch[0]:.4f} |"]
    report = "\n".join(lines) + "\n"
    print(report, end="")
    if args.output:
        Path(args.output).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
