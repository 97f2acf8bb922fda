# Tracing: one stream's hidden states and next-character probabilities over a text, weights frozen (trace_forward).
#
# What charrnn-inspect shows: for every character read, the state after it and
# the model's prediction of the character that follows. The recurrence is
# rnn_step, the one definition of it (rnn.pxi), one step at a time exactly as
# Workspace.advance runs it, so hs[n-1] is bit for bit advance's state; the
# output layer is one dgemm over all n states, then a softmax per row.


cdef void softmax_row(f64 *row, const f64 *by, int V) noexcept nogil:
    """row (V,) = softmax(row + by), in place; by (V,). Subtracts the row's
    maximum first: the largest entry is exp(0) before the division, so the
    sum is >= 1 and finite whenever the logits are."""
    cdef int v
    cdef f64 top, total
    for v in range(V):
        row[v] = row[v] + by[v]
    top = row_max(row, V)
    for v in range(V):
        row[v] = vexp(row[v] - top)
    total = row_sum(row, V)
    for v in range(V):
        row[v] = row[v] / total


cdef void trace_forward(f64 *hs, f64 *probs, const i32 *ids, int n, const f64 *h0,
                        const f64 *Wxh, const f64 *WhhT, const f64 *bh, const f64 *Why,
                        const f64 *by, int H, int V) noexcept nogil:
    """hs (n, H): hs[t] = tanh(Wxh[:, ids[t]] + Whh hs[t-1] + bh) with hs[-1] =
    h0 (H,); probs (n, V): probs[t] = softmax(Why hs[t] + by), the prediction
    of the character after ids[t]. ids (n,) in [0, V), n >= 1; Wxh (H, V),
    WhhT (H, H) = Whh^T, bh (H,), Why (V, H), by (V,). One thread for the
    recurrence; the output layer's product is BLAS's (one thread: knobs)."""
    cdef int t
    cdef const f64 *prev = h0
    for t in range(n):
        rnn_step(hs + <Py_ssize_t> t * H, prev, ids + t, 1, Wxh, WhhT, bh, H, V, 1)
        prev = hs + <Py_ssize_t> t * H
    # logits (n, V) = hs (n, H) @ Why^T (H, V): one product for all n states
    gemm_rowmajor(b'N', b'T', n, V, H, 1.0, hs, H, Why, H, 0.0, probs, V)
    for t in range(n):
        softmax_row(probs + <Py_ssize_t> t * V, by, V)
