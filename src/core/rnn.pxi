# The RNN layer: h_t = tanh(Wxh[:, x_t] + Whh h_{t-1} + bh) for B streams, forward and backward.
#
# Shapes: Wxh (H, V), Whh (H, H) and WhhT = Whh^T (the forward reads WhhT,
# the backward Whh), bh (H,). Hidden states of B streams are (B, H) blocks,
# one row per stream; a chunk's are hs (T+1, B, H), time-major, hs[0] the
# state before the chunk, so that hs[1:] is one (T*B, H) matrix for the
# output layer. Ids are (T, B), time-major too.
#
# The input layer is a column lookup of Wxh, never a one-hot product; dWxh is
# zero outside the columns of the ids of the last chunk (zero_columns and
# distinct_ids keep it so: model_rnn_backward). The product of a step is
# matvec_t for one stream, matmul_rows below GEMM_MIN_STREAMS streams, and
# from there on the register-blocked product over Whh^T / Whh packed in panels
# once per call (model_prepare; BLAS gemm repacked the whole H x H matrix at
# every step, a quarter of a float32 step, and Whh as it is put a block's
# rows in the same L1 sets at a row stride of 1 or 4 KiB: benchmarks/README.md),
# cut into product_pieces of panels by size.

cdef inline void hidden_matmul(real *Y, const real *X, const real *W, int B, int H,
                               int threads) noexcept nogil:
    """Y (B, H) = X (B, H) @ W (H, H): matvec_t for one stream, matmul_rows
    below GEMM_MIN_STREAMS streams (W as it is, on this thread); from there on
    W in panel layout (linalg.pxi: a block of 32 columns is one piece of
    memory), in product()'s pieces of panels, fixed by size (the result does
    not depend on the thread count), on up to `threads` threads."""
    if B == 1:
        matvec_t(W, H, X, Y, H, H)
    elif B < GEMM_MIN_STREAMS:
        matmul_rows(Y, X, W, B, H, H)
    else:
        product(Y, H, X, H, W, B, H, H, threads)


# -- forward ------------------------------------------------------------------

cdef inline void rnn_step(real *h, const real *h_prev, const i32 *x, int B,
                          const real *Wxh, const real *WhhT, const real *bh, int H,
                          int V, int threads) noexcept nogil:
    """h (B, H) = tanh(Wxh[:, x] + Whh h_prev + bh), row b for stream b.
    h_prev (B, H), x (B,) ids, Wxh (H, V), WhhT (H, H) = Whh^T, bh (H,);
    h must not overlap h_prev."""
    cdef int b, i, xb
    cdef real *hb
    hidden_matmul(h, h_prev, WhhT, B, H, threads)
    for b in range(B):
        hb = h + <Py_ssize_t> b * H
        xb = x[b]
        for i in range(H):
            hb[i] = (Wxh[<Py_ssize_t> i * V + xb] + hb[i]) + bh[i]
    for i in range(B * H):
        h[i] = rtanh(h[i])


cdef inline int stream_groups(int B) noexcept nogil:
    """The groups of streams the recurrence of B streams is cut into (each
    group's recurrence runs on one thread, with no wait between its time
    steps): B // GROUP_MIN_STREAMS, at most MAX_STRIPES, at least 1. Sizes
    only."""
    cdef int g = B // GROUP_MIN_STREAMS
    return MAX_STRIPES if g > MAX_STRIPES else (g if g > 1 else 1)


cdef void rnn_forward_streams(real *hs, const i32 *inputs, int T, int B, int b0, int b1,
                              const real *Wxh, const real *WhhT, const real *bh, int H, int V,
                              int threads, counter *made, long long base) noexcept nogil:
    """rnn_forward of streams b0:b1 of hs (T+1, B, H) and inputs (T, B)."""
    cdef int t
    cdef Py_ssize_t block = <Py_ssize_t> B * H, at = <Py_ssize_t> b0 * H
    for t in range(T):
        rnn_step(hs + (t + 1) * block + at, hs + t * block + at, inputs + t * B + b0,
                 b1 - b0, Wxh, WhhT, bh, H, V, threads)
        if made != NULL:
            counter_set(made, base + t + 1)


