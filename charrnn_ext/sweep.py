"""``python -m charrnn_ext.sweep``: many training runs at once, on this machine
or on a Dask cluster.

A grid of settings (hidden sizes, learning rates, sequence lengths, ... or
seeds) is trained run by run on the workers of Dask's distributed scheduler:
a local cluster of one single-threaded worker process per usable CPU, or an
existing cluster (``--scheduler``). Each run is ``charrnn_ext.train.main``
called as a function on a worker, on one thread, with its seed: the same
code path as ``charrnn-train`` and the same result. Run ``--help``.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import itertools
import math
import os
import re
import signal
import sys
import tempfile
import textwrap
import threading
import time
import uuid

from . import __version__, defaults, training
from ._cli import (ArgumentParser, CLIError, RunLock, count, positive_float, positive_int,
                   prog_name, progress_bar, run, tolerant_stdout)
from ._dispatch import core_build, set_num_threads, usable_cpus
from .checkpoint import checkpoint_bytes
from .inputs import decode_input, read_input
from .settings import SETTINGS, add_setting_flags
from .training import Printer, summary

# The settings a grid may vary, in the order they appear in run names, with
# the prefix each has there. Their flags, checks and defaults are the table's
# (charrnn_ext.settings), as charrnn-train's are.
SWEEPABLE = {
    "hidden_size": "h",
    "learning_rate": "lr",
    "seq_length": "T",
    "batch_size": "B",
    "iters": "it",
    "seed": "seed",
    "val_fraction": "vf",
    "eval_every": "ee",
}
MAX_RUNS = 10_000             # larger grids are refused (split them into several sweeps)
RESULTS = "results.csv"
SAVE_EVERY = 1.0              # seconds between rewrites of results.csv while runs finish
METRICS = ("train_bpc", "val_bpc", "best_val_bpc", "best_iteration", "iterations",
           "steps_per_s", "wall_s")
LOOPBACK_ANY_PORT = "127.0.0.1:0"
INSTALL_HINT = "pip install 'charrnn_ext[sweep]'"

DESCRIPTION = """\
Train a grid of character-level models (one charrnn-train run per combination
of settings) on Dask's distributed scheduler, and rank them by held-out bits
per character.

