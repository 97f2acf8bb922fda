# Stacked and gated models: the Stack, its parameter layout, and the stack_* composition of its layers.
#
# A Stack is plain C like the Model (model.pxi): sizes, the flat parameter,
# memory and gradient buffers (their layout: layer_offset and layer_param, one definition),
# and pointers into the work buffers the StackWorkspace owns. Per layer k
# (G gates: tanh 1, lstm 4, gru 3; I_k = H for k >= 1; I_0 = V for one-hot
# input, or D with an input embedding):
#     W_ih (G*H, I_k)  W_hh (G*H, H)  b_ih, b_hh (G*H,)   then Why (V, H), by (V,)
#     and embed (V, D) with an embedding: layer 0 reads the table (V, GH) =
#     embed W_ih^T (WihT0), made at every entry; its gradient dtable (GH, V)
#     becomes dW_ih and dembed (embedding_backward, model.pxi)
# Activations, time-major (N = T*B rows; layer k's at + k * its stride):
#     hs (T+1, B, H) per layer, hs[0] the state before the chunk; cs likewise (lstm)
#     gates (T, B, G*H) the activations; aux (T, B, H): tanh(c) (lstm), W_hn h + b_hn (gru)
#     xin (T, B, H) layer k's input for k >= 1: hs_{k-1}[1:] * mask (dropout), or hs itself
# The input projection of all T steps is one product (layer 0: a row lookup
# of W_ih^T, never a one-hot product); only the recurrence is sequential.
# A layer's work (layer.pxi) and the output layer's are cut by size only
# (partition.pxi), so results do not depend on the thread count.

cdef enum:
    CELL_TANH = 0
    CELL_LSTM = 1
    CELL_GRU = 2


cdef struct Stack:
    int cell, L, G, H, V, S     # cell kind, layers, gates, sizes, output stripes
    int D                       # the input embedding's width; 0: one-hot input
    real *params                 # flat (n_params,): layer_param's layout
    real *memory                 # Adagrad's memory, Adam's second moment, RMSprop's mean square
    real *moment                 # Adam's first moment (NULL with Adagrad, RMSprop)
    real *grads
    Py_ssize_t n_params
    long long adam_steps        # Adam's updates so far
    f64 dropout                  # p; the mask of a step: (u >= p) / (1 - p)
    bint dropping               # masks in use (training with p > 0 and L > 1)
    # work buffers (StackWorkspace.reserve), strides per layer
    Py_ssize_t hs_stride, gates_stride, rows_stride
    real *WihT0                  # (V, GH): W_ih of layer 0 transposed (embed W_ih^T), per call
    real *dtable                 # (GH, V): the gradient of WihT0^T (with an embedding)
    real *WhhT_packed            # (L, H, GH): W_hh^T per layer in panel layout, per call
    real *Whh_packed             # (L, GH, H): W_hh per layer in panel layout, per call
    real *hs
    real *cs
    real *gates
    real *aux
    real *xin                    # (L-1, N, H)
    real *mask                   # (L-1, N, H)
    real *gx                     # (N, GH)
    real *dgx                    # (N, GH)
    real *dgh                    # (N, GH) (gru; the others use dgx)
    real *dh                     # (N, H): the gradient at a layer's outputs
    real *dh_next                # (B, H)
    real *dc_next                # (B, H)
    real *direct                 # (B, H)
    # the output layer's (output.pxi)
    real *probs                  # (N, V)
    real *scale                  # (S, N)
    real *stripe_max
    real *stripe_sum
    real *target_logit           # (N,)
    real *dh_parts               # (S-1, N, H)
    real *logits                 # (V,)


cdef inline Py_ssize_t layer_offset(const Stack *s, int k) noexcept nogil:
    """Offset of layer k's W_ih in the flat parameters (k = L: Why's)."""
    cdef Py_ssize_t GH = <Py_ssize_t> s.G * s.H
    if k == 0:
        return 0
    return GH * ((s.D if s.D else s.V) + s.H + 2) + (k - 1) * GH * (2 * s.H + 2)


cdef inline Py_ssize_t stack_size(const Stack *s) noexcept nogil:
    """The number of parameters: the L layers, then Why and by (and embed)."""
    return layer_offset(s, s.L) + <Py_ssize_t> s.V * s.H + s.V + <Py_ssize_t> s.V * s.D


