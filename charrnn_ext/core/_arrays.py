"""The core's buffers of reals (float64, or float32): real-dtype checks, fixed storage, and the views handed out."""
from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Mapping

import numpy as np

from ._dispatch import core_for, cores
from .spec import check_real_dtype


_MAX_ELEMENTS = 2**31 - 1  # the core indexes matrices with C ints


def _first_invalid(arr: np.ndarray, nonnegative: bool = False):
    """The index (a tuple) of the first NaN or infinite entry of ``arr`` (with
    ``nonnegative``, or negative one), or None. A NaN or infinity anywhere
    makes the sum non-finite (so may overflow: then the entries are looked
    at one by one). numpy's own sum, not BLAS's dot: on a large model a
    multithreaded dot ran 50 times slower beside the core's threads. The
    caller silences numpy's floating-point warnings (overflow, inf - inf)."""
    flat = arr.reshape(-1)
    total = float(np.add.reduce(flat))
    if total - total == 0.0 and not (nonnegative and flat.min() < 0.0):
        return None
    bad = ~np.isfinite(flat)
    if nonnegative:
        bad |= flat < 0.0
    if not bad.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))


def _check_size(vocab_size: int, hidden_size: int, embedding_size: int = 0) -> None:
    """ValueError unless every matrix of such a model fits the core's limit."""
    D = embedding_size
    for what, size in (("vocab_size * hidden_size", vocab_size * hidden_size),
                       ("hidden_size * hidden_size", hidden_size * hidden_size),
                       ("vocab_size * embedding_size", vocab_size * D),
                       ("hidden_size * embedding_size", hidden_size * D)):
        if size > _MAX_ELEMENTS:
            raise ValueError(
                f"{what} = {size:,} is too large "
                f"(the core handles matrices of up to {_MAX_ELEMENTS:,} elements)"
            )


def _real_array(values, what: str) -> np.ndarray:
    """``values`` as an ndarray passing check_real_dtype (not yet copied).
    Masked arrays are refused: np.asarray would silently drop the mask."""
    if isinstance(values, np.ma.MaskedArray):
        raise TypeError(f"{what} must be a plain array, not a masked array (the mask would be ignored)")
    arr = np.asarray(values)
    check_real_dtype(arr.dtype, what)
    return arr


def _storage(shape, dtype=np.float64) -> np.ndarray:
    """A zeroed C-contiguous array of ``shape`` (float64, or float32 for the
    float32 build of the core) for the core to hold.

    Its memory belongs to a core Storage object (fixed-size memory, freed only
    with the object), so the array and every view of it do not own their
    data and cannot be resized, not even with ``refcheck=False``, and
    releasing the memoryview numpy keeps as the array's base frees nothing:
    the model keeps each Storage referenced (``_storages``), so the core's
    pointers into it stay valid for the model's lifetime."""
    return np.frombuffer(core_for(dtype).Storage(math.prod(shape)),
                         dtype=dtype).reshape(shape)


def _dtype_of(storage) -> np.dtype:
    """The dtype of the reals a Storage holds (its build's REAL)."""
    return np.dtype(memoryview(storage).format)


def _owner(arr: np.ndarray):
    """The Storage under an array made by _storage (numpy's base chain ends in
    a memoryview of it); taken while the array is still private."""
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if not isinstance(base, tuple(c.Storage for c in cores)):
        raise RuntimeError("an array the core holds is not in core Storage")
    return base


def readonly_view(arr: np.ndarray) -> np.ndarray:
    """A 1-D view of the Storage under ``arr`` (from _storage) through a
    read-only buffer: numpy refuses setflags(write=True) on it (a view
    whose writeable flag was merely cleared can be made writable again, and
    the core reads its gradients back: grads['Wxh']'s zero columns)."""
    return np.frombuffer(memoryview(_owner(arr)).toreadonly(), dtype=arr.dtype)


