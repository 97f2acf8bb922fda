"""Training checkpoints: everything needed to continue a run, as plain data.

A checkpoint is an uncompressed ``.npz`` archive (``np.savez``) of numeric and
string arrays only, read member by member from their ``.npy`` headers (never
pickle), so loading a file from a stranger cannot run code. Members:

    format            str    FORMAT_NAME (identifies the file)
    version           int64  FORMAT_VERSION
    vocab             uint32 (V,)  code points of the vocabulary in id order: sorted, but
                                   a fine-tuned model's new characters follow the ones
                                   it started from (charrnn_ext.run.finetune)
    params.<name>     float64      Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1)
                                   (float32: a --dtype float32 model's, version 3);
                                   with an input embedding of width D (version 3):
                                   Wxh (H,D) and embed (V,D)
    memory.<name>     float64      the optimizer's memory (Adagrad's sums of squares, Adam's
                                   second moment, RMSprop's mean square), same shapes
    moment.<name>     float64      Adam's first moment, same shapes (Adam only; version 3)
                                   (the slots of each optimizer: charrnn_ext.core.optimizers)
                                   a gated or stacked model: PyTorch's names, whence
                                   its cell and layers (weight_ih_l0, ..., Why, by[, embed])
    hidden            float64 (H, B) hidden states carried into the next step (gated: (S, B)),
                                   one column per stream (version 1: (H,))
                                   (sampling starts from it: the model has
                                   rarely seen a zero state)
    smooth_loss       float64      the smoothed loss
    state             str    JSON: iteration, position (the data pointer p),
                                   data_size, data_crc32 of the training text,
                                   core (the build of the Cython core used),
                                   best_val_bpc / best_iteration (the best
                                   held-out score so far, or null),
                                   interval_loss / interval_steps (summed loss
                                   and steps since the last history point),
                                   adam_steps (Adam's updates so far; version 3),
                                   optimizer (its name; absent in files written
                                   before RMSprop: Adam if moment.* exists, else
                                   Adagrad),
                                   lr_from ([iteration, rate]: where the decaying
                                   learning rate's line starts, when not at 0
                                   with the learning rate; absent: there)
    rng_state         str    JSON: the sampling Generator's bit_generator.state
    hyperparameters   str    JSON: the training run's settings
    history.*         arrays of the loss curves (for --plot)

Version 1 files (no best score, no interval sums, no history.interval_bpc /
history.train_bpc) still load: the missing curves read as NaN.

Members are stored uncompressed (np.savez); a compressed member, a member the
format does not define, or one larger than its shape and the model's limits
allow is refused before anything is decompressed or allocated, so loading
takes time and memory bounded by the file's size. Fields are checked against
each other too (_ckptagree.check_agreement: every stored setting as charrnn-train
reads it, and the ones the model fixes -- cell, num_layers, hidden_size,
embedding_size, optimizer, dtype -- against its arrays; hidden's streams
against batch_size, the position against the text's stream parts, the
counters and loss curves against the iteration). The vocabulary holds
characters only: a lone surrogate (U+D800..U+DFFF) is refused. Saving runs the loader's own checks on what it
writes, so a saved file always loads.

Files are written atomically (a temporary file in the same directory, then
``os.replace``), so a crash or Ctrl-C while saving leaves the previous
checkpoint intact; a temporary file left by a writer that was killed is
removed by the next save of the same file (_ckptfile: how a live writer's is
told apart). Reading and writing the files is _ckptfile's; this module owns
what they hold.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..core import cells
from ._ckptagree import check_agreement, setting
from .._parse import fraction
from ._ckptfile import check_member, describe, max_file_size, read_arrays, write_atomic
from ..core._rngstate import restore_rng, rng_json
from ..core import optimizers
from ..defaults import SEQ_LENGTH
from ..core.model import _MAX_ELEMENTS, CharRNN
from ..core.reference_gated import param_names as gated_param_names
from ..core.spec import EMBED, MAX_LAYERS, param_names
from ..text.vocab import _MAX_CODE_POINT, Vocab

FORMAT_NAME = "charrnn_ext checkpoint"
FORMAT_VERSION = 3

# history.<key>: the loss curves. Keys in one group have equal lengths.
_HISTORY_KEYS = {
    "iteration": np.int64,       # iterations (steps done) at which the training loss was recorded
    "smooth_loss": np.float64,   # the smoothed loss (nats per chunk) there
    "interval_bpc": np.float64,  # mean loss of the steps since the previous point, bits/char
    "val_iteration": np.int64,   # iterations (steps done) at which the model was evaluated
    "val_bpc": np.float64,       # held-out bits per character there (a continuation, see evaluation.py)
    "train_bpc": np.float64,     # training-span bits per character there (the same way)
}
_HISTORY_GROUPS = (("iteration", "smooth_loss", "interval_bpc"),
                   ("val_iteration", "val_bpc", "train_bpc"))
_HISTORY_ADDED_IN_V2 = ("interval_bpc", "train_bpc")


def empty_history() -> dict:
    """Empty loss curves, in the layout a Checkpoint keeps them."""
    return {key: np.zeros(0, dtype=dtype) for key, dtype in _HISTORY_KEYS.items()}


@dataclass(repr=False, eq=False)
class Checkpoint:
    """The state of a training run: what the training loop carries from step
    to step, and what a checkpoint file holds.

    ``model`` (a CharRNN with its Adagrad memory) and ``vocab`` are what the
    sampler needs, with ``hidden`` (H, B), the hidden states carried by
    training, one column per stream (sampling and evaluation start from
    stream 0's); the rest lets
    ``python -m charrnn_ext.train --resume`` continue bit-identically:
    ``iteration`` (steps done), ``position`` (the data pointer p of the next
    chunk), ``smooth_loss`` (None: the loss of a uniform guess over a chunk,
    as at iteration 0), ``rng`` (the sampling Generator, in its saved state),
    the run's ``hyperparameters``, the loss ``history``, ``best_val_bpc`` and
    ``best_iteration`` (the best held-out score so far and when; None before
    any), ``interval_loss`` / ``interval_steps`` (the history point being
    accumulated), ``data_size`` and ``data_crc32`` of the text and ``core``,
    the build of the Cython core that trained it (bit-identical resumption
    needs the same one); ``lr_from``, (iteration, rate) where the decaying
    learning rate's line to its floor at ``iters`` starts (None: at 0, at
    the learning rate; training.scheduled_rate).
    """

    model: CharRNN
    vocab: Vocab
    iteration: int = 0
    position: int = 0
    hidden: np.ndarray | None = None
    smooth_loss: float | None = None
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    hyperparameters: dict = field(default_factory=dict)
    history: dict = field(default_factory=empty_history)
    data_size: int = 0
    data_crc32: int = 0
    core: str = ""
    best_val_bpc: float | None = None
    best_iteration: int | None = None
    interval_loss: float = 0.0
    interval_steps: int = 0
    lr_from: tuple | None = None
    version: int = FORMAT_VERSION

    def __post_init__(self):
        if self.hidden is None:
            self.hidden = np.zeros((self.model.state_size, 1))   # a zero state of any cell
        if self.smooth_loss is None:  # min-char-rnn's loss at iteration 0
            T = self.hyperparameters.get("seq_length", SEQ_LENGTH)
            self.smooth_loss = -math.log(1.0 / self.model.vocab_size) * T

    def __repr__(self) -> str:
        best = ("none" if self.best_val_bpc is None else
                f"{self.best_val_bpc:.4f} bits/char at iteration {self.best_iteration}")
        return (f"Checkpoint({self.model!r}, {len(self.vocab)} characters, iteration "
                f"{self.iteration}, smoothed loss {self.smooth_loss:.6g}, best validation "
                f"{best}, rng {self.rng.bit_generator.__class__.__name__})")

    def __eq__(self, other) -> bool:
        """Equal: the same file contents (every member, bit for bit) and version."""
        if not isinstance(other, Checkpoint):
            return NotImplemented
        if other is self:
            return True
        a, b = _arrays(self), _arrays(other)
        return self.version == other.version and a.keys() == b.keys() and all(
            a[k].dtype == b[k].dtype
            and np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f") for k in a)

    __hash__ = None   # (mutable)

    def record_step(self, loss: float) -> None:
        """Count one training step: iteration, smoothed loss (min-char-rnn's
        0.999 / 0.001 average) and the history point being accumulated."""
        self.iteration += 1
        self.smooth_loss = self.smooth_loss * 0.999 + loss * 0.001
        self.interval_loss += loss
        self.interval_steps += 1

    def close_interval(self, seq_length: int) -> None:
        """Append a training-loss point (at this iteration) to the history."""
        if self.interval_steps == 0:
            return
        bpc = self.interval_loss / self.interval_steps / seq_length / math.log(2.0)
        for key, value in (("iteration", self.iteration), ("smooth_loss", self.smooth_loss),
                           ("interval_bpc", bpc)):
            self.history[key] = np.append(self.history[key], value).astype(_HISTORY_KEYS[key])
        self.interval_loss, self.interval_steps = 0.0, 0

    def record_evaluation(self, val_bpc: float | None, train_bpc: float,
                          track_best: bool = True) -> bool:
        """Append an evaluation at this iteration to the history; True if
        val_bpc is the best held-out score so far (then recorded as the best,
        when ``track_best``)."""
        values = (("val_iteration", self.iteration), ("train_bpc", train_bpc),
                  ("val_bpc", float("nan") if val_bpc is None else val_bpc))
        for key, value in values:
            self.history[key] = np.append(self.history[key], value).astype(_HISTORY_KEYS[key])
        if not track_best or val_bpc is None or (
                self.best_val_bpc is not None and val_bpc >= self.best_val_bpc):
            return False
        self.best_val_bpc, self.best_iteration = float(val_bpc), self.iteration
        return True

    def save(self, path) -> None:
        """Write the checkpoint to ``path`` atomically (see the module doc)."""
        save_checkpoint(path, self)


def _json_array(obj) -> np.ndarray:
    return np.array(json.dumps(obj, sort_keys=True))


def _arrays(ckpt: Checkpoint) -> dict:
    model = ckpt.model
    if len(ckpt.vocab) != model.vocab_size:
        raise ValueError(f"vocabulary has {len(ckpt.vocab)} characters, the model {model.vocab_size}")
    codes = np.frombuffer(ckpt.vocab.chars.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    arrays = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "vocab": codes.astype(np.uint32),
        "hidden": np.asarray(ckpt.hidden, dtype=np.float64).reshape(model.state_size, -1),
        "smooth_loss": np.array(ckpt.smooth_loss, dtype=np.float64),
        "state": _json_array({
            "iteration": int(ckpt.iteration),
            "position": int(ckpt.position),
            "data_size": int(ckpt.data_size),
            "data_crc32": int(ckpt.data_crc32),
            "core": str(ckpt.core),
            "best_val_bpc": None if ckpt.best_val_bpc is None else float(ckpt.best_val_bpc),
            "best_iteration": None if ckpt.best_iteration is None else int(ckpt.best_iteration),
            "interval_loss": float(ckpt.interval_loss),
            "interval_steps": int(ckpt.interval_steps),
            "adam_steps": int(model.adam_steps),
            "cell": model.cell,
            "optimizer": model.optimizer,
            **({"lr_from": [int(ckpt.lr_from[0]), float(ckpt.lr_from[1])]}
               if ckpt.lr_from is not None else {}),
            **({"dropout_rng": rng_json(model._rng)} if not model.minchar else {}),
        }),
        "rng_state": _json_array(rng_json(ckpt.rng)),
        "hyperparameters": _json_array(ckpt.hyperparameters),
    }
    for name in model.params:
        arrays[f"params.{name}"] = model.params[name]
        arrays[f"memory.{name}"] = model.memory[name]
    for name in model.moment:
        arrays[f"moment.{name}"] = model.moment[name]
    for group in _HISTORY_GROUPS:  # a curve missing from a group reads as NaN
        given = {key: np.asarray(ckpt.history[key]).reshape(-1)
                 for key in group if key in ckpt.history}
        size = max((a.size for a in given.values()), default=0)
        for key in group:
            value = given.get(key, np.full(size, np.nan))
            arrays[f"history.{key}"] = np.asarray(value, dtype=_HISTORY_KEYS[key])
    return arrays


def _checked_arrays(ckpt: Checkpoint, where: str) -> dict:
    """The arrays of ``ckpt``'s file, once they pass the loader's own checks
    (_validate), or ValueError: what would not load is never written."""
    arrays = _arrays(ckpt)
    try:
        _validate(arrays)
    except _PARSE_ERRORS as exc:
        raise ValueError(f"cannot save checkpoint{where}: it would not load "
                         f"({describe(exc)})") from None
    return arrays


def save_checkpoint(path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically: the arrays go to a temporary
    file in the same directory, which is flushed to disk and then renamed over
    ``path`` (_ckptfile.write_atomic; temporary files of ``path`` left by
    writers that died, e.g. killed mid-save, are removed first). On any error
    (or KeyboardInterrupt) the temporary file is removed and an existing file
    at ``path`` is left untouched. What would not load is refused
    (ValueError) before anything is written: the arrays pass through the
    loader's own checks (_validate) first."""
    path = os.fspath(path)
    arrays = _checked_arrays(ckpt, f" {path}")
    write_atomic(path, lambda f: np.savez(f, **arrays))


