"""charrnn-sweep's Dask side: the cluster, its workers, and one run on a worker."""
from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time

from .. import __version__
from ..run import training
from .common import CLIError, count, out_of_memory, prog_name
from ..core._dispatch import core_build, set_num_threads, usable_cpus
from ..ckpt.checkpoint import checkpoint_bytes
from ..run.memory import TooLarge
from ..run.training import Printer, summary


LOOPBACK_ANY_PORT = "127.0.0.1:0"


INSTALL_HINT = "pip install 'charrnn_ext[sweep]'"


class _Log(Printer):
    """A run's output lines, as charrnn-train prints them, kept for NAME.log."""

    def __init__(self):
        self.lines = []
        super().__init__(self.lines.append)

    def note(self, text: str) -> None:
        self.lines.append(f"warning: {text}")


def _last(values):
    if values is None or len(values) == 0:
        return None
    v = float(values[-1])
    return v if math.isfinite(v) else None


def train_one(text: str, name: str, settings: dict) -> dict:
    """Train one run on a worker: charrnn_ext.run.training.run on one thread, the
    files kept in memory. Returns what the client keeps: the exit status
    charrnn-train would give, its output, the error, the checkpoint and
    best-model files as bytes and the figures."""
    set_num_threads(1)
    log = _Log()
    result = {"name": name, "pid": os.getpid(), "thread": threading.current_thread().name,
              "main_thread": threading.current_thread() is threading.main_thread()}
    t0 = time.perf_counter()
    code, error = 0, None
    try:
        out = training.run(text, settings, reporter=log, checkpoint_name=f"{name}.npz")
    except (training.Diverged, OSError) as exc:
        code, error = 1, str(exc)
    except (ValueError, TooLarge) as exc:
        code, error = 2, str(exc)
    except MemoryError as exc:
        code, error = 1, out_of_memory(exc)
    wall = time.perf_counter() - t0
    if code:
        log.lines.append(f"error: {error}")
        result.update(code=code, log="\n".join(log.lines) + "\n", error=error, wall_s=wall)
        return result
    ck = out.run
    best_name = f"{name}.best.npz" if out.best is not None else None
    log.lines += summary(out, ck.hyperparameters, f"{name}.npz", best_name)
    h = ck.history
    result.update(
        code=0, log="\n".join(log.lines) + "\n", error=None, wall_s=wall,
        checkpoint=checkpoint_bytes(ck),
        best=checkpoint_bytes(out.best) if out.best is not None else None,
        train_bpc=_last(h.get("train_bpc")), val_bpc=_last(h.get("val_bpc")),
        best_val_bpc=ck.best_val_bpc, best_iteration=ck.best_iteration,
        iterations=ck.iteration, steps_per_s=ck.iteration / wall if wall > 0 else None)
    return result


def _worker_info() -> dict:
    """What the client checks on each worker before sending work."""
    from .. import __version__ as version
    return {"charrnn_ext": version, "core": core_build()}


def import_distributed():
    try:
        import distributed
    except ImportError:
        raise CLIError(f"needs Dask's distributed scheduler, which is not installed "
                       f"({INSTALL_HINT})") from None
    return distributed


def start_cluster(args, distributed, n_runs: int):
    """(client, cluster or None): a client of the scheduler at --scheduler,
    or of a new local cluster (cluster is then ours to close)."""
    import logging
    timeout = args.timeout
    if args.scheduler is not None:
        # In a thread with a hard deadline: a peer that accepts the connection but
        # is not a Dask scheduler can keep Client() waiting past its timeout, and
        # a garbled reply can raise anything (numpy's MemoryError for a "frame").
        outcome = {}

        def connect():
            try:
                outcome["client"] = distributed.Client(args.scheduler, timeout=timeout,
                                                       set_as_default=False)
            except BaseException as exc:  # noqa: BLE001 -- reported below
                outcome["error"] = exc

        thread = threading.Thread(target=connect, name="charrnn-sweep-connect", daemon=True)
        thread.start()
        thread.join(timeout + 5)
        if "client" not in outcome:
            exc = outcome.get("error")
            why = (f"no answer within {timeout:g} s" if exc is None else
                   (str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
            raise CLIError(f"cannot reach the Dask scheduler at {args.scheduler} ({why[:200]}); "
                           f"start one with `dask scheduler` or check the address")
        return outcome["client"], None
    n = min(args.workers or usable_cpus(), n_runs)
    # Everything listens on 127.0.0.1 only, on free ports. (dashboard_address=None
    # still binds the scheduler's HTTP server, on the fixed port 8787, and ':0'
    # binds it on every interface.)
    # Dask's statistical profiler samples the workers' threads every 10 ms for
    # the dashboard, which is not shown here: off, for a few percent of speed.
    import dask
    try:
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=LOOPBACK_ANY_PORT, silence_logs=logging.ERROR)
    except Exception as exc:  # e.g. no worker process could be started
        raise CLIError(f"cannot start a local Dask cluster of {count(n, 'worker')}: "
                       f"{first_line(exc)}", code=1) from None
    try:
        client = distributed.Client(cluster, set_as_default=False)
        # Ctrl-C at the terminal reaches the workers too (one process group):
        # they leave it to this process, which cancels the work and closes them.
        client.register_plugin(_ignore_sigint_plugin(distributed))
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def check_address(address: str) -> None:
    """Refuse a scheduler address Dask cannot parse (before a Client is
    made: one that fails on its address cannot be closed quietly)."""
    from distributed.comm import registry
    from distributed.comm.addressing import parse_address, parse_host_port
    try:
        scheme, location = parse_address(address, strict=False)
        registry.get_backend(scheme)
        if scheme in ("tcp", "tls", "ws", "wss"):
            port = parse_host_port(location)[1]
            if not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--scheduler {address!r} is not a Dask scheduler address ({exc}); "
                       f"e.g. tcp://127.0.0.1:8786") from None


def _ignore_sigint_plugin(distributed):
    class IgnoreSigint(distributed.WorkerPlugin):
        name = "charrnn-sweep-ignore-sigint"

        def setup(self, worker):
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreSigint()


def check_workers(client, args) -> None:
    """Wait (--timeout) for a worker, and check that the workers can run
    charrnn_ext (installed, the version of this client)."""
    try:
        client.wait_for_workers(1, timeout=args.timeout)
    except (TimeoutError, OSError):
        raise CLIError(f"the Dask scheduler at {args.scheduler} has no workers after "
                       f"{args.timeout:g} s; start some with `dask worker {args.scheduler}`") \
            from None
    try:
        info = client.run(_worker_info)
    except Exception as exc:  # e.g. ModuleNotFoundError raised on a worker
        raise CLIError(f"the Dask workers cannot run charrnn_ext ({type(exc).__name__}: {exc}); "
                       f"install it on every worker ({INSTALL_HINT})") from None
    versions = {w: i["charrnn_ext"] for w, i in info.items() if i["charrnn_ext"] != __version__}
    if versions:
        w, v = next(iter(versions.items()))
        print(f"{prog_name('charrnn_ext.sweep')}: warning: {len(versions)} worker(s) run "
              f"charrnn_ext {v} (e.g. {w}), this client {__version__}", file=sys.stderr)
    cores = sorted({i["core"] for i in info.values()})
    if len(cores) > 1:
        print(f"{prog_name('charrnn_ext.sweep')}: warning: the workers use different core "
              f"builds ({', '.join(cores)}): a run's result depends on the worker that "
              f"trains it", file=sys.stderr)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
