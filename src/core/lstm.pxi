# The LSTM cell (PyTorch's nn.LSTM equations): one step of B streams, forward and backward.
#
# Shapes (B streams, H hidden, gates in PyTorch's order i, f, g, o):
#     a (B, 4H): on entry W_hh h_prev (no bias), on return the activations
#         i = sigmoid, f = sigmoid, g = tanh, o = sigmoid of gx + W_hh h_prev + b_hh
#     gx (B, 4H) = W_ih x + b_ih, b_hh (4H,)
#     c = f * c_prev + i * g,  tc = tanh(c),  h = o * tc      (B, H) each
# The matrix products around the cell are the stack's (stack.pxi); these
# kernels are elementwise, allocate nothing and vectorise (rexp, rtanh).

cdef inline real sigmoid(real x) noexcept nogil:
    """1 / (1 + exp(-x)), branch-free (rexp: 0 below -708 in double, -86 in float)."""
    return <real> 1.0 / (<real> 1.0 + rexp(-x))


cdef void lstm_forward(real *h, real *c, real *tc, real *a, const real *gx, const real *b_hh,
                       const real *c_prev, int B, int H) noexcept nogil:
    """One LSTM step of B streams: a (B, 4H) from W_hh h_prev to the gates'
    activations, in place; c, tc = tanh(c), h (B, H) written. c must not
    overlap c_prev."""
    cdef int b, j, G = 4 * H
    cdef real *ab
    cdef const real *xb
    cdef Py_ssize_t r
    for b in range(B):
        ab = a + <Py_ssize_t> b * G
        xb = gx + <Py_ssize_t> b * G
        for j in range(G):
            ab[j] = (xb[j] + ab[j]) + b_hh[j]
        for j in range(2 * H):
            ab[j] = sigmoid(ab[j])
        for j in range(2 * H, 3 * H):
            ab[j] = rtanh(ab[j])
        for j in range(3 * H, G):
            ab[j] = sigmoid(ab[j])
        r = <Py_ssize_t> b * H
        # three loops of one output each, so that each vectorises
        for j in range(H):
            c[r + j] = ab[H + j] * c_prev[r + j] + ab[j] * ab[2 * H + j]
        for j in range(H):
            tc[r + j] = rtanh(c[r + j])
        for j in range(H):
            h[r + j] = ab[3 * H + j] * tc[r + j]


cdef void lstm_backward(real *da, real *dc, const real *dh, const real *a, const real *c_prev,
                        const real *tc, int B, int H) noexcept nogil:
    """Backward of one lstm_forward step: from dh (B, H), the gradient at h
    (from above and from the next step), and dc (B, H), the gradient at c
    from the next step: da (B, 4H) = the gradient at the gates'
    pre-activations (of W_ih x + b_ih and of W_hh h_prev + b_hh alike), and
    dc becomes the gradient at c_prev, in place. a, tc as lstm_forward left
    them."""
    cdef int b, j, G = 4 * H
    cdef const real *ab
    cdef real *db
    cdef real i, f, g, o, d
    cdef Py_ssize_t r
    for b in range(B):
        ab = a + <Py_ssize_t> b * G
        db = da + <Py_ssize_t> b * G
        r = <Py_ssize_t> b * H
        for j in range(H):
            i, f, g, o = ab[j], ab[H + j], ab[2 * H + j], ab[3 * H + j]
            d = dc[r + j] + dh[r + j] * o * (1.0 - tc[r + j] * tc[r + j])
            db[j] = d * g * i * (1.0 - i)
            db[H + j] = d * c_prev[r + j] * f * (1.0 - f)
            db[2 * H + j] = d * i * (1.0 - g * g)
            db[3 * H + j] = dh[r + j] * tc[r + j] * o * (1.0 - o)
            dc[r + j] = d * f
