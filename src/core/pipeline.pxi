# The pipelined steps: recurrence on one thread, output layer on the other, through a Sync.
#
# For a small output layer (one stripe) and few streams (pipelined()). A
# step's parts, each the model's own kernels:
#   recurrence_forward  rnn_forward over the chunk, raising forward_steps per time step
#   output_layer        per group of PIPELINE_GROUP_STEPS time steps, once
#                       forward_steps has passed it: output_group (logits from
#                       WhyT, softmax, loss, dY, dh = dY Why); raises groups;
#                       then output_weight_grads with the update of Why and by;
#                       raises outputs_done
#   recurrence_backward once every group is done: model_rnn_backward (dWhh in
#                       one piece) and model_update (Wxh, Whh, bh)
# The first thread (pipeline_recurrence: the data pass and the recurrence)
# runs its parts for every step; the output layer of a step goes to whichever
# thread claims it first (outputs_claimed): normally the second
# (pipeline_output), which waits for it, so that a group's output layer runs
# while the recurrence goes on, and Why's update while the backward chain
# runs; the first takes it when it finds it unclaimed after its forward
# recurrence (the second thread not started yet, or off the CPU on a busy
# machine), and never waits for a thread that is not running unless that
# thread holds a claim. On one thread, pipeline_recurrence alone claims every
# step. Whh's update stays with the recurrence (split over both threads it
# was slower where the cores share no cache; benchmarks/README.md).
#
# Invariant: each product is computed by the same kernel in the same order
# whichever thread runs it, and the parts of a step touch disjoint outputs
# (the output layer reads Why before its own update; the recurrence never
# reads Why), so results are the same bit for bit on one thread or two.

cdef struct Sync:
    # the counters the two threads hand a call's steps over with; each only
    # grows within a call (release on raise, acquire on wait)
    counter forward_steps    # time steps made by the forward recurrences, over all steps
    counter groups           # output groups done (their rows of dhs are there), over all steps
    counter outputs_done     # steps whose output layer is finished: loss known, hs,
                             # probs and the chunk free again
    counter steps_started    # steps whose forward recurrence may start
    counter no_more_steps    # 1 once no further step will start
    counter outputs_claimed  # steps whose output layer a thread has claimed


cdef inline long long group_count(int T) noexcept nogil:
    """Output groups per step of T time steps."""
    return (T + PIPELINE_GROUP_STEPS - 1) // PIPELINE_GROUP_STEPS


cdef void recurrence_forward(Model *m, const i32 *x, int T, int B, real *h, Sync *s,
                             long long base) noexcept nogil:
    """hs (T+1, B, H) from hs[0] = h; h becomes hs[T]; forward_steps = base + t
    once hs[t] is there."""
    cdef Py_ssize_t block = <Py_ssize_t> B * m.H
    memcpy(m.hs, h, block * sizeof(real))
    rnn_forward(m.hs, x, T, B, m.table, m.WhhT, m.params.bh, m.H, m.V, 1,
                &s.forward_steps, base)
    memcpy(h, m.hs + T * block, block * sizeof(real))


cdef real output_groups(Model *m, const i32 *y, int T, int B, Sync *s,
                       long long base_steps, long long base_groups) noexcept nogil:
    """The output layer group by group, each once the recurrence has made its
    states (output_group: dY in probs, dh in dhs); groups = base_groups + g
    after group g. Returns the summed loss, added group by group."""
    cdef int G = PIPELINE_GROUP_STEPS, H = m.H, V = m.V
    cdef int g = 0, t0 = 0, t1, r0, n
    cdef real loss = 0.0
    while t0 < T:
        t1 = t0 + G if t0 + G < T else T
        counter_wait(&s.forward_steps, <long long> (base_steps + t1))
        r0, n = t0 * B, (t1 - t0) * B
        loss += output_group(m.probs + <Py_ssize_t> r0 * V, m.dhs + <Py_ssize_t> r0 * H,
                             m.stripe_max + r0, m.stripe_sum + r0, m.scale + r0,
                             m.target_logit + r0, m.hs + <Py_ssize_t> (B + r0) * H, y + r0,
                             m.WhyT, m.params.Why, m.params.by, n, H, V, 1.0 / B)
        g += 1
        counter_set(&s.groups, <long long> (base_groups + g))
        t0 = t1
    return loss


