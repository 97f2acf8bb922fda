# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Text <-> ids for charrnn_ext.vocab: one pass over a str's own PEP 393
buffer (1, 2 or 4 bytes per character), no intermediate copies.

Built once (no instruction-set variants): it is a memory-bound scan.
"""
from cpython.unicode cimport (PyUnicode_1BYTE_KIND, PyUnicode_2BYTE_KIND,
                              PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND)
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t


ctypedef fused code_unit:
    uint8_t
    uint16_t
    uint32_t


cdef inline void mark_units(const code_unit *data, Py_ssize_t n,
                            uint8_t *present) noexcept nogil:
    """present[c] = 1 for the n code points c of one PEP 393 buffer."""
    cdef Py_ssize_t i
    for i in range(n):
        present[data[i]] = 1


cdef inline Py_ssize_t encode_units(const code_unit *data, Py_ssize_t n,
                                    const int32_t *lookup, Py_ssize_t size,
                                    int32_t *out) noexcept nogil:
    """out (n,) = lookup[c_i] for the n code points of one PEP 393 buffer,
    lookup (size,); returns the first index whose code point is unknown (-1
    in lookup, or beyond it), or -1."""
    cdef Py_ssize_t i
    cdef uint32_t c
    cdef int32_t ix
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


def encode_text(str text, const int32_t[::1] lookup, int32_t[::1] out):
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
