"""Where commands' files go: the output rules every command follows, a run's checkpoint and best-model paths, their locks, the writers."""
from __future__ import annotations

import os
from typing import NamedTuple

from ._ckptfile import probe, write_atomic
from .._runlock import RunLock
from .checkpoint import Checkpoint, load_checkpoint
from ..errors import OutputError  # noqa: F401 (its home for the output rules' callers)


def best_path(checkpoint: str) -> str:
    """Where the best model of a run saved to ``checkpoint`` is kept: beside
    it (beside its target, for a symlink), ``model.npz`` -> ``model.best.npz``."""
    if os.path.islink(checkpoint):
        checkpoint = os.path.realpath(checkpoint)
    root, ext = os.path.splitext(checkpoint)
    return f"{root}.best{ext or '.npz'}"


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
                raise OutputError(f"{what_a} {a} is the same file as {what_b} {b}; "
                                  f"name different files")


class Words(NamedTuple):
    """How the rules' messages name the checkpoint, its continuation and the
    overwrite permission: a command's flags, or training.run's arguments."""
    checkpoint: str
    resume: str       # format(path): how to continue the run in path
    overwrite: str


COMMAND = Words("--checkpoint", "--resume {}", "--overwrite")
LIBRARY = Words("checkpoint", "resume={!r}", "overwrite=True")


def check_output(path: str, what: str, overwrite: bool = True) -> None:
    """Fail before the work, not after it, if ``path`` cannot be written: not
    a directory, device or FIFO (a symlink is written through, a dangling one
    created through), in a directory that exists and takes a real write of a
    temporary name as long as the one a save uses (so a name too long for the
    file system fails here); without ``overwrite``, not an existing file
    ("pass --overwrite to replace it"). OutputError says why, naming ``what``
    (the flag, e.g. "--out")."""
    if not path:
        raise OutputError(f"{what} needs a file name")
    if path.endswith(os.sep) or os.path.isdir(path):
        raise OutputError(f"{what} {path} is a directory")
    if os.path.lexists(path) and not os.path.isfile(path) and os.path.exists(path):
        raise OutputError(f"{what} {path} is not a regular file")  # (a dangling link is fine)
    if not overwrite and os.path.exists(path):
        raise OutputError(f"{what} {path} already exists; pass --overwrite to replace it")
    target = os.path.realpath(path)  # saves write through a symlink to its target
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise OutputError(f"{what} {path}: directory {parent} does not exist")
    try:
        probe(target)   # a save's own temporary file: one a kill leaves, the next save removes
    except OSError as exc:
        raise OutputError(f"{what} {path}: cannot write in {parent} "
                          f"({exc.strerror or exc})") from None


def check_new_file(path: str, what: str, inputs: dict, overwrite: bool) -> None:
    """The output rules of a command that writes one file (charrnn-export):
    never one of its ``inputs`` (a description -> path dict; through symlinks
    and hard links too: check_distinct_paths), and check_output's rules (no
    directory, device or FIFO; a directory that takes the write; an existing
    file only with ``overwrite``). OutputError (exit 2) otherwise."""
    check_distinct_paths({what: path}, inputs)
    check_output(path, what, overwrite)


def write_file(path: str, data: bytes, what: str) -> None:
    """``data`` at ``path`` (through a symlink, at its target) atomically, with
    the mode every output gets (write_atomic: 0666 less the umask); a failed
    write leaves what was there and is an OutputError with exit status 1."""
    try:
        write_atomic(os.path.realpath(path), lambda f: f.write(data))
    except OSError as exc:
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}", code=1) from None


def check_existing(path: str, what: str, continued: str | None, overwrite: bool,
                   words: Words = COMMAND) -> None:
    """A fresh run never replaces a file that is not one of our checkpoints,
    nor, unless overwrite, a trained model; the run being continued
    (``continued``: the --resume file, or the best file of that run) is fine."""
    if not os.path.exists(path):  # (through a symlink: a dangling one is created through)
        return
    if continued and os.path.exists(continued) and os.path.samefile(path, continued):
        return
    try:
        existing = load_checkpoint(path)
    except (ValueError, OSError) as exc:
        raise OutputError(f"refusing to overwrite {what} {path}: {exc}") from None
    if not overwrite:
        hint = (f"pass {words.resume.format(path)} to continue it, or {words.overwrite} to "
                f"start over" if what == words.checkpoint else
                f"pass {words.overwrite} to start over")
        held = "a run" if what == words.checkpoint else "a model"
        raise OutputError(f"{what} {path} already holds {held} at iteration "
                          f"{existing.iteration}; {hint}")


class Locks(list):
    """The RunLocks of a run's output files, released together."""

    def release(self) -> None:
        for lock in self:
            lock.release()


def lock_outputs(path: str, keep_best: bool) -> Locks | None:
    """Lock the checkpoint and its best-model file; None if another run holds
    either (then nothing is held)."""
    locks = Locks()
    for target in [path] + ([best_path(path)] if keep_best else []):
        lock = RunLock(target)
        if not lock.acquire():
            locks.release()
            return None
        locks.append(lock)
    return locks


