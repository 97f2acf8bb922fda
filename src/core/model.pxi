# The model composed once: model_forward, model_backward, model_update (llm.c's gpt2_* trio).
#
# A Model is plain C: sizes, pointers into the parameters, their optimiser
# state and gradients, and into the work buffers (activations), all owned by
# the TanhWorkspace (workspace.pxi), which fills it. Shapes (H hidden, V
# vocabulary, D the input embedding's width or 0 for min-char-rnn's one-hot
# input, I = D or V the input width, N rows = T steps x B streams, time-major):
#     Wxh (H, I)   Whh (H, H)   Why (V, H)   bh (H,)   by (V,)   embed (V, D) if D
#     hs (T+1, B, H): hs[0] the state before the chunk; probs (N, V); dhs (N, H)
# The recurrence looks its input up in table (H, V): Wxh itself for one-hot
# input, else Wxh embed^T, made at every entry (model_prepare, as WhhT); its
# gradient dtable (H, V) is dWxh itself, else becomes dWxh and dembed
# (embedding_backward). A training step is
#     model_prepare -> model_forward -> model_backward -> model_update
# with, for Adagrad (sparse_update), the output layer's clip and update fused into its
# backward, block by block (each block of Why comes from memory once);
# loss_and_grads is model_forward -> model_backward -> model_clip, loss is
# model_forward in blocks. The pipelined steps (pipeline.pxi; min-char-rnn's
# model: one-hot input, Adagrad) run the same layer kernels and model_update
# in another order over two threads.

cdef struct Tensors:
    # one pointer per parameter: into the parameters, the optimizer's memory or the gradients
    real *Wxh    # (H, V)
    real *Whh    # (H, H)
    real *Why    # (V, H)
    real *bh     # (H,)
    real *by     # (V,)
    real *embed  # (V, D), or NULL for one-hot input (D = 0)


cdef struct Model:
    int H                   # hidden size
    int V                   # vocabulary size
    int D                   # the input embedding's width; 0: one-hot input (min-char-rnn)
    int S                   # output-layer stripes: stripe_count(V, H)
    Tensors params, memory, grads
    Tensors moment          # Adam's first moment (NULL pointers with Adagrad, RMSprop)
    long long adam_steps    # Adam's updates so far (its bias corrections' t - 1)
    real *table              # (H, V): the input lookup, params.Wxh if D == 0
    real *dtable             # (H, V): its gradient, grads.Wxh if D == 0
    # the last chunk's distinct inputs: dWxh is zero outside these columns
    i32 *present            # (V,): present[:n_present]
    unsigned char *seen     # (V,): all zero between calls (distinct_ids)
    int n_present
    # work buffers, sized by V and H
    real *WhhT               # (H, H): Whh transposed, copied at every entry
    # With B >= GEMM_MIN_STREAMS streams the recurrence reads these instead
    # (linalg.pxi's panel layout; packed at every entry of such a call):
    real *WhhT_panels        # (H, H): Whh^T in panels (the forward's W)
    real *Whh_panels         # (H, H): Whh in panels (the backward's W)
    real *WhyT               # (H, V): Why transposed, per pipelined step (pipelined sizes only)
    real *logits             # (V,): sample's output layer
    # sized by the capacity N (rows: steps x streams) and the stream capacity B
    real *hs                 # (N+B, H): hidden states (T+1, B, H), hs[0] = h_prev
    real *probs              # (N, V): exp(logit - stripe max), then dY
    real *dhs                # (N, H): dloss/dh, then dh_raw
    real *dh_parts           # (S-1, N, H): stripes 1.. of dY Why
    real *stripe_max         # (S, N)
    real *stripe_sum         # (S, N)
    real *scale              # (S, N): the factored softmax (output_forward)
    real *target_logit       # (N,)
    real *dh_next            # (B, H): rnn_backward's dh_raw[t+1] Whh
    real *h_next             # (B, H): advance and sample's next state


cdef inline bint finite(real x) noexcept nogil:
    """Neither NaN nor infinite."""
    return x - x == 0.0


cdef void model_prepare(Model *m, int B) noexcept nogil:
    """What the recurrence of B streams reads, from the parameters as they
    are now (the caller may have changed them in place): WhhT = Whh^T (and
    with B >= GEMM_MIN_STREAMS both Whh^T and Whh in panels), and with an
    embedding table (H, V) = Wxh (H, D) embed^T (D, V)."""
    transpose(m.WhhT, m.params.Whh, m.H, m.H)
    if B >= GEMM_MIN_STREAMS:
        pack_panels(m.WhhT_panels, m.params.Whh, m.H, m.H, m.H, True)
        pack_panels(m.Whh_panels, m.params.Whh, m.H, m.H, m.H, False)
    if m.D:
        gemm_rowmajor(b'N', b'T', m.H, m.V, m.D, 1.0, m.params.Wxh, m.D, m.params.embed,
                      m.D, 0.0, m.table, m.V)


