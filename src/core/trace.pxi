# Tracing: one stream's hidden states and next-character probabilities over a text, weights frozen (trace_forward).
#
# What charrnn-inspect shows: for every character read, the state after it and
# the model's prediction of the character that follows. The recurrence is
# rnn_step, the one definition of it (rnn.pxi), one step at a time exactly as
# TanhWorkspace.advance runs it, so hs[n-1] is bit for bit advance's state; the
# output layer is one dgemm over all n states, then a softmax per row.


cdef void softmax_row(real *row, const real *by, int V) noexcept nogil:
    """row (V,) = softmax(row + by), in place; by (V,). Subtracts the row's
    maximum first: the largest entry is exp(0) before the division, so the
    sum is >= 1 and finite whenever the logits are."""
    cdef int v
    cdef real top, total
    for v in range(V):
        row[v] = row[v] + by[v]
    top = row_max(row, V)
    for v in range(V):
        row[v] = rexp(row[v] - top)
    total = row_sum(row, V)
    for v in range(V):
        row[v] = row[v] / total


cdef void trace_forward(real *hs, real *probs, const i32 *ids, int n, const real *h0,
                        const real *Wxh, const real *WhhT, const real *bh, const real *Why,
                        const real *by, int H, int V) noexcept nogil:
    """hs (n, H): hs[t] = tanh(Wxh[:, ids[t]] + Whh hs[t-1] + bh) with hs[-1] =
    h0 (H,); probs (n, V): probs[t] = softmax(Why hs[t] + by), the prediction
    of the character after ids[t]. ids (n,) in [0, V), n >= 1; Wxh (H, V) the
    input lookup (params.Wxh, or the table of an embedding: Model.table),
    WhhT (H, H) = Whh^T, bh (H,), Why (V, H), by (V,). One thread for the
    recurrence; the output layer's product is BLAS's (one thread: knobs)."""
    cdef int t
    cdef const real *prev = h0
    for t in range(n):
        rnn_step(hs + <Py_ssize_t> t * H, prev, ids + t, 1, Wxh, WhhT, bh, H, V, 1)
        prev = hs + <Py_ssize_t> t * H
    # logits (n, V) = hs (n, H) @ Why^T (H, V): one product for all n states
    gemm_rowmajor(b'N', b'T', n, V, H, 1.0, hs, H, Why, H, 0.0, probs, V)
    for t in range(n):
        softmax_row(probs + <Py_ssize_t> t * V, by, V)


cdef void row_top_k(const real *row, int V, int k, i32 *ids, real *top) noexcept nogil:
    """ids (k,), top (k,): the k largest entries of row (V,) and their
    indices, largest first, ties to the smaller index (k <= V). One pass,
    each entry compared with the k-th best so far."""
    cdef int v, j, filled = 0
    cdef real p
    for v in range(V):
        p = row[v]
        if filled == k and not p > top[k - 1]:
            continue
        j = filled if filled < k else k - 1
        while j > 0 and p > top[j - 1]:      # strictly larger moves up: ties keep id order
            top[j] = top[j - 1]
            ids[j] = ids[j - 1]
            j -= 1
        top[j] = p
        ids[j] = v
        if filled < k:
            filled += 1


def top_k(const real[:, ::1] probs, i32[:, ::1] ids, real[:, ::1] top):
    """ids (n, k) and top (n, k): each row's k largest entries of probs (n,
    V) and their indices, largest first, ties to the smaller index; k <= V.
    The GIL is released."""
    cdef Py_ssize_t t, n = probs.shape[0]
    cdef int V = <int> probs.shape[1], k = <int> ids.shape[1]
    if ids.shape[0] != n or top.shape[0] != n or top.shape[1] != k or not 1 <= k <= V:
        raise ValueError("top_k: inconsistent shapes")
    with nogil:
        for t in range(n):
            row_top_k(&probs[t, 0], V, k, &ids[t, 0], &top[t, 0])
