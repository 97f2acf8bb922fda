# The output layer: P = softmax(hs Why^T + by) and loss = -sum log P[target], forward and backward.
#
# Shapes: N rows (T steps x B streams, time-major), hs (N, H) the states the
# layer reads (hs[1:] of the chunk), targets (N,) ids, Why (V, H), by (V,),
# probs / dY (N, V). The loss of a chunk is summed over its N rows; the
# backward is for grad_scale * that sum (grad_scale = 1/B: the mean over
# streams).
#
# Striped (output_forward / output_backward): S stripes of rows of Why
# (stripe s: rows stripe_lo(s) to stripe_lo(s + 1)) run on up to `threads`
# OpenMP threads through run_pieces; the stripes' partial results (softmax
# maxima and sums, dh) are combined in stripe order. The softmax stays
# factored between forward and backward: probs[n, lo:hi] holds
# exp(logit - stripe max) and scale[s, n] the factor that makes it P.
#
# In groups (output_group, then output_weight_grads): the pipelined steps'
# form for a small layer (one stripe), a few rows at a time from Why^T with
# register-blocked products, the weight gradients once all groups are done.

# -- forward ------------------------------------------------------------------

cdef void output_forward_stripe(real *probs, real *top, real *total, real *target_logit,
                                const real *hs, const i32 *targets, const real *Why,
                                const real *by, int lo, int hi, int N, int H,
                                int V) noexcept nogil:
    """Rows lo:hi of the output layer over N states: probs[:, lo:hi] (N, hi-lo;
    row stride V) = exp(logit - top) for logit = hs (N, H) Why[lo:hi]^T +
    by[lo:hi]; top (N,) the stripe's largest logit, total (N,) its sum of
    exp(logit - top), target_logit[n] (N,) set where targets[n] is in [lo, hi)."""
    # logits (N, n) = hs (N, H) @ Why[lo:hi]^T (H, n): one product for all N
    gemm_rowmajor(b'N', b'T', N, hi - lo, H, 1.0, hs, H, Why + <Py_ssize_t> lo * H, H,
                  0.0, probs + lo, V)
    softmax_rows(probs, top, total, target_logit, targets, by, lo, hi, N, V)


cdef void softmax_rows(real *probs, real *top, real *total, real *target_logit,
                       const i32 *targets, const real *by, int lo, int hi, int N,
                       int V) noexcept nogil:
    """Columns lo:hi of N rows of logits (before the bias) in probs (row
    stride V): logit = probs + by, then probs = exp(logit - top) with top (N,)
    the largest logit of the row, total (N,) the sum; target_logit[n] set
    where targets[n] is in [lo, hi)."""
    cdef int n = hi - lo, t, v, target
    cdef real *row
    cdef const real *b = by + lo
    cdef real m
    for t in range(N):
        row = probs + <Py_ssize_t> t * V + lo
        for v in range(n):
            row[v] = row[v] + b[v]
        target = targets[t]
        if lo <= target < hi:
            target_logit[t] = row[target - lo]
        m = row_max(row, n)
        for v in range(n):
            row[v] = rexp(row[v] - m)
        top[t] = m
        total[t] = row_sum(row, n)


cdef struct OutputForward:
    # output_forward's arguments, shared by its stripes
    real *probs
    real *stripe_max
    real *stripe_sum
    real *target_logit
    const real *hs
    const i32 *targets
    const real *Why
    const real *by
    int N, H, V, S


cdef void output_forward_piece(void *ctx, int s) noexcept nogil:
    """Stripe s of output_forward."""
    cdef OutputForward *a = <OutputForward *> ctx
    output_forward_stripe(a.probs, a.stripe_max + s * a.N, a.stripe_sum + s * a.N,
                          a.target_logit, a.hs, a.targets, a.Why, a.by,
                          stripe_lo(s, a.S, a.V), stripe_lo(s + 1, a.S, a.V), a.N, a.H, a.V)


