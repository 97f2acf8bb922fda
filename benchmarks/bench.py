#!/usr/bin/env python
"""Benchmark of charrnn_ext: the Cython core against the numpy reference.

Run from anywhere against the INSTALLED package (``pip install .`` first):

    python benchmarks/bench.py                 # full run, about 2-3 minutes
    python benchmarks/bench.py --quick         # smoke run, a few seconds per section
    python benchmarks/bench.py --only train flops --output report.md

``python benchmarks/bench.py`` puts benchmarks/ (not the repository root) on
sys.path, so ``import charrnn_ext`` finds the installed, compiled package; the
report prints the path it was imported from.

Sections (each prints a markdown section; a summary of the issue's targets
closes the report; nothing is asserted, a slow machine never fails):

train    median µs per training step, core vs reference, SMALL and LARGE, from
         the same initial parameters over the same chunks (the seed's data
         pass), in interleaved blocks; loss agreement of the first steps.
flops    LARGE: the step's floating-point work / time, beside dgemm rates.
load     read + decode + Vocab.from_text + encode of a generated 100 MB text.
sample   10,000 characters from a LARGE model, temperature 1 and 0.
memory   RSS over 100,000 SMALL steps; LARGE peak RSS vs the model's arrays
         (each in a fresh subprocess).
threads  steps/s of two models trained in two Python threads vs one.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg.blas
import threadpoolctl
from threadpoolctl import ThreadpoolController

import charrnn_ext
from charrnn_ext import CharRNN, Vocab, _dispatch, reference
from charrnn_ext.spec import PARAM_NAMES, init_params

from bench_data import DataPass, default_data_dir, load_corpus, write_mixed_text
from bench_util import (blas_owner, cpu_flags_summary, cpu_model, fmt_mb, fmt_us, load_average,
                        median, quartiles, rel_diff, rss, table, usable_cpus, verdict)

SECTIONS = ("train", "flops", "load", "sample", "memory", "threads")
LEARNING_RATE = 0.1
perf = time.perf_counter
cpu_time = time.process_time   # CPU seconds of the whole process (all its threads)

# Full-run and --quick settings (each overridable on the command line).
FULL = dict(steps=1000, large_steps=40, flops_steps=100, load_mb=100.0, sample_chars=10_000,
            ref_sample_chars=1000, memory_steps=100_000, large_memory_steps=300,
            thread_steps=2000, large_thread_steps=20, repeats=3)
QUICK = dict(steps=60, large_steps=6, flops_steps=10, load_mb=10.0, sample_chars=2000,
             ref_sample_chars=100, memory_steps=5000, large_memory_steps=20,
             thread_steps=300, large_thread_steps=6, repeats=1)


# smoothed losses after N free-running steps: chaotic training makes core and
# reference trajectories differ after ~20 steps, so this is only a sanity check
LOOSE = 0.05

def progress(msg: str) -> None:
    """Progress notes go to stderr so that stdout is the markdown report only."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# FLOP count of one training step, as the core computes it
# ---------------------------------------------------------------------------

def step_flops(V: int, H: int, T: int, n_present: float) -> list:
    """Floating-point operations of one core train_step, by part.

    Counted: each add, subtract, multiply, divide, and each exp/log/tanh/sqrt
    as 1; comparisons (softmax max, clipping) are not counted. The input
    layer is a column lookup of Wxh (no product with a one-hot vector), and
    the Wxh gradient/Adagrad touch only the ``n_present`` columns of the
    distinct input characters of the chunk.

    Returns [(part, flops, dense)], dense marking the matrix products.
    """
    return [
        ("logits Y = Hs·Whyᵀ (T×H · H×V), 2·T·V·H", 2 * T * V * H, True),
        ("dWhy = dYᵀ·Hs (V×T · T×H), 2·T·V·H", 2 * T * V * H, True),
        ("dHs = dY·Why (T×V · V×H), 2·T·V·H", 2 * T * V * H, True),
        ("recurrence forward Whh·h (T matvecs), 2·T·H²", 2 * T * H * H, True),
        ("recurrence backward Whhᵀ·dh (T−1 matvecs), 2·(T−1)·H²", 2 * (T - 1) * H * H, True),
        ("dWhh = dHrawᵀ·Hs (H×T · T×H), 2·T·H²", 2 * T * H * H, True),
        ("softmax + loss + dby, 6·T·V + 2·T", 6 * T * V + 2 * T, False),
        ("hidden elementwise (bias, tanh, dtanh, dbh, dWxh), 9·T·H", 9 * T * H, False),
        ("clip + Adagrad, 7 per element of Whh, Why, bh, by and the present Wxh columns",
         7 * (H * H + V * H + H + V + H * n_present), False),
    ]