cdef struct RnnGroups:
    # the arguments of a recurrence cut into groups of streams, shared by its pieces
    real *hs
    real *dhs
    real *dh_next
    const i32 *inputs
    const real *Wxh
    const real *W          # WhhT (forward) or Whh (backward), as hidden_matmul reads it
    const real *bh
    int T, B, H, V, G


cdef void rnn_forward_task(void *ctx, int g) noexcept nogil:
    """Group g of rnn_forward: streams stripe_lo(g) to stripe_lo(g + 1), one thread."""
    cdef RnnGroups *a = <RnnGroups *> ctx
    rnn_forward_streams(a.hs, a.inputs, a.T, a.B, stripe_lo(g, a.G, a.B),
                        stripe_lo(g + 1, a.G, a.B), a.Wxh, a.W, a.bh, a.H, a.V, 1, NULL, 0)


cdef void rnn_forward(real *hs, const i32 *inputs, int T, int B, const real *Wxh,
                      const real *WhhT, const real *bh, int H, int V, int threads,
                      counter *made, long long base) noexcept nogil:
    """hs (T+1, B, H): from hs[0] = h_prev, hs[t+1] = rnn_step(hs[t], inputs[t]).
    inputs (T, B) ids, Wxh (H, V), WhhT (H, H) = Whh^T (in panels from
    GEMM_MIN_STREAMS streams on: hidden_matmul), bh (H,). In
    stream_groups(B) groups of streams on up to `threads` threads; with one
    group, each step's product in pieces. If made is not NULL (one group),
    *made = base + t (release) once hs[t] is there (the pipeline's output
    thread waits on it)."""
    cdef RnnGroups a
    a.G = stream_groups(B)
    if a.G == 1 or made != NULL:
        rnn_forward_streams(hs, inputs, T, B, 0, B, Wxh, WhhT, bh, H, V, threads, made, base)
        return
    a.hs, a.inputs, a.Wxh, a.W, a.bh = hs, inputs, Wxh, WhhT, bh
    a.T, a.B, a.H, a.V = T, B, H, V
    run_pieces(rnn_forward_task, &a, a.G, threads)


# -- backward -----------------------------------------------------------------

cdef struct WhhGrad:
    # the arguments of rnn_backward's dWhh, shared by its pieces
    real *dWhh
    const real *dh_raw
    const real *hs
    int N, H, R


cdef void whh_grad_task(void *ctx, int r) noexcept nogil:
    """Piece r of dWhh: rows stripe_lo(r) to stripe_lo(r + 1)."""
    cdef WhhGrad *a = <WhhGrad *> ctx
    cdef int r0 = stripe_lo(r, a.R, a.H), r1 = stripe_lo(r + 1, a.R, a.H)
    gemm_rowmajor(b'T', b'N', r1 - r0, a.H, a.N, 1.0, a.dh_raw + r0, a.H, a.hs, a.H,
                  0.0, a.dWhh + <Py_ssize_t> r0 * a.H, a.H)


cdef void rnn_backward(real *dWxh, real *dWhh, real *dbh, real *dhs, real *dh_next,
                       const real *hs, const i32 *inputs, int T, int B,
                       const real *Whh, int H, int V, int pieces,
                       int threads) noexcept nogil:
    """Backward of rnn_forward. dhs (T, B, H) holds dloss/dhs[1:] from the
    output layer and becomes dh_raw, the gradient at the input of the tanh
    (rnn_backward_chain); then dWhh (H, H) = dh_raw^T hs[:T] (both as (T*B,
    H)), in `pieces` pieces of rows on up to `threads` threads; then dbh and
    dWxh (rnn_input_grads). hs (T+1, B, H) from rnn_forward, inputs (T, B),
    Whh (H, H) (in panels from GEMM_MIN_STREAMS streams on: hidden_matmul),
    dh_next (B, H) scratch. Gradients unclipped."""
    cdef WhhGrad a
    rnn_backward_chain(dhs, dh_next, hs, T, B, Whh, H, threads)
    a.dWhh, a.dh_raw, a.hs = dWhh, dhs, hs
    a.N, a.H, a.R = T * B, H, pieces
    run_pieces(whh_grad_task, &a, pieces, threads)
    rnn_input_grads(dWxh, dbh, dhs, inputs, T * B, H, V)


