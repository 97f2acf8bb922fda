"""Settings' value types: text to a checked number (argparse types: a bad value is an ArgumentTypeError naming the rule)."""
from __future__ import annotations

import argparse
import math

from .defaults import MAX_THREADS


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


MAX_INT = 2**31 - 1  # sizes, lengths and counts the core handles as C ints


def positive_int(text: str) -> int:
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    if value > MAX_INT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INT}, got {text}")
    return value


def nonneg_int(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= MAX_INT:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {MAX_INT}], got {text}")
    return value


def sample_length_int(text: str) -> int:
    """Characters of a sample printed while training: positive, and small
    enough to hold in memory (12 bytes each) -- charrnn-sample streams longer texts."""
    value = positive_int(text)
    if value > MAX_TRAINING_SAMPLE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TRAINING_SAMPLE:,} (use "
                                         f"charrnn_ext.sample for longer texts), got {text}")
    return value


MAX_TRAINING_SAMPLE = 1_000_000


def threads_int(text: str) -> int:
    """A positive thread count; counts above defaults.MAX_THREADS are capped
    (as set_num_threads caps them)."""
    value = _int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return min(value, MAX_THREADS)


def seed_int(text: str) -> int:
    value = _int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {text}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def nonneg_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def unit_fraction(text: str) -> float:
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def fraction(text: str) -> float:
    value = _float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value
