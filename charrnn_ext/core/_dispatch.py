"""Pick the fastest variant of the Cython core that this CPU can run.

The wheel carries the variants ``_core`` (portable baseline) and, on x86-64,
``_core_x86_64_v3`` (AVX2 + FMA) and ``_core_x86_64_v4`` (AVX-512), all
compiled from the same ``src/_core.pyx``. Set ``CHARRNN_EXT_CORE`` to
``baseline``, ``x86_64_v3`` or ``x86_64_v4`` to force one.
"""
import contextlib
import importlib
import numbers
import os
import sys

from ..defaults import BLAS_THREADS, MAX_THREADS, NUM_THREADS

# CPU features each variant needs (names as numpy's runtime detection spells them)
_REQUIREMENTS = {
    "x86_64_v4": ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL", "AVX2", "FMA3", "BMI2"),
    "x86_64_v3": ("AVX2", "FMA3", "BMI2", "F16C"),
}


def _cpu_features() -> dict:
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(importlib.import_module(module).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def available_variants() -> list:
    """The core's variants importable here and runnable on this CPU, best first."""
    features = _cpu_features()
    found = []
    for name, needs in _REQUIREMENTS.items():
        if all(features.get(f, False) for f in needs):
            try:
                importlib.import_module(f"charrnn_ext._core_{name}")
            except ImportError:
                continue
            found.append(name)
    return found + ["baseline"]


def load_core(name=None):
    """(variant name, core module): ``name``, else $CHARRNN_EXT_CORE, else the best available."""
    name = name or os.environ.get("CHARRNN_EXT_CORE") or available_variants()[0]
    if name == "baseline":
        try:
            return name, importlib.import_module("charrnn_ext._core")
        except ImportError as exc:
            here = os.path.dirname(os.path.abspath(__file__))
            if os.path.exists(os.path.join(here, os.pardir, "setup.py")):
                raise ImportError(
                    f"charrnn_ext was imported from its source tree ({here}), which has no "
                    "compiled core. Install it (pip install .) and run from another "
                    "directory, or use the charrnn-train / charrnn-sample commands."
                ) from exc
            raise
    if name not in _REQUIREMENTS:
        raise ValueError(f"unknown core variant {name!r}; choose baseline, x86_64_v3 or x86_64_v4")
    if name not in available_variants():
        raise ValueError(f"core variant {name!r} is not built or not supported by this CPU")
    return name, importlib.import_module(f"charrnn_ext._core_{name}")


# OpenMP settings the user made: then the core's threads wait as told
_OPENMP_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


@contextlib.contextmanager
def _passive_openmp():
    """Load the core with OMP_WAIT_POLICY=PASSIVE unless the user set how
    OpenMP threads wait: a thread that waits for the other (at the end of a
    parallel part of a step) then sleeps instead of spinning. On a quiet
    machine that costs little; on a busy one a spinning thread kept its CPU
    from the very thread it waited for, and 2 threads ran 2-6x slower than
    one (benchmarks/bench_busy.py, benchmarks/README.md). The OpenMP runtime
    reads the variable once, when it is loaded with the core: in a wheel the
    core's own copy of it; in a build linked to the system's runtime, every
    library sharing that runtime then waits passively too. If the runtime
    was loaded before (by another library), the setting does not apply (the
    training calls' choice between one thread and two still guards). The
    variable is removed from os.environ again once the core is loaded, so
    that child processes do not inherit it."""
    if any(name in os.environ for name in _OPENMP_WAIT_SETTINGS):
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)


def load_core32(name: str):
    """The float32 build of the core in the variant ``name`` (the --dtype
    float32 path), or None where it was not built."""
    module = "_core32" if name == "baseline" else f"_core32_{name}"
    try:
        return importlib.import_module(f"charrnn_ext.{module}")
    except ImportError:
        return None


with _passive_openmp():
    variant, core = load_core()
    core32 = load_core32(variant)
cores = tuple(c for c in (core, core32) if c is not None)   # their knobs are set together


def core_for(dtype):
    """The build of the core that computes in ``dtype`` (float64 or float32)."""
    import numpy as np
    if np.dtype(dtype) == np.float64:
        return core
    if np.dtype(dtype) == np.float32 and core32 is not None:
        return core32
    raise ValueError(f"no build of the core computes in {np.dtype(dtype).name} here "
                     f"(float64{', float32' if core32 is not None else ''})")


