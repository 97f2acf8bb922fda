"""A whole training run as a library call: min-char-rnn's loop, evaluation, the best model, saves.

    from charrnn_ext.run import training
    result = training.run(open("input.txt").read(), {"iters": 2000, "hidden_size": 64})
    result.run.model, result.best, result.final.val_bpc

``charrnn-train`` is a command over ``run`` (it adds the flags, the files'
names and locks, signals and a progress bar), and ``charrnn-sweep`` calls it
on its workers. What a run tells as it goes reaches a Reporter: min-char-rnn's
output lines, the progress after each call into the core, each evaluation.
"""
from __future__ import annotations

import math
import os
import time
import zlib
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .._machine import out_of_memory
from .._words import count
from ..core._dispatch import core_build
from ..core._threadchoice import steps_per_call
from ..ckpt.checkpoint import Checkpoint, load_checkpoint
from ..core.datapass import chunk_wraps, held_out, stream_part
from ..defaults import LR_WINDOW
from . import finetune
from ..core import optimizers
from ..core.divergence import Divergence, suggested_rate
from ..errors import InputError
from ..core.evaluation import LN2, Scores, evaluate
from .memory import TooLarge, check_memory, describe_model
from ..core.model import CharRNN, TrainingDiverged
from ..ckpt.outputs import LIBRARY, Files, Memory, take_run_files
from .schedule import continued_schedule, scheduled_rate
from ..core.settings import SPENT_ON_RESUME, check, complete, fixed_by, notes, recipe_rate
from ..text.vocab import Vocab

def no_better_than_uniform(bpc: float, V: int) -> bool:
    """Whether a model scoring ``bpc`` bits per character on a text of V
    characters does no better than a uniform guess (log2 V bits): never kept
    as the best, warned about. With one character a guess is certain, and so
    is every model (0 bits): nothing to beat."""
    return V > 1 and bpc >= math.log2(V)


class Diverged(RuntimeError):
    """The run diverged; the message says when, why and what to change."""


class TextError(InputError):
    """The text cannot be trained on with these settings (the message says why)."""


@dataclass(frozen=True)
class Text:
    """A text as a run reads it: its vocabulary, its ids (int32), and how many
    of them are trained on (the rest, its end, is held out)."""

    vocab: Vocab
    ids: np.ndarray
    n_train: int

    @classmethod
    def of(cls, text: str, settings: dict, vocab: Vocab | None = None,
           name: str = "the text") -> "Text":
        """``text`` encoded with ``vocab`` (default: its own) and split as the
        settings say; TextError when they leave a stream no whole chunk."""
        vocab = vocab if vocab is not None else Vocab.from_text(text)
        surrogate = vocab.lone_surrogate()
        if surrogate is not None:   # no checkpoint holds one (charrnn_ext.ckpt.checkpoint)
            raise TextError(f"{name} holds U+{ord(surrogate):04X}, a lone surrogate (not a "
                            f"character: the text was not valid Unicode)")
        ids = vocab.encode(text)
        return cls(vocab, ids, split(ids.size, settings, name))


def split(N: int, settings: dict, name: str = "the text") -> int:
    """How many of a text's N characters are trained on (the rest, the last
    val_fraction, is held out), or TextError when the settings (seq_length,
    val_fraction, batch_size) leave a stream no whole chunk. charrnn-sweep
    checks every run's settings with it before any run starts."""
    T = settings["seq_length"]
    if N < T + 1:
        raise TextError(f"{name} has {count(N, 'character')}; training needs at least "
                        f"--seq-length + 1 = {T + 1}")
    n_val = held_out(N, settings["val_fraction"])
    n_train = N - n_val
    if n_train < T + 1:
        raise TextError(f"--val-fraction {settings['val_fraction']} holds out {n_val} of the "
                        f"{N} characters, leaving {n_train} to train on; training needs at least "
                        f"--seq-length + 1 = {T + 1} (lower --val-fraction or --seq-length)")
    B = settings["batch_size"]
    if stream_part(n_train, B) < T + 1:
        raise TextError(f"--batch-size {B} cuts the {n_train} training characters into "
                        f"parts of {stream_part(n_train, B)}; each stream needs at least "
                        f"--seq-length + 1 = {T + 1} (use at most --batch-size "
                        f"{max(n_train // (T + 1), 1)})")
    return n_train