cdef void output_forward_rows(void *ctx, int r) noexcept nogil:
    """Rows row_lo(r) to row_lo(r + 1) of output_forward with one stripe."""
    cdef OutputForward *a = <OutputForward *> ctx
    cdef int n0 = stripe_lo(r, a.S, a.N), n1 = stripe_lo(r + 1, a.S, a.N)
    output_forward_stripe(a.probs + <Py_ssize_t> n0 * a.V, a.stripe_max + n0,
                          a.stripe_sum + n0, a.target_logit + n0,
                          a.hs + <Py_ssize_t> n0 * a.H, a.targets + n0, a.Why, a.by, 0, a.V,
                          n1 - n0, a.H, a.V)


cdef inline int output_row_pieces(int N, int H, int V, int S) noexcept nogil:
    """Pieces of rows the layer of one stripe (S == 1) is cut into: by its
    size (product_pieces of N V H multiply-adds over N rows); 1 with stripes."""
    return product_pieces(<Py_ssize_t> N * V * H, N) if S == 1 else 1


cdef real output_forward(real *probs, real *scale, real *stripe_max, real *stripe_sum,
                        real *target_logit, const real *hs, const i32 *targets,
                        const real *Why, const real *by, int N, int H, int V, int S,
                        int threads) noexcept nogil:
    """Softmax output layer and cross-entropy over N states: logits (N, V) =
    hs (N, H) Why^T + by; returns sum_n -log softmax(logits[n])[targets[n]].
    Leaves probs (N, V) and scale (S, N) for output_backward (P = probs *
    scale, stripe by stripe). stripe_max, stripe_sum (S, N), target_logit (N,):
    scratch. Stripes (or, with one stripe, output_row_pieces pieces of rows)
    run on up to `threads` threads (1: no OpenMP region); the loss is summed
    in row order."""
    cdef OutputForward a
    cdef int R = output_row_pieces(N, H, V, S)
    a.probs, a.stripe_max, a.stripe_sum, a.target_logit = probs, stripe_max, stripe_sum, target_logit
    a.hs, a.targets, a.Why, a.by = hs, targets, Why, by
    a.N, a.H, a.V, a.S = N, H, V, S
    if R > 1:
        a.S = R     # output_forward_rows cuts the rows into a.S pieces
        run_pieces(output_forward_rows, &a, R, threads)
    else:
        run_pieces(output_forward_piece, &a, S, threads)
    return softmax_combine(scale, stripe_max, stripe_sum, target_logit, N, S)


cdef real softmax_combine(real *scale, const real *stripe_max, const real *stripe_sum,
                         const real *target_logit, int N, int S) noexcept nogil:
    """The softmax over all V from its S stripes, in stripe order: scale (S,
    N) such that P = probs * scale stripe by stripe; returns the summed
    cross-entropy of the N rows."""
    cdef int t, s
    cdef real top, total, loss = 0.0
    for t in range(N):
        top = stripe_max[t]
        for s in range(1, S):
            top = stripe_max[s * N + t] if stripe_max[s * N + t] > top else top
        total = 0.0
        for s in range(S):
            scale[s * N + t] = rexp(stripe_max[s * N + t] - top)
            total += stripe_sum[s * N + t] * scale[s * N + t]
        for s in range(S):
            scale[s * N + t] = scale[s * N + t] / total
        # -log softmax(target) = log(sum exp(logit - max)) - (logit_target - max)
        loss += log(total) - (target_logit[t] - top)
    return loss


# -- backward -----------------------------------------------------------------

cdef void crossentropy_softmax_backward(real *dY, const real *scale, const i32 *targets,
                                        int lo, int hi, int N, int V,
                                        real grad_scale) noexcept nogil:
    """Columns lo:hi of dY (N, V), in place over output_forward's probs:
    dY = grad_scale * (P - onehot(targets)) with P = probs * scale (scale (N,):
    this stripe's factors). grad_scale = 1/B makes every gradient the mean
    over B streams."""
    cdef int n = hi - lo, t, v, target
    cdef real *row
    cdef real f
    for t in range(N):
        row = dY + <Py_ssize_t> t * V + lo
        f = scale[t] * grad_scale
        for v in range(n):
            row[v] = row[v] * f
        target = targets[t]
        if lo <= target < hi:
            row[target - lo] -= grad_scale


