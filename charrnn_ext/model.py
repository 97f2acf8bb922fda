"""CharRNN: the min-char-rnn model on the Cython core, with validated inputs.

Every array handed to ``charrnn_ext._core`` is checked here (dtype, shape,
contiguity, id range, finiteness) and is a private copy: the core runs
without bounds checks and with the GIL released. The model's own params and
memory, which users may change in place through the views ``params`` and
``memory`` hand out, are checked before any call that may follow such a
change (_Handouts). CharRNN.train reads the user's ids only inside the
core's scan_ids / copy_window, with the GIL held throughout, so that no
other Python thread changes or frees them meanwhile.
"""
from __future__ import annotations

import itertools
import math
import numbers
import threading
import time
import weakref
from collections.abc import Mapping

import numpy as np

from ._dispatch import core as _core
from .defaults import ADAGRAD_EPS, CLIP, HIDDEN_SIZE, LEARNING_RATE, SEQ_LENGTH
from .spec import PARAM_NAMES, init_params, param_shapes


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


_MAX_ELEMENTS = 2**31 - 1  # the core indexes matrices with C ints
_TRAIN_BLOCK_SECONDS = 0.1  # train() returns to Python about this often (Ctrl-C is seen there)
_INT32 = np.dtype(np.int32)
_FLOAT64 = np.dtype(np.float64)


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


def _check_size(vocab_size: int, hidden_size: int) -> None:
    for what, size in (("vocab_size * hidden_size", vocab_size * hidden_size),
                       ("hidden_size * hidden_size", hidden_size * hidden_size)):
        if size > _MAX_ELEMENTS:
            raise ValueError(
                f"{what} = {size:,} is too large "
                f"(the core handles matrices of up to {_MAX_ELEMENTS:,} elements)"
            )


def check_real_dtype(dtype: np.dtype, what: str) -> None:
    """TypeError unless ``dtype`` holds real numbers that float64 represents
    without overflow: integers and float16/32/64. Refused: bool, complex,
    strings, objects, records, and floats wider than float64 (a float128
    holding 1e400 would become inf in the cast, after any finiteness check
    made before it). The one rule for every array that becomes float64 model
    state: from_params (params, memory), hprev, and every numeric member of a
    checkpoint (charrnn_ext.checkpoint)."""
    if not (dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize <= 8)):
        raise TypeError(f"{what} must be a real array (integers or float16/32/64), "
                        f"got dtype {dtype}")


def _real_array(values, what: str) -> np.ndarray:
    """``values`` as an ndarray passing check_real_dtype (not yet copied).
    Masked arrays are refused: np.asarray would silently drop the mask."""
    if isinstance(values, np.ma.MaskedArray):
        raise TypeError(f"{what} must be a plain array, not a masked array (the mask would be ignored)")
    arr = np.asarray(values)
    check_real_dtype(arr.dtype, what)
    return arr


def _storage(shape) -> np.ndarray:
    """A zeroed C-contiguous float64 array of ``shape`` for the core to hold.

    Its memory belongs to a core Storage object (fixed-size memory, freed only
    with the object), so the array and every view of it do not own their
    data and cannot be resized, not even with ``refcheck=False``, and
    releasing the memoryview numpy keeps as the array's base frees nothing:
    the model keeps each Storage referenced (``_storages``), so the core's
    pointers into it stay valid for the model's lifetime."""
    return np.frombuffer(_core.Storage(math.prod(shape)), dtype=np.float64).reshape(shape)


def _owner(arr: np.ndarray):
    """The Storage under an array made by _storage (numpy's base chain ends in
    a memoryview of it); taken while the array is still private."""
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if not isinstance(base, _core.Storage):
        raise RuntimeError("an array the core holds is not in core Storage")
    return base


