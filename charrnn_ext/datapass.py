"""The text's layout for training: the held-out tail and the streams' parts (one home for both)."""
from __future__ import annotations


def held_out(N: int, val_fraction: float) -> int:
    """Characters held out at the end of a text of N: int(N * val_fraction),
    or 0 when that is under 2 (a held-out part needs an input and a target)."""
    n_val = int(N * val_fraction)
    return n_val if n_val >= 2 else 0


def stream_part(n_train: int, streams: int) -> int:
    """Length of each stream's part: stream b reads ids[b * part : (b + 1) * part]
    of the n_train training ids (the last n_train % streams are not read)."""
    return n_train // streams
