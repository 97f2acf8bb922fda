# One layer of a Stack over a chunk: layer_forward / layer_backward, in groups of streams and pieces.
#
# Shapes (layer k of a Stack, stack.pxi; N = T*B rows, GH = G*H):
#     gx (N, GH) = W_ih x + b_ih for every step at once (layer 0: rows of
#         WihT0, a lookup; k >= 1: xin_k W_ih^T), in pieces of rows
#     gates (T, B, GH), hs (T+1, B, H), cs (T+1, B, H), aux (T, B, H): time-major
#     the recurrence: step t of stream b reads hs[t, b] and writes gates[t, b],
#         hs[t+1, b] (and cs, aux) only: streams are independent, so the B
#         streams run in stream_groups(B) groups, each on one thread with no
#         wait between its steps (as the tanh RNN's, rnn.pxi); with one group,
#         each step's product is cut into pieces of columns instead
#     backward: the chain of each group of streams from t = T-1 down to 0, then
#         the weight gradients in pieces of their GH rows (dW_hh, dW_ih, the
#         biases) and the gradient at the layer below in pieces of rows
# Every cut depends on the sizes only, and every product sums over k in order
# whatever the cut (matvec_t, matmul_blocked; BLAS gemm over whole sums), so
# results are the same bit for bit on any number of threads.

# -- the tanh cell of a stack: h = tanh(gx + W_hh h_prev + b_hh) ------------------

cdef void tanh_forward(real *h, const real *a, const real *gx, const real *b_hh, int B,
                       int H) noexcept nogil:
    """h (B, H) = tanh(gx + a + b_hh), a = W_hh h_prev (B, H)."""
    cdef int b, j
    cdef Py_ssize_t r
    for b in range(B):
        r = <Py_ssize_t> b * H
        for j in range(H):
            h[r + j] = rtanh((gx[r + j] + a[r + j]) + b_hh[j])


cdef void tanh_backward(real *da, const real *dh, const real *h, int B, int H) noexcept nogil:
    """da (B, H) = (1 - h^2) * dh, the gradient at the pre-activation."""
    cdef Py_ssize_t i
    for i in range(<Py_ssize_t> B * H):
        da[i] = (1.0 - h[i] * h[i]) * dh[i]


# -- forward ------------------------------------------------------------------------

cdef struct LayerRun:
    # a layer's arguments, shared by the pieces and groups of its work
    Stack *s
    const i32 *x
    int k, T, B, G, R


cdef void layer_forward_streams(Stack *s, int k, int T, int B, int b0, int b1,
                                int threads) noexcept nogil:
    """The recurrence of layer k for streams b0:b1 over T steps (gx made)."""
    cdef int H = s.H, GH = s.G * s.H, t, nb = b1 - b0
    cdef Py_ssize_t BH = <Py_ssize_t> B * H, BG = <Py_ssize_t> B * GH
    cdef Py_ssize_t h0 = <Py_ssize_t> b0 * H, g0 = <Py_ssize_t> b0 * GH
    cdef const real *b_hh = layer_param(s.params, s, k, 3)
    cdef const real *WhhT = s.WhhT_packed + <Py_ssize_t> k * H * GH
    cdef real *hs = s.hs + k * s.hs_stride + h0
    cdef real *cs = s.cs + k * s.hs_stride + h0
    cdef real *gates = s.gates + k * s.gates_stride + g0
    cdef real *aux = s.aux + k * s.rows_stride + h0
    cdef const real *gx = s.gx + g0
    for t in range(T):
        product(gates + t * BG, GH, hs + t * BH, H, WhhT, nb, H, GH, threads)
        if s.cell == CELL_LSTM:
            lstm_forward(hs + (t + 1) * BH, cs + (t + 1) * BH, aux + t * BH, gates + t * BG,
                         gx + t * BG, b_hh, cs + t * BH, nb, H)
        elif s.cell == CELL_GRU:
            gru_forward(hs + (t + 1) * BH, aux + t * BH, gates + t * BG, gx + t * BG, b_hh,
                        hs + t * BH, nb, H)
        else:
            tanh_forward(hs + (t + 1) * BH, gates + t * BG, gx + t * BG, b_hh, nb, H)


cdef void layer_forward_task(void *ctx, int g) noexcept nogil:
    """Group g of the recurrence: streams stripe_lo(g) to stripe_lo(g + 1), one thread."""
    cdef LayerRun *a = <LayerRun *> ctx
    layer_forward_streams(a.s, a.k, a.T, a.B, stripe_lo(g, a.G, a.B),
                          stripe_lo(g + 1, a.G, a.B), 1)


