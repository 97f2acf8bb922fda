"""Bits per character measured the way the model runs: as a continuation.

min-char-rnn carries the hidden state from chunk to chunk and resets it only
at the end of the text, so a trained model has rarely seen a zero state;
run from zero with frozen weights it can fall into a saturated mode and
score (and sample) far worse than it does in training. So the figures here
start from the hidden state training carried (``Checkpoint.hidden``) and
read the text in order, in one pass, never resetting::

    ids:  ... | warm-up | training span | held-out prefix ...
                 read      scored: train   scored: validation
              <------ training text ------>|<--- held-out text --->

- warm-up: the ``warmup`` training characters before the span, only read;
- training figure: the last ``train_chars`` characters of the training text;
- held-out figure: the first ``val_chars`` held-out characters (all of them
  when there are fewer), each predicted from the state the training text
  left, the first one from the last training character.

Everything is teacher-forced and deterministic: the same model, state and
text give the same figures (a kept best model re-scores exactly).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .defaults import EVAL_TRAIN_CHARS, EVAL_WARMUP, VAL_MAX_CHARS

LN2 = math.log(2.0)
BLOCK = 4096  # characters per call into the core (Ctrl-C is seen between calls)


@dataclass(frozen=True)
class Scores:
    """Bits per character of the training span and of the held-out prefix
    (None without a held-out part), and how many characters each scored."""

    train_bpc: float
    train_chars: int
    val_bpc: float | None
    val_chars: int


def evaluate(model, ids: np.ndarray, n_train: int, hidden=None, *,
             warmup: int = EVAL_WARMUP, train_chars: int = EVAL_TRAIN_CHARS,
             val_chars: int = VAL_MAX_CHARS, stop=None) -> Scores | None:
    """Score ``model`` on ``ids`` (the whole text as int32 ids; the first
    ``n_train`` are training text, the rest held out), starting from
    ``hidden`` (the state training carried, (H, 1); None is a zero state).
    See the module docstring for the spans. The text is read in blocks of
    BLOCK characters; ``stop`` (a callable) is asked between blocks, and
    if it answers True the evaluation is abandoned (None)."""
    ids = np.asarray(ids)
    N = ids.size
    if not 2 <= n_train <= N:
        raise ValueError(f"n_train must be in [2, {N}], got {n_train}")
    S = min(train_chars, n_train - 1)          # training targets ids[n_train - S : n_train]
    W = min(warmup, n_train - 1 - S)           # warm-up inputs just before the span
    P = min(val_chars, N - n_train)            # held-out targets ids[n_train : n_train + P]
    start = n_train - 1 - S                    # first input of the training span
    h = hidden
    for lo in range(start - W, start, BLOCK):
        if stop is not None and stop():
            return None
        h = model.advance(ids[lo:min(lo + BLOCK, start)], h)
    train_nats, h = _nats(model, ids, start, n_train - 1, h, stop)
    if train_nats is None:
        return None
    val_bpc = None
    if P > 0:
        val_nats, h = _nats(model, ids, n_train - 1, n_train - 1 + P, h, stop)
        if val_nats is None:
            return None
        val_bpc = val_nats / P / LN2
    return Scores(train_nats / S / LN2, S, val_bpc, P)


def _nats(model, ids, lo: int, hi: int, h, stop):
    """Summed loss of predicting ids[lo + 1 : hi + 1] from inputs ids[lo : hi]
    (teacher-forced, from h), block by block; (nats, h), or (None, h) if
    stopped."""
    total = 0.0
    for a in range(lo, hi, BLOCK):
        if stop is not None and stop():
            return None, h
        b = min(a + BLOCK, hi)
        nats, h = model.loss(ids[a:b], ids[a + 1:b + 1], h, return_hidden=True)
        total += nats
    return total, h
