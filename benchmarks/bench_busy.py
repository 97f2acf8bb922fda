#!/usr/bin/env python
"""Busy machines (issue 10): steps/s of the core's default threads against 1 thread (CharRNN.train), quiet and while processes started here compete for the CPUs."""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_data import generated_chinese, load_corpus
from charrnn_ext import get_num_threads
from charrnn_ext.core.spec import init_params
from harness import (Parser, Report, core_threads, cpu_time, interleave, load_average, median,
                     perf, progress, usable_cpus, verdict)
from peers import CoreTrainSide

CONDITIONS = ("quiet", "spin", "blas", "train", "cli")
CORPORA = ("LARGE", "SMALL")
CALL_STEPS = {"LARGE": 20, "SMALL": 500}        # steps per model.train call in a round
WARMUP_STEPS = {"LARGE": 5, "SMALL": 100}       # untimed first call of each side (losses compared)
ISSUE_ITERS = 5000                              # "5,000 iterations took 7.0 s / 77 s"
LOADED_TARGET = 0.8                             # default / 1 thread under load
QUIET_TARGET = 1.3                              # default / 1 thread, quiet, LARGE (2-thread gain kept)
SMALL_QUIET_TARGET = 0.95                       # SMALL: no loss (its 2-thread gain depends on the cores)
COLLAPSE = 0.5                                  # default below half the 1-thread speed
FULL = dict(seconds=1.0, rounds=7, cli_iters=1500, cli_pairs=3)
QUICK = dict(seconds=0.25, rounds=3, cli_iters=200, cli_pairs=1)
SIZES = dict(seconds="seconds per round and side", rounds="interleaved rounds per side",
             cli_iters="--iters of each CLI run", cli_pairs="CLI runs per side")
DESCRIPTION = {
    "quiet": "nothing of ours beside the benchmark",
    "spin": "{n} busy-loop processes (pure Python spinning, 'spawn')",
    "blas": "1 process: numpy 1000×1000 matmuls on {n} OpenBLAS threads + a 1-thread tanh between them",
    "train": "1 process: a second charrnn_ext training (LARGE, core on its default threads)",
    "cli": "`python -m charrnn_ext.train` (CLI defaults: H 100, T 25) under `spin`",
}
EPILOG = """\
The sides train their own CharRNN(V, H, seed=0) through CharRNN.train (the GIL released)
on LARGE (its output layer on the core's OpenMP threads) and SMALL, in interleaved rounds
of calls (LARGE 20, SMALL 500 steps a call) until --seconds have passed. Competitors start
before a condition's rounds and stop after them, always (also on Ctrl-C, SIGTERM or an
error), and stop themselves after a deadline and when this process is gone.

  python benchmarks/bench_busy.py                  # full run, about 3-5 minutes on 2 cores
  python benchmarks/bench_busy.py --quick          # smoke run, under a minute
  python benchmarks/bench_busy.py --only LARGE --conditions quiet spin --seconds 2
  python benchmarks/bench_busy.py --own-session    # competitors in a session of their own"""


# ---------------------------------------------------------------------------
# competitors: module-level functions, run in 'spawn' children
# ---------------------------------------------------------------------------

def _child_should_stop(stop, deadline: float, parent: int) -> bool:
    return stop.is_set() or time.time() > deadline or os.getppid() != parent


def _child_main(target, own_session, *args):
    """A competitor's entry point: with own_session, first a new session (with the
    kernel's autogroup scheduling, its own CPU group, like a command started from
    another terminal)."""
    if own_session:
        os.setsid()
    target(*args)


def _spin_child(ready, stop, deadline, parent, counter, info):
    """A pure-Python busy loop on one CPU."""
    try:
        ready.set()
        n = 0
        while not _child_should_stop(stop, deadline, parent):
            for _ in range(20000):
                n += 1
        counter.value = n
    except KeyboardInterrupt:
        pass


