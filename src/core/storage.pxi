# Python-facing buffers and id helpers: Storage, first_invalid_id, scan_ids, copy_window.
#
# Called by charrnn_ext.model with the GIL held; nothing here computes the
# model. The id helpers read any integer array (the fused id_t) with the GIL
# held throughout, so no other Python thread can change, resize or free it
# meanwhile, and hand the core its own checked int32 copy.

cdef class Storage:
    """Zeroed memory of n reals (REAL: float64, or float32 in _core32) of a
    fixed size, freed only with this object.

    The model's parameters, Adagrad memory and gradients live here (see
    charrnn_ext.model._storage): numpy arrays over it cannot resize it, and
    releasing a memoryview of it from Python drops a reference, never the
    memory, which the model keeps referenced; so no Python operation on the
    arrays handed out can move or free what the kernels point to."""
    cdef real *data
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __cinit__(self, Py_ssize_t n):
        if n < 0:
            raise ValueError("negative size")
        self.data = <real *> PyMem_Calloc(n if n > 0 else 1, sizeof(real))
        if self.data == NULL:
            raise MemoryError()
        self.shape[0] = n
        self.strides[0] = sizeof(real)

    def __dealloc__(self):
        PyMem_Free(self.data)

    def __getbuffer__(self, Py_buffer *view, int flags):
        view.buf = <void *> self.data
        view.obj = self
        view.len = self.shape[0] * sizeof(real)
        view.readonly = 0
        view.itemsize = sizeof(real)
        view.format = REAL_FORMAT
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


# -- the ids TanhWorkspace.train reads ----------------------------------------------

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
    as -1 (TanhWorkspace.train stops at it if it reads it). Raises ValueError if
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
