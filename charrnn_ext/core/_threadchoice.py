"""Which way a model's training calls run faster, on the core's threads or on one: measured as they run."""
from __future__ import annotations

from ..defaults import CALL_SECONDS


def steps_per_call(steps: int, seconds: float) -> int:
    """Steps that take about CALL_SECONDS, at the rate of ``steps`` in ``seconds``."""
    return max(1, int(steps / max(seconds, 1e-9) * CALL_SECONDS))


class _ThreadChoice:
    """How many threads a model's training calls use: all the core may use
    (charrnn_ext.set_num_threads) or one, whichever trained faster lately.

    Both give the same results bit for bit; which is faster depends on the
    machine: on a busy one a step split over two threads waits for whichever
    of them the scheduler runs last, and ran several times slower than on
    one thread (benchmarks/bench_busy.py); where the two cores share no cache
    the split gains little. So both ways are timed as training goes, in
    samples of at least SAMPLE_SECONDS (the first call each way, which starts
    threads, is not counted); a way's speed is the best of its last RECENT
    samples (one slow sample is noise; RECENT slow ones are load).
    WARMUP_SAMPLES of each way in turn, then the faster way -- more threads
    only if faster by 1 - MARGIN: where they gain little, one thread leaves a
    CPU to others and is the steadier under load -- with one sample of the
    other way (train: on a short call) after a growing stretch of training:
    FIRST_PROBE_SECONDS, doubling up to PROBE_SECONDS."""

    SAMPLE_SECONDS = 0.004      # a measurement: at least this long
    RECENT = 3                  # a way's speed: the best of its last RECENT samples
    WARMUP_SAMPLES = 2          # samples of each way before choosing
    FIRST_PROBE_SECONDS = 0.05  # training time before the first look at the other way
    PROBE_SECONDS = 1.0         # the longest stretch between two looks
    MARGIN = 0.9                # more threads when below MARGIN x one thread's time

    def __init__(self):
        self.available = None   # the thread count the estimates are for
        self.reset(None)

    def reset(self, available) -> None:
        self.available = available
        self.recent = {}        # threads -> seconds per step of the last samples
        self.started = set()    # the ways that have run once (not counted)
        self.mode, self.probing = available, False
        self.sample_time = self.sample_steps = 0.0
        self.since_probe, self.probe_every = 0.0, self.FIRST_PROBE_SECONDS

    @property
    def seconds(self) -> dict:
        """threads -> the estimated seconds per step."""
        return {n: min(v) for n, v in self.recent.items()}

    def pick(self, available: int) -> int:
        """Threads for the next call (1 <= threads <= available)."""
        if available < 2:
            return 1
        if available != self.available:          # first call, or new thread settings
            self.reset(available)
        if self.sample_steps == 0 and not self.probing:   # between samples: choose
            n_many = len(self.recent.get(available, ()))
            n_one = len(self.recent.get(1, ()))
            if min(n_many, n_one) < self.WARMUP_SAMPLES:
                self.mode = available if n_many <= n_one else 1
                self.since_probe = 0.0
            else:
                seconds = self.seconds
                fast = seconds[available] < self.MARGIN * seconds[1]
                best = available if fast else 1
                self.mode = best
                if self.since_probe >= self.probe_every:
                    self.mode, self.probing = (available if best == 1 else 1), True
                    self.since_probe = 0.0
                    self.probe_every = min(2 * self.probe_every, self.PROBE_SECONDS)
        return self.mode

    def record(self, threads: int, seconds: float, steps: int) -> None:
        """A call of ``steps`` steps on ``threads`` threads took ``seconds``."""
        self.since_probe += seconds
        if threads not in self.started:
            self.started.add(threads)
            return
        if threads != self.mode or steps <= 0:
            return
        self.sample_time += seconds
        self.sample_steps += steps
        if self.sample_time >= self.SAMPLE_SECONDS:
            last = self.recent.setdefault(threads, [])
            last.append(self.sample_time / self.sample_steps)
            del last[:-self.RECENT]
            self.sample_time = self.sample_steps = 0.0
            if self.probing:          # the stretch to the next look starts now
                self.probing, self.since_probe = False, 0.0

    def short_call(self, block: int) -> int:
        """Steps for the next call of train: a probe's sample is short."""
        if not self.probing or block <= 1:
            return block
        left = self.SAMPLE_SECONDS - self.sample_time
        rate = block / 0.1 if self.sample_steps == 0 else self.sample_steps / max(self.sample_time, 1e-9)
        return max(1, min(block, int(rate * left) + 1))
