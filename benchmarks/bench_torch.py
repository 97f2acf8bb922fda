#!/usr/bin/env python
"""Optional benchmark: the charrnn_ext core against the numpy reference and a PyTorch CPU script.

PyTorch is NOT a dependency of charrnn_ext: without it this script says so and exits 0.
Run from anywhere against the INSTALLED package (``pip install .`` first, then
``pip install torch`` — the CPU build is enough):

    python benchmarks/bench_torch.py               # full run: ~1.5 min (cold torch.compile cache)
    python benchmarks/bench_torch.py --quick       # smoke run, a few seconds, no torch.compile
    python benchmarks/bench_torch.py --steps 500 --large-steps 50 --no-compile

In one process, for SMALL (65 symbols, hidden 100, seq 25) and LARGE (~3150 symbols,
hidden 200, seq 30), it times the median µs per training step of:

  core       CharRNN.train_step (the Cython core; its BLAS as charrnn_ext sets it)
  reference  charrnn_ext.reference.train_step (numpy; inputs as Python lists, like the seed)
  torch      the same algorithm written in PyTorch, float64: embedding-style lookup of the
             Wxh columns, addmv + tanh over the T steps, the output layer as ONE matmul over
             all T steps, log-softmax cross-entropy summed, loss.backward(), elementwise clip
             to [-5, 5] in place, the seed's Adagrad in place under torch.no_grad(), hidden
             state detached and carried; at torch's default thread count and at 1 thread
  compile    the same torch step with torch.compile (forward+backward and the update), if it
             compiles within --compile-timeout seconds in a child process (skipped otherwise,
             or with --no-compile); the benchmark process then compiles from torch's cache

Every side starts from the same charrnn_ext.spec.init_params(V, H, seed) and trains over
the same chunks (the seed's data pass, benchmarks/bench_data.py), in interleaved blocks whose
order rotates. The first 3 losses of every side must agree with the reference's within 1e-9
(relative). Progress goes to stderr, the markdown report to stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # bench_data / bench_util live next to this file
    sys.path.insert(0, str(HERE))

LEARNING_RATE = 0.1
perf = time.perf_counter
cpu_time = time.process_time

# full run / --quick (each overridable on the command line)
FULL = dict(steps=2000, large_steps=200, blocks=40, large_blocks=20, compile=True)
QUICK = dict(steps=100, large_steps=10, blocks=5, large_blocks=5, compile=False)
WARMUP = {"SMALL": 10, "LARGE": 2}   # untimed steps per side on a throwaway copy


def progress(msg: str) -> None:
    print(f"[bench_torch] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# the PyTorch step (module level, so torch.compile sees plain functions)
# ---------------------------------------------------------------------------

def torch_forward(x, y, h, WxhT, Whh, Why, bh, by):
    """Summed cross-entropy of the chunk and the last hidden state.

    x, y: int64 ids (T,); h: (H,); WxhT: (V, H) = Wxh transposed, so row x[t]
    is the column of Wxh that the seed's one-hot product selects (an
    embedding lookup); Whh (H, H); Why (V, H); bh (H,); by (V,).
    """
    import torch
    import torch.nn.functional as F

    a = F.embedding(x, WxhT) + bh               # (T, H): Wxh[:, x_t] + bh for every t
    hs = []
    for t in range(x.shape[0]):                 # the serial recurrence
        h = torch.tanh(torch.addmv(a[t], Whh, h))
        hs.append(h)
    logits = torch.addmm(by, torch.stack(hs), Why.t())   # (T, V): one matmul for all T steps
    return F.cross_entropy(logits, y, reduction="sum"), h


def torch_update(params, grads, memory, lr: float, clip: float, eps: float):
    """Clip in place, then the seed's Adagrad in place: mem += g*g; p -= lr*g/sqrt(mem+eps).
    Called under torch.no_grad()."""
    for p, g, m in zip(params, grads, memory):
        g.clamp_(-clip, clip)
        m.addcmul_(g, g)
        p.addcdiv_(g, (m + eps).sqrt_(), value=-lr)


# ---------------------------------------------------------------------------
# the sides
# ---------------------------------------------------------------------------

class CoreSide:
    def __init__(self, init, H):
        from charrnn_ext import CharRNN
        self.model, self.H = CharRNN.from_params(init), H
        self.h = np.zeros((H, 1))

    def reset(self):
        self.h = np.zeros((self.H, 1))

    def step(self, ch):
        loss, self.h = self.model.train_step(ch[0], ch[1], self.h, LEARNING_RATE)
        return loss


class RefSide:
    def __init__(self, init, H):
        from charrnn_ext.spec import PARAM_NAMES
        self.params = {n: init[n].copy() for n in PARAM_NAMES}
        self.memory = {n: np.zeros_like(init[n]) for n in PARAM_NAMES}
        self.H = H
        self.h = np.zeros((H, 1))

    def reset(self):
        self.h = np.zeros((self.H, 1))

    def step(self, ch):
        from charrnn_ext import reference
        loss, self.h = reference.train_step(ch[2], ch[3], self.h, self.params, self.memory,
                                            LEARNING_RATE)
        return loss


class TorchSide:
    def __init__(self, torch, init, H, forward, update, clip, eps):
        self.torch, self.forward, self.update = torch, forward, update
        self.clip, self.eps, self.H = clip, eps, H
        arrays = [init["Wxh"].T, init["Whh"], init["Why"], init["bh"].ravel(), init["by"].ravel()]
        self.params = [torch.tensor(np.ascontiguousarray(a), dtype=torch.float64, requires_grad=True)
                       for a in arrays]
        self.memory = [torch.zeros_like(p) for p in self.params]
        self.reset()

    def reset(self):
        self.h = self.torch.zeros(self.H, dtype=self.torch.float64)

    def step(self, ch):
        torch, params = self.torch, self.params
        loss, h = self.forward(ch[4], ch[5], self.h, *params)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            self.update(params, [p.grad for p in params], self.memory, LEARNING_RATE,
                        self.clip, self.eps)
        self.h = h.detach()
        return loss.item()


def compiled_step_fns(torch):
    """torch.compile of the forward (its backward is compiled by AOTAutograd) and of the update."""
    return (torch.compile(torch_forward, fullgraph=True, dynamic=False),
            torch.compile(torch_update, fullgraph=True, dynamic=False))


def compile_probe_main(spec: str) -> int:
    """Child process (--compile-probe V,H,T): compile the step for these sizes and run it
    twice. It fills torch's on-disk compile cache, so the benchmark process then compiles
    the same graphs quickly; the parent kills it if it takes too long."""
    import torch

    from charrnn_ext.defaults import ADAGRAD_EPS, CLIP
    from charrnn_ext.spec import init_params

    V, H, T = (int(v) for v in spec.split(","))
    side = TorchSide(torch, init_params(V, H, 0), H, *compiled_step_fns(torch), CLIP, ADAGRAD_EPS)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x, y = (torch.from_numpy(rng.integers(0, V, T)) for _ in range(2))
        side.step((None, None, None, None, x, y, False))
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


# ---------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a fast smoke run (few steps, no torch.compile)")
    p.add_argument("--steps", type=int, help=f"SMALL steps per side ({FULL['steps']} / quick {QUICK['steps']})")
    p.add_argument("--large-steps", type=int,
                   help=f"LARGE steps per side ({FULL['large_steps']} / quick {QUICK['large_steps']})")
    p.add_argument("--blocks", type=int, help=f"interleaved SMALL blocks ({FULL['blocks']} / {QUICK['blocks']})")
    p.add_argument("--large-blocks", type=int,
                   help=f"interleaved LARGE blocks ({FULL['large_blocks']} / {QUICK['large_blocks']})")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="also time the step under torch.compile (default: on; off with --quick)")
    p.add_argument("--compile-timeout", type=float, default=120.0,
                   help="seconds allowed for compiling with torch.compile, both configurations "
                        "together (120); compilation runs first in a child process, killed when "
                        "the time is up, then here from torch's compile cache")
    p.add_argument("--only", choices=("SMALL", "LARGE"), help="one configuration only")
    p.add_argument("--data-dir", help="directory of tinyshakespeare.txt and lunyu_shijing.txt "
                                      "(default ../shared/data relative to the repository root; "
                                      "missing files are replaced by generated text)")
    p.add_argument("--seed", type=int, default=0, help="seed of init_params (0)")
    p.add_argument("--output", help="also write the markdown report to this file")
    p.add_argument("--compile-probe", metavar="V,H,T", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.steps < 3 or args.large_steps < 3:
        p.error("--steps and --large-steps must be at least 3 (the first 3 losses are compared)")
    return args



def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compile_probe:
        return compile_probe_main(args.compile_probe)
    try:
        import torch
    except ImportError:
        print("bench_torch: PyTorch is not installed, so there is nothing to compare against.\n"
              "This benchmark is optional (charrnn_ext does not need torch). To run it, install "
              "the CPU build, e.g.\n"
              "    pip install torch --index-url https://download.pytorch.org/whl/cpu\n"
              "and run this script again. `python benchmarks/bench.py` needs no torch.")
        return 0

    import threadpoolctl

    import charrnn_ext
    from charrnn_ext.defaults import ADAGRAD_EPS, CLIP
    from charrnn_ext.spec import init_params

    from bench_data import DataPass, default_data_dir, load_corpus
    from bench_util import (Report, blas_owner, emit_run_header, fmt_us, load_average,
                            machine_rows, median, rel_diff, table)

    try:
        from charrnn_ext import _dispatch
        variant = _dispatch.variant
    except (ImportError, AttributeError):
        variant = "?"

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    torch_default_threads = torch.get_num_threads()
    r = Report()
    t_start = perf()

    # -- header ------------------------------------------------------------------
    r.emit("# charrnn_ext vs PyTorch: training step")
    r.emit()
    emit_run_header(r, "bench_torch.py", args.quick)
    r.emit(table(["item", "value"], machine_rows() + [
        ["Python", platform.python_version()],
        ["numpy", np.__version__],
        ["torch", f"{torch.__version__} (MKL: {torch.backends.mkl.is_available()}, "
                  f"OpenMP: {torch.backends.openmp.is_available()})"],
        ["torch threads (default: intra-op / inter-op)",
         f"{torch_default_threads} / {torch.get_num_interop_threads()}"],
        ["charrnn_ext", f"{charrnn_ext.__version__} (core variant `{variant}`) from "
                        f"`{Path(charrnn_ext.__file__).parent}`"],
        ["data directory", f"`{data_dir}`" + ("" if data_dir.is_dir() else " (missing: texts are generated)")],
    ]))
    r.emit()
    rows = [[blas_owner(i["filepath"]), i.get("user_api"), i.get("internal_api"), i.get("version") or "",
             i.get("num_threads"), f"`{Path(i['filepath']).name}`"]
            for i in threadpoolctl.threadpool_info()]
    r.emit("Thread pools at start (`threadpoolctl`): the reference's `np.dot` runs on numpy's BLAS; "
           "the core's `dgemm` on scipy's (charrnn_ext sets it to 1 thread on import); torch uses its "
           "own MKL/OpenMP, set with `torch.set_num_threads`.")
    r.emit()
    r.emit(table(["shipped by", "API", "library", "version", "threads", "file"], rows))
    r.emit()

    # -- sides -------------------------------------------------------------------
    @contextlib.contextmanager
    def torch_threads(n):
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(old)

    nullctx = contextlib.nullcontext
    t_def = torch_default_threads
    compiled = compiled_step_fns(torch) if args.compile else None
    compile_budget = args.compile_timeout
    compile_key = f"torch.compile ({t_def} threads)"
    compile_notes = {}
    results, compile_times = {}, {}
    configs = [args.only] if args.only else ["SMALL", "LARGE"]
    for name in configs:
        c = load_corpus(name, data_dir)
        V, H, T = c.V, c.hidden, c.seq
        steps = args.steps if name == "SMALL" else args.large_steps
        n_blocks = max(1, min(steps, args.blocks if name == "SMALL" else args.large_blocks))
        progress(f"{name}: V={V}, H={H}, T={T}, {steps} steps per side in {n_blocks} blocks")
        init = init_params(V, H, args.seed)
        data = DataPass(c.ids, T)
        chunks = []
        for _ in range(steps):
            x, y, reset = data.next()
            chunks.append((x, y, x.tolist(), y.tolist(),
                           torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64)),
                           reset))

        makers = {
            "core": (lambda: CoreSide(init, H), nullctx),
            "reference": (lambda: RefSide(init, H), nullctx),
            f"torch ({t_def} threads)": (
                lambda: TorchSide(torch, init, H, torch_forward, torch_update, CLIP, ADAGRAD_EPS),
                lambda: torch_threads(t_def)),
            "torch (1 thread)": (
                lambda: TorchSide(torch, init, H, torch_forward, torch_update, CLIP, ADAGRAD_EPS),
                lambda: torch_threads(1)),
        }
        if compiled is not None:
            if compile_budget <= 0:
                compile_notes[name] = "skipped: no compile time left"
            else:
                progress(f"{name}: torch.compile in a probe process (at most {compile_budget:.0f} s)")
                t0 = perf()
                ok, why = run_compile_probe(V, H, T, compile_budget)
                dt = perf() - t0
                compile_budget -= dt
                if ok:
                    compile_times[name] = [dt, None]
                    makers[compile_key] = (
                        lambda: TorchSide(torch, init, H, compiled[0], compiled[1], CLIP, ADAGRAD_EPS),
                        lambda: torch_threads(t_def))
                else:
                    compile_notes[name] = f"skipped: {why}"
            if name in compile_notes:
                progress(f"{name}: torch.compile {compile_notes[name]}")

        # warm-up on throwaway copies (lazy initialisation, thread pools, compilation)
        n_warm = min(WARMUP[name], steps)
        for key in list(makers):
            make, ctx = makers[key]
            side = make()
            t0 = perf()
            try:
                with ctx():
                    for ch in chunks[:n_warm]:
                        side.step(ch)
                        if key == compile_key and compile_times[name][1] is None:
                            compile_times[name][1] = perf() - t0   # compile (cached) + 1 step
            except Exception as exc:   # torch.compile only: anything else is a real error
                if key != compile_key:
                    raise
                msg = str(exc).strip().splitlines()
                compile_notes[name] = f"skipped: {type(exc).__name__}: {msg[0][:200] if msg else ''}"
                progress(f"{name}: torch.compile {compile_notes[name]}")
                del makers[key]
                compile_times.pop(name, None)
        sides = {k: (make(), ctx) for k, (make, ctx) in makers.items()}

        state = {k: {"times": [], "cpu": [], "losses": []} for k in sides}
        bounds = np.linspace(0, steps, n_blocks + 1).astype(int)
        order = list(sides)
        for b in range(n_blocks):
            block = chunks[bounds[b]:bounds[b + 1]]
            rot = b % len(order)
            for k in order[rot:] + order[:rot]:        # rotate who goes first
                side, ctx = sides[k]
                times, cpu, losses = state[k]["times"], state[k]["cpu"], state[k]["losses"]
                with ctx():
                    for ch in block:
                        if ch[6]:
                            side.reset()
                        c0 = cpu_time()
                        t0 = perf()
                        loss = side.step(ch)
                        t1 = perf()
                        cpu.append(cpu_time() - c0)
                        times.append(t1 - t0)
                        losses.append(float(loss))
        results[name] = (c, steps, state)
        progress(f"{name}: done (load average {load_average()})")

    # -- report ------------------------------------------------------------------
    r.emit("## Median µs per training step")
    r.emit()
    r.emit(f"Each side trains its own copy of `init_params(V, H, seed={args.seed})` over the same chunks "
           f"(the seed's data pass, learning rate {LEARNING_RATE}), in interleaved blocks whose order "
           f"rotates, after {WARMUP['SMALL']} (SMALL) / {WARMUP['LARGE']} (LARGE) untimed warm-up steps "
           f"on a throwaway copy. Timed with `time.perf_counter` around the step call only; the "
           f"reference's Python lists and torch's int64 index tensors are built beforehand. "
           f"Ratios: side / core, so above 1× means the core is faster.")
    r.emit()
    torch_keys = [k for k in next(iter(results.values()))[2] if k.startswith("torch")]
    headers = (["config", "text", "V", "H", "T", "steps", "core", "reference"] + torch_keys
               + ["reference / core"] + [f"{k} / core" for k in torch_keys])
    rows, cpu_rows, check_rows, slower = [], [], [], []
    for name, (c, steps, state) in results.items():
        med = {k: median(v["times"]) for k, v in state.items()}
        tc = med["core"]
        row = [name, c.source, c.V, c.hidden, c.seq, steps, f"**{fmt_us(tc)}**", fmt_us(med["reference"])]
        row += [fmt_us(med[k]) if k in med else "—" for k in torch_keys]
        row += [f"**{med['reference'] / tc:.1f}×**"]
        row += [f"**{med[k] / tc:.2f}×**" if k in med else "—" for k in torch_keys]
        rows.append(row)
        for k in med:
            if k != "core" and med[k] < tc:
                slower.append(f"{name}: the core ({fmt_us(tc)} µs) is SLOWER than {k} ({fmt_us(med[k])} µs)")
        share = {k: sum(v["cpu"]) / sum(v["times"]) for k, v in state.items()}
        cpu_rows.append([name] + [f"{fmt_us(median(state[k]['cpu']))} ({share[k]:.2f})" if k in state else "—"
                                  for k in ["core", "reference"] + torch_keys])
        ref3 = state["reference"]["losses"][:3]
        diffs = {k: max(rel_diff(a, b) for a, b in zip(v["losses"][:3], ref3))
                 for k, v in state.items() if k != "reference"}
        tail = max(1, steps // 10)
        check_rows.append([name, ", ".join(f"{x:.12g}" for x in ref3)]
                          + [f"{diffs[k]:.1e}" if k in diffs else "—" for k in ["core"] + torch_keys]
                          + ["**yes**" if max(diffs.values()) <= 1e-9 else "**NO**",
                             " / ".join(f"{np.mean(state[k]['losses'][-tail:]):.3f}" if k in state else "—"
                                        for k in ["core", "reference"] + torch_keys)])
    r.emit(table(headers, rows))
    r.emit()
    if slower:
        r.emit("**The core is slower than another side here:** " + "; ".join(slower) + ".")
    else:
        r.emit("The core is the fastest side in every configuration of this run.")
    r.emit()
    if args.compile:
        notes = []
        for name in results:
            if name in compile_times:
                probe, here = compile_times[name]
                notes.append(f"{name} compiled in {probe:.1f} s in the probe process, then {here:.1f} s "
                             f"here (compile cache) + first step")
            else:
                notes.append(f"{name} {compile_notes.get(name, 'skipped')}")
        r.emit("torch.compile (`fullgraph=True, dynamic=False`, forward + AOTAutograd backward and the "
               "update; compile time is not in the step time): " + "; ".join(notes) + ".")
    else:
        r.emit("torch.compile: not run (`--no-compile`, or `--quick` without `--compile`).")
    r.emit()
    r.emit("Process CPU µs per step (`time.process_time`, includes worker threads) and, in brackets, "
           "the CPU share (CPU seconds / wall seconds of the timed steps): about 1 for one busy thread, "
           "above 1 when worker threads ran or spun, below 1 when other processes took the CPU.")
    r.emit()
    r.emit(table(["config", "core", "reference"] + torch_keys, cpu_rows))
    r.emit()
    r.emit("Same work: the reference's first 3 losses, and each side's largest relative difference "
           "from them (must be ≤ 1e-9; float64 everywhere). Later steps drift apart legitimately "
           "(training is chaotic: on LARGE, rounding differences of 1e-13 grow about tenfold per step "
           "from step ~4, and the separated trajectories can differ by tens of percent in loss for "
           "hundreds of steps); the mean loss of the last 10% of steps is shown for each side "
           "(core / reference / torch sides) for information only.")
    r.emit()
    r.emit(table(["config", "first 3 losses (reference)"] + [f"max rel. diff: {k}" for k in ["core"] + torch_keys]
                 + ["all ≤ 1e-9", "mean loss, last 10%"], check_rows))
    r.emit()
    r.emit(f"Total time: {perf() - t_start:.0f} s; load average at the end: {load_average()}.")
    if args.output:
        Path(args.output).write_text("\n".join(r.lines) + "\n", encoding="utf-8")
        progress(f"report written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
