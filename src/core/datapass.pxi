# min-char-rnn's data pass: where each training step's chunk comes from (DataPass, next_chunk).
#
# B streams each read their own part of `part` ids; a step trains on ids
# position .. position + T of every part (inputs, and targets one later),
# then position += T; a chunk that would not fit (chunk_wraps) sends the
# pass back to position 0 with zero hidden states. Chunks are copied
# time-major, (T + 1, B), and every id is checked against [0, V) as it is
# copied (the caller may hand a window of any integer array).

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
    i32 *chunk           # (T+1, B): where the pass copies its chunks
    const i32 *x         # the chunk: inputs (T, B)
    const i32 *y         # and targets (T, B)


cdef inline bint chunk_wraps(Py_ssize_t position, Py_ssize_t part, int T) noexcept nogil:
    """min-char-rnn's rule (`if p+seq_length+1 >= len(data)`): a chunk of T
    steps cannot start at position of a part of this length, so the data pass
    goes back to its start with a zero hidden state. (Written so that no
    position overflows.)"""
    return position >= part - T - 1


def wraps(Py_ssize_t position, Py_ssize_t part, int T):
    """chunk_wraps for Python: the rule train applies before each step."""
    return chunk_wraps(position, part, T)


cdef bint next_chunk(DataPass *d, int T, int B, int V, real *h, int H) noexcept nogil:
    """The next chunk into d.x, d.y ((T, B) ids): min-char-rnn's data pass
    over d.data (zeroing h (B, H) and going back to the start when
    chunk_wraps), or the given chunk if d.data is NULL. False (and d.bad
    set) if the chunk holds an id outside [0, V) or lies outside the window."""
    cdef int t, b
    cdef Py_ssize_t at, column
    cdef i32 id_
    if d.data == NULL:
        return True
    if chunk_wraps(d.position, d.part, T):
        memset(h, 0, <Py_ssize_t> B * H * sizeof(real))
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
            d.chunk[t * B + b] = id_
    d.x, d.y = d.chunk, d.chunk + B
    return True
