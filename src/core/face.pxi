# Workspace: the core's one face for every model (any stack of cells), choosing its kernels once.
#
# charrnn_ext.model builds one Workspace per model and hands it validated arrays
# only (ids in [0, V), shapes, C-contiguous reals, finite values):
#     params, memory, grads (and Adam's moment): flat (n_params,), in the layout of layout()
#     ids (T, B) time-major; states (L*K, B, H): per layer its h, then its c for the LSTM (K = 2)
# Which kernels run is decided here, once, at construction:
#   * min-char-rnn's model (cell "rnn", one layer, parameters named as the
#     original script names them: Wxh (H, I), Whh (H, H), Why (V, H), bh (H, 1),
#     by (V, 1), then embed (V, D) with an input embedding) runs the
#     TanhWorkspace's kernels (workspace.pxi: pipelined steps, packed panels);
#   * every other model (LSTM, GRU, stacked or PyTorch-named tanh layers) runs
#     the StackWorkspace's (gated_workspace.pxi), PyTorch's names and layout.
# Both read the same flat arrays through views: the caller never sees which.


cdef list minchar_layout(int V, int H, int D):
    """[(name, offset, shape)] of min-char-rnn's parameters in one flat array."""
    shapes = [("Wxh", (H, D if D else V)), ("Whh", (H, H)), ("Why", (V, H)), ("bh", (H, 1)),
              ("by", (V, 1))] + ([("embed", (V, D))] if D else [])
    out, at = [], 0
    for name, shape in shapes:
        out.append((name, at, shape))
        at += shape[0] * shape[1]
    return out


