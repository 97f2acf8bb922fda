"""CharRNN: the one model -- every cell, layer count, embedding, dtype and optimizer -- on the core's Workspace, with validated inputs.

Every array handed to the core (charrnn_ext._core / _core32) is checked here
(dtype, shape, contiguity, id range, finiteness) and is a private copy: the
core runs without bounds checks and with the GIL released. The model's own
params, memory and moment, which users may change in place through the views
the mappings hand out, are checked before any call that may follow such a
change (_Handouts). CharRNN.train reads the user's ids only inside the
core's scan_ids / copy_window, with the GIL held throughout, so that no other
Python thread changes or frees them meanwhile.

One model, one class: ``CharRNN(V, H, seed)`` is min-char-rnn's (one tanh
layer, the original script's names Wxh, Whh, Why, bh, by, and its fast
kernels, bit for bit); ``cell="lstm" | "gru"``, ``num_layers > 1`` (with
``dropout`` between layers) name their parameters as PyTorch does
(weight_ih_l0, ..., Why, by). Which kernels run is the core's choice
(src/core/face.pxi). A state of one stream is S = L*K*H rows: per layer its
h, then its c for the LSTM (K = 2; charrnn_ext.core.cells).
"""
from __future__ import annotations

import math
import numbers
import threading
import time
from collections.abc import Mapping

import numpy as np

from . import optimizers, reference_gated
from ._arrays import (_MAX_ELEMENTS, _ArrayViews, _first_invalid, _Handouts, _owner,  # noqa: F401
                      _real_array, _storage, check_real_dtype, hidden_shape_error)
from ._dispatch import core as _core, core_for
from ._ids import (_as_ids, _as_learning_rate, _draws, _dtype, _embedding_size, _id_vector,
                   _init, _optimizer, _optimizer_state, _positive_int, _seed, _top)
from ._modelcheck import Architecture, architecture_of, check_architecture, fill
from ._pickling import reduce_model, same_model
from ._threadchoice import _ThreadChoice, steps_per_call
from .datapass import chunk_wraps, read_spans, train_window  # noqa: F401 (chunk_wraps: public here too)
from ..defaults import (CALL_SECONDS, CLIP, EMBEDDING_SIZE, HIDDEN_SIZE, INIT, LEARNING_RATE,
                        OPTIMIZER, SEQ_LENGTH)
from .divergence import TrainingDiverged
from .spec import init_params

_UNIFORMS_PER_CALL = 1 << 23   # dropout's draws per core call of train, at most (64 MiB)


