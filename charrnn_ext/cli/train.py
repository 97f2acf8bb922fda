"""``python -m charrnn_ext.train``: train a character-level RNN on a text file.

Karpathy's min-char-rnn training loop on the Cython core, with min-char-rnn's
data pass, defaults and output, plus evaluation on held-out text, the best
model kept, checkpoints that resume bit-identically, a progress bar and a
loss plot: a command over ``charrnn_ext.run.training.run``. Run with ``--help``.
"""
from __future__ import annotations

from .. import _loading

with _loading():  # Ctrl-C while the heavy modules load: exit quietly with 130
    import argparse
    import os
    import signal as _signal
    import sys
    import threading

    import numpy as np

    from .. import __version__, defaults
    from .common import (PIPE_CLOSED, ArgumentParser, CLIError, Terminated,
                         count, nonneg_float, out_of_memory, prog_name,
                         progress_bar, run,
                         threads_int,
                         tolerant_stdout)
    from ..core._dispatch import set_num_threads
    from ..ckpt.checkpoint import Checkpoint, load_checkpoint
    from ..core.evaluation import LN2
    from ..text.inputs import read_text
    from ..run.memory import TooLarge
    from ..ckpt.outputs import best_path, check_distinct_paths, check_output, take_checkpoint_path
    from ..core.settings import (MODEL_SETTINGS, OUTPUT_SETTINGS, SETTINGS, SPENT_ON_RESUME,
                                 add_setting_flags, complete, contradiction, fixed_by)
    from ..run import finetune, training
    from ..run.training import Diverged, Reporter, Text, summary
    from ..text.vocab import Vocab

DESCRIPTION = f"""\
Train a character-level language model (a vanilla tanh RNN with Adagrad:
Karpathy's min-char-rnn) on a text file, and save it for charrnn_ext.sample.

The text is read left to right in chunks of --seq-length characters, the
hidden state carried from chunk to chunk and reset to zero at the end of the
text (min-char-rnn's data pass). Every --sample-every iterations a sample is
printed between ---- lines, then `iter N, loss: X` with the smoothed loss
(nats per chunk, as in min-char-rnn).

The numbers in bits per character: the last --val-fraction of the text is
held out. Every --eval-every iterations, and at the end, the model is scored
the way it runs, with its weights frozen: from the hidden state training
carried, at the place in the text it stands at, it reads the training text
on in order (the "train" figure is its loss on the last {defaults.EVAL_TRAIN_CHARS:,} training
characters) and goes on into the held-out text (the "validation" figure: the
first {defaults.VAL_MAX_CHARS:,} held-out characters, or all of them). A state is only
meaningful for the text that follows it, so the figures never start from a
zero state or from another place in the text.

The run is saved to --checkpoint (default: a new file named after the input,
never an existing one), and the model with the best validation figure to a
second file beside it, NAME.best.npz (--no-keep-best to skip). Training is
deterministic: the same command with the same --seed gives bit-identical
parameters and output on the same machine and core build. Ctrl-C stops
early after saving (exit status 130).
"""

EPILOG = """\
examples:
  python -m charrnn_ext.train                      # built-in demo corpus -> demo.npz
  python -m charrnn_ext.train input.txt            # -> input.npz (input-2.npz if that exists)
  python -m charrnn_ext.train input.txt --resume input.npz --iters 20000
  python -m charrnn_ext.train new.txt --init-from input.npz --time-limit 60   # fine-tune
  cat *.txt | python -m charrnn_ext.train - --hidden-size 256 --plot loss.png
  python -m charrnn_ext.sample input.npz --prime "The " --length 500

exit status: 0 done, 1 training diverged or an output could not be written
(the checkpoint is saved where possible), 2 bad input or options,
130 interrupted (Ctrl-C), 141 the reader of the output went away (| head;
training stops and saves), 143 terminated (SIGTERM).
"""


