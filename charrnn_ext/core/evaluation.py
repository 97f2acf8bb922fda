"""Bits per character measured the way the model runs: the data pass continued, frozen.

min-char-rnn carries the hidden state from chunk to chunk and resets it only
at the end of the text, so a trained model has rarely seen a zero state, and
its state is only meaningful for the text that comes right after it: a
state carried to position p has read the text before p, in order. Run from
a zero state, or from a state moved to another place in the text, a trained
model can fall into a mode that is out of step with what it reads (on a
periodic text, confidently wrong on every character). So the figures here
continue the data pass itself: from the states training carried, at the
position they stand at, the text is read on in order, with the weights
frozen and never resetting, into the held-out text::

    ids:  | part 0 | ... | part B-1 (stream B-1) ...     |(rest)| held-out ...
                                 ^ position p
                                 |---- read in order ----|
                                           |-- train --->|<--- validation -->
                                              scored         scored

- the read starts at stream B-1's position (its part is the one nearest the
  held-out text; with one stream, the whole training text is its part), from
  stream B-1's state; with no state given, at the data pass's start: position
  0 with zero states, as training starts;
- training figure: the last ``train_chars`` training characters (fewer when
  the read starts closer to the held-out text);
- held-out figure: the first ``val_chars`` held-out characters (all of them
  when there are fewer), the first predicted from the last training character.

The state and the text it reads agree by construction. The read costs time
proportional to the distance from the position to the held-out text (one
recurrence per character, no output layer). Everything is teacher-forced and
deterministic: the same model, states, position and text give the same
figures (a kept best model re-scores exactly).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .datapass import stream_part
from ..defaults import EVAL_TRAIN_CHARS, VAL_MAX_CHARS

LN2 = math.log(2.0)
# Multiply-adds per call into the core (~10 ms): Ctrl-C is seen between calls.
CALL_WORK = 1 << 26


@dataclass(frozen=True)
class Scores:
    """Bits per character of the training span and of the held-out prefix
    (None without a held-out part), and how many characters each scored."""

    train_bpc: float
    train_chars: int
    val_bpc: float | None
    val_chars: int


def evaluate(model, ids: np.ndarray, n_train: int, hidden=None, position: int = 0, *,
             streams: int | None = None, train_chars: int = EVAL_TRAIN_CHARS,
             val_chars: int = VAL_MAX_CHARS, stop=None) -> Scores | None:
    """Score ``model`` on ``ids`` (the whole text as integer ids; the first
    ``n_train`` are training text, the rest held out), continuing the data
    pass whose states are ``hidden`` at ``position``: (H, B), one column per
    stream, as CharRNN.train returns them ((H, 1) or (H,) for one stream),
    stream b standing at ids[b * part + position] with part = n_train // B.
    None is the pass's start: zero states at position 0 (``streams`` says
    how many; default 1). See the module docstring for what is read and
    scored. ``stop`` (a callable) is asked between calls into the core; if
    it answers True the evaluation is abandoned (None)."""
    ids = np.asarray(ids)
    N = ids.size
    if isinstance(n_train, bool) or not isinstance(n_train, numbers.Integral) \
            or not 2 <= n_train <= N:
        raise ValueError(f"n_train must be an integer in [2, {N}], got {n_train!r}")
    n_train = int(n_train)
    h, B = _last_stream(model, hidden, streams)
    part = stream_part(n_train, B)
    if part < 2:
        raise ValueError(f"{B} streams leave parts of {part} of the {n_train} training ids; "
                         f"each needs at least 2")
    if isinstance(position, bool) or not isinstance(position, numbers.Integral) \
            or not 0 <= position <= part - 1:
        raise ValueError(f"position must be an integer in [0, {part - 1}] (where the data pass "
                         f"stands in each part of {part}), got {position!r}")
    if position == part - 1:   # the end of the parts: the data pass starts again from zero
        h, position = None, 0
    start = (B - 1) * part + int(position)     # stream B-1's next input
    S = min(train_chars, n_train - 1 - start)  # training targets ids[n_train - S : n_train]
    P = min(val_chars, N - n_train)            # held-out targets ids[n_train : n_train + P]
    first = n_train - 1 - S                    # first input of the training span
    H, V = model.hidden_size, model.vocab_size
    read = max(256, CALL_WORK // (H * H))           # characters per call: the recurrence
    score = max(256, CALL_WORK // (H * (H + V)))    # and the output layer too
    for lo in range(start, first, read):
        if stop is not None and stop():
            return None
        h = model.advance(ids[lo:min(lo + read, first)], h)
    train_nats, h = _nats(model, ids, first, n_train - 1, h, stop, score)
    if train_nats is None:
        return None
    val_bpc = None
    if P > 0:
        val_nats, h = _nats(model, ids, n_train - 1, n_train - 1 + P, h, stop, score)
        if val_nats is None:
            return None
        val_bpc = val_nats / P / LN2
    return Scores(train_nats / S / LN2, S, val_bpc, P)


def _last_stream(model, hidden, streams):
    """(state of the last stream, (H, 1) or None, and the number of streams)."""
    if streams is not None and (isinstance(streams, bool) or not isinstance(streams, numbers.Integral)
                                or streams < 1):
        raise ValueError(f"streams must be a positive integer, got {streams!r}")
    if hidden is None:
        return None, int(streams or 1)
    arr = np.asarray(hidden)
    H = model.state_size
    if arr.ndim == 1 and arr.shape == (H,):
        arr = arr.reshape(H, 1)
    if arr.ndim != 2 or arr.shape[0] != H or arr.shape[1] < 1:
        raise ValueError(f"hidden must have shape ({H}, B), one column per stream, "
                         f"got {arr.shape}")
    B = arr.shape[1]
    if streams is not None and streams != B:
        raise ValueError(f"hidden holds {B} streams, streams = {streams}")
    return arr[:, B - 1:], B


def _nats(model, ids, lo: int, hi: int, h, stop, block: int):
    """Summed loss of predicting ids[lo + 1 : hi + 1] from inputs ids[lo : hi]
    (teacher-forced, from h), ``block`` characters per call; (nats, h), or
    (None, h) if stopped."""
    total = 0.0
    for a in range(lo, hi, block):
        if stop is not None and stop():
            return None, h
        b = min(a + block, hi)
        nats, h = model.loss(ids[a:b], ids[a + 1:b + 1], h, return_hidden=True)
        total += nats
    return total, h
