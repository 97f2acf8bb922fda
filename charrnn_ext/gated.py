"""GatedCharRNN: the LSTM, GRU and stacked tanh RNN on the core's GatedWorkspace, with validated inputs.

``CharRNN(V, H, seed, cell="lstm", num_layers=2, dropout=0.2)`` returns one
(charrnn_ext.model); ``cell="rnn", num_layers=1`` stays min-char-rnn's
CharRNN. The same methods as CharRNN, over a state of S rows per stream
instead of H: per layer its h (H rows), and for the LSTM then its c (H
rows); S = L*H, or 2*L*H for the LSTM. Parameters are named as PyTorch's
nn.RNN / nn.LSTM / nn.GRU name them (weight_ih_l0, ...), then Why (V, H) and
by (V,) (nn.Linear(H, V)'s weight and bias); charrnn_ext.reference_gated is
the oracle. Dropout (between layers, training steps only) draws its
uniforms from the model's own numpy Generator, seeded from ``seed``.
"""
from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Mapping

import numpy as np

from . import reference_gated
from ._arrays import _MAX_ELEMENTS, _first_invalid, _owner, _real_array, _storage, readonly_view
from ._dispatch import core_for
from ._pickling import reduce_model, same_model
from ._ids import (_as_ids, _as_learning_rate, _dtype, _embedding_size, _id_vector, _init,
                   _optimizer, _optimizer_state, _positive_int, _seed, _top, _draws)
from .datapass import chunk_wraps
from .defaults import (ADAGRAD_EPS, ADAM_BETAS, ADAM_EPS, CLIP, HIDDEN_SIZE, LEARNING_RATE,
                       SEQ_LENGTH)
from .model import TrainingDiverged
from .spec import CELLS, MAX_LAYERS  # noqa: F401 (public here too)

_GATES_TO_CELL = {1: "rnn", 4: "lstm", 3: "gru"}


