# The model composed once: model_forward, model_backward, model_update (llm.c's gpt2_* trio).
#
# A Model is plain C: sizes, pointers into the parameters, their Adagrad
# memory and gradients, and into the work buffers (activations), all owned by
# the Workspace (workspace.pxi), which fills it. Shapes (H hidden, V
# vocabulary, N rows = T steps x B streams, time-major):
#     Wxh (H, V)   Whh (H, H)   Why (V, H)   bh (H,)   by (V,)
#     hs (T+1, B, H): hs[0] the state before the chunk; probs (N, V); dhs (N, H)
# A training step is
#     model_forward -> model_backward -> model_update
# with the output layer's clip and Adagrad fused into its backward, block by
# block (each block of Why comes from memory once); loss_and_grads is
# model_forward -> model_backward -> model_clip, loss is model_forward in
# blocks. The pipelined steps (pipeline.pxi) run the same layer kernels and
# model_update in another order over two threads.

cdef struct Tensors:
    # one pointer per parameter: into the parameters, the Adagrad memory or the gradients
    f64 *Wxh    # (H, V)
    f64 *Whh    # (H, H)
    f64 *Why    # (V, H)
    f64 *bh     # (H,)
    f64 *by     # (V,)


cdef struct Model:
    int H                   # hidden size
    int V                   # vocabulary size
    int S                   # output-layer stripes: stripe_count(V, H)
    f64 clip_bound          # the update's hyperparameters (charrnn_ext.defaults)
    f64 adagrad_eps
    Tensors params, memory, grads
    # the last chunk's distinct inputs: dWxh is zero outside these columns
    i32 *present            # (V,): present[:n_present]
    unsigned char *seen     # (V,): all zero between calls (distinct_ids)
    int n_present
    # work buffers, sized by V and H
    f64 *WhhT               # (H, H): Whh transposed, copied at every entry
    f64 *WhyT               # (H, V): Why transposed, per pipelined step (pipelined sizes only)
    f64 *logits             # (V,): sample's output layer
    # sized by the capacity N (rows: steps x streams) and the stream capacity B
    f64 *hs                 # (N+B, H): hidden states (T+1, B, H), hs[0] = h_prev
    f64 *probs              # (N, V): exp(logit - stripe max), then dY
    f64 *dhs                # (N, H): dloss/dh, then dh_raw
    f64 *dh_parts           # (S-1, N, H): stripes 1.. of dY Why
    f64 *stripe_max         # (S, N)
    f64 *stripe_sum         # (S, N)
    f64 *scale              # (S, N): the factored softmax (output_forward)
    f64 *target_logit       # (N,)
    f64 *dh_next            # (B, H): rnn_backward's dh_raw[t+1] Whh
    f64 *h_next             # (B, H): advance and sample's next state


cdef inline bint finite(f64 x) noexcept nogil:
    """Neither NaN nor infinite."""
    return x - x == 0.0


cdef f64 model_forward(Model *m, const i32 *x, const i32 *y, int T, int B,
                       int threads) noexcept nogil:
    """Forward over a chunk of B streams, inputs x and targets y (T, B), from
    the states in hs[0] (B, H): hs[1..T], then the output layer. Returns the
    loss summed over the T*B rows; leaves probs and scale for model_backward.
    WhhT must hold Whh^T."""
    cdef int H = m.H
    rnn_forward(m.hs, x, T, B, m.params.Wxh, m.WhhT, m.params.bh, H, m.V, threads, NULL, 0)
    return output_forward(m.probs, m.scale, m.stripe_max, m.stripe_sum, m.target_logit,
                          m.hs + B * H, y, m.params.Why, m.params.by, T * B, H, m.V, m.S,
                          threads)


cdef void model_rnn_backward(Model *m, const i32 *x, int T, int B, int pieces,
                             int threads) noexcept nogil:
    """The RNN layer's backward from dhs (T, B, H) = dloss/dhs[1:]: dWxh,
    dWhh (in `pieces` pieces), dbh into grads; the chunk's distinct inputs
    become present[:n_present] (the old ones' columns of dWxh zeroed first)."""
    cdef int H = m.H, V = m.V, N = T * B
    zero_columns(m.grads.Wxh, m.present, m.n_present, H, V)
    m.n_present = distinct_ids(m.present, m.seen, x, N)
    rnn_backward(m.grads.Wxh, m.grads.Whh, m.grads.bh, m.dhs, m.dh_next, m.hs, x, T, B,
                 m.params.Whh, H, V, pieces, threads)


