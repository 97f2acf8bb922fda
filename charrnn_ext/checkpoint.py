"""Training checkpoints: everything needed to continue a run, as plain data.

A checkpoint is an uncompressed ``.npz`` archive (``np.savez``) of numeric and
string arrays only: it is read with ``np.load(..., allow_pickle=False)``, so
loading a file from a stranger cannot run code. Members:

    format            str    FORMAT_NAME (identifies the file)
    version           int64  FORMAT_VERSION
    vocab             uint32 (V,)  code points of the vocabulary, sorted
    params.<name>     float64      Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1)
    memory.<name>     float64      the Adagrad memory, same shapes
    hidden            float64 (H,) hidden state carried into the next step
    smooth_loss       float64      the smoothed loss
    state             str    JSON: iteration, position (the data pointer p),
                                   data_size, data_crc32 of the training text,
                                   core (the build of the Cython core used)
    rng_state         str    JSON: the sampling Generator's bit_generator.state
    hyperparameters   str    JSON: the training run's settings
    history.*         arrays of the loss curves (for --plot)

Files are written atomically (a temporary file in the same directory, then
``os.replace``), so a crash or Ctrl-C while saving leaves the previous
checkpoint intact.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .model import CharRNN
from .spec import PARAM_NAMES
from .vocab import Vocab

FORMAT_NAME = "charrnn_ext checkpoint"
FORMAT_VERSION = 1

# Bit generators a checkpoint may name (a whitelist: never getattr on file data).
_BIT_GENERATORS = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
    "MT19937": np.random.MT19937,
}

_HISTORY_KEYS = {
    "iteration": np.int64,     # iterations at which the smoothed loss was recorded
    "smooth_loss": np.float64,  # the smoothed loss (nats per chunk) there
    "val_iteration": np.int64,  # iterations at which validation was measured
    "val_bpc": np.float64,      # validation bits per character there
}


def empty_history() -> dict:
    """Empty loss curves, in the layout a Checkpoint keeps them."""
    return {key: np.zeros(0, dtype=dtype) for key, dtype in _HISTORY_KEYS.items()}


@dataclass
class Checkpoint:
    """The state of a training run.

    ``model`` (a CharRNN with its Adagrad memory) and ``vocab`` are what the
    sampler needs; the rest lets ``python -m charrnn_ext.train --resume``
    continue bit-identically: ``iteration`` (steps done), ``position`` (the
    data pointer p of the next chunk), ``hidden`` (H, 1), ``smooth_loss``,
    ``rng`` (the sampling Generator, in its saved state), the run's
    ``hyperparameters``, the loss ``history``, ``data_size`` and
    ``data_crc32`` of the text and ``core``, the build of the Cython core
    that trained it (bit-identical resumption needs the same one).
    """

    model: CharRNN
    vocab: Vocab
    iteration: int = 0
    position: int = 0
    hidden: np.ndarray | None = None
    smooth_loss: float = float("nan")
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    hyperparameters: dict = field(default_factory=dict)
    history: dict = field(default_factory=empty_history)
    data_size: int = 0
    data_crc32: int = 0
    core: str = ""
    version: int = FORMAT_VERSION

    def __post_init__(self):
        if self.hidden is None:
            self.hidden = np.zeros((self.model.hidden_size, 1))

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
        "hidden": np.asarray(ckpt.hidden, dtype=np.float64).reshape(-1),
        "smooth_loss": np.array(ckpt.smooth_loss, dtype=np.float64),
        "state": _json_array({
            "iteration": int(ckpt.iteration),
            "position": int(ckpt.position),
            "data_size": int(ckpt.data_size),
            "data_crc32": int(ckpt.data_crc32),
            "core": str(ckpt.core),
        }),
        "rng_state": _json_array(ckpt.rng.bit_generator.state),
        "hyperparameters": _json_array(ckpt.hyperparameters),
    }
    for name in PARAM_NAMES:
        arrays[f"params.{name}"] = model.params[name]
        arrays[f"memory.{name}"] = model.memory[name]
    for key, dtype in _HISTORY_KEYS.items():
        arrays[f"history.{key}"] = np.asarray(ckpt.history.get(key, ()), dtype=dtype).reshape(-1)
    return arrays


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_checkpoint(path, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically: the arrays go to a temporary
    file in the same directory, which is flushed to disk and then renamed over
    ``path``. On any error (or KeyboardInterrupt) the temporary file is
    removed and an existing file at ``path`` is left untouched."""
    path = os.fspath(path)
    arrays = _arrays(ckpt)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates files 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); harmless where unsupported
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _read_arrays(path: str) -> dict:
    """The arrays of the archive at ``path``, or ValueError. Any exception
    while parsing the file's bytes means a damaged or foreign file (numpy's
    header parser alone can raise SyntaxError, tokenize.TokenError, ...), so
    all of them become one clear ValueError."""
    with open(path, "rb") as f:  # OSError (e.g. PermissionError) propagates
        head = f.read(4)
    if head != b"PK\x03\x04":  # every .npz (zip) archive starts so
        what = "empty" if not head else "not an .npz archive"
        raise ValueError(f"{path} is not a charrnn_ext checkpoint ({what})")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every member, checking its CRC-32
        if bad is not None:
            raise ValueError(f"member {bad} fails its CRC check")
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 -- see the docstring
        raise ValueError(f"{path} is a damaged or truncated checkpoint ({_describe(exc)})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is not a charrnn_ext checkpoint (not an .npz archive)")
    with loaded:
        try:
            fmt = loaded["format"] if "format" in loaded.files else None
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path} is a damaged checkpoint ({_describe(exc)})") from None
        if fmt is None or fmt.dtype.kind != "U" or fmt.shape != () or str(fmt) != FORMAT_NAME:
            raise ValueError(f"{path} is not a charrnn_ext checkpoint (no format marker)")
        try:
            return {key: loaded[key] for key in loaded.files}
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{path} is a damaged checkpoint ({_describe(exc)})") from None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _get(arrays: dict, key: str, kind: str, ndim: int | None = None) -> np.ndarray:
    if key not in arrays:
        raise ValueError(f"missing '{key}'")
    arr = arrays[key]
    if arr.dtype.kind not in kind:
        raise ValueError(f"'{key}' has dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"'{key}' has shape {arr.shape}")
    return arr


def _json(arrays: dict, key: str) -> dict:
    try:
        value = json.loads(str(_get(arrays, key, "U", 0)))
    except json.JSONDecodeError:
        raise ValueError(f"'{key}' is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError(f"'{key}' is not a JSON object")
    return value


def _nonneg_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def _restore_rng(state: dict) -> np.random.Generator:
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown random generator {name!r}")
    bit_generator = _BIT_GENERATORS[name]()
    try:
        bit_generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError):
        raise ValueError(f"'rng_state' is not a valid {name} state") from None
    return np.random.Generator(bit_generator)


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
    params = {name: _get(arrays, f"params.{name}", "f") for name in PARAM_NAMES}
    memory = {name: _get(arrays, f"memory.{name}", "f") for name in PARAM_NAMES}
    model = CharRNN.from_params(params, memory)
    if model.vocab_size != len(vocab):
        raise ValueError(f"the parameters are for {model.vocab_size} characters, "
                         f"the vocabulary has {len(vocab)}")
    H = model.hidden_size
    hidden = _get(arrays, "hidden", "f", 1)
    if hidden.shape != (H,) or not np.all(np.isfinite(hidden)):
        raise ValueError(f"'hidden' must be {H} finite numbers")
    smooth_loss = float(_get(arrays, "smooth_loss", "f", 0))
    if not math.isfinite(smooth_loss):
        raise ValueError("the smoothed loss is not finite")
    state = _json(arrays, "state")
    iteration = _nonneg_int(state.get("iteration"), "iteration")
    position = _nonneg_int(state.get("position"), "position")
    data_size = _nonneg_int(state.get("data_size", 0), "data_size")
    data_crc32 = _nonneg_int(state.get("data_crc32", 0), "data_crc32")
    core = state.get("core", "")
    if not isinstance(core, str):
        raise ValueError(f"core must be a string, got {core!r}")
    rng = _restore_rng(_json(arrays, "rng_state"))
    hyperparameters = _json(arrays, "hyperparameters")
    history = {}
    for key, dtype in _HISTORY_KEYS.items():
        arr = arrays.get(f"history.{key}", np.zeros(0, dtype=dtype))
        if arr.ndim != 1 or arr.dtype.kind not in ("iu" if dtype is np.int64 else "f"):
            raise ValueError(f"'history.{key}' has the wrong type")
        history[key] = arr.astype(dtype)
    if history["iteration"].size != history["smooth_loss"].size or \
            history["val_iteration"].size != history["val_bpc"].size:
        raise ValueError("the loss history is inconsistent")
    return Checkpoint(
        model=model, vocab=vocab, iteration=iteration, position=position,
        hidden=np.array(hidden, dtype=np.float64).reshape(H, 1), smooth_loss=smooth_loss,
        rng=rng, hyperparameters=hyperparameters, history=history,
        data_size=data_size, data_crc32=data_crc32, core=core, version=version,
    )


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
    arrays = _read_arrays(path)
    try:
        return _parse(arrays)
    except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as exc:
        raise ValueError(f"{path} is a damaged or incompatible checkpoint: {_describe(exc)}") from None
