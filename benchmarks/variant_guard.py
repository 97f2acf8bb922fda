#!/usr/bin/env python
"""CI's speed guard (issue 29): every core variant this CPU runs against the plain baseline build, failing when one is more than 10% slower on any configuration.

A variant (x86_64_v3: AVX2 + FMA, x86_64_v4: AVX-512) exists to be faster than
the portable baseline build of the same source; a variant slower than it is a
regression, whatever the absolute figures. Each variant runs in its own worker
process (CHARRNN_EXT_CORE=<variant>), started once and kept; the parent asks
the workers in turn to time `steps` training steps of one configuration, in
rounds whose order rotates (harness.interleave), so that a burst of other work
on a noisy machine hits every variant alike. A waiting worker blocks on its
pipe and uses no CPU. The figure of a round is the worker's process CPU time
for its steps (one core thread, one BLAS thread: CPU time is then the step's
own time, not what other processes took from it); the verdict is the median
over rounds of the variant's time / the baseline's time in the same round. A
configuration over the limit is measured again in fresh worker processes (a
process's memory layout alone can move a small step's time by ~10%) and fails
only if both measurements are over the limit.

Configurations: min-char-rnn's step (tanh, B 1, H 100, float64) and the
batched step (B 32, H 256, one-hot inputs, Adagrad) of the tanh RNN and the
LSTM in float64 and float32; V 65, T 25.

  python benchmarks/variant_guard.py            # ~1-2 minutes; exit 1 when a variant is too slow
  python benchmarks/variant_guard.py --rounds 15 --limit 1.05
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from harness import cpu_model, interleave, median, table

V, T, LR = 65, 25, 0.1
CONFIGS = {   # name: (cell, B, H, dtype)
    "tanh B 1 H 100 float64": ("rnn", 1, 100, "float64"),
    "tanh B 32 H 256 float64": ("rnn", 32, 256, "float64"),
    "tanh B 32 H 256 float32": ("rnn", 32, 256, "float32"),
    "lstm B 32 H 256 float64": ("lstm", 32, 256, "float64"),
    "lstm B 32 H 256 float32": ("lstm", 32, 256, "float32"),
}
SIMD = ("AVX512F", "AVX2", "FMA3", "NEON", "ASIMD")   # the flags the table names


# -- the worker: one process per variant ---------------------------------------------

class Job:
    """One configuration's model and chunks in a worker; step() trains on the next chunk."""

    def __init__(self, config: str):
        from charrnn_ext import CharRNN
        cell, B, H, dtype = CONFIGS[config]
        self.model = CharRNN(V, H, 0, cell=cell, dtype=dtype)
        rng = np.random.default_rng(1)
        shape = (T,) if B == 1 else (B, T)
        self.chunks = [(rng.integers(0, V, shape), rng.integers(0, V, shape)) for _ in range(8)]
        self.state, self.i = None, 0

    def step(self):
        x, y = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        _, self.state = self.model.train_step(x, y, self.state, LR)


def worker(threads: int) -> int:
    """Serve requests {"config", "steps"} on stdin with {"cpu", "wall"} seconds on stdout."""
    import charrnn_ext
    from charrnn_ext.core import _dispatch
    charrnn_ext.set_num_threads(threads)
    out = sys.stdout
    out.write(json.dumps({"variant": _dispatch.variant, "build": _dispatch.core_build()}) + "\n")
    out.flush()
    jobs = {}
    for line in sys.stdin:
        ask = json.loads(line)
        job = jobs.get(ask["config"]) or jobs.setdefault(ask["config"], Job(ask["config"]))
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(ask["steps"]):
            job.step()
        out.write(json.dumps({"cpu": time.process_time() - c0,
                              "wall": time.perf_counter() - w0}) + "\n")
        out.flush()
    return 0


class Worker:
    """The parent's handle on a worker process running the core variant ``name``."""

    def __init__(self, name: str, threads: int):
        env = dict(os.environ, CHARRNN_EXT_CORE=name)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        hello = self._read()
        if hello["variant"] != name:
            raise SystemExit(f"variant_guard: the worker for {name} loaded {hello['variant']}")
        self.name, self.build = name, hello["build"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"variant_guard: a worker exited (code {self.proc.wait()})")
        return json.loads(line)

    def run(self, config: str, steps: int) -> float:
        """CPU seconds per step of ``steps`` steps."""
        self.proc.stdin.write(json.dumps({"config": config, "steps": steps}) + "\n")
        self.proc.stdin.flush()
        return self._read()["cpu"] / steps

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


# -- the parent ------------------------------------------------------------------------

def start_workers(wanted: list, threads: int) -> dict:
    """{label: Worker}: the baseline's and each wanted variant's (a second baseline
    process is labelled "baseline again")."""
    workers = {"baseline": Worker("baseline", threads)}
    for name in wanted:
        workers[name if name != "baseline" else "baseline again"] = Worker(name, threads)
    return workers