def take_run_files(path: str, keep_best: bool, continued: str | None = None,
                   overwrite: bool = False, words: Words = COMMAND) -> Locks:
    """The output rules of a run saving to ``path`` (and its best model
    beside it, ``keep_best``), checked before any work, and the two files
    locked for the run's lifetime (release the Locks returned): both paths
    writable (check_output); neither held by another run; an existing file
    only the run being continued (``continued``: the file it resumes, whose
    best file is then its own too) or, with ``overwrite``, a checkpoint
    (check_existing). OutputError otherwise. charrnn-train and training.run
    both call it."""
    best = best_path(path)
    check_output(path, words.checkpoint)
    if keep_best:
        check_output(best, "the best-model file")
    locks = lock_outputs(path, keep_best)
    if locks is None:
        raise OutputError(f"another run is writing {words.checkpoint} {path} or its best-model "
                          f"file ({RunLock(path).owner()}); wait for it or choose another file")
    try:
        check_existing(path, words.checkpoint, continued, overwrite, words)
        if keep_best:
            continuing = continued is not None and os.path.exists(path) \
                and os.path.exists(continued) and os.path.samefile(path, continued)
            check_existing(best, "the best-model file", best if continuing else None,
                           overwrite, words)
    except BaseException:
        locks.release()
        raise
    return locks


def take_checkpoint_path(checkpoint: str | None, resume: str | None, input_path: str | None,
                         keep_best: bool, overwrite: bool) -> tuple[str, Locks]:
    """The checkpoint path of this run, locked with its best-model file for
    the run's lifetime (a second run writing either is refused). Without
    --checkpoint and --resume, a new file in the current directory named
    after the input (input.npz, then input-2.npz, ...): an existing file is
    never chosen."""
    if checkpoint is None and resume is not None and resume.endswith(".best.npz"):
        raise OutputError(f"--resume {resume} is the best model kept by a run: continuing it "
                          f"in place would replace it; name the continued run's file with "
                          f"--checkpoint PATH")
    path = checkpoint if checkpoint is not None else resume
    if path is not None:
        return path, take_run_files(path, keep_best, resume, overwrite)
    if input_path is None:
        stem = "demo"
    elif input_path == "-":
        stem = "stdin"
    else:
        stem = os.path.splitext(os.path.basename(os.path.normpath(input_path)))[0] or "model"
    for k in range(1, 10_000):
        path = f"{stem}.npz" if k == 1 else f"{stem}-{k}.npz"
        if os.path.lexists(path) or os.path.lexists(best_path(path)):
            continue
        try:
            check_output(path, "the checkpoint")
            if keep_best:
                check_output(best_path(path), "the best-model file")
        except OutputError as exc:
            raise OutputError(f"{exc} (name another place with --checkpoint PATH)") from None
        locks = lock_outputs(path, keep_best)
        if locks is None:
            continue
        if os.path.lexists(path) or os.path.lexists(best_path(path)):  # created meanwhile
            locks.release()
            continue
        return path, locks
    raise OutputError(f"no free checkpoint name {stem}-N.npz in the current directory; "
                      f"name one with --checkpoint PATH")




class Files:
    """A run's checkpoint file and the best-model file beside it (``keep_best``),
    written atomically, through a symlink to its target."""

    def __init__(self, path: str, keep_best: bool = True):
        self.name = path
        self.best_name = best_path(path) if keep_best else None
        self.best_file = self.best_name   # where the best model is read back from
        self.keep_best = keep_best

    def write(self, state: Checkpoint, best: bool = False) -> None:
        path = self.best_name if best else self.name
        try:
            state.save(os.path.realpath(path))
        except OSError as exc:
            raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None
        except ValueError as exc:  # a state the loader would refuse: nothing was written
            raise OSError(f"not saving {path}: {exc}") from None

    def remove_stale_best(self) -> None:
        """Remove the best-model file of the run this one replaces (--overwrite)."""
        stale = best_path(self.name)
        if os.path.lexists(stale):
            try:
                os.unlink(os.path.realpath(stale))
            except OSError as exc:
                raise OSError(f"cannot remove {stale}, the best model of the run {self.name} "
                              f"replaced: {exc.strerror or exc}") from None

    def inherited_best(self, resume: Checkpoint | None, same_held_out: bool) -> tuple:
        """(best_val_bpc, best_iteration) a run starts from: those of the run it
        continues when its best-model file is this run's and holds that very
        model, scored on the same held-out text; else (None, None), the best
        judged anew. A fresh run never inherits a best (not even from a file
        it replaces)."""
        if resume is None or self.best_name is None or resume.best_iteration is None \
                or not same_held_out or not os.path.exists(self.best_name):
            return None, None
        try:
            kept = load_checkpoint(self.best_name)
        except (ValueError, OSError) as exc:
            raise ValueError(f"the best-model file {self.best_name}: {exc}") from None
        if (kept.iteration, kept.best_iteration, kept.best_val_bpc) != \
                (resume.best_iteration, resume.best_iteration, resume.best_val_bpc):
            return None, None   # another run's, or written after the checkpoint
        return resume.best_val_bpc, resume.best_iteration


class Memory:
    """A run's checkpoint and best model kept in memory (Checkpoint copies):
    the run writes no file (charrnn-sweep's workers, notebooks)."""

    def __init__(self, keep_best: bool = True, name: str | None = None):
        self.keep_best = keep_best
        self.name = name   # shown in the output only
        self.best_name = None if name is None or not keep_best else best_path(name)

    def write(self, state: Checkpoint, best: bool = False) -> None:
        pass   # the state is the run's; Result.best holds a copy of the best

    def remove_stale_best(self) -> None:
        pass

    def inherited_best(self, resume: Checkpoint | None, same_held_out: bool) -> tuple:
        return None, None
