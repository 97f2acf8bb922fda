# Stacked and gated layers: the tanh cell of stacks, layer_forward / layer_backward, stack_* composition.
#
# A Stack is plain C like the Model (model.pxi): sizes, the flat parameter,
# memory and gradient buffers (their layout: layer_offset and layer_param, one definition),
# and pointers into the work buffers the GatedWorkspace owns. Per layer k
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
# Results do not depend on the thread count: only the output layer takes
# threads, and it cuts its work by size (partition.pxi).

cdef enum:
    CELL_TANH = 0
    CELL_LSTM = 1
    CELL_GRU = 2


cdef struct Stack:
    int cell, L, G, H, V, S     # cell kind, layers, gates, sizes, output stripes
    int D                       # the input embedding's width; 0: one-hot input
    f64 *params                 # flat (n_params,): layer_param's layout
    f64 *memory                 # Adagrad's memory, or Adam's second moment
    f64 *moment                 # Adam's first moment (NULL with Adagrad)
    f64 *grads
    Py_ssize_t n_params
    long long adam_steps        # Adam's updates so far
    f64 dropout                 # p; the mask of a step: (u >= p) / (1 - p)
    bint dropping               # masks in use (training with p > 0 and L > 1)
    # work buffers (GatedWorkspace.reserve), strides per layer
    Py_ssize_t hs_stride, gates_stride, rows_stride
    f64 *WihT0                  # (V, GH): W_ih of layer 0 transposed (embed W_ih^T), per call
    f64 *dtable                 # (GH, V): the gradient of WihT0^T (with an embedding)
    f64 *WhhT                   # (L, H, GH): W_hh^T per layer, per call
    f64 *hs
    f64 *cs
    f64 *gates
    f64 *aux
    f64 *xin                    # (L-1, N, H)
    f64 *mask                   # (L-1, N, H)
    f64 *gx                     # (N, GH)
    f64 *dgx                    # (N, GH)
    f64 *dgh                    # (N, GH) (gru; the others use dgx)
    f64 *dh                     # (N, H): the gradient at a layer's outputs
    f64 *dh_next                # (B, H)
    f64 *dc_next                # (B, H)
    f64 *direct                 # (B, H)
    # the output layer's (output.pxi)
    f64 *probs                  # (N, V)
    f64 *scale                  # (S, N)
    f64 *stripe_max
    f64 *stripe_sum
    f64 *target_logit           # (N,)
    f64 *dh_parts               # (S-1, N, H)
    f64 *logits                 # (V,)


cdef inline Py_ssize_t layer_offset(const Stack *s, int k) noexcept nogil:
    """Offset of layer k's W_ih in the flat parameters (k = L: Why's)."""
    cdef Py_ssize_t GH = <Py_ssize_t> s.G * s.H
    if k == 0:
        return 0
    return GH * ((s.D if s.D else s.V) + s.H + 2) + (k - 1) * GH * (2 * s.H + 2)


cdef inline Py_ssize_t stack_size(const Stack *s) noexcept nogil:
    """The number of parameters: the L layers, then Why and by (and embed)."""
    return layer_offset(s, s.L) + <Py_ssize_t> s.V * s.H + s.V + <Py_ssize_t> s.V * s.D


cdef inline f64 *layer_param(f64 *base, const Stack *s, int k, int which) noexcept nogil:
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


# -- the tanh cell of a stack: h = tanh(gx + W_hh h_prev + b_hh) ------------------

cdef void tanh_forward(f64 *h, const f64 *a, const f64 *gx, const f64 *b_hh, int B,
                       int H) noexcept nogil:
    """h (B, H) = tanh(gx + a + b_hh), a = W_hh h_prev (B, H)."""
    cdef int b, j
    cdef Py_ssize_t r
    for b in range(B):
        r = <Py_ssize_t> b * H
        for j in range(H):
            h[r + j] = vtanh((gx[r + j] + a[r + j]) + b_hh[j])