cdef void embedding_backward(real *dWxh, real *dembed, const real *dtable, const real *Wxh,
                             const real *embed, int H, int V, int D) noexcept nogil:
    """Backward of table = Wxh embed^T: dWxh (H, D) = dtable (H, V) embed (V, D),
    dembed (V, D) = dtable^T Wxh (H, D)."""
    gemm_rowmajor(b'N', b'N', H, D, V, 1.0, dtable, V, embed, D, 0.0, dWxh, D)
    gemm_rowmajor(b'T', b'N', V, D, H, 1.0, dtable, V, Wxh, D, 0.0, dembed, D)


cdef inline const real *recurrence_weights(Model *m, int B, bint forward) noexcept nogil:
    """The W the recurrence of B streams reads (rnn.pxi's hidden_matmul):
    Whh^T (forward) or Whh (backward), in panels from GEMM_MIN_STREAMS
    streams on."""
    if B >= GEMM_MIN_STREAMS:
        return m.WhhT_panels if forward else m.Whh_panels
    return m.WhhT if forward else m.params.Whh


cdef real model_forward(Model *m, const i32 *x, const i32 *y, int T, int B,
                       int threads) noexcept nogil:
    """Forward over a chunk of B streams, inputs x and targets y (T, B), from
    the states in hs[0] (B, H): hs[1..T], then the output layer. Returns the
    loss summed over the T*B rows; leaves probs and scale for model_backward.
    model_prepare(m, B) must have made what the recurrence reads."""
    cdef int H = m.H
    rnn_forward(m.hs, x, T, B, m.table, recurrence_weights(m, B, True), m.params.bh, H, m.V,
                threads, NULL, 0)
    return output_forward(m.probs, m.scale, m.stripe_max, m.stripe_sum, m.target_logit,
                          m.hs + B * H, y, m.params.Why, m.params.by, T * B, H, m.V, m.S,
                          threads)


cdef void model_rnn_backward(Model *m, const i32 *x, int T, int B, int pieces,
                             int threads) noexcept nogil:
    """The RNN layer's backward from dhs (T, B, H) = dloss/dhs[1:]: dtable,
    dWhh (in `pieces` pieces), dbh into grads (and dWxh, dembed from dtable
    with an embedding); the chunk's distinct inputs become present[:n_present]
    (the old ones' columns of dtable zeroed first)."""
    cdef int H = m.H, V = m.V, N = T * B
    zero_columns(m.dtable, m.present, m.n_present, H, V)
    m.n_present = distinct_ids(m.present, m.seen, x, N)
    rnn_backward(m.dtable, m.grads.Whh, m.grads.bh, m.dhs, m.dh_next, m.hs, x, T, B,
                 recurrence_weights(m, B, False), H, V, pieces, threads)
    if m.D:
        embedding_backward(m.grads.Wxh, m.grads.embed, m.dtable, m.params.Wxh,
                           m.params.embed, H, V, m.D)


cdef void model_backward(Model *m, const i32 *x, const i32 *y, int T, int B, int threads,
                         const Update *u) noexcept nogil:
    """Backward of model_forward: the gradients of the mean over B streams of
    its loss, into grads (unclipped). With u (not NULL) and a sparse update
    (Adagrad), the output layer's update is fused in: dWhy and dby are
    clipped and Adagrad is applied to Why and by as their blocks are made (dh
    reads Why first); Adam and RMSprop update them in model_update."""
    cdef int H = m.H, V = m.V, N = T * B
    cdef const Update *fused = u if u != NULL and sparse_update(u.optimizer) else NULL
    output_backward(m.dhs, m.dh_parts, m.grads.Why, m.grads.by, m.probs, m.scale,
                    m.hs + B * H, y, m.params.Why, m.memory.Why, m.params.by, m.memory.by,
                    N, H, V, m.S, threads, 1.0 / B, fused)
    model_rnn_backward(m, x, T, B, product_pieces(<Py_ssize_t> H * H * N, H), threads)


