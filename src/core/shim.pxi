# The OpenMP and atomic shim: thread counts, release/acquire counters, waiting; f64 and i32.
#
# C, so that one source serves GCC, Clang and MSVC, with or without OpenMP.
# A counter is a 64-bit integer one thread raises (release) and another
# waits on (acquire); the pipeline (pipeline.pxi) hands its steps over
# through them. Nothing here computes.

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