cdef void model_backward(Model *m, const i32 *x, const i32 *y, int T, int B, int threads,
                         const Update *u) noexcept nogil:
    """Backward of model_forward: the gradients of the mean over B streams of
    its loss, into grads (unclipped). With u (not NULL) the output layer's
    update is fused in: dWhy and dby are clipped and Adagrad is applied to
    Why and by as their blocks are made (dh reads Why first)."""
    cdef int H = m.H, V = m.V, N = T * B
    output_backward(m.dhs, m.dh_parts, m.grads.Why, m.grads.by, m.probs, m.scale,
                    m.hs + B * H, y, m.params.Why, m.memory.Why, m.params.by, m.memory.by,
                    N, H, V, m.S, threads, 1.0 / B, u)
    model_rnn_backward(m, x, T, B, product_pieces(<Py_ssize_t> H * H * N, H), threads)


cdef void model_clip(Model *m) noexcept nogil:
    """Every gradient clipped to [-clip_bound, clip_bound] in place (dWxh:
    the chunk's columns, the others are zero)."""
    cdef int H = m.H, V = m.V
    cdef Tensors g = m.grads
    cdef f64 bound = m.clip_bound
    clip_columns(g.Wxh, m.present, m.n_present, H, V, bound)
    clip(g.Whh, H * H, bound)
    clip(g.Why, <Py_ssize_t> V * H, bound)
    clip(g.bh, H, bound)
    clip(g.by, V, bound)


cdef void model_update(Model *m, const Update *u) noexcept nogil:
    """The RNN layer's update: its gradients clipped, then Adagrad on Wxh
    (the chunk's columns), Whh and bh. (The output layer's update is fused
    into model_backward.)"""
    cdef int H = m.H, V = m.V
    cdef Tensors p = m.params, mem = m.memory, g = m.grads
    clip_columns(g.Wxh, m.present, m.n_present, H, V, u.clip_bound)
    adagrad_columns(p.Wxh, mem.Wxh, g.Wxh, m.present, m.n_present, H, V, u.learning_rate,
                    u.eps)
    clip_adagrad(p.Whh, mem.Whh, g.Whh, H * H, u)
    clip_adagrad(p.bh, mem.bh, g.bh, H, u)


cdef f64 model_step(Model *m, const i32 *x, const i32 *y, int T, int B, f64 *h,
                    const Update *u, int threads) noexcept nogil:
    """One training step over a chunk of B streams, x and y (T, B), from and
    into h (B, H): forward, backward, clip, Adagrad. Returns the loss summed
    over the T*B rows."""
    cdef Py_ssize_t block = <Py_ssize_t> B * m.H
    cdef f64 loss
    transpose(m.WhhT, m.params.Whh, m.H, m.H)
    memcpy(m.hs, h, block * sizeof(f64))
    loss = model_forward(m, x, y, T, B, threads)
    memcpy(h, m.hs + T * block, block * sizeof(f64))
    model_backward(m, x, y, T, B, threads, u)
    model_update(m, u)
    return loss


cdef Py_ssize_t model_train(Model *m, DataPass *d, int T, int B, f64 *h, const Update *u,
                            f64 *losses, Py_ssize_t n, int threads) noexcept nogil:
    """Up to n training steps over d's chunks, from and into h (B, H).
    losses[k] = the mean over streams of step k's summed loss; d.position +=
    T per step. Stops after a step whose loss is not finite, or before a
    chunk with a bad id (d.bad). Returns the number of steps done. A small
    output layer with few streams runs pipelined (pipeline_train), anything
    else step by step, each phase spread over the threads; which of the two
    depends on the sizes only, and neither cuts its work by the thread
    count. The work buffers must hold T * B rows."""
    cdef Py_ssize_t k = 0
    if pipelined(m.V, m.H, B):
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