def checkpoint_bytes(ckpt: Checkpoint) -> bytes:
    """The bytes of the file save_checkpoint writes (checked the same way)."""
    arrays = _checked_arrays(ckpt, "")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# -- what a file may hold: the members (_ckptfile reads them, checked) ------------

_MAX_JSON_BYTES = 2**20      # a JSON member (state, rng_state, hyperparameters), as UTF-32


def _member_limits() -> dict:
    """Every member a checkpoint may hold (stored as ``<name>.npy``) -> the
    most bytes its data may take. The one list of members: the loader refuses
    any other and save_checkpoint checks what it writes against it, so a new
    member needs its line here."""
    limits = {
        "format": 4 * 64, "version": 8, "smooth_loss": 8,
        "vocab": 8 * (_MAX_CODE_POINT + 1),      # one per code point at most
        "hidden": 8 * _MAX_ELEMENTS,             # H * B, one state per stream
        "state": _MAX_JSON_BYTES, "rng_state": _MAX_JSON_BYTES,
        "hyperparameters": _MAX_JSON_BYTES,
    }
    # each within the core's limit on a matrix; a gated model's up to MAX_LAYERS layers
    for name in param_names(1) + tuple(gated_param_names(MAX_LAYERS)):
        for kind in ("params",) + optimizers.SLOTS:
            limits[f"{kind}.{name}"] = 8 * _MAX_ELEMENTS
    for key in _HISTORY_KEYS:  # at most one point per iteration (a C int)
        limits[f"history.{key}"] = 8 * _MAX_ELEMENTS
    return limits


