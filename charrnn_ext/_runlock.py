"""A run's lock on its checkpoint: ``PATH.lock`` held with flock, so a second run on the same file is refused."""
from __future__ import annotations

import os
import threading


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
