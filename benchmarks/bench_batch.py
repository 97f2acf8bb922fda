#!/usr/bin/env python
"""Benchmark of B parallel streams: characters per second of a training step of the core, the batched numpy reference and PyTorch (nn.RNN and the same algorithm)."""
from __future__ import annotations

import contextlib
import sys

from bench_data import StreamsDataPass, load_corpus
from charrnn_ext.core import _dispatch
from charrnn_ext.core.spec import init_params
from harness import (Parser, Report, core_threads, load_peer, missing, progress, rel_diff,
                     time_sides, torch_threads, verdict)
from peers import Chunks, CoreSide, RefSide, TorchRNNSide, TorchSide

STREAMS = [1, 4, 16, 64]
# name: (corpus, hidden size); T is the corpus's
CONFIGS = {"H100": ("SMALL", 100), "H512": ("SMALL", 512), "LARGE": ("LARGE", 200)}
FULL = dict(streams=STREAMS, seconds=2.0, ref_seconds=3.0, blocks=6, max_steps=400)
QUICK = dict(streams=STREAMS, seconds=0.3, ref_seconds=0.5, blocks=3, max_steps=40)
SIZES = dict(streams="numbers of streams B", seconds="timed seconds per side and cell, at most",
             ref_seconds="the same for the numpy reference", blocks="interleaved blocks per cell",
             max_steps="timed steps per side and cell, at most")
EPILOG = """\
  python benchmarks/bench_batch.py               # full run, about 3-5 minutes on 2 cores
  python benchmarks/bench_batch.py --quick       # smoke run
  python benchmarks/bench_batch.py --only H512 --streams 1 64 --output report.md"""


def fmt_cps(cps) -> str:
    """Characters per second, in thousands."""
    return "—" if cps is None else f"{cps / 1e3:,.1f}k"


def sides_of(init, B, torch):
    """{name: (side, thread settings)} of one cell."""
    null = contextlib.nullcontext
    sides = {"core": (CoreSide(init, B), null),
             "core, 1 thread": (CoreSide(init, B), lambda: core_threads(1)),
             "reference": (RefSide(init, B), null)}
    if torch is not None:
        n = torch.get_num_threads()
        sides[f"torch nn.RNN ({n} thr)"] = (TorchRNNSide(torch, init, B), null)
        sides["torch nn.RNN (1 thr)"] = (TorchRNNSide(torch, init, B), lambda: torch_threads(torch, 1))
        sides[f"torch, same algorithm ({n} thr)"] = (TorchSide(torch, init, B), null)
    return sides


def main(argv=None) -> int:
    p = Parser(__doc__, FULL, QUICK, SIZES, only=CONFIGS, epilog=EPILOG)
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it is installed")
    args = p.parse_args(argv)
    torch = None if args.no_torch else load_peer("torch")     # after charrnn_ext (load_peer)
    if torch is None and not args.no_torch:
        progress(missing("torch", "its columns stay empty"))
    r = Report("charrnn_ext: B streams, characters per second", args, [
        ["torch", "not installed or left out" if torch is None else
         f"{torch.__version__}, {torch.get_num_threads()} threads by default"],
        ["recurrence on dgemm", f"from {_dispatch.core.gemm_min_streams()} streams"]])

    names = args.only or list(CONFIGS)
    corpora, cells = {}, {}
    for name in names:
        corpus_name, H = CONFIGS[name]
        if corpus_name not in corpora:
            corpora[corpus_name] = load_corpus(corpus_name, args.data_dir)
        c = corpora[corpus_name]
        init = init_params(c.V, H, args.seed)
        for B in args.streams:
            progress(f"{name}: V={c.V} H={H} T={c.seq} B={B}")
            sides = sides_of(init, B, torch)
            budget = {k: (args.ref_seconds if k == "reference" else args.seconds) / args.blocks
                      for k in sides}
            chunks = Chunks(StreamsDataPass(c.ids, c.seq, B), torch)
            cells[name, B] = (c, H, time_sides(sides, chunks,
                                               [max(1, args.max_steps // args.blocks)] * args.blocks,
                                               budget))

    side_names = list(next(iter(cells.values()))[2]) if cells else []
    torch_names = [k for k in side_names if k.startswith("torch")]
    r.para("Characters per second (B·T per step / median step time), thousands; steps timed per "
           "side in brackets. *core / torch*: the core against the fastest torch side of the row. "
           "*×B=1*: the core's rate against its own at B = 1.")
    targets, first_loss_rows = [], []
    for name in names:
        rows, base = [], None
        for B in args.streams:
            c, H, res = cells[name, B]
            cps = {k: B * c.seq / v.median for k, v in res.items()}
            base = base if base is not None else (cps["core"] if B == 1 else None)
            best_torch = max((cps[k] for k in torch_names), default=None)
            ratio = None if best_torch is None else cps["core"] / best_torch
            rows.append([B, *(f"{fmt_cps(cps[k])} ({len(res[k].times)})" for k in side_names),
                         "—" if ratio is None else f"**{ratio:.1f}×**",
                         "—" if base is None else f"{cps['core'] / base:.2f}×"])
            if ratio is not None:
                goal = 3.0 if B <= 4 else 1.0
                targets.append((f"{name} B={B}: core ≥ {goal:g}× the fastest torch side",
                                f"{ratio:.2f}×", ratio >= goal))
            if name == "H512" and B == 64 and base is not None:
                targets.append(("H512: B=64 ≥ 6× the characters per second of B=1 (core)",
                                f"{cps['core'] / base:.2f}×", cps["core"] / base >= 6.0))
            first = {k: v.losses[0] for k, v in res.items()}
            worst = max(rel_diff(first[k], first["reference"]) for k in side_names)
            first_loss_rows.append([name, B, f"{first['reference']:.10g}", f"{worst:.1e}",
                                    verdict(worst <= 1e-9)])
        c = cells[name, args.streams[0]][0]
        r.para(f"### {name}: V={c.V}, H={CONFIGS[name][1]}, T={c.seq} ({c.source})")
        r.table(["B", *side_names, "core / torch", "core ×B=1"], rows)
    r.para("Same work: the first loss of every side (same initial parameters, same first chunk) "
           "against the reference's.")
    r.table(["config", "B", "first loss (reference)", "max rel. diff, all sides", "≤ 1e-9"],
            first_loss_rows)
    r.targets("### Targets of issue 9", targets)
    r.finish(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
