#!/usr/bin/env python
"""Optional benchmark: µs per training step of the core, the numpy reference and the same algorithm in PyTorch (eager, 1 and N threads, and torch.compile), SMALL and LARGE."""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness import (THREAD_POOL_HEADERS, Parser, Report, fmt_us, load_average, load_peer, median,
                     missing, perf, progress, rel_diff, split, thread_pools, time_sides,
                     torch_threads)

torch = load_peer("torch")      # before charrnn_ext, as the README's figures were measured (load_peer)

from bench_data import DataPass, load_corpus  # noqa: E402
from charrnn_ext.core.spec import init_params  # noqa: E402
from peers import (LEARNING_RATE, Chunk, Chunks, CoreSide, RefSide, TorchSide,  # noqa: E402
                   compiled_step_fns)

FULL = dict(steps=2000, large_steps=200, blocks=40, large_blocks=20, compile=True)
QUICK = dict(steps=100, large_steps=10, blocks=5, large_blocks=5, compile=False)
SIZES = dict(steps="SMALL steps per side", large_steps="LARGE steps per side",
             blocks="interleaved SMALL blocks", large_blocks="interleaved LARGE blocks",
             compile="also time the step under torch.compile")
WARMUP = {"SMALL": 10, "LARGE": 2}   # untimed steps per side on a throwaway copy
EPILOG = """\
  python benchmarks/bench_torch.py               # full run: ~1.5 min (cold torch.compile cache)
  python benchmarks/bench_torch.py --quick       # smoke run, a few seconds, no torch.compile
  python benchmarks/bench_torch.py --steps 500 --large-steps 50 --no-compile"""


def compile_probe_main(spec: str) -> int:
    """Child process (--compile-probe V,H,T): compile the step for these sizes and run it
    twice. It fills torch's on-disk compile cache, so the benchmark process then compiles
    the same graphs quickly; the parent kills it if it takes too long."""
    V, H, T = (int(v) for v in spec.split(","))
    side = TorchSide(torch, init_params(V, H, 0), fns=compiled_step_fns(torch))
    rng = np.random.default_rng(0)
    for _ in range(2):
        side.step(Chunk(rng.integers(0, V, T), rng.integers(0, V, T), False, torch=torch))
    print("compiled")
    return 0


def run_compile_probe(V: int, H: int, T: int, timeout: float):
    """(ok, reason): run compile_probe_main in a child process of its own session, killed
    (with its compile workers) after ``timeout`` seconds."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-probe", f"{V},{H},{T}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)     # the probe's own process group only
        proc.communicate()
        return False, f"did not compile within {timeout:.0f} s"
    if proc.returncode != 0 or "compiled" not in out:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        return False, f"failed (exit {proc.returncode}): {lines[-1][:200] if lines else 'no message'}"
    return True, ""


def parse_args(argv=None):
    p = Parser(__doc__, FULL, QUICK, SIZES, only=("SMALL", "LARGE"), epilog=EPILOG)
    p.add_argument("--compile-timeout", type=float, default=120.0,
                   help="seconds allowed for compiling with torch.compile, both configurations "
                        "together (120); compilation runs first in a child process, killed when "
                        "the time is up, then here from torch's compile cache")
    p.add_argument("--compile-probe", metavar="V,H,T", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 3 or args.large_steps < 3:
        p.error("--steps and --large-steps must be at least 3 (the first 3 losses are compared)")
    return args


class Compile:
    """torch.compile's side of each configuration: a probe process first (within what is
    left of --compile-timeout), then the side here, from torch's compile cache."""

    def __init__(self, torch, args):
        self.torch, self.on, self.budget = torch, args.compile, args.compile_timeout
        self.fns = compiled_step_fns(torch) if self.on else None
        self.times, self.notes = {}, {}

    def prepare(self, name, V, H, T) -> bool:
        """Whether the compiled side can run for this configuration."""
        if not self.on:
            return False
        if self.budget <= 0:
            self.notes[name] = "skipped: no compile time left"
        else:
            progress(f"{name}: torch.compile in a probe process (at most {self.budget:.0f} s)")
            t0 = perf()
            ok, why = run_compile_probe(V, H, T, self.budget)
            dt = perf() - t0
            self.budget -= dt
            if ok:
                self.times[name] = [dt, None]
                return True
            self.notes[name] = f"skipped: {why}"
        progress(f"{name}: torch.compile {self.notes[name]}")
        return False

    def note(self, results) -> str:
        if not self.on:
            return "torch.compile: not run (`--no-compile`, or `--quick` without `--compile`)."
        notes = []
        for name in results:
            if name in self.times:
                probe, here = self.times[name]
                notes.append(f"{name} compiled in {probe:.1f} s in the probe process, then {here:.1f} s "
                             f"here (compile cache) + first step")
            else:
                notes.append(f"{name} {self.notes.get(name, 'skipped')}")
        return ("torch.compile (`fullgraph=True, dynamic=False`, forward + AOTAutograd backward and the "
                "update; compile time is not in the step time): " + "; ".join(notes) + ".")


