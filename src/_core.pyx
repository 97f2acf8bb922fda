# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Cython core of charrnn_ext: one tanh-RNN training step (forward, BPTT,
clipping, Adagrad), forward-only loss and sampling, over C-contiguous float64
buffers with the GIL released.

Shapes (H = hidden size, V = vocabulary size, T = chunk length):
    Wxh (H, V)   Whh (H, H)   Why (V, H)   bh (H,)   by (V,)
The same shapes hold for the Adagrad memory (m*) and the gradients (d*).

The Python layer (``charrnn_ext.model``) validates everything handed down:
bounds checking is off here, so ids must already be in [0, V).

Work buffers live in ``Workspace`` and are allocated only when the chunk
length grows past the current capacity, never per step.

Arithmetic follows the best numerical practice rather than the seed's
spelling: the input layer is a column lookup of Wxh; only the recurrence is
sequential, the output layer and dWhy, Why^T dY, dWhh are one matrix product
each over all T steps (BLAS dgemm from scipy); the Wxh gradient, clipping and
Adagrad touch only the columns of characters present in the chunk; softmax
subtracts the row maximum. The recurrence uses Whh transposed (refreshed from
Whh at every call, so that params changed in place by the caller are seen),
which turns Whh @ h into contiguous, vectorisable row updates.
"""
import numpy as np

from libc.math cimport INFINITY, log, sqrt
from libc.string cimport memcpy, memset
from cython.parallel cimport prange
from scipy.linalg.cython_blas cimport dgemm

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define CHARRNN_EXT_OPENMP 1
    static int charrnn_ext_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    #define CHARRNN_EXT_OPENMP 0
    static int charrnn_ext_omp_max_threads(void) { return 1; }
    #endif
    """
    const int CHARRNN_EXT_OPENMP
    # the calling thread's OpenMP limit (OMP_NUM_THREADS, omp_set_num_threads,
    # threadpoolctl's limits on "openmp")
    int omp_max_threads "charrnn_ext_omp_max_threads" () noexcept nogil

ctypedef double f64
ctypedef int i32

cdef f64 CLIP = 5.0
cdef f64 ADAGRAD_EPS = 1e-8
cdef int LOSS_BLOCK = 256     # steps per block of the forward-only loss
cdef int OUTPUT_BLOCK = 128   # rows of Why per block of the fused output-layer update
cdef int SAMPLE_BLOCK = 512   # columns of Why^T per block of the sampling matvec
# The output layer (the V rows of Why and by) is split into a fixed number of
# stripes of rows, which threads may share out. The split depends only on the
# layer's size, never on the thread count, and partial results are combined
# in stripe order: results are the same bit for bit with any number of threads.
cdef int MAX_STRIPES = 4
cdef Py_ssize_t STRIPE_MIN_ELEMENTS = 131072   # V * H below this: one stripe, no threads

cdef int num_threads = 1     # threads of the striped output layer (set_num_threads)
cdef bint forked = False     # set for good in a child of fork(): one thread from then on


def set_num_threads(int n):
    """Use up to n threads (>= 1) for the output layer of every later call
    (at most the number of stripes). A build without OpenMP, and a process
    forked from one that may have started OpenMP threads, always use one."""
    global num_threads
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1, got {n}")
    num_threads = n if CHARRNN_EXT_OPENMP and not forked else 1


def get_num_threads():
    """The number of threads the output layer may use (it uses at most one
    per stripe, and at most the calling thread's OpenMP limit)."""
    return num_threads


def _after_fork_in_child():
    """Called in the child after os.fork(): GNU libgomp's thread pool does not
    survive fork (the child would wait forever for the parent's workers), so
    the child computes on one thread for good -- with the same results."""
    global num_threads, forked
    forked = True
    num_threads = 1


def has_openmp():
    """Whether this build of the core was compiled with OpenMP."""
    return bool(CHARRNN_EXT_OPENMP)


def stripe_count(Py_ssize_t vocab_size, Py_ssize_t hidden_size):
    """The number of output-layer stripes of a (V, H) model."""
    cdef Py_ssize_t by_size
    if vocab_size * hidden_size < STRIPE_MIN_ELEMENTS:
        return 1
    by_size = vocab_size // OUTPUT_BLOCK
    return <int> max(1, min(MAX_STRIPES, by_size))