cdef inline real *layer_param(real *base, const Stack *s, int k, int which) noexcept nogil:
    """Layer k's W_ih (which 0), W_hh (1), b_ih (2), b_hh (3) in base (params,
    memory or grads); k = L: Why (0), by (1), embed (2)."""
    cdef Py_ssize_t at = layer_offset(s, k), GH = <Py_ssize_t> s.G * s.H
    cdef Py_ssize_t I = (s.D if s.D else s.V) if k == 0 else s.H
    if k == s.L:
        return base + at + (0 if which == 0 else <Py_ssize_t> s.V * s.H
                            + (0 if which == 1 else s.V))
    if which == 0:
        return base + at
    at += GH * I
    if which == 1:
        return base + at
    at += GH * s.H
    return base + at + (0 if which == 2 else GH)


# -- the stack: layers, then the output layer --------------------------------------

cdef void stack_transposes(Stack *s) noexcept nogil:
    """WihT0 = layer 0's W_ih^T (with an embedding: embed W_ih^T), and W_hh^T
    and W_hh of each layer in panel layout (linalg.pxi) for the recurrence's
    products (per call: parameters changed in place by the caller are seen)."""
    cdef int k, H = s.H, GH = s.G * s.H
    if s.D:
        gemm_rowmajor(b'N', b'T', s.V, GH, s.D, 1.0, layer_param(s.params, s, s.L, 2), s.D,
                      layer_param(s.params, s, 0, 0), s.D, 0.0, s.WihT0, GH)
    else:
        transpose(s.WihT0, layer_param(s.params, s, 0, 0), GH, s.V)
    for k in range(s.L):
        pack_panels(s.WhhT_packed + <Py_ssize_t> k * H * GH, layer_param(s.params, s, k, 1),
                    H, GH, H, True)
        pack_panels(s.Whh_packed + <Py_ssize_t> k * H * GH, layer_param(s.params, s, k, 1),
                    GH, H, H, False)


cdef void stack_layers(Stack *s, const i32 *x, const f64 *uniforms, int T, int B,
                       int threads) noexcept nogil:
    """The L layers over a chunk (T, B) from the states in hs_k[0], cs_k[0].
    With s.dropping, layer k+1 reads hs_k[1:] * mask_k, mask_k = (u >= p) /
    (1 - p) for the uniforms (L-1, T, B, H); else hs_k[1:] itself (xin_k is
    then a copy)."""
    cdef int k
    cdef Py_ssize_t i, NH = <Py_ssize_t> T * B * s.H, BH = <Py_ssize_t> B * s.H
    cdef real *xin
    cdef real *mask
    cdef const f64 *u
    cdef const real *h
    cdef real keep = 1.0 / (1.0 - s.dropout) if s.dropping else 1.0
    for k in range(s.L):
        layer_forward(s, k, x, T, B, threads)
        if k == s.L - 1:
            break
        xin = s.xin + k * s.rows_stride
        h = s.hs + k * s.hs_stride + BH
        if s.dropping:
            mask = s.mask + k * s.rows_stride
            u = uniforms + k * NH
            for i in range(NH):
                mask[i] = keep if u[i] >= s.dropout else 0.0
                xin[i] = h[i] * mask[i]
        else:
            memcpy(xin, h, NH * sizeof(real))


cdef real stack_forward(Stack *s, const i32 *x, const i32 *y, const f64 *uniforms, int T,
                       int B, int threads) noexcept nogil:
    """The layers, then the output layer over the top layer's states: the loss
    summed over the T*B rows; probs and scale left for stack_backward."""
    cdef Py_ssize_t BH = <Py_ssize_t> B * s.H
    stack_layers(s, x, uniforms, T, B, threads)
    return output_forward(s.probs, s.scale, s.stripe_max, s.stripe_sum, s.target_logit,
                          s.hs + (s.L - 1) * s.hs_stride + BH, y,
                          layer_param(s.params, s, s.L, 0), layer_param(s.params, s, s.L, 1),
                          T * B, s.H, s.V, s.S, threads)