def _blas_child(ready, stop, deadline, parent, counter, info, threads):
    """Large numpy matmuls on `threads` OpenBLAS threads, a 1-thread tanh between them
    (while the BLAS threads spin)."""
    try:
        try:
            from threadpoolctl import threadpool_info, threadpool_limits
            threadpool_limits(threads, user_api="blas")
            blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
            info.value = blas[0]["num_threads"] if blas else -1
        except ImportError:
            info.value = -1       # OPENBLAS_NUM_THREADS was set for this child
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((1000, 1000)), rng.standard_normal((1000, 1000))
        c = np.empty((1000, 1000))
        ready.set()
        while not _child_should_stop(stop, deadline, parent):
            np.matmul(a, b, out=c)
            np.tanh(c, out=c)
            counter.value += 1
    except KeyboardInterrupt:
        pass


def _train_child(ready, stop, deadline, parent, counter, info, ids, V, H, T):
    """A second training on the core's default threads (LARGE), 20 steps a call."""
    try:
        import charrnn_ext as ce
        info.value = ce.get_num_threads()
        model = ce.CharRNN(V, H, seed=1)
        h, pos = None, 0
        model.train(ids, 2, T)                 # warm up before saying ready
        ready.set()
        while not _child_should_stop(stop, deadline, parent):
            losses, h, pos = model.train(ids, CALL_STEPS["LARGE"], T, hprev=h, position=pos)
            counter.value += len(losses)
    except KeyboardInterrupt:
        pass


def _proc_cpu_seconds(pid: int):
    """utime + stime of a process (all its threads) from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


@contextlib.contextmanager
def _env(**values):
    """os.environ changed for the duration (a 'spawn' child inherits it at start)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Competitors:
    """The competing processes of a condition: started (and running) on enter,
    stopped on exit, whatever happens in between. Each child also stops itself at
    `deadline` and when this process is gone."""

    def __init__(self, kind: str, n_cpus: int, max_seconds: float, large=None,
                 own_session=False):
        self.kind, self.n, self.max_seconds, self.large = kind, n_cpus, max_seconds, large
        self.own_session = own_session
        self.ctx = mp.get_context("spawn")
        self.procs, self.counters, self.info = [], [], None
        self.stop = self.ctx.Event()
        self.t0 = self.cpu0 = None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc):
        self._stop()
        return False

    def _start(self):
        ctx, deadline, parent = self.ctx, time.time() + self.max_seconds, os.getpid()
        self.info = ctx.Value("q", 0)
        if self.kind == "spin":
            specs = [(_spin_child, ()) for _ in range(self.n)]
        elif self.kind == "blas":
            specs = [(_blas_child, (self.n,))]
        elif self.kind == "train":
            c = self.large
            specs = [(_train_child, (c.ids, c.V, c.hidden, c.seq))]
        else:
            raise ValueError(self.kind)
        readies = []
        env = {"OPENBLAS_NUM_THREADS": str(self.n)} if self.kind == "blas" else {}
        with _env(**env):
            for target, extra in specs:
                ready, counter = ctx.Event(), ctx.Value("q", 0)
                p = ctx.Process(target=_child_main, daemon=True,
                                args=(target, self.own_session, ready, self.stop, deadline,
                                      parent, counter, self.info) + extra)
                p.start()
                self.procs.append(p)
                self.counters.append(counter)
                readies.append(ready)
        t_wait = perf()
        for ready, p in zip(readies, self.procs):
            while not ready.wait(0.1):
                if not p.is_alive():
                    raise RuntimeError(f"competitor {self.kind} exited early (status {p.exitcode})")
                if perf() - t_wait > 60:
                    raise RuntimeError(f"competitor {self.kind} not ready after 60 s")
        time.sleep(0.5)                        # let them take the CPUs
        self.t0 = perf()
        self.cpu0 = self._cpu()
        self.count0 = sum(c.value for c in self.counters)

    def _cpu(self):
        vals = [_proc_cpu_seconds(p.pid) for p in self.procs]
        return None if any(v is None for v in vals) else sum(vals)

    def usage(self) -> dict:
        """CPUs the competitors used since they were ready (CPU seconds / wall
        seconds), and their work counter per second (training steps for 'train')."""
        wall = perf() - self.t0
        cpu1 = self._cpu()
        cores = None if cpu1 is None or self.cpu0 is None else (cpu1 - self.cpu0) / wall
        rate = (sum(c.value for c in self.counters) - self.count0) / wall
        return {"cores": cores, "rate": rate, "info": self.info.value}

    def _stop(self):
        self.stop.set()
        for p in self.procs:
            p.join(timeout=3)
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=3)
            if p.is_alive():
                p.kill()
                p.join(timeout=3)