class CharRNN:
    """A character-level recurrent network: ``cell`` "rnn" (tanh), "lstm" or
    "gru", ``num_layers`` layers (``dropout`` between them, training only), an
    optional input embedding of width ``embedding_size``, computing in float64
    (the reference) or float32, trained with min-char-rnn's clip and Adagrad
    (or Adam).

    ``params``, ``memory`` (Adagrad's sums of squares, or Adam's second
    moment) and ``moment`` (Adam's first) are read-only mappings name -> a
    fresh view of the model's array; the core updates them in place.
    min-char-rnn's model (cell "rnn", one layer) names and shapes them as the
    original script does: Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1);
    the others as PyTorch's nn.RNN / nn.LSTM / nn.GRU do, then Why (V,H) and
    by (V,). The entries can be changed in place; every call first checks
    the arrays whose views were handed out: a NaN or infinite parameter, or a
    NaN, infinite or negative memory entry, is refused with a ValueError
    naming it. ``grads`` holds the clipped gradients of the last step
    (read-only). A training step whose loss is NaN or infinite raises
    TrainingDiverged. Calls on one model are serialised by a lock; separate
    models run concurrently in threads (the core releases the GIL).

    train_step, loss_and_grads and loss read one stream (inputs, targets
    (T,), hprev (S, 1) or (S,)) or B streams (inputs, targets (B, T), hprev
    (S, B), one column per stream): the loss is the mean over streams of each
    stream's summed chunk loss, the gradients the mean over streams (clipped
    after averaging). advance, trace and sample read one stream. hprev None
    is a zero state.
    """

    def __init__(self, vocab_size: int, hidden_size: int = HIDDEN_SIZE, seed=None, *,
                 cell: str = "rnn", num_layers: int = 1, dropout: float = 0.0,
                 embedding_size: int = EMBEDDING_SIZE, optimizer: str = OPTIMIZER,
                 init: str | None = None, dtype="float64"):
        """init: "min-char-rnn" (randn * 0.01, zero biases) or "pytorch" (as
        nn.Embedding, nn.RNN/LSTM/GRU and nn.Linear initialise); None: the
        first for min-char-rnn's model, the second for the others. seed: of
        the initial weights and of dropout's draws."""
        V = _positive_int(vocab_size, "vocab_size")
        H = _positive_int(hidden_size, "hidden_size")
        cell, L, dropout = check_architecture(cell, num_layers, dropout)
        arch = Architecture(cell, L, V, H, _embedding_size(embedding_size), cell == "rnn" and L == 1)
        init = _init(init if init is not None else (INIT if arch.minchar else "pytorch"))
        dtype, optimizer, seed = _dtype(dtype), _optimizer(optimizer), _seed(seed)
        arch.check_size()
        params = (init_params(V, H, seed, arch.D, init) if arch.minchar else
                  reference_gated.init_params(cell, V, H, L, seed, arch.D, init))
        self._install(arch, dropout, seed, params, None, optimizer, None, 0, dtype)

    @classmethod
    def from_params(cls, params, memory=None, dropout: float = 0.0, seed=None, *,
                    cell: str | None = None, optimizer: str = OPTIMIZER, moment=None,
                    adam_steps: int = 0, dtype="float64") -> "CharRNN":
        """A model holding copies of ``params`` -- min-char-rnn's names (Wxh, Whh,
        Why, bh, by, and embed with an input embedding) or PyTorch's per layer
        (weight_ih_l0, ..., Why, by[, embed]): the cell (``cell``, or the one
        with their gate count), layers and sizes are read from them -- and of
        the optimiser's state: ``memory`` (zero if None), and with Adam its
        first moment ``moment`` (zero if None) and count of updates
        ``adam_steps``. Validated for names, shapes and finiteness after the
        cast to ``dtype`` (float64, or float32: the float32 build of the core)."""
        arch = architecture_of(params, cell)
        _, _, dropout = check_architecture(arch.cell, arch.num_layers, dropout)
        optimizer, adam_steps = _optimizer_state(optimizer, moment, adam_steps)
        arch.check_size()
        model = cls.__new__(cls)
        model._install(arch, dropout, _seed(seed), params, memory, optimizer, moment, adam_steps,
                       _dtype(dtype))
        return model

    def _install(self, arch: Architecture, dropout: float, seed, params, memory, optimizer: str,
                 moment, adam_steps: int, dtype) -> None:
        """Build the core over private flat storage holding checked copies of
        ``params`` and the optimiser's state (None: zeros)."""
        layout, n = arch.layout()
        kinds = ("params", "grads") + optimizers.get(optimizer).slots   # (memory, Adam's moment)
        flat = {kind: _storage((n,), dtype) for kind in kinds}
        self._arrays = {kind: {name: flat[kind][at:at + math.prod(shape)].reshape(shape)
                               for name, (at, shape) in layout.items()} for kind in kinds}
        self._arrays.setdefault("moment", {})
        for kind, given in (("params", params), ("memory", memory), ("moment", moment)):
            if given is not None and self._arrays[kind]:
                fill(self._arrays[kind], given, kind, dtype, arch.sizes())
        negative = [n for n, a in self._arrays["memory"].items() if np.any(a < 0)]
        if negative:
            raise ValueError(f"memory['{negative[0]}'] has negative entries (it sums squares)")
        self._workspace = core_for(dtype).Workspace(
            arch.cell, arch.num_layers, arch.V, arch.H, flat["params"], flat["memory"],
            flat["grads"], flat.get("moment"), minchar=arch.minchar, clip_bound=CLIP,
            dropout=0.0 if arch.minchar else dropout, embedding_size=arch.D,
            **optimizers.get(optimizer).core_options())
        if [(name, at, tuple(shape)) for name, (at, shape) in layout.items()] != \
                [(name, at, tuple(shape)) for name, at, shape in self._workspace.layout()]:
            raise RuntimeError("charrnn_ext internal error: the core's layout differs")
        self._workspace.adam_steps = adam_steps
        self._arch, self.dropout = arch, dropout
        self._layout = layout
        self._rng = np.random.default_rng(seed)   # dropout's draws
        self._lock = threading.Lock()   # one call at a time: the core's work buffers are per model
        self._train_block = {}          # (T, B) -> steps per core call of train (~0.1 s)
        self._threads = {}              # (T, B) -> _ThreadChoice of the training calls
        self._handouts = _Handouts()    # which arrays to check before a call
        # the memory under every array, referenced here, so that nothing done to
        # the arrays' base chain from Python can free it while the core uses it
        self._storages = [_owner(a) for a in flat.values()]

    # -- what it is and holds --------------------------------------------------------
    @property
    def params(self) -> Mapping:
        """The parameters: name -> a fresh view of the model's array (read-only
        mapping; the entries can be changed in place, and must be finite when
        the next call runs)."""
        return _ArrayViews(self._arrays["params"], "params", self._handouts)

    @property
    def memory(self) -> Mapping:
        """Adagrad's sums of squared gradients (Adam: its second moment), as
        ``params``; finite and non-negative when the next call runs."""
        return _ArrayViews(self._arrays["memory"], "memory", self._handouts)

    @property
    def moment(self) -> Mapping:
        """Adam's first moment, as ``params`` (empty with Adagrad)."""
        return _ArrayViews(self._arrays["moment"], "moment", self._handouts)

    @property
    def grads(self) -> Mapping:
        """The clipped gradients of the last step: name -> a fresh read-only view
        (the core reads them back: its next step relies on the columns of an
        input weight outside the last chunk's inputs being zero)."""
        return _ArrayViews(self._arrays["grads"], "grads", None)

    @property
    def cell(self) -> str:
        """The recurrent cell: "rnn" (tanh), "lstm" or "gru" (charrnn_ext.core.cells)."""
        return self._arch.cell

    @property
    def num_layers(self) -> int:
        return self._arch.num_layers

    @property
    def minchar(self) -> bool:
        """Whether this is min-char-rnn's own model: one tanh layer, the original
        script's names (Wxh, Whh, Why, bh, by) and its fast kernels."""
        return self._arch.minchar

    @property
    def optimizer(self) -> str:
        """The update the training calls apply: a name in charrnn_ext.core.optimizers
        ("adagrad", "adam" or "rmsprop")."""
        return self._workspace.optimizer

    @property
    def adam_steps(self) -> int:
        """Adam's updates so far (0 with Adagrad)."""
        return self._workspace.adam_steps

    @property
    def dtype(self) -> np.dtype:
        """What the model computes in and holds its arrays as: float64, or
        float32 (the float32 build of the core)."""
        return next(iter(self._arrays["params"].values())).dtype

    @property
    def embedding_size(self) -> int:
        """The width of the input embedding; 0: one-hot input."""
        return self._arch.D

    @property
    def hidden_size(self) -> int:
        return self._arch.H

    @property
    def vocab_size(self) -> int:
        return self._arch.V

    @property
    def state_size(self) -> int:
        """S: rows of a stream's state (per layer its h, and for the LSTM then c)."""
        return self._arch.num_layers * self._arch.state_parts * self._arch.H

    def top_hidden(self, state):
        """The output layer's input in a state (S, B): the top layer's h (H, B)."""
        a = self._arch
        at = (a.num_layers - 1) * a.state_parts * a.H
        return np.asarray(state)[at:at + a.H]

    def __repr__(self) -> str:
        a = self._arch
        extra = ((f", cell={a.cell!r}" if a.cell != "rnn" else "")
                 + (f", num_layers={a.num_layers}" if a.num_layers != 1 else "")
                 + (f", dropout={self.dropout}" if self.dropout else "")
                 + (f", embedding_size={a.D}" if a.D else "")
                 + (f", optimizer={self.optimizer!r}" if self.optimizer != "adagrad" else "")
                 + (f", dtype={self.dtype.name!r}" if self.dtype != np.float64 else ""))
        return f"CharRNN(vocab_size={a.V}, hidden_size={a.H}{extra})"

    def _check_state(self) -> None:
        """ValueError unless the params are finite, the memory finite and
        non-negative and Adam's moment finite, as the core needs them (it runs
        without such checks): the arrays whose views were handed out (changed
        through model.params, perhaps) or, after a diverged step, all of them.
        Called with the lock held, before the core runs."""
        handouts = self._handouts
        if handouts.clean():
            return
        keys = [(kind, n) for kind in ("params", "memory", "moment") for n in self._arrays[kind]]
        todo, handed = handouts.pending(keys)
        bad = None
        with np.errstate(all="ignore"):
            for kind, name in todo:
                arr = self._arrays[kind][name]
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
            if kind == "moment":
                raise ValueError(f"moment['{name}'][{where}] is {value}: Adam's first moment "
                                 f"must be finite")
            raise ValueError(
                f"memory['{name}'][{where}] is {value}: the optimiser's memory must be finite "
                f"and non-negative (it sums squared gradients)")
        handouts.checked = handed
        handouts.everything = False

    def params_finite(self) -> bool:
        """Whether every parameter is finite (False after a training step whose
        update overflowed: the next call would refuse them). Reads them only."""
        with np.errstate(all="ignore"):
            return all(_first_invalid(a) is None for a in self._arrays["params"].values())

    def copy(self, dropout: float | None = None) -> "CharRNN":
        """An independent model with copies of params and the optimiser's state,
        dropout's Generator in its state; ``dropout``: the copy's rate from here
        on (default: this model's)."""
        model = CharRNN.from_params(
            self._arrays["params"], self._arrays["memory"],
            self.dropout if dropout is None else dropout, cell=self.cell,
            optimizer=self.optimizer, moment=self._arrays["moment"] or None,
            adam_steps=self.adam_steps, dtype=self.dtype)
        model._rng.bit_generator.state = self._rng.bit_generator.state
        return model

    def __copy__(self) -> "CharRNN":
        return self.copy()

    __reduce__, __eq__ = reduce_model, same_model   # pickled as its arrays; equal as them

    def __deepcopy__(self, memo) -> "CharRNN":
        return self.copy()

    # -- validation helpers -------------------------------------------------------------
    def _hidden(self, hprev, streams: int = 1, batched: bool = False) -> np.ndarray:
        """A fresh C-contiguous (L*K, B, H) copy of hprev in the model's dtype,
        [:, b] the state of stream b (None means zeros). hprev is (S, B) for
        inputs of B streams (``batched``); for one stream it may also be (S, 1)
        or (S,)."""
        S, H, B, dtype = self.state_size, self.hidden_size, streams, self.dtype
        LK = S // H
        if hprev is None:
            return np.zeros((LK, B, H), dtype)
        arr = hprev if type(hprev) is np.ndarray else _real_array(hprev, "hprev")
        shape = arr.shape
        if not ((batched and shape == (S, B)) or (B == 1 and shape in ((S, 1), (S,)))):
            _real_array(arr, "hprev")  # a TypeError for a bad dtype comes first
            raise ValueError(hidden_shape_error(shape, S, B, batched))
        with np.errstate(over="ignore"):   # a value float32 cannot hold: inf, refused below
            h = np.array(_real_array(arr, "hprev").reshape(LK, H, B).transpose(0, 2, 1),
                         dtype=dtype, order="C")
        if not np.isfinite(h).all():  # after the cast: what the core reads
            raise ValueError("hprev contains NaN or infinite values")
        return h

    @staticmethod
    def _returned_hidden(h: np.ndarray, batched: bool = True) -> np.ndarray:
        """The core's (L*K, B, H) states as returned: (S, B) (one stream: (S, 1))."""
        LK, B, H = h.shape
        return np.ascontiguousarray(h.transpose(0, 2, 1).reshape(LK * H, B))

    def _rows(self) -> int:
        """The widest row of a step's work: the output layer's V or the gates' G*H."""
        return max(self.vocab_size, self._arch.gates * self.hidden_size)

    def _chunk(self, inputs, targets, hprev, whole: bool = True):
        """Validated private copies of what the core reads: inputs and targets
        (T, B) time-major, hprev (L*K, B, H); and whether the call is batched (2-D
        inputs). ``whole``: the core keeps the whole chunk in its work buffers
        (train_step, loss_and_grads), whose offsets are C ints; loss() keeps
        blocks of _core.loss_block_steps(B) steps."""
        V, width = self.vocab_size, self._rows()
        for given in (inputs, targets):  # the size check first, before any copy
            if isinstance(given, np.ndarray) and given.ndim in (1, 2) and given.size:
                B, T = (1, given.size) if given.ndim == 1 else given.shape
                steps = T if whole else min(T, _core.loss_block_steps(min(B, _MAX_ELEMENTS)))
                if (steps + 1) * B * width > _MAX_ELEMENTS:
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
        if (steps + 1) * B * width > _MAX_ELEMENTS:
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

    def _dropping(self) -> bool:
        return self.dropout > 0.0 and self.num_layers > 1

    def _uniforms(self, T: int, B: int, uniforms, steps: int | None = None):
        """Dropout's draws (L-1, T, B, H) of a step (``steps``: of that many,
        (steps, L-1, T, B, H)): given (tests), or from the model's Generator;
        None without dropout."""
        if not self._dropping():
            return None
        shape = (self.num_layers - 1, T, B, self.hidden_size)
        if steps is not None:
            return self._rng.random((steps,) + shape)
        if uniforms is None:
            return self._rng.random(shape)
        u = np.array(uniforms, dtype=np.float64, order="C", copy=True)
        if u.shape != shape or not np.isfinite(u).all():
            raise ValueError(f"dropout uniforms must have shape {shape}, finite")
        return u

    # -- min-char-rnn's functions, for every model -----------------------------------
    def loss_and_grads(self, inputs, targets, hprev, uniforms=None):
        """min-char-rnn's lossFun over B streams: (loss, grads, h); nothing is
        updated. Each stream's loss is summed over its T steps; ``loss`` is the
        mean over streams and ``grads`` (a dict of fresh arrays shaped like
        params) the mean gradients, clipped to [-CLIP, CLIP] elementwise (with
        one stream, min-char-rnn's lossFun exactly). h: the last states. With
        dropout, ``uniforms`` (L-1, T, B, H) are its draws (None: the model's
        Generator draws them)."""
        x, y, h, batched = self._chunk(inputs, targets, hprev)
        u = self._uniforms(*x.shape, uniforms)
        with self._lock:
            self._check_state()
            loss = self._workspace.loss_and_grads(x, y, h, u)
            grads = {n: g.copy() for n, g in self._arrays["grads"].items()}
        return loss, grads, self._returned_hidden(h, batched)

    def train_step(self, inputs, targets, hprev, learning_rate: float = LEARNING_RATE,
                   uniforms=None):
        """One step over B streams: loss_and_grads, then the optimiser's update
        of params and its state in place. Returns (loss, h). A NaN or infinite
        loss raises TrainingDiverged (its update has been applied: see there)."""
        x, y, h, batched = self._chunk(inputs, targets, hprev)
        lr = _as_learning_rate(learning_rate)
        u = self._uniforms(*x.shape, uniforms)
        with self._lock:
            self._check_state()
            choice = self._threads.setdefault(x.shape, _ThreadChoice())   # (T, B)
            threads = choice.pick(self._workspace.threads(x.shape[1], x.shape[0]))
            started = time.perf_counter()
            loss = self._workspace.loss_and_grads(x, y, h, u, lr, True, threads)
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
        states become zero and position 0; each stream then trains on its ids
        position .. position + seq_length (inputs, and targets one later), and
        position advances by seq_length. hprev: the states to start from, (S,
        streams) (one stream: (S, 1) or (S,)); None is zeros.

        Returns (losses, h, position): the loss of each step as train_step
        returns it, the last states ((S, streams)) and the position of the
        next step. A NaN or infinite loss stops training after that step and
        raises TrainingDiverged, which holds the losses, states and position of
        the steps run. The same, bit for bit, as the loop of train_step calls
        it replaces (dropout's draws too). The params and optimiser state and
        the ids the steps will read are checked before the first step; each
        call of the core (about 0.1 s of steps) gets a private int32 copy of
        the ids it reads. Ctrl-C (KeyboardInterrupt) is seen between the
        core's calls: the model is then at a step boundary, but the losses,
        state and position of the steps done are not returned."""
        V = self.vocab_size
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        T = _positive_int(seq_length, "seq_length")
        B = _positive_int(streams, "streams")
        if isinstance(position, bool) or not isinstance(position, numbers.Integral) or position < 0:
            raise ValueError(f"position must be a non-negative integer, got {position!r}")
        lr = _as_learning_rate(learning_rate)
        if (T + 1) * B * self._rows() > _MAX_ELEMENTS:
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
        per_step = (self.num_layers - 1) * T * B * self.hidden_size if self._dropping() else 0
        done = 0
        with self._lock:
            self._check_state()
            choice = self._threads.setdefault((T, B), _ThreadChoice())
            block = self._train_block.get((T, B), 1)   # steps per core call
            while done < steps:
                threads = choice.pick(self._workspace.threads(B, T))
                probe = choice.probing
                n = min(steps - done, choice.short_call(block),
                        max(1, _UNIFORMS_PER_CALL // max(per_step, 1)))
                window, offset, n = train_window(ids, B, part, position, n, T, V)
                u = self._uniforms(T, B, None, n)
                started = time.perf_counter()
                k, position, bad = self._workspace.train(
                    window, offset, part, position, h, T, lr, losses[done:done + n], threads, u)
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
                losses[:done], self._returned_hidden(h), position)
        return losses, self._returned_hidden(h), position

    def loss(self, inputs, targets, hprev, return_hidden: bool = False):
        """Forward-only cross-entropy (nats) of a chunk of any length: each
        stream's summed loss, then the mean over streams; no dropout. With
        return_hidden=True returns (loss, h)."""
        x, y, h, batched = self._chunk(inputs, targets, hprev, whole=False)
        with self._lock:
            self._check_state()
            loss = self._workspace.loss(x, y, h)
        return (loss, self._returned_hidden(h, batched)) if return_hidden else loss

    def advance(self, inputs, hprev=None) -> np.ndarray:
        """The state (S, 1) after reading ``inputs`` (one stream) from ``hprev``."""
        x = _as_ids(inputs, "inputs", self.vocab_size, allow_empty=True)
        h = self._hidden(hprev)
        with self._lock:
            self._check_state()
            if x.size:
                self._workspace.advance(x, h)
        return self._returned_hidden(h)

    def trace(self, ids, hprev=None) -> tuple[np.ndarray, np.ndarray]:
        """One stream read over ``ids`` (n,) from ``hprev`` ((S, 1) or (S,);
        None: zeros), weights frozen: (states (n, S), probs (n, V)), states[t]
        the state after reading ids[t] (top_hidden of its transpose: the top
        layer's h) and probs[t] the model's prediction of the character after
        it, softmax(Why h + by). states[-1] is ``advance(ids, hprev)``.
        (charrnn-inspect's numbers; reference.trace is the same in numpy.)"""
        x = _as_ids(ids, "ids", self.vocab_size)
        V, S, n = self.vocab_size, self.state_size, x.size
        if n * max(V, S) > _MAX_ELEMENTS:
            raise ValueError(f"{n:,} ids are too many for one trace at this model size "
                             f"(at most {_MAX_ELEMENTS // max(V, S):,}); trace them in pieces, "
                             f"each from the last state of the one before")
        h = self._hidden(hprev)
        states, probs = np.empty((n, S), self.dtype), np.empty((n, V), self.dtype)
        with self._lock:
            self._check_state()
            self._workspace.trace(x, h, states, probs)
        return states, probs

    def sample(self, h, seed_ix, n, temperature: float = 1.0, rng=None, return_hidden: bool = False,
               top_k: int = 0, top_p: float = 1.0):
        """min-char-rnn's sample(): n ids generated from state h with seed_ix as
        the first input. Draws follow ``rng`` (a numpy Generator, an int seed or
        None) exactly as ``rng.choice(V, p=softmax(y / T))`` would; temperature
        0 is greedy argmax. top_k > 0 / top_p < 1 draw from the k likeliest ids
        / the top-p nucleus only (reference.top_filter), ties by id: top_k 1 is
        greedy. h is not modified; with return_hidden=True returns (ids,
        h_after). Each call first makes a transposed copy of Why, so ask for
        many characters per call rather than one at a time."""
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
                self._workspace.sample(hv, int(seed_ix), uniforms, temperature, out, top_k, top_p)
        return (out, self._returned_hidden(hv)) if return_hidden else out