class Reporter:
    """What a run tells as it goes. Every method does nothing: subclass the
    ones you need (charrnn-train prints lines and a progress bar)."""

    def line(self, text: str) -> None:
        """One line of min-char-rnn's output (samples, ``iter N, loss: X``, the summary)."""

    def note(self, text: str) -> None:
        """A warning or note about the run (charrnn-train prints it on stderr)."""

    def progress(self, run: Checkpoint, steps: int) -> None:
        """After each call into the core: ``steps`` more steps are done."""

    def evaluated(self, run: Checkpoint, scores: Scores, best: bool) -> None:
        """After each evaluation (``best``: kept as the best model so far)."""


class Printer(Reporter):
    """Lines through ``write`` (default: print)."""

    def __init__(self, write: Callable[[str], None] = print):
        self.write = write

    def line(self, text: str) -> None:
        self.write(text)


@dataclass
class Result:
    """What a run leaves: ``run``, its state at the end (what its checkpoint
    holds); ``best``, the run's state when it scored its best held-out figure
    (None if none was kept; read from ``best_file`` when the run saved to
    files); ``final``, the scores at the end (None when stopped); ``stopped``,
    whether stop() ended it before ``iters``; ``saved_at``, the iteration of
    the last checkpoint written; the steps this call ran and the seconds spent
    training and evaluating; ``timed_out``, whether ``time_limit`` ended it
    before ``iters`` (then scored as at the end of its iterations)."""

    run: Checkpoint
    final: Scores | None
    stopped: bool
    saved_at: int | None
    steps: int
    train_seconds: float
    eval_seconds: float
    best_file: str | None = None
    _best: Checkpoint | None = None
    timed_out: bool = False

    @property
    def best(self) -> Checkpoint | None:
        if self._best is None and self.best_file is not None \
                and self.run.best_iteration is not None:
            self._best = load_checkpoint(self.best_file)
        return self._best