Each run is charrnn-train's run (charrnn_ext.training.run) called on a Dask
worker, on one thread, deterministic from its seed: the same command with the
same settings gives bit-identical parameters, whichever worker trains it. The
text is sent to the workers once; each finished run's checkpoint (and its
best-model file NAME.best.npz when there is a held-out part) comes back and is
written to DIR/NAME.npz, its printed output to DIR/NAME.log, and a line to
DIR/results.csv: the settings, the final training and validation bits per
character (the checkpoint's last evaluation), the best validation figure and
its iteration, iterations per second of the run's wall time, and the wall
time. The file and the table printed at the end are sorted by validation bits
per character, best run first.

Without --scheduler a local cluster is started: one worker process per usable
CPU (--workers), each with one thread, listening on 127.0.0.1 only. With
--scheduler ADDRESS the workers of an existing cluster are used (dask
scheduler / dask worker; every worker needs charrnn_ext[sweep] installed, the
same version and core build for bit-identical results).

Rerunning the same command skips the runs whose results are already in DIR (a
sweep is resumable). Ctrl-C cancels the cluster's work and keeps the finished
runs (on an existing cluster, runs already started finish on their workers and
are discarded: Dask does not stop a running task). A worker that dies in the
middle of a run (killed, out of memory) does not lose the sweep: Dask gives
the run to another worker, which trains it from the start to the same result;
a run whose workers die repeatedly (Dask's distributed.scheduler.allowed-
failures, default 3) is reported as failed.
"""

EPILOG = """\
grid: NAME=V1,V2,... for each setting to vary; the runs are every
combination. Settings not in the grid take the flag above, else
charrnn-train's default.
{names}

examples:
  python -m charrnn_ext.sweep input.txt --grid hidden_size=100,200 \\
      learning_rate=0.1,0.05 seq_length=25,50 --iters 20000 --out sweep
  python -m charrnn_ext.sweep input.txt --grid seed=0,1,2,3 --out seeds
  python -m charrnn_ext.sweep input.txt --grid hidden_size=64,128 --out sweep \\
      --scheduler tcp://127.0.0.1:8786

exit status: 0 every run done, 1 some runs failed (each is named with its
error on stderr; the others are kept), 2 bad input or options (before any
work starts) or a scheduler that cannot be reached, 130 interrupted
(Ctrl-C), 143 terminated (SIGTERM).
"""


# ---------------------------------------------------------------------------
# the settings: from charrnn_ext.train, the one source of truth
# ---------------------------------------------------------------------------

def sweepable_settings() -> dict:
    """setting name -> its Setting (charrnn_ext.settings: flag, check, help),
    for the settings a grid may vary, in run-name order."""
    return {name: SETTINGS[name] for name in SWEEPABLE}


def _format(value) -> str:
    """A setting's value as text that parses back to the same value (floats
    as their shortest round-trip repr)."""
    return repr(value) if isinstance(value, float) else str(value)


def _parse_value(name: str, setting, text: str):
    try:
        return setting.parse(text)
    except argparse.ArgumentTypeError as exc:
        raise CLIError(f"--grid {name}: {exc}") from None


def parse_grid(items: list[str], fixed: dict, settings: dict) -> dict:
    """``["hidden_size=100,200", ...]`` -> {name: [values]} in SWEEPABLE
    order, each value parsed with the trainer's type for it. CLIError for
    anything that is not a grid of known settings, distinct valid values, at
    most MAX_RUNS runs."""
    grid = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise CLIError(f"--grid {item!r}: expected NAME=V1,V2,... "
                           f"(e.g. hidden_size=100,200)")
        if name not in settings:
            raise CLIError(f"--grid: unknown setting {name!r} (settings: "
                           f"{', '.join(settings)})")
        if name in grid:
            raise CLIError(f"--grid names {name} twice; list its values once: {name}=V1,V2")
        if fixed.get(name) is not None:
            raise CLIError(f"{settings[name].flag} and --grid {name}=... both set {name}; "
                           f"use one")
        texts = [v.strip() for v in values.split(",")]
        if any(not t for t in texts):
            raise CLIError(f"--grid {item!r}: an empty value (expected {name}=V1,V2,...)")
        parsed = []
        for t in texts:
            v = _parse_value(name, settings[name], t)
            if v in parsed:
                raise CLIError(f"--grid {name}: the value {_format(v)} is listed twice")
            parsed.append(v)
        grid[name] = parsed
    if not grid:
        raise CLIError("--grid is empty: name at least one setting to vary, e.g. "
                       "--grid hidden_size=100,200")
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_RUNS:
        raise CLIError(f"--grid makes {n:,} runs, more than {MAX_RUNS:,}; split it into "
                       f"smaller sweeps")
    return {name: grid[name] for name in SWEEPABLE if name in grid}


def run_name(varied: dict) -> str:
    """A run's name from the settings its grid varies, in SWEEPABLE order:
    hidden_size=100, learning_rate=0.1, seq_length=25 -> 'h100-lr0.1-T25'.
    Distinct settings give distinct names (values are written exactly);
    the characters are letters, digits and '.', '-', '+' only."""
    name = "-".join(f"{SWEEPABLE[k]}{_format(v)}" for k, v in varied.items())
    if not re.fullmatch(r"[A-Za-z0-9.+-]+", name):  # every sweepable type gives such values
        raise CLIError(f"cannot make a file name from the settings {varied}")
    return name


def expand(grid: dict, fixed: dict, settings: dict) -> list[tuple[str, dict]]:
    """[(name, settings)] for every combination of the grid; a run's settings
    are all the sweepable ones: the grid's, else the fixed flag's, else the
    trainer's default."""
    base = {k: fixed[k] if fixed.get(k) is not None else SETTINGS[k].default for k in settings}
    runs = []
    for combo in itertools.product(*grid.values()):
        varied = dict(zip(grid, combo))
        runs.append((run_name(varied), {**base, **varied}))
    return runs


