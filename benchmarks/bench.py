#!/usr/bin/env python
"""Benchmark of charrnn_ext: the Cython core against the numpy reference (training step, FLOP rate, loading, sampling, memory, threads) and the targets of issue 4."""
from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy
import scipy.linalg.blas
import threadpoolctl

from bench_data import DataPass, load_corpus, write_mixed_text
from charrnn_ext import CharRNN, Vocab
from charrnn_ext.core import _dispatch, reference
from charrnn_ext.core.spec import init_params
from harness import (THREAD_POOL_HEADERS, Parser, Report, blas_threads, default_label,
                     fmt_mb, fmt_us, interleave, load_average, median, one_thread, perf, progress,
                     quartiles, rel_diff, split, thread_pools, throughput, time_sides, usable_cpus,
                     verdict)
from peers import LEARNING_RATE, Chunks, CoreRunner, CoreSide, RefSide

SECTIONS = ("train", "flops", "load", "sample", "memory", "threads")
FULL = dict(steps=1000, large_steps=40, flops_steps=100, load_mb=100.0, sample_chars=10_000,
            ref_sample_chars=1000, memory_steps=100_000, large_memory_steps=300,
            thread_steps=2000, large_thread_steps=20, repeats=3, dgemm_n=1000)
QUICK = dict(steps=60, large_steps=6, flops_steps=10, load_mb=10.0, sample_chars=2000,
             ref_sample_chars=100, memory_steps=5000, large_memory_steps=20,
             thread_steps=300, large_thread_steps=6, repeats=1, dgemm_n=1000)
SIZES = dict(steps="SMALL training steps per side", large_steps="LARGE training steps per side",
             flops_steps="LARGE core steps per BLAS setting in the flops section",
             load_mb="size of the generated text to load, MB",
             sample_chars="characters sampled from the LARGE model",
             ref_sample_chars="characters sampled with the reference",
             memory_steps="SMALL steps of the RSS growth probe",
             large_memory_steps="LARGE steps of the peak RSS probe",
             thread_steps="SMALL steps per thread per throughput measurement",
             large_thread_steps="LARGE steps per thread per throughput measurement",
             repeats="repetitions of the load, sample, dgemm and thread measurements",
             dgemm_n="size of the square dgemm")
EPILOG = """\
sections: train (µs per step, core vs reference), flops (LARGE: FLOP rate vs dgemm), load
(a generated text), sample (LARGE), memory (fresh subprocesses), threads (two models in two
Python threads); a summary of the targets of issue 4 closes the report.

  python benchmarks/bench.py                 # full run, about 2-4 minutes
  python benchmarks/bench.py --quick         # smoke run, under a minute
  python benchmarks/bench.py --only train flops --output report.md"""
# smoothed losses after N free-running steps: chaotic training makes core and
# reference trajectories differ after ~20 steps, so this is only a sanity check
LOOSE = 0.05


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


