# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The core of charrnn_ext: min-char-rnn's training step, forward-only loss
and sampling, over C-contiguous float64 arrays with the GIL released.

Shapes (H = hidden size, V = vocabulary size, T = chunk length):
    Wxh (H, V)   Whh (H, H)   Why (V, H)   bh (H,)   by (V,)
The Adagrad memory (m*) and the gradients (d*) have the same shapes.

The file reads like llm.c's train_gpt2.c: vectorisable math first; then the
layer kernels, free ``noexcept nogil`` functions on raw pointers, in
forward/backward pairs named for their layer, each opening with its shapes:

    rnn_step                    one step of the recurrence of B streams (training,
                                advance, sample)
    rnn_forward / rnn_backward  input column of Wxh + tanh recurrence, over a chunk
    output_forward / output_backward
                                softmax output layer + cross-entropy, over a chunk
    output_backward_update      output_backward with the clipping and Adagrad
                                update of Why fused in, block by block
    clip, adagrad               the update (clip_columns, adagrad_columns: Wxh)
    output_step, draw_id        sampling

and last the Workspace, which owns the work buffers and whose entry points run
the kernels: train_step is forward -> backward -> clip -> update.

Invariants the kernels rely on:
  * ids are in [0, V): the Python layer (charrnn_ext.model) validates every
    array it hands down, and bounds checking is off here;
  * the input layer is a column lookup of Wxh, never a one-hot product;
    dWxh is zero outside the columns of the ids of the last chunk;
  * the output layer runs in a fixed number of stripes of rows of Why
    (stripe_count), large products of the recurrence and dWhh in a fixed
    number of pieces (product_pieces); partial results are combined in a fixed
    order, so results are the same bit for bit with any number of threads;
  * B streams are laid out time-major: ids (T, B), hidden states (T+1, B, H),
    so that the states of a chunk are one (T*B, H) matrix for the output layer;
  * the recurrence reads Whh transposed (WhhT), copied from Whh at every
    entry, so that parameters changed in place by the caller are seen.
"""
import numpy as np

from libc.math cimport INFINITY, log, sqrt
from libc.string cimport memcpy, memset
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cython.parallel cimport parallel, prange, threadid
from scipy.linalg.cython_blas cimport dgemm

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CHARRNN_EXT_OPENMP 1
    static int charrnn_ext_omp_max_threads(void) { return omp_get_max_threads(); }
    static int charrnn_ext_omp_team_size(void) { return omp_get_num_threads(); }
    #else
    #define CHARRNN_EXT_OPENMP 0
    static int charrnn_ext_omp_max_threads(void) { return 1; }
    static int charrnn_ext_omp_team_size(void) { return 1; }
    #endif

    /* A counter one thread raises and another waits on (release / acquire);
       64 bits everywhere. */
    typedef long long charrnn_ext_counter;
    #if defined(_MSC_VER) && !defined(__clang__)
    #include <windows.h>
    static long long charrnn_ext_load(volatile charrnn_ext_counter *p) {
        return InterlockedOr64((volatile LONG64 *) p, 0); }
    static void charrnn_ext_store(volatile charrnn_ext_counter *p, long long v) {
        InterlockedExchange64((volatile LONG64 *) p, v); }
    static int charrnn_ext_claim(volatile charrnn_ext_counter *p, long long from, long long to) {
        return InterlockedCompareExchange64((volatile LONG64 *) p, to, from) == from; }
    static void charrnn_ext_relax(void) { YieldProcessor(); }
    static void charrnn_ext_yield(void) { SwitchToThread(); }
    #else
    #include <sched.h>
    static long long charrnn_ext_load(volatile charrnn_ext_counter *p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static void charrnn_ext_store(volatile charrnn_ext_counter *p, long long v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static int charrnn_ext_claim(volatile charrnn_ext_counter *p, long long from, long long to) {
        long long expected = from;
        return __atomic_compare_exchange_n(p, &expected, to, 0, __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE); }
    #if defined(__x86_64__) || defined(__i386__)
    static void charrnn_ext_relax(void) { __builtin_ia32_pause(); }
    #elif defined(__aarch64__)
    static void charrnn_ext_relax(void) { __asm__ __volatile__("yield"); }
    #else
    static void charrnn_ext_relax(void) { }
    #endif
    static void charrnn_ext_yield(void) { sched_yield(); }
    #endif
    /* Wait until *counter >= value: spin briefly (the other thread is usually
       microseconds away), then give the CPU away between looks, so that on a
       busy machine the waiting thread does not keep the CPU from the one it
       waits for. */
    static void charrnn_ext_wait(volatile charrnn_ext_counter *counter, long long value) {
        int spins = 0;
        while (charrnn_ext_load(counter) < value) {
            if (spins < 4096) { spins++; charrnn_ext_relax(); }
            else charrnn_ext_yield();
        }
    }
    /* The same, or until *stop is set: whether *counter reached value. */
    static int charrnn_ext_wait_or(volatile charrnn_ext_counter *counter, long long value,
                                   volatile charrnn_ext_counter *stop) {
        int spins = 0;
        while (charrnn_ext_load(counter) < value) {
            if (charrnn_ext_load(stop)) return charrnn_ext_load(counter) >= value;
            if (spins < 4096) { spins++; charrnn_ext_relax(); }
            else charrnn_ext_yield();
        }
        return 1;
    }
    """
    const int CHARRNN_EXT_OPENMP
    # the calling thread's OpenMP limit (OMP_NUM_THREADS, omp_set_num_threads,
    # threadpoolctl's limits on "openmp")
    int omp_max_threads "charrnn_ext_omp_max_threads" () noexcept nogil
    # the number of threads of the enclosing parallel region (1 outside one)
    int omp_team_size "charrnn_ext_omp_team_size" () noexcept nogil
    ctypedef long long counter "charrnn_ext_counter"
    void counter_set "charrnn_ext_store" (counter *p, long long v) noexcept nogil
    # *p from `frm` to `to` if it holds `frm` (one thread wins): whether it did
    bint counter_claim "charrnn_ext_claim" (counter *p, long long frm, long long to) noexcept nogil
    void counter_wait "charrnn_ext_wait" (counter *c, long long value) noexcept nogil
    bint counter_wait_or "charrnn_ext_wait_or" (counter *c, long long value,
                                               counter *stop) noexcept nogil

ctypedef double f64
ctypedef int i32

cdef int LOSS_BLOCK = 256     # rows (steps x streams) per block of the forward-only loss
cdef int GEMM_MIN_STREAMS = 16  # the recurrence of this many streams or more runs on dgemm
cdef int OUTPUT_BLOCK = 128   # rows of Why per block of output_backward(_update)
cdef int SAMPLE_BLOCK = 512   # columns of Why^T per block of output_step
cdef int PIPELINE_GROUP_STEPS = 4  # time steps per group of the pipelined steps' products
cdef Py_ssize_t PIPELINE_MAX_OUTPUT = 65536   # V * H up to this: the steps run pipelined
# The output layer (the V rows of Why and by) is split into a fixed number of
# stripes of rows, which threads may share out. The split depends only on the
# layer's size, never on the thread count.
cdef int MAX_STRIPES = 4
cdef Py_ssize_t STRIPE_MIN_ELEMENTS = 131072   # V * H below this: one stripe, no threads
# The recurrence's dgemm products of many streams, and dWhh, are cut the same
# way (product_pieces): in pieces of output columns or rows, fixed by size.
cdef Py_ssize_t PRODUCT_PIECE_MIN_WORK = 1 << 21   # multiply-adds per piece, at least

cdef int num_threads = 1     # threads a call may use (set_num_threads)
cdef bint forked = False     # set for good in a child of fork(): one thread from then on


def set_num_threads(int n):
    """Use up to n threads (>= 1) in every later call, for the output layer's
    stripes and the pieces of large products (at most one thread per stripe
    or piece). A build without OpenMP, and a process forked from one that may
    have started OpenMP threads, always use one."""
    global num_threads
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1, got {n}")
    num_threads = n if CHARRNN_EXT_OPENMP and not forked else 1


def get_num_threads():
    """The number of threads a call may use (at most one per stripe or piece,
    and at most the calling thread's OpenMP limit)."""
    return num_threads


def _after_fork_in_child():
    """Called in the child after os.fork(): GNU libgomp's thread pool does not
    survive fork (the child would wait forever for the parent's workers), so
    the child computes on one thread for good -- with the same results."""
    global num_threads, forked
    forked = True
    num_threads = 1


def kernel_revision():
    """How this core rounds: the revision of its kernels' order of
    operations (1: before the pipelined steps; 2: from them on). Checkpoints
    record it with the variant, since resuming is bit-identical only on the
    same build and revision."""
    return 2


def has_openmp():
    """Whether this build of the core was compiled with OpenMP."""
    return bool(CHARRNN_EXT_OPENMP)


def gemm_min_streams():
    """From this many streams on, the recurrence is a BLAS dgemm per step
    (below, the core's own kernel)."""
    return GEMM_MIN_STREAMS


def _set_gemm_min_streams(int n):
    """Set gemm_min_streams() (>= 2) for every later call; returns the old
    value. For tests and benchmarks of both recurrence kernels."""
    global GEMM_MIN_STREAMS
    if n < 2:
        raise ValueError(f"gemm_min_streams must be at least 2, got {n}")
    old, GEMM_MIN_STREAMS = GEMM_MIN_STREAMS, n
    return old


