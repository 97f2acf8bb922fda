# The update: each gradient clipped to [-bound, bound], then Adagrad, in place.
#
#     g = min(max(g, -bound), bound)
#     mem += g * g;  param -= learning_rate * g / sqrt(mem + eps)
#
# Elementwise, so the order in which parameters (or blocks of one) are
# updated never changes a result. The *_columns forms touch only the columns
# of Wxh whose ids were in the chunk: exact, since a zero gradient changes
# neither a parameter nor its memory.

cdef struct Update:
    f64 learning_rate
    f64 clip_bound
    f64 eps       # Adagrad's epsilon


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


cdef inline void clip_adagrad(f64 *param, f64 *mem, f64 *grad, Py_ssize_t n,
                              const Update *u) noexcept nogil:
    """grad (n,) clipped in place, then Adagrad on param, mem (n,) with it."""
    clip(grad, n, u.clip_bound)
    adagrad(param, mem, grad, n, u.learning_rate, u.eps)


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
