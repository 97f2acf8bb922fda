"""``python -m charrnn_ext.train``: train a character-level RNN on a text file.

Karpathy's min-char-rnn training loop on the Cython core, with min-char-rnn's
data pass, defaults and output, plus evaluation on held-out text, the best
model kept, checkpoints that resume bit-identically, a progress bar and a
loss plot. Run with ``--help``.
"""
from __future__ import annotations

import signal as _signal

from . import _exit_130

# Ctrl-C while the heavy modules below are imported: exit quietly with 130.
try:
    _previous_sigint = _signal.signal(_signal.SIGINT, _exit_130)
except ValueError:  # imported outside the main thread
    _previous_sigint = None

import argparse  # noqa: E402
import codecs  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402

from . import __version__, defaults  # noqa: E402
from ._cli import (PIPE_CLOSED, ArgumentParser, CLIError, RunLock, count, available_memory, check_distinct_paths,  # noqa: E402
                   fraction, nonneg_float, positive_float, positive_int, prog_name, run,
                   progress_bar, sample_length_int, seed_int, threads_int, tolerant_stdout)
from ._dispatch import set_num_threads  # noqa: E402
from .checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from .datapass import held_out, stream_part  # noqa: E402
from .divergence import Divergence  # noqa: E402
from .evaluation import LN2, evaluate  # noqa: E402
from .model import CharRNN, chunk_wraps  # noqa: E402
from .vocab import Vocab  # noqa: E402

if _previous_sigint is not None:  # loaded: Ctrl-C raises KeyboardInterrupt again
    _signal.signal(_signal.SIGINT, _signal.default_int_handler
                   if _previous_sigint is _exit_130 else _previous_sigint)

# The run's settings: (flag destination, default). Values not given on the
# command line come from the checkpoint when resuming, else from here.
SETTINGS = {
    "hidden_size": defaults.HIDDEN_SIZE,
    "seq_length": defaults.SEQ_LENGTH,
    "batch_size": defaults.BATCH_SIZE,
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

# Training runs between samples, evaluations and checkpoints in calls of
# model.train of at most about this many seconds: Ctrl-C, the progress bar
# and a closed standard output are seen between them.
BLOCK_SECONDS = 0.1

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
  cat *.txt | python -m charrnn_ext.train - --hidden-size 256 --plot loss.png
  python -m charrnn_ext.sample input.npz --prime "The " --length 500

exit status: 0 done, 1 training diverged or an output could not be written
(the checkpoint is saved where possible), 2 bad input or options,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""


def build_parser(prog: str | None = None) -> ArgumentParser:
    d = defaults
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.train"), description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (charrnn_ext) {__version__}")
    p.add_argument("input", nargs="?", metavar="input.txt",
                   help="the text to train on; '-' reads standard input; without it, a built-in "
                        "demo corpus (source of Python standard library modules) is used")
    p.add_argument("--encoding", default=d.ENCODING, metavar="NAME",
                   help=f"text encoding of the input (default: {d.ENCODING})")
    p.add_argument("--threads", type=threads_int, metavar="N",
                   help="threads the core may use: a small model's steps run on two (the "
                        "recurrence beside the output layer), a large output layer is split; "
                        "training measures whether these or one thread is faster and uses the "
                        "faster; results are the same for any N (default: "
                        "$CHARRNN_EXT_NUM_THREADS, else one per usable CPU or $OMP_NUM_THREADS "
                        "if lower)")
    m = p.add_argument_group("model and training (when resuming, the checkpoint's values "
                             "are the defaults)")
    m.add_argument("--hidden-size", type=positive_int, metavar="H",
                   help=f"size of the hidden layer (default: {d.HIDDEN_SIZE})")
    m.add_argument("--seq-length", type=positive_int, metavar="T",
                   help=f"characters per chunk, the steps BPTT unrolls (default: {d.SEQ_LENGTH})")
    m.add_argument("--batch-size", type=positive_int, metavar="B",
                   help="parallel streams: the training text is cut into B contiguous parts, "
                        "stream b reads part b in chunks of T with its own hidden state, and "
                        "one step averages the B streams' gradients (char-rnn's -batch_size); "
                        f"1 is exactly min-char-rnn (default: {d.BATCH_SIZE})")
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
    o.add_argument("--sample-length", type=sample_length_int, metavar="N",
                   help=f"characters per printed sample (default: {d.SAMPLE_LENGTH})")
    o.add_argument("--temperature", type=nonneg_float, metavar="T",
                   help="temperature of the printed samples; 0 takes the most likely character "
                        f"(default: {d.TEMPERATURE})")
    o.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="score the model (train and validation bits per character, see above) "
                        f"every N iterations and at the end (default: {d.EVAL_EVERY})")
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
    c.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help=f"iterations between checkpoints (default: {d.CHECKPOINT_EVERY})")
    c.add_argument("--no-keep-best", dest="keep_best", action="store_false",
                   help="do not keep the model with the best validation figure in "
                        "CHECKPOINT.best.npz (kept by default when there is a held-out part)")
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
        "hidden_size": positive_int, "seq_length": positive_int, "batch_size": positive_int,
        "learning_rate": positive_float,
        "iters": positive_int, "sample_every": positive_int, "sample_length": sample_length_int,
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
        B = resumed.hidden.shape[1]  # one hidden state per stream
        if args.batch_size is not None and args.batch_size != B:
            raise CLIError(f"--batch-size {args.batch_size} differs from the {count(B, 'stream')} of the "
                           f"checkpoint {args.resume}")
        out["batch_size"] = B
    return out