# ---------------------------------------------------------------------------
# the measurement
# ---------------------------------------------------------------------------

class Side(CoreTrainSide):
    """One model, CharRNN(V, H, seed=0), trained through CharRNN.train on ``threads``
    threads, and what its rounds measured."""

    def __init__(self, corpus, threads):
        super().__init__(init_params(corpus.V, corpus.hidden, 0), corpus.ids, corpus.seq)
        self.name, self.threads = corpus.name, threads
        self.rates, self.wall, self.cpu, self.steps = [], 0.0, 0.0, 0

    def round(self, seconds):
        """Calls of CALL_STEPS steps until ``seconds`` have passed: one rate."""
        steps, k = 0, CALL_STEPS[self.name]
        c0, t0 = cpu_time(), perf()
        while True:
            steps += len(self.call(k))
            dt = perf() - t0
            if dt >= seconds:
                break
        self.cpu += cpu_time() - c0
        self.wall += dt
        self.steps += steps
        self.rates.append(steps / dt)


def measure_corpus(corpus, args, default_threads):
    """Interleaved rounds of both sides (order rotating); returns the sides and
    whether their first losses agreed bit for bit."""
    sides = {"default": Side(corpus, default_threads), "1 thread": Side(corpus, 1)}
    warm = {}
    for name, side in sides.items():        # untimed warm-up, the same work on both
        with core_threads(side.threads):
            warm[name] = side.call(WARMUP_STEPS[corpus.name])
    for _, name in interleave(sides, args.rounds):
        with core_threads(sides[name].threads):
            sides[name].round(args.seconds)
    return sides, bool(np.array_equal(warm["default"], warm["1 thread"]))