class TrainingDiverged(FloatingPointError):
    """A training step's loss was NaN or infinite (CharRNN.train, train_step).

    The core applies a step's update in the same pass that computes its loss,
    so when this is raised the steps of the call up to and including the
    diverged one have been applied: the parameters are then usually no
    longer finite, and the model's later calls refuse them (ValueError)
    until they are replaced. Attributes, the call's results up to there:

    losses    the loss of each step the call ran, the non-finite one last
              (train_step: an array of its one loss)
    hidden    the hidden states after the diverged step, shaped as the call
              returns them
    position  train: the position of the next step, as train returns it;
              train_step: None
    """

    def __init__(self, message: str, losses, hidden, position=None):
        super().__init__(message)
        self.losses, self.hidden, self.position = losses, hidden, position

    def __reduce__(self):   # picklable (e.g. from a worker process)
        return type(self), (str(self), self.losses, self.hidden, self.position)


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

    def view(self, key, storage, shape) -> np.ndarray:
        arr = np.frombuffer(memoryview(storage), dtype=np.float64).reshape(shape)
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
        arr = self._arrays[name]
        if self._handouts is None:   # read-only: the core's output, never read back by it
            view = np.frombuffer(memoryview(_owner(arr)).toreadonly(), dtype=np.float64)
            return view.reshape(arr.shape)
        return self._handouts.view((self._kind, name), _owner(arr), arr.shape)

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return repr(dict(self))


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


class _ThreadChoice:
    """How many threads a model's training calls use: all the core may use
    (charrnn_ext.set_num_threads) or one, whichever trained faster lately.

    Both give the same results bit for bit; which is faster depends on the
    machine: on a busy one a step split over two threads waits for whichever
    of them the scheduler runs last, and ran several times slower than on
    one thread (benchmarks/bench_busy.py); where the two cores share no cache
    the split gains little. So both ways are timed as training goes, in
    samples of at least SAMPLE_SECONDS (the first call each way, which starts
    threads, is not counted); a way's speed is the best of its last RECENT
    samples (one slow sample is noise; RECENT slow ones are load).
    WARMUP_SAMPLES of each way in turn, then the faster way -- more threads
    only if faster by 1 - MARGIN: where they gain little, one thread leaves a
    CPU to others and is the steadier under load -- with one sample of the
    other way (train: on a short call) after a growing stretch of training:
    FIRST_PROBE_SECONDS, doubling up to PROBE_SECONDS."""

    SAMPLE_SECONDS = 0.004      # a measurement: at least this long
    RECENT = 3                  # a way's speed: the best of its last RECENT samples
    WARMUP_SAMPLES = 2          # samples of each way before choosing
    FIRST_PROBE_SECONDS = 0.05  # training time before the first look at the other way
    PROBE_SECONDS = 1.0         # the longest stretch between two looks
    MARGIN = 0.9                # more threads when below MARGIN x one thread's time

    def __init__(self):
        self.available = None   # the thread count the estimates are for
        self.reset(None)

    def reset(self, available) -> None:
        self.available = available
        self.recent = {}        # threads -> seconds per step of the last samples
        self.started = set()    # the ways that have run once (not counted)
        self.mode, self.probing = available, False
        self.sample_time = self.sample_steps = 0.0
        self.since_probe, self.probe_every = 0.0, self.FIRST_PROBE_SECONDS

    @property
    def seconds(self) -> dict:
        """threads -> the estimated seconds per step."""
        return {n: min(v) for n, v in self.recent.items()}

    def pick(self, available: int) -> int:
        """Threads for the next call (1 <= threads <= available)."""
        if available < 2:
            return 1
        if available != self.available:          # first call, or new thread settings
            self.reset(available)
        if self.sample_steps == 0 and not self.probing:   # between samples: choose
            n_many = len(self.recent.get(available, ()))
            n_one = len(self.recent.get(1, ()))
            if min(n_many, n_one) < self.WARMUP_SAMPLES:
                self.mode = available if n_many <= n_one else 1
                self.since_probe = 0.0
            else:
                seconds = self.seconds
                fast = seconds[available] < self.MARGIN * seconds[1]
                best = available if fast else 1
                self.mode = best
                if self.since_probe >= self.probe_every:
                    self.mode, self.probing = (available if best == 1 else 1), True
                    self.since_probe = 0.0
                    self.probe_every = min(2 * self.probe_every, self.PROBE_SECONDS)
        return self.mode

    def record(self, threads: int, seconds: float, steps: int) -> None:
        """A call of ``steps`` steps on ``threads`` threads took ``seconds``."""
        self.since_probe += seconds
        if threads not in self.started:
            self.started.add(threads)
            return
        if threads != self.mode or steps <= 0:
            return
        self.sample_time += seconds
        self.sample_steps += steps
        if self.sample_time >= self.SAMPLE_SECONDS:
            last = self.recent.setdefault(threads, [])
            last.append(self.sample_time / self.sample_steps)
            del last[:-self.RECENT]
            self.sample_time = self.sample_steps = 0.0
            if self.probing:          # the stretch to the next look starts now
                self.probing, self.since_probe = False, 0.0

    def short_call(self, block: int) -> int:
        """Steps for the next call of train: a probe's sample is short."""
        if not self.probing or block <= 1:
            return block
        left = self.SAMPLE_SECONDS - self.sample_time
        rate = block / 0.1 if self.sample_steps == 0 else self.sample_steps / max(self.sample_time, 1e-9)
        return max(1, min(block, int(rate * left) + 1))


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


