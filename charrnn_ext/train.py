"""``python -m charrnn_ext.train``: train a character-level RNN on a text file.

Karpathy's min-char-rnn training loop on the Cython core, with the seed's
data pass, defaults and output, plus validation, checkpoints that resume
bit-identically, a progress bar and a loss plot. Run with ``--help``.
"""
from __future__ import annotations

import argparse
import codecs
import math
import os
import signal
import sys
import tempfile
import threading
import time
import zlib

import numpy as np

from . import defaults
from ._cli import (ArgumentParser, CLIError, fraction, nonneg_float, positive_float,
                   positive_int, prog_name, run, seed_int, threads_int, tolerant_stdout)
from ._dispatch import set_num_threads
from .checkpoint import Checkpoint, empty_history, load_checkpoint
from .model import CharRNN
from .vocab import Vocab

LN2 = math.log(2.0)

# The run's settings: (flag destination, default). Values not given on the
# command line come from the checkpoint when resuming, else from here.
SETTINGS = {
    "hidden_size": defaults.HIDDEN_SIZE,
    "seq_length": defaults.SEQ_LENGTH,
    "learning_rate": defaults.LEARNING_RATE,
    "iters": defaults.ITERS,
    "sample_every": defaults.SAMPLE_EVERY,
    "sample_length": defaults.SAMPLE_LENGTH,
    "temperature": defaults.TEMPERATURE,
    "seed": defaults.SEED,
    "val_fraction": defaults.VAL_FRACTION,
    "eval_every": defaults.EVAL_EVERY,
    "checkpoint_every": defaults.CHECKPOINT_EVERY,
}

DESCRIPTION = """\
Train a character-level language model (a vanilla tanh RNN with Adagrad:
Karpathy's min-char-rnn) on a text file.

The text is read left to right in chunks of --seq-length characters, the
hidden state carried from chunk to chunk and reset to zero at the end of the
text (the seed's data pass). Every --sample-every iterations a sample is
printed between ---- lines, then `iter N, loss: X` with the smoothed loss
(nats per chunk, as in the seed). The last --val-fraction of the text is held
out; its loss in bits per character is printed every --eval-every iterations
and in the final summary.

Training is deterministic: the same command with the same --seed gives
bit-identical parameters and output on the same machine. Ctrl-C stops early
(after writing the checkpoint if --checkpoint is given; exit status 130).
"""