cdef void input_rows_task(void *ctx, int r) noexcept nogil:
    """Rows stripe_lo(r) to stripe_lo(r + 1) of gx (N, GH) = W_ih x + b_ih."""
    cdef LayerRun *a = <LayerRun *> ctx
    cdef Stack *s = a.s
    cdef int GH = s.G * s.H, N = a.T * a.B, j
    cdef int n0 = stripe_lo(r, a.R, N), n1 = stripe_lo(r + 1, a.R, N)
    cdef Py_ssize_t n
    cdef const real *b_ih = layer_param(s.params, s, a.k, 2)
    cdef const real *row
    cdef real *g
    if a.k > 0:
        gemm_rowmajor(b'N', b'T', n1 - n0, GH, s.H, 1.0,
                      s.xin + (a.k - 1) * s.rows_stride + <Py_ssize_t> n0 * s.H, s.H,
                      layer_param(s.params, s, a.k, 0), s.H, 0.0,
                      s.gx + <Py_ssize_t> n0 * GH, GH)
    for n in range(n0, n1):
        g = s.gx + n * GH
        if a.k == 0:
            row = s.WihT0 + <Py_ssize_t> a.x[n] * GH
            for j in range(GH):
                g[j] = row[j] + b_ih[j]
        else:
            for j in range(GH):
                g[j] = g[j] + b_ih[j]


cdef void layer_forward(Stack *s, int k, const i32 *x, int T, int B, int threads) noexcept nogil:
    """Layer k over T steps of B streams from hs_k[0] (and cs_k[0]): hs_k[1..T],
    gates, aux (and cs_k). Layer 0 reads the ids x (T, B), the others xin_k
    (T, B, H). WihT0 and WhhT_packed must hold this call's transposes."""
    cdef LayerRun a
    a.s, a.x, a.k, a.T, a.B = s, x, k, T, B
    a.R = product_pieces(<Py_ssize_t> T * B * s.G * s.H * (s.H if k else 1), T * B)
    run_pieces(input_rows_task, &a, a.R, threads)
    a.G = stream_groups(B)
    if a.G == 1:
        layer_forward_streams(s, k, T, B, 0, B, threads)
    else:
        run_pieces(layer_forward_task, &a, a.G, threads)


# -- backward -----------------------------------------------------------------------

cdef void layer_backward_streams(Stack *s, int k, int T, int B, int b0, int b1,
                                 int threads) noexcept nogil:
    """The chain of layer k for streams b0:b1: dgx[t], dgh[t] from dh[t] and
    the gradient the step after t sends back, t = T-1 down to 0."""
    cdef int H = s.H, GH = s.G * s.H, t, nb = b1 - b0
    cdef Py_ssize_t BH = <Py_ssize_t> B * H, BG = <Py_ssize_t> B * GH, i, n = <Py_ssize_t> nb * H
    cdef Py_ssize_t h0 = <Py_ssize_t> b0 * H, g0 = <Py_ssize_t> b0 * GH
    cdef const real *Whh = s.Whh_packed + <Py_ssize_t> k * H * GH
    cdef const real *hs = s.hs + k * s.hs_stride + h0
    cdef const real *cs = s.cs + k * s.hs_stride + h0
    cdef const real *gates = s.gates + k * s.gates_stride + g0
    cdef const real *aux = s.aux + k * s.rows_stride + h0
    cdef real *dgx = s.dgx + g0
    cdef real *dgh = (s.dgh if s.cell == CELL_GRU else s.dgx) + g0
    cdef real *dn = s.dh_next + h0
    cdef real *dc = s.dc_next + h0
    cdef real *direct = s.direct + h0
    cdef real *d
    memset(dn, 0, n * sizeof(real))
    memset(dc, 0, n * sizeof(real))
    for t in range(T - 1, -1, -1):
        d = s.dh + t * BH + h0
        for i in range(n):
            d[i] = d[i] + dn[i]
        if s.cell == CELL_LSTM:
            lstm_backward(dgx + t * BG, dc, d, gates + t * BG, cs + t * BH, aux + t * BH, nb, H)
        elif s.cell == CELL_GRU:
            gru_backward(dgx + t * BG, dgh + t * BG, direct, d, gates + t * BG, aux + t * BH,
                         hs + t * BH, nb, H)
        else:
            tanh_backward(dgx + t * BG, d, hs + (t + 1) * BH, nb, H)
        if t > 0:
            product(dn, H, dgh + t * BG, GH, Whh, nb, GH, H, threads)
            if s.cell == CELL_GRU:
                for i in range(n):
                    dn[i] = dn[i] + direct[i]


cdef void layer_backward_task(void *ctx, int g) noexcept nogil:
    """Group g of the backward chain, one thread."""
    cdef LayerRun *a = <LayerRun *> ctx
    layer_backward_streams(a.s, a.k, a.T, a.B, stripe_lo(g, a.G, a.B),
                           stripe_lo(g + 1, a.G, a.B), 1)