def check_architecture(cell, num_layers, dropout) -> tuple:
    """(cell, num_layers, dropout) validated: cell in CELLS, num_layers >= 1, 0 <= dropout < 1."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    L = _positive_int(num_layers, "num_layers")
    if L > MAX_LAYERS:
        raise ValueError(f"num_layers must be at most {MAX_LAYERS}, got {L}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
            or not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return cell, L, float(dropout)


class _Views(Mapping):
    """name -> a fresh view of one tensor of a flat array (read-only views for grads)."""

    def __init__(self, flat: np.ndarray, layout: list, writeable: bool):
        self._flat, self._writeable = flat, writeable
        self._layout = {n: (o, s) for n, o, s in layout}

    def __getitem__(self, name):
        offset, shape = self._layout[name]
        flat = self._flat if self._writeable else readonly_view(self._flat)
        return flat[offset:offset + math.prod(shape)].reshape(shape)

    def __iter__(self):
        return iter(self._layout)

    def __len__(self):
        return len(self._layout)

    def __repr__(self):
        return repr(dict(self))


class GatedCharRNN:
    """An L-layer character model with cell "rnn" (tanh), "lstm" or "gru",
    PyTorch's equations, trained with min-char-rnn's clip and Adagrad.

    loss_and_grads, train_step and loss read one stream (inputs, targets
    (T,), state (S, 1) or (S,)) or B streams (inputs, targets (B, T), state
    (S, B)): the loss is the mean over streams of each stream's summed loss,
    the gradients the mean over streams, clipped after averaging. A state of
    None is zeros. Dropout applies in loss_and_grads, train_step and train
    only."""

    def __init__(self, vocab_size: int, hidden_size: int = HIDDEN_SIZE, seed=None, *,
                 cell: str = "lstm", num_layers: int = 1, dropout: float = 0.0,
                 optimizer: str = "adagrad", embedding_size: int = 0, init: str = "pytorch",
                 dtype="float64"):
        """init: every gated or stacked model starts from PyTorch's initialisation
        (either value is accepted); embedding_size D > 0: an input embedding
        (V, D), "embed", read by layer 0 (D = 0: one-hot input)."""
        V = _positive_int(vocab_size, "vocab_size")
        H = _positive_int(hidden_size, "hidden_size")
        cell, L, dropout = check_architecture(cell, num_layers, dropout)
        optimizer = _optimizer(optimizer)
        D = _embedding_size(embedding_size)
        dtype = _dtype(dtype)
        _init(init)
        params = reference_gated.init_params(cell, V, H, L, _seed(seed), D)
        self._install(cell, L, V, H, D, dropout, params, None, seed, optimizer, None, 0, dtype)

    @classmethod
    def from_params(cls, params, memory=None, dropout: float = 0.0, seed=None, *,
                    optimizer: str = "adagrad", moment=None,
                    adam_steps: int = 0, dtype="float64") -> "GatedCharRNN":
        """A model holding copies of ``params`` (PyTorch's names, see the module),
        its cell and layers read from their names and shapes, computing in
        ``dtype`` (float64, or float32: the arrays are cast)."""
        if not isinstance(params, Mapping) or "weight_hh_l0" not in params or "Why" not in params:
            raise ValueError("params must be a dict of weight_ih_l0, weight_hh_l0, ..., Why, by")
        V, H = np.shape(params["Why"])
        L = sum(1 for n in params if n.startswith("weight_hh_l"))
        cell = _GATES_TO_CELL.get(np.shape(params["weight_hh_l0"])[0] // max(H, 1))
        if cell is None:
            raise ValueError("weight_hh_l0 must have G*H rows, G = 1 (rnn), 4 (lstm) or 3 (gru)")
        optimizer, adam_steps = _optimizer_state(optimizer, moment, adam_steps)
        dtype = _dtype(dtype)
        model = cls.__new__(cls)
        D = np.shape(params["embed"])[1] if "embed" in params else 0
        model._install(cell, L, V, H, D, check_architecture(cell, L, dropout)[2], params, memory,
                       seed, optimizer, moment, adam_steps, dtype)
        return model

    def _install(self, cell, L, V, H, D, dropout, params, memory, seed, optimizer, moment,
                 adam_steps, dtype):
        shapes = reference_gated.param_shapes(cell, V, H, L, D)
        n = sum(math.prod(s) for s in shapes.values())
        if n > _MAX_ELEMENTS or (V + H) * H * 4 > _MAX_ELEMENTS:
            raise ValueError("model too large")
        adam = optimizer == "adam"
        flat = [_storage((n,), dtype) for _ in range(4 if adam else 3)]
        self._storages = [_owner(a) for a in flat]
        self._flat, self._mflat, self._gflat = flat[:3]
        self._moflat = flat[3] if adam else None
        self._ws = core_for(dtype).GatedWorkspace(
            cell, L, V, H, flat[0], self._mflat, self._gflat, self._moflat, optimizer=optimizer,
            clip_bound=CLIP, eps=ADAM_EPS if adam else ADAGRAD_EPS, beta1=ADAM_BETAS[0],
            beta2=ADAM_BETAS[1], dropout=dropout, embedding_size=D)
        self._ws.adam_steps = adam_steps
        self._layout = self._ws.layout()
        self.cell, self.num_layers, self.dropout = cell, L, dropout
        self._V, self._H = V, H
        for kind, given in (("params", params), ("memory", memory), ("moment", moment)):
            if given is None or (kind == "moment" and not adam):
                continue
            target = _Views({"params": self._flat, "memory": self._mflat,
                             "moment": self._moflat}[kind], self._layout, True)
            if set(given) != set(shapes):
                raise ValueError(f"{kind} must hold exactly {', '.join(shapes)}")
            for name, shape in shapes.items():
                arr = _real_array(given[name], f"{kind}['{name}']")
                if arr.size != math.prod(shape) or arr.shape not in (shape, shape + (1,)):
                    raise ValueError(f"{kind}['{name}'] must have shape {shape}, got {arr.shape}")
                with np.errstate(over="ignore"):   # beyond float32: inf, refused below
                    target[name][...] = arr.reshape(shape)
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)   # dropout's draws
        self._check_state()

    # -- what it holds --------------------------------------------------------
    @property
    def params(self) -> Mapping:
        return _Views(self._flat, self._layout, True)

    @property
    def memory(self) -> Mapping:
        return _Views(self._mflat, self._layout, True)

    @property
    def grads(self) -> Mapping:
        return _Views(self._gflat, self._layout, False)

    @property
    def moment(self) -> Mapping:
        """Adam's first moment (empty with Adagrad)."""
        return _Views(self._moflat, self._layout, True) if self._moflat is not None else {}

    @property
    def optimizer(self) -> str:
        return self._ws.optimizer

    @property
    def adam_steps(self) -> int:
        return self._ws.adam_steps

    @property
    def dtype(self) -> np.dtype:
        """The compute type: float64 (the default and the reference) or float32."""
        return self._flat.dtype

    @property
    def embedding_size(self) -> int:
        """D, the input embedding's width; 0: one-hot input."""
        return self._ws.embedding_size

    @property
    def hidden_size(self) -> int:
        return self._H

    @property
    def vocab_size(self) -> int:
        return self._V

    @property
    def state_size(self) -> int:
        """S: rows of a stream's state (per layer h, and for the LSTM then c)."""
        return reference_gated.state_size(self.cell, self._H, self.num_layers)

    def top_hidden(self, state):
        """The output layer's input in a state (S, B): the top layer's h (H, B)."""
        H, K = self._H, 2 if self.cell == "lstm" else 1
        at = (self.num_layers - 1) * K * H
        return np.asarray(state)[at:at + H]

    def __repr__(self):
        return (f"CharRNN(vocab_size={self._V}, hidden_size={self._H}, cell={self.cell!r}, "
                f"num_layers={self.num_layers}, dropout={self.dropout}"
                + (f", embedding_size={self.embedding_size}" if self.embedding_size else "")
                + (", optimizer='adam'" if self.optimizer == "adam" else "")
                + (f", dtype={self.dtype.name!r})" if self.dtype != np.float64 else ")"))

    def params_finite(self) -> bool:
        """Whether every parameter is finite (as CharRNN.params_finite)."""
        with np.errstate(all="ignore"):
            return _first_invalid(self._flat) is None

    def copy(self, dropout: float | None = None) -> "GatedCharRNN":
        """An independent copy, dropout's Generator in its state; ``dropout``:
        the copy's rate from here on (default: this model's)."""
        model = GatedCharRNN.from_params(self.params, self.memory,
                                         self.dropout if dropout is None else dropout,
                                         optimizer=self.optimizer,
                                         moment=self.moment or None, adam_steps=self.adam_steps,
                                         dtype=self.dtype)
        model._rng.bit_generator.state = self._rng.bit_generator.state
        return model

    def __copy__(self) -> "GatedCharRNN":
        return self.copy()

    __reduce__, __eq__ = reduce_model, same_model   # pickled as its arrays; equal as them

    def __deepcopy__(self, memo) -> "GatedCharRNN":
        return self.copy()

    def _check_state(self):
        with np.errstate(all="ignore"):
            if not np.isfinite(self._flat).all():
                raise ValueError("the parameters must be finite")
            if not (np.isfinite(self._mflat).all() and (self._mflat >= 0).all()):
                raise ValueError("the optimiser's memory must be finite and non-negative")
            if self._moflat is not None and not np.isfinite(self._moflat).all():
                raise ValueError("Adam's first moment must be finite")

    # -- validation -----------------------------------------------------------
    def _state(self, state, B: int, batched: bool) -> np.ndarray:
        """A private (L*K, B, H) copy of state (S, B) (one stream: (S, 1) or (S,))."""
        S, H, L = self.state_size, self._H, self.num_layers
        K = S // (L * H)
        if state is None:
            return np.zeros((L * K, B, H), self.dtype)
        arr = _real_array(state, "state")
        if not ((batched and arr.shape == (S, B)) or (B == 1 and arr.shape in ((S, 1), (S,)))):
            raise ValueError(f"state must have shape ({S}, {B}) (S, B), got {arr.shape}")
        with np.errstate(over="ignore"):   # beyond float32: inf, refused below
            out = np.array(arr.reshape(L * K, H, B).transpose(0, 2, 1), dtype=self.dtype,
                           order="C", copy=True)   # private: the core writes into it
        if not np.isfinite(out).all():
            raise ValueError("state contains NaN or infinite values")
        return out

    @staticmethod
    def _returned(state: np.ndarray) -> np.ndarray:
        """The core's (L*K, B, H) as (S, B)."""
        LK, B, H = state.shape
        return np.ascontiguousarray(state.transpose(0, 2, 1).reshape(LK * H, B))

    def _ids_pair(self, inputs, targets):
        """Checked time-major int32 copies (T, B) of inputs and targets, and
        whether they were batched (2-D)."""
        V = self._V
        x = _as_ids(inputs, "inputs", V, streams=True)
        y = _as_ids(targets, "targets", V, streams=True)
        if x.shape != y.shape:
            raise ValueError(f"inputs and targets must have the same shape, got {x.shape} "
                             f"and {y.shape}")
        batched = x.ndim == 2
        B, T = x.shape if batched else (1, x.size)
        return (np.ascontiguousarray(x.reshape(B, T).T, dtype=np.int32),
                np.ascontiguousarray(y.reshape(B, T).T, dtype=np.int32), batched)

    def _chunk(self, inputs, targets, state):
        x, y, batched = self._ids_pair(inputs, targets)
        T, B = x.shape
        if (T + 1) * B * max(self._V, 4 * self._H) > _MAX_ELEMENTS:
            raise ValueError("chunk too large: split it")
        return x, y, self._state(state, B, batched), batched

    def _uniforms(self, T: int, B: int, uniforms):
        """Dropout's draws (L-1, T, B, H): given (tests), or from the model's Generator."""
        if self.dropout == 0.0 or self.num_layers == 1:
            return None
        shape = (self.num_layers - 1, T, B, self._H)
        if uniforms is None:
            return self._rng.random(shape)
        u = np.array(uniforms, dtype=np.float64, order="C", copy=True)
        if u.shape != shape or not (np.isfinite(u).all()):
            raise ValueError(f"dropout uniforms must have shape {shape}")
        return u

    # -- the seed's functions --------------------------------------------------
    def loss_and_grads(self, inputs, targets, state, uniforms=None):
        """(loss, grads, state): the mean loss over streams, the mean gradients
        clipped to [-CLIP, CLIP], the last states; nothing is updated. With
        dropout, ``uniforms`` (L-1, T, B, H) are its draws (None: the model's
        Generator draws them)."""
        x, y, st, batched = self._chunk(inputs, targets, state)
        u = self._uniforms(*x.shape, uniforms)
        with self._lock:
            self._check_state()
            loss = self._ws.loss_and_grads(x, y, st, u)
            grads = {n: g.copy() for n, g in self.grads.items()}
        return loss, grads, self._returned(st)

    def train_step(self, inputs, targets, state, learning_rate: float = LEARNING_RATE,
                   uniforms=None):
        """loss_and_grads, then Adagrad on params and memory in place: (loss, state)."""
        x, y, st, batched = self._chunk(inputs, targets, state)
        lr = _as_learning_rate(learning_rate)
        u = self._uniforms(*x.shape, uniforms)
        with self._lock:
            self._check_state()
            loss = self._ws.loss_and_grads(x, y, st, u, lr, True)
        if not math.isfinite(loss):
            raise TrainingDiverged(f"training diverged: the step's loss is {loss}",
                                   np.array([loss]), self._returned(st))
        return loss, self._returned(st)

    def train(self, data, steps: int, seq_length: int = SEQ_LENGTH, hprev=None,
              position: int = 0, learning_rate: float = LEARNING_RATE, streams: int = 1):
        """min-char-rnn's training loop as CharRNN.train runs it (the same data
        pass: ``streams`` parts, zero states and position 0 where chunk_wraps),
        one train_step per chunk. Returns (losses, state, position)."""
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
        T = _positive_int(seq_length, "seq_length")
        B = _positive_int(streams, "streams")
        lr = _as_learning_rate(learning_rate)
        ids = _id_vector(data, "data")
        part = ids.size // B
        if part < T + 1:
            raise ValueError(f"data of {ids.size} ids in {B} stream part(s) of {part}: each "
                             f"part needs at least seq_length + 1 = {T + 1} ids")
        parts = np.ascontiguousarray(ids[:B * part].reshape(B, part))
        if parts.size and (parts.min() < 0 or parts.max() >= self._V):
            raise ValueError(f"data holds ids outside [0, {self._V})")
        parts = parts.astype(np.int32)
        position = min(int(position), part)
        st = self._state(hprev, B, True)
        losses = np.empty(int(steps))
        with self._lock:
            self._check_state()
            for k in range(int(steps)):
                if chunk_wraps(position, part, T):
                    st[...] = 0.0
                    position = 0
                x = np.ascontiguousarray(parts[:, position:position + T].T)
                y = np.ascontiguousarray(parts[:, position + 1:position + T + 1].T)
                losses[k] = self._ws.loss_and_grads(x, y, st, self._uniforms(T, B, None), lr,
                                                    True)
                position += T
                if not math.isfinite(losses[k]):
                    raise TrainingDiverged(f"training diverged at step {k}", losses[:k + 1],
                                           self._returned(st), position)
        return losses, self._returned(st), position

    def loss(self, inputs, targets, state, return_hidden: bool = False):
        """Forward-only loss (nats; mean over streams of the summed losses) of a
        chunk of any length, no dropout; with return_hidden, (loss, state)."""
        xt, yt, batched = self._ids_pair(inputs, targets)
        T, B = xt.shape
        st = self._state(state, B, batched)
        with self._lock:
            self._check_state()
            loss = self._ws.loss(xt, yt, st) if T else 0.0
        return (loss, self._returned(st)) if return_hidden else loss

    def advance(self, inputs, hprev=None) -> np.ndarray:
        """The state (S, 1) after reading ``inputs`` (one stream) from ``hprev``."""
        x = _as_ids(inputs, "inputs", self._V, allow_empty=True)
        st = self._state(hprev, 1, False)
        with self._lock:
            self._check_state()
            if x.size:
                self._ws.advance(np.ascontiguousarray(x.reshape(-1, 1), dtype=np.int32), st)
        return self._returned(st)

    def trace(self, ids, hprev=None) -> tuple[np.ndarray, np.ndarray]:
        """One stream read over ``ids`` (n,) from ``hprev`` (S, 1) or (S,),
        weights frozen: (states (n, S), probs (n, V)), states[t] the state after
        reading ids[t] (top_hidden of its transpose: the top layer's h) and
        probs[t] softmax(Why h + by), the prediction of the next character.
        states[-1] is ``advance(ids, hprev)``."""
        x = _as_ids(ids, "ids", self._V)
        st = self._state(hprev, 1, False)
        n, S = x.size, self.state_size
        if n * max(S, self._V) > _MAX_ELEMENTS:
            raise ValueError(f"{n:,} ids are too many for one trace: trace them in pieces")
        states = np.empty((n, S), self.dtype)
        with self._lock:
            self._check_state()
            if n:
                self._ws.trace(np.ascontiguousarray(x, dtype=np.int32), st, states)
        # the core's state layout (L*K, H) per row is the (S,) layout of the API
        logits = self.top_hidden(states.T).T @ self.params["Why"].T + self.params["by"]
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return states, probs / probs.sum(axis=1, keepdims=True)

    def sample(self, h, seed_ix, n, temperature: float = 1.0, rng=None,
               return_hidden: bool = False, top_k: int = 0, top_p: float = 1.0):
        """n ids from state h with seed_ix as the first input, drawn as
        CharRNN.sample draws them (rng.random(n) by inverse CDF; temperature 0:
        argmax; top_k, top_p as there); h is not modified; with return_hidden,
        (ids, state)."""
        V = self._V
        if isinstance(seed_ix, bool) or not isinstance(seed_ix, numbers.Integral) \
                or not 0 <= seed_ix < V:
            raise ValueError(f"seed_ix must be an id in [0, {V}), got {seed_ix!r}")
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        temperature, (top_k, top_p) = float(temperature), _top(top_k, top_p)
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"temperature must be finite and non-negative, got {temperature}")
        st = self._state(h, 1, False)
        uniforms = _draws(rng, int(n)) if temperature > 0 else np.zeros(int(n))
        out = np.zeros(int(n), dtype=np.int32)
        with self._lock:
            self._check_state()
            if n:
                self._ws.sample(st, int(seed_ix), uniforms, temperature, out, top_k, top_p)
        return (out, self._returned(st)) if return_hidden else out