EPILOG = """\
examples:
  python -m charrnn_ext.train                      # built-in demo corpus
  python -m charrnn_ext.train input.txt --checkpoint model.npz
  python -m charrnn_ext.train input.txt --resume model.npz --iters 20000
  cat *.txt | python -m charrnn_ext.train - --hidden-size 256 --plot loss.png
  python -m charrnn_ext.sample model.npz --prime "The " --length 500

exit status: 0 done, 1 training diverged or a file could not be written,
2 bad input or options, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""


def build_parser(prog: str | None = None) -> ArgumentParser:
    d = defaults
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.train"), description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", metavar="input.txt",
                   help="the text to train on; '-' reads standard input; without it, a built-in "
                        "demo corpus (source of Python standard library modules) is used")
    p.add_argument("--encoding", default=d.ENCODING, metavar="NAME",
                   help=f"text encoding of the input (default: {d.ENCODING})")
    p.add_argument("--threads", type=threads_int, metavar="N",
                   help="threads the core may use for a large output layer (V * H >= 131072); "
                        "results are the same for any N (default: $CHARRNN_EXT_NUM_THREADS, else "
                        "one per usable CPU or $OMP_NUM_THREADS if lower)")
    m = p.add_argument_group("model and training (when resuming, the checkpoint's values "
                             "are the defaults)")
    m.add_argument("--hidden-size", type=positive_int, metavar="H",
                   help=f"size of the hidden layer (default: {d.HIDDEN_SIZE})")
    m.add_argument("--seq-length", type=positive_int, metavar="T",
                   help=f"characters per chunk, the steps BPTT unrolls (default: {d.SEQ_LENGTH})")
    m.add_argument("--learning-rate", type=positive_float, metavar="LR",
                   help=f"Adagrad learning rate (default: {d.LEARNING_RATE})")
    m.add_argument("--iters", type=positive_int, metavar="N",
                   help="total iterations to reach, counted from the start of training, so a "
                        f"resumed run stops where a straight one would (default: {d.ITERS})")
    m.add_argument("--seed", type=seed_int, metavar="S",
                   help="seed of the initial weights and of sampling; a resumed run continues "
                        f"the checkpoint's random state instead (default: {d.SEED})")
    m.add_argument("--val-fraction", type=fraction, metavar="F",
                   help="fraction of the text, at its end, held out for validation; 0 disables "
                        f"validation (default: {d.VAL_FRACTION})")
    o = p.add_argument_group("output")
    o.add_argument("--sample-every", type=positive_int, metavar="N",
                   help="print a sample and the loss every N iterations "
                        f"(default: {d.SAMPLE_EVERY})")
    o.add_argument("--sample-length", type=positive_int, metavar="N",
                   help=f"characters per printed sample (default: {d.SAMPLE_LENGTH})")
    o.add_argument("--temperature", type=nonneg_float, metavar="T",
                   help="temperature of the printed samples; 0 takes the most likely character "
                        f"(default: {d.TEMPERATURE})")
    o.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="measure validation bits per character every N iterations, on at most "
                        f"{d.VAL_MAX_CHARS} held-out characters (evenly spaced windows of a "
                        f"longer split) (default: {d.EVAL_EVERY})")
    o.add_argument("--plot", metavar="PNG",
                   help="write the training and validation loss curves to this image at the end "
                        "(needs matplotlib: pip install 'charrnn_ext[plot]')")
    c = p.add_argument_group("checkpoints")
    c.add_argument("--checkpoint", metavar="PATH",
                   help="save the full training state here (atomically) every --checkpoint-every "
                        "iterations, at the end and on Ctrl-C (default: the --resume file, "
                        "else none)")
    c.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help=f"iterations between checkpoints (default: {d.CHECKPOINT_EVERY})")
    c.add_argument("--overwrite", action="store_true",
                   help="let a fresh run replace an existing --checkpoint file (without it, "
                        "an existing checkpoint is only continued, with --resume)")
    c.add_argument("--resume", metavar="PATH",
                   help="continue the run saved in this checkpoint, on the same text; N steps, "
                        "then a resume and N more give bit-identical parameters to 2N steps")
    return p


# ---------------------------------------------------------------------------
# checks done before any work
# ---------------------------------------------------------------------------

def _settings(args, resumed: Checkpoint | None) -> dict:
    """The run's settings: the command line, else the checkpoint, else defaults."""
    stored = resumed.hyperparameters if resumed is not None else {}
    checks = {
        "hidden_size": positive_int, "seq_length": positive_int, "learning_rate": positive_float,
        "iters": positive_int, "sample_every": positive_int, "sample_length": positive_int,
        "temperature": nonneg_float, "seed": seed_int, "val_fraction": fraction,
        "eval_every": positive_int, "checkpoint_every": positive_int,
    }
    out = {}
    for key, default in SETTINGS.items():
        value = getattr(args, key)
        if key == "seed" and resumed is not None:
            value = None  # the seed is spent: the checkpoint's RNG state continues
        if value is None and key in stored:
            try:
                value = checks[key](str(stored[key]))
            except argparse.ArgumentTypeError as exc:
                raise CLIError(f"{args.resume}: stored setting {key} {exc}") from None
        out[key] = default if value is None else value
    if resumed is not None:
        if args.seed is not None:
            print(f"{prog_name('charrnn_ext.train')}: note: --seed is ignored with --resume "
                  f"(the checkpoint's random state continues)", file=sys.stderr)
        H = resumed.model.hidden_size
        if args.hidden_size is not None and args.hidden_size != H:
            raise CLIError(f"--hidden-size {args.hidden_size} differs from the hidden size "
                           f"{H} of the checkpoint {args.resume}")
        out["hidden_size"] = H
    return out