def best_path(checkpoint: str) -> str:
    """Where the best model of a run saved to ``checkpoint`` is kept: beside
    it (beside its target, for a symlink), ``model.npz`` -> ``model.best.npz``."""
    if os.path.islink(checkpoint):
        checkpoint = os.path.realpath(checkpoint)
    root, ext = os.path.splitext(checkpoint)
    return f"{root}.best{ext or '.npz'}"


def _inherited_best(resumed: Checkpoint | None, best_file: str | None, cfg: dict, N: int,
                    ids: np.ndarray) -> tuple:
    """(best_val_bpc, best_iteration) this run starts from: those of the run it
    continues, when its best-model file is ``best_file`` and holds that very
    model, scored on the same held-out text; else (None, None), the best
    judged anew. A fresh run never inherits a best, not even from a file it
    replaces (--overwrite)."""
    if resumed is None or best_file is None or resumed.best_iteration is None \
            or not os.path.exists(best_file):
        return None, None
    if resumed.hyperparameters.get("val_fraction") != cfg["val_fraction"] or \
            resumed.data_size != N or resumed.data_crc32 != zlib.crc32(ids):
        print(f"{prog_name('charrnn_ext.train')}: note: the held-out text differs from the "
              f"checkpoint's (--val-fraction or the text): the best model is judged anew",
              file=sys.stderr)
        return None, None
    try:
        kept = load_checkpoint(best_file)
    except (ValueError, OSError) as exc:
        raise CLIError(f"the best-model file {best_file}: {exc}") from None
    if (kept.iteration, kept.best_iteration, kept.best_val_bpc) != \
            (resumed.best_iteration, resumed.best_iteration, resumed.best_val_bpc):
        return None, None   # another run's, or written after the checkpoint: judged anew
    return resumed.best_val_bpc, resumed.best_iteration