# ---------------------------------------------------------------------------
# on the worker: one run
# ---------------------------------------------------------------------------

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
    """Train one run on a worker: charrnn_ext.training.run on one thread, the
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
    except (ValueError, MemoryError) as exc:
        code, error = 2, str(exc) or "out of memory"
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
    from . import __version__ as version
    return {"charrnn_ext": version, "core": core_build()}


# ---------------------------------------------------------------------------
# on the client: the output directory
# ---------------------------------------------------------------------------

def _write_atomic(path: str, data: bytes) -> None:
    """data to path through a temporary file in the same directory and
    os.replace: a reader (or a crash) never sees a partial file."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sort_key(row: dict):
    """Best run first: by validation bits/char; runs without one after, by
    training bits/char."""
    val, tr = row.get("val_bpc"), row.get("train_bpc")
    return (val is None, val if val is not None else 0.0, tr is None, tr or 0.0, row["run"])


class Results:
    """DIR/results.csv: one row per finished run, best first, rewritten
    atomically as runs finish (at most every SAVE_EVERY seconds) and at the
    end."""

    def __init__(self, directory: str, columns: list[str]):
        self.path = os.path.join(directory, RESULTS)
        self.columns = ["run", *columns, *METRICS, "input_sha256"]
        self.rows: dict[str, dict] = {}
        self.extra: list[str] = []  # columns of an existing file this version does not write
        self.unsaved, self._saved_at = False, -math.inf

    def load(self, settings: dict) -> None:
        if not os.path.exists(self.path):
            return
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or []
                if "run" not in header or "input_sha256" not in header:
                    raise CLIError(f"{self.path} is not a results file of charrnn-sweep (no "
                                   f"'run' and 'input_sha256' columns); use another --out")
                self.extra = [c for c in header if c not in self.columns]
                for line, rec in enumerate(reader, start=2):
                    row = {"run": rec["run"], "input_sha256": rec["input_sha256"]}
                    for key in self.columns[1:-1]:
                        text = rec.get(key) or ""
                        try:
                            if not text:
                                row[key] = None
                            elif key in settings:
                                row[key] = settings[key].parse(text)
                            else:
                                row[key] = _number(text)
                        except (argparse.ArgumentTypeError, ValueError) as exc:
                            raise CLIError(f"{self.path}, line {line}: {key} {text!r}: {exc}; "
                                           f"use another --out") from None
                    for key in self.extra:
                        row[key] = rec.get(key) or ""
                    self.rows[row["run"]] = row
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            raise CLIError(f"cannot read {self.path}: {exc}") from None

    def add(self, row: dict) -> None:
        """Record a finished run; the file is rewritten at most every
        SAVE_EVERY seconds (and by save() at the end), so that a sweep of
        thousands of short runs does not spend its time rewriting it."""
        self.rows[row["run"]] = row
        self.unsaved = True
        if time.monotonic() - self._saved_at >= SAVE_EVERY:
            self.save()

    def sorted_rows(self, names=None) -> list[dict]:
        rows = self.rows.values() if names is None else \
            [self.rows[n] for n in names if n in self.rows]
        return sorted(rows, key=_sort_key)

    def save(self) -> None:
        self.unsaved, self._saved_at = False, time.monotonic()
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns + self.extra)
        for row in self.sorted_rows():
            writer.writerow([_cell(row.get(c)) for c in self.columns + self.extra])
        _write_atomic(self.path, buf.getvalue().encode("utf-8"))


def _number(text: str):
    if text == "":
        return None
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_table(rows: list[dict]) -> str:
    """The finished runs as a text table, in the given order."""
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    head = ("run", "val bits/char", "best val (iter)", "train bits/char", "steps/s", "wall s")
    body = [(r["run"], f(r.get("val_bpc"), ".4f"),
             "-" if r.get("best_val_bpc") is None else
             f"{r['best_val_bpc']:.4f} ({r.get('best_iteration')})",
             f(r.get("train_bpc"), ".4f"), f(r.get("steps_per_s"), ".0f"),
             f(r.get("wall_s"), ".1f")) for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = []
    for i, cols in enumerate([head, *body]):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(cols, widths))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------

