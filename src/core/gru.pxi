# The GRU cell (PyTorch's nn.GRU equations): one step of B streams, forward and backward.
#
# Shapes (B streams, H hidden, gates in PyTorch's order r, z, n):
#     a (B, 3H): on entry W_hh h_prev (no bias), on return the activations r, z, n
#     gx (B, 3H) = W_ih x + b_ih, b_hh (3H,)
#     r = sigmoid(gx_r + W_hr h + b_hr),  z = sigmoid(gx_z + W_hz h + b_hz)
#     hn = W_hn h + b_hn                                      (B, H), kept
#     n = tanh(gx_n + r * hn),  h = (1 - z) * n + z * h_prev  (B, H)
# The reset gate multiplies W_hn h + b_hn (PyTorch's form, not cuDNN-less
# variants that reset h before the product). Elementwise; nothing allocated.

cdef void gru_forward(real *h, real *hn, real *a, const real *gx, const real *b_hh,
                      const real *h_prev, int B, int H) noexcept nogil:
    """One GRU step of B streams: a (B, 3H) from W_hh h_prev to r, z, n in
    place; hn, h (B, H) written. h must not overlap h_prev."""
    cdef int b, j, G = 3 * H
    cdef real *ab
    cdef const real *xb
    cdef Py_ssize_t r
    for b in range(B):
        ab = a + <Py_ssize_t> b * G
        xb = gx + <Py_ssize_t> b * G
        r = <Py_ssize_t> b * H
        for j in range(2 * H):
            ab[j] = sigmoid((xb[j] + ab[j]) + b_hh[j])
        for j in range(H):
            hn[r + j] = ab[2 * H + j] + b_hh[2 * H + j]
            ab[2 * H + j] = rtanh(xb[2 * H + j] + ab[j] * hn[r + j])
            h[r + j] = (1.0 - ab[H + j]) * ab[2 * H + j] + ab[H + j] * h_prev[r + j]


cdef void gru_backward(real *dgx, real *dgh, real *direct, const real *dh, const real *a,
                       const real *hn, const real *h_prev, int B, int H) noexcept nogil:
    """Backward of one gru_forward step from dh (B, H), the gradient at h:
    dgx (B, 3H) at W_ih x + b_ih, dgh (B, 3H) at W_hh h_prev + b_hh (they
    differ in the n block: dgh_n = r * dgx_n), direct (B, H) = z * dh, the
    part of the gradient at h_prev that bypasses W_hh."""
    cdef int b, j, G = 3 * H
    cdef const real *ab
    cdef real *xb
    cdef real *hb
    cdef real rr, z, n, dn
    cdef Py_ssize_t r
    for b in range(B):
        ab = a + <Py_ssize_t> b * G
        xb = dgx + <Py_ssize_t> b * G
        hb = dgh + <Py_ssize_t> b * G
        r = <Py_ssize_t> b * H
        for j in range(H):
            rr, z, n = ab[j], ab[H + j], ab[2 * H + j]
            dn = dh[r + j] * (1.0 - z) * (1.0 - n * n)
            xb[j] = dn * hn[r + j] * rr * (1.0 - rr)
            xb[H + j] = dh[r + j] * (h_prev[r + j] - n) * z * (1.0 - z)
            xb[2 * H + j] = dn
            hb[j] = xb[j]
            hb[H + j] = xb[H + j]
            hb[2 * H + j] = dn * rr
            direct[r + j] = dh[r + j] * z