def run_cli(text_path: Path, threads, iters: int, workdir: Path, timeout: float):
    """One `python -m charrnn_ext.train` run: (steps/s from its speed line, wall s)."""
    ckpt = workdir / f"cli-{threads or 'default'}-{time.monotonic_ns()}.npz"
    cmd = [sys.executable, "-m", "charrnn_ext.train", str(text_path), "--iters", str(iters),
           "--checkpoint", str(ckpt), "--checkpoint-every", str(10 * iters),
           "--sample-every", "1000000", "--eval-every", "1000000", "--val-fraction", "0",
           "--no-keep-best"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    t0 = perf()
    try:
        out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, perf() - t0, "timeout"
    wall = perf() - t0
    m = re.search(r"speed: [\d,]+ steps in [\d.,]+ s, ([\d.,]+) steps/s", out.stdout + out.stderr)
    if out.returncode != 0 or m is None:
        return None, wall, f"exit {out.returncode}: {(out.stderr or out.stdout).strip()[-200:]}"
    return float(m.group(1).replace(",", "")), wall, ""


def measure_cli(args, data_dir: Path, workdir: Path):
    text_path = data_dir / "lunyu_shijing.txt"
    source = f"`{text_path.name}`"
    if not text_path.is_file():
        text_path = workdir / "generated_chinese.txt"
        text_path.write_text(generated_chinese(), encoding="utf-8")
        source = "generated (lunyu_shijing.txt not found)"
    res = {"default": [], "1 thread": []}
    errors = []
    sides = [("default", None), ("1 thread", 1)]
    for r in range(args.cli_pairs):
        for name, threads in sides[r % 2:] + sides[:r % 2]:
            progress(f"  cli: {name}, {args.cli_iters} iterations")
            rate, wall, err = run_cli(text_path, threads, args.cli_iters, workdir, args.cli_timeout)
            res[name].append((rate, wall))
            if err:
                errors.append(f"{name}: {err}")
    return res, source, errors


# ---------------------------------------------------------------------------

def parse_args(argv=None):
    p = Parser(__doc__, FULL, QUICK, SIZES, only=CORPORA, seed=False, epilog=EPILOG)
    p.add_argument("--conditions", nargs="+", choices=CONDITIONS,
                   help=f"conditions to run, in this order ({' '.join(CONDITIONS)})")
    p.add_argument("--cli-timeout", type=float, default=300.0,
                   help="seconds after which a CLI run is killed (300)")
    p.add_argument("--own-session", action="store_true",
                   help="competitors start a new session (os.setsid): with the kernel's autogroup "
                        "scheduling they then get their own CPU group, as commands started from "
                        "another terminal do (default: same session as this process)")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1 or args.cli_iters < 1 or args.cli_pairs < 1:
        p.error("--seconds, --rounds, --cli-iters and --cli-pairs must be positive")
    return args


def fmt_rate(x) -> str:
    return "—" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:,.1f}")


def fmt_range(xs) -> str:
    return f"{fmt_rate(min(xs))}–{fmt_rate(max(xs))}"


def autogroup() -> str:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "?"