cdef void weight_grads_task(void *ctx, int r) noexcept nogil:
    """Rows j0:j1 = stripe_lo(r), stripe_lo(r + 1) of layer k's GH-row gradients:
    dW_hh = dgh^T hs[:T], db_hh, db_ih (column sums), dW_ih = dgx^T xin
    (k >= 1) or its scatter over the ids' columns (k = 0: dW_ih, or dtable)."""
    cdef LayerRun *a = <LayerRun *> ctx
    cdef Stack *s = a.s
    cdef int k = a.k, H = s.H, GH = s.G * s.H, N = a.T * a.B, V = s.V, j, xn
    cdef int j0 = stripe_lo(r, a.R, GH), j1 = stripe_lo(r + 1, a.R, GH)
    cdef Py_ssize_t n
    cdef const real *dgh = s.dgh if s.cell == CELL_GRU else s.dgx
    cdef real *dWih = s.dtable if k == 0 and s.D else layer_param(s.grads, s, k, 0)
    cdef const real *g
    gemm_rowmajor(b'T', b'N', j1 - j0, H, N, 1.0, dgh + j0, GH, s.hs + k * s.hs_stride, H,
                  0.0, layer_param(s.grads, s, k, 1) + <Py_ssize_t> j0 * H, H)
    column_sums(layer_param(s.grads, s, k, 3) + j0, dgh + j0, N, j1 - j0, GH)
    column_sums(layer_param(s.grads, s, k, 2) + j0, s.dgx + j0, N, j1 - j0, GH)
    if k > 0:
        gemm_rowmajor(b'T', b'N', j1 - j0, H, N, 1.0, s.dgx + j0, GH,
                      s.xin + (k - 1) * s.rows_stride, H, 0.0, dWih + <Py_ssize_t> j0 * H, H)
        return
    memset(dWih + <Py_ssize_t> j0 * V, 0, <Py_ssize_t> (j1 - j0) * V * sizeof(real))
    for n in range(N):
        g = s.dgx + n * GH
        xn = a.x[n]
        for j in range(j0, j1):
            dWih[<Py_ssize_t> j * V + xn] += g[j]


cdef void input_grad_task(void *ctx, int r) noexcept nogil:
    """Rows stripe_lo(r) to stripe_lo(r + 1) of dh (N, H) = (dgx W_ih) * mask,
    the gradient at the layer below's outputs (k >= 1)."""
    cdef LayerRun *a = <LayerRun *> ctx
    cdef Stack *s = a.s
    cdef int H = s.H, GH = s.G * s.H, N = a.T * a.B
    cdef int n0 = stripe_lo(r, a.R, N), n1 = stripe_lo(r + 1, a.R, N)
    cdef Py_ssize_t i, lo = <Py_ssize_t> n0 * H, hi = <Py_ssize_t> n1 * H
    cdef const real *mask = s.mask + (a.k - 1) * s.rows_stride
    gemm_rowmajor(b'N', b'N', n1 - n0, H, GH, 1.0, s.dgx + <Py_ssize_t> n0 * GH, GH,
                  layer_param(s.params, s, a.k, 0), H, 0.0, s.dh + lo, H)
    if s.dropping:
        for i in range(lo, hi):
            s.dh[i] = s.dh[i] * mask[i]


cdef void layer_backward(Stack *s, int k, const i32 *x, int T, int B, int threads) noexcept nogil:
    """Backward of layer_forward from dh (T, B, H), the gradient at hs_k[1:]:
    the layer's gradients (W_ih, W_hh, b_ih, b_hh; unclipped) into grads, and
    for k >= 1 dh becomes the gradient at hs_{k-1}[1:] (through xin's mask)."""
    cdef LayerRun a
    cdef int GH = s.G * s.H, N = T * B
    a.s, a.x, a.k, a.T, a.B = s, x, k, T, B
    a.G = stream_groups(B)
    if a.G == 1:
        layer_backward_streams(s, k, T, B, 0, B, threads)
    else:
        run_pieces(layer_backward_task, &a, a.G, threads)
    a.R = product_pieces(<Py_ssize_t> GH * s.H * N * (2 if k else 1), GH)
    run_pieces(weight_grads_task, &a, a.R, threads)
    if k == 0:
        if s.D:
            embedding_backward(layer_param(s.grads, s, 0, 0), layer_param(s.grads, s, s.L, 2),
                               s.dtable, layer_param(s.params, s, 0, 0),
                               layer_param(s.params, s, s.L, 2), GH, s.V, s.D)
        return
    a.R = product_pieces(<Py_ssize_t> N * GH * s.H, N)
    run_pieces(input_grad_task, &a, a.R, threads)