def build_parser(prog: str | None = None) -> ArgumentParser:
    settings = sweepable_settings()
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.sweep"), description=DESCRIPTION,
                       epilog=EPILOG.format(names=textwrap.fill(
                           "Names (dashes may stand for underscores): " + ", ".join(settings)
                           + ".", width=78)),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (charrnn_ext) {__version__}")
    p.add_argument("input", metavar="input.txt", nargs="?",
                   help="the text to train on; '-' reads standard input")
    p.add_argument("--grid", nargs="+", required=True, metavar="NAME=V1,V2",
                   help="the settings to vary and their values (see below); every "
                        f"combination is one run, at most {MAX_RUNS:,}")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory of the results (created if missing): NAME.npz, "
                        "NAME.best.npz, NAME.log per run and results.csv")
    p.add_argument("--encoding", default=defaults.ENCODING, metavar="NAME",
                   help=f"text encoding of the input (default: {defaults.ENCODING})")
    c = p.add_argument_group("cluster")
    c.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler (e.g. tcp://127.0.0.1:8786) whose "
                        "workers train the runs (default: start a local cluster)")
    c.add_argument("--workers", type=positive_int, metavar="N",
                   help="worker processes of the local cluster, one thread each (default: one "
                        f"per usable CPU, here {usable_cpus()}, at most one per run)")
    c.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                   help="how long to wait for the scheduler and its first worker "
                        "(default: 10)")
    c.add_argument("--retries", type=_nonneg_int, default=2, metavar="N",
                   help="times a run that raised an unexpected error is tried again (a run "
                        "whose worker died is given to another worker by Dask itself; "
                        "default: 2)")
    s = p.add_argument_group("settings of every run, as charrnn-train's (a setting in --grid "
                             "is not set here)")
    add_setting_flags(s, settings)
    return p


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be in [0, 100], got {text}")
    return value


def _read_input(path: str, encoding: str) -> tuple[bytes, str, str]:
    """(bytes of the text, the text, its name for messages), refused
    (CLIError) when it cannot be read or is not text in ``encoding``:
    charrnn-train's own checks."""
    data, name = read_input(path, encoding)
    return data, decode_input(data, name, encoding), name


def _check_runs_fit(runs, n_chars: int, input_name: str) -> None:
    """CLIError (one line, before any work) for the first run whose settings
    leave it no training on this text (charrnn-train's own check)."""
    for name, settings_ in runs:
        try:
            training.split(n_chars, settings_, input_name)
        except training.TextError as exc:
            raise CLIError(f"run {name}: {exc}") from None


