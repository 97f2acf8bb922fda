# Sampling: the logits of one hidden state (output_step) and one id drawn from them (draw_id),
# from all ids or from the top k / the top-p nucleus (rank_ids).
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


cdef struct Ranked:
    f64 y       # a logit
    int id


cdef int ranked_before(const void *a, const void *b) noexcept nogil:
    """qsort's order of Ranked: the larger logit first, then the smaller id
    (so that rank 0 is the first argmax, the id greedy decoding takes)."""
    cdef const Ranked *p = <const Ranked *> a
    cdef const Ranked *q = <const Ranked *> b
    if p.y != q.y:
        return -1 if p.y > q.y else 1
    return -1 if p.id < q.id else (1 if p.id > q.id else 0)


cdef bint filtering(int V, int top_k, f64 top_p) noexcept nogil:
    """Whether top_k (0: off) or top_p (1: off) leaves out any id."""
    return (0 < top_k < V) or top_p < 1.0


cdef int draw_id(real *y, int V, f64 temperature, f64 u, int top_k=0, f64 top_p=1.0,
                 Ranked *ranked=NULL) noexcept nogil:
    """An id drawn from softmax(y / temperature) by inverse CDF with the
    uniform u in [0, 1) (as numpy's Generator.choice does), or for
    temperature 0 the first argmax of y. y (V,) logits, overwritten.

    top_k > 0 keeps the k largest logits only, then top_p < 1 the fewest of
    those, largest first, whose probabilities (renormalised over the k) sum
    to at least top_p; the others get probability 0 and the draw is the
    same inverse CDF, in id order, over what is left. Ties rank by id, so
    top_k 1, or a top_p below every probability, keeps exactly the first
    argmax: greedy decoding's id. ranked (V,): scratch, needed when
    filtering(V, top_k, top_p)."""
    cdef int v, x, i, keep
    cdef real top = row_max(y, V)
    cdef f64 total, threshold, cumulative
    cdef bint filtered = filtering(V, top_k, top_p)
    if temperature == 0.0:
        x = 0
        while y[x] != top and x < V - 1:
            x += 1
        return x
    if filtered:   # rank the logits before they become probabilities
        for v in range(V):
            ranked[v].y = y[v]
            ranked[v].id = v
        qsort(ranked, V, sizeof(Ranked), ranked_before)
    for v in range(V):
        y[v] = rexp((y[v] - top) / temperature)
    if filtered:
        keep = top_k if 0 < top_k < V else V
        if top_p < 1.0:
            total = 0.0
            for i in range(keep):
                total += y[ranked[i].id]
            cumulative = 0.0
            i = 0
            while i < keep:
                cumulative += y[ranked[i].id]
                i += 1
                if cumulative >= top_p * total:
                    break
            keep = i
        for i in range(keep, V):
            y[ranked[i].id] = 0.0
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
    # guard against ids of zero probability from rounding (or left out)
    while y[x] == 0.0 and x > 0:
        x -= 1
    return x
