#!/usr/bin/env python
"""Dynamic evaluation on tinyshakespeare's held-out 5%: static against dynamic bits/char, over learning rates and chunk lengths.

The model: README's best two-minute command (a GRU, 384 units, embedding 128,
32 streams, Adam 0.003, float32) trained by charrnn-train for --seconds of
wall time, or a checkpoint given with --model. The held-out text is what
charrnn-train holds out (its last 5%), scored as `charrnn-score MODEL
held-out.txt [--dynamic ...]` scores it: from the state training left,
every character but the first predicted.

The settings are chosen on the first half of the held-out text and reported
on the second half (and on the whole), so the figure of the chosen settings
is not measured on the text they were picked on. Seconds are wall time of
each scoring on this (possibly busy) machine.

  python benchmarks/bench_dynamic.py --seconds 120
  python benchmarks/bench_dynamic.py --model gru120.npz --lrs 1e-4 3e-4 1e-3 --chunks 20 50 100
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from charrnn_ext import load_checkpoint
from charrnn_ext.core.datapass import held_out
from charrnn_ext.use.scoring import Dynamic, resolved, score_text

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
GRU = ["--cell", "gru", "--batch-size", "32", "--hidden-size", "384", "--embedding-size", "128",
       "--learning-rate", "0.003", "--dtype", "float32"]


def progress(msg: str) -> None:
    print(f"[bench_dynamic] {msg}", file=sys.stderr, flush=True)


def train(data: Path, seconds: float, where: Path) -> tuple[Path, str]:
    """README's GRU command for ``seconds``: (the checkpoint, its summary lines)."""
    path = where / "gru.npz"
    cmd = [sys.executable, "-m", "charrnn_ext.train", str(data), *GRU, "--time-limit",
           str(seconds), "--checkpoint", str(path), "--no-keep-best"]
    progress("training: " + " ".join(cmd[2:]))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    summary = [line for line in out.splitlines()
               if line.startswith(("--time-limit", "bits per character", "speed"))]
    return path, "\n".join(summary)


def timed(ckpt, text, dynamic=None):
    t0 = time.perf_counter()
    s = score_text(ckpt, text, dynamic=dynamic)
    return s.bits_per_char, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="a checkpoint trained on the text (default: train one)")
    p.add_argument("--seconds", type=float, default=120.0, help="training time without --model")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    p.add_argument("--chunks", type=int, nargs="+", default=[20, 50, 100])
    p.add_argument("--output", help="also write the report here")
    args = p.parse_args()
    text = args.data.read_text(encoding="utf-8")
    held = text[len(text) - held_out(len(text), 0.05):]
    half = len(held) // 2
    tune, report = held[:half], held[half:]
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        summary = ""
        model = args.model
        if model is None:
            model, summary = train(args.data, args.seconds, Path(tmp))
        ckpt = load_checkpoint(model)
        progress(f"model: {ckpt.model!r}, iteration {ckpt.iteration}")
        lines += [f"# Dynamic evaluation on tinyshakespeare's held-out 5% ({len(held):,} characters)",
                  "", f"model: `{ckpt.model!r}`, {ckpt.iteration:,} iterations"
                  + (f" (charrnn-train {' '.join(GRU)} --time-limit {args.seconds:g})"
                     if args.model is None else f" ({model.name})"), ""]
        if summary:
            lines += ["```", summary, "```", ""]
        cpu = platform.processor() or platform.machine()
        lines += [f"machine: {cpu}, {os.cpu_count()} CPUs, load average "
                  f"{os.getloadavg()[0]:.1f} at the start", ""]
        # -- tuning half: every setting --------------------------------------------
        static_tune, secs = timed(ckpt, tune)
        progress(f"static, tuning half: {static_tune:.4f} ({secs:.1f} s)")
        rows, best = [], None
        for chunk in args.chunks:
            for lr in args.lrs:
                bpc, secs = timed(ckpt, tune, Dynamic(lr, chunk))
                progress(f"lr {lr:g} chunk {chunk}: {bpc:.4f} ({secs:.1f} s)")
                rows.append((chunk, lr, bpc, secs))
                if best is None or bpc < best[2]:
                    best = (chunk, lr, bpc)
        lines += [f"Tuning half (the first {len(tune):,} held-out characters): static "
                  f"{static_tune:.4f} bits/char", "",
                  "| chunk | learning rate | dynamic bits/char | gain | seconds |",
                  "|---|---|---|---|---|"]
        lines += [f"| {c} | {lr:g} | {b:.4f} | {static_tune - b:+.4f} | {s:.1f} |"
                  for c, lr, b, s in rows]
        # -- the chosen setting and charrnn-score's defaults on the other half, and on
        # the whole
        chunk, lr, _ = best
        default = resolved(Dynamic(), ckpt)
        lines += ["", f"Chosen on the tuning half: chunk {chunk}, learning rate {lr:g}; "
                  f"charrnn-score's defaults for this model: chunk {default.chunk}, learning "
                  f"rate {default.learning_rate:g} (a third of the rate its training ended at).", "",
                  "| text | settings | static | dynamic | gain | seconds static / dynamic |",
                  "|---|---|---|---|---|---|"]
        settings = [("chosen", Dynamic(lr, chunk))]
        if default != settings[0][1]:
            settings.append(("defaults", default))
        for name, part in (("second half (not tuned on)", report), ("whole held-out 5%", held)):
            s_bpc, s_secs = timed(ckpt, part)
            for what, dyn in settings:
                d_bpc, d_secs = timed(ckpt, part, dyn)
                progress(f"{name}, {what}: static {s_bpc:.4f}, dynamic {d_bpc:.4f}")
                lines.append(f"| {name} | {what}: chunk {dyn.chunk}, lr {dyn.learning_rate:g} | "
                             f"{s_bpc:.4f} | {d_bpc:.4f} | {s_bpc - d_bpc:+.4f} | "
                             f"{s_secs:.1f} / {d_secs:.1f} |")
    report_text = "\n".join(lines) + "\n"
    print(report_text, end="")
    if args.output:
        Path(args.output).write_text(report_text, encoding="utf-8")


if __name__ == "__main__":
    main()
