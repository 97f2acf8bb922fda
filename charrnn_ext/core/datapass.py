"""min-char-rnn's data pass: the held-out tail, the streams' parts, the wrap rule, what steps read."""
from __future__ import annotations

import numpy as np

from ._dispatch import core as _core


def held_out(N: int, val_fraction: float) -> int:
    """Characters held out at the end of a text of N: int(N * val_fraction),
    or 0 when that is under 2 (a held-out part needs an input and a target)."""
    n_val = int(N * val_fraction)
    return n_val if n_val >= 2 else 0


def stream_part(n_train: int, streams: int) -> int:
    """Length of each stream's part: stream b reads ids[b * part : (b + 1) * part]
    of the n_train training ids (the last n_train % streams are not read)."""
    return n_train // streams


def run_length(p: int, part: int, T: int) -> int:
    """Steps of min-char-rnn's data pass from position p (where a step runs,
    after any reset) up to the next reset: chunk_wraps(q) is q >= part - T - 1,
    so the steps at p, p + T, ... run while p + k T <= part - T - 2."""
    return 1 + max(0, part - T - 2 - p) // T


def read_spans(position: int, steps: int, part: int, T: int) -> list:
    """The spans [a, b) of each stream's part that ``steps`` steps of the data
    pass from ``position`` read: up to the first reset, then from 0 (later
    passes read the same span again)."""
    if steps == 0:
        return []
    p = 0 if chunk_wraps(position, part, T) else position
    k = min(steps, run_length(p, part, T))
    spans = [(p, p + k * T + 1)]
    if steps > k:
        spans.append((0, min(steps - k, run_length(0, part, T)) * T + 1))
    return spans


def train_window(ids: np.ndarray, B: int, part: int, position: int, n: int, T: int,
                  V: int):
    """(window, offset, steps): what one call of the core trains on, a private
    int32 (B, W) copy of columns offset .. offset + W of each part (an id
    outside [0, V) stored as -1, which the core stops at if it reads it),
    and how many of the n steps it runs. Small texts: the whole parts, every
    step. Else up to the next reset of the data pass, so that a call copies
    about as many ids as it reads."""
    if B * part <= max(1 << 16, 4 * B * (n * T + 1)):
        offset, width = 0, part
    else:
        offset = 0 if chunk_wraps(position, part, T) else position
        n = min(n, run_length(offset, part, T))
        width = n * T + 1
    return _core.copy_window(ids, B, part, offset, width, V), offset, n


def chunk_wraps(position: int, part_length: int, seq_length: int) -> bool:
    """min-char-rnn's wrap rule (``if p+seq_length+1 >= len(data)``): whether
    a step at ``position`` of a text (or stream part) of ``part_length`` ids
    first goes back to its start with zero hidden states, as
    CharRNN.train does before every step."""
    return bool(_core.wraps(min(position, part_length), part_length, seq_length))
