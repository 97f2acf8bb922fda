#!/usr/bin/env python
"""Optional benchmark: the charrnn_ext core's training step against a jitted JAX version.

JAX is NOT a dependency of charrnn_ext: without it this script says so and exits 0.
Run from anywhere against the INSTALLED package (``pip install .`` first, then
``pip install jax`` — the CPU build):

    python benchmarks/bench_jax.py                 # full run, about a minute
    python benchmarks/bench_jax.py --quick         # smoke run, a few seconds
    python benchmarks/bench_jax.py --steps 1000 --large-steps 250 --output jax.md

In one process, for SMALL (65 symbols, hidden 100, seq 25) and LARGE (~3150 symbols,
hidden 200, seq 30), it times the median µs per training step of:

  core (N threads)  CharRNN.train_step, charrnn_ext's default threads (one per usable CPU)
  core (1 thread)   the same after charrnn_ext.set_num_threads(1)
  jax step          the same algorithm in JAX, float64, one jax.jit step called from Python
                    per step: gather of the Wxh columns, tanh recurrence (lax.scan over T),
                    the output layer as one matmul over the T steps, log-softmax
                    cross-entropy summed over the chunk, jax.grad (full BPTT in the chunk),
                    elementwise clip to [-CLIP, CLIP], Adagrad
                    (mem += g*g; p -= lr * g / sqrt(mem + ADAGRAD_EPS)); hidden state carried
  jax scan          K = 50 of those training steps per call in one jitted jax.lax.scan; the
                    data pass runs inside (chunk start offsets and reset flags are
                    precomputed in numpy and passed in; the text stays on the device), so no
                    Python per step; µs per step = call time / K

JAX runs as it does by default (its CPU client picks its own threads). Every side starts from
the same charrnn_ext.spec.init_params(V, H, seed) and trains over the same chunks (the seed's
data pass, benchmarks/bench_data.py), interleaved in rounds of K steps whose order rotates.
The first 3 losses of every side must agree with the core's within 1e-12 (relative).
Progress goes to stderr, the markdown report to stdout.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # bench_data / bench_util live next to this file
    sys.path.insert(0, str(HERE))

LEARNING_RATE = 0.1
K = 50                                  # training steps per jax.lax.scan call
TOL = 1e-12                             # first-3-losses agreement (relative)
perf = time.perf_counter
cpu_time = time.process_time

# full run / --quick (each overridable on the command line); steps are rounded up to K
FULL = dict(steps=2000, large_steps=500)
QUICK = dict(steps=200, large_steps=100)
WARMUP = {"SMALL": 10, "LARGE": 3}     # untimed per-step warm-up steps on a throwaway copy


def progress(msg: str) -> None:
    print(f"[bench_jax] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# the JAX step
# ---------------------------------------------------------------------------

def make_jax_fns(jax, jnp, clip: float, eps: float, lr: float, T: int):
    """(step, scan_k): jitted functions of the JAX training step.

    params / mem: tuples (Wxh (H, V), Whh (H, H), Why (V, H), bh (H,), by (V,)).
    step(params, mem, h, x, y) -> (params, mem, h, loss)
    scan_k(params, mem, h, ids, starts, resets) -> (params, mem, h, losses), K steps.
    """
    lax = jax.lax

    def loss_fn(params, h, x, y):
        Wxh, Whh, Why, bh, by = params
        a = jnp.take(Wxh, x, axis=1).T + bh            # (T, H): gathered Wxh columns + bh

        def rec(h, a_t):
            h = jnp.tanh(a_t + Whh @ h)
            return h, h

        h_last, hs = lax.scan(rec, h, a)                # (T, H), the serial recurrence
        logits = hs @ Why.T + by                        # (T, V): one matmul for all T steps
        logp = jax.nn.log_softmax(logits, axis=-1)
        loss = -jnp.sum(jnp.take_along_axis(logp, y[:, None], axis=1))
        return loss, h_last

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)  # h is not differentiated: truncated BPTT

    def train(params, mem, h, x, y):
        (loss, h_last), grads = grad_fn(params, h, x, y)
        new_p, new_m = [], []
        for p, g, m in zip(params, grads, mem):
            g = jnp.clip(g, -clip, clip)
            m = m + g * g
            new_p.append(p - lr * g / jnp.sqrt(m + eps))
            new_m.append(m)
        return tuple(new_p), tuple(new_m), h_last, loss

    def scan_body(ids):
        def body(carry, inp):
            params, mem, h = carry
            start, reset = inp
            h = jnp.where(reset, jnp.zeros_like(h), h)   # back to the start of the text
            x = lax.dynamic_slice(ids, (start,), (T,))
            y = lax.dynamic_slice(ids, (start + 1,), (T,))
            params, mem, h, loss = train(params, mem, h, x, y)
            return (params, mem, h), loss
        return body

    def scan_k(params, mem, h, ids, starts, resets):
        (params, mem, h), losses = lax.scan(scan_body(ids), (params, mem, h), (starts, resets))
        return params, mem, h, losses

    return (jax.jit(train, donate_argnums=(0, 1)),
            jax.jit(scan_k, donate_argnums=(0, 1)))


# ---------------------------------------------------------------------------
# the sides: each .run(lo, hi) trains over steps lo..hi-1 and returns (times, losses)
# ---------------------------------------------------------------------------

class CoreSide:
    def __init__(self, init, H, chunks, threads, charrnn_ext):
        self.model = charrnn_ext.CharRNN.from_params(init)
        self.H, self.chunks, self.threads, self.ext = H, chunks, threads, charrnn_ext
        self.h = np.zeros((H, 1))

    def run(self, lo, hi):
        old = self.ext.get_num_threads()
        self.ext.set_num_threads(self.threads)
        times, losses = [], []
        try:
            for x, y, reset in self.chunks[lo:hi]:
                if reset:
                    self.h = np.zeros((self.H, 1))
                t0 = perf()
                loss, self.h = self.model.train_step(x, y, self.h, LEARNING_RATE)
                times.append(perf() - t0)
                losses.append(float(loss))
        finally:
            self.ext.set_num_threads(old)
        return times, losses


def jax_state(jnp, init):
    arrays = [init["Wxh"], init["Whh"], init["Why"], init["bh"].ravel(), init["by"].ravel()]
    params = tuple(jnp.array(a, dtype=jnp.float64) for a in arrays)
    mem = tuple(jnp.zeros_like(p) for p in params)
    return params, mem


class JaxStepSide:
    """The jitted single step, called from Python per step (x, y are device arrays
    built before timing; float(loss) waits for the step)."""

    def __init__(self, jnp, init, H, jchunks, step):
        self.jnp, self.H, self.jchunks, self.step = jnp, H, jchunks, step
        self.params, self.mem = jax_state(jnp, init)
        self.h = jnp.zeros(H, dtype=jnp.float64)

    def run(self, lo, hi):
        times, losses = [], []
        for x, y, reset in self.jchunks[lo:hi]:
            if reset:
                self.h = self.jnp.zeros(self.H, dtype=self.jnp.float64)
            t0 = perf()
            self.params, self.mem, self.h, loss = self.step(self.params, self.mem, self.h, x, y)
            loss = float(loss)
            times.append(perf() - t0)
            losses.append(loss)
        return times, losses


class JaxScanSide:
    """K steps per call of the jitted lax.scan; one time per call, divided by K."""

    def __init__(self, jnp, init, H, ids, starts, resets, scan_k):
        self.H, self.ids, self.scan_k = H, ids, scan_k
        self.starts, self.resets = starts, resets      # device arrays, one row per K steps
        self.params, self.mem = jax_state(jnp, init)
        self.h = jnp.zeros(H, dtype=jnp.float64)

    def run(self, lo, hi):
        assert lo % K == 0 and hi % K == 0
        times, losses = [], []
        for c in range(lo // K, hi // K):
            t0 = perf()
            self.params, self.mem, self.h, ls = self.scan_k(self.params, self.mem, self.h, self.ids,
                                                            self.starts[c], self.resets[c])
            ls = np.asarray(ls)
            times.append((perf() - t0) / K)
            losses.extend(float(v) for v in ls)
        return times, losses


# ---------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a fast smoke run (few steps)")
    p.add_argument("--steps", type=int, help=f"SMALL steps per side, a multiple of {K} "
                                             f"({FULL['steps']} / quick {QUICK['steps']})")
    p.add_argument("--large-steps", type=int, help=f"LARGE steps per side, a multiple of {K} "
                                                   f"({FULL['large_steps']} / quick {QUICK['large_steps']})")
    p.add_argument("--only", choices=("SMALL", "LARGE"), help="one configuration only")
    p.add_argument("--data-dir", help="directory of tinyshakespeare.txt and lunyu_shijing.txt "
                                      "(default ../shared/data relative to the repository root; "
                                      "missing files are replaced by generated text)")
    p.add_argument("--seed", type=int, default=0, help="seed of init_params (0)")
    p.add_argument("--output", help="also write the markdown report to this file")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
        setattr(args, key, max(K, -(-getattr(args, key) // K) * K))   # round up to K
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import jax
    except ImportError:
        print("bench_jax: JAX is not installed, so there is nothing to compare against "
              "(optional; charrnn_ext does not need it): pip install jax")
        return 0
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    import charrnn_ext
    from charrnn_ext.defaults import ADAGRAD_EPS, CLIP
    from charrnn_ext.spec import init_params

    from bench_data import DataPass, default_data_dir, load_corpus
    from bench_util import (Report, emit_run_header, fmt_us, load_average, machine_rows, median,
                            rel_diff, table)

    try:
        from charrnn_ext import _dispatch
        variant = _dispatch.variant
    except (ImportError, AttributeError):
        variant = "?"

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    core_threads = charrnn_ext.get_num_threads()
    r = Report()
    t_start = perf()

    r.emit("# charrnn_ext vs JAX: training step")
    r.emit()
    emit_run_header(r, "bench_jax.py", args.quick)
    r.emit(table(["item", "value"], machine_rows() + [
        ["Python", platform.python_version()],
        ["numpy", np.__version__],
        ["jax", f"{jax.__version__} (backend {jax.default_backend()}, devices {jax.devices()}, x64 on)"],
        ["charrnn_ext", f"{charrnn_ext.__version__} (core variant `{variant}`, default threads "
                        f"{core_threads}) from `{Path(charrnn_ext.__file__).parent}`"],
        ["data directory", f"`{data_dir}`" + ("" if data_dir.is_dir() else " (missing: texts are generated)")],
    ]))
    r.emit()

    core_key = f"core ({core_threads} threads)"
    keys = [core_key, "core (1 thread)", "jax step", f"jax scan (K={K})"]
    results = {}
    compile_notes = []
    for name in ([args.only] if args.only else ["SMALL", "LARGE"]):
        c = load_corpus(name, data_dir)
        V, H, T = c.V, c.hidden, c.seq
        steps = args.steps if name == "SMALL" else args.large_steps
        progress(f"{name}: V={V}, H={H}, T={T}, {steps} steps per side in {steps // K} rounds of {K}")
        init = init_params(V, H, args.seed)
        data = DataPass(c.ids, T)
        chunks, starts, resets = [], [], []
        for _ in range(steps):
            x, y, reset = data.next()
            chunks.append((x, y, reset))
            starts.append(data.p - T)               # the chunk's offset in the text
            resets.append(reset)
        jchunks = [(jnp.asarray(x.astype(np.int32)), jnp.asarray(y.astype(np.int32)), rs)
                   for x, y, rs in chunks]
        ids = jnp.asarray(c.ids.astype(np.int32))
        jstarts = jnp.asarray(np.array(starts, dtype=np.int32).reshape(-1, K))
        jresets = jnp.asarray(np.array(resets, dtype=bool).reshape(-1, K))

        step, scan_k = make_jax_fns(jax, jnp, CLIP, ADAGRAD_EPS, LEARNING_RATE, T)
        makers = {
            core_key: lambda: CoreSide(init, H, chunks, core_threads, charrnn_ext),
            "core (1 thread)": lambda: CoreSide(init, H, chunks, 1, charrnn_ext),
            "jax step": lambda: JaxStepSide(jnp, init, H, jchunks, step),
            f"jax scan (K={K})": lambda: JaxScanSide(jnp, init, H, ids, jstarts, jresets, scan_k),
        }
        # warm-up on throwaway copies (jit compilation, thread pools)
        t0 = perf()
        JaxStepSide(jnp, init, H, jchunks, step).run(0, 1)
        t_step = perf() - t0
        t0 = perf()
        JaxScanSide(jnp, init, H, ids, jstarts, jresets, scan_k).run(0, K)
        t_scan = perf() - t0
        compile_notes.append(f"{name}: jit of the step {t_step:.1f} s, of the K-step scan {t_scan:.1f} s "
                             f"(first call, compile included)")
        for key in (core_key, "core (1 thread)", "jax step"):
            makers[key]().run(0, WARMUP[name])
        sides = {k: make() for k, make in makers.items()}

        state = {k: {"times": [], "losses": []} for k in sides}
        cpu = {k: [0.0, 0.0] for k in sides}
        n_rounds = steps // K
        for b in range(n_rounds):
            rot = b % len(keys)
            for k in keys[rot:] + keys[:rot]:        # rotate who goes first
                c0, w0 = cpu_time(), perf()
                times, losses = sides[k].run(b * K, (b + 1) * K)
                cpu[k][0] += cpu_time() - c0
                cpu[k][1] += perf() - w0
                state[k]["times"] += times
                state[k]["losses"] += losses
        results[name] = (c, steps, state, cpu)
        progress(f"{name}: done (load average {load_average()})")

    # -- report ------------------------------------------------------------------
    r.emit("## Median µs per training step")
    r.emit()
    r.emit(f"Each side trains its own copy of `init_params(V, H, seed={args.seed})` over the same chunks "
           f"(the seed's data pass, learning rate {LEARNING_RATE}, float64), interleaved in rounds of "
           f"{K} steps whose order rotates, after untimed warm-up on throwaway copies (jit compilation "
           f"included there, not here). Per-step sides: `time.perf_counter` around each step call "
           f"(JAX: until `float(loss)`); jax scan: one time per call of {K} steps, divided by {K}. "
           f"Ratios: JAX / core, so above 1× means the core is faster.")
    r.emit()
    headers = (["config", "text", "V", "H", "T", "steps"] + keys
               + [f"jax step / {core_key}", f"jax scan / {core_key}", "jax scan / core (1 thread)"])
    rows, cpu_rows, check_rows, slower = [], [], [], []
    for name, (c, steps, state, cpu) in results.items():
        med = {k: median(v["times"]) for k, v in state.items()}
        tc, t1 = med[core_key], med["core (1 thread)"]
        js, jk = med["jax step"], med[f"jax scan (K={K})"]
        rows.append([name, c.source, c.V, c.hidden, c.seq, steps]
                    + [f"**{fmt_us(med[k])}**" if k.startswith("core") else fmt_us(med[k]) for k in keys]
                    + [f"**{js / tc:.2f}×**", f"**{jk / tc:.2f}×**", f"**{jk / t1:.2f}×**"])
        for k in ("jax step", f"jax scan (K={K})"):
            for ck in (core_key, "core (1 thread)"):
                if med[k] < med[ck]:
                    slower.append(f"{name}: {ck} ({fmt_us(med[ck])} µs) is SLOWER than {k} ({fmt_us(med[k])} µs)")
        cpu_rows.append([name] + [f"{cpu[k][0] / cpu[k][1]:.2f}" for k in keys])
        ref3 = state[core_key]["losses"][:3]
        diffs = {k: max(rel_diff(a, b) for a, b in zip(state[k]["losses"][:3], ref3))
                 for k in keys if k != core_key}
        tail = max(1, steps // 10)
        check_rows.append([name, ", ".join(f"{x:.15g}" for x in ref3)]
                          + [f"{diffs[k]:.1e}" for k in keys[1:]]
                          + ["**yes**" if max(diffs.values()) <= TOL else "**NO**",
                             " / ".join(f"{np.mean(state[k]['losses'][-tail:]):.3f}" for k in keys)])
    r.emit(table(headers, rows))
    r.emit()
    if slower:
        r.emit("**The core is slower than JAX here:** " + "; ".join(slower) + ".")
    else:
        r.emit("The core (on its default threads and on 1 thread) is faster than both JAX sides "
               "in every configuration of this run.")
    r.emit()
    r.emit("JIT compilation (not in the step times): " + "; ".join(compile_notes) + ".")
    r.emit()
    r.emit("CPU share of the timed rounds (process CPU seconds / wall seconds; about 1 for one busy "
           "thread, above 1 when worker threads ran, below 1 when other processes took the CPU):")
    r.emit()
    r.emit(table(["config"] + keys, cpu_rows))
    r.emit()
    r.emit(f"Same work: the core's first 3 losses and each other side's largest relative difference "
           f"from them (must be ≤ {TOL:g}). Later steps drift apart legitimately (training is chaotic; "
           f"rounding differences grow); the mean loss of the last 10% of steps is shown per side "
           f"({' / '.join(keys)}) for information only.")
    r.emit()
    r.emit(table(["config", f"first 3 losses ({core_key})"] + [f"max rel. diff: {k}" for k in keys[1:]]
                 + [f"all ≤ {TOL:g}", "mean loss, last 10%"], check_rows))
    r.emit()
    r.emit(f"Total time: {perf() - t_start:.0f} s; load average at the end: {load_average()}.")
    if args.output:
        Path(args.output).write_text("\n".join(r.lines) + "\n", encoding="utf-8")
        progress(f"report written to {args.output}")
    ok = all(row[-2] == "**yes**" for row in check_rows)
    if not ok:
        progress(f"FAILED: the first 3 losses do not agree within {TOL:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