def close(workers: dict) -> None:
    for w in workers.values():
        w.close()


def measure(workers: dict, config: str, rounds: int, seconds: float) -> tuple:
    """(steps per round, {label: [seconds per step, one per round]}): warm-up, then
    ``rounds`` interleaved rounds of every worker, who goes first rotating."""
    for w in workers.values():                    # warm-up: allocations, caches, thread choice
        w.run(config, 2)
    steps = max(1, min(1000, round(seconds / workers["baseline"].run(config, 2))))
    times = {label: [] for label in workers}
    for _, label in interleave(workers, rounds):
        times[label].append(workers[label].run(config, steps))
    return steps, times


def ratio(times: dict, label: str) -> float:
    """The median over rounds of the variant's time / the baseline's in the same round."""
    return median([v / b for v, b in zip(times[label], times["baseline"])])


def cpu_line(features: dict, variants: list, skipped: list) -> str:
    flags = ", ".join(f"{f} {'yes' if features.get(f) else 'no'}" for f in SIMD
                      if f in features or f in ("AVX512F", "AVX2"))
    out = f"CPU: {cpu_model()} ({os.uname().machine}; {flags}); variants run: {', '.join(variants)}"
    return out + (f"; not runnable here: {', '.join(skipped)}" if skipped else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds per configuration")
    p.add_argument("--seconds", type=float, default=0.25,
                   help="about how long the baseline's steps of one round take")
    p.add_argument("--limit", type=float, default=1.10,
                   help="fail when a variant's time / the baseline's exceeds this")
    p.add_argument("--threads", type=int, default=1, help="the core's threads in each worker")
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--variants", nargs="+", metavar="NAME",
                   help="the variants to compare with the baseline (default: every other one "
                        "this CPU runs); 'baseline' here times a second baseline process, "
                        "which shows the noise floor: its ratio should be about 1.00")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.threads)

    from charrnn_ext.core import _dispatch
    variants = _dispatch.available_variants()          # best first, "baseline" last
    skipped = [v for v in _dispatch._REQUIREMENTS if v not in variants]
    features = _dispatch._cpu_features()
    print(cpu_line(features, variants, skipped), flush=True)
    wanted = args.variants or [v for v in variants if v != "baseline"]
    for name in wanted:
        if name not in variants:
            p.error(f"variant {name} does not run here (runnable: {', '.join(variants)})")
    if not wanted:
        print("variant_guard: only the baseline build runs here; nothing to compare")
        return 0
    started = time.perf_counter()
    workers = start_workers(wanted, args.threads)
    print("builds: " + ", ".join(f"{label} = {w.build}" for label, w in workers.items()),
          flush=True)
    names = [label for label in workers if label != "baseline"]
    rows, failed = [], []
    try:
        for config in args.configs:
            steps, times = measure(workers, config, args.rounds, args.seconds)
            verdicts = {n: ratio(times, n) for n in names}
            note = ""
            if any(r > args.limit for r in verdicts.values()):
                # a noisy moment, an unlucky process (memory layout) or a real regression:
                # fresh processes, as many rounds again; a variant fails if both say so
                close(workers)
                workers = start_workers(wanted, args.threads)
                steps, again = measure(workers, config, args.rounds, args.seconds)
                first = verdicts
                verdicts = {n: min(first[n], ratio(again, n)) for n in names}
                times = {label: times[label] + again[label] for label in times}
                note = " (retried: " + ", ".join(f"{first[n]:.2f}x then {ratio(again, n):.2f}x"
                                                  for n in names) + ")"
            bad = [n for n, r in verdicts.items() if r > args.limit]
            failed += [(config, n, verdicts[n]) for n in bad]
            rows.append([config, steps, f"{median(times['baseline']) * 1e3:.3f}"]
                        + [f"{median(times[n]) * 1e3:.3f} ({verdicts[n]:.2f}x)" for n in names]
                        + [("**FAIL**" if bad else "ok") + note])
            print(f"[variant_guard] {config}: " + ", ".join(
                f"{n} {verdicts[n]:.2f}x" for n in names) + note, file=sys.stderr, flush=True)
    finally:
        close(workers)
    print()
    print(table(["config", "steps/round", "baseline ms/step"]
                + [f"{n} ms/step (x baseline)" for n in names] + ["verdict"], rows))
    print()
    print(f"ms of process CPU per training step (V {V}, T {T}, {args.threads} core thread(s)), "
          f"median over {args.rounds} interleaved rounds; (x baseline): the median over rounds "
          f"of the variant's time / the baseline's in the same round; over the limit "
          f"({args.limit:.2f}x), the configuration is measured again in fresh processes and "
          f"the lower of the two ratios is the verdict. {time.perf_counter() - started:.0f} s.")
    for config, name, r in failed:
        print(f"FAIL: {name} takes {r:.2f}x the baseline's time on {config} "
              f"(limit {args.limit:.2f}x, in two measurements)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