def _run_length(p: int, part: int, T: int) -> int:
    """Steps of min-char-rnn's data pass from position p (where a step runs,
    after any reset) up to the next reset: chunk_wraps(q) is q >= part - T - 1,
    so the steps at p, p + T, ... run while p + k T <= part - T - 2."""
    return 1 + max(0, part - T - 2 - p) // T


def _read_spans(position: int, steps: int, part: int, T: int) -> list:
    """The spans [a, b) of each stream's part that ``steps`` steps of the data
    pass from ``position`` read: up to the first reset, then from 0 (later
    passes read the same span again)."""
    if steps == 0:
        return []
    p = 0 if chunk_wraps(position, part, T) else position
    k = min(steps, _run_length(p, part, T))
    spans = [(p, p + k * T + 1)]
    if steps > k:
        spans.append((0, min(steps - k, _run_length(0, part, T)) * T + 1))
    return spans


def _train_window(ids: np.ndarray, B: int, part: int, position: int, n: int, T: int,
                  V: int):
    """(window, offset, steps): what one call of the core trains on, a private
    int32 (B, W) copy of columns offset .. offset + W of each part (an id
    outside [0, V) stored as -1, which the core stops at if it reads it),
    and how many of the n steps it runs. Small texts: the whole parts, every
    step. Else up to the next reset of the data pass, so that a call copies
    about as many ids as it reads."""
    if B * part <= max(1 << 16, 4 * B * (n * T + 1)):
        offset, width = 0, part
    else:
        offset = 0 if chunk_wraps(position, part, T) else position
        n = min(n, _run_length(offset, part, T))
        width = n * T + 1
    return _core.copy_window(ids, B, part, offset, width, V), offset, n


def chunk_wraps(position: int, part_length: int, seq_length: int) -> bool:
    """min-char-rnn's wrap rule (``if p+seq_length+1 >= len(data)``): whether
    a step at ``position`` of a text (or stream part) of ``part_length`` ids
    first goes back to its start with zero hidden states, as
    CharRNN.train does before every step."""
    return bool(_core.wraps(min(position, part_length), part_length, seq_length))


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