def run(text, settings: dict | None = None, *, resume: Checkpoint | str | None = None,
        checkpoint: str | None = None, keep_best: bool = True, reporter: Reporter | None = None,
        stop: Callable[[], bool] | None = None, resumed_from: str | None = None,
        checkpoint_name: str | None = None, time_limit: float = 0.0,
        overwrite: bool = False, init_from: Checkpoint | str | None = None) -> Result:
    """Train on ``text`` (a str, or a Text) with ``settings`` (names as in
    charrnn_ext.core.settings; missing ones from ``resume``'s, else defaults),
    continuing ``resume`` (a Checkpoint, or the path of its file) if given,
    saving to the file ``checkpoint`` (and the best model beside it,
    ``keep_best``) if given, else keeping both in memory (Result.best;
    ``checkpoint_name``, the name the output gives them then). The files
    follow charrnn-train's rules (outputs.take_run_files), checked before
    any step: an existing file is only replaced if it is the run being
    continued (``resume``'s file, or ``resumed_from``, the file a
    Checkpoint was read from) or, with ``overwrite``, a checkpoint (a fresh
    run then starts over). ``stop()`` is asked between calls into the core;
    the run then saves and ends. ``time_limit`` > 0: training ends after
    that many seconds (of training and evaluating), and the run is saved and
    scored as at the end of its iterations. Raises Diverged, TextError,
    ValueError (bad settings, an output refused: outputs.OutputError),
    memory.TooLarge (a MemoryError: a model too large), OSError (a file not
    written). ``resume`` is continued in place. ``init_from`` (a Checkpoint or
    the path of its file; not with ``resume``): a fresh run that starts from its
    model's weights (charrnn_ext.run.finetune; a Text given holds its grown
    vocabulary)."""
    reporter = reporter or Reporter()
    if isinstance(resume, (str, os.PathLike)):
        resumed_from = os.fspath(resume) if resumed_from is None else resumed_from
        resume = load_checkpoint(resume)
    init = finetune.start(init_from, resume)   # (the checkpoint, its name) or None
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) \
            or not (math.isfinite(time_limit) and time_limit >= 0):
        raise ValueError(f"time_limit must be a finite number of seconds >= 0 (0: no limit), "
                         f"got {time_limit!r}")
    # -- 1. the settings and the text ---------------------------------------
    fixed = None if resume is None else \
        fixed_by(resume.model, resume.hidden.shape[1], resume.hyperparameters)
    if resume is not None and settings:
        own = complete({}, resume.hyperparameters, fixed)
        for name, why in SPENT_ON_RESUME.items():
            if settings.get(name) is not None and check(name, settings[name]) != own[name]:
                reporter.note(f"setting {name} is ignored when resuming ({why})")
        settings = {k: v for k, v in settings.items() if k not in SPENT_ON_RESUME}
    settings = complete(settings, resume.hyperparameters if resume is not None else None, fixed) \
        if init is None else complete(settings, init[0].hyperparameters, finetune.fixed(init[0].model))
    if not isinstance(text, Text):
        vocab = finetune.grown_vocab(init[0], text) if init is not None else \
            Vocab.of_text(text, resume.vocab if resume is not None else None)
        text = Text.of(text, settings, vocab)
    if resume is not None and text.vocab != resume.vocab:
        raise TextError(f"the text's vocabulary ({count(len(text.vocab), 'character')}) differs "
                        f"from the checkpoint's ({count(len(resume.vocab), 'character')})")
    keep_best = keep_best and text.ids.size > text.n_train   # (a held-out part to judge by)
    # -- 2. the files, checked and locked before any step (or memory) -------
    if checkpoint is None:
        return _run(text, settings, resume, Memory(keep_best, checkpoint_name), reporter, stop,
                    resumed_from, time_limit, init)
    locks = take_run_files(os.fspath(checkpoint), keep_best, resumed_from, overwrite, LIBRARY)
    try:
        return _run(text, settings, resume, Files(os.fspath(checkpoint), keep_best), reporter,
                    stop, resumed_from, time_limit, init)
    finally:
        locks.release()