def _max_file_size() -> int:
    """The largest file a checkpoint can be: every member at its limit."""
    return max_file_size(_member_limits())


def _get(arrays: dict, key: str, kind: str, ndim: int | None = None) -> np.ndarray:
    if key not in arrays:
        raise ValueError(f"missing '{key}'")
    arr = arrays[key]
    if arr.dtype.kind not in kind:
        raise ValueError(f"'{key}' has dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"'{key}' has shape {arr.shape}")
    return arr


_MAX_JSON_DEPTH = 32  # nesting of [ and { in a JSON member (rng_state needs 2)
_JSON_SYNTAX = re.compile(r'[\[\]{}"\\]')


def _check_json_depth(text: str, key: str) -> None:
    """ValueError if ``text`` nests arrays and objects more than
    _MAX_JSON_DEPTH deep (json.loads recurses once per level: 100,000 levels
    are a RecursionError, or with a raised recursion limit a C stack
    overflow). Brackets inside strings do not count; the scan lexes strings
    as JSON does up to the first error, where json.loads stops too."""
    depth, in_string, escaped = 0, False, -1
    for match in _JSON_SYNTAX.finditer(text):
        i = match.start()
        if i == escaped:  # the character after a backslash, in a string
            continue
        c = text[i]
        if in_string:
            if c == "\\":
                escaped = i + 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > _MAX_JSON_DEPTH:
                raise ValueError(f"'{key}' nests JSON deeper than {_MAX_JSON_DEPTH} levels")
        elif c in "]}":
            depth -= 1


def _json(arrays: dict, key: str) -> dict:
    text = str(_get(arrays, key, "U", 0))  # at most _MAX_JSON_BYTES (_member_limits)
    _check_json_depth(text, key)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"'{key}' is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"'{key}' is not a JSON object")
    return value


def _nonneg_int(value, what: str, bound: int = 2**63) -> int:
    """An int in [0, bound) (JSON ints are unbounded: bound them before use)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < bound:
        shown = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
        raise ValueError(f"{what} must be an integer in [0, {bound}), got {shown}")
    return value


def _nonneg_number(value, what: str) -> float:
    """A finite non-negative JSON number as a float."""
    try:
        number = float(value) if not isinstance(value, bool) and isinstance(value, (int, float)) \
            else math.nan
    except OverflowError:
        number = math.inf
    if not (math.isfinite(number) and number >= 0):
        shown = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge number"
        raise ValueError(f"{what} must be a finite non-negative number, got {shown}")
    return number


def stored_optimizer(state: dict, kinds: set) -> str:
    """The optimizer a file holds: its state's "optimizer" (a name in
    charrnn_ext.core.optimizers, whose slots must be the file's: a one-slot
    RMSprop is told from Adagrad by name), or for files written before the
    name was stored, inferred from the slots (optimizers.inferred)."""
    slots = kinds & set(optimizers.SLOTS)
    if "optimizer" not in state:
        return optimizers.inferred(slots)
    name = state["optimizer"]
    if not isinstance(name, str) or name not in optimizers.TABLE:
        raise ValueError(f"state's optimizer is {name!r}, not one of "
                         f"{', '.join(optimizers.OPTIMIZERS)}")
    if slots != set(optimizers.get(name).slots):
        raise ValueError(f"state's optimizer {name!r} keeps {', '.join(optimizers.get(name).slots)}"
                         f", the file holds {', '.join(sorted(slots)) or 'no optimizer state'}")
    return name


def _parse(arrays: dict) -> Checkpoint:
    version = _get(arrays, "version", "iu", 0)
    version = int(version)
    if version > FORMAT_VERSION:
        raise ValueError(f"format version {version} is newer than this charrnn_ext reads "
                         f"({FORMAT_VERSION}); upgrade charrnn_ext")
    if version < 1:
        raise ValueError(f"bad format version {version}")
    codes = _get(arrays, "vocab", "iu", 1)
    if codes.size == 0 or codes.min() < 0 or codes.max() > 0x10FFFF:
        raise ValueError("'vocab' holds invalid code points")
    vocab = Vocab(codes.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass"))
    surrogate = vocab.lone_surrogate()
    if surrogate is not None:   # it could be neither printed nor exported as UTF-8
        raise ValueError(f"'vocab' holds U+{ord(surrogate):04X}, a lone surrogate: not a "
                         f"character of any text")
    state = _json(arrays, "state")
    embed = f"params.{EMBED}" in arrays
    optimizer = stored_optimizer(state, {key.split(".")[0] for key in arrays})
    adam = optimizers.has(optimizer, "moment")
    gated = "params.weight_hh_l0" in arrays   # a gated or stacked model: layers from members
    names = gated_param_names(sum(k.startswith("params.weight_hh_l") for k in arrays), embed) \
        if gated else param_names(1 if embed else 0)
    params = {name: _get(arrays, f"params.{name}", "f") for name in names}
    memory = {name: _get(arrays, f"memory.{name}", "f") for name in names}
    moment = {name: _get(arrays, f"moment.{name}", "f") for name in names} if adam else None
    used = {f"{kind}.{name}" for kind in ("params",) + optimizers.get(optimizer).slots
            for name in names}
    stray = sorted(key for key in arrays if key.split(".")[0] in ("params",) + optimizers.SLOTS
                   and key not in used)
    if stray:   # e.g. an embedding's memory beside a one-hot model: not silently dropped
        raise ValueError(f"'{stray[0]}' is not a parameter of the model the file holds "
                         f"({', '.join(names)})")
    adam_steps = _nonneg_int(state.get("adam_steps", 0), "adam_steps", 2**62)
    if adam and adam_steps == 0 and any(np.any(moment[n]) or np.any(memory[n]) for n in names):
        # Adam's moments are zero before its first step; its bias correction
        # would make the next step up to ten times too large
        raise ValueError("Adam's moments are not zero but adam_steps is 0")
    kw = dict(optimizer=optimizer, moment=moment, adam_steps=adam_steps)
    dtype = "float32" if params["weight_hh_l0" if gated else "Whh"].dtype == np.float32 \
        else "float64"   # as saved
    dropout = setting(_json(arrays, "hyperparameters"), "dropout", fraction, "in [0, 1)") \
        if gated else 0.0
    cell = state.get("cell")   # by name (files written before: the gate count tells it)
    if cell is not None and (not isinstance(cell, str) or cell not in cells.CELLS):
        raise ValueError(f"'state' cell must be one of {', '.join(cells.NAMES)}, "
                         f"got {str(cell)[:40]!r}")
    model = CharRNN.from_params(params, memory, dropout or 0.0, cell=cell, dtype=dtype, **kw)
    if "dropout_rng" in state and not model.minchar:
        model._rng = restore_rng(state["dropout_rng"])
    if model.vocab_size != len(vocab):
        raise ValueError(f"the parameters are for {model.vocab_size} characters, "
                         f"the vocabulary has {len(vocab)}")
    H = model.state_size
    hidden = _get(arrays, "hidden", "f")
    if hidden.ndim == 1:          # version 1, or one stream
        hidden = hidden.reshape(-1, 1)
    if hidden.ndim != 2 or hidden.shape[0] != H or hidden.shape[1] < 1:
        raise ValueError(f"'hidden' must be (H, streams) = ({H}, B), got shape {hidden.shape}")
    hidden = np.array(hidden, dtype=np.float64, order="C")
    if not np.all(np.isfinite(hidden)):
        raise ValueError("'hidden' holds NaN or infinite values")
    smooth_loss = float(_get(arrays, "smooth_loss", "f", 0))
    if not (math.isfinite(smooth_loss) and smooth_loss >= 0):  # a mean of cross-entropies
        raise ValueError(f"the smoothed loss must be finite and non-negative, got {smooth_loss!r}")
    iteration = _nonneg_int(state.get("iteration"), "iteration")
    position = _nonneg_int(state.get("position"), "position")
    data_size = _nonneg_int(state.get("data_size", 0), "data_size")
    data_crc32 = _nonneg_int(state.get("data_crc32", 0), "data_crc32", 2**32)
    core = state.get("core", "")
    if not isinstance(core, str):
        raise ValueError(f"core must be a string, got {core!r}")
    best_val_bpc, best_iteration = state.get("best_val_bpc"), state.get("best_iteration")
    if best_val_bpc is not None:
        best_val_bpc = _nonneg_number(best_val_bpc, "best_val_bpc")
    if best_iteration is not None:
        best_iteration = _nonneg_int(best_iteration, "best_iteration", iteration + 1)
    interval_loss = _nonneg_number(state.get("interval_loss", 0.0), "interval_loss")
    interval_steps = _nonneg_int(state.get("interval_steps", 0), "interval_steps", iteration + 1)
    lr_from = state.get("lr_from")
    if lr_from is not None:
        if not isinstance(lr_from, list) or len(lr_from) != 2:
            raise ValueError(f"lr_from must be [iteration, rate], got {repr(lr_from)[:40]}")
        lr_from = (_nonneg_int(lr_from[0], "lr_from's iteration", iteration + 1),
                   _nonneg_number(lr_from[1], "lr_from's rate"))
        if lr_from[1] == 0:
            raise ValueError("lr_from's rate must be positive, got 0")
    rng = restore_rng(_json(arrays, "rng_state"))
    hyperparameters = _json(arrays, "hyperparameters")
    history = {}
    for group in _HISTORY_GROUPS:
        size = None
        for key in group:
            dtype = _HISTORY_KEYS[key]
            if f"history.{key}" not in arrays and key in _HISTORY_ADDED_IN_V2 and version < 2:
                continue  # filled below, once the group's length is known
            arr = arrays.get(f"history.{key}", np.zeros(0, dtype=dtype))
            if arr.ndim != 1 or arr.dtype.kind not in ("iu" if dtype is np.int64 else "f"):
                raise ValueError(f"'history.{key}' has the wrong type")
            if size is not None and arr.size != size:
                raise ValueError("the loss history is inconsistent")
            size = arr.size
            history[key] = arr.astype(dtype)
        for key in group:
            history.setdefault(key, np.full(size or 0, np.nan))
    ckpt = Checkpoint(
        model=model, vocab=vocab, iteration=iteration, position=position,
        hidden=hidden, smooth_loss=smooth_loss,
        rng=rng, hyperparameters=hyperparameters, history=history,
        data_size=data_size, data_crc32=data_crc32, core=core,
        best_val_bpc=best_val_bpc, best_iteration=best_iteration,
        interval_loss=float(interval_loss), interval_steps=interval_steps, lr_from=lr_from,
        version=version,
    )
    check_agreement(ckpt)
    return ckpt


# What _parse raises on contents it cannot accept.
_PARSE_ERRORS = (ValueError, KeyError, TypeError, OverflowError, AttributeError)


def _validate(arrays: dict) -> Checkpoint:
    """The checkpoint ``arrays`` hold, or an error from _PARSE_ERRORS: what
    load_checkpoint accepts, and so what save_checkpoint may write (one code
    path for both: a file saved always loads)."""
    limits = _member_limits()
    for name, arr in arrays.items():
        check_member(name, arr.dtype, arr.shape, limits)
    return _parse(arrays)


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by ``python -m charrnn_ext.train --checkpoint``.

    Returns a :class:`Checkpoint`: ``.model`` (a CharRNN), ``.vocab`` (a
    Vocab) and the training state. A missing path raises FileNotFoundError,
    a directory IsADirectoryError, an unreadable file another OSError; a file
    that is corrupt, truncated or not a charrnn_ext checkpoint raises
    ValueError with a one-line message naming the file. Nothing in the file
    is ever executed (no pickle).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"checkpoint {path} is a directory")
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    arrays = read_arrays(path, _member_limits(), FORMAT_NAME)
    try:
        return _validate(arrays)
    except _PARSE_ERRORS as exc:
        raise ValueError(f"{path} is a damaged or incompatible checkpoint: "
                         f"{describe(exc)}") from None