def build_parser(prog: str | None = None) -> ArgumentParser:
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.train"), description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (charrnn_ext) {__version__}")
    p.add_argument("input", nargs="?", metavar="input.txt",
                   help="the text to train on; '-' reads standard input; without it, a built-in "
                        "demo corpus (source of Python standard library modules) is used")
    p.add_argument("--encoding", default=defaults.ENCODING, metavar="NAME",
                   help=f"text encoding of the input (default: {defaults.ENCODING})")
    p.add_argument("--threads", type=threads_int, metavar="N",
                   help="threads the core may use: a small model's steps run on two (the "
                        "recurrence beside the output layer), a large output layer is split; "
                        "training measures whether these or one thread is faster and uses the "
                        "faster; results are the same for any N (default: "
                        "$CHARRNN_EXT_NUM_THREADS, else one per usable CPU or $OMP_NUM_THREADS "
                        "if lower)")
    p.add_argument("--time-limit", type=nonneg_float, default=0.0, metavar="SECONDS",
                   help="stop training after this much wall time, then save and score the "
                        "model as when all iterations ran (e.g. 120 for the best model in two "
                        "minutes); 0: no limit (default: 0)")
    m = p.add_argument_group("model and training (when resuming, the checkpoint's values "
                             "are the defaults)")
    add_setting_flags(m, MODEL_SETTINGS)
    o = p.add_argument_group("output")
    add_setting_flags(o, OUTPUT_SETTINGS)
    o.add_argument("--plot", metavar="PNG",
                   help="write the loss curves (mean training loss per --sample-every "
                        "iterations, validation) in bits per character to this image at the end "
                        "(needs matplotlib: pip install 'charrnn_ext[plot]')")
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint", metavar="PATH",
                   help="save the full training state here (atomically; through a symlink to "
                        "its target) every --checkpoint-every iterations, at the end and on "
                        "Ctrl-C (default: the --resume file, else a new file in the current "
                        "directory named after the input: input.npz, input-2.npz, ...)")
    add_setting_flags(c, ("checkpoint_every",))
    c.add_argument("--no-keep-best", dest="keep_best", action="store_false",
                   help="do not keep the model with the best validation figure in "
                        "CHECKPOINT.best.npz (kept by default when there is a held-out part)")
    c.add_argument("--overwrite", action="store_true",
                   help="let a fresh run replace an existing --checkpoint file and its best-model "
                        "file (without it, an existing checkpoint is only continued, with "
                        "--resume)")
    c.add_argument("--resume", metavar="PATH",
                   help="continue the run saved in this checkpoint, on the same text: to the "
                        "same --iters, bit-identical to a run never stopped; to a new --iters, "
                        "bit-identical to a straight run of that length only with a constant "
                        "learning rate (--lr-decay 1), a decaying one goes on from where it "
                        "stopped (the run says so)")
    c.add_argument("--init-from", metavar="MODEL",
                   help="fine-tune: a fresh run (optimizer state, data pass, iterations) that "
                        "starts from MODEL's weights, keeping its cell, sizes, embedding and "
                        "dtype; the other settings default to MODEL's run's. Characters of the "
                        "text that MODEL lacks join its vocabulary (each known character keeps "
                        "its weights, new ones are initialised as the model's init draws them)")
    c.add_argument("--fixed-vocab", action="store_true",
                   help="with --init-from: refuse a text holding characters MODEL lacks "
                        "instead of adding them")
    return p


