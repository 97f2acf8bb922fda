# The core's global knobs: block sizes, size thresholds, the thread count, and their Python face.
#
# Every size below fixes how work is cut (never the thread count), so results
# do not depend on how many threads run it. Why each has its value, measured:
# benchmarks/README.md.

cdef int LOSS_BLOCK = 256     # rows (steps x streams) per block of the forward-only loss
cdef int GEMM_MIN_STREAMS = 16  # the recurrence of this many streams or more runs on matmul_blocked
cdef int GROUP_MIN_STREAMS = 16  # streams per group of the recurrence, at least (stream_groups)
cdef int OUTPUT_BLOCK = 128   # rows of Why per block of output_backward
cdef int SAMPLE_BLOCK = 512   # columns of Why^T per block of output_step
cdef int PIPELINE_GROUP_STEPS = 4  # time steps per group of the pipelined steps' products
cdef Py_ssize_t PIPELINE_MAX_OUTPUT = 65536   # V * H up to this: the steps run pipelined
# The output layer (the V rows of Why and by) is split into a fixed number of
# stripes of rows, which threads may share out. The split depends only on the
# layer's size, never on the thread count.
cdef int MAX_STRIPES = 4
cdef Py_ssize_t STRIPE_MIN_ELEMENTS = 131072   # V * H below this: one stripe, no threads
# The recurrence's products of many streams, and dWhh, are cut the same
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
    operations (1: before the pipelined steps; 2: from them on; 3: the
    recurrence of many streams in groups, a one-stripe output layer in rows; 4: the gated
    cells' recurrence on the core's blocked kernel over packed panels; 5, the
    float32 build only: exp and tanh in float). Checkpoints record it with the
    variant, since resuming is bit-identical only on the same build and
    revision."""
    return KERNEL_REVISION


def has_openmp():
    """Whether this build of the core was compiled with OpenMP."""
    return bool(CHARRNN_EXT_OPENMP)


def gemm_min_streams():
    """From this many streams on, the recurrence is matmul_blocked per step
    (below, matmul_rows; one stream, matvec_t)."""
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
    """Steps per block of TanhWorkspace.loss for this many streams (>= 1)."""
    return max(1, LOSS_BLOCK // streams)
