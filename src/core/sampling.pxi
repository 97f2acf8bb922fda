# Sampling: the logits of one hidden state (output_step) and one id drawn from them (draw_id).
#
# One stream, one thread (a parallel region per character cost more than it
# saved; benchmarks/README.md). The state itself comes from rnn_step, the one
# definition of the recurrence (rnn.pxi).

cdef void output_step(real *y, const real *h, const real *WhyT, const real *by, int H,
                      int V) noexcept nogil:
    """y (V,) = Why h + by for one state h (H,); WhyT (H, V) = Why^T, by (V,).
    In column blocks of SAMPLE_BLOCK, so that each block of y stays in L1
    while the rows of WhyT stream past it."""
    cdef int v = 0
    while v < V:
        matvec_t(WhyT + v, V, h, y + v, H,
                 SAMPLE_BLOCK if v + SAMPLE_BLOCK <= V else V - v)
        v += SAMPLE_BLOCK
    for v in range(V):
        y[v] = y[v] + by[v]


cdef int draw_id(real *y, int V, f64 temperature, f64 u) noexcept nogil:
    """An id drawn from softmax(y / temperature) by inverse CDF with the
    uniform u in [0, 1) (as numpy's Generator.choice does), or for
    temperature 0 the first argmax of y. y (V,) logits, overwritten."""
    cdef int v, x
    cdef real top = row_max(y, V)
    cdef f64 total, threshold, cumulative
    if temperature == 0.0:
        x = 0
        while y[x] != top and x < V - 1:
            x += 1
        return x
    for v in range(V):
        y[v] = rexp((y[v] - top) / temperature)
    total = row_sum(y, V)
    # first index whose normalised cumulative sum exceeds u
    threshold = u * total
    cumulative = 0.0
    x = V - 1
    for v in range(V):
        cumulative += y[v]
        if cumulative > threshold:
            x = v
            break
    # guard against ids of zero probability from rounding
    while y[x] == 0.0 and x > 0:
        x -= 1
    return x
