# Linear algebra kernels (nogil, raw row-major pointers): reductions, transposition and products.
#
# Every kernel here sums in a fixed order that does not depend on where it is
# called from or on how many threads run: row_sum and row_max use eight
# partial results; the products accumulate over k in order (matvec_t and
# matmul_rows four rows of W at a time, matmul_blocked one k at a time into
# register blocks; gemm_rowmajor is BLAS dgemm through scipy's cython_blas).
# Matrices are row-major with an explicit row stride (ld) where it may differ
# from the number of columns.

# -- reductions ---------------------------------------------------------------

cdef inline real row_sum(const real *a, int n) noexcept nogil:
    """sum(a[:n]) with eight partial sums (vectorisable; deterministic)."""
    cdef real s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef real s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef int j = 0, n8 = n - n % 8
    while j < n8:
        s0 += a[j]; s1 += a[j + 1]; s2 += a[j + 2]; s3 += a[j + 3]
        s4 += a[j + 4]; s5 += a[j + 5]; s6 += a[j + 6]; s7 += a[j + 7]
        j += 8
    while j < n:
        s0 += a[j]
        j += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline real row_max(const real *a, int n) noexcept nogil:
    """max(a[:n]) with eight partial maxima (NaN-propagation not needed:
    a NaN logit makes the loss NaN anyway)."""
    cdef real m[8]
    cdef int j, k, n8 = n - n % 8
    for k in range(8):
        m[k] = a[0]
    j = 0
    while j < n8:
        for k in range(8):
            m[k] = a[j + k] if a[j + k] > m[k] else m[k]
        j += 8
    while j < n:
        m[0] = a[j] if a[j] > m[0] else m[0]
        j += 1
    for k in range(1, 8):
        m[0] = m[k] if m[k] > m[0] else m[0]
    return m[0]


cdef void column_sums(real *out, const real *a, int rows, int cols, int ld) noexcept nogil:
    """out (cols,) = the sum of the rows of A (rows, cols), row stride ld, in row order."""
    cdef int t, v
    cdef const real *row
    memset(out, 0, cols * sizeof(real))
    for t in range(rows):
        row = a + <Py_ssize_t> t * ld
        for v in range(cols):
            out[v] += row[v]


cdef void add_stripe_parts(real *dh, const real *dh_parts, int S,
                           Py_ssize_t n) noexcept nogil:
    """dh (n,) += dh_parts[s - 1] (n,) for s = 1 .. S-1, in stripe order."""
    cdef int s
    cdef Py_ssize_t i
    cdef const real *part
    for s in range(1, S):
        part = dh_parts + (s - 1) * n
        for i in range(n):
            dh[i] = dh[i] + part[i]


# -- transposition and products -------------------------------------------------

cdef inline void transpose(real *out, const real *a, int rows, int cols) noexcept nogil:
    """out (cols, rows) = A (rows, cols)^T, in 16 x 16 tiles."""
    cdef int i0, j0, i, j, i1, j1
    for i0 in range(0, rows, 16):
        i1 = i0 + 16 if i0 + 16 < rows else rows
        for j0 in range(0, cols, 16):
            j1 = j0 + 16 if j0 + 16 < cols else cols
            for i in range(i0, i1):
                for j in range(j0, j1):
                    out[<Py_ssize_t> j * rows + i] = a[<Py_ssize_t> i * cols + j]


cdef inline void gemm_rowmajor(char trans_a, char trans_b, int m, int n, int k,
                               real alpha, const real *a, int lda,
                               const real *b, int ldb, real beta,
                               real *c, int ldc) noexcept nogil:
    """Row-major C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C.

    Implemented as the column-major product C^T = op(B)^T op(A)^T, so A and B
    swap places in the Fortran call. C is modified in place.
    """
    blas_gemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <real *> b, &ldb,
          <real *> a, &lda, &beta, c, &ldc)