def _sigterm(signum, frame):
    raise SystemExit(143)                   # run the finally blocks: competitors stopped


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    data_dir = args.data_dir
    conditions = args.conditions or list(CONDITIONS)
    corpora_names = args.only or list(CORPORA)
    n_cpus = usable_cpus()
    default_threads = get_num_threads()
    try:
        import threadpoolctl
        tpc = threadpoolctl.__version__
    except ImportError:
        tpc = "not installed (the blas competitor's threads set by OPENBLAS_NUM_THREADS)"
    r = Report("charrnn_ext on a busy machine: default threads against 1 thread", args, [
        ["threadpoolctl", tpc],
        ["scheduler autogroup (/proc/sys/kernel/sched_autogroup_enabled)", autogroup()],
        ["competitors' session", "their own (--own-session)" if args.own_session else
                                 "this process's (with autogroup: one CPU group with it)"],
        ["rounds", f"{args.rounds} per side and condition, ≥ {args.seconds:g} s each "
                   f"(calls of {CALL_STEPS['LARGE']} LARGE / {CALL_STEPS['SMALL']} SMALL steps)"],
    ])

    corpora = {}
    for name in dict.fromkeys(corpora_names + (["LARGE"] if "train" in conditions else [])):
        corpora[name] = load_corpus(name, data_dir)

    # a generous bound on one condition, for the competitors' own deadline
    per_condition = (len(corpora_names) * args.rounds * 2 * args.seconds * 15 + 120)
    cli_bound = 2 * args.cli_pairs * args.cli_timeout + 120
    results, usage, loads, cli, notes = {}, {}, {}, None, []

    try:
        with tempfile.TemporaryDirectory(prefix="bench_busy-") as tmp:
            for cond in conditions:
                progress(f"condition {cond}: {DESCRIPTION[cond].format(n=n_cpus)}")
                kind = "spin" if cond == "cli" else (None if cond == "quiet" else cond)
                bound = cli_bound if cond == "cli" else per_condition
                comp = (Competitors(kind, n_cpus, bound, corpora.get("LARGE"), args.own_session)
                        if kind else contextlib.nullcontext())
                try:
                    with comp:
                        if cond == "cli":
                            cli = measure_cli(args, data_dir, Path(tmp))
                        else:
                            for name in corpora_names:
                                c = corpora[name]
                                progress(f"  {name}: V={c.V} H={c.hidden} T={c.seq}")
                                results[cond, name] = measure_corpus(c, args, default_threads)
                        loads[cond] = load_average()
                        if kind:
                            usage[cond] = comp.usage()
                except RuntimeError as e:          # a competitor failed to start
                    notes.append(f"condition {cond} skipped: {e}")
                    progress(notes[-1])
    except KeyboardInterrupt:
        progress("interrupted: competitors stopped; reporting what was measured")
        notes.append("interrupted (Ctrl-C): the tables hold what was measured before")

    # -- conditions ---------------------------------------------------------------
    r.para("## Conditions")
    r.para("Competitors start (and are running) before a condition's rounds and stop after them. "
           "*competitor CPUs*: their CPU time / wall time while they ran (from /proc); "
           "*load average*: 1/5/15 min at the end of the condition (the 1-minute figure lags "
           "by about a minute).")
    rows = []
    for cond in conditions:
        u = usage.get(cond)
        cores = "—" if u is None or u["cores"] is None else f"{u['cores']:.2f}"
        extra = ""
        if u is not None and cond == "train":
            extra = f"; it trained {u['rate']:,.0f} steps/s on {u['info']} core threads"
        elif u is not None and cond == "blas":
            extra = (f"; {u['rate']:,.1f} matmuls/s"
                     + (f", {u['info']} BLAS threads" if u["info"] > 0 else ""))
        rows.append([cond, DESCRIPTION[cond].format(n=n_cpus) + extra, cores,
                     loads.get(cond, "not run")])
    r.table(["condition", "competitor", "competitor CPUs", "load average at end"], rows)

    # -- steps/s ----------------------------------------------------------------
    r.para("## Training speed: `model.train`, default threads against 1 thread")
    r.para(f"Median steps/s of the rounds (min–max in brackets); *default / 1 thread* is the "
           f"ratio of the medians (target ≥ {LOADED_TARGET} under load; above 1 on a quiet "
           f"machine is the 2-thread gain); *CPU share*: process CPU time / wall time of the "
           f"side's rounds; *{ISSUE_ITERS:,} iterations*: wall seconds of the issue's run at the "
           f"median speed. *same losses*: the first {WARMUP_STEPS['LARGE']} (LARGE) / "
           f"{WARMUP_STEPS['SMALL']} (SMALL) losses of both sides identical bit for bit.")
    rows, targets = [], []
    for cond in conditions:
        for name in corpora_names:
            if (cond, name) not in results:
                continue
            sides, same = results[cond, name]
            d, o = sides["default"], sides["1 thread"]
            md, mo = median(d.rates), median(o.rates)
            ratio = md / mo
            c = corpora[name]
            rows.append([cond, f"{name} ({c.V}, {c.hidden}, {c.seq})",
                         f"**{fmt_rate(md)}** ({fmt_range(d.rates)})",
                         f"**{fmt_rate(mo)}** ({fmt_range(o.rates)})",
                         f"**{ratio:.2f}×**",
                         f"{d.cpu / d.wall:.2f} / {o.cpu / o.wall:.2f}",
                         f"{ISSUE_ITERS / md:.1f} / {ISSUE_ITERS / mo:.1f}",
                         f"{d.steps:,} / {o.steps:,}", verdict(same)])
            if cond == "quiet":
                goal = QUIET_TARGET if name == "LARGE" else SMALL_QUIET_TARGET
                what = ("> {g}× (the 2-thread gain kept)" if name == "LARGE"
                        else "≥ {g}× (no loss)").format(g=goal)
                ok = ratio > goal if name == "LARGE" else ratio >= goal
            else:
                goal, what = LOADED_TARGET, f"≥ {LOADED_TARGET}× of 1 thread"
                ok = ratio >= goal
                if ratio < COLLAPSE:
                    notes.append(f"**collapse** under `{cond}`, {name}: the default runs at "
                                 f"{ratio:.2f}× the speed of 1 thread "
                                 f"({fmt_rate(md)} against {fmt_rate(mo)} steps/s)")
            targets.append([f"{cond}, {name}: default / 1 thread {what}", f"{ratio:.2f}×",
                            verdict(ok)])
    r.table(["condition", "config (V, H, T)", "default steps/s", "1 thread steps/s",
             "default / 1 thread", "CPU share (default / 1 thr)",
             f"{ISSUE_ITERS:,} iterations, s (default / 1 thr)", "steps timed (default / 1 thr)",
             "same losses"], rows)

    # -- CLI ---------------------------------------------------------------------
    if cli is not None:
        res, source, errors = cli
        r.para(f"## The CLI under `spin`, as the issue measured ({source}, CLI defaults: "
               f"H 100, T 25, {args.cli_iters:,} iterations a run)")
        r.para("steps/s from the run's `speed:` line (training only); wall: the whole process "
               "(start-up, loading, final evaluation and checkpoint included). Medians over "
               "the runs, each run's value in brackets.")
        rows, med = [], {}
        for name, runs in res.items():
            rates = [x for x, _ in runs if x is not None]
            walls = [w for _, w in runs]
            med[name] = median(rates) if rates else None
            rows.append([name if name == "1 thread" else "default (no --threads)",
                         f"**{fmt_rate(med[name])}** ({', '.join(fmt_rate(x) for x in rates)})",
                         f"{median(walls):.1f} ({', '.join(f'{w:.1f}' for w in walls)})",
                         "—" if med[name] is None else f"{ISSUE_ITERS / med[name]:.1f}"])
        r.table(["threads", "steps/s", "wall s", f"{ISSUE_ITERS:,} iterations, s"], rows)
        for e in errors:
            r.emit(f"- CLI run failed: {e}")
        if med.get("default") and med.get("1 thread"):
            ratio = med["default"] / med["1 thread"]
            r.para(f"default / `--threads 1`: **{ratio:.2f}×**")
            targets.append([f"cli (under spin), LARGE text: default / `--threads 1` "
                            f"≥ {LOADED_TARGET}×", f"{ratio:.2f}×", verdict(ratio >= LOADED_TARGET)])
            if ratio < COLLAPSE:
                notes.append(f"**collapse** of the CLI under `spin`: default at {ratio:.2f}× "
                             f"of `--threads 1`")

    # -- targets -----------------------------------------------------------------
    r.para("## Targets (issue 10)")
    r.para(f"Not assertions: a busy machine changes the numbers, and the run never fails on them. "
           f"Under load (spin, blas, train, cli) the default must reach ≥ {LOADED_TARGET}× the "
           f"speed of 1 thread. Quiet, LARGE: > {QUIET_TARGET}× — today's 2-thread gain is "
           f"1.6–1.9× on this 2-core machine (benchmarks/README.md: 3,131 against 5,136 µs a "
           f"step in bench.py, 1,999 against 3,740 in bench_jax.py); {QUIET_TARGET}× keeps most "
           f"of it with room for a shared machine's noise, while a fix that gave the gain up "
           f"(~1.0×) fails. Quiet, SMALL: its steps run pipelined on two threads (recurrence and "
           f"output layer side by side), 1.3–1.5× faster where the two cores share a cache and "
           f"about as fast where they do not (then one thread is chosen), so the target there "
           f"is no loss, ≥ {SMALL_QUIET_TARGET}×.")
    r.table(["target", "measured", "met"], targets)
    for n in notes:
        r.emit(f"- {n}")
    if notes:
        r.emit()
    r.finish(args.output)
    return 130 if any(n.startswith("interrupted") for n in notes) else 0


if __name__ == "__main__":
    sys.exit(main())