def loss_block_steps(int streams):
    """Steps per block of Workspace.loss for this many streams (>= 1)."""
    return max(1, LOSS_BLOCK // streams)


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


cdef inline int product_pieces(Py_ssize_t work, int n) noexcept nogil:
    """The number of pieces (up to MAX_STRIPES, each at least 32 of the n
    output rows or columns) that a product of ``work`` multiply-adds is cut
    into: fixed by the sizes, never by the thread count."""
    cdef Py_ssize_t k = work // PRODUCT_PIECE_MIN_WORK
    k = MAX_STRIPES if k > MAX_STRIPES else k
    k = n // 32 if k > n // 32 else k
    return <int> k if k > 1 else 1


# ---------------------------------------------------------------------------
# branch-free exp and tanh that the compiler can vectorise (glibc's scalar
# exp and tanh are not vectorised). Both are accurate to a few ulp (tested
# against numpy in tests/test_parity.py).
# ---------------------------------------------------------------------------

cdef union Bits:
    f64 d
    unsigned long long u

cdef f64 LOG2E = 1.4426950408889634
cdef f64 LN2_HI = 0.6931471803691238        # high bits of ln 2 (exact in k * LN2_HI)
cdef f64 LN2_LO = 1.9082149292705877e-10    # ln 2 - LN2_HI
cdef f64 ROUND_SHIFT = 6755399441055744.0   # 1.5 * 2**52: x + shift rounds x to an integer
cdef f64 EXP_MIN = -708.0                    # exp(x) for x below is treated as 0 (< 4e-308)
cdef f64 EXP_MAX = 709.782712893384           # log(DBL_MAX); exp overflows above


cdef inline f64 vexp(f64 x) noexcept nogil:
    """exp(x) (Cody-Waite reduction, degree-13 Taylor polynomial, scale by
    2**k through the exponent bits); 0 below -708 (where exp < 4e-308),
    inf above log(DBL_MAX), NaN stays NaN."""
    cdef Bits kbits, scale
    cdef f64 xc = EXP_MAX if x > EXP_MAX else (EXP_MIN if x < EXP_MIN else x)
    cdef f64 kd = xc * LOG2E + ROUND_SHIFT
    kbits.d = kd
    kd = kd - ROUND_SHIFT
    cdef f64 r = (xc - kd * LN2_HI) - kd * LN2_LO      # |r| <= ln(2) / 2
    cdef f64 p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r * r + r                                   # expm1(r)
    scale.u = (kbits.u + 1022) << 52                    # 2**(k-1): k may be 1024
    p = ((p + 1.0) * scale.d) * 2.0
    p = 0.0 if x < EXP_MIN else p
    p = INFINITY if x > EXP_MAX else p                  # overflow
    return x if x != x else p


# Cephes' tanh: rational approximation below 0.625, 1 - 2 / (exp(2|x|) + 1) above
cdef f64 TANH_P0 = -9.64399179425052238628E-1
cdef f64 TANH_P1 = -9.92877231001918586564E1
cdef f64 TANH_P2 = -1.61468768441708447952E3
cdef f64 TANH_Q0 = 1.12811678491632931402E2
cdef f64 TANH_Q1 = 2.23548839060100448583E3
cdef f64 TANH_Q2 = 4.84406305325125486048E3


cdef inline f64 vtanh(f64 x) noexcept nogil:
    """tanh(x), branch-free so that loops over it vectorise."""
    cdef f64 ax = -x if x < 0.0 else x
    cdef f64 z = x * x
    cdef f64 small = x + x * z * (((TANH_P0 * z + TANH_P1) * z + TANH_P2)
                                  / (((z + TANH_Q0) * z + TANH_Q1) * z + TANH_Q2))
    cdef f64 big = 1.0 - 2.0 / (vexp(2.0 * (20.0 if ax > 20.0 else ax)) + 1.0)
    big = -big if x < 0.0 else big
    return small if ax < 0.625 else big


def _exp(const f64[::1] x, f64[::1] out):
    """out (n,) = exp(x) with the core's vectorised exp (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = vexp(x[i])


def _tanh(const f64[::1] x, f64[::1] out):
    """out (n,) = tanh(x) with the core's vectorised tanh (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = vtanh(x[i])


# ---------------------------------------------------------------------------
# sums, maxima and matrix products (nogil)
# ---------------------------------------------------------------------------

cdef inline f64 row_sum(const f64 *a, int n) noexcept nogil:
    """sum(a[:n]) with eight partial sums (vectorisable; deterministic)."""
    cdef f64 s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef f64 s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef int j = 0, n8 = n - n % 8
    while j < n8:
        s0 += a[j]; s1 += a[j + 1]; s2 += a[j + 2]; s3 += a[j + 3]
        s4 += a[j + 4]; s5 += a[j + 5]; s6 += a[j + 6]; s7 += a[j + 7]
        j += 8
    while j < n:
        s0 += a[j]
        j += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline f64 row_max(const f64 *a, int n) noexcept nogil:
    """max(a[:n]) with eight partial maxima (NaN-propagation not needed:
    a NaN logit makes the loss NaN anyway)."""
    cdef f64 m[8]
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


cdef inline void gemm_rowmajor(char trans_a, char trans_b, int m, int n, int k,
                               f64 alpha, const f64 *a, int lda,
                               const f64 *b, int ldb, f64 beta,
                               f64 *c, int ldc) noexcept nogil:
    """Row-major C (m, n) = alpha * op(A) (m, k) @ op(B) (k, n) + beta * C.

    Implemented as the column-major product C^T = op(B)^T op(A)^T, so A and B
    swap places in the Fortran call. C is modified in place.
    """
    dgemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <f64 *> b, &ldb,
          <f64 *> a, &lda, &beta, c, &ldc)


cdef inline void matvec_t(const f64 *w, int ld, const f64 *x, f64 *y,
                          int rows, int cols) noexcept nogil:
    """y (cols,) = W^T @ x, W (rows, cols) row-major with row stride ld >= cols,
    x (rows,). y is overwritten.

    Accumulates four scaled rows of W at a time: a plain loop over contiguous
    memory that compilers vectorise without reassociating any long sum.
    """
    cdef int i = 0, j
    cdef const f64 *w0
    cdef const f64 *w1
    cdef const f64 *w2
    cdef const f64 *w3
    cdef f64 x0, x1, x2, x3
    memset(y, 0, cols * sizeof(f64))
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


cdef inline void transpose(f64 *out, const f64 *a, int rows, int cols) noexcept nogil:
    """out (cols, rows) = A (rows, cols)^T, in 16 x 16 tiles."""
    cdef int i0, j0, i, j, i1, j1
    for i0 in range(0, rows, 16):
        i1 = i0 + 16 if i0 + 16 < rows else rows
        for j0 in range(0, cols, 16):
            j1 = j0 + 16 if j0 + 16 < cols else cols
            for i in range(i0, i1):
                for j in range(j0, j1):
                    out[<Py_ssize_t> j * rows + i] = a[<Py_ssize_t> i * cols + j]


# ---------------------------------------------------------------------------
# the recurrence of B streams: h_t[b] = tanh(Wxh[:, x_t[b]] + Whh h_{t-1}[b] + bh)
#
# Hidden states of B streams are (B, H) blocks, one row per stream; a chunk's
# are (T+1, B, H), time-major, so that the rows of all T steps form one
# (T*B, H) matrix for the output layer. Ids are (T, B), time-major too.
# ---------------------------------------------------------------------------

cdef inline void matmul_rows(f64 *Y, const f64 *X, const f64 *W, int B, int H,
                             int cols) noexcept nogil:
    """Y[:, :cols] (B, cols) = X (B, H) @ W[:, :cols] (H, cols), for a few rows;
    Y and W have row stride H. Four rows of W at a time are applied to every
    row of X while they are in L1. Each row of Y is computed exactly as
    matvec_t(W, H, X[b], Y[b], H, cols) computes it."""
    cdef int i = 0, b, j
    cdef const f64 *w0
    cdef const f64 *w1
    cdef const f64 *w2
    cdef const f64 *w3
    cdef const f64 *x
    cdef f64 *y
    cdef f64 x0, x1, x2, x3
    for b in range(B):
        memset(Y + <Py_ssize_t> b * H, 0, cols * sizeof(f64))
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


cdef void matmul_blocked(f64 *Y, int ldy, const f64 *X, int ldx, const f64 *W, int ldw,
                         int rows, int K, int cols) noexcept nogil:
    """Y (rows, cols) = X (rows, K) @ W (K, cols), row strides ldy, ldx, ldw.
    Each element is summed over k in order, whatever the blocking: blocks of
    4 rows (then single rows) by 32, 8 and fewer columns are held in
    registers while the rows of W stream past (the output layer's products
    on few rows)."""
    cdef int r = 0, j0
    while r < rows:
        j0 = 0
        if r + 3 < rows:
            while j0 + 32 <= cols:
                block_4rows(Y, ldy, X, ldx, W, ldw, r, j0, K, 32)
                j0 += 32
            while j0 + 8 <= cols:
                block_4rows(Y, ldy, X, ldx, W, ldw, r, j0, K, 8)
                j0 += 8
            if j0 < cols:
                block_4rows(Y, ldy, X, ldx, W, ldw, r, j0, K, cols - j0)
            r += 4
        else:
            while j0 + 32 <= cols:
                block_1row(Y, X, W, ldw, r * ldy, r * ldx, j0, K, 32)
                j0 += 32
            while j0 + 8 <= cols:
                block_1row(Y, X, W, ldw, r * ldy, r * ldx, j0, K, 8)
                j0 += 8
            if j0 < cols:
                block_1row(Y, X, W, ldw, r * ldy, r * ldx, j0, K, cols - j0)
            r += 1


cdef inline void block_4rows(f64 *Y, int ldy, const f64 *X, int ldx, const f64 *W, int ldw,
                             int r, int j0, int K, int n) noexcept nogil:
    """Y[r:r+4, j0:j0+n] of matmul_blocked, n <= 32 (a constant n unrolls)."""
    cdef int k, j
    cdef f64 a0[32]
    cdef f64 a1[32]
    cdef f64 a2[32]
    cdef f64 a3[32]
    cdef f64 x0, x1, x2, x3
    cdef const f64 *w
    cdef const f64 *xr = X + <Py_ssize_t> r * ldx
    cdef f64 *y = Y + <Py_ssize_t> r * ldy + j0
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


cdef inline void block_1row(f64 *Y, const f64 *X, const f64 *W, int ldw, Py_ssize_t y0,
                            Py_ssize_t x0, int j0, int K, int n) noexcept nogil:
    """Y[r, j0:j0+n] of matmul_blocked (Y + y0 and X + x0 its rows), n <= 32."""
    cdef int k, j
    cdef f64 a[32]
    cdef f64 x
    cdef const f64 *w
    for j in range(n):
        a[j] = 0.0
    for k in range(K):
        w = W + <Py_ssize_t> k * ldw + j0
        x = X[x0 + k]
        for j in range(n):
            a[j] = a[j] + x * w[j]
    for j in range(n):
        Y[y0 + j0 + j] = a[j]


