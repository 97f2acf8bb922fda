#!/usr/bin/env python
"""Optional benchmark: µs per training step of the core (train loop and train_step, default threads, 1 thread, 1 CPU) against a jitted JAX step and a K-step jax.lax.scan."""
from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np

from harness import (Parser, Record, Report, core_threads, fmt_us, interleave, load_average,
                     load_peer, missing, perf, pinned_to_cpu, pinning_unavailable, progress,
                     rel_diff, timed_calls, timed_steps, turn, usable_cpus)

jax = load_peer("jax")          # before charrnn_ext, as the README's figures were measured (load_peer)

from bench_data import DataPass, load_corpus  # noqa: E402
from charrnn_ext import CharRNN, get_num_threads  # noqa: E402
from charrnn_ext.core.spec import init_params  # noqa: E402
from peers import (LEARNING_RATE, Chunks, CoreSide, CoreTrainSide, JaxScanSide,  # noqa: E402
                   JaxStepSide, make_jax_fns)

K = 50                                  # training steps per call of CharRNN.train / jax.lax.scan
TOL = 1e-12                             # first-3-losses agreement (relative)
# Untimed pause before each side's round: JAX's worker threads keep spinning
# for a while after a call returns, and a side timed right after one would
# share the CPUs with them (measured: the core's 2-thread steps then ran
# at its 1-thread speed); the core's threads sleep when idle.
SETTLE = 0.05
# Calls of K steps per side and round (~0.1 s of training): a side's first
# call after the pause starts from sleeping threads (a SMALL call of K steps
# takes only a few ms), as continuous training does not
ROUND_CALLS = {"SMALL": 20, "LARGE": 1}
FULL = dict(steps=4000, large_steps=500)     # steps are rounded up to K
QUICK = dict(steps=1000, large_steps=100)
SIZES = dict(steps=f"SMALL steps per side, a multiple of {K}",
             large_steps=f"LARGE steps per side, a multiple of {K}")
WARMUP = {"SMALL": 10, "LARGE": 3}     # untimed per-step warm-up steps on a throwaway copy
WRAP_STEPS = (4, 6)                     # the data-pass check: calls of CharRNN.train on 4T+3 ids
EPILOG = """\
  python benchmarks/bench_jax.py                 # full run, about a minute
  python benchmarks/bench_jax.py --quick         # smoke run, a few seconds
  python benchmarks/bench_jax.py --steps 1000 --large-steps 250 --output jax.md"""


class CheckedTrainSide(CoreTrainSide):
    """CoreTrainSide whose position after each call must be the data pass's (``ends``:
    the position after each step of the data pass)."""

    def __init__(self, init, ids, T, ends):
        super().__init__(init, ids, T)
        self.ends, self.steps = ends, 0

    def call(self, k):
        losses = super().call(k)
        self.steps += k
        if len(losses) != k or self.position != self.ends[self.steps - 1]:
            raise RuntimeError(f"CharRNN.train left the data pass: {len(losses)} of {k} steps, "
                               f"position {self.position} after step {self.steps}, "
                               f"expected {self.ends[self.steps - 1]}")
        return losses


def check_wrap(init, H, ids, T) -> bool:
    """CharRNN.train against train_step over DataPass on the first 4T+3 ids, where the
    data pass wraps every 4 steps (zero h, position 0): calls of WRAP_STEPS steps,
    position and h passed on (the second call starts at the wrap). True when the
    losses are identical bit for bit and h and the position end equal."""
    text = np.ascontiguousarray(ids[:4 * T + 3])
    chunks, ref, rec = Chunks(DataPass(text, T)), CoreSide(init), Record()
    timed_steps(ref, chunks[:sum(WRAP_STEPS)], rec)
    model, losses, h, position = CharRNN.from_params(init), [], None, 0
    for n in WRAP_STEPS:
        ls, h, position = model.train(text, n, T, hprev=h, position=position,
                                      learning_rate=LEARNING_RATE)
        losses += [float(v) for v in ls]
    return losses == rec.losses and position == chunks.data.p and np.array_equal(h, ref.h)