def _core_blas_controllers():
    """threadpoolctl controllers of the BLAS library the core's dgemm calls
    (scipy's, through scipy.linalg.cython_blas). Where scipy's BLAS cannot be
    told apart from numpy's (a shared system BLAS), all BLAS libraries."""
    from threadpoolctl import ThreadpoolController

    import scipy

    libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    site = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    ours = []
    for lib in libs:
        try:
            top = os.path.relpath(os.path.abspath(lib.filepath), site).split(os.sep)[0]
        except ValueError:  # another drive on Windows
            continue
        if top.startswith("scipy"):
            ours.append(lib)
    return ours or libs


_state = {"requested": 1, "blas": 1}


def _thread_count(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"the number of {what} must be a positive integer, got {n!r}")
    return int(min(n, MAX_THREADS))


def _apply_threads() -> None:
    # OpenBLAS threads started inside the core's threads multiply (measured:
    # benchmarks/README.md), so a multithreaded BLAS gets the cores alone.
    for c in cores:
        c.set_num_threads(1 if _state["blas"] > 1 else _state["requested"])


def set_blas_threads(n: int) -> None:
    """Set the number of threads of the BLAS the core calls (scipy's OpenBLAS).

    charrnn_ext sets it to 1 on import (override with the environment variable
    CHARRNN_EXT_BLAS_THREADS): the step's matrices are small (T = 25-30 rows),
    where OpenBLAS's threads cost far more than they bring (measured in
    benchmarks/README.md); the core
    spreads a large output layer over its own threads instead (set_num_threads),
    and uses only one of its own while the BLAS has more than one. numpy's own
    BLAS, which the numpy reference uses, is left alone.
    """
    n = _thread_count(n, "BLAS threads")
    for lib in _core_blas_controllers():
        lib.set_num_threads(n)
    _state["blas"] = n
    _apply_threads()


def core_build() -> str:
    """The build of the Cython core in use and its kernels' revision, e.g.
    "x86_64_v4 r2" (bit-identical resumption needs the same: builds and
    revisions may round differently)."""
    return f"{variant} r{core.kernel_revision()}"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Set how many threads the core may use within one call.

    A small output layer (V * H <= 65536) with fewer than 16 streams trains
    pipelined on two threads (the recurrence on one, the output layer on
    the other). A larger output layer (the V rows of Why) is cut into a
    fixed number of stripes (up to 4, and only when V * H >= 131072 and
    V >= 256, e.g. the original script's book, V = 2566 and H = 200), and so
    are large products of many streams (the recurrence of 16 streams or
    more, dWhh; see docs/internals.md); the pieces run in parallel on up to
    n OpenMP threads in train, train_step, loss_and_grads and loss (timings:
    benchmarks/README.md); sampling runs on one thread. The cut depends only
    on the sizes, so results are the same bit for bit for every n. Training
    calls also measure whether n threads or one run faster (on a busy
    machine one often does) and use the faster. Default: one thread per
    usable CPU, or $OMP_NUM_THREADS if lower; $CHARRNN_EXT_NUM_THREADS
    overrides both. Use 1 when you train several models in parallel Python
    threads or processes, one per core.
    The core uses one thread regardless in a build without OpenMP, while its
    BLAS has more than one thread (set_blas_threads), and in a process forked
    after import (GNU OpenMP does not survive fork; use the 'spawn' or
    'forkserver' start method of multiprocessing to keep the threads).
    """
    _state["requested"] = _thread_count(n, "threads")
    _apply_threads()


def get_num_threads() -> int:
    """The number of threads the core may use within one call (see
    set_num_threads). A call uses at most one per stripe of the model, and
    at most the calling thread's OpenMP limit (OMP_NUM_THREADS, or
    threadpoolctl.threadpool_limits on "openmp" or on every library)."""
    return core.get_num_threads()


def _threads_from_env(name: str, default: int) -> int:
    """The thread count the environment variable ``name`` sets, else
    ``default``; a value that is not a positive integer is ignored in one
    line on stderr (read at import, before any caller could catch a warning;
    as OpenMP runtimes report theirs)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    first = value.split(",")[0].strip()    # OMP_NUM_THREADS may list one count per level
    if first.isascii() and first.isdigit() and int(first) > 0:
        return min(int(first), MAX_THREADS)
    print(f"charrnn_ext: warning: ignoring {name}={value!r}: not a positive integer "
          f"(using {default})", file=sys.stderr)
    return default


if hasattr(os, "register_at_fork"):
    for _c in cores:
        os.register_at_fork(after_in_child=_c._after_fork_in_child)
set_blas_threads(_threads_from_env("CHARRNN_EXT_BLAS_THREADS", BLAS_THREADS))
set_num_threads(_threads_from_env(
    "CHARRNN_EXT_NUM_THREADS",
    NUM_THREADS or min(usable_cpus(), _threads_from_env("OMP_NUM_THREADS", MAX_THREADS))))