cdef void output_weight_grads(real *dh, real *dWhy, real *dby, const real *dY, const real *hs,
                              real *Why, real *mWhy, real *by, real *mby, int lo, int hi,
                              int N, int H, int V, const Update *u) noexcept nogil:
    """Rows lo:hi of the layer's backward from dY (N, V): dby[lo:hi] = the
    sum of dY's rows; then in blocks of OUTPUT_BLOCK rows of Why, so that each
    block comes from memory once: dh (N, H) = dY[:, lo:hi] Why[lo:hi] (if dh
    is not NULL; summed block by block), dWhy[block] (rows, H) = dY[:, block]^T
    hs (N, H), and with u (not NULL) dWhy[block] clipped and Adagrad applied
    to Why, mWhy[block] -- after dh has read the block; then by, mby[lo:hi]
    likewise. Why, mWhy, dWhy (V, H); by, mby, dby (V,)."""
    cdef int v0 = lo, rows
    cdef Py_ssize_t at
    column_sums(dby + lo, dY + lo, N, hi - lo, V)
    while v0 < hi:
        rows = OUTPUT_BLOCK if v0 + OUTPUT_BLOCK <= hi else hi - v0
        at = <Py_ssize_t> v0 * H
        if dh != NULL:
            gemm_rowmajor(b'N', b'N', N, H, rows, 1.0, dY + v0, V, Why + at, H,
                          0.0 if v0 == lo else 1.0, dh, H)
        gemm_rowmajor(b'T', b'N', rows, H, N, 1.0, dY + v0, V, hs, H, 0.0, dWhy + at, H)
        if u != NULL:
            clip_adagrad(Why + at, mWhy + at, dWhy + at, rows * H, u)
        v0 += rows
    if u != NULL:
        clip_adagrad(by + lo, mby + lo, dby + lo, hi - lo, u)


cdef struct OutputBackward:
    # output_backward's arguments, shared by its stripes
    real *dh
    real *dh_parts
    real *dWhy
    real *dby
    real *dY
    const real *scale
    const real *hs
    const i32 *targets
    real *Why
    real *mWhy
    real *by
    real *mby
    int N, H, V, S
    real grad_scale
    const Update *u


cdef void output_backward_piece(void *ctx, int s) noexcept nogil:
    """Stripe s of output_backward: its columns of dY, its rows of dWhy and
    dby (and of Why, by with a.u), its part of dh (stripe 0: dh itself)."""
    cdef OutputBackward *a = <OutputBackward *> ctx
    cdef int lo = stripe_lo(s, a.S, a.V), hi = stripe_lo(s + 1, a.S, a.V)
    cdef real *dh = a.dh if s == 0 else a.dh_parts + (s - 1) * (<Py_ssize_t> a.N * a.H)
    crossentropy_softmax_backward(a.dY, a.scale + s * a.N, a.targets, lo, hi, a.N, a.V,
                                  a.grad_scale)
    output_weight_grads(dh, a.dWhy, a.dby, a.dY, a.hs, a.Why, a.mWhy, a.by, a.mby, lo, hi,
                        a.N, a.H, a.V, a.u)


cdef void output_backward_rows(void *ctx, int r) noexcept nogil:
    """Rows row_lo(r) to row_lo(r + 1) of output_backward with one stripe:
    their dY and dh = dY Why."""
    cdef OutputBackward *a = <OutputBackward *> ctx
    cdef int n0 = stripe_lo(r, a.S, a.N), n1 = stripe_lo(r + 1, a.S, a.N)
    crossentropy_softmax_backward(a.dY + <Py_ssize_t> n0 * a.V, a.scale + n0, a.targets + n0,
                                  0, a.V, n1 - n0, a.V, a.grad_scale)
    gemm_rowmajor(b'N', b'N', n1 - n0, a.H, a.V, 1.0, a.dY + <Py_ssize_t> n0 * a.V, a.V,
                  a.Why, a.H, 0.0, a.dh + <Py_ssize_t> n0 * a.H, a.H)