def _run(text: Text, settings: dict, resume: Checkpoint | None, out, reporter: Reporter, stop,
         resumed_from: str | None, time_limit: float, init=None) -> Result:
    """run's run, its outputs checked: ``out``, outputs.Files or Memory;
    ``init``: (the checkpoint a fine-tuning run starts from, its name) or None."""
    vocab, ids, n_train = text.vocab, text.ids, text.n_train
    T, H, B = settings["seq_length"], settings["hidden_size"], settings["batch_size"]
    N, V = ids.size, len(vocab)
    part = stream_part(n_train, B)   # stream b reads ids[b * part : (b + 1) * part]
    keep_best = out.keep_best

    # -- 3. the run state: resumed, or a fresh model -------------------------
    if resume is None:
        D = settings["embedding_size"]
        kind = {k: settings[k] for k in ("cell", "num_layers", "dtype", "optimizer")}
        check_memory(V, H, T, B, D, **kind)
        try:
            model = finetune.start_model(init[0], vocab, settings) if init else \
                CharRNN(V, H, seed=settings["seed"], embedding_size=D, init=settings["init"],
                        dropout=settings["dropout"], **kind)
        except (ValueError, MemoryError) as exc:
            what = (f"--hidden-size {H}{' and --embedding-size %d' % D if D else ''} with "
                    f"{count(V, 'character')} ({describe_model(**kind)})")
            if isinstance(exc, MemoryError):   # beyond the estimate: numpy says what failed
                raise TooLarge(f"{what}: {out_of_memory(exc)}") from None
            raise ValueError(f"{what}: {exc}") from None
        state = Checkpoint(model=model, vocab=vocab, rng=np.random.default_rng(settings["seed"]),
                           hyperparameters=dict(settings),
                           hidden=np.zeros((model.state_size, B)))
    else:
        state = resume
        if state.model.num_layers > 1 and state.model.dropout != settings["dropout"]:
            # a new rate trains from the resumed step on (a stacked model's dropout is
            # its core's; the draws' Generator continues)
            state.model = state.model.copy(dropout=settings["dropout"])
    crc = zlib.crc32(ids)
    same_text = resume is not None and (resume.data_size, resume.data_crc32) == (N, crc)
    same_held_out = same_text and resume.hyperparameters.get("val_fraction") == \
        settings["val_fraction"]
    had_best = resume is not None and resume.best_iteration is not None
    state.best_val_bpc, state.best_iteration = out.inherited_best(resume, same_held_out)
    if had_best and keep_best and not same_held_out:   # (state is resume: checked before)
        reporter.note("the held-out text differs from the checkpoint's (--val-fraction or the "
                      "text): the best model is judged anew")
    build = core_build()
    if resume is not None:
        if not same_text:
            reporter.note(f"this text differs from the one {resumed_from or 'the checkpoint'} "
                          f"was trained on (its characters known); continuing on it")
        if resume.core and resume.core != build:
            reporter.note(f"{resumed_from or 'the checkpoint'} was trained with the "
                          f"{resume.core} build of the core, this run uses {build}: the result "
                          f"will not be bit-identical to an uninterrupted run")
    if resume is not None:   # what changes with the settings: against the checkpoint's
        before = complete({}, resume.hyperparameters,
                          fixed_by(resume.model, B, resume.hyperparameters))
        continued_schedule(state, before, settings, reporter)
        if before["seq_length"] != T:
            # the smoothed loss and the open interval's sum are per chunk of T characters:
            # the same per character in chunks of the new length
            state.smooth_loss *= T / before["seq_length"]
            state.interval_loss *= T / before["seq_length"]
    state.hyperparameters = dict(settings)
    state.data_size, state.data_crc32, state.core = N, crc, build
    for line in _header(N, V, n_train, settings, part, resume, resumed_from, out):
        reporter.line(line)
    if init is not None:
        reporter.line(finetune.describe(init[0], vocab, init[1]))
    for line in notes(settings, n_train):
        reporter.note(line)
    return _Loop(state, ids, n_train, settings, out, reporter, stop or (lambda: False),
                 time_limit, resume is None).go()


def _header(N, V, n_train, settings, part, resume, resumed_from, out) -> list[str]:
    n_val, B = N - n_train, settings["batch_size"]
    lines = [f"data has {count(N, 'character')}, {V} unique."]
    if n_val:
        lines.append(f"training on {count(n_train, 'character')}, validating on the last "
                     f"{n_val} (--val-fraction {settings['val_fraction']:g})")
    else:
        lines.append(f"training on {count(n_train, 'character')}, no validation")
    streams = f", {B} streams of {count(part, 'character')}" if B > 1 else ""
    cell = "" if (settings["cell"], settings["num_layers"]) == ("rnn", 1) else (
        f"{settings['cell']}, {count(settings['num_layers'], 'layer')}"
        + (f", dropout {settings['dropout']:g}, " if settings["num_layers"] > 1 else ", "))
    embedding = f", input embedding {settings['embedding_size']}" \
        if settings["embedding_size"] else ""
    decay = f" falling to {settings['lr_decay']:g}x" if settings["lr_decay"] != 1.0 else ""
    lines.append(f"{cell}hidden size {settings['hidden_size']}, seq length {settings['seq_length']}"
                 f"{streams}{embedding}, {optimizers.label(settings['optimizer'])} learning rate "
                 f"{settings['learning_rate']:g}{decay}, {settings['dtype']}, seed {settings['seed']}, "
                 f"{count(settings['iters'], 'iteration')} ({settings['recipe']} recipe)")
    if resume is not None:
        lines.append(f"resuming from {resumed_from or 'a checkpoint'} at iteration "
                     f"{resume.iteration}")
    if out.name is not None:
        lines.append(f"saving to {out.name}"
                     + (f", the best model to {out.best_name}" if out.best_name else ""))
    return lines


