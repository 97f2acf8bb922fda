"""What callers hand the core besides arrays of reals: ids, sizes and scalars, checked (private int32 copies of ids)."""
from __future__ import annotations

import math
import numbers

import numpy as np

from ._dispatch import core as _core
from . import optimizers
from .spec import DTYPES, INITS

_INT32 = np.dtype(np.int32)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _plain_array(values, name: str, ragged: str) -> np.ndarray:
    """np.asarray(values) for ids, refusing masked arrays and strings; ``ragged``
    is the message for nested sequences of different lengths."""
    if isinstance(values, np.ma.MaskedArray):
        raise TypeError(f"{name} must be a plain integer array, not a masked array")
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of integer ids, not {type(values).__name__}")
    try:
        return np.asarray(values)
    except ValueError as exc:  # numpy refuses ragged nested sequences
        raise ValueError(ragged) from exc


def _as_ids(values, name: str, vocab_size: int, allow_empty: bool = False,
            streams: bool = False) -> np.ndarray:
    """A private C-contiguous int32 copy of ids in [0, vocab_size), or a clear error:
    1-D (T,), or with ``streams`` also 2-D (B, T), B streams of T ids.

    Always a copy: the core reads the ids with the GIL released and without
    bounds checks, so the array it reads must be one no other thread can
    change (or resize) after it was checked.
    """
    ndims = (1, 2) if streams else (1,)
    if (type(values) is np.ndarray and values.dtype == _INT32 and values.ndim in ndims
            and values.size):
        arr = np.array(values, order="C", copy=True)  # the common case (slices of an encoded text)
    else:
        arr = _plain_array(values, name, f"{name} must be a (B, T) array of ids: its rows "
                           "differ in length" if streams else f"{name} must be a 1-D sequence of ids")
        if arr.ndim not in ndims:
            if arr.ndim == 0:
                raise ValueError(f"{name} must be a 1-D sequence of ids, got a scalar")
            if streams:
                raise ValueError(f"{name} must be 1-D (T,) or 2-D (B streams, T), got shape {arr.shape}")
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if arr.ndim == 2 and arr.shape[0] == 0:
            raise ValueError(f"{name} has shape {arr.shape}: no streams (B = 0)")
        if arr.size == 0:
            if allow_empty:
                return np.zeros(0, dtype=np.int32)
            raise ValueError(f"{name} is empty: a chunk needs at least one id")
        if arr.dtype.kind not in "iu":
            if streams and arr.dtype == object and any(np.ndim(v) for v in arr.flat):
                raise ValueError(f"{name} must be a (B, T) array of ids: its rows differ in length")
            raise TypeError(f"{name} must be integer ids, got dtype {arr.dtype}")
        if arr.dtype != _INT32:
            lo, hi = arr.min(), arr.max()
            if lo < 0 or hi >= vocab_size:
                bad = int(np.flatnonzero((arr < 0) | (arr >= vocab_size))[0])
                raise _id_error(name, arr, bad, vocab_size)
        arr = np.array(arr, dtype=np.int32, order="C", copy=True)
    bad = _core.first_invalid_id(arr.reshape(-1), vocab_size)
    if bad >= 0:
        raise _id_error(name, arr, bad, vocab_size)
    return arr


def _id_vector(values, name: str) -> np.ndarray:
    """values as a 1-D integer ndarray in native byte order, not copied where
    it already is one (CharRNN.train reads only the ids its steps read, into
    private copies: _core.scan_ids, _core.copy_window)."""
    arr = _plain_array(values, name, f"{name} must be a 1-D sequence of ids")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: a chunk needs at least one id")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer ids, got dtype {arr.dtype}")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _id_error(name: str, arr: np.ndarray, flat_index: int, vocab_size: int) -> ValueError:
    """The error for the id at ``flat_index`` of ``arr``, named by its index."""
    index = np.unravel_index(flat_index, arr.shape)
    where = ", ".join(str(int(i)) for i in index)
    return ValueError(f"{name}[{where}] = {arr[index]} is outside [0, {vocab_size})")


def _as_learning_rate(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"learning_rate must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"learning_rate must be finite and positive, got {value}")
    return value


def _embedding_size(value) -> int:
    """An embedding width: 0 (none) or a positive int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"embedding_size must be a non-negative integer, got {value!r}")
    return int(value)


def _optimizer(value) -> str:
    """An optimiser's name (charrnn_ext.core.optimizers)."""
    return optimizers.get(value).name


def _dtype(value) -> np.dtype:
    """A compute dtype: float64 or float32 (charrnn_ext.core.spec.DTYPES)."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {value!r}")
    return dtype


def _seed(seed):
    """A seed of the initial weights: None or an integer in [0, 2**32)."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"seed must be None or an integer, got {seed!r}")
        if not 0 <= seed < 2**32:
            raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return seed


def _init(value) -> str:
    """An initialisation's name (charrnn_ext.core.spec.INITS)."""
    if value not in INITS:
        raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}, got {value!r}")
    return value


def _optimizer_state(optimizer, moment, adam_steps) -> tuple[str, int]:
    """(optimizer, adam_steps) checked together: moment and adam_steps are Adam's
    (an optimizer with the slot "moment" and counts_steps)."""
    opt = optimizers.get(optimizer)
    if (moment is not None and "moment" not in opt.slots) or (adam_steps and not opt.counts_steps):
        raise ValueError(f"moment and adam_steps belong to optimizer='adam', not {opt.name!r}")
    optimizer = opt.name
    if isinstance(adam_steps, bool) or not isinstance(adam_steps, numbers.Integral) \
            or not 0 <= adam_steps < 2**62:
        raise ValueError(f"adam_steps must be a non-negative integer, got {adam_steps!r}")
    return optimizer, int(adam_steps)


def _top(top_k, top_p) -> tuple[int, float]:
    """sample's filters checked: top_k an integer >= 0 (0: every id), top_p a
    number in (0, 1] (1: every id)."""
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or not 0 <= top_k < 2**31:
        raise ValueError(f"top_k must be a non-negative integer (0: off), got {top_k!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be a number in (0, 1] (1: off), got {top_p!r}")
    return int(top_k), float(top_p)


def _draws(rng, n: int) -> np.ndarray:
    """sample's draws: a private float64 copy of exactly n uniforms in [0, 1)
    from ``rng`` (a numpy Generator, an int seed or None): the core reads n of
    them without bounds checks, and rng may be any Generator subclass."""
    if not isinstance(rng, np.random.Generator):
        try:
            rng = np.random.default_rng(rng)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"rng must be a numpy Generator, an int seed or None, "
                            f"got {rng!r}") from exc
    drawn = rng.random(n)
    uniforms = np.array(drawn, dtype=np.float64, order="C", copy=True) \
        if type(drawn) is np.ndarray else None
    if uniforms is None or uniforms.shape != (n,) or not (
            n == 0 or (uniforms.min() >= 0.0 and uniforms.max() < 1.0)):
        raise ValueError(f"rng.random({n}) must give {n} floats in [0, 1)")
    return uniforms