def _check_output(path: str, what: str) -> None:
    """Fail before training, not after it, if ``path`` cannot be written: a
    real write in its directory, with a temporary name as long as the one a
    checkpoint save uses (so a name too long for the file system fails here)."""
    if not path:
        raise CLIError(f"{what} needs a file name")
    if path.endswith(os.sep) or os.path.isdir(path):
        raise CLIError(f"{what} {path} is a directory")
    if os.path.lexists(path) and not os.path.isfile(path) and os.path.exists(path):
        raise CLIError(f"{what} {path} is not a regular file")  # (a dangling link is fine)
    target = os.path.realpath(path)  # saves write through a symlink to its target
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise CLIError(f"{what} {path}: directory {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp",
                                     dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise CLIError(f"{what} {path}: cannot write in {parent} ({exc.strerror or exc})") from None


def _check_existing(path: str, what: str, continued: str | None, overwrite: bool) -> None:
    """A fresh run never replaces a file that is not one of our checkpoints,
    nor, unless --overwrite, a trained model; the run being continued
    (``continued``: the --resume file, or the best file of that run) is fine."""
    if not os.path.exists(path):  # (through a symlink: a dangling one is created through)
        return
    if continued and os.path.exists(continued) and os.path.samefile(path, continued):
        return
    try:
        existing = load_checkpoint(path)
    except (ValueError, OSError) as exc:
        raise CLIError(f"refusing to overwrite {what} {path}: {exc}") from None
    if not overwrite:
        hint = (f"pass --resume {path} to continue it, or --overwrite to start over"
                if what == "--checkpoint" else "pass --overwrite to start over")
        held = "a run" if what == "--checkpoint" else "a model"
        raise CLIError(f"{what} {path} already holds {held} at iteration "
                       f"{existing.iteration}; {hint}")


class _Locks(list):
    """The RunLocks of a run's output files, released together."""

    def release(self) -> None:
        for lock in self:
            lock.release()


def _lock_outputs(path: str, keep_best: bool) -> _Locks | None:
    """Lock the checkpoint and its best-model file; None if another run holds
    either (then nothing is held)."""
    locks = _Locks()
    for target in [path] + ([best_path(path)] if keep_best else []):
        lock = RunLock(target)
        if not lock.acquire():
            locks.release()
            return None
        locks.append(lock)
    return locks


def _take_checkpoint_path(args, keep_best: bool) -> tuple[str, _Locks]:
    """The checkpoint path of this run, locked with its best-model file for
    the run's lifetime (a second run writing either is refused). Without
    --checkpoint and --resume, a new file in the current directory named
    after the input (input.npz, then input-2.npz, ...): an existing file is
    never chosen."""
    if args.checkpoint is None and args.resume is not None and args.resume.endswith(".best.npz"):
        raise CLIError(f"--resume {args.resume} is the best model kept by a run: continuing it "
                       f"in place would replace it; name the continued run's file with "
                       f"--checkpoint PATH")
    path = args.checkpoint if args.checkpoint is not None else args.resume
    if path is not None:
        _check_output(path, "--checkpoint")
        if keep_best:
            _check_output(best_path(path), "the best-model file")
        locks = _lock_outputs(path, keep_best)
        if locks is None:
            raise CLIError(f"another run is writing --checkpoint {path} or its best-model file "
                           f"({RunLock(path).owner()}); wait for it or choose another file")
        try:
            _check_existing(path, "--checkpoint", args.resume, args.overwrite)
            if keep_best:
                continuing = args.resume is not None and os.path.samefile(path, args.resume) \
                    if os.path.exists(path) else False
                _check_existing(best_path(path), "the best-model file",
                                best_path(path) if continuing else None, args.overwrite)
        except BaseException:
            locks.release()
            raise
        return path, locks
    if args.input is None:
        stem = "demo"
    elif args.input == "-":
        stem = "stdin"
    else:
        stem = os.path.splitext(os.path.basename(os.path.normpath(args.input)))[0] or "model"
    for k in range(1, 10_000):
        path = f"{stem}.npz" if k == 1 else f"{stem}-{k}.npz"
        if os.path.lexists(path) or os.path.lexists(best_path(path)):
            continue
        try:
            _check_output(path, "the checkpoint")
            if keep_best:
                _check_output(best_path(path), "the best-model file")
        except CLIError as exc:
            raise CLIError(f"{exc} (name another place with --checkpoint PATH)") from None
        locks = _lock_outputs(path, keep_best)
        if locks is None:
            continue
        if os.path.lexists(path) or os.path.lexists(best_path(path)):  # created meanwhile
            locks.release()
            continue
        return path, locks
    raise CLIError(f"no free checkpoint name {stem}-N.npz in the current directory; "
                   f"name one with --checkpoint PATH")


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
    data, name = read_input(path, encoding)
    return decode_input(data, name, encoding), name, None


def read_input(path: str, encoding: str) -> tuple[bytes, str]:
    """(the bytes of the text at ``path`` ('-': standard input), its name for
    messages): a readable, non-empty file that is not a device, and an
    ``encoding`` that names a text codec; else CLIError. The one reader of
    input texts (charrnn-train, charrnn-sweep)."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise CLIError(f"unknown --encoding {encoding!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise CLIError(f"--encoding {encoding!r} is not a text encoding")
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
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0  # reported by open() below
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            raise CLIError(f"{path} is a device or socket, not a text file")
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
    return data, name


def decode_input(data: bytes, name: str, encoding: str) -> str:
    """The text of read_input's bytes (a UTF-8 byte-order mark is not part of
    it), or CLIError naming the first undecodable bytes."""
    info = codecs.lookup(encoding)
    try:
        text = data.decode("utf-8-sig" if info.name == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.end][:4].hex(" ")
        raise CLIError(f"{name} is not valid {info.name} text: cannot decode byte(s) {bad} at "
                       f"offset {exc.start} (use --encoding to name its encoding)") from None
    except UnicodeError as exc:
        raise CLIError(f"{name} cannot be decoded as {info.name}: {exc}") from None
    if not text:
        raise CLIError(f"{name} has no text")
    return text


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
    n_train = training_split(ids.size, cfg, name)
    return vocab, ids, n_train, note


def training_split(N: int, cfg: dict, name: str) -> int:
    """The number of the text's N characters trained on (the rest, the last
    val_fraction, is held out), or CLIError when the settings cfg
    (seq_length, val_fraction, batch_size) leave a stream no whole chunk.
    charrnn-sweep checks every run's settings with it before any run starts."""
    T = cfg["seq_length"]
    if N < T + 1:
        raise CLIError(f"{name} has {count(N, 'character')}; training needs at least "
                       f"--seq-length + 1 = {T + 1}")
    n_val = held_out(N, cfg["val_fraction"])
    n_train = N - n_val
    if n_train < T + 1:
        raise CLIError(f"--val-fraction {cfg['val_fraction']} holds out {n_val} of the {N} "
                       f"characters, leaving {n_train} to train on; training needs at least "
                       f"--seq-length + 1 = {T + 1} (lower --val-fraction or --seq-length)")
    B = cfg["batch_size"]
    if stream_part(n_train, B) < T + 1:
        raise CLIError(f"--batch-size {B} cuts the {n_train} training characters into parts of "
                       f"{n_train // B}; each stream needs at least --seq-length + 1 = {T + 1} "
                       f"(use at most --batch-size {max(n_train // (T + 1), 1)})")
    return n_train