cdef void tanh_backward(f64 *da, const f64 *dh, const f64 *h, int B, int H) noexcept nogil:
    """da (B, H) = (1 - h^2) * dh, the gradient at the pre-activation."""
    cdef Py_ssize_t i
    for i in range(<Py_ssize_t> B * H):
        da[i] = (1.0 - h[i] * h[i]) * dh[i]


# -- one layer over a chunk ------------------------------------------------------

cdef inline void recurrent_product(f64 *out, const f64 *h, const f64 *WhhT, int B, int H,
                                   int GH) noexcept nogil:
    """out (B, GH) = h (B, H) W_hh^T, WhhT (H, GH) = W_hh^T."""
    if B == 1:
        matvec_t(WhhT, GH, h, out, H, GH)
    else:
        gemm_rowmajor(b'N', b'N', B, GH, H, 1.0, h, H, WhhT, GH, 0.0, out, GH)


cdef inline void backward_product(f64 *out, const f64 *dg, const f64 *W, int B, int H,
                                  int GH) noexcept nogil:
    """out (B, H) = dg (B, GH) W (GH, H)."""
    if B == 1:
        matvec_t(W, H, dg, out, GH, H)
    else:
        gemm_rowmajor(b'N', b'N', B, H, GH, 1.0, dg, GH, W, H, 0.0, out, H)


cdef void layer_forward(Stack *s, int k, const i32 *x, int T, int B) noexcept nogil:
    """Layer k over T steps of B streams from hs_k[0] (and cs_k[0]): hs_k[1..T],
    gates, aux (and cs_k). Layer 0 reads the ids x (T, B), the others xin_k
    (T, B, H). WihT0 and WhhT must hold this call's transposes."""
    cdef int H = s.H, GH = s.G * s.H, t, j
    cdef Py_ssize_t n, N = <Py_ssize_t> T * B, BH = <Py_ssize_t> B * H
    cdef Py_ssize_t BG = <Py_ssize_t> B * GH
    cdef const f64 *b_ih = layer_param(s.params, s, k, 2)
    cdef const f64 *b_hh = layer_param(s.params, s, k, 3)
    cdef const f64 *WhhT = s.WhhT + <Py_ssize_t> k * H * GH
    cdef f64 *hs = s.hs + k * s.hs_stride
    cdef f64 *cs = s.cs + k * s.hs_stride
    cdef f64 *gates = s.gates + k * s.gates_stride
    cdef f64 *aux = s.aux + k * s.rows_stride
    cdef const f64 *row
    cdef f64 *g
    # gx (N, GH) = W_ih x + b_ih for every step at once
    if k == 0:
        for n in range(N):
            row = s.WihT0 + <Py_ssize_t> x[n] * GH
            g = s.gx + n * GH
            for j in range(GH):
                g[j] = row[j] + b_ih[j]
    else:
        gemm_rowmajor(b'N', b'T', <int> N, GH, H, 1.0, s.xin + (k - 1) * s.rows_stride, H,
                      layer_param(s.params, s, k, 0), H, 0.0, s.gx, GH)
        for n in range(N):
            g = s.gx + n * GH
            for j in range(GH):
                g[j] = g[j] + b_ih[j]
    for t in range(T):
        recurrent_product(gates + t * BG, hs + t * BH, WhhT, B, H, GH)
        if s.cell == CELL_LSTM:
            lstm_forward(hs + (t + 1) * BH, cs + (t + 1) * BH, aux + t * BH, gates + t * BG,
                         s.gx + t * BG, b_hh, cs + t * BH, B, H)
        elif s.cell == CELL_GRU:
            gru_forward(hs + (t + 1) * BH, aux + t * BH, gates + t * BG, s.gx + t * BG, b_hh,
                        hs + t * BH, B, H)
        else:
            tanh_forward(hs + (t + 1) * BH, gates + t * BG, s.gx + t * BG, b_hh, B, H)