class CharRNN:
    """A vanilla tanh RNN over characters, trained with Adagrad (min-char-rnn).

    ``params`` and ``memory`` are read-only mappings of float64 arrays named and shaped as in
    the seed (Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1)); the model
    owns them and the core updates them in place. ``grads`` holds the clipped
    gradients of the last step. Each lookup (``model.params["Whh"]``) returns
    a fresh view of the model's array: the entries of params and memory can
    be changed in place (grads' views are read-only), but neither the
    mappings nor the arrays the core reads can be replaced, reshaped or
    resized through them. Every call first checks the arrays whose views were
    handed out since (or are still held): a NaN or infinite parameter, or a
    NaN, infinite or negative memory entry, is refused with a ValueError
    naming it; the core never runs on one. A training step whose loss is NaN
    or infinite raises TrainingDiverged. Calls on one model are serialised by a lock
    (it owns its work buffers); separate models run concurrently in threads
    (the core releases the GIL).

    train_step, loss_and_grads and loss read one stream (inputs, targets of
    shape (T,), hprev (H, 1) or (H,)) or B streams at once (inputs, targets
    (B, T), hprev (H, B), one column per stream): the loss is then the mean
    over streams of each stream's summed chunk loss, and the gradients are
    the mean over streams (clipped after averaging). advance and sample read
    one stream.
    """

    def __init__(self, vocab_size: int, hidden_size: int = HIDDEN_SIZE, seed=None):
        V = _positive_int(vocab_size, "vocab_size")
        H = _positive_int(hidden_size, "hidden_size")
        _check_size(V, H)
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"seed must be None or an integer, got {seed!r}")
            if not 0 <= seed < 2**32:
                raise ValueError(f"seed must be in [0, 2**32), got {seed}")
        params = init_params(V, H, seed)
        self._install(self._checked(params, "params"), None)

    @classmethod
    def from_params(cls, params, memory=None) -> "CharRNN":
        """A model holding copies of ``params`` (and of the Adagrad ``memory``,
        zero if None), validated for names, shapes and finiteness."""
        model = cls.__new__(cls)
        model._install(cls._checked(params, "params"), None if memory is None else memory)
        return model

    @staticmethod
    def _checked(arrays, what: str, shapes=None) -> dict:
        if not isinstance(arrays, Mapping):
            raise TypeError(f"{what} must be a dict of arrays named {', '.join(PARAM_NAMES)}")
        missing = [n for n in PARAM_NAMES if n not in arrays]
        if missing:
            raise ValueError(f"{what} is missing {', '.join(missing)}")
        extra = sorted(map(repr, set(arrays) - set(PARAM_NAMES)))
        if extra:
            raise ValueError(f"{what} has unknown entries {', '.join(map(str, extra))}")
        out = {}
        for name in PARAM_NAMES:
            arr = _real_array(arrays[name], f"{what}['{name}']")
            if arr.size == 0:
                raise ValueError(f"{what}['{name}'] is empty")
            out[name] = arr
        if shapes is None:
            Wxh = out["Wxh"]
            if Wxh.ndim != 2:
                raise ValueError(f"{what}['Wxh'] must be 2-D (H, V), got shape {Wxh.shape}")
            shapes = param_shapes(Wxh.shape[1], Wxh.shape[0])
        for name in PARAM_NAMES:
            arr, shape = out[name], shapes[name]
            if name.startswith("b") and arr.shape == shape[:1]:
                arr = arr.reshape(shape)
            if arr.shape != shape:
                raise ValueError(
                    f"{what}['{name}'] has shape {arr.shape}, expected {shape} "
                    f"(from Wxh: hidden_size={shapes['Whh'][0]}, vocab_size={shapes['Why'][0]})"
                )
            out[name] = _storage(shape)
            out[name][...] = arr
            # finiteness of what the core will read: checked after the cast
            if not np.isfinite(out[name]).all():
                raise ValueError(f"{what}['{name}'] contains NaN or infinite values")
        return out

    def _install(self, params: dict, memory) -> None:
        """Build the core on ``params`` (from _checked: private arrays from
        _storage) and ``memory`` (None: zeros)."""
        H, V = params["Whh"].shape[0], params["Why"].shape[0]
        _check_size(V, H)
        shapes = param_shapes(V, H)
        if memory is None:
            memory = {n: _storage(shapes[n]) for n in PARAM_NAMES}
        else:
            memory = self._checked(memory, "memory", shapes)
            negative = [n for n in PARAM_NAMES if np.any(memory[n] < 0)]
            if negative:
                raise ValueError(f"memory['{negative[0]}'] has negative entries (Adagrad sums squares)")
        grads = {n: _storage(shapes[n]) for n in PARAM_NAMES}
        # one call at a time per model: the core's work buffers are per model
        self._lock = threading.Lock()
        self._train_block = {}   # (T, B) -> steps per core call of train (~0.1 s)
        self._threads = {}       # (T, B) -> _ThreadChoice of the training calls
        self._workspace = _core.Workspace(
            [params[n] for n in PARAM_NAMES],
            [memory[n] for n in PARAM_NAMES],
            [grads[n] for n in PARAM_NAMES],
            clip_bound=CLIP, adagrad_eps=ADAGRAD_EPS,
        )
        # The core holds these very arrays: they stay private (the public
        # mappings hand out views), so their shapes always match the core's.
        self._params, self._memory, self._grads = params, memory, grads
        self._handouts = _Handouts()   # which of params and memory to check before a call
        # and the memory under them, referenced here, so that nothing done to
        # the arrays' base chain from Python can free it while the core uses it
        self._storages = [_owner(a) for d in (params, memory, grads) for a in d.values()]

    @property
    def params(self) -> Mapping:
        """The parameters: name -> a fresh view of the model's array (read-only
        mapping; the entries can be changed in place, and must be finite when
        the next call runs)."""
        return _ArrayViews(self._params, "params", self._handouts)

    @property
    def memory(self) -> Mapping:
        """The Adagrad memory: name -> a fresh view of the model's array (read-only
        mapping; the entries can be changed in place, and must be finite and
        non-negative when the next call runs)."""
        return _ArrayViews(self._memory, "memory", self._handouts)

    @property
    def grads(self) -> Mapping:
        """The clipped gradients of the last step: name -> a fresh read-only view
        (the core reads them back: its next step relies on the columns of
        grads['Wxh'] outside the last chunk's inputs being zero)."""
        return _ArrayViews(self._grads, "grads", None)

    def _check_state(self) -> None:
        """ValueError unless the params are finite and the memory finite and
        non-negative, as the core needs them (it runs without such checks):
        the arrays whose views were handed out (changed through model.params
        or model.memory, perhaps) or, after a diverged step, all of them.
        Called with the lock held, before the core runs."""
        handouts = self._handouts
        if handouts.clean():
            return
        keys = [(kind, n) for kind in ("params", "memory") for n in PARAM_NAMES]
        todo, handed = handouts.pending(keys)
        bad = None
        with np.errstate(all="ignore"):   # one for all: it costs about as much as a small sum
            for kind, name in todo:
                arr = (self._params if kind == "params" else self._memory)[name]
                bad = _first_invalid(arr, nonnegative=kind == "memory")
                if bad is not None:
                    break
        if bad is not None:
            where, value = ", ".join(map(str, bad)), float(arr[bad])
            if kind == "params":
                raise ValueError(
                    f"params['{name}'][{where}] is {value}: the parameters must be finite "
                    f"(changed through model.params, or left so by a training step that "
                    f"diverged)")
            raise ValueError(
                f"memory['{name}'][{where}] is {value}: the Adagrad memory must be finite "
                f"and non-negative (it sums squared gradients)")
        handouts.checked = handed
        handouts.everything = False

    def copy(self) -> "CharRNN":
        """An independent model with copies of params and memory."""
        return CharRNN.from_params(self._params, self._memory)

    def __copy__(self) -> "CharRNN":
        return self.copy()

    def __deepcopy__(self, memo) -> "CharRNN":
        return self.copy()

    # -- sizes ---------------------------------------------------------------
    # The sizes are the core's: ids and hidden states are validated against
    # the very sizes the core indexes with (it runs without bounds checks).
    @property
    def hidden_size(self) -> int:
        return self._workspace.hidden_size

    @property
    def vocab_size(self) -> int:
        return self._workspace.vocab_size

    def __repr__(self) -> str:
        return f"CharRNN(vocab_size={self.vocab_size}, hidden_size={self.hidden_size})"

    # -- validation helpers --------------------------------------------------
    def _hidden(self, hprev, streams: int = 1, batched: bool = False) -> np.ndarray:
        """A fresh C-contiguous (B, H) float64 copy of hprev, row b the state
        of stream b (None means zeros). hprev is (H, B) for inputs of B
        streams (``batched``); for one stream it may also be (H, 1) or (H,)."""
        H, B = self.hidden_size, streams
        if hprev is None:
            return np.zeros((B, H))
        arr = hprev if type(hprev) is np.ndarray else _real_array(hprev, "hprev")
        shape = arr.shape
        if not ((batched and shape == (H, B)) or (B == 1 and shape in ((H, 1), (H,)))):
            _real_array(arr, "hprev")  # a TypeError for a bad dtype comes first
            raise ValueError(self._hidden_shape_error(shape, B, batched))
        if arr.dtype == _FLOAT64:
            h = arr.reshape(H, B).T.copy()
        else:
            h = np.array(_real_array(arr, "hprev").reshape(H, B).T, dtype=np.float64, order="C")
        if not np.isfinite(h).all():  # after the cast: what the core reads
            raise ValueError("hprev contains NaN or infinite values")
        return h

    def _hidden_shape_error(self, shape, B: int, batched: bool) -> str:
        H = self.hidden_size
        if batched and B > 1:
            if shape in ((H, 1), (H,)):
                return (f"hprev has shape {shape}, one hidden state, but the inputs hold "
                        f"B = {B} streams: pass hprev of shape ({H}, {B}), one column per stream")
            return f"hprev must have shape ({H}, {B}) (H, B) for B = {B} streams, got {shape}"
        if not batched and len(shape) == 2 and shape[0] == H and shape[1] > 1:
            return (f"hprev must have shape ({H}, 1) or ({H},) for 1-D inputs, got {shape}; "
                    "for B streams pass inputs and targets of shape (B, T)")
        return f"hprev must have shape ({H}, 1) or ({H},), got {shape}"

    def _chunk(self, inputs, targets, hprev, whole: bool = True):
        """Validated private copies of what the core reads: inputs and targets
        (T, B) time-major, hprev (B, H); and whether the call is batched (2-D
        inputs). ``whole``: the core keeps the whole chunk in its work buffers
        (train_step, loss_and_grads), whose offsets are C ints; loss() keeps
        blocks of _core.loss_block_steps(B) steps."""
        V, H = self.vocab_size, self.hidden_size
        for given in (inputs, targets):  # the size check first, before any copy
            if isinstance(given, np.ndarray) and given.ndim in (1, 2) and given.size:
                B, T = (1, given.size) if given.ndim == 1 else given.shape
                steps = T if whole else min(T, _core.loss_block_steps(min(B, _MAX_ELEMENTS)))
                if (steps + 1) * B * max(V, H) > _MAX_ELEMENTS:
                    self._too_large(B, T, whole, steps)
        x = _as_ids(inputs, "inputs", V, streams=True)
        y = _as_ids(targets, "targets", V, streams=True)
        if x.shape != y.shape:
            if x.ndim != y.ndim:
                raise ValueError(f"inputs and targets must both be 1-D (T,) or both 2-D (B, T), "
                                 f"got shapes {x.shape} and {y.shape}")
            if x.shape[:-1] != y.shape[:-1]:
                raise ValueError(f"inputs and targets differ in their number of streams "
                                 f"(B = {x.shape[0]} vs {y.shape[0]})")
            raise ValueError(f"inputs and targets differ in length "
                             f"({x.shape[-1]} vs {y.shape[-1]})")
        batched = x.ndim == 2
        B, T = x.shape if batched else (1, x.size)
        steps = T if whole else min(T, _core.loss_block_steps(B))
        if (steps + 1) * B * max(V, H) > _MAX_ELEMENTS:
            self._too_large(B, T, whole, steps)
        h = self._hidden(hprev, B, batched)
        if batched:  # time-major for the core: row t holds step t of every stream
            return np.ascontiguousarray(x.T), np.ascontiguousarray(y.T), h, True
        return x.reshape(T, 1), y.reshape(T, 1), h, False

    @staticmethod
    def _too_large(B: int, T: int, whole: bool, steps: int):
        raise ValueError(
            f"a chunk of {B:,} x {T:,} ids is too large for one step at this model size; "
            + ("split it (model.loss accepts any length)" if whole and steps > 1
               else "use fewer streams")
        )

    @staticmethod
    def _returned_hidden(h: np.ndarray, batched: bool) -> np.ndarray:
        """The core's (B, H) states as returned: (H, B) for batched calls, else (H, 1)."""
        return np.ascontiguousarray(h.T) if batched else h.reshape(-1, 1)

    # -- the seed's functions ------------------------------------------------
    # Each accepts one stream (inputs, targets (T,); hprev (H, 1) or (H,);
    # h returned (H, 1)) or B streams (inputs, targets (B, T); hprev (H, B);
    # h returned (H, B)).
    def loss_and_grads(self, inputs, targets, hprev):
        """The seed's lossFun over B streams: (loss, grads, h); nothing is updated.

        Each stream's loss is min-char-rnn's chunk loss (summed over its T
        steps); ``loss`` is the mean over streams, and ``grads`` (a dict of
        fresh arrays shaped like params) the mean over streams of the
        gradients, then clipped to [-CLIP, CLIP] elementwise. With one stream
        this is exactly lossFun. h: the last hidden states. The loss is NaN
        or infinite only if float64 overflows at these parameters' values
        (nothing is updated then either)."""
        x, y, h, batched = self._chunk(inputs, targets, hprev)
        with self._lock:
            self._check_state()
            loss = self._workspace.loss_and_grads(x, y, h)
            grads = {n: g.copy() for n, g in self._grads.items()}
        return loss, grads, self._returned_hidden(h, batched)

    def train_step(self, inputs, targets, hprev, learning_rate: float = LEARNING_RATE):
        """One step over B streams: loss_and_grads (mean loss over streams; mean
        gradients, clipped), then one Adagrad update of params and memory in
        place. Returns (loss, h). A NaN or infinite loss raises
        TrainingDiverged (its update has been applied: see there)."""
        x, y, h, batched = self._chunk(inputs, targets, hprev)
        lr = _as_learning_rate(learning_rate)
        with self._lock:
            self._check_state()
            choice = self._threads.setdefault(x.shape, _ThreadChoice())   # (T, B)
            threads = choice.pick(self._workspace.threads(x.shape[1], x.shape[0]))
            started = time.perf_counter()
            loss = self._workspace.train_step(x, y, h, lr, threads)
            choice.record(threads, time.perf_counter() - started, 1)
            if not math.isfinite(loss):
                self._handouts.everything = True
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged: the step's loss is {loss} (its update has been applied, "
                f"so the parameters are probably no longer finite); try a lower learning rate",
                np.array([loss]), self._returned_hidden(h, batched))
        return loss, self._returned_hidden(h, batched)

    def train(self, data, steps: int, seq_length: int = SEQ_LENGTH, hprev=None,
              position: int = 0, learning_rate: float = LEARNING_RATE, streams: int = 1):
        """min-char-rnn's training loop: ``steps`` iterations of its data pass
        and train_step over ``data``, run in the core (no Python between steps).

        data (n,) integer ids is cut into ``streams`` equal parts of part =
        n // streams ids; stream b reads data[b * part : (b + 1) * part].
        Before each step, if chunk_wraps(position, part, seq_length), the
        hidden states become zero and position 0; each stream then trains on
        its ids position .. position + seq_length (inputs, and targets one
        later), and position advances by seq_length. hprev: the states to
        start from, (H, streams) (one stream: (H, 1) or (H,)); None is zeros.

        Returns (losses, h, position): the loss of each of the ``steps``
        steps as train_step returns it, the last states ((H, 1) for one
        stream, else (H, streams)) and the position of the next step. A NaN
        or infinite loss stops training after that step and raises
        TrainingDiverged, which holds the losses, states and position of the
        steps run (that step's update, and every one before it, has been
        applied). The same, bit for bit, as the loop of train_step calls it
        replaces (min-char-rnn's loop from position 0, hprev None, for one
        stream). The params and memory (finite; memory non-negative) and the
        ids the steps will read are checked before the first step; each call
        of the core (about 0.1 s of steps) gets a private int32 copy of the
        ids it reads (data is read with the GIL held, so no other Python
        thread changes it meanwhile). Calls on one model run one at a time.
        Ctrl-C (KeyboardInterrupt) is seen between the core's calls: the model is
        then at a step boundary, but the losses, state and position of the
        steps done are not returned -- train in shorter calls to keep them."""
        V, H = self.vocab_size, self.hidden_size
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        T = _positive_int(seq_length, "seq_length")
        B = _positive_int(streams, "streams")
        if isinstance(position, bool) or not isinstance(position, numbers.Integral) or position < 0:
            raise ValueError(f"position must be a non-negative integer, got {position!r}")
        lr = _as_learning_rate(learning_rate)
        if (T + 1) * B * max(V, H) > _MAX_ELEMENTS:
            self._too_large(B, T, True, T)
        ids = _id_vector(data, "data")
        part = ids.size // B
        if part < T + 1:
            raise ValueError(f"data of {ids.size} ids in {B} stream part(s) of {part}: each "
                             f"part needs at least seq_length + 1 = {T + 1} ids")
        position = min(int(position), part)     # from part - T - 1 on, every position wraps
        steps = int(steps)
        h = self._hidden(hprev, B, batched=True)
        for a, b in _read_spans(position, steps, part, T):   # before any step
            at, value = _core.scan_ids(ids, B, part, a, b, V)
            if at >= 0:
                raise ValueError(f"data[{at}] = {value} is outside [0, {V})")
        losses = np.empty(steps)
        done = 0
        with self._lock:
            self._check_state()
            choice = self._threads.setdefault((T, B), _ThreadChoice())
            block = self._train_block.get((T, B), 1)   # steps per core call
            while done < steps:
                threads = choice.pick(self._workspace.threads(B, T))
                probe = choice.probing
                n = min(steps - done, choice.short_call(block))
                window, offset, n = _train_window(ids, B, part, position, n, T, V)
                started = time.perf_counter()
                k, position, bad = self._workspace.train(
                    window, offset, part, position, h, T, lr, losses[done:done + n], threads)
                elapsed = time.perf_counter() - started
                choice.record(threads, elapsed, k)
                done += k
                if bad >= 0:     # checked before the first step: another thread changed it
                    b, t = divmod(bad, window.shape[1])
                    raise ValueError(f"data[{b * part + offset + t}] changed during train to "
                                     f"an id outside [0, {V})")
                if bad != -1:    # the window covers the steps: never
                    raise RuntimeError(f"charrnn_ext internal error: the core refused its "
                                       f"chunk ({bad}) at position {position}")
                if k < n:        # a non-finite loss: the core stopped after its step
                    self._handouts.everything = True
                    break
                if not probe and (n == block or elapsed > _TRAIN_BLOCK_SECONDS):
                    block = self._train_block[T, B] = max(
                        1, int(k / max(elapsed, 1e-9) * _TRAIN_BLOCK_SECONDS))
        if done < steps:
            raise TrainingDiverged(
                f"training diverged: the loss of step {done} of {steps} is {losses[done - 1]} "
                f"(the steps up to it have been applied, its own update too, so the "
                f"parameters are probably no longer finite); try a lower learning rate",
                losses[:done], self._returned_hidden(h, B > 1), position)
        return losses, self._returned_hidden(h, B > 1), position

    def loss(self, inputs, targets, hprev, return_hidden: bool = False):
        """Forward-only cross-entropy (nats) of a chunk of any length: each
        stream's summed loss, then the mean over streams (the summed loss for
        one stream). With return_hidden=True returns (loss, h). The loss is
        NaN or infinite only if float64 overflows at these parameters' values."""
        x, y, h, batched = self._chunk(inputs, targets, hprev, whole=False)
        with self._lock:
            self._check_state()
            loss = self._workspace.loss(x, y, h)
        return (loss, self._returned_hidden(h, batched)) if return_hidden else loss

    def advance(self, inputs, hprev=None) -> np.ndarray:
        """The hidden state (H, 1) after reading ``inputs`` from ``hprev``."""
        x = _as_ids(inputs, "inputs", self.vocab_size, allow_empty=True)
        h = self._hidden(hprev)
        with self._lock:
            self._check_state()
            if x.size:
                self._workspace.advance(x, h[0])
        return h.reshape(-1, 1)

    def sample(self, h, seed_ix, n, temperature: float = 1.0, rng=None, return_hidden: bool = False):
        """The seed's sample(): n ids generated from hidden state h with
        seed_ix as the first input. Draws follow ``rng`` (a numpy Generator,
        an int seed or None) exactly as ``rng.choice(V, p=softmax(y / T))``
        would; temperature 0 is greedy argmax. h is not modified; with
        return_hidden=True returns (ids, h_after). Each call first makes a
        transposed copy of Why (a few ms at V=3000, H=200), so ask for many
        characters per call rather than one at a time."""
        V = self.vocab_size
        if isinstance(seed_ix, bool) or not isinstance(seed_ix, numbers.Integral):
            raise TypeError(f"seed_ix must be an integer id, got {seed_ix!r}")
        if not 0 <= seed_ix < V:
            raise ValueError(f"seed_ix = {seed_ix} is outside [0, {V})")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"n must be an integer, got {n!r}")
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
            raise TypeError(f"temperature must be a real number, got {temperature!r}")
        temperature = float(temperature)
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be finite and non-negative, got {temperature}")
        hv = self._hidden(h)
        out = np.zeros(int(n), dtype=np.int32)
        if temperature > 0:
            if not isinstance(rng, np.random.Generator):
                try:
                    rng = np.random.default_rng(rng)
                except (TypeError, ValueError) as exc:
                    raise TypeError(
                        f"rng must be a numpy Generator, an int seed or None, got {rng!r}"
                    ) from exc
            # a private float64 copy of exactly n uniforms in [0, 1): the core reads
            # n of them without bounds checks, and rng may be any Generator subclass
            drawn = rng.random(int(n))
            uniforms = np.array(drawn, dtype=np.float64, order="C", copy=True) \
                if type(drawn) is np.ndarray else None
            if uniforms is None or uniforms.shape != (int(n),) or not (
                    n == 0 or (uniforms.min() >= 0.0 and uniforms.max() < 1.0)):
                raise ValueError(f"rng.random({int(n)}) must give {int(n)} floats in [0, 1)")
        else:
            uniforms = np.zeros(int(n))
        with self._lock:
            self._check_state()
            if n:
                self._workspace.sample(hv[0], int(seed_ix), uniforms, temperature, out)
        return (out, hv.reshape(-1, 1)) if return_hidden else out
