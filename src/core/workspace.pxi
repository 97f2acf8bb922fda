# The TanhWorkspace (min-char-rnn's layer on its own kernels): a model's arrays and work buffers, and the checked Python entry points.
#
# Above the nogil kernels, as scikit-learn's _cython_blas / _loss lay out:
# each entry point takes arrays already validated by charrnn_ext.model (ids
# in [0, V), shapes, C-contiguous REAL arrays), fills in the plain-C Model
# (model.pxi) and runs with the GIL released. Layouts: inputs and targets
# (T, B) time-major, h (B, H) one row per stream. One call at a time per
# TanhWorkspace (the model's lock); work buffers grow to the largest T * B seen
# (reserve), never per step, and nothing is allocated within a step.

cdef Tensors tensors_of(list arrays, int H, int V, int D, str what) except *:
    """Pointers into arrays = [Wxh, Whh, Why, bh, by] (and embed if D > 0),
    which must be C-contiguous writable REAL arrays of the shapes above
    (biases may be (n, 1))."""
    cdef Tensors out
    cdef real[::1] flat
    cdef real *data[6]
    cdef int k, n = 6 if D else 5
    shapes = ((H, D if D else V), (H, H), (V, H), (H,), (V,), (V, D))
    if len(arrays) != n:
        raise ValueError(f"{what}: expected {n} arrays (Wxh, Whh, Why, bh, by"
                         f"{', embed' if D else ''})")
    for k in range(n):
        arr, shape = arrays[k], shapes[k]
        if (not isinstance(arr, np.ndarray) or arr.dtype != REAL
                or not arr.flags.c_contiguous or not arr.flags.writeable
                or tuple(arr.shape)[:len(shape)] != shape or arr.size != np.prod(shape)):
            raise ValueError(f"{what}: inconsistent parameter shapes, dtypes or layout")
        flat = arr.reshape(-1)      # a view: arr is C-contiguous
        data[k] = &flat[0]
    out.Wxh, out.Whh, out.Why, out.bh, out.by = data[0], data[1], data[2], data[3], data[4]
    out.embed = data[5] if D else NULL
    return out