def _check_output(path: str, what: str) -> None:
    """Fail before training, not after it, if ``path`` cannot be written."""
    if not path:
        raise CLIError(f"{what} needs a file name")
    if path.endswith(os.sep) or os.path.isdir(path):
        raise CLIError(f"{what} {path} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"{what} {path}: directory {parent} does not exist")
    try:  # a real write in that directory (permissions, read-only or special file systems)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".charrnn-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"{what} {path}: cannot write in {parent} ({exc.strerror or exc})") from None


def _check_checkpoint_target(path: str, resume_path: str | None, overwrite: bool) -> None:
    _check_output(path, "--checkpoint")
    if os.path.exists(path) and not (resume_path and os.path.exists(resume_path)
                                     and os.path.samefile(path, resume_path)):
        try:  # never overwrite a file that is not one of our checkpoints
            existing = load_checkpoint(path)
        except (ValueError, OSError) as exc:
            raise CLIError(f"refusing to overwrite --checkpoint {path}: {exc}") from None
        if not overwrite:  # nor, unasked, a trained model
            raise CLIError(f"--checkpoint {path} already holds a run at iteration "
                           f"{existing.iteration}; pass --resume {path} to continue it, "
                           f"or --overwrite to start over")


def _load_resume(path: str) -> Checkpoint:
    try:
        return load_checkpoint(path)
    except (ValueError, OSError) as exc:
        raise CLIError(f"--resume: {exc}") from None


def _prepare_plot(path: str):
    """Import matplotlib (Agg backend) up front, so a missing extra is
    reported before training, not after it."""
    _check_output(path, "--plot")
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


# ---------------------------------------------------------------------------
# the text
# ---------------------------------------------------------------------------

def _read_text(path: str | None, encoding: str) -> tuple[str, str, str | None]:
    """(text, name for messages, first output line or None)."""
    if path is None:
        from .corpus import demo_corpus
        try:
            text, modules = demo_corpus()
        except RuntimeError as exc:
            raise CLIError(str(exc)) from None
        note = (f"no input file given: training on the built-in demo corpus, the source of "
                f"{len(modules)} Python standard library modules ({', '.join(modules)})")
        return text, "the demo corpus", note
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise CLIError(f"unknown --encoding {encoding!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise CLIError(f"--encoding {encoding!r} is not a text encoding")
    if info.name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark is not part of the text
    if path == "-":
        name = "standard input"
        if sys.stdin is None:
            raise CLIError("standard input is closed")
        data = sys.stdin.buffer.read()
    else:
        name = path
        if os.path.isdir(path):
            raise CLIError(f"{path} is a directory, not a text file")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CLIError(f"{path}: no such file") from None
        except PermissionError:
            raise CLIError(f"{path}: permission denied") from None
        except OSError as exc:
            raise CLIError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not data:
        raise CLIError(f"{name} is empty")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.end][:4].hex(" ")
        raise CLIError(f"{name} is not valid {info.name} text: cannot decode byte(s) {bad} at "
                       f"offset {exc.start} (use --encoding to name its encoding)") from None
    except UnicodeError as exc:
        raise CLIError(f"{name} cannot be decoded as {info.name}: {exc}") from None
    if not text:
        raise CLIError(f"{name} has no text")
    return text, name, None


def _load_data(args, cfg: dict, resumed: Checkpoint | None):
    """(vocab, ids, n_train, note): the text encoded to int32 ids (validated
    once, here: every id is in [0, V)); the first n_train ids are trained
    on, the rest held out for validation."""
    text, name, note = _read_text(args.input, args.encoding)
    vocab = Vocab.from_text(text)
    if resumed is not None and vocab != resumed.vocab:
        raise CLIError(_vocab_mismatch(vocab, resumed.vocab, args.resume))
    ids = vocab.encode(text)  # vectorised; 4 bytes per character
    del text
    N, T = ids.size, cfg["seq_length"]
    if N < T + 1:
        raise CLIError(f"{name} has {N} characters; training needs at least "
                       f"--seq-length + 1 = {T + 1}")
    n_val = int(N * cfg["val_fraction"])
    if n_val < 2:  # a validation split needs an input and a target
        n_val = 0
    n_train = N - n_val
    if n_train < T + 1:
        raise CLIError(f"--val-fraction {cfg['val_fraction']} holds out {n_val} of the {N} "
                       f"characters, leaving {n_train} to train on; training needs at least "
                       f"--seq-length + 1 = {T + 1} (lower --val-fraction or --seq-length)")
    return vocab, ids, n_train, note


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation: MemAvailable on Linux,
    else the physical memory; None where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: no check
        return None


def _check_memory(V: int, H: int) -> None:
    """Refuse a model whose arrays cannot fit in the memory available now (the
    operating system would kill the process rather than raise MemoryError)."""
    # params, Adagrad memory and gradients, plus the core's transposed Whh
    need = 8 * (3 * (H * H + 2 * V * H + H + V) + H * H)
    available = _available_memory()
    if available and need > available:
        raise CLIError(f"--hidden-size {H} with {V} characters needs {need / 2**30:.1f} GiB for "
                       f"the parameters, their Adagrad memory and gradients; "
                       f"{available / 2**30:.1f} GiB of memory is available")


def _vocab_mismatch(text_vocab: Vocab, ckpt_vocab: Vocab, resume_path: str) -> str:
    new = sorted(set(text_vocab.chars) - set(ckpt_vocab.chars))
    gone = sorted(set(ckpt_vocab.chars) - set(text_vocab.chars))
    parts = []
    if new:
        parts.append(f"{len(new)} characters not in the checkpoint, e.g. "
                     + " ".join(repr(c) for c in new[:5]))
    if gone:
        parts.append(f"{len(gone)} of the checkpoint's characters missing, e.g. "
                     + " ".join(repr(c) for c in gone[:5]))
    return (f"the text's vocabulary ({len(text_vocab)} characters) differs from that of "
            f"{resume_path} ({len(ckpt_vocab)}): {'; '.join(parts)}; resume on the text the "
            f"checkpoint was trained on")


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------

class _Signals:
    """Ctrl-C (and SIGTERM) set a flag that the loop checks between steps, so
    a step is never cut in half; a second Ctrl-C stops at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class _Output:
    """Lines to stdout; through tqdm's writer when a progress bar is shown.

    If the reader of stdout goes away (``| head``), further output is
    discarded and ``_Output.closed`` tells the training loop to stop, save
    and exit, as on Ctrl-C, instead of losing the work since the last save."""

    closed = False

    def __init__(self, bar):
        self.bar = bar

    def line(self, text: str) -> None:
        if _Output.closed:
            return
        try:
            if self.bar is not None:
                self.bar.write(text, file=sys.stdout)
            else:
                print(text, flush=True)
        except BrokenPipeError:
            _Output.closed = True
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            except (OSError, ValueError):
                pass


def _core_variant() -> str:
    """The build of the Cython core in use (bit-identical resumption needs
    the same build: they may round differently)."""
    try:
        from ._dispatch import variant
    except ImportError:
        return "baseline"
    return str(variant)


def _probe(ids: np.ndarray, max_chars: int = defaults.VAL_MAX_CHARS, pieces: int = 10) -> list:
    """Where to measure bits per character in ids: all of it when it has at
    most max_chars predictions, else `pieces` evenly spaced windows with
    about max_chars predictions in all (a fair sample of a long text)."""
    if ids.size <= max_chars + 1:
        return [ids]
    width = max_chars // pieces + 1
    starts = np.linspace(0, ids.size - width, pieces).astype(np.int64)
    return [ids[s:s + width] for s in starts]


def _predictions(windows: list) -> int:
    return sum(w.size - 1 for w in windows)


def _bits_per_char(model: CharRNN, windows: list) -> float:
    """Forward-only loss over each window (inputs w[:-1], targets w[1:]),
    each from a zero hidden state, in bits per predicted character."""
    nats = sum(model.loss(w[:-1], w[1:], None) for w in windows)
    return nats / _predictions(windows) / LN2


def _plot(Figure, path: str, history: dict, seq_length: int) -> None:
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if history["iteration"].size:
        ax.plot(history["iteration"], history["smooth_loss"] / seq_length / LN2,
                label="training (smoothed)")
    if history["val_iteration"].size:
        ax.plot(history["val_iteration"], history["val_bpc"], "o-", markersize=3,
                label="validation")
    ax.set_xlabel("iteration")
    ax.set_ylabel("bits per character")
    ax.set_title("charrnn_ext training loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ext = os.path.splitext(path)[1][1:].lower()
    fig.savefig(path, dpi=120, format=ext or "png")  # exactly at path, even without extension


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    tolerant_stdout()
    if args.threads is not None:
        set_num_threads(args.threads)

    resumed = _load_resume(args.resume) if args.resume is not None else None
    cfg = _settings(args, resumed)
    ckpt_path = args.checkpoint if args.checkpoint is not None else args.resume
    if ckpt_path is not None:
        _check_checkpoint_target(ckpt_path, args.resume, args.overwrite)
    Figure = _prepare_plot(args.plot) if args.plot is not None else None

    if resumed is not None and resumed.iteration >= cfg["iters"]:
        print(f"{args.resume} is at iteration {resumed.iteration}, already at or past "
              f"--iters {cfg['iters']}: nothing to do")
        return 0

    vocab, ids, n_train, note = _load_data(args, cfg, resumed)
    N, V, n_val = ids.size, len(vocab), ids.size - n_train
    T = cfg["seq_length"]
    data = ids[:n_train]
    val_probe = _probe(ids[n_train:]) if n_val else None
    train_probe = _probe(data)
    data_crc32 = zlib.crc32(ids)
    core = _core_variant()

    if resumed is not None:
        model, rng = resumed.model, resumed.rng
        n, p, hprev = resumed.iteration, resumed.position, resumed.hidden
        smooth_loss = resumed.smooth_loss
        history = {k: list(v) for k, v in resumed.history.items()}
    else:
        _check_memory(V, cfg["hidden_size"])
        try:
            model = CharRNN(V, cfg["hidden_size"], seed=cfg["seed"])
        except (ValueError, MemoryError) as exc:
            raise CLIError(f"--hidden-size {cfg['hidden_size']} with {V} characters: "
                           f"{exc or 'not enough memory'}") from None
        rng = np.random.default_rng(cfg["seed"])
        n, p, hprev = 0, 0, np.zeros((cfg["hidden_size"], 1))
        smooth_loss = -math.log(1.0 / V) * T  # loss at iteration 0
        history = {k: [] for k in empty_history()}

    lines = [note] if note else []
    lines.append(f"data has {N} characters, {V} unique.")
    if n_val:
        lines.append(f"training on {n_train} characters, validating on the last {n_val} "
                     f"(--val-fraction {cfg['val_fraction']:g})")
    else:
        lines.append(f"training on {n_train} characters, no validation")
    lines.append(f"hidden size {cfg['hidden_size']}, seq length {T}, learning rate "
                 f"{cfg['learning_rate']:g}, seed {cfg['seed']}, {cfg['iters']} iterations")
    if resumed is not None:
        lines.append(f"resuming from {args.resume} at iteration {n}")
        prog = build_parser().prog
        if resumed.data_size != N or resumed.data_crc32 != data_crc32:
            print(f"{prog}: warning: this text differs from the one {args.resume} was "
                  f"trained on (same vocabulary); continuing on it", file=sys.stderr)
        if resumed.core and resumed.core != core:
            print(f"{prog}: warning: {args.resume} was trained with the {resumed.core} build "
                  f"of the core, this run uses {core}: the result will not be bit-identical "
                  f"to an uninterrupted run", file=sys.stderr)
    for line in lines:
        print(line)
    sys.stdout.flush()

    iters = cfg["iters"]
    lr = cfg["learning_rate"]
    sample_every, sample_length = cfg["sample_every"], cfg["sample_length"]
    temperature, eval_every = cfg["temperature"], cfg["eval_every"]
    checkpoint_every = cfg["checkpoint_every"]
    hyper = dict(cfg)
    saved_at = None  # iteration of the last checkpoint written by this run

    def snapshot(at: int) -> Checkpoint:
        return Checkpoint(
            model=model, vocab=vocab, iteration=at, position=p, hidden=hprev,
            smooth_loss=smooth_loss, rng=rng, hyperparameters=hyper,
            history={k: np.asarray(v) for k, v in history.items()},
            data_size=N, data_crc32=data_crc32, core=core,
        )

    def diverged(what: str, at: int) -> CLIError:
        if ckpt_path is None:
            kept = "no checkpoint was written"
        elif saved_at is None:
            kept = f"{ckpt_path} was not written by this run"
        else:
            kept = f"the last good checkpoint, {ckpt_path}, is from iteration {saved_at}"
        return CLIError(f"training diverged: {what} at iteration {at} (try a lower "
                        f"--learning-rate); {kept}", code=1)

    def save(at: int) -> None:
        nonlocal saved_at
        if not all(np.all(np.isfinite(a)) for a in model.params.values()):
            raise diverged("the parameters became infinite or NaN", at)
        try:
            snapshot(at).save(ckpt_path)
        except OSError as exc:
            raise CLIError(f"cannot write checkpoint {ckpt_path}: {exc.strerror or exc}",
                           code=1) from None
        saved_at = at

    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm
        bar = tqdm(total=iters, initial=n, unit="it", dynamic_ncols=True, mininterval=0.2,
                   file=sys.stderr)
    out = _Output(bar)
    steps_done = 0
    t_start = time.perf_counter()
    # One BLAS thread: the core's matrix products are small (H x T, V x H), so
    # threads cost more than they save, and a multithreaded BLAS may split
    # sums differently from run to run, which would break bit-identical
    # reproducibility (training is chaotic: one differing bit grows). The
    # core's own threads (--threads) do not change any result.
    from threadpoolctl import threadpool_limits
    try:
        with threadpool_limits(limits=1, user_api="blas"), _Signals() as signals:
            while n < iters:
                # the seed's data pass: chunks left to right, reset at the end
                if p + T + 1 >= n_train or n == 0:
                    hprev = np.zeros((model.hidden_size, 1))  # reset RNN memory
                    p = 0  # go from start of data
                inputs = data[p:p + T]
                targets = data[p + 1:p + T + 1]
                report = n % sample_every == 0
                if report:
                    sample_ix = model.sample(hprev, int(inputs[0]), sample_length,
                                             temperature=temperature, rng=rng)
                    out.line("----\n %s \n----" % (vocab.decode(sample_ix),))
                loss, hprev = model.train_step(inputs, targets, hprev, lr)
                if not math.isfinite(loss):
                    raise diverged(f"the loss became {loss}", n)
                smooth_loss = smooth_loss * 0.999 + loss * 0.001
                evaluate = val_probe is not None and n % eval_every == 0
                if report or evaluate:
                    line = "iter %d, loss: %f" % (n, smooth_loss)
                    if report:
                        history["iteration"].append(n)
                        history["smooth_loss"].append(smooth_loss)
                    if evaluate:
                        bpc = _bits_per_char(model, val_probe)
                        if not math.isfinite(bpc):
                            raise diverged("the validation loss became infinite or NaN", n)
                        history["val_iteration"].append(n)
                        history["val_bpc"].append(bpc)
                        line += ", val: %.4f bits/char" % bpc
                    out.line(line)
                    if bar is not None:
                        bar.set_postfix(loss=f"{smooth_loss:.4g}", refresh=False)
                p += T  # move data pointer
                n += 1  # iteration counter
                steps_done += 1
                if bar is not None:
                    bar.update(1)
                if ckpt_path is not None and n % checkpoint_every == 0 and n < iters:
                    save(n)
                if signals.signum is not None or _Output.closed:
                    break
            elapsed = time.perf_counter() - t_start
            if bar is not None:
                bar.close()
                bar = None
                out = _Output(None)
            if signals.signum is not None:
                out.line(f"interrupted at iteration {n} of {iters}")
            if ckpt_path is not None and saved_at != n:
                save(n)
            train_bpc = _bits_per_char(model, train_probe)
            val_bpc = _bits_per_char(model, val_probe) if val_probe is not None else None
            status = 0 if signals.signum is None else 128 + signals.signum
            if _Output.closed and status == 0:
                status = 1  # stdout was closed: stopped early, state saved
    finally:
        if bar is not None:
            bar.close()

    smooth_bpc = smooth_loss / T / LN2
    out.line("----")
    out.line(f"summary: {n} iterations, smoothed loss {smooth_loss:f} ({smooth_bpc:.4f} bits/char)")
    measured = f"bits per character: train {train_bpc:.4f} ({_predictions(train_probe)} characters)"
    if val_bpc is not None:
        out.line(f"{measured}, validation {val_bpc:.4f} ({_predictions(val_probe)} characters)")
    else:
        out.line(f"{measured}, validation disabled")
    rate = steps_done / elapsed if elapsed > 0 else float("inf")
    out.line(f"speed: {steps_done} steps in {elapsed:.2f} s, {rate:.1f} steps/s")
    if ckpt_path is not None:
        out.line(f"checkpoint: {ckpt_path} (iteration {saved_at})")
    if Figure is not None:
        try:
            _plot(Figure, args.plot, {k: np.asarray(v) for k, v in history.items()}, T)
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot write --plot {args.plot}: {exc}", code=1) from None
        out.line(f"plot: {args.plot}")
    return status


def main(argv=None) -> int:
    prog = build_parser().prog
    return run(_main, argv, prog)


if __name__ == "__main__":
    sys.exit(main())
