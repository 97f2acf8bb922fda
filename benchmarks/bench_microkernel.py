#!/usr/bin/env python
"""The core's register-blocked microkernel (src/core/microkernel.pxi) alone, in C, per instruction set: GFLOP/s of Y[4, 32] = X[4, K] @ W[K, 32] and of whole products.

Compiles the kernel's C source (from the working tree, and with --rev from a git
revision too, side by side) with the flags of each ISA variant setup.py builds
(baseline, x86_64_v3 = AVX2 + FMA, x86_64_v4 = AVX-512: the ones this CPU runs),
then times in one process per build, best of 5 repetitions:
  block K:           one 4 x 32 block over K (W: a packed panel, row stride 32)
  product R x K x C: Y (R, C) = X (R, K) @ W (K, C), W in panels (as the
                     recurrence reads W_hh), every block of 4 rows
Needs gcc (or $CC). Timings are the kernel's alone: the step's figures come from
bench_jax.py / bench_gated.py / bench_recipe_step.py.

  python benchmarks/bench_microkernel.py                 # this tree
  python benchmarks/bench_microkernel.py --rev 0399e84   # beside the kernel of a revision
"""
from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_flags() -> tuple:
    """(base flags, {variant: flags}) as setup.py sets them for GCC and Clang:
    its `if sys.platform == "win32": ... else: ...` assignments, read from it."""
    with open(os.path.join(ROOT, "setup.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.If) and "win32" in ast.unparse(node.test):
            scope: dict = {}
            exec(compile(ast.Module(body=node.orelse, type_ignores=[]), "setup.py", "exec"), scope)
            return scope["base_args"], scope["variants"]
    raise SystemExit("setup.py: no `if sys.platform == \"win32\"` block with the flags")


BASE_FLAGS, VARIANT_FLAGS = setup_flags()

BENCH_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + t.tv_nsec * 1e-9; }
#define BENCH(T, SUF) \
static double best_##SUF(int rows, int K, int cols, double flops) { \
    T *X = aligned_alloc(64, sizeof(T) * rows * K), *W = aligned_alloc(64, sizeof(T) * K * cols); \
    T *Y = aligned_alloc(64, sizeof(T) * rows * cols); \
    for (int i = 0; i < rows * K; i++) X[i] = (T) ((i % 7) * 0.01); \
    for (int i = 0; i < K * cols; i++) W[i] = (T) ((i % 13) * 0.001); \
    int n = (int) (4e8 / flops) + 1; double best = 1e30; \
    for (int rep = 0; rep < 5; rep++) { \
        double t = now(); \
        for (int i = 0; i < n; i++) \
            for (int c = 0; c < cols; c += 32) \
                for (int r = 0; r < rows; r += 4) \
                    charrnn_ext_block4x32_##SUF(Y + (size_t) r * cols + c, cols, X + (size_t) r * K, \
                                               K, W + (size_t) c * K, 32, K); \
        t = (now() - t) / n; if (t < best) best = t; } \
    volatile T sink = Y[0]; (void) sink; free(X); free(W); free(Y); \
    return flops / best * 1e-9; }
BENCH(double, d)
BENCH(float, f)
int main(int argc, char **argv) {
    for (int i = 1; i + 2 < argc; i += 3) {
        int rows = atoi(argv[i]), K = atoi(argv[i + 1]), cols = atoi(argv[i + 2]);
        double flops = 2.0 * rows * K * cols;
        printf("%d %d %d %.2f %.2f\n", rows, K, cols, best_d(rows, K, cols, flops),
               best_f(rows, K, cols, flops));
    }
    return 0;
}
"""
SHAPES = [(4, 100, 32), (4, 256, 32), (16, 256, 256), (32, 256, 1024), (16, 512, 512)]


def kernel_c(pxi_text: str) -> str:
    """The C of microkernel.pxi's `cdef extern from *` block, as Cython emits it."""
    start = pxi_text.index('    """\n') + 8
    end = pxi_text.index('    """', start)
    return "\n".join(line[4:] for line in pxi_text[start:end].splitlines()).replace("\\\\", "\\")


def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def runnable_variants() -> list:
    flags = cpu_flags()
    out = ["baseline"]
    if {"avx2", "fma"} <= flags:
        out.append("x86_64_v3")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        out.append("x86_64_v4")
    return [v for v in out if v == "baseline" or v in VARIANT_FLAGS]


def run(source: str, variant: str, tmp: str, tag: str) -> dict:
    cc = os.environ.get("CC", "gcc")
    c_path = os.path.join(tmp, f"{tag}_{variant}.c")
    exe = os.path.join(tmp, f"{tag}_{variant}")
    with open(c_path, "w") as f:
        f.write(source + BENCH_C)
    flags = BASE_FLAGS + VARIANT_FLAGS.get(variant, [])
    subprocess.run([cc, *flags, "-o", exe, c_path], check=True)
    args = [str(x) for shape in SHAPES for x in shape]
    out = subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout
    rows = {}
    for line in out.splitlines():
        r, k, c, d, s = line.split()
        rows[(int(r), int(k), int(c))] = (float(d), float(s))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", help="also time the kernel of this git revision")
    args = p.parse_args(argv)
    with open(os.path.join(ROOT, "src", "core", "microkernel.pxi")) as f:
        sources = {"this tree": kernel_c(f.read())}
    if args.rev:
        old = subprocess.run(["git", "-C", ROOT, "show", f"{args.rev}:src/core/microkernel.pxi"],
                             check=True, capture_output=True, text=True).stdout
        sources = {args.rev: kernel_c(old), **sources}
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "?") if os.path.exists("/proc/cpuinfo") else "?"
    flags = cpu_flags()
    kind = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    print(f"# The microkernel alone: GFLOP/s (best of 5), {model} ({kind})\n")
    print("| variant | kernel | " + " | ".join(f"{r}x{k}x{c} f64 | f32" for r, k, c in SHAPES) + " |")
    print("|---|---|" + "---|---|" * len(SHAPES))
    with tempfile.TemporaryDirectory() as tmp:
        for variant in runnable_variants():
            for i, (name, source) in enumerate(sources.items()):
                rows = run(source, variant, tmp, f"k{i}")
                cells = " | ".join(f"{rows[s][0]:.1f} | {rows[s][1]:.1f}" for s in SHAPES)
                print(f"| {variant} | {name} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
