"""Scoring a text with a trained model (bits per character, per file or per line), static or with dynamic evaluation.

Where the read starts is the rule the sampler and charrnn-inspect use: from
the state training left in stream 0 (as charrnn-sample reads a --prime), or
with ``from_zero`` from a zero state. Either way the first character is the
first input and each later one is predicted from the characters before it:
N characters give N - 1 predictions, and the figure is their mean surprise,
-log2 p(character t | characters 0..t-1), in bits. From a zero state it is
``model.loss(ids[:-1], ids[1:], None) / (N - 1) / ln 2``.

Dynamic evaluation (Krause et al. 2018, "Dynamic Evaluation of Neural
Sequence Models"): the predictions are cut into chunks of ``chunk``
characters; each chunk is scored (teacher-forced, from the state the chunk
before left) and only then does a copy of the model take one training step
on it (min-char-rnn's clip, then the model's own optimizer, its state as
training left it, at ``learning_rate``), so that every character is
predicted by weights that have learned from the characters before it only.
The checkpoint's model is never changed; dropout is off (scoring is
deterministic). The first chunk is scored by the trained weights, exactly
as the static score scores it. The default learning rate is a third of the
one training ended at (its --learning-rate times --lr-decay), the default
chunk 25 characters: measured on tinyshakespeare's held-out text for the
GRU command trained 3,268 steps (Adam 0.003 falling to 0.0003: 1e-4 is the
best rate, 3e-4 gains 0.05 bits/char less, 3e-5 0.02 less) and a
min-char-rnn model (Adagrad 0.1: 0.033 within 0.04 of the best, 0.1),
benchmarks/README.md, "Dynamic evaluation".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..ckpt.checkpoint import Checkpoint, load_checkpoint
from ..core.divergence import TrainingDiverged
from ..core.evaluation import CALL_WORK, LN2
from ..core.settings import complete
from ..text.vocab import Vocab

# Dynamic evaluation's defaults (benchmarks/README.md, "Dynamic evaluation": chosen on
# tinyshakespeare's held-out text): chunks of 25, at RATE_FRACTION of the rate
# training ended at (default_rate).
DYNAMIC_CHUNK = 25
RATE_FRACTION = 1 / 3


@dataclass(frozen=True)
class Dynamic:
    """Dynamic evaluation's settings: ``learning_rate`` of the steps taken on
    the text as it is read (None: the model's default_rate), ``chunk``
    characters scored before each step."""

    learning_rate: float | None = None
    chunk: int = DYNAMIC_CHUNK

    def __post_init__(self):
        lr, chunk = self.learning_rate, self.chunk
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (
                math.isfinite(lr) and lr > 0)):
            raise ValueError(f"the dynamic learning rate must be a positive number, got {lr!r}")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"the dynamic chunk must be a positive integer, got {chunk!r}")


@dataclass(frozen=True)
class LineScore:
    """One line of a text (its characters and its newline): ``line`` (1-based),
    ``predictions`` (its characters that were predicted), ``bits`` (their summed surprise)."""

    line: int
    predictions: int
    bits: float

    @property
    def bits_per_char(self) -> float | None:
        return self.bits / self.predictions if self.predictions else None


@dataclass(frozen=True)
class TextScore:
    """A text's score: ``characters`` read (after skipped ones),
    ``predictions`` (characters - 1), ``bits`` (their summed surprise),
    ``skipped`` (characters outside the vocabulary left out, with
    skip_unknown), ``from_zero``, ``dynamic`` (its settings, or None) and,
    when asked for, ``lines``."""

    characters: int
    predictions: int
    bits: float
    skipped: int = 0
    from_zero: bool = False
    dynamic: Dynamic | None = None
    lines: list = field(default=None)

    @property
    def bits_per_char(self) -> float | None:
        """The mean surprise in bits per predicted character (None: none predicted)."""
        return self.bits / self.predictions if self.predictions else None


def known_ids(vocab: Vocab, text: str, skip_unknown: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(ids, kept): the vocabulary ids of the characters of ``text`` that are
    in it, and a boolean mask (len(text),) of those characters. Without
    skip_unknown a character outside the vocabulary is a ValueError naming
    (up to five of) them and how many there are."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    at = vocab.ids_of_codes(codes)   # -1: not in the vocabulary (in any id order)
    kept = at >= 0
    if not kept.all() and not skip_unknown:
        unknown = np.unique(codes[~kept])
        shown = ", ".join(f"{chr(c)!r} (U+{c:04X})" for c in unknown[:5].tolist())
        more = f" and {unknown.size - 5} more" if unknown.size > 5 else ""
        first = int(np.argmin(kept))
        raise ValueError(f"{unknown.size} character{'s' if unknown.size != 1 else ''} "
                         f"{'are' if unknown.size != 1 else 'is'} not in the model's vocabulary "
                         f"({int((~kept).sum()):,} in all, the first at position {first:,}): "
                         f"{shown}{more}")
    return at[kept], kept


def start_state(ckpt, from_zero: bool = False):
    """The state a read starts from: stream 0's of training (S, 1), or None (zeros)."""
    return None if from_zero else np.array(ckpt.hidden[:, :1])


def static_bits(model, ids: np.ndarray, h0, bounds=None) -> np.ndarray:
    """Summed surprise in bits of the predictions of ids[1:] from h0, teacher
    forced, weights frozen: one sum per segment of predictions [a, b) (ids a
    .. b-1 predicted) given by ``bounds`` (ascending cut points from 1 to
    ids.size; default: one segment). Calls into the core are kept short
    (CALL_WORK multiply-adds), so Ctrl-C is seen between them."""
    n = ids.size
    bounds = [1, n] if bounds is None else list(bounds)
    block = max(256, CALL_WORK // (model.hidden_size * (model.hidden_size + model.vocab_size)))
    out = np.zeros(max(len(bounds) - 1, 0))
    h = h0
    for k in range(len(bounds) - 1):
        a, b = bounds[k], bounds[k + 1]
        for lo in range(a, b, block):
            hi = min(lo + block, b)
            nats, h = model.loss(ids[lo - 1:hi - 1], ids[lo:hi], h, return_hidden=True)
            out[k] += nats / LN2
    return out


def adaptable(model):
    """A copy of ``model`` that dynamic evaluation may train: the same
    weights and optimizer state, dropout off."""
    return model.copy(dropout=0.0)


def default_rate(ckpt) -> float:
    """Dynamic evaluation's default learning rate for ``ckpt``: RATE_FRACTION
    of the rate its training ended at, its settings' learning_rate times
    lr_decay (the floor its schedule falls to)."""
    settings = complete({}, ckpt.hyperparameters)
    return RATE_FRACTION * settings["learning_rate"] * settings["lr_decay"]


def resolved(dynamic: Dynamic | None, ckpt) -> Dynamic | None:
    """``dynamic`` with its learning rate given (default_rate when None)."""
    if dynamic is None or dynamic.learning_rate is not None:
        return dynamic
    return Dynamic(default_rate(ckpt), dynamic.chunk)


def dynamic_bits(model, ids: np.ndarray, h0, dynamic: Dynamic) -> np.ndarray:
    """The summed surprise in bits of each chunk of predictions of ids[1:]
    (chunk k predicts ids[1 + k c : 1 + (k + 1) c], c = dynamic.chunk), each
    scored by a copy of ``model`` that has taken one training step on every
    chunk before it (see the module docstring). ``model`` is not changed.
    TrainingDiverged (charrnn_ext.core.divergence) if a step diverges."""
    return dynamic_read(model, ids, h0, dynamic)[0]


def dynamic_read(model, ids: np.ndarray, h0, dynamic: Dynamic) -> tuple:
    """dynamic_bits' read: (its bits per chunk, the copy of ``model`` that
    learnt from every chunk, its state (S, 1) after the last step: ids[:-1]
    read; h0 when ids has fewer than 2)."""
    adapted = adaptable(model)
    c, lr = dynamic.chunk, dynamic.learning_rate
    if lr is None:
        raise ValueError("dynamic_bits needs a learning rate (score_text takes the model's)")
    n = ids.size
    out = np.zeros(max(-(-(n - 1) // c), 0))
    h = h0
    for k, a in enumerate(range(1, n, c)):
        b = min(a + c, n)
        try:
            nats, h = adapted.train_step(ids[a - 1:b - 1], ids[a:b], h, learning_rate=lr)
        except ValueError:   # the step before made the weights infinite (float32 overflows)
            if all(np.isfinite(v).all() for v in adapted.params.values()):
                raise
            nats = math.inf
        if not math.isfinite(nats):
            raise TrainingDiverged(f"dynamic evaluation diverged at character {a:,}",
                                   out[:k], h)
        out[k] = nats / LN2
    return out, adapted, h


def adapt(ckpt, text: str, dynamic: Dynamic | None = None, from_zero: bool = False):
    """A copy of ``ckpt`` (a Checkpoint) that has read ``text`` (a str, its
    characters in the vocabulary, else ValueError naming them) with dynamic
    evaluation (``dynamic``: Dynamic(), the defaults, when None; from the
    state training left, or with ``from_zero`` a zero state): its model the
    copy that learnt from every chunk, its state (S, 1) the one after the
    text's last character. charrnn-sample --adapt generates from it; ``ckpt``
    is not changed. TrainingDiverged if a step diverges."""
    if not text:
        raise ValueError("the text to adapt to is empty")
    dynamic = resolved(dynamic if dynamic is not None else Dynamic(), ckpt)
    ids, _ = known_ids(ckpt.vocab, text)
    _, model, h = dynamic_read(ckpt.model, ids, start_state(ckpt, from_zero), dynamic)
    return replace(ckpt, model=model, hidden=np.array(model.advance(ids[-1:], h)))


def line_bounds(kept_line: np.ndarray) -> tuple[list, list]:
    """(cut points, line numbers) of the predictions 1..n-1 of the kept
    characters whose 0-based line numbers are ``kept_line`` (n,): one
    segment per line that has predictions."""
    n = kept_line.size
    if n < 2:
        return [1, max(n, 1)], []
    pred_line = kept_line[1:]
    change = np.flatnonzero(np.diff(pred_line)) + 1    # first prediction of a new line
    cuts = [1] + (change + 1).tolist() + [n]
    return cuts, pred_line[np.concatenate(([0], change))].tolist()


def score_text(ckpt, text: str, *, from_zero: bool = False, skip_unknown: bool = False,
               per_line: bool = False, dynamic: Dynamic | None = None) -> TextScore:
    """The score of ``text`` (a str) under ``ckpt`` (a Checkpoint): see the
    module docstring. ``skip_unknown``: characters outside the vocabulary
    are left out (counted in ``skipped``) instead of a ValueError naming
    them. ``per_line``: also one LineScore per line of the text (not with
    ``dynamic``, whose chunks cross lines)."""
    if per_line and dynamic is not None:
        raise ValueError("per-line figures are not available with dynamic evaluation")
    dynamic = resolved(dynamic, ckpt)
    ids, kept = known_ids(ckpt.vocab, text, skip_unknown)
    h0 = start_state(ckpt, from_zero)
    n = ids.size
    lines = None
    if dynamic is not None:
        bits = float(dynamic_bits(ckpt.model, ids, h0, dynamic).sum()) if n > 1 else 0.0
    elif per_line:
        codes_nl = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4") == 10
        line_of = np.concatenate(([0], np.cumsum(codes_nl)[:-1]))   # a newline ends its line
        cuts, numbers = line_bounds(line_of[kept])
        sums = static_bits(ckpt.model, ids, h0, cuts) if n > 1 else []
        counts = np.diff(cuts)
        by_line = {num: (int(cnt), float(s)) for num, cnt, s in zip(numbers, counts, sums)}
        total_lines = int(line_of[-1]) + 1 if line_of.size else 0
        lines = [LineScore(k + 1, *by_line.get(k, (0, 0.0))) for k in range(total_lines)]
        bits = float(np.sum(sums))
    else:
        bits = float(static_bits(ckpt.model, ids, h0)[0]) if n > 1 else 0.0
    return TextScore(n, max(n - 1, 0), bits, int(kept.size - n), from_zero, dynamic, lines)


def score(ckpt, texts, **options) -> list[TextScore]:
    """``score_text`` of each of ``texts`` (a str, or a list of them), each
    read from the same start; ``ckpt`` a Checkpoint or the path of one."""
    if not isinstance(ckpt, Checkpoint):
        ckpt = load_checkpoint(ckpt)
    if isinstance(texts, str):
        texts = [texts]
    return [score_text(ckpt, t, **options) for t in texts]


def total(scores: list) -> tuple[int, float]:
    """(predictions, bits) of several texts together."""
    return sum(s.predictions for s in scores), float(sum(s.bits for s in scores))