# ---------------------------------------------------------------------------
# branch-free exp and tanh that the compiler can vectorise (glibc's scalar
# exp and tanh cost ~11 ns and ~28 ns per call and dominated the step).
# Both are accurate to a few ulp (tested against numpy in tests/).
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
# small BLAS-like helpers (nogil)
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


cdef inline f64 softmax_row(f64 *p, const f64 *by, int n, int target) noexcept nogil:
    """p (n,) holds W h; turn it into softmax(p + by) in place and return
    the cross-entropy -log softmax(p + by)[target]."""
    cdef int v
    cdef f64 top, total, target_logit
    for v in range(n):
        p[v] = p[v] + by[v]
    top = row_max(p, n)
    target_logit = p[target] - top
    for v in range(n):
        p[v] = vexp(p[v] - top)
    total = row_sum(p, n)
    for v in range(n):
        p[v] = p[v] / total
    # -log softmax(target) = log(sum exp(logit - max)) - (logit_target - max)
    return log(total) - target_logit


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


cdef inline void transpose(const f64 *a, f64 *out, int n) noexcept nogil:
    """out (n, n) = A (n, n)^T, in 16 x 16 tiles."""
    cdef int i0, j0, i, j, i1, j1
    for i0 in range(0, n, 16):
        i1 = i0 + 16 if i0 + 16 < n else n
        for j0 in range(0, n, 16):
            j1 = j0 + 16 if j0 + 16 < n else n
            for i in range(i0, i1):
                for j in range(j0, j1):
                    out[j * n + i] = a[i * n + j]


cdef inline void clip_adagrad(f64 *param, f64 *grad, f64 *mem, Py_ssize_t n,
                              f64 learning_rate) noexcept nogil:
    """Clip grad (n,) to [-5, 5] in place, then Adagrad in place:
    mem += g*g; param -= lr * g / sqrt(mem + 1e-8)."""
    cdef Py_ssize_t i
    cdef f64 g
    for i in range(n):
        g = grad[i]
        g = CLIP if g > CLIP else (-CLIP if g < -CLIP else g)
        grad[i] = g
        mem[i] += g * g
        param[i] -= learning_rate * g / sqrt(mem[i] + ADAGRAD_EPS)


cdef inline void clip_only(f64 *grad, Py_ssize_t n) noexcept nogil:
    """Clip grad (n,) to [-5, 5] in place."""
    cdef Py_ssize_t i
    cdef f64 g
    for i in range(n):
        g = grad[i]
        grad[i] = CLIP if g > CLIP else (-CLIP if g < -CLIP else g)


# ---------------------------------------------------------------------------
# the workspace: views of the model's arrays plus preallocated work buffers
# ---------------------------------------------------------------------------