class Bench:
    """The sections of the report, and what they pass on to its summary."""

    def __init__(self, args):
        self.args = args
        self.targets: list[tuple[str, str, object]] = []   # (target, measured, met)
        self.corpora = {name: load_corpus(name, args.data_dir) for name in ("SMALL", "LARGE")}
        self.ref_us: dict = {}      # median reference / core seconds per step, by config
        self.core_us: dict = {}
        self.dgemm_best = None      # best 1-thread dgemm GFLOP/s measured in section_flops
        stripes = [_dispatch.core.stripe_count(c.V, c.hidden) for c in self.corpora.values()]
        self.r = Report("charrnn_ext benchmark", args, [
            ["scipy / threadpoolctl", f"{scipy.__version__} / {threadpoolctl.__version__}"],
            ["core threads", f"OpenMP {'yes' if _dispatch.core.has_openmp() else 'no'}; output layer "
                             f"in {stripes[0]} stripe(s) at SMALL, {stripes[1]} at LARGE"]],
            heading="Machine and libraries")
        self.r.para("Thread pools (`threadpoolctl.threadpool_info()`); the reference's `np.dot` runs on "
                    "numpy's BLAS, the core calls `dgemm` from scipy's (`scipy.linalg.cython_blas`):")
        self.r.table(THREAD_POOL_HEADERS, thread_pools())

    def target(self, what: str, measured: str, met) -> None:
        self.targets.append((what, measured, met))

    def corpus(self, name: str):
        return self.corpora[name]

    # ======================================================================
    # 1. training speed: core vs reference
    # ======================================================================
    def section_train(self) -> None:
        a = self.args
        self.r.para("## Training step: core vs numpy reference")
        rows, checks, cpu_rows = [], [], []
        iqr = lambda xs: "{}–{}".format(*(fmt_us(v) for v in quartiles(xs)))
        for name, steps in (("SMALL", a.steps), ("LARGE", a.large_steps)):
            c = self.corpus(name)
            progress(f"train {name}: {steps} steps per side (V={c.V}, H={c.hidden}, T={c.seq})")
            res = self._train_compare(c, steps)
            med = {k: v.median for k, v in res.items()}
            for blas, core_key, ref_key in ((default_label(), "core", "ref"),
                                            ("1 thread (all BLAS and the core)", "core1", "ref1")):
                tc, tr = med[core_key], med[ref_key]
                rows.append([name, c.source, c.V, c.hidden, c.seq, steps, blas,
                             f"**{fmt_us(tc)}** ({iqr(res[core_key].times)})",
                             f"{fmt_us(tr)} ({iqr(res[ref_key].times)})",
                             f"**{tr / tc:.1f}×**", f"{med['ref'] / tc:.1f}×"])
                cc, cr = median(res[core_key].cpu), median(res[ref_key].cpu)
                cpu_rows.append([name, blas, fmt_us(cc), fmt_us(cr), f"{cr / cc:.1f}×",
                                 f"{res[core_key].share():.2f} / {res[ref_key].share():.2f}"])
            goal = 30 if name == "SMALL" else 40
            ratio, ratio1 = med["ref"] / med["core"], med["ref"] / med["core1"]
            self.ref_us[name] = med["ref"]
            self.core_us[name] = med["core"]
            self.target(f"{name}: train_step ≥ {goal}× faster than the reference (both as they run by default)",
                        f"{ratio:.1f}× (core on 1 thread: {ratio1:.1f}×)", ratio >= goal)
            # the same work: first losses, smoothed losses
            first = {k: max(rel_diff(x, y) for x, y in zip(res[k].losses[:3], res['ref'].losses[:3]))
                     for k in ("core", "core1", "ref1")}
            sm = {k: smoothed(res[k].losses, c.V, c.seq) for k in ("core", "ref")}
            tail = max(1, steps // 10)
            mean_tail = {k: float(np.mean(res[k].losses[-tail:])) for k in ("core", "ref")}
            ok_first = max(first.values()) <= 1e-9
            ok_smooth = rel_diff(sm["core"], sm["ref"]) <= LOOSE
            checks.append([name, ", ".join(f"{x:.10g}" for x in res['core'].losses[:3]),
                           f"{first['core']:.1e}", f"{first['core1']:.1e}", f"{first['ref1']:.1e}",
                           verdict(ok_first),
                           f"{sm['core']:.4f} / {sm['ref']:.4f} ({rel_diff(sm['core'], sm['ref']):.1e})",
                           f"{mean_tail['core']:.3f} / {mean_tail['ref']:.3f}", verdict(ok_smooth)])
            self.target(f"{name}: first 3 losses of core and reference agree within 1e-9 (relative)",
                        f"max {max(first.values()):.1e}", ok_first)
        self.r.para(f"Median µs per `train_step` call (interquartile range in brackets), timed with "
                    f"`time.perf_counter` around the call only. Four sides train their own copy of the same "
                    f"`init_params(V, H, seed={a.seed})` over the same chunks (the seed's data pass, learning "
                    f"rate {LEARNING_RATE}), in interleaved blocks (the order rotates from block to block): "
                    f"the core (`CharRNN.train_step` on int32 views of the encoded text; its `dgemm` is "
                    f"scipy's OpenBLAS) and the reference (`charrnn_ext.core.reference.train_step` = lossFun + "
                    f"Adagrad, on Python lists like the seed; `np.dot` on numpy's OpenBLAS), each as it runs "
                    f"by default and with everything on 1 thread (every BLAS limited with threadpoolctl, the "
                    f"core's own threads with `charrnn_ext.set_num_threads(1)`). The issue's ratio "
                    f"compares the default rows; the last column compares every core row with the reference "
                    f"as it runs by default.")
        self.r.table(["config", "text", "V", "H", "T", "steps", "BLAS threads", "core µs/step",
                      "reference µs/step", "reference / core", "reference (default) / core"], rows)
        self.r.para("Process CPU time of the same steps (`time.process_time`, read outside the timed window; "
                    "it includes BLAS worker threads). On a busy machine CPU time is steadier than wall time, "
                    "and the CPU share (CPU seconds / wall seconds of the timed calls) shows how much of a "
                    "core the process had: about 1.0 for a single-threaded step on an idle machine, below 1 "
                    "when other processes took the CPU, above 1 when BLAS worker threads ran (or spun).")
        self.r.table(["config", "BLAS threads", "core CPU µs/step", "reference CPU µs/step",
                      "reference / core (CPU)", "CPU share: core / reference"], cpu_rows)
        self.r.para("Same work: the first 3 losses (same chunks, same initial parameters) must agree within "
                    "1e-9 relative with the default reference's; later steps drift apart legitimately "
                    "(training is chaotic), so the smoothed losses (`0.999·s + 0.001·loss`, from "
                    "`-log(1/V)·T`) after all steps are only compared loosely (within 5%), with the mean "
                    "loss of the last 10% of steps beside them. Exactness step by step, from the same "
                    "state, is what the test suite checks (200 steps within 1e-9).")
        self.r.table(["config", "first 3 losses (core)", "max rel. diff: core", "core (BLAS 1 thread)",
                      "reference (BLAS 1 thread)", "all ≤ 1e-9",
                      "smoothed loss after N: core / ref (rel. diff)", "mean loss, last 10%: core / ref",
                      "agree loosely"], checks)

    def _train_compare(self, c, steps: int) -> dict:
        """Train the core and the reference, each as it runs by default and with
        everything on 1 thread, from the same initial parameters over the same
        chunks, in interleaved blocks: {side: Record}."""
        init = init_params(c.V, c.hidden, self.args.seed)
        null = contextlib.nullcontext
        sides = {"core": (CoreSide(init), null), "core1": (CoreSide(init), one_thread),
                 "ref": (RefSide(init), null), "ref1": (RefSide(init), one_thread)}
        n_blocks = min(steps, 20 if c.name == "SMALL" else 8)
        return time_sides(sides, Chunks(DataPass(c.ids, c.seq), n=steps), split(steps, n_blocks))

    # ======================================================================
    # 2. FLOP rate of the LARGE step vs dgemm
    # ======================================================================
    def section_flops(self) -> None:
        a = self.args
        c = self.corpus("LARGE")
        V, H, T = c.V, c.hidden, c.seq
        progress(f"flops: dgemm rates and {a.flops_steps} LARGE core steps")
        self.r.para("## LARGE: floating-point rate of the step vs dgemm")
        # the core step, default BLAS and BLAS 1 thread, interleaved blocks on one model
        model = CharRNN.from_params(init_params(V, H, a.seed))
        data = DataPass(c.ids, T)
        h, present = None, []
        times, ctxs = {"default": [], "1": []}, {"default": contextlib.nullcontext, "1": one_thread}
        for _ in range(3):   # warm-up (first call sizes the work buffers)
            x, y, reset = data.next()
            _, h = model.train_step(x, y, None if reset else h, LEARNING_RATE)
        n_blocks = max(2, min(10, a.flops_steps // 5))
        for _, key in interleave(ctxs, n_blocks):
            with ctxs[key]():
                for _ in range(max(1, a.flops_steps // n_blocks)):
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
        self.r.para(f"FLOPs of one step, V={V}, H={H}, T={T}, counted as the core computes it "
                    f"(`step_flops` in bench.py: +, −, ×, ÷ and each exp/log/tanh/sqrt count 1, comparisons 0; "
                    f"the input layer is a column lookup; Wxh gradient and Adagrad touch only the "
                    f"{n_present:.1f} distinct input characters of a chunk on average). "
                    f"Dense part = 3 GEMMs of 2·T·V·H + recurrence 2·(2T−1)·H² + dWhh 2·T·H²:")
        self.r.table(["part, formula", "FLOPs", "MFLOP"],
                     [[k, f"{v:,.0f}", f"{v / 1e6:.2f}"] for k, v, _ in parts]
                     + [["**total**", f"{total:,.0f}", f"**{total / 1e6:.2f}**"],
                        ["(dense part: GEMMs + recurrence)", f"{dense:,.0f}", f"{dense / 1e6:.2f}"]])
        # dgemm rates of this machine, measured now
        n = a.dgemm_n
        rows = []
        rates = {}
        for label, ctx, key in ((f"numpy matmul {n}×{n} float64, 1 thread", one_thread, "np1"),
                                (f"numpy matmul {n}×{n} float64, default threads ({blas_threads('numpy')})",
                                 contextlib.nullcontext, "npd"),
                                (f"scipy.linalg.blas.dgemm {n}×{n} (the core's OpenBLAS), 1 thread",
                                 one_thread, "sp1"),
                                (f"numpy matmul at the step's shape ({T}×{H} · {H}×{V}), 1 thread",
                                 one_thread, "shape1")):
            with ctx():
                med, best = dgemm_rate(key, n, (T, H, V), a.repeats * 3)
            rates[key] = best
            rows.append([label, f"{med:.1f}", f"{best:.1f}"])
        self.r.table(["dgemm", "GFLOP/s (median)", "GFLOP/s (best)"], rows)
        rows = []
        self.dgemm_best = max(rates["np1"], rates["sp1"])
        for key, label in (("default", default_label()),
                           ("1", "1 thread (all BLAS and the core)")):
            t = median(times[key])
            rows.append([label, len(times[key]), fmt_us(t), f"{total / t / 1e9:.2f}",
                         f"{dense / t / 1e9:.2f}", f"{100 * total / t / 1e9 / rates['np1']:.0f}%"])
        self.r.table(["core LARGE train_step", "steps", "median µs/step", "GFLOP/s (total work)",
                      "GFLOP/s (dense part)", "of 1-thread dgemm best"], rows)

    # ======================================================================
    # 3. loading: read + decode + Vocab.from_text + encode
    # ======================================================================
    def section_load(self) -> None:
        a = self.args
        n_bytes = int(a.load_mb * 1e6)
        self.r.para(f"## Loading: {fmt_mb(n_bytes)} of generated UTF-8 text")
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
        self.r.para(f"A file of {size:,} bytes ({n_chars:,} characters: printable ASCII and newlines, about 5% "
                    f"CJK ideographs; {V:,} distinct), generated and written to a temporary directory first "
                    f"(not timed; it is in the page cache). Timed: `open(...).read()`, `bytes.decode('utf-8')`, "
                    f"`Vocab.from_text(text)`, `vocab.encode(text)`. MB = 10⁶ bytes of the file.")
        self.r.table(["run", "read s", "decode s", "Vocab.from_text s", "encode s", "total s",
                      "MB/s (total)", "MB/s (from_text + encode)"], rows)
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
        self.r.para(f"## Sampling: {n:,} characters from a LARGE model (V={V}, H={H})")
        self.r.para(f"`model.sample(None, seed_ix, {n})` with a numpy Generator, model at its initial parameters "
                    f"(nearly uniform output distribution: the inverse-CDF search scans far, a worst case); "
                    f"{a.repeats} runs. Reference (`charrnn_ext.core.reference.sample`, default BLAS) timed on "
                    f"{n_ref} characters; the last column compares its ids with the core's for an identically "
                    f"seeded Generator.")
        self.r.table(["temperature", "seconds (median)", "seconds (best)", "chars/s", "µs/char",
                      "reference µs/char", "ratio", "same ids as reference"], rows)

    # ======================================================================
    # 5. memory (fresh subprocesses)
    # ======================================================================
    def section_memory(self) -> None:
        a = self.args
        self.r.para("## Memory (each measured in a fresh subprocess)")
        progress(f"memory SMALL: {a.memory_steps} steps in a subprocess")
        small = self._child("memory-small", a.memory_steps)
        progress(f"memory LARGE: {a.large_memory_steps} steps in a subprocess")
        large = self._child("memory-large", a.large_memory_steps)
        if small is not None:
            d_rss = small["after"]["rss"] - small["warm"]["rss"]
            d_peak = small["after"]["peak"] - small["warm"]["peak"]
            self.r.para(f"SMALL (V={small['V']}, H=100, T=25): {small['warmup']:,} warm-up steps, then "
                        f"{small['steps']:,} `train_step`s over the seed's data pass "
                        f"({small['us_per_step']:.1f} µs/step in this loop, Python loop included). "
                        f"VmRSS / VmHWM (peak) from `/proc/self/status`:")
            self.r.table(["point", "RSS", "peak RSS"], rss_rows(small, [
                ("base", "after imports"), ("warm", f"after {small['warmup']:,} warm-up steps"),
                ("after", f"after {small['steps']:,} more steps")])
                + [["**growth over the steps**", f"**{d_rss / 1e6:+.3f} MB**", f"**{d_peak / 1e6:+.3f} MB**"]])
            self.target(f"Memory: peak RSS growth over {small['steps']:,} SMALL steps < 1 MB",
                        f"{d_peak / 1e6:+.3f} MB (RSS {d_rss / 1e6:+.3f} MB)", d_peak < 1e6)
        if large is not None:
            arrays = large["model_bytes"] + large["data_bytes"]
            over = large["after"]["peak"] - large["base"]["rss"]
            self.r.para(f"LARGE (V={large['V']}, H=200, T=30): load the text, build the model, "
                        f"{large['steps']} `train_step`s. The interpreter with numpy, scipy and charrnn_ext "
                        f"imported is the baseline; the target compares the peak above it with the arrays "
                        f"the work needs: params + Adagrad memory + grads "
                        f"({fmt_mb(large['model_bytes'])}) + encoded data ({fmt_mb(large['data_bytes'])}).")
            self.r.table(["point", "RSS", "peak RSS"], rss_rows(large, [
                ("base", "baseline: after imports"), ("loaded", "text loaded and encoded"),
                ("built", "model built"), ("one", "after 1 step"), ("after", f"after {large['steps']} steps")]))
            self.r.table(["measure", "value"], [
                ["params + memory + grads + data", fmt_mb(arrays)],
                ["peak RSS − baseline RSS", fmt_mb(over)],
                ["**ratio (peak − baseline) / arrays**", f"**{over / arrays:.2f}×**"],
                ["whole process: peak RSS / arrays (baseline included)",
                 f"{large['after']['peak'] / arrays:.2f}×"],
            ])
            self.target("Memory: LARGE peak RSS (above the interpreter baseline) ≤ 1.5× params+memory+grads+data",
                        f"{over / arrays:.2f}×", over / arrays <= 1.5)

    def _child(self, kind: str, steps: int):
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "memory_probe.py"), kind, str(steps),
               str(self.args.data_dir), str(self.args.seed)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            self.r.para(f"**{kind} subprocess failed** (exit {proc.returncode}):")
            self.r.para("```\n" + proc.stderr.strip()[-3000:] + "\n```")
            self.target(f"{kind}", "subprocess failed", False)
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])

    # ======================================================================
    # 6. threads
    # ======================================================================
    def section_threads(self) -> None:
        a = self.args
        self.r.para("## Threads: two models in two Python threads")
        rows = []
        for name, steps in (("SMALL", a.thread_steps), ("LARGE", a.large_thread_steps)):
            c = self.corpus(name)
            progress(f"threads {name}: {steps} steps per thread per measurement, {a.repeats} rounds")
            runners = [CoreRunner(init_params(c.V, c.hidden, a.seed), c.ids, c.seq) for _ in range(2)]
            for r in runners:
                r.run(3)   # warm-up
            for label, ctx in (("1 thread per model (BLAS and core)", one_thread),
                               (default_label(), contextlib.nullcontext)):
                one, two = [], []
                with ctx():
                    for _ in range(a.repeats):
                        one.append(throughput(runners[:1], steps))
                        two.append(throughput(runners, steps))
                s1, s2 = median([x[0] for x in one]), median([x[0] for x in two])
                c1, c2 = median([x[1] for x in one]), median([x[1] for x in two])
                rows.append([name, label, f"{s1:,.1f}", f"{s2:,.1f}", f"**{s2 / s1:.2f}×**",
                             f"{c1:.2f} / {c2:.2f}"])
                if ctx == one_thread:   # bound methods: equal, never identical
                    self.target(f"Threads: {name} two threads ≥ 1.6× one thread (1 thread per model)",
                                f"{s2 / s1:.2f}×", s2 / s1 >= 1.6)
        self.r.para(f"Two independent `CharRNN` models (own parameters, own data pass), each trained in its own "
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
        self.r.table(["config", "BLAS threads", "1 thread: steps/s", "2 threads: steps/s (total)",
                      "scaling", "CPU/wall: 1 / 2 threads"], rows)

    # ======================================================================
    def summary(self) -> None:
        self.r.targets("## Targets of issue 4", self.targets)
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
        self.r.para("## What the ratio targets ask of this machine")
        self.r.para(f"Lower bounds on a step's time from rates measured in this run (bounds from measurements, "
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
        self.r.table(["config", "reference µs/step", "target µs/step", "dense MFLOP",
                      "dense work, 1 core", "recurrence chain", f"{cpus} cores, perfect overlap",
                      "core now"], rows)


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


def rss_rows(probe: dict, points) -> list:
    """Rows [label, RSS, peak RSS] of a memory probe's points [(key, label)]."""
    return [[label, fmt_mb(probe[key]["rss"]), fmt_mb(probe[key]["peak"])] for key, label in points]


def main(argv=None) -> int:
    p = Parser(__doc__, FULL, QUICK, SIZES, only=SECTIONS, epilog=EPILOG)
    args = p.parse_args(argv)
    bench = Bench(args)
    for section in SECTIONS:
        if args.only and section not in args.only:
            continue
        t0 = perf()
        getattr(bench, f"section_{section}")()
        progress(f"{section} done in {perf() - t0:.1f} s (load average {load_average()})")
    bench.summary()
    bench.r.finish(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