class _Handouts:
    """Which of a model's params and memory arrays may have been written from
    Python since they were last checked: those whose views were handed out
    since, or are still alive.

    Each view handed out sits on a fresh memoryview of the array's Storage,
    which every array derived from the view (slices, reshapes, np.asarray,
    memoryviews) keeps alive; a weak reference to it tells whether any of
    them still exists. So the model checks an array's values before a call
    only when they may have changed, and before every call while a view is
    kept: checking all ten arrays every call would cost about a quarter of a
    train_step of min-char-rnn's size (32 of 134 us), this costs ~0.2 us
    when no view was handed out."""

    __slots__ = ("handed", "checked", "live", "everything", "_serial")

    def __init__(self):
        self.handed = {}          # key -> serial number of its last view handed out
        self.checked = {}         # key -> handed[key] when its values were last found valid
        self.live = {}            # token -> (key, weakref), while that view (or one
        #                           derived from it) is alive
        self.everything = False   # check every array at the next call (training diverged)
        self._serial = itertools.count(1)

    def view(self, key, storage, shape, offset: int = 0) -> np.ndarray:
        """A fresh writable view of ``shape`` at element ``offset`` of storage."""
        dtype = _dtype_of(storage)
        arr = np.frombuffer(memoryview(storage), dtype=dtype, count=math.prod(shape),
                            offset=offset * dtype.itemsize).reshape(shape)
        root = arr
        while isinstance(root, np.ndarray):
            root = root.base
        token = next(self._serial)
        live = self.live
        # the callback holds the weak reference: live maps the token to (key, ref)
        live[token] = (key, weakref.ref(root, lambda _, t=token: live.pop(t, None)))
        self.handed[key] = token
        return arr

    def clean(self) -> bool:
        """Nothing to check: no view alive, none handed out since the last check."""
        return not (self.live or self.everything) and self.handed == self.checked

    def pending(self, keys) -> tuple[list, dict]:
        """(the keys among ``keys`` to check now, what ``checked`` becomes after
        they pass): serial numbers taken before the check, so that a view
        handed out meanwhile is checked at the next call."""
        handed = dict(self.handed)
        alive = {key for key, _ in tuple(self.live.values())}
        todo = [k for k in keys if self.everything or k in alive
                or handed.get(k, 0) != self.checked.get(k, 0)]
        return todo, handed


class _ArrayViews(Mapping):
    """A read-only mapping name -> a fresh view of one of the model's arrays.

    Each lookup returns a new view: its values are the model's (the core
    updates them in place). params and memory: entries can be changed in
    place, and the model checks them before its next call (_Handouts);
    grads: read-only. Changing the view's shape, strides or dtype changes
    only that view, never the arrays the core reads or the sizes it was
    built for."""

    __slots__ = ("_arrays", "_kind", "_handouts")

    def __init__(self, arrays: dict, kind: str, handouts):
        self._arrays, self._kind, self._handouts = arrays, kind, handouts

    def __getitem__(self, name: str) -> np.ndarray:
        arr = self._arrays[name]     # a view of part of one Storage (the model's flat array)
        whole = readonly_view(arr)
        at = (arr.__array_interface__["data"][0]
              - whole.__array_interface__["data"][0]) // arr.itemsize
        if self._handouts is None:   # grads: read-only for good
            return whole[at:at + arr.size].reshape(arr.shape)
        return self._handouts.view((self._kind, name), _owner(arr), arr.shape, at)

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return repr(dict(self))


def hidden_shape_error(shape, H: int, B: int, batched: bool) -> str:
    """Why an hprev of ``shape`` does not fit B streams of H units (batched:
    2-D inputs): CharRNN's message for a hidden state of the wrong shape."""
    if batched and B > 1:
        if shape in ((H, 1), (H,)):
            return (f"hprev has shape {shape}, one hidden state, but the inputs hold "
                    f"B = {B} streams: pass hprev of shape ({H}, {B}), one column per stream")
        return f"hprev must have shape ({H}, {B}) (H, B) for B = {B} streams, got {shape}"
    if not batched and len(shape) == 2 and shape[0] == H and shape[1] > 1:
        return (f"hprev must have shape ({H}, 1) or ({H},) for 1-D inputs, got {shape}; "
                "for B streams pass inputs and targets of shape (B, T)")
    return f"hprev must have shape ({H}, 1) or ({H},), got {shape}"