cdef void layer_backward(Stack *s, int k, const i32 *x, int T, int B) noexcept nogil:
    """Backward of layer_forward from dh (T, B, H), the gradient at hs_k[1:]:
    the layer's gradients (W_ih, W_hh, b_ih, b_hh; unclipped) into grads, and
    for k >= 1 dh becomes the gradient at hs_{k-1}[1:] (through xin's mask)."""
    cdef int H = s.H, GH = s.G * s.H, t, j
    cdef Py_ssize_t n, N = <Py_ssize_t> T * B, BH = <Py_ssize_t> B * H
    cdef Py_ssize_t BG = <Py_ssize_t> B * GH, i
    cdef const f64 *Whh = layer_param(s.params, s, k, 1)
    cdef f64 *hs = s.hs + k * s.hs_stride
    cdef f64 *cs = s.cs + k * s.hs_stride
    cdef f64 *gates = s.gates + k * s.gates_stride
    cdef f64 *aux = s.aux + k * s.rows_stride
    cdef f64 *dWih = s.dtable if k == 0 and s.D else layer_param(s.grads, s, k, 0)
    cdef f64 *dgh = s.dgh if s.cell == CELL_GRU else s.dgx
    cdef f64 *d
    cdef const f64 *xin
    cdef const f64 *mask
    cdef const f64 *g
    memset(s.dh_next, 0, BH * sizeof(f64))
    memset(s.dc_next, 0, BH * sizeof(f64))
    # the sequential chain: dgx[t], dgh[t] from dh[t] + the next step's dh_prev
    for t in range(T - 1, -1, -1):
        d = s.dh + t * BH
        for i in range(BH):
            d[i] = d[i] + s.dh_next[i]
        if s.cell == CELL_LSTM:
            lstm_backward(s.dgx + t * BG, s.dc_next, d, gates + t * BG, cs + t * BH,
                          aux + t * BH, B, H)
        elif s.cell == CELL_GRU:
            gru_backward(s.dgx + t * BG, dgh + t * BG, s.direct, d, gates + t * BG,
                         aux + t * BH, hs + t * BH, B, H)
        else:
            tanh_backward(s.dgx + t * BG, d, hs + (t + 1) * BH, B, H)
        if t > 0:
            backward_product(s.dh_next, dgh + t * BG, Whh, B, H, GH)
            if s.cell == CELL_GRU:
                for i in range(BH):
                    s.dh_next[i] = s.dh_next[i] + s.direct[i]
    # the weight gradients: one product each over the N rows
    gemm_rowmajor(b'T', b'N', GH, H, <int> N, 1.0, dgh, GH, hs, H, 0.0,
                  layer_param(s.grads, s, k, 1), H)
    column_sums(layer_param(s.grads, s, k, 3), dgh, <int> N, GH, GH)
    column_sums(layer_param(s.grads, s, k, 2), s.dgx, <int> N, GH, GH)
    if k == 0:     # dW_ih (GH, V) of one-hot inputs, or dtable
        memset(dWih, 0, <Py_ssize_t> GH * s.V * sizeof(f64))
        for n in range(N):
            g = s.dgx + n * GH
            for j in range(GH):
                dWih[<Py_ssize_t> j * s.V + x[n]] += g[j]
        if s.D:
            embedding_backward(layer_param(s.grads, s, 0, 0), layer_param(s.grads, s, s.L, 2),
                               s.dtable, layer_param(s.params, s, 0, 0),
                               layer_param(s.params, s, s.L, 2), GH, s.V, s.D)
        return
    xin = s.xin + (k - 1) * s.rows_stride
    gemm_rowmajor(b'T', b'N', GH, H, <int> N, 1.0, s.dgx, GH, xin, H, 0.0, dWih, H)
    # the gradient at the layer below's outputs: dgx W_ih, through the mask
    gemm_rowmajor(b'N', b'N', <int> N, H, GH, 1.0, s.dgx, GH,
                  layer_param(s.params, s, k, 0), H, 0.0, s.dh, H)
    if s.dropping:
        mask = s.mask + (k - 1) * s.rows_stride
        for i in range(N * H):
            s.dh[i] = s.dh[i] * mask[i]


