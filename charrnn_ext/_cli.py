"""Helpers shared by the command-line tools (train, sample): one-line errors,
argument types and the top-level error handling."""
from __future__ import annotations

import argparse
import math
import os
import sys
import threading

from .defaults import MAX_THREADS


# The exit status of a command whose reader went away (``| head``): that of a
# Unix tool ended by SIGPIPE, 128 + 13, as a shell reports it.
PIPE_CLOSED = 141


def count(n: int, noun: str) -> str:
    """'1 character', '2 characters': a number and its noun, in agreement."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class CLIError(Exception):
    """An error reported as one line on stderr, exit status ``code``
    (2: bad input or usage; 1: a failure while running)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


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


def nonneg_int(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= MAX_INT:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_INT}], got {text}")
    return value


def sample_length_int(text: str) -> int:
    """Characters of a sample printed while training: positive, and small
    enough to hold in memory (12 bytes each) -- charrnn-sample streams longer texts."""
    value = positive_int(text)
    if value > MAX_TRAINING_SAMPLE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TRAINING_SAMPLE:,} (use "
                                         f"charrnn_ext.sample for longer texts), got {text}")
    return value


MAX_TRAINING_SAMPLE = 1_000_000


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


def unit_fraction(text: str) -> float:
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def fraction(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def run(main, argv, prog: str) -> int:
    """Call ``main(argv)`` and turn the expected failures into exit statuses:
    CLIError -> its one-line message and code; Ctrl-C -> 130 (Terminated,
    SIGTERM's: 143); a closed pipe
    on stdout (``| head``) -> quiet exit, status PIPE_CLOSED."""
    try:
        return main(argv)
    except CLIError as exc:
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

class RunLock:
    """``PATH.lock`` beside a checkpoint (beside its target, for a symlink),
    held with flock for a run's lifetime so that a second run on the same
    file is refused. The kernel drops the lock when the process ends, however
    it ends, so a lock file left by a crash is not held and is taken over.
    Where flock does not exist (Windows) runs are not locked. Within one
    process a held lock is taken again, counted (charrnn-train holds its
    files' locks from the start; training.run, which it calls, takes them
    too): a lock keeps out other processes."""

    _held: dict = {}                  # lock path -> [fd, holders] in this process
    _guard = threading.Lock()

    def __init__(self, path: str):
        self.path = os.path.realpath(path) + ".lock"
        self._fd = None

    def acquire(self) -> bool:
        """True if this run now holds the lock; False if another run does."""
        with RunLock._guard:
            held = RunLock._held.get(self.path)
            if held is not None:
                held[1] += 1
                self._fd = held[0]
                return True
            fd = self._flock()
            if fd is None:
                return False
            if fd >= 0:
                RunLock._held[self.path] = [fd, 1]
                self._fd = fd
            return True

    def _flock(self) -> int | None:
        """A descriptor of the lock file, flocked; -1 where runs are not
        locked (no flock, an unwritable directory); None if another run holds it."""
        try:
            import fcntl
        except ImportError:
            return -1
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return -1  # an unwritable directory: the save itself will report it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return None
            try:  # the file may have been released (unlinked) while we waited
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        return None

    def owner(self) -> str:
        try:
            with open(self.path) as f:
                pid = f.read().strip()
        except OSError:
            pid = ""
        return f"process {pid}" if pid.isdigit() else "lock " + self.path

    def release(self) -> None:
        if self._fd is None:
            return
        self._fd = None
        with RunLock._guard:
            held = RunLock._held.get(self.path)
            if held is None:
                return
            held[1] -= 1
            if held[1]:
                return   # another holder in this process keeps it
            del RunLock._held[self.path]
            try:
                os.unlink(self.path)
            except OSError:
                pass
            os.close(held[0])


def check_distinct_paths(outputs: dict, inputs: dict, allowed=()) -> None:
    """Refuse a run whose outputs name the same file as another output or an
    input (e.g. --plot naming the checkpoint). ``outputs``/``inputs`` map a
    description to a path or None; ``allowed`` lists (output, input) pairs
    that may be one file (--checkpoint continuing --resume)."""
    def key(path):
        return os.path.normcase(os.path.realpath(path))

    named = [(what, p, True) for what, p in outputs.items() if p] + \
            [(what, p, False) for what, p in inputs.items() if p]
    for i, (what_a, a, out_a) in enumerate(named):
        for what_b, b, out_b in named[i + 1:]:
            if not (out_a or out_b) or (what_a, what_b) in allowed or (what_b, what_a) in allowed:
                continue
            same = key(a) == key(b)
            if not same and os.path.exists(a) and os.path.exists(b):
                try:
                    same = os.path.samefile(a, b)
                except OSError:
                    same = False
            if same:
                raise CLIError(f"{what_a} {a} is the same file as {what_b} {b}; "
                               f"name different files")


def cgroup_room(proc_cgroup: str = "/proc/self/cgroup",
                cgroup_root: str = "/sys/fs/cgroup") -> int | None:
    """Bytes this process may still allocate under its cgroup's memory limit
    (cgroup v2 memory.max, or v1 memory.limit_in_bytes, minus current use),
    the smallest over the cgroup and the hierarchy's root; None where there is
    no limit or no cgroup."""
    try:
        with open(proc_cgroup) as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    candidates = []  # (directory, limit file, usage file)
    for entry in entries:
        if len(entry) != 3:
            continue
        _, controllers, rel = entry
        if controllers == "":  # v2: one unified hierarchy
            for base in (os.path.join(cgroup_root, rel.lstrip("/")), cgroup_root):
                candidates.append((base, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):  # v1: the memory controller's hierarchy
            for root in (os.path.join(cgroup_root, "memory"), cgroup_root):
                for base in (os.path.join(root, rel.lstrip("/")), root):
                    candidates.append((base, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    room = None
    for base, limit_name, usage_name in candidates:
        try:
            with open(os.path.join(base, limit_name)) as f:
                text = f.read().strip()
            if text == "max":
                continue
            limit = int(text)
            if limit >= 2**60:  # v1 writes "no limit" as a huge number
                continue
            with open(os.path.join(base, usage_name)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        left = max(limit - usage, 0)
        room = left if room is None else min(room, left)
    return room


def out_of_memory(exc: MemoryError) -> str:
    """One line for a MemoryError: what could not be allocated (numpy's
    message says how much, for what shape) and what this process may still
    allocate (available_memory)."""
    reason = str(exc).strip().splitlines()
    available = available_memory()
    room = f"; {available / 2**30:.1f} GiB is available to this process" if available else ""
    return (f"out of memory: {reason[0] if reason else 'an allocation failed'}{room} "
            f"(try smaller sizes or lengths)")


def rlimit_room() -> int | None:
    """Bytes this process may still map under its address-space limit
    (RLIMIT_AS, ``ulimit -v``: the soft limit less the current virtual
    size), None without a limit."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, AttributeError, OSError, ValueError):   # not POSIX
        return None
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    size = 0
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    size = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return max(soft - size, 0)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation: the smallest of the
    host's MemAvailable (Linux; else the physical memory), the room left
    under the cgroup's limit (containers) and under RLIMIT_AS (``ulimit
    -v``); None where none is known."""
    host = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    host = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if host is None:
        try:
            host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):  # not POSIX
            host = None
    known = [n for n in (host, cgroup_room(), rlimit_room()) if n is not None]
    return min(known) if known else None


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
