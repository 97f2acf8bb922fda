"""The command-line layer's shared pieces: one-line errors and the one place that turns the library's errors into exit statuses (run), usage errors, the commands' names, the progress bar."""
from __future__ import annotations

import argparse
import os
import sys

from .._machine import out_of_memory
from .._parse import (MAX_INT, MAX_TRAINING_SAMPLE, fraction, nonneg_float,  # noqa: F401 (the commands' argument types)
                     nonneg_int, positive_float, positive_int, sample_length_int, seed_int,
                     threads_int, unit_fraction)
from .._words import count  # noqa: F401 (the commands' wording)
from ..errors import CharRNNError


# The exit status of a command whose reader went away (``| head``): that of a
# Unix tool ended by SIGPIPE, 128 + 13, as a shell reports it.
PIPE_CLOSED = 141


class CLIError(CharRNNError):
    """A command's own error (a flag's value, a combination of flags), reported
    as the library's errors are: one line on stderr, exit status ``code``
    (2: bad input or usage; 1: a failure while running)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, stopping a command as Ctrl-C does (its handlers raise it): exit
    status 143, 128 + SIGTERM, where Ctrl-C's is 130."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit status 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def prog_name(module: str) -> str:
    """``charrnn-train`` when run as a console script, else ``python -m ...``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name.endswith(".py") or name in ("-c", "-m"):
        return f"python -m {module}"
    return name


def run(main, argv, prog: str) -> int:
    """Call ``main(argv)`` and turn the expected failures into exit statuses:
    the library's errors (errors.CharRNNError: InputError, OutputError, ...)
    and CLIError -> the one-line message and its code; Ctrl-C -> 130 (Terminated,
    SIGTERM's: 143); a closed pipe
    on stdout (``| head``) -> quiet exit, status PIPE_CLOSED."""
    try:
        return main(argv)
    except CharRNNError as exc:
        _flush_quietly()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt as exc:
        _flush_quietly()
        terminated = isinstance(exc, Terminated)
        print(f"{prog}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except MemoryError as exc:
        _flush_quietly()
        print(f"{prog}: error: {out_of_memory(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away: silence the final flush of stdout as well
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return PIPE_CLOSED


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):  # AttributeError: no stdout at all (>&-)
        pass


def tolerant_stdout() -> None:
    """Never fail on characters the terminal's encoding cannot show."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


# -- outputs and resources ---------------------------------------------------

def progress_bar(total: int, initial: int = 0, unit: str = "it"):
    """tqdm's bar on stderr when it is a terminal, else None. A terminal that
    reports no size (0 x 0, as some consoles do) gets 80 x 24: tqdm draws
    nothing on a terminal of 0 columns or 0 rows."""
    try:
        if not sys.stderr.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from tqdm import tqdm
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        size = os.terminal_size((0, 0))
    sizing = {"dynamic_ncols": True} if min(size) > 0 else {"ncols": 80, "nrows": 24}
    return tqdm(total=total, initial=initial, unit=unit, mininterval=0.2, file=sys.stderr,
                **sizing)
