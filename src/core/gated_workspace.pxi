# StackWorkspace: a stacked or gated model's flat buffers, its work buffers, and its checked entry points.
#
# Like TanhWorkspace (workspace.pxi) for the Stack (stack.pxi): every array it is
# handed has been validated by charrnn_ext.gated (ids in [0, V), shapes,
# C-contiguous in the build's real type, finite); it fills the plain-C Stack
# and runs the kernels with the GIL released. Layouts: ids (T, B) time-major; states
# (L*K, B, H) (K = 2 for the lstm: per layer h then c); dropout uniforms
# (L-1, T, B, H). Work buffers grow to the largest T * B seen (reserve),
# never within a step.

CELLS = {"rnn": CELL_TANH, "lstm": CELL_LSTM, "gru": CELL_GRU}


cdef class StackWorkspace:
    """Parameters, memory and gradients of an L-layer model with cell "rnn"
    (tanh), "lstm" or "gru", each one flat array of reals (float64; float32
    in _core32) in the layout of layout() (the parameters of PyTorch's
    nn.RNN / nn.LSTM / nn.GRU per layer, then Why (V, H) and by (V,)), held
    and updated in place; and the work buffers of its steps. One call at a
    time."""
    cdef readonly int hidden_size, vocab_size, num_layers, gates, capacity, stream_capacity
    cdef readonly int embedding_size
    cdef readonly str cell
    cdef readonly f64 clip_bound, eps, beta1, beta2, alpha, dropout
    cdef readonly str optimizer
    cdef int code               # optimizer's enum (update.pxi)
    cdef Stack s
    cdef object arrays
    cdef dict buffers

    def __init__(self, str cell, int num_layers, int vocab_size, int hidden_size,
                 real[::1] params, real[::1] memory, real[::1] grads, moment=None, *,
                 str optimizer="adagrad", f64 clip_bound, f64 eps, f64 beta1=0.9,
                 f64 beta2=0.999, f64 alpha=0.99, f64 dropout=0.0, int embedding_size=0,
                 int capacity=32):
        cdef real[::1] mom
        if cell not in CELLS or num_layers < 1 or vocab_size < 1 or hidden_size < 1 \
                or embedding_size < 0:
            raise ValueError("bad cell or sizes")
        if not 0.0 <= dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")
        self.cell, self.num_layers = cell, num_layers
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.s.cell = CELLS[cell]
        self.s.L, self.s.H, self.s.V = num_layers, hidden_size, vocab_size
        self.s.D = self.embedding_size = embedding_size
        self.s.G = self.gates = (1, 4, 3)[self.s.cell]
        self.s.S = stripe_count(vocab_size, hidden_size)
        self.s.n_params = stack_size(&self.s)
        if not params.shape[0] == memory.shape[0] == grads.shape[0] == self.s.n_params:
            raise ValueError(f"params, memory and grads must hold {self.s.n_params} values")
        self.code = optimizer_code(optimizer, moment)
        self.s.params, self.s.memory, self.s.grads = &params[0], &memory[0], &grads[0]
        self.s.moment = NULL
        if moment is not None:
            mom = moment
            if mom.shape[0] != self.s.n_params:
                raise ValueError(f"moment must hold {self.s.n_params} values")
            self.s.moment = &mom[0]
        self.s.adam_steps = 0
        self.arrays = (params, memory, grads, moment)
        self.optimizer = optimizer
        self.clip_bound, self.eps, self.dropout = clip_bound, eps, dropout
        self.beta1, self.beta2, self.alpha = beta1, beta2, alpha
        self.s.dropout, self.s.dropping = dropout, False
        self.buffers = {}
        GH = self.s.G * hidden_size
        self.s.WihT0 = self.buffer("WihT0", <Py_ssize_t> vocab_size * GH)
        self.s.dtable = self.buffer("dtable", <Py_ssize_t> vocab_size * GH if embedding_size
                                    else 1)
        LHG = <Py_ssize_t> num_layers * hidden_size * GH
        self.s.WhhT_packed = self.buffer("WhhT_packed", LHG)
        self.s.Whh_packed = self.buffer("Whh_packed", LHG)
        self.s.logits = self.buffer("logits", vocab_size)
        self.capacity = self.stream_capacity = 0
        self.reserve(max(capacity, 1), 1)

    @property
    def adam_steps(self):
        """Adam's updates so far (the next is at step adam_steps + 1); 0 with Adagrad."""
        return self.s.adam_steps

    @adam_steps.setter
    def adam_steps(self, long long n):
        if n < 0:
            raise ValueError("adam_steps must be non-negative")
        self.s.adam_steps = n

    def layout(self):
        """[(name, offset, shape)] of the flat parameters, in storage order."""
        cdef Stack *s = &self.s
        cdef int k
        GH, H, V, D = s.G * s.H, s.H, s.V, s.D
        out = []
        for k in range(s.L):
            base = layer_offset(s, k)
            I = (D or V) if k == 0 else H
            out += [(f"weight_ih_l{k}", base, (GH, I)),
                    (f"weight_hh_l{k}", base + GH * I, (GH, H)),
                    (f"bias_ih_l{k}", base + GH * I + GH * H, (GH,)),
                    (f"bias_hh_l{k}", base + GH * I + GH * H + GH, (GH,))]
        base = layer_offset(s, s.L)
        out += [("Why", base, (V, H)), ("by", base + V * H, (V,))]
        return out + ([("embed", base + V * H + V, (V, D))] if D else [])

    cdef real *buffer(self, str name, Py_ssize_t n) except NULL:
        """A new zeroed work buffer of n reals (at least one), kept as buffers[name]."""
        arr = np.zeros(max(n, 1), REAL)
        cdef real[::1] view = arr
        self.buffers[name] = arr
        return &view[0]

    def reserve(self, Py_ssize_t rows, Py_ssize_t streams=1):
        """Make the work buffers hold chunks of up to ``rows`` steps x streams
        of up to ``streams`` streams."""
        cdef Stack *s = &self.s
        cdef Py_ssize_t N, B, H = s.H, V = s.V, GH = <Py_ssize_t> s.G * s.H, L = s.L
        if rows <= self.capacity and streams <= self.stream_capacity:
            return
        N = max(rows, <Py_ssize_t> self.capacity)
        B = max(streams, <Py_ssize_t> self.stream_capacity)
        s.hs_stride, s.gates_stride, s.rows_stride = (N + B) * H, N * GH, N * H
        s.hs = self.buffer("hs", L * (N + B) * H)
        s.cs = self.buffer("cs", L * (N + B) * H if s.cell == CELL_LSTM else 1)
        s.gates = self.buffer("gates", L * N * GH)
        s.aux = self.buffer("aux", L * N * H)
        s.xin = self.buffer("xin", (L - 1) * N * H)
        s.mask = self.buffer("mask", (L - 1) * N * H)
        s.gx = self.buffer("gx", N * GH)
        s.dgx = self.buffer("dgx", N * GH)
        s.dgh = self.buffer("dgh", N * GH if s.cell == CELL_GRU else 1)
        s.dh = self.buffer("dh", N * H)
        s.dh_next = self.buffer("dh_next", B * H)
        s.dc_next = self.buffer("dc_next", B * H)
        s.direct = self.buffer("direct", B * H)
        s.probs = self.buffer("probs", N * V)
        s.scale = self.buffer("scale", s.S * N)
        s.stripe_max = self.buffer("stripe_max", s.S * N)
        s.stripe_sum = self.buffer("stripe_sum", s.S * N)
        s.target_logit = self.buffer("target_logit", N)
        s.dh_parts = self.buffer("dh_parts", (s.S - 1) * N * H)
        self.capacity, self.stream_capacity = <int> N, <int> B

    cdef const f64 *masks(self, object uniforms, int T, int B) except? NULL:
        """The dropout uniforms (L-1, T, B, H) as a pointer, or NULL (no dropout)."""
        cdef const f64[::1] flat
        self.s.dropping = uniforms is not None and self.s.dropout > 0.0 and self.s.L > 1
        if not self.s.dropping:
            return NULL
        flat = uniforms.reshape(-1)
        if flat.shape[0] != <Py_ssize_t> (self.s.L - 1) * T * B * self.s.H:
            raise ValueError("dropout uniforms must have shape (L-1, T, B, H)")
        return &flat[0]

    cdef Update update(self, f64 learning_rate) noexcept:
        """The update's hyperparameters for a call at this learning rate."""
        return update_of(self.code, learning_rate, self.clip_bound, self.eps, self.beta1,
                         self.beta2, self.alpha)

    # -- training: forward, backward, clip (and update) ------------------------------

    def train(self, const i32[:, ::1] data, Py_ssize_t offset, Py_ssize_t part,
              Py_ssize_t position, real[:, :, ::1] state, int T, f64 learning_rate,
              real[::1] losses, int max_threads=0, uniforms=None):
        """min-char-rnn's training loop for len(losses) steps in one call with
        the GIL released (as TanhWorkspace.train, whose data pass it shares), over
        B = state.shape[1] streams from and into state (L*K, B, H). uniforms:
        dropout's draws (len(losses), L-1, T, B, H), or None. Returns (steps
        done, position, the flat index into data of a bad id, -2 for a chunk
        outside the window, or -1)."""
        cdef int B = state.shape[1]
        cdef Py_ssize_t k, n = losses.shape[0]
        cdef Stack *s = &self.s
        cdef DataPass d
        cdef Update u = self.update(learning_rate)
        cdef const f64[::1] flat
        cdef const f64 *um = NULL
        cdef i32[::1] chunk = np.empty(<Py_ssize_t> (T + 1) * B, np.int32)
        if data.shape[0] != B or data.shape[1] < 1 or state.shape[0] != s.L * (2 if s.cell == CELL_LSTM else 1) \
                or state.shape[2] != s.H:
            raise ValueError("data must hold one row per stream, state (L*K, B, H)")
        s.dropping = uniforms is not None and s.dropout > 0.0 and s.L > 1
        if s.dropping:
            flat = uniforms.reshape(-1)
            if flat.shape[0] != n * (s.L - 1) * T * B * s.H:
                raise ValueError("dropout uniforms must have shape (steps, L-1, T, B, H)")
            um = &flat[0]
        d.data, d.stride, d.offset = &data[0, 0], data.shape[1], offset
        d.part, d.position, d.bad = part, position, -1
        d.chunk = &chunk[0]
        self.reserve(<Py_ssize_t> T * B, B)
        if n == 0:
            s.dropping = False
            return 0, position, -1
        with nogil:
            k = stack_train(s, &d, T, B, &state[0, 0, 0], &u, um, &losses[0], n,
                            capped_threads(max_threads))
        s.dropping = False
        return k, d.position, d.bad


    def loss_and_grads(self, const i32[:, ::1] inputs, const i32[:, ::1] targets,
                       real[:, :, ::1] state, uniforms=None, f64 learning_rate=0.0,
                       bint update=False, int max_threads=0):
        """Forward, backward and clip over B streams, inputs and targets (T, B),
        from and into state (L*K, B, H): the clipped mean gradients in grads;
        with update, then the update of params and memory at learning_rate.
        uniforms (L-1, T, B, H): dropout's draws (None: no dropout). Returns
        the mean over streams of the summed loss."""
        cdef int T = inputs.shape[0], B = inputs.shape[1], threads
        cdef Stack *s = &self.s
        cdef f64 loss
        cdef real bound = <real> self.clip_bound
        cdef Update u = self.update(learning_rate)
        self.reserve(<Py_ssize_t> T * B, B)
        cdef const f64 *um = self.masks(uniforms, T, B)
        with nogil:
            threads = capped_threads(max_threads)
            stack_transposes(s)
            stack_states(s, &state[0, 0, 0], T, B, True)
            loss = stack_forward(s, &inputs[0, 0], &targets[0, 0], um, T, B, threads)
            stack_states(s, &state[0, 0, 0], T, B, False)
            stack_backward(s, &inputs[0, 0], &targets[0, 0], T, B, threads)
            if update:
                stack_update(s, &u)
            else:
                clip(s.grads, s.n_params, bound)
        s.dropping = False
        return loss / B

    # -- forward only ----------------------------------------------------------------

    def loss(self, const i32[:, ::1] inputs, const i32[:, ::1] targets, real[:, :, ::1] state):
        """Forward-only loss of B streams over any number n of steps, inputs and
        targets (n, B), in blocks of loss_block_steps(B) steps; state (L*K, B,
        H) becomes the last states. Returns the mean over streams of the
        summed loss. No dropout."""
        cdef Py_ssize_t n = inputs.shape[0], start = 0
        cdef int B = inputs.shape[1], steps = loss_block_steps(B), T, threads
        cdef Stack *s = &self.s
        cdef f64 loss = 0.0
        self.reserve(min(n, <Py_ssize_t> steps) * B, B)
        s.dropping = False
        with nogil:
            threads = core_threads()
            stack_transposes(s)
            while start < n:
                T = <int> min(n - start, <Py_ssize_t> steps)
                stack_states(s, &state[0, 0, 0], T, B, True)
                loss += stack_forward(s, &inputs[start, 0], &targets[start, 0], NULL, T, B,
                                      threads)
                stack_states(s, &state[0, 0, 0], T, B, False)
                start += T
        return loss / B

    def advance(self, const i32[:, ::1] inputs, real[:, :, ::1] state):
        """The layers alone over inputs (n, B) from state (L*K, B, H), in place."""
        cdef Py_ssize_t n = inputs.shape[0], start = 0
        cdef int B = inputs.shape[1], steps = loss_block_steps(B), T, threads
        cdef Stack *s = &self.s
        self.reserve(min(n, <Py_ssize_t> steps) * B, B)
        s.dropping = False
        with nogil:
            threads = core_threads()
            stack_transposes(s)
            while start < n:
                T = <int> min(n - start, <Py_ssize_t> steps)
                stack_states(s, &state[0, 0, 0], T, B, True)
                stack_layers(s, &inputs[start, 0], NULL, T, B, threads)
                stack_states(s, &state[0, 0, 0], T, B, False)
                start += T

    def trace(self, const i32[::1] inputs, real[:, :, ::1] state, real[:, ::1] states):
        """One stream over inputs (n,) from state (L*K, 1, H), weights frozen:
        states[t] (n, L*K*H) = the state after reading inputs[t] (state ends
        as states[n-1]). No output layer."""
        cdef Stack *s = &self.s
        cdef Py_ssize_t t, n = inputs.shape[0], S = states.shape[1]
        cdef int threads
        s.dropping = False
        with nogil:
            threads = core_threads()
            stack_transposes(s)
            for t in range(n):
                stack_states(s, &state[0, 0, 0], 1, 1, True)
                stack_layers(s, &inputs[t], NULL, 1, 1, threads)
                stack_states(s, &state[0, 0, 0], 1, 1, False)
                memcpy(&states[t, 0], &state[0, 0, 0], S * sizeof(real))

    def sample(self, real[:, :, ::1] state, int seed_ix, const f64[::1] uniforms,
               f64 temperature, i32[::1] out, int top_k=0, f64 top_p=1.0):
        """len(out) ids of one stream from input seed_ix and state (L*K, 1, H),
        advanced in place: id t = draw_id(logits, temperature, uniforms[t],
        top_k, top_p)."""
        cdef Stack *s = &self.s
        cdef int H = s.H, V = s.V, x = seed_ix, threads
        cdef Py_ssize_t t, n = out.shape[0]
        cdef real[:, ::1] WhyT = np.ascontiguousarray(
            np.asarray(<real[:V, :H]> layer_param(s.params, s, s.L, 0)).T)
        cdef Ranked *ranked = NULL
        if filtering(V, top_k, top_p):
            ranked = <Ranked *> PyMem_Calloc(V, sizeof(Ranked))
            if ranked == NULL:
                raise MemoryError()
        s.dropping = False
        try:
            with nogil:
                threads = core_threads()
                stack_transposes(s)
                for t in range(n):
                    stack_states(s, &state[0, 0, 0], 1, 1, True)
                    stack_layers(s, &x, NULL, 1, 1, threads)
                    stack_states(s, &state[0, 0, 0], 1, 1, False)
                    output_step(s.logits, s.hs + (s.L - 1) * s.hs_stride + H, &WhyT[0, 0],
                                layer_param(s.params, s, s.L, 1), H, V)
                    x = draw_id(s.logits, V, temperature, uniforms[t], top_k, top_p, ranked)
                    out[t] = x
        finally:
            PyMem_Free(ranked)