def _settings(args, resumed: Checkpoint | None) -> dict:
    """The run's settings: the command line, else the checkpoint, else defaults."""
    given = {name: getattr(args, name) for name in SETTINGS}
    fixed = None
    if resumed is not None:
        try:
            fixed = fixed_by(resumed.model, resumed.hidden.shape[1], resumed.hyperparameters)
        except ValueError as exc:
            raise CLIError(f"{args.resume}: {exc}") from None
        for name, why in SPENT_ON_RESUME.items():
            if given[name] is not None:
                print(f"{prog_name('charrnn_ext.train')}: note: {SETTINGS[name].flag} is "
                      f"ignored with --resume ({why})", file=sys.stderr)
            given[name] = None
        conflict = contradiction(given, fixed)
        if conflict is not None:
            name, theirs = conflict
            raise CLIError(f"{SETTINGS[name].flag} {given[name]} differs from the {theirs} "
                           f"of the checkpoint {args.resume}")
    try:
        settings = complete(given, resumed.hyperparameters if resumed is not None else None,
                            fixed)
    except ValueError as exc:
        raise CLIError(f"{args.resume}: {exc}") from None
    return settings


def _load_resume(path: str) -> Checkpoint:
    try:
        return load_checkpoint(path)
    except (ValueError, OSError) as exc:
        raise CLIError(f"--resume: {exc}") from None


def _load_init(args) -> Checkpoint | None:
    """--init-from's checkpoint (not with --resume), or None."""
    if args.init_from is None:
        if args.fixed_vocab:
            raise CLIError("--fixed-vocab goes with --init-from")
        return None
    if args.resume is not None:
        raise CLIError("--init-from starts a fresh run from a model's weights, --resume "
                       "continues a run: give one of them")
    try:
        return load_checkpoint(args.init_from)
    except (ValueError, OSError) as exc:
        raise CLIError(f"--init-from: {exc}") from None


def _init_settings(args, init: Checkpoint) -> dict:
    """A fine-tuning run's settings: the command line, else the model's run's;
    what the model fixes (finetune.fixed) may not be given otherwise."""
    given = {name: getattr(args, name) for name in SETTINGS}
    conflict = contradiction(given, finetune.fixed(init.model))
    if conflict is not None:
        name, theirs = conflict
        raise CLIError(f"{SETTINGS[name].flag} {given[name]} differs from the {theirs} of "
                       f"--init-from {args.init_from}")
    try:
        return complete(given, init.hyperparameters, finetune.fixed(init.model))
    except ValueError as exc:
        raise CLIError(f"{args.init_from}: {exc}") from None


def _load_text(args, settings: dict, resumed: Checkpoint | None,
               init: Checkpoint | None = None) -> tuple[Text, str | None]:
    """(the text as a run reads it, the note that opens the output or None)."""
    text, name, note = read_text(args.input, args.encoding)
    try:
        vocab = Vocab.of_text(text, resumed.vocab if resumed else None) if init is None else \
            finetune.grown_vocab(init, text, args.fixed_vocab)
    except ValueError as exc:
        raise CLIError(f"--fixed-vocab: {name}: {exc}") from None
    if resumed is not None and vocab != resumed.vocab:
        raise CLIError(_vocab_mismatch(vocab, resumed.vocab, args.resume))
    return Text.of(text, settings, vocab, name), note   # TextError: an InputError, run() reports it


def _vocab_mismatch(text_vocab: Vocab, ckpt_vocab: Vocab, resume_path: str) -> str:
    # (a text may lack some of the checkpoint's characters: Vocab.of_text reads it then)
    new = ckpt_vocab.missing(text_vocab.chars)
    return (f"the text has {count(len(new), 'character')} not in the vocabulary of "
            f"{resume_path} ({len(ckpt_vocab)}), e.g. {' '.join(repr(c) for c in new[:5])}; "
            f"resume on the text the checkpoint was trained on (--init-from fine-tunes on a "
            f"new one)")


