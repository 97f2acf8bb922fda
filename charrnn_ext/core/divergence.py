"""When a training run has diverged: the one rule, read against the loss of a uniform guess; and TrainingDiverged, a step's non-finite loss."""
from __future__ import annotations

import math

import numpy as np

# Over the last FAST_STEPS steps, a mean loss above FAST_FACTOR times that of a
# uniform guess is a run blowing up; over the last SLOW_STEPS steps, a mean
# loss above it at all is a run that learns nothing. (Measured in
# benchmarks/README.md, "Divergence": healthy runs stay below 1.61 times over
# any 100 steps and fall below 1 within a few hundred steps; min-char-rnn at
# learning rate 0.1 with hidden size 200 on a 3,150-symbol text reaches 2.24.)
FAST_STEPS, FAST_FACTOR = 100, 2.0
SLOW_STEPS, SLOW_FACTOR = 1000, 1.0


def lower_rate(rate: float) -> float:
    """The learning rate to suggest after a run at ``rate`` diverged: the
    largest round number (1, 2 or 5 times a power of ten) at most a tenth
    of it (1e6 -> 1e5, 0.1 -> 0.01, 0.003 -> 0.0002)."""
    tenth = rate / 10.0
    if not (math.isfinite(tenth) and tenth >= 1e-300):   # nothing rounder to say
        return rate
    power = math.floor(math.log10(tenth))
    for mantissa in (5, 2, 1, 0.5):   # (0.5: log10 rounded up)
        suggestion = float(f"{mantissa}e{power}")   # the decimal itself: no 0.30000000000000004
        if suggestion <= tenth * (1 + 1e-12):
            return suggestion
    return tenth


def suggested_rate(rate: float, usual: float) -> float:
    """The learning rate to suggest after a run at ``rate`` diverged:
    lower_rate(rate), or ``usual`` (its recipe's) when that is lower still (a
    rate far above the usual one diverges at a tenth of itself too)."""
    return min(lower_rate(rate), usual)


class Divergence:
    """Watches a run's per-step losses (nats per chunk; a uniform guess
    scores ``uniform_loss``) for the first step at which the run diverged:
    a NaN or infinite loss, a step whose update left the parameters
    infinite or NaN (any cell, either dtype: the same rule), or a window of
    losses whose mean is above its bound (FAST_*, SLOW_*)."""

    def __init__(self, uniform_loss: float):
        self.uniform_loss = float(uniform_loss)
        self._recent = np.zeros(0)   # the last SLOW_STEPS losses seen

    def add(self, losses, params_finite: bool = True) -> tuple[int, str | None]:
        """(k, why): the run diverged at the k-th of ``losses`` (k counts it),
        for the reason ``why``; (len(losses), None) if it did not.
        ``params_finite``: whether the parameters are finite after the last of
        them (a step on non-finite parameters has a NaN loss, so when the
        losses are finite and the parameters are not, the last step's update
        overflowed)."""
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        n, first = losses.size, losses.size
        why = None
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            first, why = int(bad[0]), f"the loss became {losses[bad[0]]}"
        elif not params_finite and n:
            first, why = n - 1, "its update made the parameters infinite or NaN"
        recent = np.concatenate([self._recent, losses[:first]])
        for steps, factor in ((FAST_STEPS, FAST_FACTOR), (SLOW_STEPS, SLOW_FACTOR)):
            if recent.size < steps:
                continue
            sums = np.cumsum(np.concatenate([[0.0], recent]))
            means = (sums[steps:] - sums[:-steps]) / steps   # windows ending at each loss
            means = means[-min(first, means.size):] if first else means[:0]
            over = np.flatnonzero(means > factor * self.uniform_loss)
            if over.size:   # the window ends at losses[j]
                j = first - means.size + int(over[0])
                if j < first:
                    first = j
                    why = (f"the mean loss of the last {steps} steps was "
                           f"{means[over[0]] / self.uniform_loss:.3g} times that of a uniform "
                           f"guess ({self.uniform_loss:.1f} nats per chunk; the limit is "
                           f"{factor:g})")
        self._recent = recent[-SLOW_STEPS:] if why is None else recent[:0]
        return (n if why is None else first + 1), why

    @property
    def suspect(self) -> bool:
        """The last FAST_STEPS losses' mean is above a uniform guess's loss:
        no periodic checkpoint should replace a good one now."""
        tail = self._recent[-FAST_STEPS:]
        return bool(tail.size) and float(tail.mean()) > self.uniform_loss


class TrainingDiverged(FloatingPointError):
    """A training step's loss was NaN or infinite (CharRNN.train, train_step).

    The core applies a step's update in the same pass that computes its loss,
    so when this is raised the steps of the call up to and including the
    diverged one have been applied: the parameters are then usually no
    longer finite, and the model's later calls refuse them (ValueError)
    until they are replaced. Attributes, the call's results up to there:

    losses    the loss of each step the call ran, the non-finite one last
              (train_step: an array of its one loss)
    hidden    the hidden states after the diverged step, shaped as the call
              returns them
    position  train: the position of the next step, as train returns it;
              train_step: None
    """

    def __init__(self, message: str, losses, hidden, position=None):
        super().__init__(message)
        self.losses, self.hidden, self.position = losses, hidden, position

    def __reduce__(self):   # picklable (e.g. from a worker process)
        return type(self), (str(self), self.losses, self.hidden, self.position)