def _prepare_out(directory: str) -> RunLock:
    """Create the output directory if needed, check it can be written, and
    lock it for this sweep (a second sweep into it is refused)."""
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise CLIError(f"--out {directory} exists and is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"--out {directory}: cannot write there "
                       f"({exc.strerror or exc})") from None
    lock = RunLock(os.path.join(directory, RESULTS))
    if not lock.acquire():
        raise CLIError(f"another sweep is writing into --out {directory} ({lock.owner()})")
    return lock


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise CLIError(f"needs Dask's distributed scheduler, which is not installed "
                       f"({INSTALL_HINT})") from None
    return distributed


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C."""


def _on_sigterm(signum, frame):
    raise _Terminated


def _main(argv) -> int:
    # -- 1. everything that can be refused, before any work ---------------------
    parser = build_parser()
    args = parser.parse_args(argv)
    tolerant_stdout()
    if args.input is None:
        stray = [g for g in args.grid if "=" not in g]
        hint = (f" (--grid took {stray[-1]!r}: name the input before --grid, which takes "
                f"every word after it)" if stray else "")
        parser.error(f"the following arguments are required: input.txt{hint}")
    settings = sweepable_settings()
    fixed = {name: getattr(args, name) for name in settings}
    grid = parse_grid(args.grid, fixed, settings)
    runs = expand(grid, fixed, settings)
    if args.scheduler is not None and args.workers is not None:
        raise CLIError("--workers is for the local cluster; with --scheduler the cluster's "
                       "own workers train the runs")
    distributed = _import_distributed()
    if args.scheduler is not None:
        _check_address(args.scheduler)
    data, text, input_name = _read_input(args.input, args.encoding)
    _check_runs_fit(runs, len(text), input_name)
    digest = hashlib.sha256(data).hexdigest()
    created = not os.path.lexists(args.out)
    lock = _prepare_out(args.out)
    try:
        results = Results(args.out, list(settings))
        results.load(settings)
        todo = _runs_to_do(runs, results, digest, args.out)
        return _sweep(args, distributed, settings, grid, runs, todo, results, text, digest,
                      input_name)
    finally:
        lock.release()
        if created:  # a sweep that kept nothing leaves no directory behind
            with contextlib.suppress(OSError):
                os.rmdir(args.out)


def _runs_to_do(runs, results: Results, digest: str, out: str) -> list:
    """The runs without a result in DIR; CLIError if DIR holds a run of the
    same name with other settings or another text."""
    todo = []
    for name, cfg in runs:
        row = results.rows.get(name)
        if row is None or not os.path.exists(os.path.join(out, f"{name}.npz")):
            todo.append((name, cfg))
            continue
        if row["input_sha256"] != digest:
            raise CLIError(f"{results.path} holds run {name} trained on another text; use "
                           f"another --out")
        for key, value in cfg.items():
            stored = row.get(key)
            if stored is None:
                stored = SETTINGS[key].default  # a column an older results file did not have
            if stored != value:
                raise CLIError(f"{results.path} holds run {name} with {key}={_cell(stored)}, "
                               f"this sweep asks for {key}={_cell(value)}; use another --out")
    return todo



def _say(bar, text: str) -> None:
    if bar is not None:
        bar.write(text, file=sys.stdout)
    else:
        print(text, flush=True)


def _start_cluster(args, distributed, n_runs: int):
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
                       f"{_first_line(exc)}", code=1) from None
    try:
        client = distributed.Client(cluster, set_as_default=False)
        # Ctrl-C at the terminal reaches the workers too (one process group):
        # they leave it to this process, which cancels the work and closes them.
        client.register_plugin(_ignore_sigint_plugin(distributed))
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def _check_address(address: str) -> None:
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


def _check_workers(client, args) -> None:
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


def _row(name: str, cfg: dict, res: dict, digest: str) -> dict:
    row = {"run": name, **cfg, "input_sha256": digest}
    for key in METRICS:
        row[key] = res.get(key)
    return row


def _keep(out: str, res: dict) -> None:
    """A finished run's files into DIR, each written atomically."""
    name = res["name"]
    _write_atomic(os.path.join(out, f"{name}.npz"), res["checkpoint"])
    best = os.path.join(out, f"{name}.best.npz")
    if res.get("best") is not None:
        _write_atomic(best, res["best"])
    elif os.path.exists(best):  # from an earlier run of this name with other settings
        os.unlink(best)
    _write_atomic(os.path.join(out, f"{name}.log"), res["log"].encode("utf-8"))