# -- the stack: layers, then the output layer --------------------------------------

cdef void stack_transposes(Stack *s) noexcept nogil:
    """WihT0 = layer 0's W_ih^T (with an embedding: embed W_ih^T) and WhhT[k] =
    W_hh^T of each layer (per call: parameters changed in place by the caller
    are seen)."""
    cdef int k, H = s.H, GH = s.G * s.H
    if s.D:
        gemm_rowmajor(b'N', b'T', s.V, GH, s.D, 1.0, layer_param(s.params, s, s.L, 2), s.D,
                      layer_param(s.params, s, 0, 0), s.D, 0.0, s.WihT0, GH)
    else:
        transpose(s.WihT0, layer_param(s.params, s, 0, 0), GH, s.V)
    for k in range(s.L):
        transpose(s.WhhT + <Py_ssize_t> k * H * GH, layer_param(s.params, s, k, 1), GH, H)


cdef void stack_layers(Stack *s, const i32 *x, const f64 *uniforms, int T,
                       int B) noexcept nogil:
    """The L layers over a chunk (T, B) from the states in hs_k[0], cs_k[0].
    With s.dropping, layer k+1 reads hs_k[1:] * mask_k, mask_k = (u >= p) /
    (1 - p) for the uniforms (L-1, T, B, H); else hs_k[1:] itself (xin_k is
    then a copy)."""
    cdef int k
    cdef Py_ssize_t i, NH = <Py_ssize_t> T * B * s.H, BH = <Py_ssize_t> B * s.H
    cdef f64 *xin
    cdef f64 *mask
    cdef const f64 *u
    cdef const f64 *h
    cdef f64 keep = 1.0 / (1.0 - s.dropout) if s.dropping else 1.0
    for k in range(s.L):
        layer_forward(s, k, x, T, B)
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
            memcpy(xin, h, NH * sizeof(f64))


cdef f64 stack_forward(Stack *s, const i32 *x, const i32 *y, const f64 *uniforms, int T,
                       int B, int threads) noexcept nogil:
    """The layers, then the output layer over the top layer's states: the loss
    summed over the T*B rows; probs and scale left for stack_backward."""
    cdef Py_ssize_t BH = <Py_ssize_t> B * s.H
    stack_layers(s, x, uniforms, T, B)
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
        layer_backward(s, k, x, T, B)


cdef void stack_states(Stack *s, f64 *state, int T, int B, bint load) noexcept nogil:
    """Between state (L, K, B, H) (K = 2 for the lstm: h then c; else 1) and
    the layers' hs_k[0], cs_k[0] (load) or hs_k[T], cs_k[T] (store)."""
    cdef int k, K = 2 if s.cell == CELL_LSTM else 1
    cdef Py_ssize_t BH = <Py_ssize_t> B * s.H, at
    for k in range(s.L):
        at = 0 if load else T * BH
        if load:
            memcpy(s.hs + k * s.hs_stride, state + (k * K) * BH, BH * sizeof(f64))
            if K == 2:
                memcpy(s.cs + k * s.hs_stride, state + (k * K + 1) * BH, BH * sizeof(f64))
        else:
            memcpy(state + (k * K) * BH, s.hs + k * s.hs_stride + at, BH * sizeof(f64))
            if K == 2:
                memcpy(state + (k * K + 1) * BH, s.cs + k * s.hs_stride + at,
                       BH * sizeof(f64))


cdef void stack_update(Stack *s, const Update *u) noexcept nogil:
    """Every gradient clipped, then the update (update.pxi: Adagrad, or Adam at
    step adam_steps + 1) on every parameter: the flat buffers are one array
    of n_params."""
    cdef Update a
    if u.optimizer == ADAM:
        s.adam_steps += 1
        a = adam_at(u[0], s.adam_steps)
        clip_adam(s.params, s.moment, s.memory, s.grads, s.n_params, &a)
    else:
        clip_adagrad(s.params, s.memory, s.grads, s.n_params, u)