cdef class Workspace:
    """One model's parameters, optimiser state and gradients (flat, held and
    updated in place) and its work buffers, for any cell ("rnn" tanh, "lstm",
    "gru"), layer count and input embedding; ``minchar`` asks for
    min-char-rnn's layout and kernels (cell "rnn", one layer). One call at a
    time (the model's lock)."""
    cdef readonly str cell
    cdef readonly int num_layers, vocab_size, hidden_size, embedding_size, state_parts
    cdef readonly bint minchar
    cdef object kernels     # the TanhWorkspace or the StackWorkspace
    cdef object flat        # the parameters, (n_params,)
    cdef list _layout

    def __init__(self, str cell, int num_layers, int vocab_size, int hidden_size,
                 real[::1] params, real[::1] memory, real[::1] grads, moment=None, *,
                 bint minchar=False, str optimizer="adagrad", f64 clip_bound, f64 eps,
                 f64 beta1=0.9, f64 beta2=0.999, f64 alpha=0.99, f64 dropout=0.0,
                 int embedding_size=0):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}")
        self.cell, self.num_layers, self.minchar = cell, num_layers, minchar
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.embedding_size = embedding_size
        self.state_parts = 2 if CELLS[cell] == CELL_LSTM else 1
        self.flat = np.asarray(params)
        if not minchar:
            self.kernels = StackWorkspace(
                cell, num_layers, vocab_size, hidden_size, params, memory, grads, moment,
                optimizer=optimizer, clip_bound=clip_bound, eps=eps, beta1=beta1, beta2=beta2,
                alpha=alpha, dropout=dropout, embedding_size=embedding_size)
            self._layout = self.kernels.layout()
            return
        if cell != "rnn" or num_layers != 1 or dropout != 0.0:
            raise ValueError("min-char-rnn's kernels run one tanh layer without dropout")
        if vocab_size < 1 or hidden_size < 1 or embedding_size < 0:
            raise ValueError("bad sizes")
        self._layout = minchar_layout(vocab_size, hidden_size, embedding_size)
        n = sum(shape[0] * shape[1] for _, _, shape in self._layout)
        flats = [params, memory, grads] + ([moment] if moment is not None else [])
        if any(np.asarray(f).shape[0] != n for f in flats):
            raise ValueError(f"params, memory, grads and moment must hold {n} values")
        views = [[np.asarray(f)[at:at + shape[0] * shape[1]].reshape(shape)
                  for _, at, shape in self._layout] for f in flats]
        self.kernels = TanhWorkspace(
            views[0], views[1], views[2], views[3] if moment is not None else None,
            optimizer=optimizer, clip_bound=clip_bound, eps=eps, beta1=beta1, beta2=beta2,
            alpha=alpha)

    def layout(self):
        """[(name, offset, shape)] of the flat parameters, in storage order."""
        return list(self._layout)

    @property
    def optimizer(self):
        return self.kernels.optimizer

    @property
    def adam_steps(self):
        """Adam's updates so far (the next is at step adam_steps + 1); 0 with Adagrad."""
        return self.kernels.adam_steps

    @adam_steps.setter
    def adam_steps(self, long long n):
        self.kernels.adam_steps = n

    def threads(self, int streams=1, int steps=1):
        """The threads a training call of chunks of ``steps`` steps of ``streams``
        streams would use now."""
        if self.minchar:
            return self.kernels.threads(streams, steps)
        return core_threads()

    # -- training ----------------------------------------------------------------------

    def loss_and_grads(self, const i32[:, ::1] inputs, const i32[:, ::1] targets,
                       real[:, :, ::1] state, uniforms=None, f64 learning_rate=0.0,
                       bint update=False, int max_threads=0):
        """Forward, backward and clip over B streams, inputs and targets (T, B),
        from and into state (L*K, B, H): the clipped mean gradients in grads;
        with ``update``, then the optimiser's update at learning_rate. uniforms
        (L-1, T, B, H): dropout's draws (None: no dropout). Returns the mean
        over streams of the summed loss."""
        if not self.minchar:
            return self.kernels.loss_and_grads(inputs, targets, state, uniforms, learning_rate,
                                               update, max_threads)
        if update:
            return self.kernels.train_step(inputs, targets, state[0], learning_rate, max_threads)
        return self.kernels.loss_and_grads(inputs, targets, state[0])

    def train(self, const i32[:, ::1] data, Py_ssize_t offset, Py_ssize_t part,
              Py_ssize_t position, real[:, :, ::1] state, int T, f64 learning_rate,
              real[::1] losses, int max_threads=0, uniforms=None):
        """min-char-rnn's training loop, len(losses) steps in one call with the
        GIL released, over B = state.shape[1] streams (TanhWorkspace.train says
        how the data pass reads data (B, W)); uniforms: dropout's draws
        (len(losses), L-1, T, B, H) or None. Returns (steps done, position, the
        flat index into data of a bad id, -2 for a chunk outside the window,
        or -1)."""
        if not self.minchar:
            return self.kernels.train(data, offset, part, position, state, T, learning_rate,
                                      losses, max_threads, uniforms)
        return self.kernels.train(data, offset, part, position, state[0], T, learning_rate,
                                  losses, max_threads)

    # -- forward only ----------------------------------------------------------------

    def loss(self, const i32[:, ::1] inputs, const i32[:, ::1] targets, real[:, :, ::1] state):
        """Forward-only loss of B streams over any number of steps, inputs and
        targets (n, B); state (L*K, B, H) becomes the last states. The mean over
        streams of the summed loss; no dropout."""
        if not self.minchar:
            return self.kernels.loss(inputs, targets, state)
        return self.kernels.loss(inputs, targets, state[0])

    def advance(self, const i32[::1] inputs, real[:, :, ::1] state):
        """The layers alone over one stream's inputs (n,), state (L*K, 1, H) in place."""
        if not self.minchar:
            self.kernels.advance(np.asarray(inputs).reshape(-1, 1), state)
        else:
            self.kernels.advance(inputs, state[0, 0])

    def trace(self, const i32[::1] inputs, real[:, :, ::1] state, real[:, ::1] states,
              real[:, ::1] probs):
        """One stream read over inputs (n >= 1,) from state (L*K, 1, H), weights
        frozen: states[t] (n, L*K*H) the state after inputs[t], probs[t] (n, V)
        softmax(Why h + by) of its top layer's h, the prediction of the next
        character. state may be changed."""
        cdef int H = self.hidden_size, at
        if self.minchar:
            self.kernels.trace(inputs, state[0, 0], states, probs)
            return
        self.kernels.trace(inputs, state, states)
        at = (self.num_layers - 1) * self.state_parts * H
        where = {name: (offset, shape) for name, offset, shape in self._layout}
        (w, (V, _)), (b, _) = where["Why"], where["by"]
        Why, by = self.flat[w:w + V * H].reshape(V, H), self.flat[b:b + V]
        logits = np.asarray(states)[:, at:at + H] @ Why.T + by
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        np.asarray(probs)[...] = logits / logits.sum(axis=1, keepdims=True)

    def sample(self, real[:, :, ::1] state, int seed_ix, const f64[::1] uniforms,
               f64 temperature, i32[::1] out, int top_k=0, f64 top_p=1.0):
        """len(out) ids of one stream from input seed_ix and state (L*K, 1, H),
        advanced in place: id t = draw_id(logits, temperature, uniforms[t],
        top_k, top_p)."""
        if not self.minchar:
            self.kernels.sample(state, seed_ix, uniforms, temperature, out, top_k, top_p)
        else:
            self.kernels.sample(state[0, 0], seed_ix, uniforms, temperature, out, top_k, top_p)