def measure(torch, name, args, comp):
    """(corpus, steps, {side: Record}) of one configuration."""
    c = load_corpus(name, args.data_dir)
    V, H, T = c.V, c.hidden, c.seq
    steps = args.steps if name == "SMALL" else args.large_steps
    n_blocks = max(1, min(steps, args.blocks if name == "SMALL" else args.large_blocks))
    progress(f"{name}: V={V}, H={H}, T={T}, {steps} steps per side in {n_blocks} blocks")
    init = init_params(V, H, args.seed)
    chunks = Chunks(DataPass(c.ids, T), torch, steps)
    n = torch.get_num_threads()
    compile_key = f"torch.compile ({n} threads)"
    makers = {"core": (lambda: CoreSide(init), contextlib.nullcontext),
              "reference": (lambda: RefSide(init), contextlib.nullcontext),
              f"torch ({n} threads)": (lambda: TorchSide(torch, init), lambda: torch_threads(torch, n)),
              "torch (1 thread)": (lambda: TorchSide(torch, init), lambda: torch_threads(torch, 1))}
    if comp.prepare(name, V, H, T):
        makers[compile_key] = (lambda: TorchSide(torch, init, fns=comp.fns),
                               lambda: torch_threads(torch, n))
    # warm-up on throwaway copies (lazy initialisation, thread pools, compilation)
    for key, (make, ctx) in list(makers.items()):
        side, t0 = make(), perf()
        try:
            with ctx():
                for ch in chunks[:min(WARMUP[name], steps)]:
                    side.step(ch)
                    if key == compile_key and comp.times[name][1] is None:
                        comp.times[name][1] = perf() - t0   # compile (cached) + 1 step
        except Exception as exc:   # torch.compile only: anything else is a real error
            if key != compile_key:
                raise
            msg = str(exc).strip().splitlines()
            comp.notes[name] = f"skipped: {type(exc).__name__}: {msg[0][:200] if msg else ''}"
            progress(f"{name}: torch.compile {comp.notes[name]}")
            del makers[key]
            comp.times.pop(name, None)
    recs = time_sides({k: (make(), ctx) for k, (make, ctx) in makers.items()}, chunks,
                      split(steps, n_blocks))
    progress(f"{name}: done (load average {load_average()})")
    return c, steps, recs


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compile_probe:
        return compile_probe_main(args.compile_probe)
    if torch is None:
        print("bench_torch: " + missing("torch", "nothing to compare against"))
        return 0
    r = Report("charrnn_ext vs PyTorch: training step", args, [
        ["torch", f"{torch.__version__} (MKL: {torch.backends.mkl.is_available()}, "
                  f"OpenMP: {torch.backends.openmp.is_available()})"],
        ["torch threads (default: intra-op / inter-op)",
         f"{torch.get_num_threads()} / {torch.get_num_interop_threads()}"]])
    r.para("Thread pools at start (`threadpoolctl`): the reference's `np.dot` runs on numpy's BLAS; "
           "the core's `dgemm` on scipy's (charrnn_ext sets it to 1 thread on import); torch uses its "
           "own MKL/OpenMP, set with `torch.set_num_threads`.")
    r.table(THREAD_POOL_HEADERS, thread_pools())
    comp = Compile(torch, args)
    results = {name: measure(torch, name, args, comp) for name in args.only or ["SMALL", "LARGE"]}

    r.para("## Median µs per training step")
    r.para(f"Each side trains its own copy of `init_params(V, H, seed={args.seed})` over the same chunks "
           f"(the seed's data pass, learning rate {LEARNING_RATE}), in interleaved blocks whose order "
           f"rotates, after {WARMUP['SMALL']} (SMALL) / {WARMUP['LARGE']} (LARGE) untimed warm-up steps "
           f"on a throwaway copy. Timed with `time.perf_counter` around the step call only; the "
           f"reference's Python lists and torch's int64 index tensors are built beforehand. "
           f"Ratios: side / core, so above 1× means the core is faster.")
    torch_keys = [k for k in next(iter(results.values()))[2] if k.startswith("torch")]
    rows, cpu_rows, check_rows, slower = [], [], [], []
    for name, (c, steps, recs) in results.items():
        med = {k: v.median for k, v in recs.items()}
        tc = med["core"]
        rows.append([name, c.source, c.V, c.hidden, c.seq, steps, f"**{fmt_us(tc)}**",
                     fmt_us(med["reference"])]
                    + [fmt_us(med[k]) if k in med else "—" for k in torch_keys]
                    + [f"**{med['reference'] / tc:.1f}×**"]
                    + [f"**{med[k] / tc:.2f}×**" if k in med else "—" for k in torch_keys])
        slower += [f"{name}: the core ({fmt_us(tc)} µs) is SLOWER than {k} ({fmt_us(med[k])} µs)"
                   for k in med if k != "core" and med[k] < tc]
        cpu_rows.append([name] + [f"{fmt_us(median(recs[k].cpu))} ({recs[k].share():.2f})"
                                  if k in recs else "—" for k in ["core", "reference"] + torch_keys])
        ref3 = recs["reference"].losses[:3]
        diffs = {k: max(rel_diff(a, b) for a, b in zip(v.losses[:3], ref3))
                 for k, v in recs.items() if k != "reference"}
        tail = max(1, steps // 10)
        check_rows.append([name, ", ".join(f"{x:.12g}" for x in ref3)]
                          + [f"{diffs[k]:.1e}" if k in diffs else "—" for k in ["core"] + torch_keys]
                          + ["**yes**" if max(diffs.values()) <= 1e-9 else "**NO**",
                             " / ".join(f"{np.mean(recs[k].losses[-tail:]):.3f}" if k in recs else "—"
                                        for k in ["core", "reference"] + torch_keys)])
    r.table(["config", "text", "V", "H", "T", "steps", "core", "reference"] + torch_keys
            + ["reference / core"] + [f"{k} / core" for k in torch_keys], rows)
    r.para("**The core is slower than another side here:** " + "; ".join(slower) + "." if slower
           else "The core is the fastest side in every configuration of this run.")
    r.para(comp.note(results))
    r.para("Process CPU µs per step (`time.process_time`, includes worker threads) and, in brackets, "
           "the CPU share (CPU seconds / wall seconds of the timed steps): about 1 for one busy thread, "
           "above 1 when worker threads ran or spun, below 1 when other processes took the CPU.")
    r.table(["config", "core", "reference"] + torch_keys, cpu_rows)
    r.para("Same work: the reference's first 3 losses, and each side's largest relative difference "
           "from them (must be ≤ 1e-9; float64 everywhere). Later steps drift apart legitimately "
           "(training is chaotic: on LARGE, rounding differences of 1e-13 grow about tenfold per step "
           "from step ~4, and the separated trajectories can differ by tens of percent in loss for "
           "hundreds of steps); the mean loss of the last 10% of steps is shown for each side "
           "(core / reference / torch sides) for information only.")
    r.table(["config", "first 3 losses (reference)"]
            + [f"max rel. diff: {k}" for k in ["core"] + torch_keys]
            + ["all ≤ 1e-9", "mean loss, last 10%"], check_rows)
    r.finish(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