def _check_memory(V: int, H: int, T: int, B: int) -> None:
    """Refuse a model whose arrays cannot fit in the memory available now (the
    operating system would kill the process rather than raise MemoryError)."""
    # params, Adagrad memory and gradients, the core's transposed Whh, and the
    # step's work buffers: T * B rows of probabilities (V) and hidden states (3 H)
    need = 8 * (3 * (H * H + 2 * V * H + H + V) + H * H + T * B * (V + 3 * H))
    available = available_memory()
    if available and need > 0.8 * available:  # a margin for Python, numpy and the text
        raise CLIError(f"--hidden-size {H} with {count(V, 'character')} needs {need / 2**30:.1f} GiB for "
                       f"the parameters, their Adagrad memory and gradients; "
                       f"{available / 2**30:.1f} GiB of memory is available to this process")


def _vocab_mismatch(text_vocab: Vocab, ckpt_vocab: Vocab, resume_path: str) -> str:
    new = sorted(set(text_vocab.chars) - set(ckpt_vocab.chars))
    gone = sorted(set(ckpt_vocab.chars) - set(text_vocab.chars))
    parts = []
    if new:
        parts.append(f"{count(len(new), 'character')} not in the checkpoint, e.g. "
                     + " ".join(repr(c) for c in new[:5]))
    if gone:
        parts.append(f"{len(gone)} of the checkpoint's characters missing, e.g. "
                     + " ".join(repr(c) for c in gone[:5]))
    return (f"the text's vocabulary ({count(len(text_vocab), 'character')}) differs from that of "
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
            for sig in (_signal.SIGINT, _signal.SIGTERM):
                self._previous[sig] = _signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            _signal.signal(sig, handler)
        return False




class _Output:
    """Lines to stdout; through tqdm's writer while a progress bar is shown.

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



def _core_variant() -> str:
    """The build of the Cython core in use and its kernels' revision, e.g.
    "x86_64_v4 r2" (bit-identical resumption needs the same: builds and
    revisions may round differently)."""
    try:
        from ._dispatch import core, variant
    except ImportError:
        return "baseline"
    return f"{variant} r{core.kernel_revision()}"


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
    cfg = _settings(args, resumed)
    if resumed is not None and resumed.iteration >= cfg["iters"]:
        print(f"{args.resume} is at iteration {resumed.iteration}, already at or past "
              f"--iters {cfg['iters']}: nothing to do")
        return 0
    text = _load_data(args, cfg, resumed)
    ckpt_path, lock = _take_checkpoint_path(args, args.keep_best)
    try:
        check_distinct_paths(
            outputs={"--checkpoint": ckpt_path, "--plot": args.plot,
                     "the best-model file": best_path(ckpt_path) if args.keep_best else None},
            inputs={"the input text": args.input if args.input != "-" else None,
                    "--resume": args.resume},
            allowed=(("--checkpoint", "--resume"),))
        Figure = _prepare_plot(args.plot) if args.plot is not None else None
        return _train(args, cfg, resumed, text, ckpt_path, Figure)
    finally:
        lock.release()


def _train(args, cfg: dict, resumed: Checkpoint | None, text: tuple, ckpt_path: str,
           Figure) -> int:
    prog = build_parser().prog
    # -- 2. the text: training part and held-out part ------------------------
    vocab, ids, n_train, note = text
    N, V, n_val = ids.size, len(vocab), ids.size - n_train
    T, H, B = cfg["seq_length"], cfg["hidden_size"], cfg["batch_size"]
    data = ids[:n_train]
    # B streams: stream b reads data[b * part : (b + 1) * part] (the last
    # n_train % B characters are not trained on when B > 1); all streams stand
    # at the same offset run.position in their parts, so they wrap together
    # (model.train).
    part = stream_part(n_train, B)
    keep_best = args.keep_best and n_val > 0
    best_file = best_path(ckpt_path) if keep_best else None
    stale_best = best_path(ckpt_path)   # of a run this fresh one replaces (--overwrite)

    # -- 3. the run state: resumed, or a fresh model -------------------------
    if resumed is not None:
        run = resumed
    else:
        _check_memory(V, H, T, B)
        try:
            model = CharRNN(V, H, seed=cfg["seed"])
        except (ValueError, MemoryError) as exc:
            raise CLIError(f"--hidden-size {H} with {count(V, 'character')}: "
                           f"{exc or 'not enough memory'}") from None
        run = Checkpoint(model=model, vocab=vocab, rng=np.random.default_rng(cfg["seed"]),
                         hyperparameters=dict(cfg), hidden=np.zeros((H, B)))
    # the best score so far is the one the best-model file holds (a run resumed
    # with --no-keep-best, or on another held-out part, kept none)
    run.best_val_bpc, run.best_iteration = _inherited_best(resumed, best_file, cfg, N, ids)
    run.hyperparameters = dict(cfg)
    run.data_size, run.data_crc32, core = N, zlib.crc32(ids), _core_variant()
    model = run.model

    lines = [note] if note else []
    lines.append(f"data has {count(N, 'character')}, {V} unique.")
    if n_val:
        lines.append(f"training on {count(n_train, 'character')}, validating on the last {n_val} "
                     f"(--val-fraction {cfg['val_fraction']:g})")
    else:
        lines.append(f"training on {count(n_train, 'character')}, no validation")
    streams = f", {B} streams of {count(part, 'character')}" if B > 1 else ""
    lines.append(f"hidden size {H}, seq length {T}{streams}, learning rate "
                 f"{cfg['learning_rate']:g}, seed {cfg['seed']}, {count(cfg['iters'], 'iteration')}")
    if resumed is not None:
        lines.append(f"resuming from {args.resume} at iteration {run.iteration}")
        if resumed.data_size != N or resumed.data_crc32 != run.data_crc32:
            print(f"{prog}: warning: this text differs from the one {args.resume} was "
                  f"trained on (same vocabulary); continuing on it", file=sys.stderr)
        if resumed.core and resumed.core != core:
            print(f"{prog}: warning: {args.resume} was trained with the {resumed.core} build "
                  f"of the core, this run uses {core}: the result will not be bit-identical "
                  f"to an uninterrupted run", file=sys.stderr)
    lines.append(f"saving to {ckpt_path}" + (f", the best model to {best_file}" if best_file else ""))
    run.core = core
    out = _Output()
    for line in lines:
        out.line(line)

    iters, lr = cfg["iters"], cfg["learning_rate"]
    sample_every, eval_every = cfg["sample_every"], cfg["eval_every"]
    watch = Divergence(T * math.log(V))  # the loss of a uniform guess over a chunk
    uniform_bpc = math.log2(V)
    saved_at = None                  # iteration of the last checkpoint this run wrote
    eval_seconds = 0.0               # spent evaluating (not training)

    def diverged(what: str) -> CLIError:
        if saved_at is None:
            kept = f"{ckpt_path} was not written by this run"
        else:
            kept = f"the last good checkpoint, {ckpt_path}, is from iteration {saved_at}"
        return CLIError(f"training diverged at iteration {run.iteration}: {what}; try a lower "
                        f"--learning-rate (e.g. --learning-rate {lr / 2:g}); {kept}", code=1)

    def save(path: str) -> None:
        if not all(np.all(np.isfinite(a)) for a in model.params.values()):
            raise diverged("the parameters became infinite or NaN")
        try:
            run.save(os.path.realpath(path))  # through a symlink, to its target
        except OSError as exc:
            raise CLIError(f"cannot write {path}: {exc.strerror or exc}", code=1) from None
        except ValueError as exc:  # a state the loader would refuse: nothing was written
            raise CLIError(f"not saving {path}: {exc}", code=1) from None

    def save_checkpoint() -> None:
        """The checkpoint; the first save of a fresh run also removes the
        best-model file of the run it replaces (--overwrite), which this run
        has not written: a best file is never written before its checkpoint."""
        nonlocal saved_at
        first = saved_at is None and resumed is None
        save(ckpt_path)
        saved_at = run.iteration
        if first and os.path.lexists(stale_best) and run.best_iteration is None:
            try:
                os.unlink(os.path.realpath(stale_best))
            except OSError as exc:
                raise CLIError(f"cannot remove {stale_best}, the best model of the run "
                               f"{ckpt_path} replaced: {exc.strerror or exc}", code=1) from None

    def evaluate_and_keep(stop):
        """Score the model in its current state (as a checkpoint now would
        hold it), record it, keep it if best (never the untrained model, nor
        one no better than a uniform guess); the scores, or None if
        ``stop()`` became true meanwhile (Ctrl-C)."""
        nonlocal eval_seconds
        started = time.perf_counter()
        scores = evaluate(model, ids, n_train, run.hidden, run.position, stop=stop)
        eval_seconds += time.perf_counter() - started
        if scores is None:
            return None
        if not all(math.isfinite(x) for x in (scores.train_bpc, scores.val_bpc or 0.0)):
            raise diverged("the evaluated loss became infinite or NaN")
        keep = best_file is not None and run.iteration > 0 and scores.val_bpc is not None \
            and scores.val_bpc < uniform_bpc
        if run.record_evaluation(scores.val_bpc, scores.train_bpc, track_best=keep):
            if saved_at is None:   # the checkpoint first: the best file belongs beside it
                save_checkpoint()
            save(best_file)
        return scores

    # -- 4. the training loop: min-char-rnn's, plus evaluation and saves -----
    bar = progress_bar(iters, run.iteration)
    out.bar = bar
    steps_done = 0
    t_start = time.perf_counter()
    # One BLAS thread: the core's matrix products are small (H x T, V x H), so
    # threads cost more than they save, and a multithreaded BLAS may split
    # sums differently from run to run, which would break bit-identical
    # reproducibility (training is chaotic: one differing bit grows). The
    # core's own threads (--threads) do not change any result.
    from threadpoolctl import threadpool_limits
    final = None
    try:
        with threadpool_limits(limits=1, user_api="blas"), _Signals() as signals:
            def interrupted():
                return signals.signum is not None

            block = 1  # steps per model.train call: sized to about BLOCK_SECONDS below
            while run.iteration < iters:
                n = run.iteration
                # min-char-rnn's data pass: chunks left to right, reset at the start
                # and at the end (of each stream's part); model.train applies the
                # same rule before every step it runs
                if n == 0 or chunk_wraps(run.position, part, T):
                    run.hidden = np.zeros((H, B))  # reset RNN memory
                    run.position = 0               # go from start of data
                evaluated = n % eval_every == 0 and (
                    not run.history["val_iteration"].size or run.history["val_iteration"][-1] != n)
                scores = evaluate_and_keep(interrupted) if evaluated else None
                report = n % sample_every == 0
                if report:  # from stream 0's state and its next input
                    sample_ix = model.sample(run.hidden[:, :1], int(data[run.position]),
                                             cfg["sample_length"], temperature=cfg["temperature"],
                                             rng=run.rng)
                    out.line("----\n %s \n----" % (vocab.decode(sample_ix),))
                # the steps up to the next sample, evaluation, checkpoint or the end,
                # in one call (no Python between steps), at most ~BLOCK_SECONDS long
                upto = min(iters, *(n + every - n % every
                                    for every in (sample_every, eval_every, cfg["checkpoint_every"])))
                started = time.perf_counter()
                losses, run.hidden, run.position = model.train(
                    data, min(upto - n, block), T, run.hidden, run.position, lr, streams=B)
                rate = losses.size / max(time.perf_counter() - started, 1e-9)
                block = max(1, int(rate * BLOCK_SECONDS))
                k, why = watch.add(losses)
                for loss in losses[:k].tolist():
                    run.record_step(loss)
                    if run.iteration == n + 1 and (report or evaluated):
                        line = "iter %d, loss: %f" % (n, run.smooth_loss)
                        if scores is not None and scores.val_bpc is not None:
                            line += ", val: %.4f bits/char" % scores.val_bpc
                        out.line(line)
                    if run.iteration == n + 1 and report:
                        run.close_interval(T)
                if why is not None:
                    raise diverged(why)
                steps_done += losses.size
                if bar is not None:
                    bar.update(losses.size)
                    if run.interval_steps:
                        recent = run.interval_loss / run.interval_steps / T / LN2
                        bar.set_postfix_str(f"loss={recent:.3f} bits/char", refresh=False)
                if run.iteration % cfg["checkpoint_every"] == 0 and run.iteration < iters \
                        and not watch.suspect:
                    save_checkpoint()
                if signals.signum is not None or out.failure is not None:
                    break
            train_seconds = time.perf_counter() - t_start - eval_seconds
            if bar is not None:
                bar.close()
                bar = out.bar = None

            # -- 5. the end: save, a last evaluation, save it too ----------------
            if signals.signum is not None:
                out.line(f"interrupted at iteration {run.iteration} of {iters}")
            save_checkpoint()
            # Ctrl-C means now: no last evaluation after it, or from it on
            final = None if interrupted() else evaluate_and_keep(interrupted)
            if final is not None:
                save(ckpt_path)  # with the evaluation (history, best) recorded
    finally:
        if bar is not None:
            bar.close()

    # -- 6. the summary --------------------------------------------------------
    smooth_bpc = run.smooth_loss / T / LN2
    out.line("----")
    out.line(f"summary: {count(run.iteration, 'iteration')}, smoothed loss {run.smooth_loss:f} "
             f"({smooth_bpc:.4f} bits/char)")
    if final is None:
        out.line("bits per character: not measured (interrupted)")
    else:
        measured = (f"bits per character, continuing from the trained state: train "
                    f"{final.train_bpc:.4f} (last {count(final.train_chars, 'training character')})")
        if final.val_bpc is not None:
            out.line(f"{measured}, validation {final.val_bpc:.4f} (first {final.val_chars} "
                     f"held-out characters)")
        else:
            out.line(f"{measured}, validation disabled")
    if best_file is not None and run.best_val_bpc is not None:
        out.line(f"best validation: {run.best_val_bpc:.4f} bits/char at iteration "
                 f"{run.best_iteration}, kept in {best_file}")
    if final is not None and (final.val_bpc if final.val_bpc is not None
                              else final.train_bpc) >= uniform_bpc:
        out.line(f"warning: this model is no better than a uniform guess "
                 f"({uniform_bpc:.4f} bits/char); try a lower --learning-rate")
    rate = steps_done / train_seconds if train_seconds > 0 else float("inf")
    out.line(f"speed: {count(steps_done, 'step')} in {train_seconds:.2f} s, {rate:.1f} steps/s "
             f"(and {eval_seconds:.2f} s evaluating)")
    out.line(f"checkpoint: {ckpt_path} (iteration {saved_at})")
    if Figure is not None:
        try:
            _plot(Figure, args.plot, run, T)
        except (OSError, ValueError) as exc:
            raise CLIError(f"cannot write --plot {args.plot}: {exc}", code=1) from None
        out.line(f"plot: {args.plot}")
    out.line(f"sample from it: {_sample_command()} {ckpt_path}")
    if out.failure is not None:
        ran = (f"all {count(iters, 'iteration')} ran" if run.iteration >= iters else
               f"training stopped at iteration {run.iteration} of {iters}")
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
