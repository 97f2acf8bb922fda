/* Round trip of a flag handed between two threads: how far apart two CPUs
 * are (benchmarks/README.md, issue 10). The pipelined training step hands
 * hidden states and their gradients between two threads every step; where
 * the two CPUs share no cache (here ~400 ns a round trip, against 70-150 ns
 * where they do) that costs about what running the output layer beside the
 * recurrence saves.
 *
 *     cc -O2 -pthread benchmarks/pingpong.c -o pingpong && ./pingpong
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

enum { ROUNDS = 200000 };
static _Atomic long flag;

static void *pong(void *arg) {
    (void) arg;
    for (long i = 0; i < ROUNDS; i++) {
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&flag, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(void) {
    pthread_t other;
    struct timespec t0, t1;
    pthread_create(&other, NULL, pong, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < ROUNDS; i++) {
        atomic_store_explicit(&flag, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&flag, memory_order_acquire) != 2 * i + 2)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(other, NULL);
    printf("round trip %.1f ns\n",
           ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / ROUNDS);
    return 0;
}
