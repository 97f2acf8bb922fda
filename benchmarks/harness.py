"""Small helpers of the benchmark: statistics, markdown, RSS, machine info."""
from __future__ import annotations

import contextlib
import os
import platform
import resource
import sys

import numpy as np


# -- statistics ---------------------------------------------------------------

def median(xs) -> float:
    return float(np.median(np.asarray(xs, dtype=float)))


def quartiles(xs) -> tuple[float, float]:
    q1, q3 = np.percentile(np.asarray(xs, dtype=float), [25, 75])
    return float(q1), float(q3)


def rel_diff(a: float, b: float) -> float:
    """|a - b| relative to the larger magnitude (0 when both are 0)."""
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


# -- formatting ---------------------------------------------------------------

class Report:
    """A markdown report: lines printed as they come and kept (for --output)."""

    def __init__(self):
        self.lines = []

    def emit(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)


def table(headers, rows) -> str:
    """A markdown table (cells converted with str)."""
    lines = ["| " + " | ".join(map(str, headers)) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def fmt_us(seconds: float) -> str:
    """Seconds as microseconds with a thousands separator."""
    us = seconds * 1e6
    return f"{us:,.1f}" if us < 1000 else f"{us:,.0f}"


def fmt_mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


def verdict(ok) -> str:
    return "n/a" if ok is None else ("**yes**" if ok else "**no**")


# -- memory -------------------------------------------------------------------

def rss() -> dict:
    """Current and peak resident set size of this process in bytes:
    {'rss': VmRSS, 'peak': VmHWM} from /proc/self/status, else peak from
    getrusage (ru_maxrss) and rss None."""
    try:
        out = {}
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out["rss" if key == "VmRSS" else "peak"] = int(value.split()[0]) * 1024
        if len(out) == 2:
            return out
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rss": None, "peak": maxrss if sys.platform == "darwin" else maxrss * 1024}


# -- machine ------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags_summary() -> str:
    """The widest x86 SIMD extension advertised (for context only)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    for simd in ("avx512f", "avx2", "avx", "sse4_2"):
                        if simd in flags:
                            return simd
    except OSError:
        pass
    return "?"


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews timings)."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "?"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _thread_ids() -> list:
    return sorted(int(t) for t in os.listdir("/proc/self/task"))


def pinning_unavailable():
    """Why the threads of this process cannot be pinned to one CPU here
    (pinned_to_cpu), or None when they can."""
    if not hasattr(os, "sched_setaffinity"):
        return "os.sched_setaffinity is not available on this platform"
    try:
        _thread_ids()
        with pinned_to_cpu(min(os.sched_getaffinity(0))):
            pass
    except OSError as exc:
        return f"pinning failed: {exc}"
    return None


@contextlib.contextmanager
def pinned_to_cpu(cpu: int):
    """Every thread of this process (Linux: each tid in /proc/self/task) on
    CPU ``cpu`` inside the block; the list is read again until no new thread
    shows up. Yields the number of threads pinned. Afterwards, also on an
    exception, each thread gets its previous affinity mask back (a thread
    started inside the block gets the calling thread's previous mask)."""
    default = os.sched_getaffinity(0)
    saved, seen = {}, set()
    try:
        while True:
            new = [tid for tid in _thread_ids() if tid not in seen]
            if not new:
                break
            seen.update(new)
            for tid in new:
                try:
                    mask = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {cpu})
                    saved[tid] = mask
                except ProcessLookupError:      # the thread ended meanwhile
                    pass
        yield len(saved)
    finally:
        for tid in _thread_ids():
            try:
                os.sched_setaffinity(tid, saved.get(tid) or default)
            except ProcessLookupError:
                pass


def blas_owner(filepath: str) -> str:
    """Which package ships a BLAS library, from its path."""
    path = filepath.replace("\\", "/")
    for pkg in ("numpy", "scipy", "torch", "sklearn"):
        if f"/{pkg}.libs/" in path or f"/{pkg}/" in path:
            return pkg
    return "system"


# -- the opening of a report ----------------------------------------------------

def emit_run_header(report, script: str, quick: bool) -> None:
    """The command that made the report and when (a quick run says so)."""
    import datetime
    import shlex
    cmd = " ".join(shlex.quote(x) for x in ["python", f"benchmarks/{script}"] + sys.argv[1:])
    note = " (quick smoke run: numbers are indicative only)" if quick else ""
    report.emit(f"Command: `{cmd}`{note}  ")
    report.emit(f"Date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    report.emit()


OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")   # reported, never changed here


def blas_libraries() -> str:
    """The BLAS libraries loaded in this process as threadpoolctl reports them:
    who ships each, its implementation and version, its kernel set
    (``architecture``: OpenBLAS's choice for this CPU, e.g. Haswell or
    SkylakeX) and threads. The charrnn_ext core is loaded first, so scipy's
    BLAS (the one the core's dgemm calls) is in the list."""
    import importlib
    try:
        import threadpoolctl
    except ImportError:
        return "? (threadpoolctl is not installed)"
    importlib.import_module("charrnn_ext._dispatch")   # the core, and with it scipy's BLAS
    libs = []
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") != "blas":
            continue
        details = [f"`{info['architecture']}` kernels"] if info.get("architecture") else []
        details.append(f"{info.get('num_threads')} thread(s)")
        libs.append(f"{blas_owner(info['filepath'])}: {info.get('internal_api')} "
                    f"{info.get('version') or '?'} ({', '.join(details)})")
    return "; ".join(libs) or "none found"


def openblas_env() -> str:
    """The OpenBLAS environment variables that pick its kernels and block sizes."""
    return ", ".join(f"{name} = " + (f"`{os.environ[name]}`" if name in os.environ else "unset")
                     for name in OPENBLAS_ENV)


def machine_rows() -> list:
    """The rows every report's machine table opens with (imports the
    charrnn_ext core, for its BLAS)."""
    import platform
    return [
        ["CPU", f"{cpu_model()} ({platform.machine()}, widest SIMD: {cpu_flags_summary()})"],
        ["CPUs usable / logical", f"{usable_cpus()} / {os.cpu_count()}"],
        ["load average at start (1/5/15 min)", load_average()],
        ["BLAS (threadpoolctl)", blas_libraries()],
        ["OpenBLAS environment", openblas_env()],
    ]
