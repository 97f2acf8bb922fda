"""Generating text from a trained model: sampling (temperature, top-k, top-p), beam search, stop strings, several samples, in blocks."""
from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from .. import defaults
from .beam import check_width, logits, search
from ..core.reference import top_filter

# Characters are generated in blocks that take about this long, so that
# output streams and Ctrl-C answers within a fraction of a second.
BLOCK_SECONDS = 0.05
MIN_BLOCK, MAX_BLOCK = 16, 1 << 16



def _first_draw(model, h: np.ndarray, temperature: float, rng: np.random.Generator,
                top_k: int = 0, top_p: float = 1.0) -> int:
    """A character drawn from the model's prediction at state h (H, 1):
    softmax((Why h + by) / temperature) filtered as model.sample filters it
    (top_k, top_p), argmax at temperature 0; one uniform from rng, as
    model.sample uses per character."""
    with np.errstate(all="ignore"):  # huge weights or a tiny temperature: see below
        y = logits(model, h)
        u = rng.random() if temperature > 0 else 0.0
        if temperature == 0 or not np.all(np.isfinite(y)):
            return int(np.argmax(np.nan_to_num(y, nan=-np.inf)))
        p = top_filter(y, np.exp((y - y.max()) / temperature), top_k, top_p)  # 1 at the max
        cdf = np.cumsum(p / p.sum())
    return int(min(np.searchsorted(cdf, u, side="right"), y.size - 1))


def generate_blocks(ckpt, length: int, temperature: float = defaults.TEMPERATURE,
                    prime: str = "", seed=defaults.SEED, from_zero: bool = False,
                    block_seconds: float = BLOCK_SECONDS, top_k: int = 0, top_p: float = 1.0,
                    stop: str | None = None, beam: int = 0) -> Iterator[str]:
    """The prime, then ``length`` characters generated from ``ckpt`` (a
    Checkpoint), as successive pieces of text; see the module's --help for
    where generation starts and for top_k, top_p and stop (generation ends
    right after the first ``stop`` in the generated text). Blocks are sized
    to take about block_seconds; the text does not depend on the block sizes
    (the draws are one stream). ``seed``: an int, None or a numpy Generator
    (drawn from and left advanced). ``beam`` N > 0: the ``length``
    characters are beam search's of width N (charrnn_ext.use.beam; one piece,
    no draws, temperature unused; not with top_k or top_p). ValueError names
    a prime character outside the vocabulary."""
    if beam:
        check_width(beam)
        if top_k or top_p < 1.0:
            raise ValueError("beam search keeps the likeliest texts: it takes no top_k or top_p")
    pieces = _generated(ckpt, length, temperature, prime, seed, from_zero, block_seconds,
                        top_k, top_p, beam)
    if prime:
        yield next(pieces)
    if not stop:
        yield from pieces
        return
    tail = ""   # the last len(stop) - 1 generated characters: a stop may span two pieces
    for piece in pieces:
        window = tail + piece
        at = window.find(stop)
        if at >= 0:
            yield piece[:at + len(stop) - len(tail)]
            return
        yield piece
        tail = window[len(window) - len(stop) + 1:] if len(stop) > 1 else ""


def _generated(ckpt, length, temperature, prime, seed, from_zero, block_seconds, top_k,
               top_p, beam=0) -> Iterator[str]:
    """generate_blocks without its stop: the prime (if any) as the first piece."""
    model, vocab = ckpt.model, ckpt.vocab
    rng = np.random.default_rng(seed)
    h = None if from_zero else ckpt.hidden[:, :1]  # stream 0's state (H, 1)
    x = None   # the id read next, if any (the last of the prime), from h
    if prime:
        ids = vocab.encode(prime)
        h = model.advance(ids[:-1], h)
        x = int(ids[-1])
        yield prime
    elif from_zero:
        chars = vocab.chars
        x = chars.find("\n")
        if x < 0:
            x = max(chars.find(" "), 0)
    if beam:
        if x is not None:
            h = model.advance(np.array([x], dtype=np.int32), h)
        if length:
            yield vocab.decode(search(model, h, length, beam)[0])
        return
    if x is None:
        if length == 0:
            return
        x = _first_draw(model, np.asarray(h, dtype=np.float64).reshape(-1, 1), temperature, rng,
                        top_k, top_p)
        length -= 1
        yield vocab.decode([x])
    block = MIN_BLOCK
    while length > 0:
        n = min(block, length)
        t0 = time.perf_counter()
        ids, h = model.sample(h, x, n, temperature=temperature, rng=rng, return_hidden=True,
                              top_k=top_k, top_p=top_p)
        elapsed = time.perf_counter() - t0
        length -= n
        x = int(ids[-1])
        yield vocab.decode(ids)
        # the next block: about block_seconds, at most 4x larger than this one
        per_char = max(elapsed / n, 1e-9)
        block = int(min(max(block_seconds / per_char, MIN_BLOCK), 4 * n, MAX_BLOCK))


def generate(ckpt, length: int, temperature: float = defaults.TEMPERATURE, prime: str = "",
             seed=defaults.SEED, from_zero: bool = False, *, top_k: int = 0,
             top_p: float = 1.0, stop: str | None = None, beam: int = 0) -> str:
    """The whole text of :func:`generate_blocks` as one string."""
    return "".join(generate_blocks(ckpt, length, temperature, prime, seed, from_zero,
                                   top_k=top_k, top_p=top_p, stop=stop, beam=beam))


def generate_samples(ckpt, num_samples: int, length: int, temperature=defaults.TEMPERATURE,
                     prime: str = "", seed=defaults.SEED, from_zero: bool = False,
                     **decoding) -> list[str]:
    """``num_samples`` texts of :func:`generate`, each from the same start,
    the draws one stream from ``seed`` (so they differ, and the same seed
    gives the same list). ``decoding``: top_k, top_p, stop, beam."""
    rng = np.random.default_rng(seed)
    return [generate(ckpt, length, temperature, prime, rng, from_zero, **decoding)
            for _ in range(num_samples)]
