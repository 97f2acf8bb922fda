# Work partitioning: pieces of a kernel's work, cut by size only, and run on the core's threads.
#
# Invariant: the cut (stripe_count, stripe_lo, column_lo, product_pieces,
# pipelined) depends only on the sizes, never on the thread count, and each
# piece writes its own memory; so results are the same bit for bit on any
# number of threads. run_pieces is the one place a kernel's pieces meet
# OpenMP: the serial and parallel loops over the same piece function.

def stripe_count(Py_ssize_t vocab_size, Py_ssize_t hidden_size):
    """The number of output-layer stripes of a (V, H) model."""
    cdef Py_ssize_t by_size
    if vocab_size * hidden_size < STRIPE_MIN_ELEMENTS:
        return 1
    by_size = vocab_size // OUTPUT_BLOCK
    return <int> max(1, min(MAX_STRIPES, by_size))


cdef inline int stripe_lo(int s, int S, int V) noexcept nogil:
    """First row of stripe s of S over V rows (stripe_lo(S, S, V) == V)."""
    return <int> ((<Py_ssize_t> s * V) // S)


cdef inline int column_lo(int r, int R, int H) noexcept nogil:
    """First column of piece r of R over H columns, a multiple of 8
    (column_lo(R, R, H) == H)."""
    return H if r >= R else <int> ((<Py_ssize_t> r * H // R) // 8 * 8)


cdef inline int product_pieces(Py_ssize_t work, int n) noexcept nogil:
    """The number of pieces (up to MAX_STRIPES, each at least 32 of the n
    output rows or columns) that a product of ``work`` multiply-adds is cut
    into: fixed by the sizes, never by the thread count."""
    cdef Py_ssize_t k = work // PRODUCT_PIECE_MIN_WORK
    k = MAX_STRIPES if k > MAX_STRIPES else k
    k = n // 32 if k > n // 32 else k
    return <int> k if k > 1 else 1


cdef inline bint pipelined(int V, int H, int B) noexcept nogil:
    """Whether training steps run pipelined (pipeline.pxi): a small output
    layer (above PIPELINE_MAX_OUTPUT one thread lost more than two gained;
    benchmarks/README.md) and few streams. Sizes only."""
    return <Py_ssize_t> V * H <= PIPELINE_MAX_OUTPUT and B < GEMM_MIN_STREAMS


# -- threads ------------------------------------------------------------------

cdef inline int core_threads() noexcept nogil:
    """Threads a call may use: num_threads, at most the calling thread's
    OpenMP limit. Read once per call; each parallel part uses at most one
    thread per piece of its work."""
    cdef int limit = omp_max_threads()
    return num_threads if num_threads < limit else (limit if limit > 1 else 1)


cdef inline int capped_threads(int cap) noexcept nogil:
    """core_threads(), at most cap if cap > 0."""
    cdef int n = core_threads()
    return cap if 0 < cap < n else n


# A piece of a kernel's work: fn(ctx, piece), ctx the kernel's arguments.
ctypedef void (*piece_fn)(void *ctx, int piece) noexcept nogil


cdef void run_pieces(piece_fn fn, void *ctx, int pieces, int threads) noexcept nogil:
    """fn(ctx, p) for p < pieces, on up to `threads` OpenMP threads (pieces
    dealt out one at a time in turn); on one thread in order, with no OpenMP
    region. The pieces must write disjoint memory."""
    cdef int p
    threads = threads if threads < pieces else pieces
    if threads > 1:
        for p in prange(pieces, num_threads=threads, schedule='static', chunksize=1):
            fn(ctx, p)
    else:
        for p in range(pieces):
            fn(ctx, p)


# -- a product in pieces of panels ------------------------------------------------

cdef struct Product:
    # product's arguments, shared by its pieces
    real *Y
    const real *X
    const real *P
    int rows, K, cols, ldy, ldx, R


cdef void product_task(void *ctx, int r) noexcept nogil:
    """Piece r of product: its share of the panels (of 32 columns)."""
    cdef Product *a = <Product *> ctx
    cdef int panels = (a.cols + 31) // 32
    matmul_panels(a.Y, a.ldy, a.X, a.ldx, a.P, a.rows, a.K, a.cols, stripe_lo(r, a.R, panels),
                  stripe_lo(r + 1, a.R, panels))


cdef inline void product(real *Y, int ldy, const real *X, int ldx, const real *P, int rows,
                         int K, int cols, int threads) noexcept nogil:
    """Y (rows, cols) = X (rows, K) @ W (K, cols), P = W in panel layout
    (linalg.pxi), row strides ldy, ldx; in product_pieces(rows K cols, cols)
    pieces of panels on up to `threads` threads (each column is the same sum
    whatever the cut)."""
    cdef Product a
    a.Y, a.X, a.P, a.rows, a.K, a.cols, a.ldy, a.ldx = Y, X, P, rows, K, cols, ldy, ldx
    a.R = product_pieces(<Py_ssize_t> rows * K * cols, cols)
    run_pieces(product_task, &a, a.R, threads)
