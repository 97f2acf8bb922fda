"""Beam search: the likeliest continuation of a state, ``width`` hypotheses kept per character.

charrnn-sample --beam N (generation.generate(..., beam=N)). Each hypothesis is
(its summed log-probability, its ids, its state); a step scores every
hypothesis x every character by log p(character | the hypothesis's state)
(float64 log-softmax of the model's logits, ``logits``), keeps the
``width`` best of those width x V candidates (ties: the earlier hypothesis,
then the smaller id), and reads each kept character into its hypothesis's
state with the model's own ``advance`` (the one forward pass). After
``length`` characters the best hypothesis wins. Deterministic: no draws.

Width 1 is greedy decoding (at each step the first argmax of the logits,
as temperature 0 takes it); a width of at least V^(n-1) finds the likeliest
n characters exactly.
"""
from __future__ import annotations

import numpy as np

MAX_WIDTH = 1000   # hypotheses kept: each costs an advance per character


def logits(model, h) -> np.ndarray:
    """The model's logits (V,) at state ``h`` (S, 1): Why top + by, top the
    output layer's input (model.top_hidden), in float64 (the first character
    of a sample is drawn from them too)."""
    top = model.top_hidden(np.asarray(h, dtype=np.float64).reshape(-1, 1))
    with np.errstate(all="ignore"):   # huge weights: non-finite logits, handled by the caller
        return (model.params["Why"] @ top + model.params["by"].reshape(-1, 1)).ravel()


def log_probs(model, h) -> np.ndarray:
    """log softmax of ``logits(model, h)`` in float64 (V,). Non-finite logits
    (an overflowing model): NaN counts as -inf, and with a +inf logit the
    first +inf ones share the probability (log 0 elsewhere)."""
    y = np.nan_to_num(np.asarray(logits(model, h), dtype=np.float64), nan=-np.inf)
    top = y.max()
    if not np.isfinite(top):
        return np.where(y == top, 0.0, -np.inf)
    with np.errstate(under="ignore"):
        return y - (top + np.log(np.sum(np.exp(y - top))))


def check_width(width) -> None:
    """ValueError unless ``width`` is an integer in [1, MAX_WIDTH]."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) \
            or not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"the beam width must be an integer in [1, {MAX_WIDTH}], got {width!r}")


def search(model, h, length: int, width: int) -> tuple[np.ndarray, float]:
    """(ids (length,) int32, their summed log-probability in nats): the best
    of ``width`` hypotheses continuing state ``h`` (S, 1) for ``length``
    characters (see the module doc)."""
    check_width(width)
    V = model.vocab_size
    scores = np.zeros(1)                                  # (beams,) summed log-probabilities
    paths = np.zeros((1, 0), dtype=np.int32)              # (beams, characters so far)
    states = [np.asarray(h, dtype=np.float64).reshape(-1, 1)]
    for _ in range(int(length)):
        candidates = scores[:, None] + np.stack([log_probs(model, s) for s in states])
        # the width best (beams x V, flattened: beam-major), ties to the earlier
        best = np.argsort(-candidates.ravel(), kind="stable")[:width]
        beam, char = np.divmod(best, V)
        scores = candidates.ravel()[best]
        paths = np.concatenate([paths[beam], char[:, None].astype(np.int32)], axis=1)
        states = [model.advance(np.array([c], dtype=np.int32), states[b])
                  for b, c in zip(beam.tolist(), char.tolist())]
    return paths[0], float(scores[0])
