# The update: each gradient clipped to [-bound, bound], then Adagrad, Adam or RMSprop, in place.
#
#     g = min(max(g, -bound), bound)
#     Adagrad (min-char-rnn):  mem += g * g;  param -= learning_rate * g / sqrt(mem + eps)
#     Adam (PyTorch's torch.optim.Adam, at step t = 1, 2, ...):
#         mom = beta1 * mom + (1 - beta1) * g;  mem = beta2 * mem + (1 - beta2) * g * g
#         param -= (learning_rate / (1 - beta1^t)) * mom / (sqrt(mem) / sqrt(1 - beta2^t) + eps)
#     RMSprop (PyTorch's torch.optim.RMSprop: no momentum, not centered):
#         mem = alpha * mem + (1 - alpha) * g * g;  param -= learning_rate * g / (sqrt(mem) + eps)
#
# Elementwise, so the order in which parameters (or blocks of one) are
# updated never changes a result. The *_columns forms touch only the columns
# of Wxh whose ids were in the chunk: exact for Adagrad, since a zero
# gradient changes neither a parameter nor its memory (not for Adam, whose
# momentum moves a parameter on, nor RMSprop, whose memory decays: they
# update every column; sparse_update says which).
#
# The optimizers' names, slots and constants are charrnn_ext.optimizers'
# table; here each is an enum, dispatched on once (clip_update), and named
# in OPTIMIZER_CODES (the workspaces validate a name there, optimizer_code).

cdef enum:
    ADAGRAD = 0
    ADAM = 1
    RMSPROP = 2

# the enum by name; the optimizers with a first moment (the workspaces' moment arrays)
OPTIMIZER_CODES = {"adagrad": ADAGRAD, "adam": ADAM, "rmsprop": RMSPROP}
WITH_MOMENT = ("adam",)


cdef int optimizer_code(str optimizer, object moment) except -1:
    """optimizer's enum, checked against moment (an array for Adam, else None)."""
    if optimizer not in OPTIMIZER_CODES or (moment is None) == (optimizer in WITH_MOMENT):
        raise ValueError(f"optimizer must be one of {', '.join(map(repr, OPTIMIZER_CODES))}, "
                         f"with a moment for {' and '.join(map(repr, WITH_MOMENT))} only")
    return OPTIMIZER_CODES[optimizer]


cdef inline bint sparse_update(int optimizer) noexcept nogil:
    """A zero gradient changes neither a parameter nor its state (Adagrad):
    the update may skip it (model.pxi's columns, fused and pipelined paths)."""
    return optimizer == ADAGRAD


cdef struct Update:
    int optimizer          # ADAGRAD, ADAM or RMSPROP
    real learning_rate
    real clip_bound
    real eps                # the optimizer's epsilon
    real beta1, beta2       # Adam's decay rates
    real alpha              # RMSprop's decay rate
    real step_size          # Adam at step t: learning_rate / (1 - beta1^t) (adam_at)
    real root_correction    # Adam at step t: sqrt(1 - beta2^t)


cdef inline Update update_of(int optimizer, real learning_rate, real clip_bound, real eps,
                             real beta1, real beta2, real alpha) noexcept nogil:
    """An Update of these hyperparameters (Adam's corrections: next_update's)."""
    cdef Update u
    u.optimizer, u.learning_rate, u.clip_bound, u.eps = optimizer, learning_rate, clip_bound, eps
    u.beta1, u.beta2, u.alpha = beta1, beta2, alpha
    u.step_size, u.root_correction = learning_rate, 1.0
    return u


cdef inline Update adam_at(Update u, long long t) noexcept nogil:
    """u with Adam's bias corrections for step t >= 1."""
    u.step_size = u.learning_rate / (1.0 - pow(u.beta1, <real> t))
    u.root_correction = sqrt(1.0 - pow(u.beta2, <real> t))
    return u


cdef inline Update next_update(const Update *u, long long *steps) noexcept nogil:
    """The update of the next step: Adam counts it in steps (its bias
    corrections are for the new count); the others take u as it is."""
    if u.optimizer == ADAM:
        steps[0] += 1
        return adam_at(u[0], steps[0])
    return u[0]


cdef inline real clipped(real g, real bound) noexcept nogil:
    """g limited to [-bound, bound]."""
    return bound if g > bound else (-bound if g < -bound else g)