cdef inline void matvec_t(const real *w, int ld, const real *x, real *y,
                          int rows, int cols) noexcept nogil:
    """y (cols,) = W^T @ x, W (rows, cols) row-major with row stride ld >= cols,
    x (rows,). y is overwritten.

    Accumulates four scaled rows of W at a time: a plain loop over contiguous
    memory that compilers vectorise without reassociating any long sum.
    """
    cdef int i = 0, j
    cdef const real *w0
    cdef const real *w1
    cdef const real *w2
    cdef const real *w3
    cdef real x0, x1, x2, x3
    memset(y, 0, cols * sizeof(real))
    while i + 3 < rows:
        w0 = w + <Py_ssize_t> i * ld
        w1 = w0 + ld
        w2 = w1 + ld
        w3 = w2 + ld
        x0 = x[i]
        x1 = x[i + 1]
        x2 = x[i + 2]
        x3 = x[i + 3]
        for j in range(cols):
            y[j] = y[j] + ((w0[j] * x0 + w1[j] * x1) + (w2[j] * x2 + w3[j] * x3))
        i += 4
    while i < rows:
        w0 = w + <Py_ssize_t> i * ld
        x0 = x[i]
        for j in range(cols):
            y[j] = y[j] + w0[j] * x0
        i += 1


cdef inline void matmul_rows(real *Y, const real *X, const real *W, int B, int H,
                             int cols) noexcept nogil:
    """Y[:, :cols] (B, cols) = X (B, H) @ W[:, :cols] (H, cols), for a few rows;
    Y and W have row stride H. Four rows of W at a time are applied to every
    row of X while they are in L1. Each row of Y is computed exactly as
    matvec_t(W, H, X[b], Y[b], H, cols) computes it."""
    cdef int i = 0, b, j
    cdef const real *w0
    cdef const real *w1
    cdef const real *w2
    cdef const real *w3
    cdef const real *x
    cdef real *y
    cdef real x0, x1, x2, x3
    for b in range(B):
        memset(Y + <Py_ssize_t> b * H, 0, cols * sizeof(real))
    while i + 3 < H:
        w0 = W + <Py_ssize_t> i * H
        w1 = w0 + H
        w2 = w1 + H
        w3 = w2 + H
        for b in range(B):
            x = X + <Py_ssize_t> b * H
            y = Y + <Py_ssize_t> b * H
            x0 = x[i]
            x1 = x[i + 1]
            x2 = x[i + 2]
            x3 = x[i + 3]
            for j in range(cols):
                y[j] = y[j] + ((w0[j] * x0 + w1[j] * x1) + (w2[j] * x2 + w3[j] * x3))
        i += 4
    while i < H:
        w0 = W + <Py_ssize_t> i * H
        for b in range(B):
            x0 = X[<Py_ssize_t> b * H + i]
            y = Y + <Py_ssize_t> b * H
            for j in range(cols):
                y[j] = y[j] + w0[j] * x0
        i += 1


cdef void matmul_blocked(real *Y, int ldy, const real *X, int ldx, const real *W, int ldw,
                         int rows, int K, int cols) noexcept nogil:
    """Y (rows, cols) = X (rows, K) @ W (K, cols), row strides ldy, ldx, ldw.
    Each element is summed over k in order, whatever the blocking: blocks of
    4 rows (then single rows) by 32 (block4x32, microkernel.pxi), 8 and fewer
    columns are held in registers while the rows of W stream past; every row
    passes a block of 32 columns of W (K x 32, in L1) before the next block
    is read."""
    cdef int j0 = 0
    while j0 + 32 <= cols:
        column_block(Y, ldy, X, ldx, W, ldw, rows, j0, K, 32)
        j0 += 32
    while j0 + 8 <= cols:
        column_block(Y, ldy, X, ldx, W, ldw, rows, j0, K, 8)
        j0 += 8
    if j0 < cols:
        column_block(Y, ldy, X, ldx, W, ldw, rows, j0, K, cols - j0)


cdef inline void column_block(real *Y, int ldy, const real *X, int ldx, const real *W, int ldw,
                              int rows, int j0, int K, int n) noexcept nogil:
    """Columns j0:j0+n of matmul_blocked, n <= 32, for every row."""
    cdef int r = 0
    while r + 3 < rows:
        if n == 32:
            block4x32(Y + <Py_ssize_t> r * ldy + j0, ldy, X + <Py_ssize_t> r * ldx, ldx,
                      W + j0, ldw, K)
        else:
            block_4rows(Y, ldy, X, ldx, W, ldw, r, j0, K, n)
        r += 4
    while r < rows:
        block_1row(Y, X, W, ldw, <Py_ssize_t> r * ldy, <Py_ssize_t> r * ldx, j0, K, n)
        r += 1