cdef void output_layer(Model *m, DataPass *d, int T, int B, Update u, real *losses, Sync *s,
                       Py_ssize_t k) noexcept nogil:
    """Step k's output layer: output_groups (losses[k] = the mean over
    streams), then dWhy, dby, clipped, and Adagrad of Why, by; then
    outputs_done = k + 1."""
    cdef int H = m.H, V = m.V
    transpose(m.WhyT, m.params.Why, V, H)
    losses[k] = output_groups(m, d.y, T, B, s, k * T, k * group_count(T)) / B
    output_weight_grads(NULL, m.grads.Why, m.grads.by, m.probs, m.hs + <Py_ssize_t> B * H,
                        m.params.Why, m.memory.Why, m.params.by, m.memory.by, 0, V, T * B,
                        H, V, &u)
    counter_set(&s.outputs_done, <long long> (k + 1))


cdef void recurrence_backward(Model *m, const i32 *x, int T, int B, Update u, Sync *s,
                              long long groups) noexcept nogil:
    """Once groups reaches `groups` (every dh is in dhs): the RNN layer's
    backward (dWhh in one piece) and update."""
    counter_wait(&s.groups, groups)
    model_rnn_backward(m, x, T, B, 1, 1)
    model_update(m, &u)


cdef Py_ssize_t pipeline_recurrence(Model *m, DataPass *d, int T, int B, real *h, Update u,
                                    real *losses, Py_ssize_t n, Sync *s) noexcept nogil:
    """The first thread's side (or the only thread's): the data pass and the
    recurrence of up to n steps, and the output layer of every step it finds
    unclaimed. Returns the number of steps done (as model_train)."""
    cdef Py_ssize_t k = 0
    while k < n:
        if k > 0:
            # step k-1's output layer is done: hs, the chunk and probs are free
            # again, and its loss is known
            counter_wait(&s.outputs_done, <long long> k)
            if not finite(losses[k - 1]):
                break
        if not next_chunk(d, T, B, m.V, h, m.H):
            break
        transpose(m.WhhT, m.params.Whh, m.H, m.H)
        counter_set(&s.steps_started, <long long> (k + 1))        # step k may start
        recurrence_forward(m, d.x, T, B, h, s, k * T)
        if counter_claim(&s.outputs_claimed, <long long> k, <long long> (k + 1)):
            # the other thread has not taken this step's output layer (it is
            # asleep, off the CPU, or not there): this one does it
            output_layer(m, d, T, B, u, losses, s, k)
        recurrence_backward(m, d.x, T, B, u, s, (k + 1) * group_count(T))
        d.position += T
        k += 1
    counter_set(&s.no_more_steps, 1)
    counter_wait(&s.outputs_done, <long long> k)                    # the last step is done
    return k


cdef void pipeline_output(Model *m, DataPass *d, int T, int B, Update u, real *losses,
                          Sync *s) noexcept nogil:
    """The second thread's side: the output layer of every started step that
    it claims first, until no further step will start."""
    cdef Py_ssize_t k = 0
    while True:
        if not counter_wait_or(&s.steps_started, <long long> (k + 1), &s.no_more_steps):
            break
        if counter_claim(&s.outputs_claimed, <long long> k, <long long> (k + 1)):
            output_layer(m, d, T, B, u, losses, s, k)
        k += 1


cdef Py_ssize_t pipeline_train(Model *m, DataPass *d, int T, int B, real *h, Update u,
                               real *losses, Py_ssize_t n, int threads) noexcept nogil:
    """model_train's steps pipelined, on two threads (one if threads < 2 or
    the runtime gives only one)."""
    cdef Sync sync
    cdef Py_ssize_t done[1]
    cdef int role
    sync.forward_steps = sync.groups = sync.outputs_done = 0
    sync.steps_started = sync.no_more_steps = sync.outputs_claimed = 0
    done[0] = 0
    if threads >= 2:
        with parallel(num_threads=2):
            role = threadid()
            if omp_team_size() < 2:       # the runtime gave one thread after all
                done[0] = pipeline_recurrence(m, d, T, B, h, u, losses, n, &sync)
            elif role == 0:
                done[0] = pipeline_recurrence(m, d, T, B, h, u, losses, n, &sync)
            elif role == 1:
                pipeline_output(m, d, T, B, u, losses, &sync)
    else:
        done[0] = pipeline_recurrence(m, d, T, B, h, u, losses, n, &sync)
    return done[0]