class _Loop:
    """One run's loop (min-char-rnn's), its evaluations and saves."""

    def __init__(self, state: Checkpoint, ids, n_train: int, settings: dict, out, reporter,
                 stop, time_limit: float, fresh: bool):
        self.state, self.ids, self.n_train, self.s = state, ids, n_train, settings
        self.out, self.reporter, self.stop, self.fresh = out, reporter, stop, fresh
        self.time_limit = time_limit
        V, T = len(state.vocab), settings["seq_length"]
        self.part = stream_part(n_train, settings["batch_size"])
        self.watch = Divergence(T * math.log(V))   # the loss of a uniform guess over a chunk
        self.saved_at = None       # iteration of the last checkpoint this run wrote
        self.best = None           # a copy of the state at the best evaluation
        self.eval_seconds = 0.0
        self.lr_from = state.lr_from   # this run's schedule (a save may move the state's)
        self.t_start = time.perf_counter()

    # -- the pieces -------------------------------------------------------------
    def diverged(self, what: str) -> Diverged:
        kept = (f"{self.out.name} was not written by this run" if self.saved_at is None else
                f"the last good checkpoint, {self.out.name}, is from iteration {self.saved_at}")
        if self.out.name is None:
            kept = "nothing was saved"
        s = self.s
        usual = recipe_rate(s["recipe"], s["optimizer"])
        rate = suggested_rate(s["learning_rate"], usual)
        whose = f", the {s['recipe']} recipe's" if rate == usual else ""
        return Diverged(f"training diverged at iteration {self.state.iteration}: {what}; try a "
                        f"lower --learning-rate (e.g. --learning-rate {rate:g}{whose}); {kept}")

    def save(self, best: bool = False) -> None:
        """The checkpoint (or the best model); a fresh run's first save also
        removes the best-model file of a run it replaces, which it has not
        written: a best file is never written before its checkpoint."""
        if not all(np.all(np.isfinite(a)) for a in self.state.model.params.values()):
            raise self.diverged("the parameters became infinite or NaN")
        if best:
            self.out.write(self.state, best=True)
            return
        first = self.saved_at is None and self.fresh
        if self.time_limit and self.s["lr_decay"] != 1.0:
            # the rate a time limit brought it to: where a resumed run goes on from
            self.state.lr_from = (self.state.iteration, self.rate(self.state.iteration))
        self.out.write(self.state)
        self.saved_at = self.state.iteration
        if first and self.state.best_iteration is None:
            self.out.remove_stale_best()

    def evaluate_and_keep(self) -> Scores | None:
        """Score the model in its current state (as a checkpoint now would hold
        it), record it, keep it if best (never the untrained model, nor one no
        better than a uniform guess); the scores, or None if stopped meanwhile."""
        state = self.state
        started = time.perf_counter()
        scores = evaluate(state.model, self.ids, self.n_train, state.hidden, state.position,
                          stop=self.stop)
        self.eval_seconds += time.perf_counter() - started
        if scores is None:
            return None
        if not all(math.isfinite(x) for x in (scores.train_bpc, scores.val_bpc or 0.0)):
            raise self.diverged("the evaluated loss became infinite or NaN")
        keep = self.out.keep_best and state.iteration > 0 and scores.val_bpc is not None \
            and not no_better_than_uniform(scores.val_bpc, len(state.vocab))
        best = state.record_evaluation(scores.val_bpc, scores.train_bpc, track_best=keep)
        if best:
            if self.saved_at is None:   # the checkpoint first: the best file belongs beside it
                self.save()
            self.save(best=True)
            if isinstance(self.out, Memory):
                self.best = _copy(state)   # no file holds it
        self.reporter.evaluated(state, scores, best)
        return scores

    def rate(self, n: int) -> float:
        """The learning rate of the steps from iteration n (scheduled_rate,
        from this run's start; by the end of the run: iters, or time_limit
        seconds if that comes first)."""
        elapsed = time.perf_counter() - self.t_start
        return scheduled_rate(n, self.s, self.lr_from,
                              elapsed / self.time_limit if self.time_limit else 0.0)

    # -- the loop -----------------------------------------------------------------
    def go(self) -> Result:
        """The run; a reporter or stop() that raises ends it saved (what was
        trained: the state is whole at every call to either), then re-raised."""
        self.whole, self.steps_done = True, 0
        try:
            return self._go()
        except Diverged:
            raise   # the last good checkpoint stays
        except Exception:
            if self.whole and self.steps_done:
                try:
                    self.save()
                except Exception as exc:   # the first error is the one to raise
                    self.reporter_note(f"the run could not be saved: {exc}")
            raise

    def reporter_note(self, text: str) -> None:
        try:
            self.reporter.note(text)
        except Exception:
            pass

    def _go(self) -> Result:
        state, s, reporter = self.state, self.s, self.reporter
        T, H, B, iters = s["seq_length"], s["hidden_size"], s["batch_size"], s["iters"]
        lr, every = s["learning_rate"], (s["sample_every"], s["eval_every"], s["checkpoint_every"])
        data, vocab, part = self.ids[:self.n_train], state.vocab, self.part
        stopped, timed_out = False, False
        block = 1          # steps per model.train call: about defaults.CALL_SECONDS
        t_start = self.t_start = time.perf_counter()
        # One BLAS thread: the core's matrix products are small, and a
        # multithreaded BLAS may split sums differently from run to run, which
        # would break bit-identical reproducibility. The core's own threads do
        # not change any result.
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api="blas"):
            while state.iteration < iters:
                n = state.iteration
                # -- min-char-rnn's data pass: reset at the start and at the end
                # (of each stream's part); model.train applies the same rule
                if n == 0 or chunk_wraps(state.position, part, T):
                    state.hidden = np.zeros((state.model.state_size, B))  # reset RNN memory
                    state.position = 0               # go from start of data
                # -- evaluation, every eval_every iterations (once per iteration)
                evaluated = n % s["eval_every"] == 0 and (
                    not state.history["val_iteration"].size
                    or state.history["val_iteration"][-1] != n)
                scores = self.evaluate_and_keep() if evaluated else None
                # -- a sample, from stream 0's state and its next input
                report = n % s["sample_every"] == 0
                if report:
                    sample_ix = state.model.sample(
                        state.hidden[:, :1], int(data[state.position]), s["sample_length"],
                        temperature=s["temperature"], rng=state.rng)
                    reporter.line("----\n %s \n----" % (vocab.decode(sample_ix),))
                # -- the steps up to the next sample, evaluation, checkpoint or the
                # end, in calls of about CALL_SECONDS (stop() is asked between them)
                upto = min(iters, *(n + e - n % e for e in every))
                if s["lr_decay"] != 1.0:   # -- the decaying rate: fixed within a window
                    upto = min(upto, n + LR_WINDOW - n % LR_WINDOW)
                    lr = self.rate(n)
                started = time.perf_counter()
                self.whole = False   # the model runs ahead of the state until recorded
                try:
                    losses, state.hidden, state.position = state.model.train(
                        data, min(upto - n, block), T, state.hidden, state.position, lr,
                        streams=B)
                except TrainingDiverged as exc:   # a NaN or infinite loss: its step ran
                    losses, state.hidden, state.position = exc.losses, exc.hidden, exc.position
                block = steps_per_call(losses.size, time.perf_counter() - started)
                # -- the record: each step's loss, the loss line, divergence (the
                # state is the model's again before anything is told)
                k, why = self.watch.add(losses, state.model.params_finite())
                line = None
                for loss in losses[:k].tolist():
                    state.record_step(loss)
                    if state.iteration == n + 1 and (report or evaluated):
                        line = "iter %d, loss: %f" % (n, state.smooth_loss)
                        if scores is not None and scores.val_bpc is not None:
                            line += ", val: %.4f bits/char" % scores.val_bpc
                    if state.iteration == n + 1 and report:
                        state.close_interval(T)
                self.steps_done += losses.size
                self.whole = why is None
                if line is not None:
                    reporter.line(line)
                if why is not None:
                    raise self.diverged(why)
                reporter.progress(state, losses.size)
                # -- a checkpoint, never while the loss is suspect
                if state.iteration % s["checkpoint_every"] == 0 and state.iteration < iters \
                        and not self.watch.suspect:
                    self.save()
                if self.stop():
                    stopped = True
                    break
                if self.time_limit and state.iteration < iters \
                        and time.perf_counter() - t_start >= self.time_limit:
                    timed_out = True
                    break
        train_seconds = time.perf_counter() - t_start - self.eval_seconds

        # -- the end: save, a last evaluation (not after stop()), save it too ---
        self.save()
        final = None if stopped else self.evaluate_and_keep()
        if final is not None:
            self.save()  # with the evaluation (history, best) recorded
        return Result(state, final, stopped, self.saved_at, self.steps_done, train_seconds,
                      self.eval_seconds, getattr(self.out, "best_file", None), self.best,
                      timed_out)