cdef class TanhWorkspace:
    """A model's parameters, optimiser state and gradients (held, updated in
    place) and the work buffers of its steps; one call at a time.

        params  = [Wxh (H,I), Whh (H,H), Why (V,H), bh (H,), by (V,)]
                  + [embed (V,D)] with an input embedding (I = D; else I = V)
        memory  = the same shapes (Adagrad's sums of squares; Adam's second moment;
                  RMSprop's mean square)
        moment  = the same shapes (Adam's first moment), or None (Adagrad, RMSprop)
        grads   = the same shapes (the gradients of the last step, clipped)

    All REAL (the module's dtype), C-contiguous; biases may be (H, 1) / (V, 1). optimizer
    (OPTIMIZER_CODES: "adagrad", "adam" or "rmsprop"), clip_bound, eps, beta1, beta2, alpha
    are the update's hyperparameters (charrnn_ext.optimizers); adam_steps counts Adam's updates.

    train_step, loss_and_grads and loss run B streams at once: inputs and
    targets (T, B) time-major, h (B, H) one row per stream. Their loss is the
    mean over streams of each stream's summed loss, their gradients the mean
    over streams. Work buffers grow to the largest T * B seen (reserve),
    never per step.
    """
    cdef readonly int hidden_size, vocab_size, embedding_size, capacity, stream_capacity
    cdef readonly int n_stripes
    cdef readonly real clip_bound, eps, beta1, beta2, alpha
    cdef readonly str optimizer
    cdef int code               # optimizer's enum (update.pxi)
    cdef Model m                # what the kernels see: sizes and pointers
    cdef object arrays          # the arrays behind params, memory, moment and grads (kept alive)
    cdef dict buffers           # the work buffers' arrays (kept alive); pointers in m
    cdef i32 *chunk             # (T+1, B): train's chunk of ids
    cdef Py_ssize_t chunk_capacity

    def __init__(self, params, memory, grads, moment=None, *, str optimizer="adagrad",
                 real clip_bound, real eps, real beta1=0.9, real beta2=0.999, real alpha=0.99,
                 int capacity=32):
        params = list(params)
        H, V = params[1].shape[0], params[2].shape[0]
        D = params[5].shape[1] if len(params) == 6 else 0
        self.code = optimizer_code(optimizer, moment)
        self.hidden_size, self.vocab_size, self.embedding_size = H, V, D
        self.m.H, self.m.V, self.m.D = H, V, D
        self.m.params = tensors_of(params, H, V, D, "params")
        self.m.memory = tensors_of(list(memory), H, V, D, "memory")
        self.m.grads = tensors_of(list(grads), H, V, D, "grads")
        if moment is not None:
            self.m.moment = tensors_of(list(moment), H, V, D, "moment")
        self.arrays = (tuple(params), tuple(memory), tuple(grads), moment)
        self.optimizer = optimizer
        self.clip_bound, self.eps, self.beta1, self.beta2 = clip_bound, eps, beta1, beta2
        self.alpha = alpha
        self.m.adam_steps = 0
        self.n_stripes = self.m.S = stripe_count(V, H)
        self.buffers = {}
        self.m.WhhT = self.buffer("WhhT", H * H)
        self.m.WhhT_panels = self.buffer("WhhT_panels", H * H)
        self.m.Whh_panels = self.buffer("Whh_panels", H * H)
        self.m.WhyT = self.buffer("WhyT", H * V if pipelined(V, H, 1) else 1)
        self.m.logits = self.buffer("logits", V)
        if D:
            self.m.table = self.buffer("table", H * V)
            self.m.dtable = self.buffer("dtable", H * V)
        else:
            self.m.table, self.m.dtable = self.m.params.Wxh, self.m.grads.Wxh
        present = np.zeros(V, dtype=np.int32)
        seen = np.zeros(V, dtype=np.uint8)
        self.buffers["present"], self.buffers["seen"] = present, seen
        cdef i32[::1] present_view = present
        cdef unsigned char[::1] seen_view = seen
        self.m.present, self.m.seen = &present_view[0], &seen_view[0]
        self.m.n_present = 0
        self.capacity = self.stream_capacity = 0
        self.reserve(max(capacity, 1), 1)
        # the dtable invariant: zero outside present[:n_present]
        np.asarray(grads[0])[...] = 0.0

    @property
    def adam_steps(self):
        """Adam's updates so far (the next update's bias corrections are for
        adam_steps + 1); 0 with Adagrad."""
        return self.m.adam_steps

    @adam_steps.setter
    def adam_steps(self, long long n):
        if n < 0:
            raise ValueError("adam_steps must be non-negative")
        self.m.adam_steps = n

    cdef real *buffer(self, str name, Py_ssize_t n) except NULL:
        """A new zeroed work buffer of n doubles (at least one), kept as buffers[name]."""
        arr = np.zeros(max(n, 1), dtype=REAL)
        cdef real[::1] view = arr
        self.buffers[name] = arr
        return &view[0]

    def reserve(self, Py_ssize_t rows, Py_ssize_t streams=1):
        """Make the work buffers hold chunks of up to ``rows`` steps x streams,
        of up to ``streams`` streams."""
        cdef Py_ssize_t N, B, H = self.hidden_size, V = self.vocab_size
        cdef Py_ssize_t S = self.n_stripes
        if rows <= self.capacity and streams <= self.stream_capacity:
            return
        N = max(rows, <Py_ssize_t> self.capacity)
        B = max(streams, <Py_ssize_t> self.stream_capacity)
        self.m.hs = self.buffer("hs", (N + B) * H)
        self.m.dh_next = self.buffer("dh_next", B * H)
        self.m.h_next = self.buffer("h_next", B * H)
        if N > self.capacity:
            self.m.probs = self.buffer("probs", N * V)
            self.m.dhs = self.buffer("dhs", N * H)
            self.m.dh_parts = self.buffer("dh_parts", (S - 1) * N * H)
            self.m.stripe_max = self.buffer("stripe_max", S * N)
            self.m.stripe_sum = self.buffer("stripe_sum", S * N)
            self.m.scale = self.buffer("scale", S * N)
            self.m.target_logit = self.buffer("target_logit", N)
        self.capacity, self.stream_capacity = <int> N, <int> B

    cdef int reserve_chunk(self, Py_ssize_t n) except -1:
        """Make train's chunk buffer hold n ids."""
        cdef i32[::1] view
        if n > self.chunk_capacity:
            arr = np.zeros(n, dtype=np.int32)
            view = arr
            self.buffers["chunk"] = arr
            self.chunk = &view[0]
            self.chunk_capacity = n
        return 0

    cdef Update update(self, real learning_rate) noexcept:
        """The update's hyperparameters for a call at this learning rate."""
        return update_of(self.code, learning_rate, self.clip_bound, self.eps, self.beta1,
                         self.beta2, self.alpha)

    def threads(self, int streams=1, int steps=1):
        """The threads a training call from this Python thread would use now,
        on chunks of ``steps`` steps of ``streams`` streams: two for pipelined
        steps, else at most one per piece of the output layer (its stripes),
        of the recurrence and of dWhh."""
        cdef int H = self.hidden_size, pieces = self.n_stripes
        cdef int limit = core_threads()
        if pipelined(self.vocab_size, H, streams) and self.embedding_size == 0 \
                and sparse_update(self.code):
            return min(limit, 2)
        if streams >= GEMM_MIN_STREAMS:
            pieces = max(pieces, product_pieces(<Py_ssize_t> streams * H * H, H))
        pieces = max(pieces, product_pieces(<Py_ssize_t> H * H * steps * streams, H))
        return min(limit, pieces)

    # -- the training steps (model_train: pipelined or step by step) ---------

    def train_step(self, const i32[:, ::1] inputs, const i32[:, ::1] targets,
                   real[:, ::1] h, real learning_rate, int max_threads=0):
        """One step over a chunk of B streams, inputs and targets (T, B):
        forward, backward, clip, update. Updates params, memory and grads in
        place; h (B, H) is replaced by the last hidden states. Returns the mean
        over streams of the summed loss. max_threads > 0 caps the threads."""
        cdef int T = inputs.shape[0], B = inputs.shape[1]
        cdef real loss[1]
        cdef DataPass d
        cdef Update u = self.update(learning_rate)
        d.data, d.x, d.y, d.bad = NULL, &inputs[0, 0], &targets[0, 0], -1
        self.reserve(T * B, B)
        with nogil:
            model_train(&self.m, &d, T, B, &h[0, 0], &u, loss, 1, capped_threads(max_threads))
        return loss[0]

    def train(self, const i32[:, ::1] data, Py_ssize_t offset, Py_ssize_t part,
              Py_ssize_t position, real[:, ::1] h, int T, real learning_rate,
              real[::1] losses, int max_threads=0):
        """min-char-rnn's training loop for len(losses) steps, in one call
        with the GIL released, over B = h.shape[0] streams, each reading its
        part of `part` ids. data (B, W): row b = ids offset .. offset + W of
        part b (a window; the whole parts for offset 0, W = part). Before each
        step, if chunk_wraps(position, part, T), h (B, H) is zeroed and
        position set to 0; the step trains on the ids at position .. position
        + T of each part (inputs, and targets one later); then position += T.
        losses[k] = the mean over streams of step k's summed loss. Stops after
        a step whose loss is not finite, or before a chunk holding an id
        outside [0, V) or lying outside the window (ids are checked as they
        are copied).

        Returns (steps done, position, the flat index into data of a bad id,
        -2 for a chunk outside the window, or -1). Requires part >= T + 1.
        max_threads > 0 caps the threads."""
        cdef int B = h.shape[0]
        cdef Py_ssize_t k, n = losses.shape[0]
        cdef DataPass d
        cdef Update u = self.update(learning_rate)
        if data.shape[0] != B or data.shape[1] < 1:
            raise ValueError("data must hold one row per stream")
        d.data, d.stride, d.offset = &data[0, 0], data.shape[1], offset
        d.part, d.position, d.bad = part, position, -1
        self.reserve(<Py_ssize_t> T * B, B)
        self.reserve_chunk(<Py_ssize_t> (T + 1) * B)
        d.chunk = self.chunk
        if n == 0:
            return 0, position, -1
        with nogil:
            k = model_train(&self.m, &d, T, B, &h[0, 0], &u, &losses[0], n,
                            capped_threads(max_threads))
        return k, d.position, d.bad

    # -- gradients and losses without an update ----------------------------------

    def loss_and_grads(self, const i32[:, ::1] inputs, const i32[:, ::1] targets,
                       real[:, ::1] h):
        """Forward, backward and clip over B streams, inputs and targets (T, B):
        the clipped mean gradients are left in grads; params and memory are
        untouched. h (B, H) is replaced by the last hidden states. Returns the
        mean over streams of the summed loss."""
        cdef int T = inputs.shape[0], B = inputs.shape[1], threads
        cdef Model *m = &self.m
        cdef Py_ssize_t block = <Py_ssize_t> B * self.hidden_size
        cdef real loss
        self.reserve(T * B, B)
        with nogil:
            threads = core_threads()
            model_prepare(m, B)
            memcpy(m.hs, &h[0, 0], block * sizeof(real))
            loss = model_forward(m, &inputs[0, 0], &targets[0, 0], T, B, threads)
            memcpy(&h[0, 0], m.hs + T * block, block * sizeof(real))
            model_backward(m, &inputs[0, 0], &targets[0, 0], T, B, threads, NULL)
            model_clip(m, self.clip_bound)
        return loss / B

    def loss(self, const i32[:, ::1] inputs, const i32[:, ::1] targets, real[:, ::1] h):
        """Forward-only loss of B streams over any number n of steps, inputs
        and targets (n, B); h (B, H) becomes the last hidden states. Returns the
        mean over streams of the summed loss. Runs in blocks of
        loss_block_steps(B) steps (fixed, so the result does not depend on the
        buffers' history)."""
        cdef Py_ssize_t n = inputs.shape[0], start = 0
        cdef int B = inputs.shape[1], steps = loss_block_steps(B)
        cdef int T, threads
        cdef Model *m = &self.m
        cdef Py_ssize_t block = <Py_ssize_t> B * self.hidden_size
        cdef real loss = 0.0
        self.reserve(min(n, <Py_ssize_t> steps) * B, B)
        with nogil:
            threads = core_threads()
            model_prepare(m, B)
            memcpy(m.hs, &h[0, 0], block * sizeof(real))
            while start < n:
                T = <int> min(n - start, <Py_ssize_t> steps)
                loss += model_forward(m, &inputs[start, 0], &targets[start, 0], T, B, threads)
                memcpy(m.hs, m.hs + T * block, block * sizeof(real))   # hs[0] = hs[T]
                start += T
            memcpy(&h[0, 0], m.hs, block * sizeof(real))
        return loss / B

    # -- one stream: the recurrence alone, and sampling --------------------------

    def advance(self, const i32[::1] inputs, real[::1] h):
        """Run the recurrence of one stream over inputs (n,) from h (H,), in
        place: h becomes the hidden state after the last input (used to prime
        sampling). No output layer is computed."""
        cdef Model *m = &self.m
        cdef int H = self.hidden_size, V = self.vocab_size
        cdef Py_ssize_t t, n = inputs.shape[0]
        with nogil:
            model_prepare(m, 1)
            for t in range(n):
                rnn_step(m.h_next, &h[0], &inputs[t], 1, m.table, m.WhhT, m.params.bh, H, V, 1)
                memcpy(&h[0], m.h_next, H * sizeof(real))

    def sample(self, real[::1] h, int seed_ix, const f64[::1] uniforms,
               real temperature, i32[::1] out, int top_k=0, f64 top_p=1.0):
        """Generate len(out) ids of one stream starting from input seed_ix and
        hidden state h (H,), which is advanced in place: id t is
        draw_id(logits, temperature, uniforms[t], top_k, top_p). out (n,) is
        overwritten. One thread."""
        cdef Model *m = &self.m
        cdef int H = self.hidden_size, V = self.vocab_size, x = seed_ix
        cdef Py_ssize_t t, n = out.shape[0]
        cdef real[:, ::1] WhyT = np.ascontiguousarray(
            np.asarray(<real[:V, :H]> m.params.Why).T)   # (H, V), a copy per call
        cdef Ranked *ranked = NULL
        if filtering(V, top_k, top_p):
            ranked = <Ranked *> PyMem_Calloc(V, sizeof(Ranked))
            if ranked == NULL:
                raise MemoryError()
        try:
            with nogil:
                model_prepare(m, 1)
                for t in range(n):
                    rnn_step(m.h_next, &h[0], &x, 1, m.table, m.WhhT, m.params.bh, H, V, 1)
                    memcpy(&h[0], m.h_next, H * sizeof(real))
                    output_step(m.logits, &h[0], &WhyT[0, 0], m.params.by, H, V)
                    x = draw_id(m.logits, V, temperature, uniforms[t], top_k, top_p, ranked)
                    out[t] = x
        finally:
            PyMem_Free(ranked)

    def trace(self, const i32[::1] inputs, const real[::1] h, real[:, ::1] hs,
              real[:, ::1] probs):
        """One stream read over inputs (n,) from h (H,), weights frozen:
        hs (n, H) the state after each input, probs (n, V) the prediction of
        the character after it (trace_forward). h is not changed."""
        cdef Model *m = &self.m
        cdef int H = self.hidden_size, V = self.vocab_size, n = <int> inputs.shape[0]
        if n < 1 or hs.shape[0] != n or hs.shape[1] != H or probs.shape[0] != n \
                or probs.shape[1] != V or h.shape[0] != H:
            raise ValueError("trace: inconsistent shapes")
        with nogil:
            model_prepare(m, 1)     # WhhT, and the input table (H, V) of an embedding
            trace_forward(&hs[0, 0], &probs[0, 0], &inputs[0], n, &h[0], m.table,
                          m.WhhT, m.params.bh, m.params.Why, m.params.by, H, V)