cdef void rnn_backward_chain_streams(real *dhs, real *dh_next, const real *hs, int T, int B,
                                     int b0, int b1, const real *Whh, int H,
                                     int threads) noexcept nogil:
    """rnn_backward_chain of streams b0:b1 (dh_next: their rows)."""
    cdef int t
    cdef Py_ssize_t i, block = <Py_ssize_t> B * H, at = <Py_ssize_t> b0 * H
    cdef Py_ssize_t n = <Py_ssize_t> (b1 - b0) * H
    cdef real *row
    cdef real *dn = dh_next + at
    cdef const real *h_t
    cdef real d
    memset(dn, 0, n * sizeof(real))
    for t in range(T - 1, -1, -1):
        row = dhs + t * block + at
        h_t = hs + (t + 1) * block + at
        for i in range(n):
            d = row[i] + dn[i]
            row[i] = (1.0 - h_t[i] * h_t[i]) * d
        if t > 0:
            hidden_matmul(dn, row, Whh, b1 - b0, H, threads)


cdef void rnn_backward_chain_task(void *ctx, int g) noexcept nogil:
    """Group g of rnn_backward_chain, one thread."""
    cdef RnnGroups *a = <RnnGroups *> ctx
    rnn_backward_chain_streams(a.dhs, a.dh_next, a.hs, a.T, a.B, stripe_lo(g, a.G, a.B),
                               stripe_lo(g + 1, a.G, a.B), a.W, a.H, 1)


cdef void rnn_backward_chain(real *dhs, real *dh_next, const real *hs, int T, int B,
                             const real *Whh, int H, int threads) noexcept nogil:
    """The sequential part of rnn_backward: from t = T-1 down to 0,
        dh_raw[t] = (1 - hs[t+1]^2) * (dhs[t] + dh_raw[t+1] Whh)
    in place of dhs (T, B, H); in stream_groups(B) groups of streams, as
    rnn_forward."""
    cdef RnnGroups a
    a.G = stream_groups(B)
    if a.G == 1:
        rnn_backward_chain_streams(dhs, dh_next, hs, T, B, 0, B, Whh, H, threads)
        return
    a.dhs, a.dh_next, a.hs, a.W = dhs, dh_next, <real *> hs, Whh
    a.T, a.B, a.H = T, B, H
    run_pieces(rnn_backward_chain_task, &a, a.G, threads)


cdef void rnn_input_grads(real *dWxh, real *dbh, const real *dh_raw, const i32 *inputs,
                          int N, int H, int V) noexcept nogil:
    """dbh (H,) = the sum of the N rows of dh_raw (N, H), and dWxh[:, inputs[n]]
    += dh_raw[n] (dWxh (H, V): the chunk's columns must be zero on entry, the
    others are not touched)."""
    cdef int x
    cdef Py_ssize_t i, r
    cdef const real *row
    memset(dbh, 0, H * sizeof(real))
    for r in range(N):
        row = dh_raw + r * H
        for i in range(H):
            dbh[i] += row[i]
    for r in range(N):
        x = inputs[r]
        row = dh_raw + r * H
        for i in range(H):
            dWxh[i * V + x] += row[i]


# -- the chunk's columns of Wxh (dWxh is zero outside them) -----------------------

cdef int distinct_ids(i32 *present, unsigned char *seen, const i32 *ids,
                      int n) noexcept nogil:
    """present[:k] = the distinct ids of ids (n,) in order of first
    appearance; returns k. seen (V,) is all zero on entry and on return."""
    cdef int k = 0, t, x
    for t in range(n):
        x = ids[t]
        if not seen[x]:
            seen[x] = 1
            present[k] = x
            k += 1
    for t in range(k):
        seen[present[t]] = 0
    return k


cdef void zero_columns(real *a, const i32 *columns, int n_columns, int rows,
                       int cols) noexcept nogil:
    """a[:, columns[k]] = 0 for k < n_columns; a (rows, cols)."""
    cdef int k, i
    for k in range(n_columns):
        for i in range(rows):
            a[i * cols + columns[k]] = 0.0