def _copy(state: Checkpoint) -> Checkpoint:
    """An independent copy of a run's state (model, random state, history)."""
    rng = np.random.Generator(type(state.rng.bit_generator)())
    rng.bit_generator.state = state.rng.bit_generator.state
    return replace(state, model=state.model.copy(), rng=rng, hidden=state.hidden.copy(),
                   hyperparameters=dict(state.hyperparameters),
                   history={k: v.copy() for k, v in state.history.items()})


def summary(result: Result, settings: dict, out_name: str | None,
            best_name: str | None) -> list[str]:
    """The lines that end a run's output (charrnn-train prints them; a sweep's log keeps them)."""
    state, final, T = result.run, result.final, settings["seq_length"]
    lines = ["----", f"summary: {count(state.iteration, 'iteration')}, smoothed loss "
                     f"{state.smooth_loss:f} ({state.smooth_loss / T / LN2:.4f} bits/char)"]
    if final is None:
        lines.append("bits per character: not measured (interrupted)")
    else:
        measured = (f"bits per character, continuing from the trained state: train "
                    f"{final.train_bpc:.4f} (last {count(final.train_chars, 'training character')})")
        if final.val_bpc is not None:
            lines.append(f"{measured}, validation {final.val_bpc:.4f} (first {final.val_chars} "
                         f"held-out characters)")
        else:
            lines.append(f"{measured}, validation disabled")
    if best_name is not None and state.best_val_bpc is not None:
        lines.append(f"best validation: {state.best_val_bpc:.4f} bits/char at iteration "
                     f"{state.best_iteration}, kept in {best_name}")
    uniform, V = math.log2(len(state.vocab)), len(state.vocab)
    if final is not None and no_better_than_uniform(
            final.val_bpc if final.val_bpc is not None else final.train_bpc, V):
        lines.append(f"warning: this model is no better than a uniform guess "
                     f"({uniform:.4f} bits/char): train longer, or try a lower --learning-rate")
    seconds = result.train_seconds
    rate = result.steps / seconds if seconds > 0 else float("inf")
    lines.append(f"speed: {count(result.steps, 'step')} in {seconds:.2f} s, {rate:.1f} steps/s "
                 f"(and {result.eval_seconds:.2f} s evaluating)")
    if out_name is not None:
        lines.append(f"checkpoint: {out_name} (iteration {result.saved_at})")
    return lines