cdef void model_clip(Model *m, real bound) noexcept nogil:
    """Every gradient clipped to [-bound, bound] in place (one-hot dWxh:
    the chunk's columns, the others are zero)."""
    cdef int H = m.H, V = m.V
    cdef Tensors g = m.grads
    if m.D:
        clip(g.Wxh, <Py_ssize_t> H * m.D, bound)
        clip(g.embed, <Py_ssize_t> V * m.D, bound)
    else:
        clip_columns(g.Wxh, m.present, m.n_present, H, V, bound)
    clip(g.Whh, H * H, bound)
    clip(g.Why, <Py_ssize_t> V * H, bound)
    clip(g.bh, H, bound)
    clip(g.by, V, bound)


cdef void model_update(Model *m, const Update *u) noexcept nogil:
    """The update, its gradients clipped first. A sparse update (Adagrad):
    of the RNN layer, Wxh (one-hot: the chunk's columns), Whh, bh (and
    embed); the output layer's is fused into model_backward. Adam, RMSprop:
    of every parameter (clip_update; Adam at step adam_steps + 1)."""
    cdef int H = m.H, V = m.V, D = m.D
    cdef Tensors p = m.params, mem = m.memory, g = m.grads, mom = m.moment
    cdef Update a
    if not sparse_update(u.optimizer):
        a = next_update(u, &m.adam_steps)
        clip_update(p.Wxh, mom.Wxh, mem.Wxh, g.Wxh, <Py_ssize_t> H * (D if D else V), &a)
        clip_update(p.Whh, mom.Whh, mem.Whh, g.Whh, <Py_ssize_t> H * H, &a)
        clip_update(p.bh, mom.bh, mem.bh, g.bh, H, &a)
        clip_update(p.Why, mom.Why, mem.Why, g.Why, <Py_ssize_t> V * H, &a)
        clip_update(p.by, mom.by, mem.by, g.by, V, &a)
        if D:
            clip_update(p.embed, mom.embed, mem.embed, g.embed, <Py_ssize_t> V * D, &a)
        return
    if D:
        clip_adagrad(p.Wxh, mem.Wxh, g.Wxh, <Py_ssize_t> H * D, u)
        clip_adagrad(p.embed, mem.embed, g.embed, <Py_ssize_t> V * D, u)
    else:
        clip_columns(g.Wxh, m.present, m.n_present, H, V, u.clip_bound)
        adagrad_columns(p.Wxh, mem.Wxh, g.Wxh, m.present, m.n_present, H, V,
                        u.learning_rate, u.eps)
    clip_adagrad(p.Whh, mem.Whh, g.Whh, <Py_ssize_t> H * H, u)
    clip_adagrad(p.bh, mem.bh, g.bh, H, u)


cdef real model_step(Model *m, const i32 *x, const i32 *y, int T, int B, real *h,
                    const Update *u, int threads) noexcept nogil:
    """One training step over a chunk of B streams, x and y (T, B), from and
    into h (B, H): forward, backward, clip, update. Returns the loss summed
    over the T*B rows."""
    cdef Py_ssize_t block = <Py_ssize_t> B * m.H
    cdef real loss
    model_prepare(m, B)
    memcpy(m.hs, h, block * sizeof(real))
    loss = model_forward(m, x, y, T, B, threads)
    memcpy(h, m.hs + T * block, block * sizeof(real))
    model_backward(m, x, y, T, B, threads, u)
    model_update(m, u)
    return loss


cdef Py_ssize_t model_train(Model *m, DataPass *d, int T, int B, real *h, const Update *u,
                            real *losses, Py_ssize_t n, int threads) noexcept nogil:
    """Up to n training steps over d's chunks, from and into h (B, H).
    losses[k] = the mean over streams of step k's summed loss; d.position +=
    T per step. Stops after a step whose loss is not finite, or before a
    chunk with a bad id (d.bad). Returns the number of steps done. A small
    output layer with few streams runs pipelined (pipeline_train), anything
    else step by step, each phase spread over the threads; which of the two
    depends on the sizes only, and neither cuts its work by the thread
    count. The work buffers must hold T * B rows."""
    cdef Py_ssize_t k = 0
    if pipelined(m.V, m.H, B) and m.D == 0 and sparse_update(u.optimizer):
        return pipeline_train(m, d, T, B, h, u[0], losses, n, threads)
    while k < n:
        if not next_chunk(d, T, B, m.V, h, m.H):
            break
        losses[k] = model_step(m, d.x, d.y, T, B, h, u, threads) / B
        d.position += T
        k += 1
        if not finite(losses[k - 1]):
            break
    return k