cdef inline void block_4rows(real *Y, int ldy, const real *X, int ldx, const real *W, int ldw,
                             int r, int j0, int K, int n) noexcept nogil:
    """Y[r:r+4, j0:j0+n] of matmul_blocked, n <= 32 (a constant n unrolls)."""
    cdef int k, j
    cdef real a0[32]
    cdef real a1[32]
    cdef real a2[32]
    cdef real a3[32]
    cdef real x0, x1, x2, x3
    cdef const real *w
    cdef const real *xr = X + <Py_ssize_t> r * ldx
    cdef real *y = Y + <Py_ssize_t> r * ldy + j0
    for j in range(n):
        a0[j] = 0.0
        a1[j] = 0.0
        a2[j] = 0.0
        a3[j] = 0.0
    for k in range(K):
        w = W + <Py_ssize_t> k * ldw + j0
        x0 = xr[k]
        x1 = xr[ldx + k]
        x2 = xr[2 * ldx + k]
        x3 = xr[3 * ldx + k]
        for j in range(n):
            a0[j] = a0[j] + x0 * w[j]
            a1[j] = a1[j] + x1 * w[j]
            a2[j] = a2[j] + x2 * w[j]
            a3[j] = a3[j] + x3 * w[j]
    for j in range(n):
        y[j] = a0[j]
        y[ldy + j] = a1[j]
        y[2 * ldy + j] = a2[j]
        y[3 * ldy + j] = a3[j]


cdef inline void block_1row(real *Y, const real *X, const real *W, int ldw, Py_ssize_t y0,
                            Py_ssize_t x0, int j0, int K, int n) noexcept nogil:
    """Y[r, j0:j0+n] of matmul_blocked (Y + y0 and X + x0 its rows), n <= 32."""
    cdef int k, j
    cdef real a[32]
    cdef real x
    cdef const real *w
    for j in range(n):
        a[j] = 0.0
    for k in range(K):
        w = W + <Py_ssize_t> k * ldw + j0
        x = X[x0 + k]
        for j in range(n):
            a[j] = a[j] + x * w[j]
    for j in range(n):
        Y[y0 + j0 + j] = a[j]

# -- products with a packed right-hand side -------------------------------------
#
# A panel layout of W (K, cols): panel p holds columns c = 32p .. c + w - 1
# (w = 32, or what is left for the last) as a contiguous (K, w) block at
# P + c * K. A block of 32 columns is then read from consecutive memory, not
# at W's row stride (a stride of a multiple of 4 KiB maps every row of the
# block to the same L1 sets: benchmarks/README.md).

cdef void pack_panels(real *P, const real *A, int K, int cols, int lda,
                      bint transposed) noexcept nogil:
    """P = the panel layout of W (K, cols): W = A (K, cols) with row stride
    lda, or with ``transposed`` W = A^T, A (cols, K) with row stride lda."""
    cdef int c, w, k, j
    cdef real *panel
    for c in range(0, cols, 32):
        w = cols - c if cols - c < 32 else 32
        panel = P + <Py_ssize_t> c * K
        for k in range(K):
            for j in range(w):
                panel[<Py_ssize_t> k * w + j] = (A[<Py_ssize_t> (c + j) * lda + k] if transposed
                                                 else A[<Py_ssize_t> k * lda + c + j])


cdef void matmul_panels(real *Y, int ldy, const real *X, int ldx, const real *P, int rows,
                        int K, int cols, int p0, int p1) noexcept nogil:
    """Panels p0:p1 of Y (rows, cols) = X (rows, K) @ W (K, cols), P = the
    panel layout of W: matvec_t for one row; blocks of 4 rows (block4x32, or
    block_4rows for a narrower last panel), then single rows, otherwise.
    Every element is summed over k in order."""
    cdef int p, c, w, r
    cdef const real *panel
    for p in range(p0, p1):
        c = 32 * p
        w = cols - c if cols - c < 32 else 32
        panel = P + <Py_ssize_t> c * K
        if rows == 1:
            matvec_t(panel, w, X, Y + c, K, w)
            continue
        r = 0
        while r + 3 < rows:
            if w == 32:
                block4x32(Y + <Py_ssize_t> r * ldy + c, ldy, X + <Py_ssize_t> r * ldx, ldx,
                          panel, 32, K)
            else:
                block_4rows(Y + c, ldy, X, ldx, panel, w, r, 0, K, w)
            r += 4
        while r < rows:
            block_1row(Y + c, X, panel, w, <Py_ssize_t> r * ldy, <Py_ssize_t> r * ldx, 0, K, w)
            r += 1
