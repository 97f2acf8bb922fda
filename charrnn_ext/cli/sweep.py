"""``python -m charrnn_ext.sweep``: many training runs at once, on this machine
or on a Dask cluster.

A grid of settings (hidden sizes, learning rates, sequence lengths, ... or
seeds) is trained run by run on the workers of Dask's distributed scheduler:
a local cluster of one single-threaded worker process per usable CPU, or an
existing cluster (``--scheduler``). Each run is ``charrnn_ext.run.training.run``
called on a worker, on one thread, with its seed: the same code path as
``charrnn-train`` and the same result. Run ``--help``.
"""
from __future__ import annotations

from .. import _loading

with _loading():  # Ctrl-C while the heavy modules load: exit quietly with 130
    import argparse
    import contextlib
    import hashlib
    import os
    import signal
    import sys
    import textwrap
    import threading
    import time
    import uuid

    from .. import __version__, defaults
    from ..run import training
    from .common import (ArgumentParser, CLIError, Terminated, count, positive_float,
                         positive_int, prog_name, progress_bar, run, tolerant_stdout)
    from ..core._dispatch import usable_cpus
    from .cluster import (LOOPBACK_ANY_PORT, check_address, check_workers,  # noqa: F401
                          first_line, import_distributed, start_cluster, train_one)
    from ..run.grid import MAX_RUNS, SWEEPABLE, expand, parse_grid, run_name, sweepable_settings  # noqa: F401
    from ..text.inputs import decode_input, read_input
    from ..run.results import Results, format_table, keep, prepare_out, row_of, runs_to_do, summarize
    from ..core.settings import add_setting_flags

DESCRIPTION = """\
Train a grid of character-level models (one charrnn-train run per combination
of settings) on Dask's distributed scheduler, and rank them by held-out bits
per character.

Each run is charrnn-train's run (charrnn_ext.run.training.run) called on a Dask
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
(Ctrl-C), 141 the reader of the output went away (| head), 143 terminated
(SIGTERM).
"""


# the settings: from charrnn_ext.train, the one source of truth

# on the worker: one run

# on the client: the output directory

# the command line

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


def _on_sigterm(signum, frame):
    raise Terminated   # handled like Ctrl-C; exit status 143


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
    distributed = import_distributed()
    if args.scheduler is not None:
        check_address(args.scheduler)
    data, text, input_name = _read_input(args.input, args.encoding)
    _check_runs_fit(runs, len(text), input_name)
    digest = hashlib.sha256(data).hexdigest()
    created = not os.path.lexists(args.out)
    lock = prepare_out(args.out)
    try:
        results = Results(args.out, list(settings))
        results.load(settings)
        todo = runs_to_do(runs, results, digest, args.out)
        return _sweep(args, distributed, settings, grid, runs, todo, results, text, digest,
                      input_name)
    finally:
        lock.release()
        if created:  # a sweep that kept nothing leaves no directory behind
            with contextlib.suppress(OSError):
                os.rmdir(args.out)


def _say(bar, text: str) -> None:
    if bar is not None:
        bar.write(text, file=sys.stdout)
    else:
        print(text, flush=True)


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
        client, cluster = start_cluster(args, distributed, len(todo))
        check_workers(client, args)
        workers = len(client.scheduler_info()["workers"])
        where = args.scheduler or "a local cluster"
        print(f"training {count(len(todo), 'run')} on {where} ({count(workers, 'worker')})",
              flush=True)
        data = client.scatter(text, broadcast=True)  # the text goes to the workers once
        settings_of = dict(todo)
        names_of = {}
        for name, settings_ in todo:
            future = client.submit(
                train_one, data, name, settings_,
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
                why = f"its workers died while training it ({first_line(exc)})"
            except Exception as exc:  # the run raised on the worker (after --retries)
                why = f"{type(exc).__name__}: {first_line(exc)}"
            finally:
                future.release()
                if bar is not None:
                    bar.update(1)
            if why is not None:
                failed.append((name, why))
                _say(bar, f"failed {name}: {why}")
                continue
            row = row_of(name, settings_of[name], res, digest)
            try:
                keep(args.out, res)
                results.add(row)
            except OSError as exc:
                raise CLIError(f"cannot write the results of run {name} in {args.out}: "
                               f"{exc.strerror or exc}", code=1) from None
            _say(bar, f"done {name}: " + summarize(row))
    except KeyboardInterrupt as exc:
        interrupted = 143 if isinstance(exc, Terminated) else 130
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


def main(argv=None) -> int:
    return run(_main, argv, prog_name("charrnn_ext.sweep"))


if __name__ == "__main__":
    # the functions sent to the workers must be pickled by reference to this
    # module (charrnn_ext.sweep), not to __main__
    from charrnn_ext.cli.sweep import main as _entry
    sys.exit(_entry())