cdef inline int column_lo(int r, int R, int H) noexcept nogil:
    """First column of piece r of R over H columns, a multiple of 8
    (column_lo(R, R, H) == H)."""
    return H if r >= R else <int> ((<Py_ssize_t> r * H // R) // 8 * 8)


cdef inline void hidden_matmul_piece(f64 *Y, const f64 *X, const f64 *W, int B, int H,
                                     int c0, int c1) noexcept nogil:
    """Columns c0:c1 of hidden_matmul: matvec_t for one stream, matmul_rows
    below GEMM_MIN_STREAMS streams, BLAS dgemm from there on."""
    if B == 1:
        matvec_t(W + c0, H, X, Y + c0, H, c1 - c0)
    elif B < GEMM_MIN_STREAMS:
        matmul_rows(Y + c0, X, W + c0, B, H, c1 - c0)
    else:
        gemm_rowmajor(b'N', b'N', B, c1 - c0, H, 1.0, X, H, W + c0, H, 0.0, Y + c0, H)


cdef inline void hidden_matmul(f64 *Y, const f64 *X, const f64 *W, int B, int H,
                               int threads) noexcept nogil:
    """Y (B, H) = X (B, H) @ W (H, H). With dgemm (B >= GEMM_MIN_STREAMS) in
    product_pieces(B H H, H) pieces of columns, fixed by size (the result
    does not depend on the thread count), on up to `threads` threads; with
    the core's own kernels (fewer streams) in one piece, on one thread."""
    cdef int R = 1, r, n
    if B >= GEMM_MIN_STREAMS:
        R = product_pieces(<Py_ssize_t> B * H * H, H)
    n = threads if threads < R else R
    if n > 1:
        for r in prange(R, num_threads=n, schedule='static', chunksize=1):
            hidden_matmul_piece(Y, X, W, B, H, column_lo(r, R, H), column_lo(r + 1, R, H))
    else:
        for r in range(R):
            hidden_matmul_piece(Y, X, W, B, H, column_lo(r, R, H), column_lo(r + 1, R, H))


cdef inline void rnn_step(f64 *h, const f64 *h_prev, const i32 *x, int B,
                          const f64 *Wxh, const f64 *WhhT, const f64 *bh, int H,
                          int V, int threads) noexcept nogil:
    """h (B, H) = tanh(Wxh[:, x] + Whh h_prev + bh), row b for stream b.
    h_prev (B, H), x (B,) ids, Wxh (H, V), WhhT (H, H) = Whh^T, bh (H,);
    h must not overlap h_prev."""
    cdef int b, i, xb
    cdef f64 *hb
    hidden_matmul(h, h_prev, WhhT, B, H, threads)
    for b in range(B):
        hb = h + <Py_ssize_t> b * H
        xb = x[b]
        for i in range(H):
            hb[i] = (Wxh[<Py_ssize_t> i * V + xb] + hb[i]) + bh[i]
    for i in range(B * H):
        h[i] = vtanh(h[i])


cdef void rnn_forward(f64 *hs, const i32 *inputs, int T, int B, const f64 *Wxh,
                      const f64 *WhhT, const f64 *bh, int H, int V,
                      int threads) noexcept nogil:
    """hs (T+1, B, H): from hs[0] = h_prev, hs[t+1] = rnn_step(hs[t], inputs[t]).
    inputs (T, B) ids, Wxh (H, V), WhhT (H, H) = Whh^T, bh (H,)."""
    cdef int t
    cdef Py_ssize_t block = <Py_ssize_t> B * H
    for t in range(T):
        rnn_step(hs + (t + 1) * block, hs + t * block, inputs + t * B, B,
                 Wxh, WhhT, bh, H, V, threads)


cdef void rnn_backward(f64 *dWxh, f64 *dWhh, f64 *dbh, f64 *dhs, f64 *dh_next,
                       const f64 *hs, const i32 *inputs, int T, int B,
                       const f64 *Whh, int H, int V, int threads) noexcept nogil:
    """Backward of rnn_forward. dhs (T, B, H) holds dloss/dhs[1:] from the
    output layer and becomes dh_raw, the gradient at the input of the tanh
    (rnn_backward_chain); then dWhh (H, H) = dh_raw^T hs[:T] (both as (T*B,
    H)), dbh and dWxh (rnn_input_grads). hs (T+1, B, H) from rnn_forward,
    inputs (T, B), Whh (H, H), dh_next (B, H) scratch. dWhh is computed in
    product_pieces(H H T B, H) pieces of rows on up to `threads` threads."""
    cdef int R, piece, r0, r1, n
    cdef Py_ssize_t N = <Py_ssize_t> T * B
    rnn_backward_chain(dhs, dh_next, hs, T, B, Whh, H, threads)
    # dWhh (H, H) = dh_raw^T (H, T*B) @ hs[:T] (T*B, H), rows r0:r1 per piece
    R = product_pieces(<Py_ssize_t> H * H * N, H)
    n = threads if threads < R else R
    if n > 1:
        for piece in prange(R, num_threads=n, schedule='static', chunksize=1):
            r0 = stripe_lo(piece, R, H)
            r1 = stripe_lo(piece + 1, R, H)
            gemm_rowmajor(b'T', b'N', r1 - r0, H, <int> N, 1.0, dhs + r0, H, hs, H,
                          0.0, dWhh + <Py_ssize_t> r0 * H, H)
    else:
        for piece in range(R):
            r0 = stripe_lo(piece, R, H)
            r1 = stripe_lo(piece + 1, R, H)
            gemm_rowmajor(b'T', b'N', r1 - r0, H, <int> N, 1.0, dhs + r0, H, hs, H,
                          0.0, dWhh + <Py_ssize_t> r0 * H, H)
    rnn_input_grads(dWxh, dbh, dhs, inputs, <int> N, H, V)


cdef void rnn_backward_chain(f64 *dhs, f64 *dh_next, const f64 *hs, int T, int B,
                             const f64 *Whh, int H, int threads) noexcept nogil:
    """The sequential part of rnn_backward: from t = T-1 down to 0,
        dh_raw[t] = (1 - hs[t+1]^2) * (dhs[t] + dh_raw[t+1] Whh)
    in place of dhs (T, B, H)."""
    cdef int t
    cdef Py_ssize_t i, block = <Py_ssize_t> B * H
    cdef f64 *row
    cdef const f64 *h_t
    cdef f64 d
    memset(dh_next, 0, block * sizeof(f64))
    for t in range(T - 1, -1, -1):
        row = dhs + t * block
        h_t = hs + (t + 1) * block
        for i in range(block):
            d = row[i] + dh_next[i]
            row[i] = (1.0 - h_t[i] * h_t[i]) * d
        if t > 0:
            hidden_matmul(dh_next, row, Whh, B, H, threads)


cdef void rnn_input_grads(f64 *dWxh, f64 *dbh, const f64 *dh_raw, const i32 *inputs,
                          int N, int H, int V) noexcept nogil:
    """dbh (H,) = the sum of the N rows of dh_raw (N, H), and dWxh[:, inputs[n]]
    += dh_raw[n] (dWxh (H, V): the chunk's columns must be zero on entry, the
    others are not touched)."""
    cdef int x
    cdef Py_ssize_t i, r
    cdef const f64 *row
    memset(dbh, 0, H * sizeof(f64))
    for r in range(N):
        row = dh_raw + r * H
        for i in range(H):
            dbh[i] += row[i]
    for r in range(N):
        x = inputs[r]
        row = dh_raw + r * H
        for i in range(H):
            dWxh[i * V + x] += row[i]


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


cdef void zero_columns(f64 *a, const i32 *columns, int n_columns, int rows,
                       int cols) noexcept nogil:
    """a[:, columns[k]] = 0 for k < n_columns; a (rows, cols)."""
    cdef int k, i
    for k in range(n_columns):
        for i in range(rows):
            a[i * cols + columns[k]] = 0.0


# ---------------------------------------------------------------------------
# the output layer: P = softmax(hs Why^T + by), loss = -sum log P[target]
#
# It runs in S stripes of rows of Why (stripe s: rows stripe_lo(s) to
# stripe_lo(s + 1)), on up to `threads` OpenMP threads. The softmax stays
# factored between forward and backward: probs[n, lo:hi] holds
# exp(logit - stripe max) and scale[s, n] the factor that makes it P.
# ---------------------------------------------------------------------------

cdef void output_forward_stripe(f64 *probs, f64 *top, f64 *total, f64 *target_logit,
                                const f64 *hs, const i32 *targets, const f64 *Why,
                                const f64 *by, int lo, int hi, int N, int H,
                                int V) noexcept nogil:
    """Rows lo:hi of the output layer over N states: probs[:, lo:hi] (N, hi-lo;
    row stride V) = exp(logit - top) for logit = hs (N, H) Why[lo:hi]^T +
    by[lo:hi]; top (N,) the stripe's largest logit, total (N,) its sum of
    exp(logit - top), target_logit[n] (N,) set where targets[n] is in [lo, hi)."""
    # logits (N, n) = hs (N, H) @ Why[lo:hi]^T (H, n): one product for all N
    gemm_rowmajor(b'N', b'T', N, hi - lo, H, 1.0, hs, H, Why + <Py_ssize_t> lo * H, H,
                  0.0, probs + lo, V)
    softmax_rows(probs, top, total, target_logit, targets, by, lo, hi, N, V)


cdef void softmax_rows(f64 *probs, f64 *top, f64 *total, f64 *target_logit,
                       const i32 *targets, const f64 *by, int lo, int hi, int N,
                       int V) noexcept nogil:
    """Columns lo:hi of N rows of logits (before the bias) in probs (row
    stride V): logit = probs + by, then probs = exp(logit - top) with top (N,)
    the largest logit of the row, total (N,) the sum; target_logit[n] set
    where targets[n] is in [lo, hi)."""
    cdef int n = hi - lo, t, v, target
    cdef f64 *row
    cdef const f64 *b = by + lo
    cdef f64 m
    for t in range(N):
        row = probs + <Py_ssize_t> t * V + lo
        for v in range(n):
            row[v] = row[v] + b[v]
        target = targets[t]
        if lo <= target < hi:
            target_logit[t] = row[target - lo]
        m = row_max(row, n)
        for v in range(n):
            row[v] = vexp(row[v] - m)
        top[t] = m
        total[t] = row_sum(row, n)


cdef f64 output_forward(f64 *probs, f64 *scale, f64 *stripe_max, f64 *stripe_sum,
                        f64 *target_logit, const f64 *hs, const i32 *targets,
                        const f64 *Why, const f64 *by, int N, int H, int V, int S,
                        int threads) noexcept nogil:
    """Softmax output layer and cross-entropy over N states: logits (N, V) =
    hs (N, H) Why^T + by; returns sum_n -log softmax(logits[n])[targets[n]].
    Leaves probs (N, V) and scale (S, N) for output_backward (P = probs *
    scale, stripe by stripe). stripe_max, stripe_sum (S, N), target_logit (N,):
    scratch. Stripes run on up to `threads` threads (1: no OpenMP region)."""
    cdef int s
    threads = threads if threads < S else S
    if threads > 1:
        for s in prange(S, num_threads=threads, schedule='static', chunksize=1):
            output_forward_stripe(probs, stripe_max + s * N, stripe_sum + s * N, target_logit,
                                  hs, targets, Why, by, stripe_lo(s, S, V),
                                  stripe_lo(s + 1, S, V), N, H, V)
    else:
        for s in range(S):
            output_forward_stripe(probs, stripe_max + s * N, stripe_sum + s * N, target_logit,
                                  hs, targets, Why, by, stripe_lo(s, S, V),
                                  stripe_lo(s + 1, S, V), N, H, V)
    return softmax_combine(scale, stripe_max, stripe_sum, target_logit, N, S)


cdef f64 softmax_combine(f64 *scale, const f64 *stripe_max, const f64 *stripe_sum,
                         const f64 *target_logit, int N, int S) noexcept nogil:
    """The softmax over all V from its S stripes, in stripe order: scale (S,
    N) such that P = probs * scale stripe by stripe; returns the summed
    cross-entropy of the N rows."""
    cdef int t, s
    cdef f64 top, total, loss = 0.0
    for t in range(N):
        top = stripe_max[t]
        for s in range(1, S):
            top = stripe_max[s * N + t] if stripe_max[s * N + t] > top else top
        total = 0.0
        for s in range(S):
            scale[s * N + t] = vexp(stripe_max[s * N + t] - top)
            total += stripe_sum[s * N + t] * scale[s * N + t]
        for s in range(S):
            scale[s * N + t] = scale[s * N + t] / total
        # -log softmax(target) = log(sum exp(logit - max)) - (logit_target - max)
        loss += log(total) - (target_logit[t] - top)
    return loss


cdef void crossentropy_softmax_backward(f64 *dY, f64 *dby, const f64 *scale,
                                        const i32 *targets, int lo, int hi, int N,
                                        int V, f64 grad_scale) noexcept nogil:
    """Columns lo:hi of dY (N, V), in place over output_forward's probs:
    dY = grad_scale * (P - onehot(targets)) with P = probs * scale (scale (N,):
    this stripe's factors); dby[lo:hi] = sum_n dY[n, lo:hi]. grad_scale = 1/B
    makes every gradient the mean over B streams. dby may be NULL (not computed)."""
    cdef int n = hi - lo, t, v, target
    cdef f64 *row
    cdef f64 *db = dby + lo if dby != NULL else NULL
    cdef f64 f
    for t in range(N):
        row = dY + <Py_ssize_t> t * V + lo
        f = scale[t] * grad_scale
        for v in range(n):
            row[v] = row[v] * f
        target = targets[t]
        if lo <= target < hi:
            row[target - lo] -= grad_scale
    if dby != NULL:
        column_sums(db, dY + lo, N, n, V)


cdef void column_sums(f64 *out, const f64 *a, int rows, int cols, int ld) noexcept nogil:
    """out (cols,) = the sum of the rows of A (rows, cols), row stride ld, in row order."""
    cdef int t, v
    cdef const f64 *row
    memset(out, 0, cols * sizeof(f64))
    for t in range(rows):
        row = a + <Py_ssize_t> t * ld
        for v in range(cols):
            out[v] += row[v]


cdef inline void output_rows_backward(f64 *dh, f64 *dWhy, const f64 *dY, const f64 *hs,
                                      const f64 *Why, int v0, int rows, int N, int H,
                                      int V, bint accumulate) noexcept nogil:
    """Rows v0:v0+rows of Why: dh (N, H) = dY[:, rows] (N, rows) @ Why[rows]
    (rows, H), added to dh if accumulate; dWhy[rows] (rows, H) = dY[:, rows]^T
    @ hs (N, H). dY (N, V), Why and dWhy (V, H)."""
    gemm_rowmajor(b'N', b'N', N, H, rows, 1.0, dY + v0, V, Why + <Py_ssize_t> v0 * H, H,
                  1.0 if accumulate else 0.0, dh, H)
    gemm_rowmajor(b'T', b'N', rows, H, N, 1.0, dY + v0, V, hs, H,
                  0.0, dWhy + <Py_ssize_t> v0 * H, H)


cdef void output_backward_stripe(f64 *dh, f64 *dWhy, f64 *dby, f64 *dY, const f64 *scale,
                                 const f64 *hs, const i32 *targets, const f64 *Why,
                                 int lo, int hi, int N, int H, int V,
                                 f64 grad_scale) noexcept nogil:
    """Rows lo:hi of output_backward; this stripe's part of dY Why goes to dh (N, H)."""
    cdef int v0 = lo, rows
    crossentropy_softmax_backward(dY, dby, scale, targets, lo, hi, N, V, grad_scale)
    while v0 < hi:
        rows = OUTPUT_BLOCK if v0 + OUTPUT_BLOCK <= hi else hi - v0
        output_rows_backward(dh, dWhy, dY, hs, Why, v0, rows, N, H, V, v0 != lo)
        v0 += rows


cdef void output_backward_update_stripe(f64 *dh, f64 *dWhy, f64 *dby, f64 *dY,
                                        const f64 *scale, const f64 *hs,
                                        const i32 *targets, f64 *Why, f64 *mWhy,
                                        int lo, int hi, int N, int H, int V,
                                        f64 grad_scale, f64 learning_rate,
                                        f64 clip_bound, f64 eps) noexcept nogil:
    """Rows lo:hi of output_backward_update: in blocks of OUTPUT_BLOCK rows, so
    that each block of Why comes from memory once for dh, dWhy and its update."""
    cdef int v0 = lo, rows
    cdef Py_ssize_t at
    crossentropy_softmax_backward(dY, dby, scale, targets, lo, hi, N, V, grad_scale)
    while v0 < hi:
        rows = OUTPUT_BLOCK if v0 + OUTPUT_BLOCK <= hi else hi - v0
        output_rows_backward(dh, dWhy, dY, hs, Why, v0, rows, N, H, V, v0 != lo)
        at = <Py_ssize_t> v0 * H
        clip(dWhy + at, rows * H, clip_bound)
        adagrad(Why + at, mWhy + at, dWhy + at, rows * H, learning_rate, eps)
        v0 += rows


cdef void add_stripe_parts(f64 *dh, const f64 *dh_parts, int S,
                           Py_ssize_t n) noexcept nogil:
    """dh (n,) += dh_parts[s - 1] (n,) for s = 1 .. S-1, in stripe order."""
    cdef int s
    cdef Py_ssize_t i
    cdef const f64 *part
    for s in range(1, S):
        part = dh_parts + (s - 1) * n
        for i in range(n):
            dh[i] = dh[i] + part[i]


cdef void output_backward(f64 *dh, f64 *dh_parts, f64 *dWhy, f64 *dby, f64 *dY,
                          const f64 *scale, const f64 *hs, const i32 *targets,
                          const f64 *Why, int N, int H, int V, int S, int threads,
                          f64 grad_scale) noexcept nogil:
    """Backward of output_forward (dY and scale as it left them), for the loss
    grad_scale * sum_n loss_n: dY (N, V) = grad_scale * (P - onehot(targets))
    in place, dby (V,) = sum_n dY[n], dWhy (V, H) = dY^T hs (unclipped), dh
    (N, H) = dY Why. Stripe s > 0 puts its part of dh in dh_parts[s - 1]
    ((S-1, N, H) scratch); they are added in stripe order."""
    cdef int s
    cdef Py_ssize_t part = <Py_ssize_t> N * H
    threads = threads if threads < S else S
    if threads > 1:
        for s in prange(S, num_threads=threads, schedule='static', chunksize=1):
            output_backward_stripe(dh if s == 0 else dh_parts + (s - 1) * part, dWhy, dby,
                                   dY, scale + s * N, hs, targets, Why,
                                   stripe_lo(s, S, V), stripe_lo(s + 1, S, V), N, H, V,
                                   grad_scale)
    else:
        for s in range(S):
            output_backward_stripe(dh if s == 0 else dh_parts + (s - 1) * part, dWhy, dby,
                                   dY, scale + s * N, hs, targets, Why,
                                   stripe_lo(s, S, V), stripe_lo(s + 1, S, V), N, H, V,
                                   grad_scale)
    add_stripe_parts(dh, dh_parts, S, part)


cdef void output_backward_update(f64 *dh, f64 *dh_parts, f64 *dWhy, f64 *dby, f64 *dY,
                                 const f64 *scale, const f64 *hs, const i32 *targets,
                                 f64 *Why, f64 *mWhy, int N, int H, int V, int S,
                                 int threads, f64 grad_scale, f64 learning_rate,
                                 f64 clip_bound, f64 eps) noexcept nogil:
    """output_backward, then dWhy clipped to [-clip_bound, clip_bound] and
    Adagrad applied to Why, mWhy (V, H) in place, block by block (dh is
    computed from Why before it is updated)."""
    cdef int s
    cdef Py_ssize_t part = <Py_ssize_t> N * H
    threads = threads if threads < S else S
    if threads > 1:
        for s in prange(S, num_threads=threads, schedule='static', chunksize=1):
            output_backward_update_stripe(
                dh if s == 0 else dh_parts + (s - 1) * part, dWhy, dby, dY, scale + s * N,
                hs, targets, Why, mWhy, stripe_lo(s, S, V), stripe_lo(s + 1, S, V),
                N, H, V, grad_scale, learning_rate, clip_bound, eps)
    else:
        for s in range(S):
            output_backward_update_stripe(
                dh if s == 0 else dh_parts + (s - 1) * part, dWhy, dby, dY, scale + s * N,
                hs, targets, Why, mWhy, stripe_lo(s, S, V), stripe_lo(s + 1, S, V),
                N, H, V, grad_scale, learning_rate, clip_bound, eps)
    add_stripe_parts(dh, dh_parts, S, part)


# ---------------------------------------------------------------------------
# the update: clip to [-bound, bound], then Adagrad
# ---------------------------------------------------------------------------

cdef inline f64 clipped(f64 g, f64 bound) noexcept nogil:
    """g limited to [-bound, bound]."""
    return bound if g > bound else (-bound if g < -bound else g)


cdef inline void adagrad_element(f64 *param, f64 *mem, f64 g, f64 learning_rate,
                                 f64 eps) noexcept nogil:
    """mem += g^2; param -= learning_rate * g / sqrt(mem + eps)."""
    mem[0] += g * g
    param[0] -= learning_rate * g / sqrt(mem[0] + eps)


cdef void clip(f64 *grad, Py_ssize_t n, f64 bound) noexcept nogil:
    """grad (n,) limited to [-bound, bound] in place."""
    cdef Py_ssize_t i
    for i in range(n):
        grad[i] = clipped(grad[i], bound)


cdef void adagrad(f64 *param, f64 *mem, const f64 *grad, Py_ssize_t n,
                  f64 learning_rate, f64 eps) noexcept nogil:
    """Adagrad on param, mem (n,) in place with the gradient grad (n,)."""
    cdef Py_ssize_t i
    for i in range(n):
        adagrad_element(&param[i], &mem[i], grad[i], learning_rate, eps)


cdef void clip_columns(f64 *grad, const i32 *columns, int n_columns, int rows,
                       int cols, f64 bound) noexcept nogil:
    """clip on the columns columns[:n_columns] of grad (rows, cols)."""
    cdef int k, i
    cdef Py_ssize_t at
    for k in range(n_columns):
        for i in range(rows):
            at = <Py_ssize_t> i * cols + columns[k]
            grad[at] = clipped(grad[at], bound)


cdef void adagrad_columns(f64 *param, f64 *mem, const f64 *grad, const i32 *columns,
                          int n_columns, int rows, int cols, f64 learning_rate,
                          f64 eps) noexcept nogil:
    """adagrad on the columns columns[:n_columns] of param, mem, grad (rows, cols)
    (exact for a gradient that is zero elsewhere: a zero gradient changes
    neither a parameter nor its memory)."""
    cdef int k, i
    cdef Py_ssize_t at
    for k in range(n_columns):
        for i in range(rows):
            at = <Py_ssize_t> i * cols + columns[k]
            adagrad_element(&param[at], &mem[at], grad[at], learning_rate, eps)


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------

cdef void output_step(f64 *y, const f64 *h, const f64 *WhyT, const f64 *by, int H,
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


cdef int draw_id(f64 *y, int V, f64 temperature, f64 u) noexcept nogil:
    """An id drawn from softmax(y / temperature) by inverse CDF with the
    uniform u in [0, 1) (as numpy's Generator.choice does), or for
    temperature 0 the first argmax of y. y (V,) logits, overwritten."""
    cdef int v, x
    cdef f64 top = row_max(y, V), total, threshold, cumulative
    if temperature == 0.0:
        x = 0
        while y[x] != top and x < V - 1:
            x += 1
        return x
    for v in range(V):
        y[v] = vexp((y[v] - top) / temperature)
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


# ---------------------------------------------------------------------------
# min-char-rnn's data pass
# ---------------------------------------------------------------------------

cdef inline bint chunk_wraps(Py_ssize_t position, Py_ssize_t part, int T) noexcept nogil:
    """min-char-rnn's rule (`if p+seq_length+1 >= len(data)`): a chunk of T
    steps cannot start at position of a part of this length, so the data pass
    goes back to its start with a zero hidden state. (Written so that no
    position overflows.)"""
    return position >= part - T - 1


def wraps(Py_ssize_t position, Py_ssize_t part, int T):
    """chunk_wraps for Python: the rule train applies before each step."""
    return chunk_wraps(position, part, T)


# ---------------------------------------------------------------------------
# the workspace: pointers into the model's arrays, the work buffers, and the
# entry points that run the kernels
# ---------------------------------------------------------------------------

cdef struct DataPass:
    # where a call's training steps take their chunks from: min-char-rnn's
    # data pass (train), or one given chunk (train_step: data NULL). The data
    # pass is over B parts of `part` ids; data holds a window of each part:
    # row b (of `stride` ids) = ids offset .. offset + stride of part b.
    const i32 *data      # (B, stride) ids
    Py_ssize_t stride    # ids per row of data
    Py_ssize_t offset    # the position in the parts of data's first column
    Py_ssize_t part      # ids per stream
    Py_ssize_t position  # where the next chunk starts in each part
    Py_ssize_t bad       # index into data of an id outside [0, V), or -1;
                         # -2: a chunk outside the window
    const i32 *x         # the chunk: inputs (T, B)
    const i32 *y         # and targets (T, B)


cdef inline bint pipelined(int V, int H, int B) noexcept nogil:
    """Whether training steps run pipelined (Workspace.run_pipelined): a small
    output layer (measured: above PIPELINE_MAX_OUTPUT, one thread lost more
    than two gained; benchmarks/README.md) and few streams. Sizes only."""
    return <Py_ssize_t> V * H <= PIPELINE_MAX_OUTPUT and B < GEMM_MIN_STREAMS


cdef inline bint finite(f64 x) noexcept nogil:
    """Neither NaN nor infinite."""
    return x - x == 0.0


cdef struct Tensors:
    # one pointer per parameter: into the parameters, the Adagrad memory or the gradients
    f64 *Wxh    # (H, V)
    f64 *Whh    # (H, H)
    f64 *Why    # (V, H)
    f64 *bh     # (H,)
    f64 *by     # (V,)


cdef Tensors tensors_of(list arrays, int H, int V, str what) except *:
    """Pointers into arrays = [Wxh, Whh, Why, bh, by], which must be
    C-contiguous writable float64 arrays of the shapes above (biases may be
    (n, 1))."""
    cdef Tensors out
    cdef f64[::1] flat
    cdef f64 *data[5]
    cdef int k
    shapes = ((H, V), (H, H), (V, H), (H,), (V,))
    if len(arrays) != 5:
        raise ValueError(f"{what}: expected 5 arrays (Wxh, Whh, Why, bh, by)")
    for k in range(5):
        arr, shape = arrays[k], shapes[k]
        if (not isinstance(arr, np.ndarray) or arr.dtype != np.float64
                or not arr.flags.c_contiguous or not arr.flags.writeable
                or tuple(arr.shape)[:len(shape)] != shape or arr.size != np.prod(shape)):
            raise ValueError(f"{what}: inconsistent parameter shapes, dtypes or layout")
        flat = arr.reshape(-1)      # a view: arr is C-contiguous
        data[k] = &flat[0]
    out.Wxh, out.Whh, out.Why, out.bh, out.by = data[0], data[1], data[2], data[3], data[4]
    return out


cdef class Workspace:
    """A model's parameters, Adagrad memory and gradients (held, updated in
    place) and the work buffers of its steps; one call at a time.

        params  = [Wxh (H,V), Whh (H,H), Why (V,H), bh (H,), by (V,)]
        memory  = the same shapes (Adagrad accumulators)
        grads   = the same shapes (the gradients of the last step, clipped)

    All float64, C-contiguous; biases may be (H, 1) / (V, 1). clip_bound and
    adagrad_eps are the update's hyperparameters (charrnn_ext.defaults).

    train_step, loss_and_grads and loss run B streams at once: inputs and
    targets (T, B) time-major, h (B, H) one row per stream. Their loss is the
    mean over streams of each stream's summed loss, their gradients the mean
    over streams. Work buffers grow to the largest T * B seen (reserve),
    never per step.
    """
    cdef readonly int hidden_size, vocab_size, capacity, stream_capacity, n_stripes
    cdef readonly f64 clip_bound, adagrad_eps
    cdef Tensors params, memory, grads
    cdef object arrays          # the arrays behind params, memory and grads (kept alive)
    cdef dict buffers           # the work buffers' arrays (kept alive); pointers below
    # sized by the vocabulary and hidden size
    cdef f64 *WhhT              # (H, H): Whh transposed, copied at every step
    cdef f64 *WhyT              # (H, V): Why transposed, per pipelined step (one stripe only)
    cdef f64 *logits            # (V,): sample's output layer
    cdef i32 *present           # (V,): present[:n_present] = the last chunk's distinct inputs
    cdef unsigned char *seen    # (V,): all zero between calls (distinct_ids)
    cdef int n_present
    # sized by the capacity N (rows: steps x streams) and the stream capacity B
    cdef f64 *hs                # (N+B, H): hidden states (T+1, B, H), hs[0] = h_prev
    cdef f64 *probs             # (N, V): exp(logit - stripe max), then dY
    cdef f64 *dhs               # (N, H): dloss/dh, then dh_raw
    cdef f64 *dh_parts          # (S-1, N, H): stripes 1.. of dY Why
    cdef f64 *stripe_max        # (S, N)
    cdef f64 *stripe_sum        # (S, N)
    cdef f64 *scale             # (S, N): the factored softmax (output_forward)
    cdef f64 *target_logit      # (N,)
    cdef f64 *dh_next           # (B, H): rnn_backward's dh_raw[t+1] Whh
    cdef f64 *h_next            # (B, H): advance and sample's next state
    cdef i32 *chunk             # (T+1, B): train's chunk of ids
    cdef Py_ssize_t chunk_capacity

    def __init__(self, params, memory, grads, *, f64 clip_bound, f64 adagrad_eps,
                 int capacity=32):
        H, V = params[0].shape[0], params[0].shape[1]
        self.hidden_size, self.vocab_size = H, V
        self.params = tensors_of(list(params), H, V, "params")
        self.memory = tensors_of(list(memory), H, V, "memory")
        self.grads = tensors_of(list(grads), H, V, "grads")
        self.arrays = (tuple(params), tuple(memory), tuple(grads))
        self.clip_bound, self.adagrad_eps = clip_bound, adagrad_eps
        self.n_stripes = stripe_count(V, H)
        self.buffers = {}
        self.WhhT = self.buffer("WhhT", H * H)
        self.WhyT = self.buffer("WhyT", H * V if pipelined(V, H, 1) else 1)
        self.logits = self.buffer("logits", V)
        present = np.zeros(V, dtype=np.int32)
        seen = np.zeros(V, dtype=np.uint8)
        self.buffers["present"], self.buffers["seen"] = present, seen
        cdef i32[::1] present_view = present
        cdef unsigned char[::1] seen_view = seen
        self.present, self.seen = &present_view[0], &seen_view[0]
        self.n_present = 0
        self.capacity = self.stream_capacity = 0
        self.reserve(max(capacity, 1), 1)
        np.asarray(grads[0])[...] = 0.0    # the dWxh invariant: zero outside present[:n_present]

    cdef f64 *buffer(self, str name, Py_ssize_t n) except NULL:
        """A new zeroed work buffer of n doubles (at least one), kept as buffers[name]."""
        arr = np.zeros(max(n, 1))
        cdef f64[::1] view = arr
        self.buffers[name] = arr
        return &view[0]

    def reserve(self, Py_ssize_t rows, Py_ssize_t streams=1):
        """Make the work buffers hold chunks of up to ``rows`` steps x streams,
        of up to ``streams`` streams."""
        cdef Py_ssize_t N, B, H = self.hidden_size, V = self.vocab_size
        cdef Py_ssize_t S = self.n_stripes
        if rows <= self.capacity and streams <= self.stream_capacity:
            return
        N = max(rows, <Py_ssize_t> self.capacity)
        B = max(streams, <Py_ssize_t> self.stream_capacity)
        self.hs = self.buffer("hs", (N + B) * H)
        self.dh_next = self.buffer("dh_next", B * H)
        self.h_next = self.buffer("h_next", B * H)
        if N > self.capacity:
            self.probs = self.buffer("probs", N * V)
            self.dhs = self.buffer("dhs", N * H)
            self.dh_parts = self.buffer("dh_parts", (S - 1) * N * H)
            self.stripe_max = self.buffer("stripe_max", S * N)
            self.stripe_sum = self.buffer("stripe_sum", S * N)
            self.scale = self.buffer("scale", S * N)
            self.target_logit = self.buffer("target_logit", N)
        self.capacity, self.stream_capacity = <int> N, <int> B

    cdef int reserve_chunk(self, Py_ssize_t n) except -1:
        """Make train's chunk buffer hold n ids."""
        cdef i32[::1] view
        if n > self.chunk_capacity:
            arr = np.zeros(n, dtype=np.int32)
            view = arr
            self.buffers["chunk"] = arr
            self.chunk = &view[0]
            self.chunk_capacity = n
        return 0

    def threads(self, int streams=1, int steps=1):
        """The threads a training call from this Python thread would use now,
        on chunks of ``steps`` steps of ``streams`` streams: two for pipelined
        steps, else at most one per piece of the output layer (its stripes),
        of the recurrence and of dWhh."""
        cdef int H = self.hidden_size, pieces = self.n_stripes
        cdef int limit = core_threads()
        if pipelined(self.vocab_size, H, streams):
            return min(limit, 2)
        if streams >= GEMM_MIN_STREAMS:
            pieces = max(pieces, product_pieces(<Py_ssize_t> streams * H * H, H))
        pieces = max(pieces, product_pieces(<Py_ssize_t> H * H * steps * streams, H))
        return min(limit, pieces)

    # -- entry points (arguments validated by charrnn_ext.model) -------------

    # -- the training steps --------------------------------------------------
    # A call runs n steps (train_step: one) over chunks from a DataPass. A
    # small output layer (one stripe) with few streams runs pipelined
    # (run_pipelined), anything else phase by phase (step_striped, each phase
    # spread over the threads). Which of the two depends on the sizes only,
    # and neither cuts its work by the thread count: the results are the same
    # bit for bit on any number of threads.

    cdef bint next_chunk(self, DataPass *d, int T, int B, f64 *h) noexcept nogil:
        """The next chunk into d.x, d.y ((T, B) ids): min-char-rnn's data pass
        over d.data (zeroing h (B, H) and going back to the start when
        chunk_wraps), or the given chunk if d.data is NULL. False (and d.bad
        set) if the chunk holds an id outside [0, V)."""
        cdef int t, b, V = self.vocab_size
        cdef Py_ssize_t at, column
        cdef i32 id_
        if d.data == NULL:
            return True
        if chunk_wraps(d.position, d.part, T):
            memset(h, 0, <Py_ssize_t> B * self.hidden_size * sizeof(f64))
            d.position = 0
        column = d.position - d.offset
        if column < 0 or column > d.stride - T - 1:
            d.bad = -2
            return False
        # chunk (T + 1, B) time-major: chunk[t, b] = part b's id at position + t
        for t in range(T + 1):
            for b in range(B):
                at = b * d.stride + column + t
                id_ = d.data[at]
                if id_ < 0 or id_ >= V:
                    d.bad = at
                    return False
                self.chunk[t * B + b] = id_
        d.x, d.y = self.chunk, self.chunk + B
        return True

    cdef Py_ssize_t run(self, DataPass *d, int T, int B, f64 *h, f64 lr, f64 *losses,
                        Py_ssize_t n, int threads) noexcept nogil:
        """Up to n training steps over d's chunks, from and into h (B, H):
        forward, backward, clip, Adagrad, in place. losses[k] = the mean over
        streams of step k's summed loss; d.position += T per step. Stops after
        a step whose loss is not finite, or before a chunk with a bad id.
        Returns the number of steps done. The work buffers must hold T * B rows."""
        cdef Py_ssize_t k = 0
        if pipelined(self.vocab_size, self.hidden_size, B):
            return self.run_pipelined(d, T, B, h, lr, losses, n, threads)
        while k < n:
            if not self.next_chunk(d, T, B, h):
                break
            losses[k] = self.step_striped(d.x, d.y, T, B, h, lr, threads) / B
            d.position += T
            k += 1
            if not finite(losses[k - 1]):
                break
        return k

    # -- the pipelined steps: the recurrence on one thread, the output layer
    # on the other. A step's four parts, in the order one thread runs them:
    #   recurrence_forward   hs[1..T], raising sync[0] per time step
    #   output_groups        per group of PIPELINE_GROUP_STEPS time steps, once
    #                        sync[0] has passed it: logits, softmax, loss, dY,
    #                        dh = dY Why (Why unchanged); raises sync[1] per group
    #   recurrence_backward  once every group is done: the backward chain,
    #                        dbh, dWxh, clipped; Adagrad of Wxh, bh
    #   output_update        dWhy, dby, clipped; Adagrad of Why, by
    #   recurrence_update    dWhh, clipped; Adagrad of Whh
    # On two threads the first, third and fifth run on one, the second and
    # fourth on the other (which then raises sync[2]): a group's output layer
    # runs while the recurrence goes on, and Why's update while the backward
    # chain runs. (Whh's update stays with the recurrence: split over both
    # threads it saved ~3 us of a 62 us step where the two cores share a
    # cache, and cost ~20 us where they do not -- Whh then crossed between
    # them twice a step; benchmarks/README.md.) Each product is computed
    # by the same kernel in the same order whichever thread runs it. The
    # counters only grow within a call: sync[0] counts time steps forward,
    # sync[1] groups, sync[2] finished output layers, sync[3] started steps,
    # sync[5] claimed output layers; sync[4] = 1 when no further step will
    # start. A step's output layer goes to whichever thread claims it first:
    # normally the second, which waits for it; the first takes it when it
    # finds it unclaimed after its forward recurrence (the second thread not
    # started yet, or off the CPU on a busy machine), and never waits for a
    # thread that is not running unless that thread holds a claim.

    cdef void recurrence_forward(self, const i32 *x, int T, int B, f64 *h, counter *sync,
                                 long long base) noexcept nogil:
        """hs (T+1, B, H) from hs[0] = h; h becomes hs[T]; sync[0] = base + t
        once hs[t] is there."""
        cdef int t, H = self.hidden_size, V = self.vocab_size
        cdef Py_ssize_t block = <Py_ssize_t> B * H
        cdef Tensors p = self.params
        memcpy(self.hs, h, block * sizeof(f64))
        for t in range(T):
            rnn_step(self.hs + (t + 1) * block, self.hs + t * block, x + t * B, B,
                     p.Wxh, self.WhhT, p.bh, H, V, 1)
            counter_set(sync, <long long> (base + t + 1))
        memcpy(h, self.hs + T * block, block * sizeof(f64))

    cdef f64 output_groups(self, const i32 *y, int T, int B, counter *sync,
                           long long base_steps, long long base_groups) noexcept nogil:
        """The output layer group by group, each once the recurrence has made
        its states: logits = hs Why^T + by (from WhyT), softmax and loss, then
        dY = (P - onehot(y)) / B in place of probs and dhs rows = dY Why.
        Returns the summed loss, added group by group."""
        cdef int G = PIPELINE_GROUP_STEPS, H = self.hidden_size, V = self.vocab_size
        cdef int g = 0, t0 = 0, t1, r0, n
        cdef f64 loss = 0.0
        cdef f64 *dY
        cdef Tensors p = self.params
        while t0 < T:
            t1 = t0 + G if t0 + G < T else T
            counter_wait(sync, <long long> (base_steps + t1))
            r0, n = t0 * B, (t1 - t0) * B
            dY = self.probs + <Py_ssize_t> r0 * V
            matmul_blocked(dY, V, self.hs + <Py_ssize_t> (B + r0) * H, H, self.WhyT, V,
                           n, H, V)
            softmax_rows(dY, self.stripe_max + r0, self.stripe_sum + r0,
                         self.target_logit + r0, y + r0, p.by, 0, V, n, V)
            loss += softmax_combine(self.scale + r0, self.stripe_max + r0,
                                    self.stripe_sum + r0, self.target_logit + r0, n, 1)
            crossentropy_softmax_backward(dY, NULL, self.scale + r0, y + r0, 0, V, n, V,
                                          1.0 / B)
            matmul_blocked(self.dhs + <Py_ssize_t> r0 * H, H, dY, V, p.Why, H, n, V, H)
            g += 1
            counter_set(sync + 1, <long long> (base_groups + g))
            t0 = t1
        return loss

    cdef void recurrence_backward(self, const i32 *x, int T, int B, f64 lr, counter *sync,
                                  long long groups) noexcept nogil:
        """Once sync[1] reaches groups (every dh is in dhs): the backward
        chain, dbh and dWxh, clipped; Adagrad of Wxh (the chunk's columns)
        and bh."""
        cdef int H = self.hidden_size, V = self.vocab_size, N = T * B
        cdef Tensors p = self.params, m = self.memory, g = self.grads
        cdef f64 bound = self.clip_bound, eps = self.adagrad_eps
        counter_wait(sync + 1, <long long> groups)
        rnn_backward_chain(self.dhs, self.dh_next, self.hs, T, B, p.Whh, H, 1)
        zero_columns(g.Wxh, self.present, self.n_present, H, V)
        self.n_present = distinct_ids(self.present, self.seen, x, N)
        rnn_input_grads(g.Wxh, g.bh, self.dhs, x, N, H, V)
        clip_columns(g.Wxh, self.present, self.n_present, H, V, bound)
        clip(g.bh, H, bound)
        adagrad_columns(p.Wxh, m.Wxh, g.Wxh, self.present, self.n_present, H, V, lr, eps)
        adagrad(p.bh, m.bh, g.bh, H, lr, eps)

    cdef void recurrence_update(self, int T, int B, f64 lr) noexcept nogil:
        """After recurrence_backward: dWhh = dh_raw^T hs[:T], clipped, and
        Adagrad of Whh."""
        cdef int H = self.hidden_size
        cdef Tensors p = self.params, m = self.memory, g = self.grads
        gemm_rowmajor(b'T', b'N', H, H, T * B, 1.0, self.dhs, H, self.hs, H, 0.0, g.Whh, H)
        clip(g.Whh, H * H, self.clip_bound)
        adagrad(p.Whh, m.Whh, g.Whh, H * H, lr, self.adagrad_eps)

    cdef void output_update(self, int T, int B, f64 lr) noexcept nogil:
        """After output_groups: dby = the sum of the rows of dY, dWhy = dY^T hs
        in blocks of OUTPUT_BLOCK rows, each clipped and applied (Adagrad) to
        its block of Why; then by."""
        cdef int H = self.hidden_size, V = self.vocab_size, N = T * B, v0 = 0, rows
        cdef Py_ssize_t at
        cdef Tensors p = self.params, m = self.memory, g = self.grads
        cdef f64 bound = self.clip_bound, eps = self.adagrad_eps
        column_sums(g.by, self.probs, N, V, V)
        while v0 < V:
            rows = OUTPUT_BLOCK if v0 + OUTPUT_BLOCK <= V else V - v0
            at = <Py_ssize_t> v0 * H
            gemm_rowmajor(b'T', b'N', rows, H, N, 1.0, self.probs + v0, V,
                          self.hs + <Py_ssize_t> B * H, H, 0.0, g.Why + at, H)
            clip(g.Why + at, rows * H, bound)
            adagrad(p.Why + at, m.Why + at, g.Why + at, rows * H, lr, eps)
            v0 += rows
        clip(g.by, V, bound)
        adagrad(p.by, m.by, g.by, V, lr, eps)

    cdef Py_ssize_t run_pipelined(self, DataPass *d, int T, int B, f64 *h, f64 lr,
                                  f64 *losses, Py_ssize_t n, int threads) noexcept nogil:
        """run's steps with the four parts on two threads (one if threads < 2)."""
        cdef counter sync[6]
        cdef Py_ssize_t done[1]
        cdef int role
        sync[0] = sync[1] = sync[2] = sync[3] = sync[4] = sync[5] = 0
        done[0] = 0
        if threads >= 2:
            with parallel(num_threads=2):
                role = threadid()
                if omp_team_size() < 2:       # the runtime gave one thread after all
                    done[0] = self.pipeline_one_thread(d, T, B, h, lr, losses, n, sync)
                elif role == 0:
                    done[0] = self.pipeline_recurrence(d, T, B, h, lr, losses, n, sync)
                elif role == 1:
                    self.pipeline_output(d, T, B, lr, losses, sync)
        else:
            done[0] = self.pipeline_one_thread(d, T, B, h, lr, losses, n, sync)
        return done[0]

    cdef Py_ssize_t pipeline_one_thread(self, DataPass *d, int T, int B, f64 *h, f64 lr,
                                        f64 *losses, Py_ssize_t n, counter *sync) noexcept nogil:
        """The pipelined steps on one thread: the four parts in order."""
        cdef Py_ssize_t k = 0
        cdef long long groups = (T + PIPELINE_GROUP_STEPS - 1) // PIPELINE_GROUP_STEPS
        while k < n:
            if not self.next_chunk(d, T, B, h):
                break
            transpose(self.WhhT, self.params.Whh, self.hidden_size, self.hidden_size)
            transpose(self.WhyT, self.params.Why, self.vocab_size, self.hidden_size)
            self.recurrence_forward(d.x, T, B, h, sync, k * T)
            losses[k] = self.output_groups(d.y, T, B, sync, k * T, k * groups) / B
            self.recurrence_backward(d.x, T, B, lr, sync, (k + 1) * groups)
            self.output_update(T, B, lr)
            self.recurrence_update(T, B, lr)
            d.position += T
            k += 1
            if not finite(losses[k - 1]):
                break
        return k

    cdef Py_ssize_t pipeline_recurrence(self, DataPass *d, int T, int B, f64 *h, f64 lr,
                                        f64 *losses, Py_ssize_t n, counter *sync) noexcept nogil:
        """The first thread's side: the data pass and the recurrence."""
        cdef Py_ssize_t k = 0
        cdef long long groups = (T + PIPELINE_GROUP_STEPS - 1) // PIPELINE_GROUP_STEPS
        while k < n:
            if k > 0:
                # step k-1's output layer is done: hs, the chunk and probs are free
                # again, and its loss is known
                counter_wait(sync + 2, <long long> k)
                if not finite(losses[k - 1]):
                    break
            if not self.next_chunk(d, T, B, h):
                break
            transpose(self.WhhT, self.params.Whh, self.hidden_size, self.hidden_size)
            counter_set(sync + 3, <long long> (k + 1))            # step k may start
            self.recurrence_forward(d.x, T, B, h, sync, k * T)
            if counter_claim(sync + 5, <long long> k, <long long> (k + 1)):
                # the other thread has not taken this step's output layer (it is
                # asleep or off the CPU): no waiting for it, this one does it
                self.output_layer(d, T, B, lr, losses, sync, k)
            self.recurrence_backward(d.x, T, B, lr, sync, (k + 1) * groups)
            self.recurrence_update(T, B, lr)
            d.position += T
            k += 1
        counter_set(sync + 4, 1)                             # no further step
        counter_wait(sync + 2, <long long> k)                      # the last step is done
        return k

    cdef void pipeline_output(self, DataPass *d, int T, int B, f64 lr, f64 *losses,
                              counter *sync) noexcept nogil:
        """The second thread's side: the output layer of every step started
        that it claims first (sync[5]; the first thread takes a step it finds
        unclaimed after its forward recurrence)."""
        cdef Py_ssize_t k = 0
        while True:
            if not counter_wait_or(sync + 3, <long long> (k + 1), sync + 4):
                break
            if counter_claim(sync + 5, <long long> k, <long long> (k + 1)):
                self.output_layer(d, T, B, lr, losses, sync, k)
            k += 1

    cdef void output_layer(self, DataPass *d, int T, int B, f64 lr, f64 *losses, counter *sync,
                           Py_ssize_t k) noexcept nogil:
        """Step k's output layer (output_groups, output_update); then sync[2] = k + 1."""
        cdef long long groups = (T + PIPELINE_GROUP_STEPS - 1) // PIPELINE_GROUP_STEPS
        transpose(self.WhyT, self.params.Why, self.vocab_size, self.hidden_size)
        losses[k] = self.output_groups(d.y, T, B, sync, k * T, k * groups) / B
        self.output_update(T, B, lr)
        counter_set(sync + 2, <long long> (k + 1))

    cdef f64 step_striped(self, const i32 *x, const i32 *y, int T, int B, f64 *h,
                          f64 lr, int threads) noexcept nogil:
        """step for a striped output layer (S > 1) or many streams: the
        phases one after the other, each spread over the threads."""
        cdef int N = T * B, H = self.hidden_size, V = self.vocab_size, S = self.n_stripes
        cdef Tensors p = self.params, m = self.memory, g = self.grads
        cdef f64 bound = self.clip_bound, eps = self.adagrad_eps
        cdef f64 loss
        transpose(self.WhhT, p.Whh, H, H)
        # forward
        memcpy(self.hs, h, B * H * sizeof(f64))
        rnn_forward(self.hs, x, T, B, p.Wxh, self.WhhT, p.bh, H, V, threads)
        loss = output_forward(self.probs, self.scale, self.stripe_max, self.stripe_sum,
                              self.target_logit, self.hs + B * H, y, p.Why, p.by,
                              N, H, V, S, threads)
        memcpy(h, self.hs + N * H, B * H * sizeof(f64))
        # backward; Why is clipped and updated block by block within it
        output_backward_update(self.dhs, self.dh_parts, g.Why, g.by, self.probs,
                               self.scale, self.hs + B * H, y, p.Why, m.Why, N, H, V, S,
                               threads, 1.0 / B, lr, bound, eps)
        zero_columns(g.Wxh, self.present, self.n_present, H, V)
        self.n_present = distinct_ids(self.present, self.seen, x, N)
        rnn_backward(g.Wxh, g.Whh, g.bh, self.dhs, self.dh_next, self.hs, x, T, B,
                     p.Whh, H, V, threads)
        # clip
        clip_columns(g.Wxh, self.present, self.n_present, H, V, bound)
        clip(g.Whh, H * H, bound)
        clip(g.bh, H, bound)
        clip(g.by, V, bound)
        # update
        adagrad_columns(p.Wxh, m.Wxh, g.Wxh, self.present, self.n_present, H, V, lr, eps)
        adagrad(p.Whh, m.Whh, g.Whh, H * H, lr, eps)
        adagrad(p.bh, m.bh, g.bh, H, lr, eps)
        adagrad(p.by, m.by, g.by, V, lr, eps)
        return loss

    def train_step(self, const i32[:, ::1] inputs, const i32[:, ::1] targets,
                   f64[:, ::1] h, f64 learning_rate, int max_threads=0):
        """One step over a chunk of B streams, inputs and targets (T, B):
        forward, backward, clip, Adagrad. Updates params, memory and grads in
        place; h (B, H) is replaced by the last hidden states. Returns the mean
        over streams of the summed loss. max_threads > 0 caps the threads."""
        cdef int T = inputs.shape[0], B = inputs.shape[1]
        cdef f64 loss[1]
        cdef DataPass d
        d.data, d.x, d.y, d.bad = NULL, &inputs[0, 0], &targets[0, 0], -1
        self.reserve(T * B, B)
        with nogil:
            self.run(&d, T, B, &h[0, 0], learning_rate, loss, 1,
                     capped_threads(max_threads))
        return loss[0]

    def train(self, const i32[:, ::1] data, Py_ssize_t offset, Py_ssize_t part,
              Py_ssize_t position, f64[:, ::1] h, int T, f64 learning_rate,
              f64[::1] losses, int max_threads=0):
        """min-char-rnn's training loop for len(losses) steps, in one call
        with the GIL released, over B = h.shape[0] streams, each reading its
        part of `part` ids. data (B, W): row b = ids offset .. offset + W of
        part b (a window; the whole parts for offset 0, W = part). Before each
        step, if chunk_wraps(position, part, T), h (B, H) is zeroed and
        position set to 0; the step trains on the ids at position .. position
        + T of each part (inputs, and targets one later); then position += T.
        losses[k] = the mean over streams of step k's summed loss. Stops after
        a step whose loss is not finite, or before a chunk holding an id
        outside [0, V) or lying outside the window (ids are checked as they
        are copied).

        Returns (steps done, position, the flat index into data of a bad id,
        -2 for a chunk outside the window, or -1). Requires part >= T + 1.
        max_threads > 0 caps the threads."""
        cdef int B = h.shape[0]
        cdef Py_ssize_t k, n = losses.shape[0]
        cdef DataPass d
        if data.shape[0] != B or data.shape[1] < 1:
            raise ValueError("data must hold one row per stream")
        d.data, d.stride, d.offset = &data[0, 0], data.shape[1], offset
        d.part, d.position, d.bad = part, position, -1
        self.reserve(<Py_ssize_t> T * B, B)
        self.reserve_chunk(<Py_ssize_t> (T + 1) * B)
        if n == 0:
            return 0, position, -1
        with nogil:
            k = self.run(&d, T, B, &h[0, 0], learning_rate, &losses[0], n,
                         capped_threads(max_threads))
        return k, d.position, d.bad

    def loss_and_grads(self, const i32[:, ::1] inputs, const i32[:, ::1] targets,
                       f64[:, ::1] h):
        """Forward, backward and clip over B streams, inputs and targets (T, B):
        the clipped mean gradients are left in grads; params and memory are
        untouched. h (B, H) is replaced by the last hidden states. Returns the
        mean over streams of the summed loss."""
        cdef int T = inputs.shape[0], B = inputs.shape[1], N = T * B
        cdef int H = self.hidden_size, V = self.vocab_size, S = self.n_stripes, threads
        cdef Tensors p = self.params, g = self.grads
        cdef f64 bound = self.clip_bound
        cdef const i32 *x = &inputs[0, 0]
        cdef const i32 *y = &targets[0, 0]
        cdef f64 loss
        self.reserve(N, B)
        with nogil:
            threads = core_threads()
            transpose(self.WhhT, p.Whh, H, H)
            # forward
            memcpy(self.hs, &h[0, 0], B * H * sizeof(f64))
            rnn_forward(self.hs, x, T, B, p.Wxh, self.WhhT, p.bh, H, V, threads)
            loss = output_forward(self.probs, self.scale, self.stripe_max, self.stripe_sum,
                                  self.target_logit, self.hs + B * H, y, p.Why, p.by,
                                  N, H, V, S, threads)
            memcpy(&h[0, 0], self.hs + N * H, B * H * sizeof(f64))
            # backward
            output_backward(self.dhs, self.dh_parts, g.Why, g.by, self.probs, self.scale,
                            self.hs + B * H, y, p.Why, N, H, V, S, threads, 1.0 / B)
            zero_columns(g.Wxh, self.present, self.n_present, H, V)
            self.n_present = distinct_ids(self.present, self.seen, x, N)
            rnn_backward(g.Wxh, g.Whh, g.bh, self.dhs, self.dh_next, self.hs, x, T, B,
                         p.Whh, H, V, threads)
            # clip
            clip_columns(g.Wxh, self.present, self.n_present, H, V, bound)
            clip(g.Whh, H * H, bound)
            clip(g.Why, <Py_ssize_t> V * H, bound)
            clip(g.bh, H, bound)
            clip(g.by, V, bound)
        return loss / B

    def loss(self, const i32[:, ::1] inputs, const i32[:, ::1] targets, f64[:, ::1] h):
        """Forward-only loss of B streams over any number n of steps, inputs
        and targets (n, B); h (B, H) becomes the last hidden states. Returns the
        mean over streams of the summed loss. Runs in blocks of
        loss_block_steps(B) steps (fixed, so the result does not depend on the
        buffers' history)."""
        cdef Py_ssize_t n = inputs.shape[0], start = 0
        cdef int B = inputs.shape[1], steps = loss_block_steps(B)
        cdef int H = self.hidden_size, V = self.vocab_size, S = self.n_stripes
        cdef int T, threads
        cdef Tensors p = self.params
        cdef f64 loss = 0.0
        self.reserve(min(n, <Py_ssize_t> steps) * B, B)
        with nogil:
            threads = core_threads()
            transpose(self.WhhT, p.Whh, H, H)
            memcpy(self.hs, &h[0, 0], B * H * sizeof(f64))
            while start < n:
                T = <int> min(n - start, <Py_ssize_t> steps)
                rnn_forward(self.hs, &inputs[start, 0], T, B, p.Wxh, self.WhhT, p.bh, H, V,
                            threads)
                loss += output_forward(self.probs, self.scale, self.stripe_max,
                                       self.stripe_sum, self.target_logit, self.hs + B * H,
                                       &targets[start, 0], p.Why, p.by, T * B, H, V, S,
                                       threads)
                memcpy(self.hs, self.hs + <Py_ssize_t> T * B * H, B * H * sizeof(f64))
                start += T
            memcpy(&h[0, 0], self.hs, B * H * sizeof(f64))
        return loss / B

    def advance(self, const i32[::1] inputs, f64[::1] h):
        """Run the recurrence of one stream over inputs (n,) from h (H,), in
        place: h becomes the hidden state after the last input (used to prime
        sampling). No output layer is computed."""
        cdef int H = self.hidden_size, V = self.vocab_size
        cdef Py_ssize_t t, n = inputs.shape[0]
        cdef Tensors p = self.params
        with nogil:
            transpose(self.WhhT, p.Whh, H, H)
            for t in range(n):
                rnn_step(self.h_next, &h[0], &inputs[t], 1, p.Wxh, self.WhhT, p.bh, H, V, 1)
                memcpy(&h[0], self.h_next, H * sizeof(f64))

    def sample(self, f64[::1] h, int seed_ix, const f64[::1] uniforms,
               f64 temperature, i32[::1] out):
        """Generate len(out) ids of one stream starting from input seed_ix and
        hidden state h (H,), which is advanced in place: id t is
        draw_id(logits, temperature, uniforms[t]). out (n,) is overwritten.
        One thread: a parallel region per character would cost more than it
        saves."""
        cdef int H = self.hidden_size, V = self.vocab_size, x = seed_ix
        cdef Py_ssize_t t, n = out.shape[0]
        cdef Tensors p = self.params
        cdef f64[:, ::1] WhyT = np.ascontiguousarray(
            np.asarray(<f64[:V, :H]> p.Why).T)   # (H, V), a copy per call
        with nogil:
            transpose(self.WhhT, p.Whh, H, H)
            for t in range(n):
                rnn_step(self.h_next, &h[0], &x, 1, p.Wxh, self.WhhT, p.bh, H, V, 1)
                memcpy(&h[0], self.h_next, H * sizeof(f64))
                output_step(self.logits, &h[0], &WhyT[0, 0], p.by, H, V)
                x = draw_id(self.logits, V, temperature, uniforms[t])
                out[t] = x


cdef class Storage:
    """Zeroed float64 memory of a fixed size, freed only with this object.

    The model's parameters, Adagrad memory and gradients live here (see
    charrnn_ext.model._storage): numpy arrays over it cannot resize it, and
    releasing a memoryview of it from Python drops a reference, never the
    memory, which the model keeps referenced; so no Python operation on the
    arrays handed out can move or free what the kernels point to."""
    cdef f64 *data
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t n):
        if n < 0:
            raise ValueError("negative size")
        self.data = <f64 *> PyMem_Calloc(n if n > 0 else 1, sizeof(f64))
        if self.data == NULL:
            raise MemoryError()
        self.shape[0] = n
        self.strides[0] = sizeof(f64)

    def __dealloc__(self):
        PyMem_Free(self.data)

    def __getbuffer__(self, Py_buffer *view, int flags):
        view.buf = <void *> self.data
        view.obj = self
        view.len = self.shape[0] * sizeof(f64)
        view.readonly = 0
        view.itemsize = sizeof(f64)
        view.format = "d"
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


def first_invalid_id(const i32[::1] ids, int vocab_size):
    """Index of the first id outside [0, vocab_size) in ids (n,), or -1."""
    cdef Py_ssize_t i, n = ids.shape[0], bad = -1
    with nogil:
        for i in range(n):
            if ids[i] < 0 or ids[i] >= vocab_size:
                bad = i
                break
    return bad


# ---------------------------------------------------------------------------
# the ids Workspace.train reads, from any integer array: read with the GIL
# held throughout (no other Python thread can change, resize or free the
# array meanwhile), into the caller's own int32 copy
# ---------------------------------------------------------------------------

ctypedef fused id_t:
    signed char
    short
    int
    long long
    unsigned char
    unsigned short
    unsigned int
    unsigned long long


def scan_ids(const id_t[:] ids, Py_ssize_t streams, Py_ssize_t part, Py_ssize_t start,
             Py_ssize_t stop, long long vocab_size):
    """(index, value) of the first id outside [0, vocab_size) among
    ids[b * part + start : b * part + stop] for b < streams (in that order),
    or (-1, 0). Raises ValueError if ids holds fewer than streams * part."""
    cdef Py_ssize_t b, j, at
    cdef long long v
    if ids.shape[0] < streams * part:
        raise ValueError("data changed size during train")
    for b in range(streams):
        for j in range(start, stop):
            at = b * part + j
            v = <long long> ids[at]
            if v < 0 or v >= vocab_size:      # (a uint64 from 2**63 on casts to v < 0)
                return at, int(ids[at])
    return -1, 0


def copy_window(const id_t[:] ids, Py_ssize_t streams, Py_ssize_t part, Py_ssize_t offset,
                Py_ssize_t width, long long vocab_size):
    """A new C-contiguous int32 (streams, width) array: row b = ids[b * part +
    offset : b * part + offset + width], an id outside [0, vocab_size) stored
    as -1 (Workspace.train stops at it if it reads it). Raises ValueError if
    ids holds fewer than streams * part."""
    cdef Py_ssize_t b, j
    cdef long long v
    if ids.shape[0] < streams * part:
        raise ValueError("data changed size during train")
    out = np.empty((streams, width), dtype=np.int32)
    cdef i32[:, ::1] window = out
    for b in range(streams):
        for j in range(width):
            v = <long long> ids[b * part + offset + j]
            if v < 0 or v >= vocab_size:
                v = -1
            window[b, j] = <i32> v
    return out