class _Signals:
    """Ctrl-C (and SIGTERM) set a flag that the loop checks between steps, so
    a step is never cut in half; a second one stops at once (exit status 130,
    or 143 when it is a SIGTERM, even in the middle of a save)."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise Terminated if signum == _signal.SIGTERM else KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (_signal.SIGINT, _signal.SIGTERM):
                self._previous[sig] = _signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            _signal.signal(sig, handler)
        return False




class _Output(Reporter):
    """A run's lines to stdout, through tqdm's writer while a progress bar is
    shown; notes to stderr.

    If stdout fails (the reader went away as in ``| head``, a full disk, a
    closed descriptor), further output is discarded and ``failure`` says why:
    the training loop then stops and saves, as on Ctrl-C, instead of losing
    the work since the last save."""

    def __init__(self):
        self.bar = None
        self.failure = None
        self.reader_gone = False   # the failure is a closed pipe (EPIPE)

    def line(self, text: str) -> None:
        if self.failure is not None:
            return
        try:
            if sys.stdout is None:
                raise OSError("standard output is closed")
            if self.bar is not None:
                self.bar.write(text, file=sys.stdout)
                sys.stdout.flush()
            else:
                print(text, flush=True)
        except (OSError, ValueError) as exc:
            self.reader_gone = isinstance(exc, BrokenPipeError)
            self.failure = ("the reader went away" if self.reader_gone
                            else getattr(exc, "strerror", None) or str(exc))
            try:  # discard what is still buffered, so that exiting cannot fail
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError, AttributeError):
                pass

    def note(self, text: str) -> None:
        print(f"{prog_name('charrnn_ext.train')}: warning: {text}", file=sys.stderr)

    def progress(self, run: Checkpoint, steps: int) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            if run.interval_steps:
                recent = run.interval_loss / run.interval_steps / run.hyperparameters[
                    "seq_length"] / LN2
                self.bar.set_postfix_str(f"loss={recent:.3f} bits/char", refresh=False)

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _prepare_plot(path: str):
    """Import matplotlib (Agg backend) up front, so a missing extra is
    reported before training, not after it."""
    check_output(path, "--plot")
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise CLIError("--plot needs matplotlib, which is not installed "
                       "(pip install 'charrnn_ext[plot]')") from None
    ext = os.path.splitext(path)[1][1:].lower()
    supported = Figure().canvas.get_supported_filetypes()
    if ext and ext not in supported:
        raise CLIError(f"--plot {path}: unknown image type '.{ext}' "
                       f"(use one of {', '.join('.' + e for e in sorted(supported))})")
    return Figure
def _plot(Figure, path: str, run: Checkpoint, seq_length: int) -> None:
    """Mean training loss per interval and the evaluations, in bits per
    character, from the start to the last iteration."""
    h = run.history
    it, bpc = h["iteration"], h["interval_bpc"]
    if run.interval_steps:  # the interval still open at the end
        it = np.append(it, run.iteration)
        bpc = np.append(bpc, run.interval_loss / run.interval_steps / seq_length / LN2)
    if not np.isfinite(bpc).any():  # a version 1 checkpoint: only the smoothed loss
        bpc = h["smooth_loss"] / seq_length / LN2
        it = h["iteration"]
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ok = np.isfinite(bpc)
    if ok.any():
        ax.plot(it[ok], bpc[ok], lw=1, label="training (mean loss per interval)")
    for key, style, label in (("train_bpc", "s--", "training text, continued"),
                              ("val_bpc", "o-", "validation (held-out text, continued)")):
        ok = np.isfinite(h[key])
        if ok.any():
            ax.plot(h["val_iteration"][ok], h[key][ok], style, markersize=3, label=label)
    if run.best_val_bpc is not None:
        ax.plot([run.best_iteration], [run.best_val_bpc], "*", markersize=12,
                label=f"best validation ({run.best_val_bpc:.3f} at {run.best_iteration})")
    ax.set_xlabel("iteration")
    ax.set_ylabel("bits per character")
    ax.set_title("charrnn_ext training")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ext = os.path.splitext(path)[1][1:].lower()
    fig.savefig(path, dpi=120, format=ext or "png")  # exactly at path, even without extension


def _main(argv) -> int:
    # -- 1. options, the run to resume, the outputs (all checked before any work)
    args = build_parser().parse_args(argv)
    tolerant_stdout()
    if args.threads is not None:
        set_num_threads(args.threads)
    resumed = _load_resume(args.resume) if args.resume is not None else None
    init = _load_init(args)
    settings = _settings(args, resumed) if init is None else _init_settings(args, init)
    if resumed is not None and resumed.iteration >= settings["iters"]:
        print(f"{args.resume} is at iteration {resumed.iteration}, already at or past "
              f"--iters {settings['iters']}: nothing to do")
        return 0
    text, note = _load_text(args, settings, resumed, init)
    ckpt_path, lock = take_checkpoint_path(args.checkpoint, args.resume, args.input,
                                           args.keep_best, args.overwrite)
    try:
        check_distinct_paths(
            outputs={"--checkpoint": ckpt_path, "--plot": args.plot,
                     "the best-model file": best_path(ckpt_path) if args.keep_best else None},
            inputs={"the input text": args.input if args.input != "-" else None,
                    "--resume": args.resume, "--init-from": args.init_from},
            allowed=(("--checkpoint", "--resume"),))
        Figure = _prepare_plot(args.plot) if args.plot is not None else None
        # -- 2. the run, its lines on stdout (a progress bar on a terminal) --------
        out = _Output()
        if note:
            out.line(note)
        with _Signals() as signals:
            out.bar = progress_bar(settings["iters"], resumed.iteration if resumed else 0)
            try:
                result = training.run(
                    text, settings, resume=resumed, checkpoint=ckpt_path,
                    keep_best=args.keep_best, reporter=out, resumed_from=args.resume,
                    init_from=args.init_from,
                    stop=lambda: signals.signum is not None or out.failure is not None,
                    time_limit=args.time_limit, overwrite=args.overwrite)
            except Diverged as exc:
                raise CLIError(str(exc), code=1) from None
            except OSError as exc:
                raise CLIError(str(exc), code=1) from None
            except (ValueError, TooLarge) as exc:   # bad settings, a model too large
                raise CLIError(str(exc)) from None
            except MemoryError as exc:   # while training: a failure, and why
                raise CLIError(out_of_memory(exc), code=1) from None
            finally:
                out.close_bar()
    finally:
        lock.release()
    # -- 3. the summary ------------------------------------------------------------
    state = result.run
    if signals.signum is not None:
        out.line(f"interrupted at iteration {state.iteration} of {settings['iters']}")
    elif result.timed_out:
        out.line(f"--time-limit {args.time_limit:g} s reached at iteration {state.iteration} "
                 f"of {settings['iters']}")
    best_name = best_path(ckpt_path) if args.keep_best and text.n_train < text.ids.size else None
    for line in summary(result, settings, ckpt_path, best_name):
        out.line(line)
    if Figure is not None:
        try:
            _plot(Figure, args.plot, state, settings["seq_length"])
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot write --plot {args.plot}: {exc}", code=1) from None
        out.line(f"plot: {args.plot}")
    out.line(f"sample from it: {_sample_command()} {ckpt_path}")
    if out.failure is not None:
        iters = settings["iters"]
        ran = (f"all {count(iters, 'iteration')} ran" if state.iteration >= iters else
               f"training stopped at iteration {state.iteration} of {iters}")
        if out.reader_gone:   # `| head`: as any Unix tool whose reader went away
            raise CLIError(f"standard output was closed (the reader went away): {ran}; the run "
                           f"is saved in {ckpt_path}", code=PIPE_CLOSED)
        raise CLIError(f"cannot write to standard output ({out.failure}): {ran}; the run is "
                       f"saved in {ckpt_path}", code=1)
    return 0 if signals.signum is None else 128 + signals.signum


def _sample_command() -> str:
    """How the user runs the sampler: the way they ran the trainer."""
    train = prog_name("charrnn_ext.train")
    return "python -m charrnn_ext.sample" if train.startswith("python") else "charrnn-sample"


def main(argv=None) -> int:
    prog = build_parser().prog
    return run(_main, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