def _sweep(args, distributed, settings, grid, runs, todo, results, text, digest, input_name) -> int:
    names = [n for n, _ in runs]
    done = len(runs) - len(todo)
    shape = " x ".join(f"{len(v)} {k}" for k, v in grid.items())
    print(f"sweep: {count(len(runs), 'run')} ({shape}) on "
          f"{input_name} ({len(text):,} characters) into {args.out}"
          + (f"; {done} already done there" if done else ""), flush=True)
    if not todo:
        print(format_table(results.sorted_rows(names)))
        return 0
    failed: list[tuple[str, str]] = []
    interrupted = None
    previous_term = None
    if threading.current_thread() is threading.main_thread():
        previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    client = cluster = bar = None
    futures = []
    t0 = time.perf_counter()
    try:
        client, cluster = _start_cluster(args, distributed, len(todo))
        _check_workers(client, args)
        workers = len(client.scheduler_info()["workers"])
        where = args.scheduler or "a local cluster"
        print(f"training {count(len(todo), 'run')} on {where} ({count(workers, 'worker')})",
              flush=True)
        data = client.scatter(text, broadcast=True)  # the text goes to the workers once
        cfgs = dict(todo)
        names_of = {}
        for name, cfg in todo:
            future = client.submit(
                train_one, data, name, cfg,
                key=f"charrnn-sweep-{name}-{uuid.uuid4().hex[:8]}", pure=False,
                retries=args.retries)
            futures.append(future)
            names_of[future.key] = name
        bar = progress_bar(len(todo), unit="run")
        for future in distributed.as_completed(futures, loop=client.loop):
            name = names_of[future.key]
            try:
                res = future.result()
                why = None if res["code"] == 0 else f"exit status {res['code']}: {res['error']}"
            except distributed.KilledWorker as exc:
                why = f"its workers died while training it ({_first_line(exc)})"
            except Exception as exc:  # the run raised on the worker (after --retries)
                why = f"{type(exc).__name__}: {_first_line(exc)}"
            finally:
                future.release()
                if bar is not None:
                    bar.update(1)
            if why is not None:
                failed.append((name, why))
                _say(bar, f"failed {name}: {why}")
                continue
            row = _row(name, cfgs[name], res, digest)
            try:
                _keep(args.out, res)
                results.add(row)
            except OSError as exc:
                raise CLIError(f"cannot write the results of run {name} in {args.out}: "
                               f"{exc.strerror or exc}", code=1) from None
            _say(bar, f"done {name}: " + _summary(row))
    except KeyboardInterrupt as exc:
        interrupted = 143 if isinstance(exc, _Terminated) else 130
        if client is not None and futures:
            with contextlib.suppress(Exception):
                client.cancel(futures, force=True)
    finally:
        if bar is not None:
            bar.close()
        if results.unsaved:
            with contextlib.suppress(OSError):  # reported above, when a run was kept
                results.save()
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    wall = time.perf_counter() - t0
    finished = [n for n in names if n in results.rows]
    print(f"----\n{len(finished)} of {count(len(runs), 'run')} done ({wall:.1f} s), results in "
          f"{results.path}, best first:")
    print(format_table(results.sorted_rows(names)))
    prog = prog_name("charrnn_ext.sweep")
    for name, why in failed:
        print(f"{prog}: run {name} failed: {why}", file=sys.stderr)
    if interrupted is not None:
        print(f"{prog}: interrupted; {len(finished)} of {count(len(runs), 'run')} are kept in "
              f"{args.out}: rerun the same command to train the others", file=sys.stderr)
        return interrupted
    if failed:
        print(f"{prog}: error: {len(failed)} of {count(len(runs), 'run')} failed (see above)",
              file=sys.stderr)
        return 1
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _summary(row: dict) -> str:
    parts = []
    if row.get("val_bpc") is not None:
        parts.append(f"val {row['val_bpc']:.4f} bits/char")
    if row.get("best_val_bpc") is not None:
        parts.append(f"best {row['best_val_bpc']:.4f} at {row['best_iteration']}")
    if row.get("train_bpc") is not None:
        parts.append(f"train {row['train_bpc']:.4f}")
    parts.append(f"{row['steps_per_s']:.0f} steps/s, {row['wall_s']:.1f} s")
    return ", ".join(parts)


def main(argv=None) -> int:
    return run(_main, argv, prog_name("charrnn_ext.sweep"))


if __name__ == "__main__":
    # the functions sent to the workers must be pickled by reference to this
    # module (charrnn_ext.sweep), not to __main__
    from charrnn_ext.sweep import main as _entry
    sys.exit(_entry())
