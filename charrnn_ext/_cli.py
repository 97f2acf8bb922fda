"""Helpers shared by the command-line tools (train, sample): one-line errors,
argument types and the top-level error handling."""
from __future__ import annotations

import argparse
import math
import os
import sys

from .defaults import MAX_THREADS


class CLIError(Exception):
    """An error reported as one line on stderr, exit status ``code``
    (2: bad input or usage; 1: a failure while running)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


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


# -- argument types (argparse turns ArgumentTypeError into a one-line error) --

def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


MAX_INT = 2**31 - 1  # sizes, lengths and counts the core handles as C ints


def positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INT}, got {text}")
    return value


def threads_int(text: str) -> int:
    """A positive thread count; counts above defaults.MAX_THREADS are capped
    (as set_num_threads caps them)."""
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return min(value, MAX_THREADS)


def seed_int(text: str) -> int:
    value = _int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {text}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def nonneg_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def fraction(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def run(main, argv, prog: str) -> int:
    """Call ``main(argv)`` and turn the expected failures into exit statuses:
    CLIError -> its one-line message and code; Ctrl-C -> 130; a closed pipe
    on stdout (``| head``) -> quiet exit."""
    try:
        return main(argv)
    except CLIError as exc:
        _flush_quietly()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        _flush_quietly()
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        _flush_quietly()
        print(f"{prog}: error: out of memory (try smaller sizes or lengths)", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away: silence the final flush of stdout as well
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def tolerant_stdout() -> None:
    """Never fail on characters the terminal's encoding cannot show."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