# ---------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
        self.controller = ThreadpoolController()
        self.lines: list[str] = []
        self.targets: list[tuple[str, str, object]] = []   # (target, measured, met)
        self._corpora = {}
        self.ref_us: dict = {}      # median reference / core seconds per step, by config
        self.core_us: dict = {}
        self.dgemm_best = None      # best 1-thread dgemm GFLOP/s measured in section_flops

    # -- output ---------------------------------------------------------------
    def emit(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def target(self, what: str, measured: str, met) -> None:
        self.targets.append((what, measured, met))

    # -- shared pieces ------------------------------------------------------
    def corpus(self, name: str):
        if name not in self._corpora:
            self._corpora[name] = load_corpus(name, self.data_dir)
        return self._corpora[name]

    @contextlib.contextmanager
    def blas_single(self):
        """Everything on 1 thread: every loaded BLAS (numpy's and scipy's
        OpenBLAS, threadpoolctl) and the core's own threads (set_num_threads)."""
        before = charrnn_ext.get_num_threads()
        charrnn_ext.set_num_threads(1)
        try:
            with self.controller.limit(limits=1, user_api="blas"):
                yield
        finally:
            charrnn_ext.set_num_threads(before)

    def default_label(self) -> str:
        return (f"default (core {charrnn_ext.get_num_threads()} threads, its BLAS "
                f"{self.blas_threads('scipy')}; numpy BLAS {self.blas_threads('numpy')})")

    def blas_threads(self, owner: str) -> str:
        n = sorted({lib.num_threads for lib in self.controller.lib_controllers
                    if lib.user_api == "blas" and blas_owner(lib.filepath) == owner})
        return "/".join(map(str, n)) or "?"

    # -- header -----------------------------------------------------------------
    def header(self) -> None:
        a = self.args
        self.emit("# charrnn_ext benchmark")
        self.emit()
        self.emit(f"Command: `{' '.join(shlex.quote(x) for x in ['python', 'benchmarks/bench.py'] + sys.argv[1:])}`"
                  f"{' (quick smoke run: numbers are indicative only)' if a.quick else ''}  ")
        self.emit(f"Date: {datetime.datetime.now().isoformat(timespec='seconds')}  ")
        self.emit()
        self.emit("## Machine and libraries")
        self.emit()
        self.emit(table(["item", "value"], [
            ["CPU", f"{cpu_model()} ({platform.machine()}, widest SIMD: {cpu_flags_summary()})"],
            ["CPUs usable / logical", f"{usable_cpus()} / {os.cpu_count()}"],
            ["load average at start (1/5/15 min)", load_average()],
            ["Python", f"{platform.python_version()} ({platform.python_implementation()})"],
            ["numpy / scipy / threadpoolctl", f"{np.__version__} / {scipy.__version__} / {threadpoolctl.__version__}"],
            ["charrnn_ext", f"{charrnn_ext.__version__} from `{Path(charrnn_ext.__file__).parent}`"],
            ["core variant / threads", f"{_dispatch.variant}, OpenMP {'yes' if _dispatch.core.has_openmp() else 'no'}; "
                                     f"{charrnn_ext.get_num_threads()} threads by default; output layer in "
                                     f"{_dispatch.core.stripe_count(self.corpus('SMALL').V, self.corpus('SMALL').hidden)} stripe(s) at SMALL, "
                                     f"{_dispatch.core.stripe_count(self.corpus('LARGE').V, self.corpus('LARGE').hidden)} at LARGE"],
            ["data directory", f"`{self.data_dir}`" + ("" if self.data_dir.is_dir() else " (missing: texts are generated)")],
        ]))
        self.emit()
        rows = []
        for info in threadpoolctl.threadpool_info():
            rows.append([blas_owner(info["filepath"]), info.get("user_api"), info.get("internal_api"),
                         info.get("version"), info.get("architecture", ""), info.get("threading_layer", ""),
                         info.get("num_threads"), f"`{Path(info['filepath']).name}`"])
        self.emit("Thread pools (`threadpoolctl.threadpool_info()`); the reference's `np.dot` runs on "
                  "numpy's BLAS, the core calls `dgemm` from scipy's (`scipy.linalg.cython_blas`):")
        self.emit()
        self.emit(table(["shipped by", "API", "library", "version", "arch", "threading", "default threads", "file"], rows))
        self.emit()

    # ======================================================================
    # 1. training speed: core vs reference
    # ======================================================================
    def section_train(self) -> None:
        a = self.args
        self.emit("## Training step: core vs numpy reference")
        self.emit()
        rows, checks, cpu_rows = [], [], []
        iqr = lambda xs: "{}–{}".format(*(fmt_us(v) for v in quartiles(xs)))
        for name, steps in (("SMALL", a.steps), ("LARGE", a.large_steps)):
            c = self.corpus(name)
            progress(f"train {name}: {steps} steps per side (V={c.V}, H={c.hidden}, T={c.seq})")
            res = self._train_compare(c, steps)
            med = {k: median(v["times"]) for k, v in res.items()}
            for blas, core_key, ref_key in ((self.default_label(), "core", "ref"),
                                            ("1 thread (all BLAS and the core)", "core1", "ref1")):
                tc, tr = med[core_key], med[ref_key]
                rows.append([name, c.source, c.V, c.hidden, c.seq, steps, blas,
                             f"**{fmt_us(tc)}** ({iqr(res[core_key]['times'])})",
                             f"{fmt_us(tr)} ({iqr(res[ref_key]['times'])})",
                             f"**{tr / tc:.1f}×**", f"{med['ref'] / tc:.1f}×"])
                cc, cr = median(res[core_key]["cpu"]), median(res[ref_key]["cpu"])
                share = lambda k: sum(res[k]["cpu"]) / sum(res[k]["times"])
                cpu_rows.append([name, blas, fmt_us(cc), fmt_us(cr), f"{cr / cc:.1f}×",
                                 f"{share(core_key):.2f} / {share(ref_key):.2f}"])
            goal = 30 if name == "SMALL" else 40
            ratio, ratio1 = med["ref"] / med["core"], med["ref"] / med["core1"]
            self.ref_us[name] = med["ref"]
            self.core_us[name] = med["core"]
            self.target(f"{name}: train_step ≥ {goal}× faster than the reference (both as they run by default)",
                        f"{ratio:.1f}× (core on 1 thread: {ratio1:.1f}×)", ratio >= goal)
            # the same work: first losses, smoothed losses
            first = {k: max(rel_diff(x, y) for x, y in zip(res[k]["losses"][:3], res["ref"]["losses"][:3]))
                     for k in ("core", "core1", "ref1")}
            sm = {k: smoothed(res[k]["losses"], c.V, c.seq) for k in ("core", "ref")}
            tail = max(1, steps // 10)
            mean_tail = {k: float(np.mean(res[k]["losses"][-tail:])) for k in ("core", "ref")}
            ok_first = max(first.values()) <= 1e-9
            ok_smooth = rel_diff(sm["core"], sm["ref"]) <= LOOSE
            checks.append([name, ", ".join(f"{x:.10g}" for x in res["core"]["losses"][:3]),
                           f"{first['core']:.1e}", f"{first['core1']:.1e}", f"{first['ref1']:.1e}",
                           verdict(ok_first),
                           f"{sm['core']:.4f} / {sm['ref']:.4f} ({rel_diff(sm['core'], sm['ref']):.1e})",
                           f"{mean_tail['core']:.3f} / {mean_tail['ref']:.3f}", verdict(ok_smooth)])
            self.target(f"{name}: first 3 losses of core and reference agree within 1e-9 (relative)",
                        f"max {max(first.values()):.1e}", ok_first)
        self.emit(f"Median µs per `train_step` call (interquartile range in brackets), timed with "
                  f"`time.perf_counter` around the call only. Four sides train their own copy of the same "
                  f"`init_params(V, H, seed={a.seed})` over the same chunks (the seed's data pass, learning "
                  f"rate {LEARNING_RATE}), in interleaved blocks (the order rotates from block to block): "
                  f"the core (`CharRNN.train_step` on int32 views of the encoded text; its `dgemm` is "
                  f"scipy's OpenBLAS) and the reference (`charrnn_ext.reference.train_step` = lossFun + "
                  f"Adagrad, on Python lists like the seed; `np.dot` on numpy's OpenBLAS), each as it runs "
                  f"by default and with everything on 1 thread (every BLAS limited with threadpoolctl, the "
                  f"core's own threads with `charrnn_ext.set_num_threads(1)`). The issue's ratio "
                  f"compares the default rows; the last column compares every core row with the reference "
                  f"as it runs by default.")
        self.emit()
        self.emit(table(["config", "text", "V", "H", "T", "steps", "BLAS threads", "core µs/step",
                         "reference µs/step", "reference / core", "reference (default) / core"], rows))
        self.emit()
        self.emit("Process CPU time of the same steps (`time.process_time`, read outside the timed window; "
                  "it includes BLAS worker threads). On a busy machine CPU time is steadier than wall time, "
                  "and the CPU share (CPU seconds / wall seconds of the timed calls) shows how much of a "
                  "core the process had: about 1.0 for a single-threaded step on an idle machine, below 1 "
                  "when other processes took the CPU, above 1 when BLAS worker threads ran (or spun).")
        self.emit()
        self.emit(table(["config", "BLAS threads", "core CPU µs/step", "reference CPU µs/step",
                         "reference / core (CPU)", "CPU share: core / reference"], cpu_rows))
        self.emit()
        self.emit("Same work: the first 3 losses (same chunks, same initial parameters) must agree within "
                  "1e-9 relative with the default reference's; later steps drift apart legitimately "
                  "(training is chaotic), so the smoothed losses (`0.999·s + 0.001·loss`, from "
                  "`-log(1/V)·T`) after all steps are only compared loosely (within 5%), with the mean "
                  "loss of the last 10% of steps beside them. Exactness step by step, from the same "
                  "state, is what the test suite checks (200 steps within 1e-9).")
        self.emit()
        self.emit(table(["config", "first 3 losses (core)", "max rel. diff: core", "core (BLAS 1 thread)",
                         "reference (BLAS 1 thread)", "all ≤ 1e-9",
                         "smoothed loss after N: core / ref (rel. diff)", "mean loss, last 10%: core / ref",
                         "agree loosely"], checks))
        self.emit()

    def _train_compare(self, c, steps: int) -> dict:
        """Train the core and the reference, each with default BLAS threads and
        with BLAS limited to 1 thread, from the same initial parameters over
        the same chunks, in interleaved blocks; per-step times and losses."""
        H = c.hidden
        init = init_params(c.V, H, self.args.seed)
        data = DataPass(c.ids, c.seq)
        chunks = []
        for _ in range(steps):
            x, y, reset = data.next()
            chunks.append((x, y, x.tolist(), y.tolist(), reset))

        def make_core():
            model = CharRNN.from_params(init)

            def core_step(x, y, xl, yl, h):
                return model.train_step(x, y, h, LEARNING_RATE)
            return core_step

        def make_ref():
            params = {n: init[n].copy() for n in PARAM_NAMES}
            memory = {n: np.zeros_like(init[n]) for n in PARAM_NAMES}

            def ref_step(x, y, xl, yl, h):
                return reference.train_step(xl, yl, h, params, memory, LEARNING_RATE)
            return ref_step

        sides = {"core": (make_core(), contextlib.nullcontext),
                 "core1": (make_core(), self.blas_single),
                 "ref": (make_ref(), contextlib.nullcontext),
                 "ref1": (make_ref(), self.blas_single)}
        state = {k: {"times": [], "cpu": [], "losses": [], "h": None} for k in sides}
        n_blocks = min(steps, 20 if c.name == "SMALL" else 8)
        bounds = np.linspace(0, steps, n_blocks + 1).astype(int)
        order = list(sides)
        for b in range(n_blocks):
            block = chunks[bounds[b]:bounds[b + 1]]
            r = b % len(order)
            for k in order[r:] + order[:r]:       # rotate who goes first
                step, ctx = sides[k]
                st = state[k]
                times, cpu, losses, h = st["times"], st["cpu"], st["losses"], st["h"]
                with ctx():
                    for x, y, xl, yl, reset in block:
                        if reset:
                            h = np.zeros((H, 1))
                        c0 = cpu_time()
                        t0 = perf()
                        loss, h = step(x, y, xl, yl, h)
                        t1 = perf()
                        cpu.append(cpu_time() - c0)
                        times.append(t1 - t0)
                        losses.append(float(loss))
                state[k]["h"] = h
        return state

    # ======================================================================
    # 2. FLOP rate of the LARGE step vs dgemm
    # ======================================================================
    def section_flops(self) -> None:
        a = self.args
        c = self.corpus("LARGE")
        V, H, T = c.V, c.hidden, c.seq
        progress(f"flops: dgemm rates and {a.flops_steps} LARGE core steps")
        self.emit("## LARGE: floating-point rate of the step vs dgemm")
        self.emit()
        # the core step, default BLAS and BLAS 1 thread, interleaved blocks on one model
        model = CharRNN.from_params(init_params(V, H, a.seed))
        data = DataPass(c.ids, T)
        h, present = None, []
        times = {"default": [], "1": []}
        for _ in range(3):   # warm-up (first call sizes the work buffers)
            x, y, reset = data.next()
            _, h = model.train_step(x, y, None if reset else h, LEARNING_RATE)
        n_blocks = max(2, min(10, a.flops_steps // 5))
        per = max(1, a.flops_steps // n_blocks)
        for b in range(n_blocks):
            for key, ctx in (("default", contextlib.nullcontext), ("1", self.blas_single))[::(-1) ** b]:
                with ctx():
                    for _ in range(per):
                        x, y, reset = data.next()
                        present.append(len(np.unique(x)))
                        if reset:
                            h = None
                        t0 = perf()
                        _, h = model.train_step(x, y, h, LEARNING_RATE)
                        times[key].append(perf() - t0)
        n_present = float(np.mean(present))
        parts = step_flops(V, H, T, n_present)
        total = sum(v for _, v, _ in parts)
        dense = sum(v for _, v, is_dense in parts if is_dense)
        self.emit(f"FLOPs of one step, V={V}, H={H}, T={T}, counted as the core computes it "
                  f"(`step_flops` in bench.py: +, −, ×, ÷ and each exp/log/tanh/sqrt count 1, comparisons 0; "
                  f"the input layer is a column lookup; Wxh gradient and Adagrad touch only the "
                  f"{n_present:.1f} distinct input characters of a chunk on average). "
                  f"Dense part = 3 GEMMs of 2·T·V·H + recurrence 2·(2T−1)·H² + dWhh 2·T·H²:")
        self.emit()
        self.emit(table(["part, formula", "FLOPs", "MFLOP"],
                        [[k, f"{v:,.0f}", f"{v / 1e6:.2f}"] for k, v, _ in parts]
                        + [["**total**", f"{total:,.0f}", f"**{total / 1e6:.2f}**"],
                           ["(dense part: GEMMs + recurrence)", f"{dense:,.0f}", f"{dense / 1e6:.2f}"]]))
        self.emit()
        # dgemm rates of this machine, measured now
        n = a.dgemm_n
        rows = []
        rates = {}
        for label, ctx, key in ((f"numpy matmul {n}×{n} float64, 1 thread", self.blas_single, "np1"),
                                (f"numpy matmul {n}×{n} float64, default threads ({self.blas_threads('numpy')})",
                                 contextlib.nullcontext, "npd"),
                                (f"scipy.linalg.blas.dgemm {n}×{n} (the core's OpenBLAS), 1 thread",
                                 self.blas_single, "sp1"),
                                (f"numpy matmul at the step's shape ({T}×{H} · {H}×{V}), 1 thread",
                                 self.blas_single, "shape1")):
            with ctx():
                med, best = dgemm_rate(key, n, (T, H, V), a.repeats * 3)
            rates[key] = best
            rows.append([label, f"{med:.1f}", f"{best:.1f}"])
        self.emit(table(["dgemm", "GFLOP/s (median)", "GFLOP/s (best)"], rows))
        self.emit()
        rows = []
        self.dgemm_best = max(rates["np1"], rates["sp1"])
        for key, label in (("default", self.default_label()),
                           ("1", "1 thread (all BLAS and the core)")):
            t = median(times[key])
            rows.append([label, len(times[key]), fmt_us(t), f"{total / t / 1e9:.2f}",
                         f"{dense / t / 1e9:.2f}", f"{100 * total / t / 1e9 / rates['np1']:.0f}%"])
        self.emit(table(["core LARGE train_step", "steps", "median µs/step", "GFLOP/s (total work)",
                         "GFLOP/s (dense part)", "of 1-thread dgemm best"], rows))
        self.emit()

    # ======================================================================
    # 3. loading: read + decode + Vocab.from_text + encode
    # ======================================================================
    def section_load(self) -> None:
        a = self.args
        n_bytes = int(a.load_mb * 1e6)
        self.emit(f"## Loading: {fmt_mb(n_bytes)} of generated UTF-8 text")
        self.emit()
        rows, totals = [], []
        with tempfile.TemporaryDirectory(prefix="charrnn_bench_") as tmp:
            path = Path(tmp) / "mixed.txt"
            progress(f"load: writing {fmt_mb(n_bytes)} of generated text")
            t0 = perf()
            write_mixed_text(path, n_bytes)
            progress(f"load: written in {perf() - t0:.1f} s; timing {a.repeats} loads")
            size = path.stat().st_size
            for r in range(a.repeats):
                gc.collect()
                t0 = perf()
                with open(path, "rb") as fh:
                    raw = fh.read()
                t1 = perf()
                text = raw.decode("utf-8")
                t2 = perf()
                vocab = Vocab.from_text(text)
                t3 = perf()
                ids = vocab.encode(text)
                t4 = perf()
                n_chars, V = len(text), len(vocab)
                assert ids.shape == (n_chars,)   # a sanity check of the work, not a timing assertion
                del raw, text, ids, vocab
                totals.append(t4 - t0)
                rows.append([r + 1, f"{t1 - t0:.3f}", f"{t2 - t1:.3f}", f"{t3 - t2:.3f}", f"{t4 - t3:.3f}",
                             f"{t4 - t0:.3f}", f"{size / 1e6 / (t4 - t0):.0f}",
                             f"{size / 1e6 / (t4 - t2):.0f}"])
        self.emit(f"A file of {size:,} bytes ({n_chars:,} characters: printable ASCII and newlines, about 5% "
                  f"CJK ideographs; {V:,} distinct), generated and written to a temporary directory first "
                  f"(not timed; it is in the page cache). Timed: `open(...).read()`, `bytes.decode('utf-8')`, "
                  f"`Vocab.from_text(text)`, `vocab.encode(text)`. MB = 10⁶ bytes of the file.")
        self.emit()
        self.emit(table(["run", "read s", "decode s", "Vocab.from_text s", "encode s", "total s",
                         "MB/s (total)", "MB/s (from_text + encode)"], rows))
        self.emit()
        rate = size / 1e6 / median(totals)
        self.target("Loading: read + decode + encode ≥ 50 MB/s", f"{rate:.0f} MB/s (median run)", rate >= 50)

    # ======================================================================
    # 4. sampling
    # ======================================================================
    def section_sample(self) -> None:
        a = self.args
        c = self.corpus("LARGE")
        V, H = c.V, c.hidden
        n, n_ref = a.sample_chars, a.ref_sample_chars
        progress(f"sample: {n} characters, V={V}, H={H}")
        params = init_params(V, H, a.seed)
        model = CharRNN.from_params(params)
        seed_ix = int(c.ids[0])
        rows = []
        for temp in (1.0, 0.0):
            model.sample(None, seed_ix, 100, temperature=temp, rng=0)      # warm-up
            times = []
            for r in range(a.repeats):
                t0 = perf()
                ids = model.sample(None, seed_ix, n, temperature=temp, rng=np.random.default_rng(r))
                times.append(perf() - t0)
            assert ids.shape == (n,)
            t = median(times)
            # the reference on fewer characters, and whether both draw the same ids
            t0 = perf()
            ref_ids = reference.sample(np.zeros((H, 1)), seed_ix, n_ref, params, temperature=temp,
                                       rng=np.random.default_rng(12345))
            t_ref = perf() - t0
            core_ids = model.sample(None, seed_ix, n_ref, temperature=temp, rng=np.random.default_rng(12345))
            same = np.array_equal(core_ids, np.array(ref_ids))
            if not same:
                first = int(np.flatnonzero(core_ids != np.array(ref_ids))[0])
                same_txt = f"differ from id {first}"
            else:
                same_txt = f"identical ({n_ref} ids)"
            rows.append([f"{temp:g}" + (" (greedy)" if temp == 0 else ""), f"**{t:.3f}**",
                         f"{min(times):.3f}", f"{n / t:,.0f}", f"{1e6 * t / n:.1f}",
                         f"{1e6 * t_ref / n_ref:,.0f}", f"{(t_ref / n_ref) / (t / n):.0f}×", same_txt])
            t10k = t * 10_000 / n
            self.target(f"Sampling 10,000 characters (LARGE, temperature {temp:g}) < 0.3 s",
                        f"{t10k:.3f} s" + ("" if n == 10_000 else f" (extrapolated from {n:,})"), t10k < 0.3)
        self.emit(f"## Sampling: {n:,} characters from a LARGE model (V={V}, H={H})")
        self.emit()
        self.emit(f"`model.sample(None, seed_ix, {n})` with a numpy Generator, model at its initial parameters "
                  f"(nearly uniform output distribution: the inverse-CDF search scans far, a worst case); "
                  f"{a.repeats} runs. Reference (`charrnn_ext.reference.sample`, default BLAS) timed on "
                  f"{n_ref} characters; the last column compares its ids with the core's for an identically "
                  f"seeded Generator.")
        self.emit()
        self.emit(table(["temperature", "seconds (median)", "seconds (best)", "chars/s", "µs/char",
                         "reference µs/char", "ratio", "same ids as reference"], rows))
        self.emit()

    # ======================================================================
    # 5. memory (fresh subprocesses)
    # ======================================================================
    def section_memory(self) -> None:
        a = self.args
        self.emit("## Memory (each measured in a fresh subprocess)")
        self.emit()
        progress(f"memory SMALL: {a.memory_steps} steps in a subprocess")
        small = self._child("memory-small", a.memory_steps)
        progress(f"memory LARGE: {a.large_memory_steps} steps in a subprocess")
        large = self._child("memory-large", a.large_memory_steps)
        if small is not None:
            d_rss = small["after"]["rss"] - small["warm"]["rss"]
            d_peak = small["after"]["peak"] - small["warm"]["peak"]
            self.emit(f"SMALL (V={small['V']}, H=100, T=25): {small['warmup']:,} warm-up steps, then "
                      f"{small['steps']:,} `train_step`s over the seed's data pass "
                      f"({small['us_per_step']:.1f} µs/step in this loop, Python loop included). "
                      f"VmRSS / VmHWM (peak) from `/proc/self/status`:")
            self.emit()
            self.emit(table(["point", "RSS", "peak RSS"], [
                ["after imports", fmt_mb(small["base"]["rss"]), fmt_mb(small["base"]["peak"])],
                [f"after {small['warmup']:,} warm-up steps", fmt_mb(small["warm"]["rss"]),
                 fmt_mb(small["warm"]["peak"])],
                [f"after {small['steps']:,} more steps", fmt_mb(small["after"]["rss"]),
                 fmt_mb(small["after"]["peak"])],
                ["**growth over the steps**", f"**{d_rss / 1e6:+.3f} MB**", f"**{d_peak / 1e6:+.3f} MB**"],
            ]))
            self.emit()
            self.target(f"Memory: peak RSS growth over {small['steps']:,} SMALL steps < 1 MB",
                        f"{d_peak / 1e6:+.3f} MB (RSS {d_rss / 1e6:+.3f} MB)", d_peak < 1e6)
        if large is not None:
            arrays = large["model_bytes"] + large["data_bytes"]
            over = large["after"]["peak"] - large["base"]["rss"]
            self.emit(f"LARGE (V={large['V']}, H=200, T=30): load the text, build the model, "
                      f"{large['steps']} `train_step`s. The interpreter with numpy, scipy and charrnn_ext "
                      f"imported is the baseline; the target compares the peak above it with the arrays "
                      f"the work needs: params + Adagrad memory + grads "
                      f"({fmt_mb(large['model_bytes'])}) + encoded data ({fmt_mb(large['data_bytes'])}).")
            self.emit()
            self.emit(table(["point", "RSS", "peak RSS"], [
                ["baseline: after imports", fmt_mb(large["base"]["rss"]), fmt_mb(large["base"]["peak"])],
                ["text loaded and encoded", fmt_mb(large["loaded"]["rss"]), fmt_mb(large["loaded"]["peak"])],
                ["model built", fmt_mb(large["built"]["rss"]), fmt_mb(large["built"]["peak"])],
                ["after 1 step", fmt_mb(large["one"]["rss"]), fmt_mb(large["one"]["peak"])],
                [f"after {large['steps']} steps", fmt_mb(large["after"]["rss"]), fmt_mb(large["after"]["peak"])],
            ]))
            self.emit()
            self.emit(table(["measure", "value"], [
                ["params + memory + grads + data", fmt_mb(arrays)],
                ["peak RSS − baseline RSS", fmt_mb(over)],
                ["**ratio (peak − baseline) / arrays**", f"**{over / arrays:.2f}×**"],
                ["whole process: peak RSS / arrays (baseline included)",
                 f"{large['after']['peak'] / arrays:.2f}×"],
            ]))
            self.emit()
            self.target("Memory: LARGE peak RSS (above the interpreter baseline) ≤ 1.5× params+memory+grads+data",
                        f"{over / arrays:.2f}×", over / arrays <= 1.5)

    def _child(self, kind: str, steps: int):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--child-steps", str(steps),
               "--data-dir", str(self.data_dir), "--seed", str(self.args.seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            self.emit(f"**{kind} subprocess failed** (exit {proc.returncode}):")
            self.emit()
            self.emit("```\n" + proc.stderr.strip()[-3000:] + "\n```")
            self.emit()
            self.target(f"{kind}", "subprocess failed", False)
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])

    # ======================================================================
    # 6. threads
    # ======================================================================
    def section_threads(self) -> None:
        a = self.args
        self.emit("## Threads: two models in two Python threads")
        self.emit()
        rows = []
        for name, steps in (("SMALL", a.thread_steps), ("LARGE", a.large_thread_steps)):
            c = self.corpus(name)
            progress(f"threads {name}: {steps} steps per thread per measurement, {a.repeats} rounds")
            runners = [ThreadRunner(c, a.seed) for _ in range(2)]
            for r in runners:
                r.run(3)   # warm-up
            for label, ctx in (("1 thread per model (BLAS and core)", self.blas_single),
                               (self.default_label(), contextlib.nullcontext)):
                one, two = [], []
                with ctx():
                    for _ in range(a.repeats):
                        one.append(throughput(runners[:1], steps))
                        two.append(throughput(runners, steps))
                s1, s2 = median([x[0] for x in one]), median([x[0] for x in two])
                c1, c2 = median([x[1] for x in one]), median([x[1] for x in two])
                rows.append([name, label, f"{s1:,.1f}", f"{s2:,.1f}", f"**{s2 / s1:.2f}×**",
                             f"{c1:.2f} / {c2:.2f}"])
                if ctx == self.blas_single:   # bound methods: equal, never identical
                    self.target(f"Threads: {name} two threads ≥ 1.6× one thread (1 thread per model)",
                                f"{s2 / s1:.2f}×", s2 / s1 >= 1.6)
        self.emit(f"Two independent `CharRNN` models (own parameters, own data pass), each trained in its own "
                  f"`threading.Thread` for N steps (SMALL {a.thread_steps}, LARGE {a.large_thread_steps}); "
                  f"throughput = steps of all threads / wall time from a common start barrier to the last "
                  f"thread's end; median of {a.repeats} alternating rounds. Thread choice: **1 thread per "
                  f"model** — every loaded OpenBLAS (numpy's and the core's scipy one) limited with "
                  f"threadpoolctl and the core's own output-layer threads set with "
                  f"`charrnn_ext.set_num_threads(1)`: with one model per core, more threads would only "
                  f"compete with the other model's thread; the default rows (each model asking for one "
                  f"thread per CPU) are shown for comparison. {usable_cpus()} CPUs usable; the last "
                  f"column is the process's CPU time per wall second (≈ 1 / ≈ 2 when the two threads really "
                  f"run in parallel; a 2-thread figure near 1 means they were serialised, by the GIL or by "
                  f"other processes on a busy machine — compare the load average).")
        self.emit()
        self.emit(table(["config", "BLAS threads", "1 thread: steps/s", "2 threads: steps/s (total)",
                         "scaling", "CPU/wall: 1 / 2 threads"], rows))
        self.emit()

    # ======================================================================
    def summary(self) -> None:
        self.emit("## Targets of issue 4")
        self.emit()
        self.emit("Not assertions: a slow or busy machine changes the numbers, and the run never fails on them.")
        self.emit()
        self.emit(table(["target", "measured", "met"], [[t, m, verdict(ok)] for t, m, ok in self.targets]))
        self.emit()
        if self.ref_us and self.dgemm_best:
            self.ceiling()

    def ceiling(self) -> None:
        """What the ratio targets ask of this machine: bounds on a step's time
        from rates measured in this run (not a proof: a faster kernel than
        the ones measured here would move them)."""
        cpus = usable_cpus()
        rate = self.dgemm_best * 1e9
        rows = []
        for name, ref in self.ref_us.items():
            c = self.corpus(name)
            goal = 30 if name == "SMALL" else 40
            parts = step_flops(c.V, c.hidden, c.seq, 0)
            dense = sum(v for _, v, is_dense in parts if is_dense)
            chain = (2 * c.seq - 1) * recurrence_step_seconds(c.V, c.hidden)
            one_core = dense / rate
            all_cores = max(chain, dense / (rate * cpus))
            rows.append([name, fmt_us(ref), f"{fmt_us(ref / goal)} ({goal}×)", f"{dense / 1e6:.2f}",
                         f"{fmt_us(one_core)} ({ref / one_core:.1f}×)",
                         f"{fmt_us(chain)} ({ref / chain:.1f}×)",
                         f"{fmt_us(all_cores)} ({ref / all_cores:.1f}×)",
                         f"**{fmt_us(self.core_us[name])}** ({ref / self.core_us[name]:.1f}×)"])
        self.emit("## What the ratio targets ask of this machine")
        self.emit()
        self.emit(f"Lower bounds on a step's time from rates measured in this run (bounds from measurements, "
                  f"not a proof: a faster kernel than those measured here would lower them). **Dense work**: "
                  f"the 3 output-layer GEMMs, the 2T−1 recurrence matvecs and dWhh (see the FLOP table) at the "
                  f"best dgemm rate measured in this run ({self.dgemm_best:.1f} GFLOP/s on one core, a "
                  f"1000×1000 product; the step's own shapes run slower). **Recurrence chain**: the 2T−1 "
                  f"matvecs are sequential (each needs the previous result), timed as the core's own "
                  f"recurrence step (`model.advance`: H×H matvec, tanh, Wxh column; its matvec runs at the "
                  f"load bandwidth of the cache holding Whh). **{cpus} cores, perfect overlap**: the larger "
                  f"of the chain and the dense work split over all {cpus} usable cores at the 1-core dgemm "
                  f"rate each — as if the output layer of step t ran beside the recurrence of step t+1 "
                  f"for free. In brackets: the reference's time divided by the bound, the largest ratio it "
                  f"allows. Softmax, tanh, Adagrad's sqrt and division over all of Why, memory traffic and "
                  f"threads' synchronisation all come on top.")
        self.emit()
        self.emit(table(["config", "reference µs/step", "target µs/step", "dense MFLOP",
                         "dense work, 1 core", "recurrence chain", f"{cpus} cores, perfect overlap",
                         "core now"], rows))
        self.emit()


def recurrence_step_seconds(V: int, H: int, n: int = 4000, repeats: int = 5) -> float:
    """Best seconds per character of the core's recurrence alone (model.advance)
    at hidden size H, on one thread."""
    model = CharRNN(V, H, seed=0)
    ids = np.random.default_rng(1).integers(0, V, n).astype(np.int32)
    model.advance(ids[:100])
    best = float("inf")
    for _ in range(repeats):
        t0 = perf()
        model.advance(ids)
        best = min(best, (perf() - t0) / n)
    return best


# ---------------------------------------------------------------------------
# helpers of the sections
# ---------------------------------------------------------------------------

def smoothed(losses, V: int, T: int) -> float:
    """The seed's smoothed loss after ``losses``."""
    s = -np.log(1.0 / V) * T
    for loss in losses:
        s = s * 0.999 + loss * 0.001
    return float(s)


def dgemm_rate(kind: str, n: int, shape, repeats: int):
    """(median, best) GFLOP/s of a float64 matrix product under the current
    BLAS thread limits: numpy n×n (kind np*), scipy's dgemm n×n (sp*), or
    numpy at the step's (T×H)·(H×V) shape (shape*)."""
    rng = np.random.default_rng(0)
    if kind.startswith("shape"):
        T, H, V = shape
        x, w = rng.standard_normal((T, H)), rng.standard_normal((H, V))
        out = np.empty((T, V))
        flops, fn, reps = 2 * T * H * V, lambda: np.matmul(x, w, out=out), repeats * 20
    elif kind.startswith("sp"):
        x = np.asfortranarray(rng.standard_normal((n, n)))
        w = np.asfortranarray(rng.standard_normal((n, n)))
        out = np.asfortranarray(np.empty((n, n)))
        flops, reps = 2 * n ** 3, repeats
        fn = lambda: scipy.linalg.blas.dgemm(1.0, x, w, c=out, overwrite_c=True)
    else:
        x, w = rng.standard_normal((n, n)), rng.standard_normal((n, n))
        out = np.empty((n, n))
        flops, fn, reps = 2 * n ** 3, lambda: np.matmul(x, w, out=out), repeats
    fn()
    times = []
    for _ in range(reps):
        t0 = perf()
        fn()
        times.append(perf() - t0)
    return flops / median(times) / 1e9, flops / min(times) / 1e9


class ThreadRunner:
    """A model with its own data pass, trained N steps at a time."""

    def __init__(self, c, seed: int):
        self.model = CharRNN.from_params(init_params(c.V, c.hidden, seed))
        self.data = DataPass(c.ids, c.seq)
        self.h = None

    def run(self, n: int) -> None:
        model, data, h = self.model, self.data, self.h
        for _ in range(n):
            x, y, reset = data.next()
            _, h = model.train_step(x, y, None if reset else h, LEARNING_RATE)
        self.h = h


def throughput(runners, steps: int):
    """(total steps/s, process CPU seconds per wall second) of the runners,
    each in its own thread, from a common start. The CPU ratio shows how many
    cores the process really had: about 2 when two threads run in parallel,
    about 1 when they are serialised (by the GIL or by a busy machine)."""
    barrier = threading.Barrier(len(runners))
    spans, errors = [None] * len(runners), []

    def work(i):
        try:
            barrier.wait()
            t0 = perf()
            runners[i].run(steps)
            spans[i] = (t0, perf())
        except BaseException as exc:   # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(runners))]
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = time.process_time() - cpu0
    if errors:
        raise errors[0]
    wall = max(s[1] for s in spans) - min(s[0] for s in spans)
    return len(runners) * steps / wall, cpu / wall


# ---------------------------------------------------------------------------
# memory probes (run as `bench.py --child KIND`; print one JSON line)
# ---------------------------------------------------------------------------

def child_main(args) -> None:
    base = rss()      # interpreter + numpy + scipy BLAS + charrnn_ext imported
    data_dir = Path(args.data_dir)
    steps = args.child_steps
    if args.child == "memory-small":
        c = load_corpus("SMALL", data_dir)
        runner = ThreadRunner(c, args.seed)
        warmup = min(1000, max(10, steps // 10))
        runner.run(warmup)
        gc.collect()
        warm = rss()
        t0 = perf()
        runner.run(steps)
        elapsed = perf() - t0
        gc.collect()
        after = rss()
        out = dict(V=c.V, steps=steps, warmup=warmup, base=base, warm=warm, after=after,
                   us_per_step=1e6 * elapsed / steps)
    else:
        c = load_corpus("LARGE", data_dir)
        gc.collect()
        loaded = rss()
        runner = ThreadRunner(c, args.seed)
        built = rss()
        runner.run(1)
        one = rss()
        runner.run(steps - 1)
        gc.collect()
        after = rss()
        m = runner.model
        model_bytes = sum(arr.nbytes for d in (m.params, m.memory, m.grads) for arr in d.values())
        out = dict(V=c.V, steps=steps, base=base, loaded=loaded, built=built, one=one, after=after,
                   model_bytes=model_bytes, data_bytes=int(c.ids.nbytes))
    print(json.dumps(out))


# ---------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a fast smoke run (few steps, 10 MB load)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                   help=f"run only these sections ({', '.join(SECTIONS)})")
    p.add_argument("--output", help="also write the markdown report to this file")
    p.add_argument("--data-dir", help="directory of tinyshakespeare.txt and lunyu_shijing.txt "
                                      "(default: ../shared/data relative to the repository root); "
                                      "missing files are replaced by generated text")
    p.add_argument("--seed", type=int, default=0, help="seed of init_params (default 0)")
    g = p.add_argument_group("sizes (defaults: full run / --quick)")
    for key, help_ in (("steps", "SMALL training steps per side"),
                       ("large_steps", "LARGE training steps per side"),
                       ("flops_steps", "LARGE core steps per BLAS setting in the flops section"),
                       ("load_mb", "size of the generated text to load, MB"),
                       ("sample_chars", "characters sampled from the LARGE model"),
                       ("ref_sample_chars", "characters sampled with the reference"),
                       ("memory_steps", "SMALL steps of the RSS growth probe"),
                       ("large_memory_steps", "LARGE steps of the peak RSS probe"),
                       ("thread_steps", "SMALL steps per thread per throughput measurement"),
                       ("large_thread_steps", "LARGE steps per thread per throughput measurement"),
                       ("repeats", "repetitions of the load, sample, dgemm and thread measurements")):
        typ = float if key == "load_mb" else int
        g.add_argument("--" + key.replace("_", "-"), type=typ, default=None,
                       help=f"{help_} ({FULL[key]:g} / {QUICK[key]:g})")
    g.add_argument("--dgemm-n", type=int, default=1000, help="size of the square dgemm (1000)")
    p.add_argument("--child", choices=("memory-small", "memory-large"), help=argparse.SUPPRESS)
    p.add_argument("--child-steps", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    bench = Bench(args)
    bench.header()
    t_start = perf()
    for section in SECTIONS:
        if args.only and section not in args.only:
            continue
        t0 = perf()
        getattr(bench, f"section_{section}")()
        progress(f"{section} done in {perf() - t0:.1f} s (load average {load_average()})")
    bench.summary()
    bench.emit(f"Total benchmark time: {perf() - t_start:.0f} s; load average at the end: {load_average()}.")
    if args.output:
        Path(args.output).write_text("\n".join(bench.lines) + "\n", encoding="utf-8")
        progress(f"report written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