cdef class Workspace:
    """Typed views of a model's parameters, Adagrad memory and gradients, plus
    the work buffers of one training step.

    Parameters (all float64, C-contiguous, modified in place by the kernels):
        params  = (Wxh (H,V), Whh (H,H), Why (V,H), bh (H,), by (V,))
        memory  = same shapes (Adagrad accumulators)
        grads   = same shapes (the last clipped gradients)
    Biases may be passed as (H, 1) / (V, 1) arrays; they are viewed as 1-D.

    Invariant: dWxh is zero outside the columns listed in ``present[:n_present]``
    (the characters of the last chunk), so only those columns are ever zeroed,
    clipped or updated.

    The output layer is split into ``n_stripes`` stripes of rows of Why / by
    (stripe s holds rows stripe_lo(s) to stripe_lo(s + 1)); each stripe's work
    is independent, so the stripes run on up to ``num_threads`` threads.
    """
    cdef readonly int hidden_size, vocab_size, capacity, n_stripes
    cdef f64[:, ::1] Wxh, Whh, Why          # (H,V) (H,H) (V,H)
    cdef f64[::1] bh, by                    # (H,) (V,)
    cdef f64[:, ::1] mWxh, mWhh, mWhy
    cdef f64[::1] mbh, mby
    cdef f64[:, ::1] dWxh, dWhh, dWhy
    cdef f64[::1] dbh, dby
    # work buffers
    cdef f64[:, ::1] hs        # (capacity + 1, H): hs[0] = h_prev, hs[t+1] = h_t
    cdef f64[:, ::1] probs     # (capacity, V): logits -> exp -> probabilities -> dY
    cdef f64[:, ::1] dhs       # (capacity, H): Why^T dY, then dh_raw
    cdef f64[:, :, ::1] dh_parts   # (n_stripes - 1, capacity, H): [s - 1] = stripe s's Why^T dY
    cdef f64[:, ::1] stripe_max    # (n_stripes, capacity): max logit of each stripe and step
    cdef f64[:, ::1] stripe_sum    # (n_stripes, capacity): sum exp(logit - stripe max)
    cdef f64[:, ::1] stripe_scale  # (n_stripes, capacity): exp(stripe max - max) / total
    cdef f64[::1] target_logit     # (capacity,): logit of each step's target
    cdef f64[::1] dh_next      # (H,)
    cdef f64[:, ::1] WhhT      # (H, H): Whh transposed, refreshed at every call
    cdef f64[::1] logits       # (V,) sampling scratch
    cdef i32[::1] present      # (capacity,) distinct input ids of the chunk
    cdef unsigned char[::1] seen   # (V,) marks, all zero between calls
    cdef int n_present

    def __init__(self, params, memory, grads, int capacity=32):
        Wxh, Whh, Why, bh, by = params
        self.hidden_size = Wxh.shape[0]
        self.vocab_size = Wxh.shape[1]
        self.Wxh, self.Whh, self.Why = Wxh, Whh, Why
        self.bh, self.by = bh.reshape(-1), by.reshape(-1)
        mWxh, mWhh, mWhy, mbh, mby = memory
        self.mWxh, self.mWhh, self.mWhy = mWxh, mWhh, mWhy
        self.mbh, self.mby = mbh.reshape(-1), mby.reshape(-1)
        dWxh, dWhh, dWhy, dbh, dby = grads
        self.dWxh, self.dWhh, self.dWhy = dWxh, dWhh, dWhy
        self.dbh, self.dby = dbh.reshape(-1), dby.reshape(-1)
        H, V = self.hidden_size, self.vocab_size
        for arr, shape in ((Whh, (H, H)), (Why, (V, H)), (mWxh, (H, V)),
                           (mWhh, (H, H)), (mWhy, (V, H)), (dWxh, (H, V)),
                           (dWhh, (H, H)), (dWhy, (V, H)), (bh, (H,)),
                           (by, (V,)), (mbh, (H,)), (mby, (V,)), (dbh, (H,)),
                           (dby, (V,))):
            if tuple(arr.shape)[:len(shape)] != shape or arr.size != np.prod(shape):
                raise ValueError("inconsistent parameter shapes")
        self.n_stripes = stripe_count(V, H)
        self.dh_next = np.zeros(H)
        self.WhhT = np.zeros((H, H))
        self.logits = np.zeros(V)
        self.seen = np.zeros(V, dtype=np.uint8)
        self.n_present = 0
        self.capacity = 0
        self.reserve(max(capacity, 1))
        # establish the dWxh invariant
        np.asarray(self.dWxh)[...] = 0.0

    def reserve(self, int length):
        """Make the work buffers hold chunks of up to ``length`` steps."""
        if length <= self.capacity:
            return
        cdef int H = self.hidden_size, V = self.vocab_size, S = self.n_stripes
        self.hs = np.zeros((length + 1, H))
        self.probs = np.zeros((length, V))
        self.dhs = np.zeros((length, H))
        # stripe 0 writes its part of Why^T dY straight into dhs, the others here
        self.dh_parts = np.zeros((S - 1, length, H))
        self.stripe_max = np.zeros((S, length))
        self.stripe_sum = np.zeros((S, length))
        self.stripe_scale = np.zeros((S, length))
        self.target_logit = np.zeros(length)
        new_present = np.zeros(length, dtype=np.int32)
        if self.n_present:
            new_present[:self.n_present] = np.asarray(self.present)[:self.n_present]
        self.present = new_present
        self.capacity = length

    # -- kernels -------------------------------------------------------------

    cdef inline int stripe_lo(self, int s) noexcept nogil:
        """First row of stripe s (stripe_lo(n_stripes) == V)."""
        return <int> ((<Py_ssize_t> s * self.vocab_size) // self.n_stripes)

    cdef inline int stripe_threads(self) noexcept nogil:
        """Threads to use for the stripes: num_threads, at most one per stripe
        and at most the calling thread's OpenMP limit."""
        cdef int n = num_threads if num_threads < self.n_stripes else self.n_stripes
        cdef int limit = omp_max_threads()
        return n if n < limit else (limit if limit > 1 else 1)

    def threads(self):
        """The threads a call from this Python thread would use now."""
        return self.stripe_threads()

    cdef void _recurrence(self, const i32 *inputs, int T, f64 *h) noexcept nogil:
        """hs[0] = h (H,), hs[t + 1] = tanh(Wxh[:, x_t] + Whh hs[t] + bh) for
        t < T (hs (T+1, H) is written; WhhT must hold Whh^T)."""
        cdef int H = self.hidden_size, V = self.vocab_size
        cdef int t, i, x
        cdef f64 *hs = &self.hs[0, 0]
        cdef const f64 *Wxh = &self.Wxh[0, 0]
        cdef const f64 *bh = &self.bh[0]
        cdef f64 *h_t
        memcpy(hs, h, H * sizeof(f64))
        for t in range(T):
            h_t = hs + (t + 1) * H
            matvec_t(&self.WhhT[0, 0], H, hs + t * H, h_t, H, H)
            x = inputs[t]
            for i in range(H):
                h_t[i] = (Wxh[i * V + x] + h_t[i]) + bh[i]
            for i in range(H):
                h_t[i] = vtanh(h_t[i])

    cdef void _stripe_forward(self, int s, const i32 *targets, int T) noexcept nogil:
        """Stripe s of the output layer over hs[1:T+1]: probs[:, lo:hi] =
        exp(logits - stripe max) for logits = hs[1:] Why[lo:hi]^T + by[lo:hi];
        records stripe_max[s, t], stripe_sum[s, t] and, for the targets in the
        stripe, target_logit[t]."""
        cdef int H = self.hidden_size, V = self.vocab_size
        cdef int lo = self.stripe_lo(s), hi = self.stripe_lo(s + 1), n = hi - lo
        cdef int t, v, target
        cdef f64 *row
        cdef const f64 *by = &self.by[lo]
        cdef f64 top
        # logits (T, n) = hs[1:] (T, H) @ Why[lo:hi]^T (H, n): one product for all T
        gemm_rowmajor(b'N', b'T', T, n, H, 1.0, &self.hs[1, 0], H,
                      &self.Why[lo, 0], H, 0.0, &self.probs[0, lo], V)
        for t in range(T):
            row = &self.probs[t, lo]
            for v in range(n):
                row[v] = row[v] + by[v]
            target = targets[t]
            if lo <= target < hi:
                self.target_logit[t] = row[target - lo]
            top = row_max(row, n)
            for v in range(n):
                row[v] = vexp(row[v] - top)
            self.stripe_max[s, t] = top
            self.stripe_sum[s, t] = row_sum(row, n)

    cdef f64 _forward(self, const i32 *inputs, const i32 *targets, int T,
                      f64 *h) noexcept nogil:
        """Forward pass over T <= capacity steps from h (H,).

        Fills hs (T+1, H), probs (T, V) with exp(logit - stripe max) and
        stripe_scale (S, T) with the factors that turn them into softmax
        probabilities. Writes the last hidden state to h. Returns the summed
        cross-entropy."""
        cdef int H = self.hidden_size, S = self.n_stripes, threads = self.stripe_threads()
        cdef int t, s
        cdef f64 top, total, loss = 0.0
        # the recurrence: the only sequential part
        self._recurrence(inputs, T, h)
        # the output layer, stripe by stripe (no OpenMP at all on one thread)
        if threads > 1:
            for s in prange(S, num_threads=threads, schedule='static', chunksize=1):
                self._stripe_forward(s, targets, T)
        else:
            for s in range(S):
                self._stripe_forward(s, targets, T)
        # combine the stripes, in stripe order: softmax over all V
        for t in range(T):
            top = self.stripe_max[0, t]
            for s in range(1, S):
                top = self.stripe_max[s, t] if self.stripe_max[s, t] > top else top
            total = 0.0
            for s in range(S):
                self.stripe_scale[s, t] = vexp(self.stripe_max[s, t] - top)
                total += self.stripe_sum[s, t] * self.stripe_scale[s, t]
            for s in range(S):
                self.stripe_scale[s, t] = self.stripe_scale[s, t] / total
            # -log softmax(target) = log(sum exp(logit - max)) - (logit_target - max)
            loss += log(total) - (self.target_logit[t] - top)
        memcpy(h, &self.hs[T, 0], H * sizeof(f64))
        return loss

    cdef void _stripe_backward(self, int s, const i32 *targets, int T,
                               bint update, f64 learning_rate) noexcept nogil:
        """Stripe s of the output layer's backward pass (after _forward):
        probs[:, lo:hi] becomes dY = P - onehot(targets); dby[lo:hi] = sum_t dY;
        this stripe's part of Why^T dY goes to dhs for stripe 0, to
        dh_parts[s - 1] for the others; dWhy[lo:hi] = dY^T hs[1:] (unclipped), or, if
        update, clipped and applied to Why[lo:hi] / mWhy[lo:hi] by Adagrad.
        Works in blocks of OUTPUT_BLOCK rows, so that each block of Why is
        read once from memory for all three uses, before it is updated."""
        cdef int H = self.hidden_size, V = self.vocab_size
        cdef int lo = self.stripe_lo(s), hi = self.stripe_lo(s + 1), n = hi - lo
        cdef int t, v, v0, rows, target
        cdef f64 *row
        cdef f64 *dby = &self.dby[lo]
        cdef f64 *dh = &self.dh_parts[s - 1, 0, 0] if s > 0 else &self.dhs[0, 0]
        cdef f64 scale
        for t in range(T):
            row = &self.probs[t, lo]
            scale = self.stripe_scale[s, t]
            for v in range(n):
                row[v] = row[v] * scale
            target = targets[t]
            if lo <= target < hi:
                row[target - lo] -= 1.0
        memset(dby, 0, n * sizeof(f64))
        for t in range(T):
            row = &self.probs[t, lo]
            for v in range(n):
                dby[v] += row[v]
        v0 = lo
        while v0 < hi:
            rows = OUTPUT_BLOCK if v0 + OUTPUT_BLOCK <= hi else hi - v0
            # dh (T, H) += dY[:, block] (T, rows) @ Why[block] (rows, H)
            gemm_rowmajor(b'N', b'N', T, H, rows, 1.0, &self.probs[0, v0], V,
                          &self.Why[v0, 0], H, 0.0 if v0 == lo else 1.0, dh, H)
            # dWhy[block] (rows, H) = dY[:, block]^T (rows, T) @ hs[1:] (T, H)
            gemm_rowmajor(b'T', b'N', rows, H, T, 1.0, &self.probs[0, v0], V,
                          &self.hs[1, 0], H, 0.0, &self.dWhy[v0, 0], H)
            if update:
                clip_adagrad(&self.Why[v0, 0], &self.dWhy[v0, 0], &self.mWhy[v0, 0],
                             rows * H, learning_rate)
            v0 += rows

    cdef void _output_backward(self, const i32 *targets, int T, bint update,
                               f64 learning_rate) noexcept nogil:
        """All stripes of the output layer's backward pass (see
        _stripe_backward), then dhs (T, H) = Why^T dY summed in stripe order."""
        cdef int H = self.hidden_size, S = self.n_stripes, s, t, i
        cdef int threads = self.stripe_threads()
        cdef f64 *dh
        cdef f64 *part
        if threads > 1:
            for s in prange(S, num_threads=threads, schedule='static', chunksize=1):
                self._stripe_backward(s, targets, T, update, learning_rate)
        else:
            for s in range(S):
                self._stripe_backward(s, targets, T, update, learning_rate)
        for s in range(1, S):
            for t in range(T):
                dh = &self.dhs[t, 0]
                part = &self.dh_parts[s - 1, t, 0]
                for i in range(H):
                    dh[i] = dh[i] + part[i]

    cdef void _hidden_backward(self, const i32 *inputs, int T) noexcept nogil:
        """BPTT through the recurrence (after _output_backward filled dhs with
        Why^T dY): writes the unclipped dWxh (present columns only, the others
        stay zero), dWhh and dbh. Overwrites dhs with dh_raw (T, H)."""
        cdef int H = self.hidden_size, V = self.vocab_size
        cdef int t, i, x, k
        cdef f64 *dh = &self.dhs[0, 0]
        cdef f64 *hs = &self.hs[0, 0]
        cdef f64 *dh_next = &self.dh_next[0]
        cdef f64 *dWxh = &self.dWxh[0, 0]
        cdef f64 *dbh = &self.dbh[0]
        cdef f64 *row
        cdef f64 *h_t
        cdef f64 d
        # the sequential part: dh_raw[t] = (1 - h_t^2) * (dhs[t] + Whh^T dh_raw[t+1])
        memset(dh_next, 0, H * sizeof(f64))
        for t in range(T - 1, -1, -1):
            row = dh + t * H
            h_t = hs + (t + 1) * H
            for i in range(H):
                d = row[i] + dh_next[i]
                row[i] = (1.0 - h_t[i] * h_t[i]) * d
            if t > 0:
                matvec_t(&self.Whh[0, 0], H, row, dh_next, H, H)
        # dbh = sum_t dh_raw[t]
        memset(dbh, 0, H * sizeof(f64))
        for t in range(T):
            row = dh + t * H
            for i in range(H):
                dbh[i] += row[i]
        # dWhh (H, H) = dh_raw^T (H, T) @ hs[:T] (T, H)
        gemm_rowmajor(b'T', b'N', H, H, T, 1.0, dh, H, hs, H,
                      0.0, &self.dWhh[0, 0], H)
        # dWxh: clear the previous chunk's columns, then scatter-add the columns
        # of the characters present in this chunk
        for k in range(self.n_present):
            x = self.present[k]
            for i in range(H):
                dWxh[i * V + x] = 0.0
        self.n_present = 0
        for t in range(T):
            x = inputs[t]
            if not self.seen[x]:
                self.seen[x] = 1
                self.present[self.n_present] = x
                self.n_present += 1
            row = dh + t * H
            for i in range(H):
                dWxh[i * V + x] += row[i]
        for k in range(self.n_present):
            self.seen[self.present[k]] = 0

    cdef void _clip(self) noexcept nogil:
        """Clip every gradient to [-5, 5] in place (dWxh: present columns)."""
        cdef int H = self.hidden_size, V = self.vocab_size, i, k
        cdef f64 *dWxh = &self.dWxh[0, 0]
        cdef f64 g
        for k in range(self.n_present):
            for i in range(H):
                g = dWxh[i * V + self.present[k]]
                dWxh[i * V + self.present[k]] = (
                    CLIP if g > CLIP else (-CLIP if g < -CLIP else g))
        clip_only(&self.dWhh[0, 0], H * H)
        clip_only(&self.dWhy[0, 0], V * H)
        clip_only(&self.dbh[0], H)
        clip_only(&self.dby[0], V)

    cdef void _clip_update(self, f64 learning_rate) noexcept nogil:
        """Clip every gradient but dWhy (see _stripe_backward) and apply
        Adagrad to params and memory in place; for Wxh only the present columns (the rest have zero gradient,
        which would change neither the parameter nor its memory)."""
        cdef int H = self.hidden_size, V = self.vocab_size, i, k, idx
        cdef f64 *Wxh = &self.Wxh[0, 0]
        cdef f64 *mWxh = &self.mWxh[0, 0]
        cdef f64 *dWxh = &self.dWxh[0, 0]
        cdef f64 g
        for k in range(self.n_present):
            for i in range(H):
                idx = i * V + self.present[k]
                g = dWxh[idx]
                g = CLIP if g > CLIP else (-CLIP if g < -CLIP else g)
                dWxh[idx] = g
                mWxh[idx] += g * g
                Wxh[idx] -= learning_rate * g / sqrt(mWxh[idx] + ADAGRAD_EPS)
        clip_adagrad(&self.Whh[0, 0], &self.dWhh[0, 0], &self.mWhh[0, 0],
                     H * H, learning_rate)
        clip_adagrad(&self.bh[0], &self.dbh[0], &self.mbh[0], H, learning_rate)
        clip_adagrad(&self.by[0], &self.dby[0], &self.mby[0], V, learning_rate)

    # -- Python entry points (arguments validated by charrnn_ext.model) ------

    def train_step(self, const i32[::1] inputs, const i32[::1] targets,
                   f64[::1] h, f64 learning_rate):
        """One fused step over a chunk of T ids: forward, BPTT, clipping,
        Adagrad. Updates params, memory, grads in place; h (H,) is replaced
        by the last hidden state. Returns the chunk's summed loss."""
        cdef int T = inputs.shape[0]
        cdef f64 loss
        self.reserve(T)
        with nogil:
            transpose(&self.Whh[0, 0], &self.WhhT[0, 0], self.hidden_size)
            loss = self._forward(&inputs[0], &targets[0], T, &h[0])
            self._output_backward(&targets[0], T, True, learning_rate)
            self._hidden_backward(&inputs[0], T)
            self._clip_update(learning_rate)
        return loss

    def loss_and_grads(self, const i32[::1] inputs, const i32[::1] targets,
                       f64[::1] h):
        """Forward and BPTT; clipped gradients are left in the grads arrays,
        params and memory are untouched. h (H,) is replaced by the last
        hidden state. Returns the summed loss."""
        cdef int T = inputs.shape[0]
        cdef f64 loss
        self.reserve(T)
        with nogil:
            transpose(&self.Whh[0, 0], &self.WhhT[0, 0], self.hidden_size)
            loss = self._forward(&inputs[0], &targets[0], T, &h[0])
            self._output_backward(&targets[0], T, False, 0.0)
            self._hidden_backward(&inputs[0], T)
            self._clip()
        return loss

    def loss(self, const i32[::1] inputs, const i32[::1] targets, f64[::1] h):
        """Forward-only summed loss over any number of steps (processed in
        blocks of LOSS_BLOCK steps); h (H,) becomes the last hidden state."""
        cdef Py_ssize_t n = inputs.shape[0], start = 0
        cdef int block
        cdef f64 loss = 0.0
        # fixed blocks, so the result does not depend on the buffers' history
        self.reserve(<int> min(n, LOSS_BLOCK))
        with nogil:
            transpose(&self.Whh[0, 0], &self.WhhT[0, 0], self.hidden_size)
            while start < n:
                block = <int> min(n - start, <Py_ssize_t> LOSS_BLOCK)
                loss += self._forward(&inputs[start], &targets[start], block, &h[0])
                start += block
        return loss

    def advance(self, const i32[::1] inputs, f64[::1] h):
        """Run the recurrence over inputs (n,) from h (H,), in place: h
        becomes the hidden state after the last input (used to prime
        sampling). No output layer is computed."""
        cdef int H = self.hidden_size, V = self.vocab_size, i, x
        cdef Py_ssize_t t, n = inputs.shape[0]
        cdef f64 *z = &self.dh_next[0]
        cdef const f64 *Wxh = &self.Wxh[0, 0]
        with nogil:
            transpose(&self.Whh[0, 0], &self.WhhT[0, 0], self.hidden_size)
            for t in range(n):
                matvec_t(&self.WhhT[0, 0], H, &h[0], z, H, H)
                x = inputs[t]
                for i in range(H):
                    h[i] = (Wxh[i * V + x] + z[i]) + self.bh[i]
                for i in range(H):
                    h[i] = vtanh(h[i])

    def sample(self, f64[::1] h, int seed_ix, const f64[::1] uniforms,
               f64 temperature, i32[::1] out):
        """Generate len(out) ids starting from input seed_ix and hidden state
        h (H,), which is advanced in place. For temperature > 0 id t is drawn
        from softmax(logits / temperature) by inverse CDF with uniforms[t]
        (as numpy's Generator.choice does); temperature == 0 takes the argmax.
        out (n,) is overwritten."""
        cdef int H = self.hidden_size, V = self.vocab_size
        cdef Py_ssize_t n = out.shape[0], t
        cdef int i, v, x = seed_ix, best
        cdef f64 *hv = &h[0]
        cdef f64 *z = &self.dh_next[0]
        cdef f64 *y = &self.logits[0]
        cdef const f64 *Wxh = &self.Wxh[0, 0]
        cdef f64[:, ::1] WhyT = np.ascontiguousarray(np.asarray(self.Why).T)  # (H, V)
        cdef f64 top, total, threshold, cumulative
        with nogil:
            transpose(&self.Whh[0, 0], &self.WhhT[0, 0], self.hidden_size)
            for t in range(n):
                matvec_t(&self.WhhT[0, 0], H, hv, z, H, H)
                for i in range(H):
                    hv[i] = (Wxh[i * V + x] + z[i]) + self.bh[i]
                for i in range(H):
                    hv[i] = vtanh(hv[i])
                # one thread: a parallel region per character would cost more than
                # it saves on a busy machine (a descheduled worker stalls every one)
                # in column blocks, so that each block of y stays in L1 while the
                # rows of WhyT stream past it (~10% faster at V = 3150)
                v = 0
                while v < V:
                    matvec_t(&WhyT[0, v], V, hv, y + v, H,
                             SAMPLE_BLOCK if v + SAMPLE_BLOCK <= V else V - v)
                    v += SAMPLE_BLOCK
                for v in range(V):
                    y[v] = y[v] + self.by[v]
                top = row_max(y, V)
                if temperature == 0.0:
                    best = 0
                    while y[best] != top and best < V - 1:
                        best += 1
                    x = best
                else:
                    for v in range(V):
                        y[v] = vexp((y[v] - top) / temperature)
                    total = row_sum(y, V)
                    # first index whose normalised cumulative sum exceeds u
                    threshold = uniforms[t] * total
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
                out[t] = x


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
# text <-> ids: one pass over the str's own buffer (1, 2 or 4 bytes per
# character), no intermediate copies
# ---------------------------------------------------------------------------

from cpython.unicode cimport (PyUnicode_1BYTE_KIND, PyUnicode_2BYTE_KIND,
                              PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND)
from libc.stdint cimport uint8_t, uint16_t, uint32_t


ctypedef fused code_unit:
    uint8_t
    uint16_t
    uint32_t


cdef inline void mark_units(const code_unit *data, Py_ssize_t n,
                            uint8_t *present) noexcept nogil:
    """present[c] = 1 for the n code points of one PEP 393 buffer."""
    cdef Py_ssize_t i
    for i in range(n):
        present[data[i]] = 1


cdef inline Py_ssize_t encode_units(const code_unit *data, Py_ssize_t n,
                                    const i32 *lookup, Py_ssize_t size,
                                    i32 *out) noexcept nogil:
    """out[i] = lookup[c_i] for the n code points of one PEP 393 buffer;
    returns the first index whose code point is unknown (-1 in lookup or
    beyond it), or -1."""
    cdef Py_ssize_t i
    cdef uint32_t c
    cdef i32 ix
    for i in range(n):
        c = data[i]
        ix = lookup[c] if c < size else -1
        if ix < 0:
            return i
        out[i] = ix
    return -1


def mark_code_points(str text, uint8_t[::1] present):
    """Set present[c] = 1 for every code point c of text; present has
    0x110000 entries (every Unicode code point)."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef const void *data = PyUnicode_DATA(text)
    if present.shape[0] < 0x110000:
        raise ValueError("present must have 0x110000 entries")
    with nogil:
        if kind == PyUnicode_1BYTE_KIND:
            mark_units(<const uint8_t *> data, n, &present[0])
        elif kind == PyUnicode_2BYTE_KIND:
            mark_units(<const uint16_t *> data, n, &present[0])
        else:
            mark_units(<const uint32_t *> data, n, &present[0])


def encode_text(str text, const i32[::1] lookup, i32[::1] out):
    """out (n,) = lookup[code point] for each character of text (n = len(text));
    lookup maps code points below len(lookup) to ids, -1 for unknown ones.
    Returns the index of the first unknown character, or -1."""
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), bad
    if out.shape[0] != n:
        raise ValueError("out must have one entry per character")
    if n == 0:
        return -1
    cdef int kind = PyUnicode_KIND(text)
    cdef const void *data = PyUnicode_DATA(text)
    cdef Py_ssize_t size = lookup.shape[0]
    with nogil:
        if kind == PyUnicode_1BYTE_KIND:
            bad = encode_units(<const uint8_t *> data, n, &lookup[0], size, &out[0])
        elif kind == PyUnicode_2BYTE_KIND:
            bad = encode_units(<const uint16_t *> data, n, &lookup[0], size, &out[0])
        else:
            bad = encode_units(<const uint32_t *> data, n, &lookup[0], size, &out[0])
    return bad