def parse_args(argv=None):
    p = Parser(__doc__, FULL, QUICK, SIZES, only=("SMALL", "LARGE"), epilog=EPILOG)
    p.add_argument("--pin-cpu", type=int, help="the CPU of the 1 CPU sides (default: the "
                                               "highest-numbered CPU this process may use)")
    args = p.parse_args(argv)
    for key in FULL:
        setattr(args, key, max(K, -(-getattr(args, key) // K) * K))   # round up to K
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if jax is None:
        print("bench_jax: " + missing("jax", "nothing to compare against"))
        return 0
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    threads = get_num_threads()
    no_pin = pinning_unavailable()
    pin_cpu = None
    if no_pin is None:
        allowed = os.sched_getaffinity(0)
        pin_cpu = max(allowed) if args.pin_cpu is None else args.pin_cpu
        if pin_cpu not in allowed:
            progress(f"--pin-cpu {pin_cpu}: not one of the CPUs this process may use {sorted(allowed)}")
            return 2
    r = Report("charrnn_ext vs JAX: training step", args, [
        ["jax", f"{jax.__version__} (backend {jax.default_backend()}, devices {jax.devices()}, x64 on)"],
        ["1 CPU sides", f"every thread of the process pinned to CPU {pin_cpu} during their runs "
                        f"(of {usable_cpus()} usable)" if no_pin is None else f"**skipped**: {no_pin}"]])

    label = f"{threads} thread" + ("" if threads == 1 else "s")
    train_n, train_1, train_cpu = f"core train ({label})", "core train (1 thread)", "core train (1 CPU)"
    step_n = f"core step ({label})"
    jstep, jscan, jscan_cpu = "jax step", "jax scan", "jax scan (1 CPU)"
    keys = [k for k in (train_n, train_1, train_cpu, step_n, jstep, jscan, jscan_cpu)
            if no_pin is None or k not in (train_cpu, jscan_cpu)]
    ref_key = step_n                             # the seed's per-step function
    # (JAX side, core side): ratios JAX / core; above 1x the core is faster
    pairs = [(a, b) for a, b in [(jstep, step_n), (jscan, train_n), (jscan, train_1),
                                 (jscan_cpu, train_cpu), (step_n, train_n)] if a in keys and b in keys]
    pinned = []                                  # threads pinned per run of a 1 CPU side

    @contextlib.contextmanager
    def one_cpu():
        with pinned_to_cpu(pin_cpu) as n:
            pinned.append(n)
            yield

    contexts = {train_n: lambda: core_threads(threads), train_1: lambda: core_threads(1),
                train_cpu: lambda: _both(one_cpu(), core_threads(1)),
                step_n: lambda: core_threads(threads), jstep: contextlib.nullcontext,
                jscan: contextlib.nullcontext, jscan_cpu: one_cpu}
    results, compile_notes, wrap_ok = {}, [], {}
    for name in args.only or ["SMALL", "LARGE"]:
        c = load_corpus(name, args.data_dir)
        V, H, T = c.V, c.hidden, c.seq
        steps = args.steps if name == "SMALL" else args.large_steps
        per_round = K * ROUND_CALLS[name]
        steps = -(-steps // per_round) * per_round
        progress(f"{name}: V={V}, H={H}, T={T}, {steps} steps per side in {steps // per_round} "
                 f"rounds of {per_round}")
        init = init_params(V, H, args.seed)
        chunks = Chunks(DataPass(c.ids, T), n=steps)
        for ch in chunks:
            ch.jx, ch.jy = jnp.asarray(ch.x.astype(np.int32)), jnp.asarray(ch.y.astype(np.int32))
        ends = [ch.start + T for ch in chunks]      # the data pass's position after each step
        ids = jnp.asarray(c.ids.astype(np.int32))
        jstarts = jnp.asarray(np.array([ch.start for ch in chunks], dtype=np.int32).reshape(-1, K))
        jresets = jnp.asarray(np.array([ch.reset for ch in chunks], dtype=bool).reshape(-1, K))
        wrap_ok[name] = check_wrap(init, H, c.ids, T)
        step, scan_k = make_jax_fns(jax, jnp, T)
        makers = {train_n: lambda: CheckedTrainSide(init, c.ids, T, ends),
                  step_n: lambda: CoreSide(init),
                  jstep: lambda: JaxStepSide(jnp, init, step),
                  jscan: lambda: JaxScanSide(jnp, init, ids, jstarts, jresets, scan_k)}
        makers[train_1] = makers[train_cpu] = makers[train_n]
        makers[jscan_cpu] = makers[jscan]
        # warm-up on throwaway copies (jit compilation, thread pools); the
        # pinned sides run the code their unpinned twins warmed
        t0 = perf()
        timed_steps(makers[jstep](), chunks[:1], Record())
        t_step, t0 = perf() - t0, perf()
        timed_calls(makers[jscan](), K, 1, Record())
        compile_notes.append(f"{name}: jit of the step {t_step:.1f} s, of the K-step scan "
                             f"{perf() - t0:.1f} s (first call, compile included)")
        for key in (step_n, jstep):
            with contexts[key]():
                timed_steps(makers[key](), chunks[:WARMUP[name]], Record())
        for key in (train_n, train_1):
            with contexts[key]():
                timed_calls(makers[key](), K, 1, Record())
        sides = {k: makers[k]() for k in keys}
        recs = {k: Record() for k in keys}
        for b, k in interleave(keys, steps // per_round):
            time.sleep(SETTLE)
            with turn(recs[k]), contexts[k]():
                if hasattr(sides[k], "call"):
                    timed_calls(sides[k], K, ROUND_CALLS[name], recs[k])
                else:
                    timed_steps(sides[k], chunks[b * per_round:(b + 1) * per_round], recs[k])
        results[name] = (c, steps, recs, sorted(set(pinned)))
        pinned.clear()
        progress(f"{name}: done (load average {load_average()})")
    check_rows = report(r, args, results, keys, pairs, ref_key, compile_notes, wrap_ok, no_pin,
                        pin_cpu, (train_n, train_1, train_cpu, jscan, jscan_cpu))
    ok = all(row[-4] == "**yes**" for row in check_rows)
    if not ok:
        progress(f"FAILED: the first 3 losses do not agree within {TOL:g}")
    if not all(row[-3] == "yes" and row[-2] == "yes" for row in check_rows):
        progress("WARNING: the core sides differ, or CharRNN.train does not follow the data pass")
    return 0 if ok else 1


@contextlib.contextmanager
def _both(a, b):
    with a, b:
        yield


def report(r, args, results, keys, pairs, ref_key, compile_notes, wrap_ok, no_pin, pin_cpu, names):
    train_n, train_1, train_cpu, jscan, jscan_cpu = names
    r.para("## Median µs per training step")
    r.para(f"Each side trains its own copy of `init_params(V, H, seed={args.seed})` over the same chunks "
           f"(the seed's data pass, learning rate {LEARNING_RATE}, float64), interleaved in rounds "
           f"(SMALL: {ROUND_CALLS['SMALL']} calls of {K} steps per side, LARGE: "
           f"{ROUND_CALLS['LARGE']}) whose order rotates, each side's turn after an untimed pause of "
           f"{SETTLE:g} s (JAX's worker threads spin on for a while after a call), after untimed warm-up "
           f"on throwaway copies (jit compilation included there, not here). Per-step sides (core step, "
           f"jax step): `time.perf_counter` around each step call (JAX: until `float(loss)`); core train "
           f"and jax scan: one time per call of {K} steps, divided by {K}. "
           + (f"1 CPU sides: every thread of the process pinned to CPU {pin_cpu} during their runs "
              f"(the core also on 1 thread)." if no_pin is None else f"1 CPU sides skipped: {no_pin}."))
    rows, ratio_rows, cpu_rows, check_rows, slower, med_all = [], [], [], [], [], {}
    for name, (c, steps, recs, pinned) in results.items():
        med = med_all[name] = {k: v.median for k, v in recs.items()}
        rows.append([name, c.source, c.V, c.hidden, c.seq, steps]
                    + [f"**{fmt_us(med[k])}**" if k.startswith("core") else fmt_us(med[k]) for k in keys])
        ratio_rows.append([name] + [f"**{med[a] / med[b]:.2f}×**" for a, b in pairs])
        slower += [f"{name}: {b} ({fmt_us(med[b])} µs) is SLOWER than {a} ({fmt_us(med[a])} µs)"
                   for a, b in pairs if a.startswith("jax") and med[a] < med[b]]
        cpu_rows.append([name] + [f"{recs[k].turn_cpu / recs[k].turn_wall:.2f}" for k in keys]
                        + ([("?" if not pinned else str(pinned[0]) if len(pinned) == 1
                             else f"{pinned[0]}–{pinned[-1]}")] if no_pin is None else []))
        ref3 = recs[ref_key].losses[:3]
        others = [k for k in keys if k != ref_key]
        diffs = {k: max(rel_diff(a, b) for a, b in zip(recs[k].losses[:3], ref3)) for k in others}
        same = all(recs[k].losses == recs[ref_key].losses for k in keys if k.startswith("core"))
        tail = max(1, steps // 10)
        check_rows.append([name, ", ".join(f"{x:.15g}" for x in ref3)]
                          + [f"{diffs[k]:.1e}" for k in others]
                          + ["**yes**" if max(diffs.values()) <= TOL else "**NO**",
                             "yes" if same else "**NO**", "yes" if wrap_ok[name] else "**NO**",
                             " / ".join(f"{np.mean(recs[k].losses[-tail:]):.3f}" for k in keys)])
    r.table(["config", "text", "V", "H", "T", "steps"] + keys, rows)
    r.para("Ratios of the medians (above 1× the second side is faster):")
    r.table(["config"] + [f"{a} / {b}" for a, b in pairs], ratio_rows)
    r.para("**The core is slower than JAX here:** " + "; ".join(slower) + "." if slower else
           "Each core side is faster than its JAX peer (per step; K steps per call"
           + ("; on 1 CPU" if no_pin is None else "") + ") in every configuration of this run.")
    r.para("JIT compilation (not in the step times): " + "; ".join(compile_notes) + ".")
    r.para("CPU share of the timed rounds (process CPU seconds / wall seconds; about 1 for one busy "
           "thread, above 1 when worker threads ran, below 1 when other processes took the CPU)"
           + ("; the 1 CPU sides cannot exceed 1; and how many threads of the process were pinned "
              "per run:" if no_pin is None else ":"))
    r.table(["config"] + keys + (["threads pinned"] if no_pin is None else []), cpu_rows)
    over = [f"{name}: {k} {recs[k].turn_cpu / recs[k].turn_wall:.2f}"
            for name, (_, _, recs, _) in results.items() for k in (train_cpu, jscan_cpu)
            if k in recs and recs[k].turn_cpu / recs[k].turn_wall > 1.05]
    if over:
        r.para("**A 1 CPU side used more than one CPU (the pinning did not hold):** " + "; ".join(over) + ".")
    r.para(f"Same work: {ref_key}'s first 3 losses and each other side's largest relative difference "
           f"from them (must be ≤ {TOL:g}). The core sides must also agree bit for bit over all steps "
           f"(the thread count does not change the results; CharRNN.train is the loop of train_step), "
           f"and CharRNN.train must follow the data pass across its wrap (a text of 4T+3 ids, calls of "
           f"{' and '.join(map(str, WRAP_STEPS))} steps: losses, h and position as train_step over "
           f"DataPass). Later steps of JAX drift apart legitimately (training is chaotic; rounding "
           f"differences grow); the mean loss of the last 10% of steps is shown per side "
           f"({' / '.join(keys)}) for information only.")
    r.table(["config", f"first 3 losses ({ref_key})"] + [f"max rel. diff: {k}" for k in keys if k != ref_key]
            + [f"all ≤ {TOL:g}", "core sides identical", "data pass wrap", "mean loss, last 10%"],
            check_rows)

    def target(config, a, b, goal, what):
        if config not in med_all:
            return [config, what, "–", "not run (--only)"]
        med = med_all[config]
        if a not in med or b not in med:
            return [config, what, "–", f"skipped ({no_pin})"]
        return [config, what, f"{med[a] / med[b]:.2f}×", "**yes**" if med[a] / med[b] >= goal else "**no**"]

    r.para("## Targets (issue 10)")
    r.para("Ratio = median µs per step of the JAX side / of the core side (measured in this run; "
           "goals, not assertions).")
    r.table(["config", "target", "JAX / core", "met"], [
        target("SMALL", jscan, train_n, 2.0, f"{train_n} ≥ 2× faster than {jscan}"),
        target("LARGE", jscan, train_n, 2.0, f"{train_n} ≥ 2× faster than {jscan}"),
        target("LARGE", jscan_cpu, train_cpu, 1.0, f"{train_cpu} faster than {jscan_cpu}"),
        target("LARGE", jscan, train_1, 1.0, f"(information) {train_1}, unpinned, faster than "
                                             f"{jscan} (JAX on its default threads)")])
    r.finish(args.output)
    return check_rows


if __name__ == "__main__":
    sys.exit(main())