cdef void stack_backward(Stack *s, const i32 *x, const i32 *y, int T, int B,
                         int threads) noexcept nogil:
    """Backward of stack_forward: the gradients of the mean over B streams of
    its loss, into grads (unclipped)."""
    cdef int k
    cdef Py_ssize_t BH = <Py_ssize_t> B * s.H
    output_backward(s.dh, s.dh_parts, layer_param(s.grads, s, s.L, 0),
                    layer_param(s.grads, s, s.L, 1), s.probs, s.scale,
                    s.hs + (s.L - 1) * s.hs_stride + BH, y,
                    layer_param(s.params, s, s.L, 0), layer_param(s.memory, s, s.L, 0),
                    layer_param(s.params, s, s.L, 1), layer_param(s.memory, s, s.L, 1),
                    T * B, s.H, s.V, s.S, threads, 1.0 / B, NULL)
    for k in range(s.L - 1, -1, -1):
        layer_backward(s, k, x, T, B, threads)


cdef void stack_states(Stack *s, real *state, int T, int B, bint load) noexcept nogil:
    """Between state (L, K, B, H) (K = 2 for the lstm: h then c; else 1) and
    the layers' hs_k[0], cs_k[0] (load) or hs_k[T], cs_k[T] (store)."""
    cdef int k, K = 2 if s.cell == CELL_LSTM else 1
    cdef Py_ssize_t BH = <Py_ssize_t> B * s.H, at
    for k in range(s.L):
        at = 0 if load else T * BH
        if load:
            memcpy(s.hs + k * s.hs_stride, state + (k * K) * BH, BH * sizeof(real))
            if K == 2:
                memcpy(s.cs + k * s.hs_stride, state + (k * K + 1) * BH, BH * sizeof(real))
        else:
            memcpy(state + (k * K) * BH, s.hs + k * s.hs_stride + at, BH * sizeof(real))
            if K == 2:
                memcpy(state + (k * K + 1) * BH, s.cs + k * s.hs_stride + at,
                       BH * sizeof(real))


cdef void stack_update(Stack *s, const Update *u) noexcept nogil:
    """Every gradient clipped, then the update (update.pxi's clip_update:
    Adagrad, RMSprop, or Adam at step adam_steps + 1) on every parameter: the
    flat buffers are one array of n_params."""
    cdef Update a = next_update(u, &s.adam_steps)
    clip_update(s.params, s.moment, s.memory, s.grads, s.n_params, &a)


cdef real stack_step(Stack *s, const i32 *x, const i32 *y, const f64 *uniforms, int T, int B,
                     real *state, const Update *u, int threads) noexcept nogil:
    """One training step of B streams, x and y (T, B), from and into state
    (L*K, B, H): forward, backward, clip and update. Returns the summed loss
    over streams (not yet their mean)."""
    cdef real loss
    stack_transposes(s)
    stack_states(s, state, T, B, True)
    loss = stack_forward(s, x, y, uniforms, T, B, threads)
    stack_states(s, state, T, B, False)
    stack_backward(s, x, y, T, B, threads)
    stack_update(s, u)
    return loss


cdef Py_ssize_t stack_train(Stack *s, DataPass *d, int T, int B, real *state, const Update *u,
                            const f64 *uniforms, real *losses, Py_ssize_t n,
                            int threads) noexcept nogil:
    """Up to n training steps over d's chunks (min-char-rnn's data pass, as
    model_train), from and into state (L*K, B, H), zeroed where the pass
    wraps. uniforms: dropout's draws, (n, L-1, T, B, H), or NULL. losses[k]
    = the mean over streams of step k's summed loss. Stops after a step whose
    loss is not finite, or before a chunk with a bad id (d.bad). Returns the
    number of steps done."""
    cdef Py_ssize_t k = 0, per_step = <Py_ssize_t> (s.L - 1) * T * B * s.H
    cdef int K = 2 if s.cell == CELL_LSTM else 1
    while k < n:
        if not next_chunk(d, T, B, s.V, state, s.L * K * s.H):   # state: B rows of L*K*H
            break
        losses[k] = stack_step(s, d.x, d.y, uniforms + k * per_step if uniforms != NULL
                               else NULL, T, B, state, u, threads) / B
        d.position += T
        k += 1
        if not finite(losses[k - 1]):
            break
    return k