cdef inline void adagrad_element(real *param, real *mem, real g, real learning_rate,
                                 real eps) noexcept nogil:
    """mem += g^2; param -= learning_rate * g / sqrt(mem + eps)."""
    mem[0] += g * g
    param[0] -= learning_rate * g / sqrt(mem[0] + eps)


cdef void clip(real *grad, Py_ssize_t n, real bound) noexcept nogil:
    """grad (n,) limited to [-bound, bound] in place."""
    cdef Py_ssize_t i
    for i in range(n):
        grad[i] = clipped(grad[i], bound)


cdef void adagrad(real *param, real *mem, const real *grad, Py_ssize_t n,
                  real learning_rate, real eps) noexcept nogil:
    """Adagrad on param, mem (n,) in place with the gradient grad (n,)."""
    cdef Py_ssize_t i
    for i in range(n):
        adagrad_element(&param[i], &mem[i], grad[i], learning_rate, eps)


cdef inline void clip_adagrad(real *param, real *mem, real *grad, Py_ssize_t n,
                              const Update *u) noexcept nogil:
    """grad (n,) clipped in place, then Adagrad on param, mem (n,) with it."""
    clip(grad, n, u.clip_bound)
    adagrad(param, mem, grad, n, u.learning_rate, u.eps)


cdef void clip_columns(real *grad, const i32 *columns, int n_columns, int rows,
                       int cols, real bound) noexcept nogil:
    """clip on the columns columns[:n_columns] of grad (rows, cols)."""
    cdef int k, i
    cdef Py_ssize_t at
    for k in range(n_columns):
        for i in range(rows):
            at = <Py_ssize_t> i * cols + columns[k]
            grad[at] = clipped(grad[at], bound)


cdef void adagrad_columns(real *param, real *mem, const real *grad, const i32 *columns,
                          int n_columns, int rows, int cols, real learning_rate,
                          real eps) noexcept nogil:
    """adagrad on the columns columns[:n_columns] of param, mem, grad (rows, cols)
    (exact for a gradient that is zero elsewhere: a zero gradient changes
    neither a parameter nor its memory)."""
    cdef int k, i
    cdef Py_ssize_t at
    for k in range(n_columns):
        for i in range(rows):
            at = <Py_ssize_t> i * cols + columns[k]
            adagrad_element(&param[at], &mem[at], grad[at], learning_rate, eps)


cdef void adam(real *param, real *mom, real *mem, const real *grad, Py_ssize_t n,
               const Update *u) noexcept nogil:
    """Adam on param, mom (first moment), mem (second moment) (n,) in place
    with the gradient grad (n,), at the step u's corrections are for."""
    cdef Py_ssize_t i
    cdef real g, b1 = u.beta1, b2 = u.beta2, step = u.step_size, root = u.root_correction
    cdef real eps = u.eps
    for i in range(n):
        g = grad[i]
        mom[i] = b1 * mom[i] + (1.0 - b1) * g
        mem[i] = b2 * mem[i] + (1.0 - b2) * (g * g)
        param[i] -= step * mom[i] / (sqrt(mem[i]) / root + eps)


cdef void rmsprop(real *param, real *mem, const real *grad, Py_ssize_t n,
                  const Update *u) noexcept nogil:
    """RMSprop on param, mem (the mean square) (n,) in place with the gradient grad (n,)."""
    cdef Py_ssize_t i
    cdef real g, alpha = u.alpha, lr = u.learning_rate, eps = u.eps
    for i in range(n):
        g = grad[i]
        mem[i] = alpha * mem[i] + (1.0 - alpha) * (g * g)
        param[i] -= lr * g / (sqrt(mem[i]) + eps)


cdef void clip_update(real *param, real *mom, real *mem, real *grad, Py_ssize_t n,
                      const Update *u) noexcept nogil:
    """grad (n,) clipped in place, then u's optimizer on param, its state mem
    (and mom, Adam's; NULL for the others) (n,) with it; Adam's corrections
    from next_update. The one dispatch on the optimizer."""
    clip(grad, n, u.clip_bound)
    if u.optimizer == ADAM:
        adam(param, mom, mem, grad, n, u)
    elif u.optimizer == RMSPROP:
        rmsprop(param, mem, grad, n, u)
    else:
        adagrad(param, mem, grad, n, u.learning_rate, u.eps)
