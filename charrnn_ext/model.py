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

import math
import numbers
import threading
import time
from collections.abc import Mapping

import numpy as np

from ._arrays import (_MAX_ELEMENTS, _ArrayViews, _check_size, _first_invalid, _Handouts,  # noqa: F401
                      _owner, _real_array, _storage, check_real_dtype, hidden_shape_error)
from ._dispatch import core as _core, core_for
from ._pickling import reduce_model, same_model
from ._ids import (_as_ids, _as_learning_rate, _dtype, _embedding_size, _id_vector, _init,
                   _optimizer, _optimizer_state, _positive_int, _seed, _top, _draws)
from ._threadchoice import _ThreadChoice, steps_per_call
from .datapass import chunk_wraps, read_spans, train_window  # noqa: F401 (chunk_wraps: public here too)
from .defaults import (ADAGRAD_EPS, ADAM_BETAS, ADAM_EPS, CALL_SECONDS, CLIP, EMBEDDING_SIZE,
                       HIDDEN_SIZE, INIT, LEARNING_RATE, OPTIMIZER, SEQ_LENGTH)
from .divergence import TrainingDiverged
from .spec import EMBED, PARAM_NAMES, init_params, param_names, param_shapes




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

    def __new__(cls, *args, cell: str = "rnn", num_layers: int = 1, dropout: float = 0.0,
                **kwargs):
        """CharRNN(V, H, seed, cell=..., num_layers=..., dropout=...): an LSTM, a
        GRU or a stacked tanh RNN is a charrnn_ext.gated.GatedCharRNN (same
        methods); cell "rnn" with one layer is this class, min-char-rnn's."""
        if cls is CharRNN and (cell != "rnn" or num_layers != 1):
            from .gated import GatedCharRNN, check_architecture
            cell, num_layers, dropout = check_architecture(cell, num_layers, dropout)
            return GatedCharRNN(*args, cell=cell, num_layers=num_layers, dropout=dropout,
                                **kwargs)
        return super().__new__(cls)

    def __init__(self, vocab_size: int, hidden_size: int = HIDDEN_SIZE, seed=None, *,
                 embedding_size: int = EMBEDDING_SIZE, optimizer: str = OPTIMIZER,
                 init: str = INIT, dtype="float64", cell: str = "rnn", num_layers: int = 1,
                 dropout: float = 0.0):
        V = _positive_int(vocab_size, "vocab_size")
        H = _positive_int(hidden_size, "hidden_size")
        D = _embedding_size(embedding_size)
        _check_size(V, H, D)
        params = init_params(V, H, _seed(seed), D, _init(init))
        self._install(self._checked(params, "params", None, _dtype(dtype)), None,
                      _optimizer(optimizer), None, 0)

    @classmethod
    def from_params(cls, params, memory=None, *, optimizer: str = OPTIMIZER, moment=None,
                    adam_steps: int = 0, dtype="float64") -> "CharRNN":
        """A model holding copies of ``params`` (with ``embed`` for an input
        embedding) and of its optimiser state: the Adagrad ``memory`` (zero if
        None), or Adam's second moment ``memory``, first moment ``moment``
        (zero if None) and its count of updates ``adam_steps``; validated for
        names, shapes and finiteness (after the cast to ``dtype``: float64, or
        float32 to compute with the float32 build of the core)."""
        optimizer, adam_steps = _optimizer_state(optimizer, moment, adam_steps)
        model = cls.__new__(cls)
        model._install(cls._checked(params, "params", None, _dtype(dtype)), memory, optimizer,
                       moment, adam_steps)
        return model

    @staticmethod
    def _checked(arrays, what: str, shapes=None, dtype=np.float64) -> dict:
        if not isinstance(arrays, Mapping):
            raise TypeError(f"{what} must be a dict of arrays named {', '.join(PARAM_NAMES)} "
                            f"(and {EMBED} with an input embedding)")
        names = param_names(1 if (EMBED in arrays if shapes is None else EMBED in shapes) else 0)
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"{what} is missing {', '.join(missing)}")
        extra = sorted(map(repr, set(arrays) - set(names)))
        if extra:
            raise ValueError(f"{what} has unknown entries {', '.join(map(str, extra))}")
        out = {}
        for name in names:
            arr = _real_array(arrays[name], f"{what}['{name}']")
            if arr.size == 0:
                raise ValueError(f"{what}['{name}'] is empty")
            out[name] = arr
        if shapes is None:
            Wxh, Why = out["Wxh"], out["Why"]
            if Wxh.ndim != 2 or Why.ndim != 2:
                raise ValueError(f"{what}['Wxh'] and {what}['Why'] must be 2-D, got shapes "
                                 f"{Wxh.shape} and {Why.shape}")
            D = _embedding_size(Wxh.shape[1]) if EMBED in out else 0
            shapes = param_shapes(Why.shape[0] if D else Wxh.shape[1], Wxh.shape[0], D)
        for name in names:
            arr, shape = out[name], shapes[name]
            if name.startswith("b") and arr.shape == shape[:1]:
                arr = arr.reshape(shape)
            if arr.shape != shape:
                raise ValueError(
                    f"{what}['{name}'] has shape {arr.shape}, expected {shape} "
                    f"(hidden_size={shapes['Whh'][0]}, vocab_size={shapes['Why'][0]}"
                    + (f", embedding_size={shapes[EMBED][1]})" if EMBED in shapes else ")"))
            out[name] = _storage(shape, dtype)
            with np.errstate(over="ignore"):   # a value float32 cannot hold: inf, refused below
                out[name][...] = arr
            # finiteness of what the core will read: checked after the cast
            if not np.isfinite(out[name]).all():
                raise ValueError(f"{what}['{name}'] contains NaN or infinite values")
        return out

    def _install(self, params: dict, memory, optimizer: str, moment, adam_steps: int) -> None:
        """Build the core on ``params`` (from _checked: private arrays from
        _storage) and the optimiser's state ``memory``, ``moment`` (None: zeros)."""
        H, V = params["Whh"].shape[0], params["Why"].shape[0]
        D = params[EMBED].shape[1] if EMBED in params else 0
        dtype = params["Whh"].dtype
        _check_size(V, H, D)
        shapes = param_shapes(V, H, D)
        names = param_names(D)
        state = {}
        for kind, given in (("memory", memory), ("moment", moment)):
            if given is None:
                state[kind] = {n: _storage(shapes[n], dtype) for n in names}
            else:
                state[kind] = self._checked(given, kind, shapes, dtype)
        negative = [n for n in names if np.any(state["memory"][n] < 0)]
        if negative:
            raise ValueError(f"memory['{negative[0]}'] has negative entries (it sums squares)")
        memory = state["memory"]
        moment = state["moment"] if optimizer == "adam" else {}
        grads = {n: _storage(shapes[n], dtype) for n in names}
        # one call at a time per model: the core's work buffers are per model
        self._lock = threading.Lock()
        self._train_block = {}   # (T, B) -> steps per core call of train (~0.1 s)
        self._threads = {}       # (T, B) -> _ThreadChoice of the training calls
        self._workspace = core_for(dtype).Workspace(
            [params[n] for n in names], [memory[n] for n in names], [grads[n] for n in names],
            [moment[n] for n in names] if moment else None, optimizer=optimizer,
            clip_bound=CLIP, eps=ADAM_EPS if optimizer == "adam" else ADAGRAD_EPS,
            beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1],
        )
        self._workspace.adam_steps = adam_steps
        # The core holds these very arrays: they stay private (the public
        # mappings hand out views), so their shapes always match the core's.
        self._params, self._memory, self._grads = params, memory, grads
        self._moment = moment
        self._names = names
        self._handouts = _Handouts()   # which of params, memory, moment to check before a call
        # and the memory under them, referenced here, so that nothing done to
        # the arrays' base chain from Python can free it while the core uses it
        self._storages = [_owner(a) for d in (params, memory, moment, grads) for a in d.values()]

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
    def moment(self) -> Mapping:
        """Adam's first moment: name -> a fresh view of the model's array, as
        ``memory`` (empty with Adagrad)."""
        return _ArrayViews(self._moment, "moment", self._handouts)

    @property
    def optimizer(self) -> str:
        """The update the training calls apply: "adagrad" or "adam"."""
        return self._workspace.optimizer

    @property
    def adam_steps(self) -> int:
        """Adam's updates so far (0 with Adagrad)."""
        return self._workspace.adam_steps

    @property
    def dtype(self) -> np.dtype:
        """What the model computes in and holds its arrays as: float64, or
        float32 (the float32 build of the core)."""
        return self._params["Whh"].dtype

    @property
    def embedding_size(self) -> int:
        """The width of the input embedding; 0: min-char-rnn's one-hot input."""
        return self._workspace.embedding_size

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
        keys = [(kind, n) for kind in ("params", "memory", "moment") for n in self._names
                if n in getattr(self, "_" + kind)]
        todo, handed = handouts.pending(keys)
        bad = None
        with np.errstate(all="ignore"):   # one for all: it costs about as much as a small sum
            for kind, name in todo:
                arr = getattr(self, "_" + kind)[name]
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

    def params_finite(self) -> bool:
        """Whether every parameter is finite (False after a training step whose
        update overflowed: the next call would refuse them). Reads them only."""
        with np.errstate(all="ignore"):
            return all(_first_invalid(a) is None for a in self._params.values())

    def copy(self) -> "CharRNN":
        """An independent model with copies of params and the optimiser's state."""
        return CharRNN.from_params(self._params, self._memory, optimizer=self.optimizer,
                                   moment=self._moment or None, adam_steps=self.adam_steps,
                                   dtype=self.dtype)

    def __copy__(self) -> "CharRNN":
        return self.copy()

    __reduce__, __eq__ = reduce_model, same_model   # pickled as its arrays; equal as them

    def __deepcopy__(self, memo) -> "CharRNN":
        return self.copy()

    # -- sizes ---------------------------------------------------------------
    # The sizes are the core's: ids and hidden states are validated against
    # the very sizes the core indexes with (it runs without bounds checks).
    cell, num_layers, dropout = "rnn", 1, 0.0   # as GatedCharRNN says them

    @property
    def state_size(self) -> int:
        """Rows of a stream's state: H (GatedCharRNN: per layer h, and c)."""
        return self.hidden_size

    def top_hidden(self, state):
        """The output layer's input in a state (S, B): the state itself here."""
        return state

    @property
    def hidden_size(self) -> int:
        return self._workspace.hidden_size

    @property
    def vocab_size(self) -> int:
        return self._workspace.vocab_size

    def __repr__(self) -> str:
        extra = (f", embedding_size={self.embedding_size}" if self.embedding_size else "") + \
            (f", optimizer={self.optimizer!r}" if self.optimizer != "adagrad" else "") + \
            (f", dtype={self.dtype.name!r}" if self.dtype != np.float64 else "")
        return f"CharRNN(vocab_size={self.vocab_size}, hidden_size={self.hidden_size}{extra})"

    # -- validation helpers --------------------------------------------------
    def _hidden(self, hprev, streams: int = 1, batched: bool = False) -> np.ndarray:
        """A fresh C-contiguous (B, H) copy of hprev in the model's dtype, row
        b the state of stream b (None means zeros). hprev is (H, B) for inputs
        of B streams (``batched``); for one stream it may also be (H, 1) or (H,)."""
        H, B, dtype = self.hidden_size, streams, self.dtype
        if hprev is None:
            return np.zeros((B, H), dtype)
        arr = hprev if type(hprev) is np.ndarray else _real_array(hprev, "hprev")
        shape = arr.shape
        if not ((batched and shape == (H, B)) or (B == 1 and shape in ((H, 1), (H,)))):
            _real_array(arr, "hprev")  # a TypeError for a bad dtype comes first
            raise ValueError(hidden_shape_error(shape, H, B, batched))
        if arr.dtype == dtype:
            h = arr.reshape(H, B).T.copy()
        else:
            with np.errstate(over="ignore"):   # a value float32 cannot hold: inf, refused below
                h = np.array(_real_array(arr, "hprev").reshape(H, B).T, dtype=dtype, order="C")
        if not np.isfinite(h).all():  # after the cast: what the core reads
            raise ValueError("hprev contains NaN or infinite values")
        return h

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
        for a, b in read_spans(position, steps, part, T):   # before any step
            at, value = _core.scan_ids(ids, B, part, a, b, V)
            if at >= 0:
                raise ValueError(f"data[{at}] = {value} is outside [0, {V})")
        losses = np.empty(steps, self.dtype)
        done = 0
        with self._lock:
            self._check_state()
            choice = self._threads.setdefault((T, B), _ThreadChoice())
            block = self._train_block.get((T, B), 1)   # steps per core call
            while done < steps:
                threads = choice.pick(self._workspace.threads(B, T))
                probe = choice.probing
                n = min(steps - done, choice.short_call(block))
                window, offset, n = train_window(ids, B, part, position, n, T, V)
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
                if not probe and (n == block or elapsed > CALL_SECONDS):
                    block = self._train_block[T, B] = steps_per_call(k, elapsed)
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

    def trace(self, ids, hprev=None) -> tuple[np.ndarray, np.ndarray]:
        """One stream read over ``ids`` (n,) from ``hprev`` ((H, 1) or (H,);
        None: zeros), weights frozen: (hs (n, H), probs (n, V)), hs[t] the
        hidden state after reading ids[t] and probs[t] the model's prediction
        of the character after it, softmax(Why hs[t] + by). hs[-1] is
        ``advance(ids, hprev)``. The core runs it with the GIL released
        (charrnn-inspect's numbers; reference.trace is the same in numpy)."""
        x = _as_ids(ids, "ids", self.vocab_size)
        V, H, n = self.vocab_size, self.hidden_size, x.size
        if n * max(V, H) > _MAX_ELEMENTS:
            raise ValueError(f"{n:,} ids are too many for one trace at this model size "
                             f"(at most {_MAX_ELEMENTS // max(V, H):,}); trace them in pieces, "
                             f"each from the last state of the one before")
        h = self._hidden(hprev)
        hs, probs = np.empty((n, H), self.dtype), np.empty((n, V), self.dtype)
        with self._lock:
            self._check_state()
            self._workspace.trace(x, h[0], hs, probs)
        return hs, probs

    def sample(self, h, seed_ix, n, temperature: float = 1.0, rng=None, return_hidden: bool = False,
               top_k: int = 0, top_p: float = 1.0):
        """The seed's sample(): n ids generated from hidden state h with
        seed_ix as the first input. Draws follow ``rng`` (a numpy Generator,
        an int seed or None) exactly as ``rng.choice(V, p=softmax(y / T))``
        would; temperature 0 is greedy argmax. top_k > 0 / top_p < 1 draw from
        the k likeliest ids / the top-p nucleus only (reference.top_filter), ties
        by id: top_k 1 is greedy. h is not modified; with
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
        temperature, (top_k, top_p) = float(temperature), _top(top_k, top_p)
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be finite and non-negative, got {temperature}")
        hv = self._hidden(h)
        out = np.zeros(int(n), dtype=np.int32)
        uniforms = _draws(rng, int(n)) if temperature > 0 else np.zeros(int(n))
        with self._lock:
            self._check_state()
            if n:
                self._workspace.sample(hv[0], int(seed_ix), uniforms, temperature, out, top_k, top_p)
        return (out, hv.reshape(-1, 1)) if return_hidden else out