cdef void output_weight_columns(void *ctx, int r) noexcept nogil:
    """Columns column_lo(r) to column_lo(r + 1) of dWhy = dY^T hs (all N rows)."""
    cdef OutputBackward *a = <OutputBackward *> ctx
    cdef int c0 = column_lo(r, a.S, a.H), c1 = column_lo(r + 1, a.S, a.H)
    gemm_rowmajor(b'T', b'N', a.V, c1 - c0, a.N, 1.0, a.dY, a.V, a.hs + c0, a.H, 0.0,
                  a.dWhy + c0, a.H)


cdef void output_backward_by_rows(OutputBackward *a, int R, int threads) noexcept nogil:
    """output_backward with one stripe, in R pieces of rows (dY, dh), then
    pieces of columns of dWhy, then dby and, with a.u, the clipped update."""
    cdef int C = product_pieces(<Py_ssize_t> a.N * a.V * a.H, a.H)
    a.S = R
    run_pieces(output_backward_rows, a, R, threads)
    a.S = C
    run_pieces(output_weight_columns, a, C, threads)
    column_sums(a.dby, a.dY, a.N, a.V, a.V)
    if a.u != NULL:
        clip_adagrad(a.Why, a.mWhy, a.dWhy, <Py_ssize_t> a.V * a.H, a.u)
        clip_adagrad(a.by, a.mby, a.dby, a.V, a.u)


cdef void output_backward(real *dh, real *dh_parts, real *dWhy, real *dby, real *dY,
                          const real *scale, const real *hs, const i32 *targets,
                          real *Why, real *mWhy, real *by, real *mby, int N, int H, int V,
                          int S, int threads, real grad_scale,
                          const Update *u) noexcept nogil:
    """Backward of output_forward (dY and scale as it left them), for the loss
    grad_scale * sum_n loss_n: dY (N, V) = grad_scale * (P - onehot(targets))
    in place, dby (V,) = sum_n dY[n], dWhy (V, H) = dY^T hs, dh (N, H) = dY
    Why. With u (not NULL), dWhy and dby are clipped and Adagrad is applied to
    Why, mWhy and by, mby block by block (dh reads each block of Why before
    its update); without, nothing but the gradients (unclipped) changes.
    Stripe s > 0 puts its part of dh in dh_parts[s - 1] ((S-1, N, H)
    scratch); they are added in stripe order. With one stripe and
    output_row_pieces > 1: output_backward_by_rows."""
    cdef OutputBackward a
    cdef int R
    a.dh, a.dh_parts, a.dWhy, a.dby, a.dY = dh, dh_parts, dWhy, dby, dY
    a.scale, a.hs, a.targets = scale, hs, targets
    a.Why, a.mWhy, a.by, a.mby = Why, mWhy, by, mby
    a.N, a.H, a.V, a.S = N, H, V, S
    a.grad_scale, a.u = grad_scale, u
    R = output_row_pieces(N, H, V, S)
    if R > 1:
        output_backward_by_rows(&a, R, threads)
        return
    run_pieces(output_backward_piece, &a, S, threads)
    add_stripe_parts(dh, dh_parts, S, <Py_ssize_t> N * H)


# -- in groups (the pipelined steps) ----------------------------------------------

cdef real output_group(real *dY, real *dh, real *top, real *total, real *scale,
                      real *target_logit, const real *hs, const i32 *targets,
                      const real *WhyT, const real *Why, const real *by, int n, int H, int V,
                      real grad_scale) noexcept nogil:
    """Forward and backward of the layer (one stripe) on n rows, but for the
    weight gradients: logits dY (n, V) = hs (n, H) WhyT (H, V) + by, softmax
    and cross-entropy (returned, summed over the n rows), then dY = grad_scale
    * (P - onehot(targets)) in place and dh (n, H) = dY Why (V, H).
    top, total, scale, target_logit (n,): scratch. Both products on
    matmul_blocked (few rows: no BLAS call packing Why every group)."""
    cdef real loss
    matmul_blocked(dY, V, hs, H, WhyT, V, n, H, V)
    softmax_rows(dY, top, total, target_logit, targets, by, 0, V, n, V)
    loss = softmax_combine(scale, top, total, target_logit, n, 1)
    crossentropy_softmax_backward(dY, scale, targets, 0, V, n, V, grad_scale)
    matmul_blocked(dh, H, dY, V, Why, H, n, V, H)
    return loss
