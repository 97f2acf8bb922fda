"""The benchmarks' shared harness: command line, progress, interleaved timing of sides, thread settings, the markdown report and the machine it ran on."""
from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import os
import platform
import resource
import shlex
import sys
import threading
import time
from pathlib import Path

import numpy as np

perf = time.perf_counter
cpu_time = time.process_time      # CPU seconds of the whole process (all its threads)
SCRIPT = Path(sys.argv[0]).name   # e.g. bench_torch.py: the progress tag and the report's command


def progress(msg: str) -> None:
    """Progress notes go to stderr, so that stdout is the markdown report only."""
    print(f"[{Path(SCRIPT).stem}] {msg}", file=sys.stderr, flush=True)


def default_data_dir() -> Path:
    """``../shared/data`` relative to the repository root (this file is in benchmarks/)."""
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


# -- the optional peer libraries ----------------------------------------------------

PEERS = {"torch": ("PyTorch", "pip install torch --index-url https://download.pytorch.org/whl/cpu"),
         "jax": ("JAX", "pip install jax")}


def load_peer(name: str):
    """The optional peer library (torch, jax), or None when it is not installed.

    The order of imports matters: where the core is built against the system's OpenMP
    runtime (libgomp), torch shares it, and whichever loads it first decides how its
    threads wait (charrnn_ext asks for OMP_WAIT_POLICY=PASSIVE, unless set). Each script
    keeps the order its published figures were measured in: bench_torch and bench_jax
    load their peer before charrnn_ext (this module imports no charrnn_ext at import
    time), bench_batch after it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def missing(name: str, consequence: str) -> str:
    """The one-line note of a script that runs without the peer library ``name``."""
    title, install = PEERS[name]
    return f"{title} is not installed: {consequence} (optional; charrnn_ext does not need it): {install}"


# -- command line -----------------------------------------------------------------

def _shown(value) -> str:
    """A default as --help shows it."""
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}"


class Parser(argparse.ArgumentParser):
    """A benchmark's command line: --quick, --only, --data-dir, --seed, --output, and
    its sizes, each an option whose default is the full run's or --quick's value."""

    def __init__(self, doc: str, full: dict, quick: dict, sizes: dict, only=None,
                 seed: bool = True, epilog: str | None = None):
        super().__init__(description=doc.strip().splitlines()[0], epilog=epilog,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
        self.full, self.quick = full, quick
        self.add_argument("--quick", action="store_true", help="a fast smoke run (few steps)")
        if only:
            self.add_argument("--only", nargs="+", choices=list(only), metavar="NAME",
                              help=f"run only these ({', '.join(only)})")
        self.add_argument("--data-dir", type=Path, default=None,
                          help="directory of tinyshakespeare.txt and lunyu_shijing.txt (default "
                               "../shared/data relative to the repository root); missing files "
                               "are replaced by generated text")
        if seed:
            self.add_argument("--seed", type=int, default=0, help="seed of init_params (0)")
        self.add_argument("--output", help="also write the markdown report to this file")
        group = self.add_argument_group("sizes (defaults: full run / --quick)")
        for key, help_ in sizes.items():
            default = full[key]
            kind = dict(type=type(default[0]), nargs="+") if isinstance(default, list) else (
                dict(action=argparse.BooleanOptionalAction) if isinstance(default, bool)
                else dict(type=type(default)))
            shown = " / ".join(" ".join(map(_shown, v)) if isinstance(v, list) else _shown(v)
                               for v in (default, quick[key]))
            group.add_argument("--" + key.replace("_", "-"), default=None,
                               help=f"{help_} ({shown})", **kind)

    def parse_args(self, args=None, namespace=None):
        out = super().parse_args(args, namespace)
        for key, value in (self.quick if out.quick else self.full).items():
            if getattr(out, key, None) is None:
                setattr(out, key, value)
        if out.data_dir is None:
            out.data_dir = default_data_dir()
        return out


# -- statistics -----------------------------------------------------------------

def median(xs) -> float:
    return float(np.median(np.asarray(xs, dtype=float)))


def quartiles(xs) -> tuple[float, float]:
    q1, q3 = np.percentile(np.asarray(xs, dtype=float), [25, 75])
    return float(q1), float(q3)


def rel_diff(a: float, b: float) -> float:
    """|a - b| relative to the larger magnitude (0 when both are 0)."""
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


# -- timing of sides -------------------------------------------------------------

class Record:
    """A side's timed work: wall and CPU seconds of each step, its losses, and the
    CPU and wall seconds of its whole turns (see turn)."""

    def __init__(self):
        self.times, self.cpu, self.losses = [], [], []
        self.turn_cpu = self.turn_wall = 0.0

    @property
    def median(self) -> float:
        return median(self.times)

    def share(self) -> float:
        """CPU seconds per wall second of the timed steps."""
        return sum(self.cpu) / sum(self.times)


def interleave(keys, n_blocks: int):
    """(block, key): every key once a block, who goes first rotating from block to block."""
    keys = list(keys)
    for b in range(n_blocks):
        r = b % len(keys)
        for k in keys[r:] + keys[:r]:
            yield b, k


def split(steps: int, n_blocks: int) -> list:
    """``steps`` cut into ``n_blocks`` near-equal blocks."""
    return np.diff(np.linspace(0, steps, n_blocks + 1).astype(int)).tolist()


def timed_steps(side, chunks, rec: Record, budget: float | None = None) -> None:
    """side.step over the chunks (side.reset first where a chunk says so), each step
    timed alone (time.perf_counter around the call only); stops early once
    ``budget`` seconds of steps are spent."""
    spent = 0.0
    for ch in chunks:
        if ch.reset:
            side.reset()
        c0 = cpu_time()
        t0 = perf()
        loss = side.step(ch)
        t1 = perf()
        rec.cpu.append(cpu_time() - c0)
        rec.times.append(t1 - t0)
        rec.losses.append(float(loss))
        spent += t1 - t0
        if budget is not None and spent >= budget:
            break


def timed_calls(side, k: int, calls: int, rec: Record) -> None:
    """``calls`` calls of side.call(k) (k training steps each); each call's time / k
    is recorded as the seconds per step."""
    for _ in range(calls):
        c0 = cpu_time()
        t0 = perf()
        losses = side.call(k)
        dt = perf() - t0
        rec.cpu.append((cpu_time() - c0) / k)
        rec.times.append(dt / k)
        rec.losses.extend(float(v) for v in losses)


def time_sides(sides: dict, chunks, blocks: list, budget: dict | None = None) -> dict:
    """Every side over the same chunks in interleaved blocks whose order rotates.

    sides: {name: (side, context factory: the side's thread settings)}; blocks:
    steps per side in each block; budget: {name: seconds per block} (a side's
    block then ends early). Each side goes on from the chunk where it stands.
    Returns {name: Record}."""
    recs = {k: Record() for k in sides}
    for b, k in interleave(sides, len(blocks)):
        side, ctx = sides[k]
        lo = len(recs[k].times)
        with ctx():
            timed_steps(side, (chunks[i] for i in range(lo, lo + blocks[b])), recs[k],
                        None if budget is None else budget[k])
    return recs


def throughput(runners, steps: int):
    """(total steps/s, process CPU seconds per wall second) of the runners (each
    with run(steps)), each in its own thread, from a common start. The CPU ratio shows how many
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
    cpu0 = cpu_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_time() - cpu0
    if errors:
        raise errors[0]
    wall = max(s[1] for s in spans) - min(s[0] for s in spans)
    return len(runners) * steps / wall, cpu / wall


@contextlib.contextmanager
def turn(rec: Record):
    """Adds the block's process CPU and wall seconds to rec.turn_cpu / turn_wall."""
    c0, w0 = cpu_time(), perf()
    try:
        yield
    finally:
        rec.turn_cpu += cpu_time() - c0
        rec.turn_wall += perf() - w0


# -- thread settings -----------------------------------------------------------------

_controllers = []


def _controller():
    """threadpoolctl's controller of the thread pools loaded when first asked."""
    if not _controllers:
        from threadpoolctl import ThreadpoolController
        _controllers.append(ThreadpoolController())
    return _controllers[0]


@contextlib.contextmanager
def core_threads(n):
    """charrnn_ext's own threads set to n inside the block (None: left as they are)."""
    import charrnn_ext
    before = charrnn_ext.get_num_threads()
    if n is None or n == before:
        yield
        return
    charrnn_ext.set_num_threads(n)
    try:
        yield
    finally:
        charrnn_ext.set_num_threads(before)


@contextlib.contextmanager
def one_thread():
    """Everything on 1 thread: every loaded BLAS (numpy's and scipy's OpenBLAS,
    threadpoolctl) and the core's own threads (set_num_threads)."""
    with core_threads(1), _controller().limit(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def torch_threads(torch, n: int):
    """torch.set_num_threads(n) inside the block."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def blas_threads(owner: str) -> str:
    """The thread counts of the BLAS libraries shipped by ``owner`` (numpy, scipy)."""
    n = sorted({lib.num_threads for lib in _controller().lib_controllers
                if lib.user_api == "blas" and blas_owner(lib.filepath) == owner})
    return "/".join(map(str, n)) or "?"


def default_label() -> str:
    """How the threads run by default (the core's, its BLAS, numpy's BLAS)."""
    import charrnn_ext
    return (f"default (core {charrnn_ext.get_num_threads()} threads, its BLAS "
            f"{blas_threads('scipy')}; numpy BLAS {blas_threads('numpy')})")


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


# -- the report ---------------------------------------------------------------------

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


class Report:
    """A markdown report: lines printed to stdout as they come and kept for --output;
    it opens with the command, the date and the machine table."""

    def __init__(self, title: str, args, rows=(), heading: str | None = None):
        self.lines, self.t_start = [], perf()
        self.emit(f"# {title}")
        self.emit()
        cmd = " ".join(shlex.quote(x) for x in ["python", f"benchmarks/{SCRIPT}"] + sys.argv[1:])
        note = " (quick smoke run: numbers are indicative only)" if args.quick else ""
        self.emit(f"Command: `{cmd}`{note}  ")
        self.emit(f"Date: {datetime.datetime.now().isoformat(timespec='seconds')}")
        self.emit()
        if heading:
            self.para(f"## {heading}")
        self.table(["item", "value"], machine_rows(args.data_dir) + list(rows))

    def emit(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def para(self, text: str) -> None:
        """A paragraph (or a heading) and the empty line after it."""
        self.emit(text)
        self.emit()

    def table(self, headers, rows) -> None:
        self.para(table(headers, rows))

    def targets(self, heading: str, targets, note: str = "") -> None:
        """The issue's targets: [(target, measured, met)], measured, never asserted."""
        self.para(heading)
        self.para("Not assertions: a slow or busy machine changes the numbers, and the run "
                  "never fails on them." + (" " + note if note else ""))
        self.table(["target", "measured", "met"], [[t, m, verdict(ok)] for t, m, ok in targets])

    def finish(self, output) -> None:
        """The closing line (time and load), and the report written to ``output`` if given."""
        self.emit(f"Total benchmark time: {perf() - self.t_start:.0f} s; load average at the "
                  f"end: {load_average()}.")
        if output:
            Path(output).write_text("\n".join(self.lines) + "\n", encoding="utf-8")
            progress(f"report written to {output}")


# -- memory ---------------------------------------------------------------------------

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


# -- the machine --------------------------------------------------------------------

def _cpuinfo(prefix: str):
    """The value of the first /proc/cpuinfo line starting with ``prefix``, or None."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags_summary() -> str:
    """The widest x86 SIMD extension advertised (for context only)."""
    flags = set((_cpuinfo("flags") or "").split())
    return next((simd for simd in ("avx512f", "avx2", "avx", "sse4_2") if simd in flags), "?")


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews timings)."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except (OSError, AttributeError):
        return "?"


def blas_owner(filepath: str) -> str:
    """Which package ships a BLAS library, from its path."""
    path = filepath.replace("\\", "/")
    for pkg in ("numpy", "scipy", "torch", "sklearn"):
        if f"/{pkg}.libs/" in path or f"/{pkg}/" in path:
            return pkg
    return "system"


OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")   # reported, never changed here


def blas_libraries() -> str:
    """The BLAS libraries loaded in this process as threadpoolctl reports them:
    who ships each, its implementation and version, its kernel set
    (``architecture``: OpenBLAS's choice for this CPU, e.g. Haswell or
    SkylakeX) and threads. The charrnn_ext core is loaded first, so scipy's
    BLAS (the one the core's dgemm calls) is in the list."""
    try:
        import threadpoolctl
    except ImportError:
        return "? (threadpoolctl is not installed)"
    importlib.import_module("charrnn_ext.core._dispatch")   # the core, and with it scipy's BLAS
    libs = []
    for info in threadpoolctl.threadpool_info():
        if info.get("user_api") != "blas":
            continue
        details = [f"`{info['architecture']}` kernels"] if info.get("architecture") else []
        details.append(f"{info.get('num_threads')} thread(s)")
        libs.append(f"{blas_owner(info['filepath'])}: {info.get('internal_api')} "
                    f"{info.get('version') or '?'} ({', '.join(details)})")
    return "; ".join(libs) or "none found"


def thread_pools() -> list:
    """Every thread pool loaded (threadpoolctl), a table row each: who ships it, API,
    library, version, kernels, threading layer, threads, file."""
    import threadpoolctl
    return [[blas_owner(i["filepath"]), i.get("user_api"), i.get("internal_api"),
             i.get("version") or "", i.get("architecture", ""), i.get("threading_layer", ""),
             i.get("num_threads"), f"`{Path(i['filepath']).name}`"]
            for i in threadpoolctl.threadpool_info()]


THREAD_POOL_HEADERS = ["shipped by", "API", "library", "version", "arch", "threading",
                       "default threads", "file"]


def openblas_env() -> str:
    """The OpenBLAS environment variables that pick its kernels and block sizes."""
    return ", ".join(f"{name} = " + (f"`{os.environ[name]}`" if name in os.environ else "unset")
                     for name in OPENBLAS_ENV)


def machine_rows(data_dir=None) -> list:
    """The rows every report's machine table opens with: the CPU, its load, the BLAS
    libraries, Python and numpy, charrnn_ext (imported: its core, for its BLAS) and
    the data directory."""
    import charrnn_ext
    from charrnn_ext.core import _dispatch
    rows = [
        ["CPU", f"{cpu_model()} ({platform.machine()}, widest SIMD: {cpu_flags_summary()})"],
        ["CPUs usable / logical", f"{usable_cpus()} / {os.cpu_count()}"],
        ["load average at start (1/5/15 min)", load_average()],
        ["BLAS (threadpoolctl)", blas_libraries()],
        ["OpenBLAS environment", openblas_env()],
        ["Python / numpy", f"{platform.python_version()} ({platform.python_implementation()}) / "
                           f"{np.__version__}"],
        ["charrnn_ext", f"{charrnn_ext.__version__} (core variant `{_dispatch.variant}`, "
                        f"{charrnn_ext.get_num_threads()} threads by default) from "
                        f"`{Path(charrnn_ext.__file__).parent}`"],
    ]
    if data_dir is not None:
        data_dir = Path(data_dir)
        rows.append(["data directory", f"`{data_dir}`" + (
            "" if data_dir.is_dir() else " (missing: texts are generated)")])
    return rows
