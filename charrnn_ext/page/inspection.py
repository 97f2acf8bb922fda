"""What a trained model computes over a text -- its hidden units, guesses and surprise -- as arrays and as one web page (charrnn-inspect's).

``trace(ckpt, text)`` runs the model with frozen weights over a text from
the state training left (CharRNN.trace, the core's) and returns the raw
arrays (an Inspection); ``to_html(...)`` turns them into one self-contained
page (charrnn_ext.page.render); charrnn-inspect (inspect.py) writes that page to a file.

Where the read starts, the rule sampling and evaluation use (never a zero
state unless ``from_zero``):

- a text of your own is read from the state training left in stream 0 (as
  charrnn-sample reads a --prime): its first character is the first input,
  each later one is predicted from the characters before it;
- without a text, the held-out part of the training text, when it can be
  found (the demo corpus, or a file beside the checkpoint named after it,
  ``input.txt`` for ``input.npz`` / ``input.best.npz`` / ``input-2.npz``,
  in its directory or the current one; recognised by the size and CRC-32 the
  checkpoint records): the data pass continued as ``evaluate`` continues it,
  from the last stream's state at its position, read on to the last
  training character, which is the first character shown; the held-out
  characters after it are scored. The mean surprise is then ``evaluate``'s
  validation figure over the same characters.

Surprise of character t is -log2 of the probability the model gave it after
reading characters 0..t-1 (the first character has none); the guesses shown
at character t are the model's top-5 for the character after it.
"""
from __future__ import annotations

import math
import os
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..core._dispatch import core_for
from ..ckpt.checkpoint import Checkpoint, load_checkpoint
from ..core.datapass import held_out, stream_part
from ..core.evaluation import CALL_WORK, _last_stream
from ..core.settings import SETTINGS
from ..text.vocab import Vocab
DEFAULT_LENGTH = 3000   # characters shown by default
TOP_K = 5               # guesses kept per character
# Characters per call of CharRNN.trace: its (n, V) probabilities stay ~32 MB.
TRACE_ELEMENTS = 1 << 22
# Inspection.probs is kept when it holds at most this many numbers (~128 MB).
KEEP_PROBS_ELEMENTS = 1 << 24
# The largest page the command writes (PAGE_CHARACTERS characters, PAGE_BYTES bytes, the
# smaller): what headless Chromium paints in about 4 s on a busy 2-core machine, 2 s on a
# quiet one (benchmarks/README.md; a million characters took 31 s).
PAGE_CHARACTERS = 100_000
PAGE_BYTES = 24 << 20


@dataclass(frozen=True)
class ActivationSet:
    """Activations the page can shade the text by: ``values`` (n, units), one
    row per character. ``bounded``: in [-1, 1] (tanh states), one colour
    scale for every unit; else each unit is scaled by its largest |value|
    (an LSTM's cell state)."""

    label: str
    values: np.ndarray
    bounded: bool = True


@dataclass
class Inspection:
    """A model's run over a text, weights frozen. Arrays (n characters, H
    hidden units, S rows of the model's state (H for min-char-rnn's model),
    V vocabulary entries, K = TOP_K), in the model's dtype except h0 and
    surprise (float64):

    text      str, the n characters read; ids (n,) int32, their vocabulary ids
    h0        (S,) the state before the first character
    hidden    (n, H) the hidden state after reading character t (the top
              layer's h: what the output layer reads)
    probs     (n, V) softmax prediction of the character after t (None when
              n * V > KEEP_PROBS_ELEMENTS: ``model.trace(ids, h0)`` gives it)
    top_ids   (n, K) int32 and top_probs (n, K): the K likeliest next characters
    surprise  (n,) bits, -log2 p(character t | characters before it); NaN at 0
    sets      the activations shown on the page, name -> ActivationSet ("h":
              ``hidden``; more layers and an LSTM's cell state add theirs:
              activation_sets)
    """

    ckpt: Checkpoint
    text: str
    ids: np.ndarray
    h0: np.ndarray
    hidden: np.ndarray
    probs: np.ndarray | None
    top_ids: np.ndarray
    top_probs: np.ndarray
    surprise: np.ndarray
    source: str                  # what text this is, for the page
    start: str                   # where the read started, for the page
    name: str = ""               # the checkpoint's name, for the page
    sets: dict = field(default_factory=dict)

    @property
    def mean_surprise(self) -> float:
        """Mean surprise in bits/char over characters 1..n-1 (NaN for n = 1)."""
        s = self.surprise[1:]
        return float(np.sum(s, dtype=np.float64) / s.size) if s.size else float("nan")

    def ranking(self, per_feature: int = 3) -> list:
        """The most interpretable units: see rank_units."""
        return rank_units(self.text, self.hidden, per_feature)


def read_through(model, ids: np.ndarray, h0) -> tuple:
    """(states (n, S), probs (n, V) or None, top_ids (n, K), top_probs (n, K),
    surprise (n,)) of model.trace over ids from h0 (states[t]: the whole state
    after reading ids[t]; model.top_hidden(states.T).T its top layer's h), in
    calls of at most TRACE_ELEMENTS probabilities, each from the last state of
    the one before. Arrays in the model's dtype, surprise in float64."""
    n, V, S = ids.size, model.vocab_size, model.state_size
    K = min(TOP_K, V)
    block = max(1, TRACE_ELEMENTS // max(V, S))
    # the model's own core and dtype: a float32 model traces in float32
    core, dtype = core_for(model.dtype), model.dtype
    states = np.empty((n, S), dtype)
    probs = np.empty((n, V), dtype) if n * V <= KEEP_PROBS_ELEMENTS else None
    top_ids, top_probs = np.empty((n, K), np.int32), np.empty((n, K), dtype)
    surprise = np.full(n, np.nan)
    h = h0
    tiny = np.finfo(dtype).tiny   # an underflowed probability: 1022 bits (float32: 126), not inf
    for a in range(0, n, block):
        b = min(a + block, n)
        hs, ps = model.trace(ids[a:b], h)
        h = hs[-1]
        states[a:b] = hs
        if probs is not None:
            probs[a:b] = ps
        core.top_k(ps, top_ids[a:b], top_probs[a:b])   # likeliest first, ties by id
        # ps[t] predicts ids[a + t + 1]: the surprise of the next character
        nxt = ids[a + 1:b + 1]
        p = ps[np.arange(nxt.size), nxt]
        surprise[a + 1:a + 1 + nxt.size] = -np.log2(np.maximum(p, tiny), dtype=np.float64)
    return states, probs, top_ids, top_probs, surprise


def activation_sets(model, states: np.ndarray) -> dict:
    """The page's activation sets of states (n, S) (read_through's): "h", the
    top layer's h (what the output layer reads); for more layers, "h1", "h2",
    ... the lower layers' h; for an LSTM, "c" (the top layer's cell state) and
    "c1", ... (unbounded: scaled per unit). A row's layout is the model's
    state layout: per layer (bottom first) its h (H), then an LSTM's c (H)."""
    L, H = model.num_layers, model.hidden_size
    K = 2 if model.cell == "lstm" else 1
    rows = states.reshape(states.shape[0], L, K, H)
    sets = {"h": ActivationSet(f"hidden state h{_layer_label(L - 1, L)}", rows[:, L - 1, 0])}
    if K == 2:
        sets["c"] = ActivationSet(f"cell state c{_layer_label(L - 1, L)}", rows[:, L - 1, 1],
                                  bounded=False)
    for layer in range(L - 1):
        sets[f"h{layer + 1}"] = ActivationSet(f"hidden state h{_layer_label(layer, L)}",
                                              rows[:, layer, 0])
        if K == 2:
            sets[f"c{layer + 1}"] = ActivationSet(f"cell state c{_layer_label(layer, L)}",
                                                  rows[:, layer, 1], bounded=False)
    return sets


def _layer_label(layer: int, L: int) -> str:
    return "" if L == 1 else f" of layer {layer + 1} of {L}" + (" (top)" if layer == L - 1 else "")


def trace(ckpt, text: str | None = None, *, length: int = DEFAULT_LENGTH,
          from_zero: bool = False, training_text: str | None = None,
          name: str = "", text_name: str = "the text") -> Inspection:
    """Run ``ckpt`` (a Checkpoint, or the path of one) over ``text`` (its
    first ``length`` characters), or without one over the held-out part of
    ``training_text`` (``length`` characters: the last training character,
    then the first ``length`` - 1 held-out ones, which are scored); see the
    module docstring for where the read starts.
    ValueError for an empty text, characters outside the vocabulary (named)
    or a training text that is not the checkpoint's."""
    if not isinstance(ckpt, Checkpoint):
        name = name or os.path.basename(str(ckpt))
        ckpt = load_checkpoint(ckpt)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    model, vocab = ckpt.model, ckpt.vocab
    if text is not None:
        if not text:
            raise ValueError("the text is empty")
        whole = len(text) <= length
        text = text[:length]
        ids = encode_known(vocab, text)
        h0 = np.zeros(model.state_size) if from_zero else ckpt.hidden[:, 0].copy()
        source = (f"{text_name} ({len(text):,} characters)" if whole else
                  f"{text_name}: its first {len(text):,} characters")
        start = ("a zero state (--from-zero)" if from_zero
                 else "the state training left (stream 0), as sampling starts")
    else:
        if training_text is None:
            raise ValueError("no text given, and no training text to take the held-out part of")
        ids, h0, source, start = _held_out_read(ckpt, training_text, length, from_zero)
        text = vocab.decode(ids)
    states, probs, top_ids, top_probs, surprise = read_through(model, ids, h0)
    sets = activation_sets(model, states)
    return Inspection(ckpt=ckpt, text=text, ids=ids, h0=np.asarray(h0, float).ravel(),
                      hidden=sets["h"].values, probs=probs, top_ids=top_ids,
                      top_probs=top_probs, surprise=surprise, source=source, start=start,
                      name=name, sets=sets)


def encode_known(vocab: Vocab, text: str) -> np.ndarray:
    """vocab's ids of text, or ValueError naming (up to 5 of) the characters
    outside the vocabulary and how many there are."""
    try:
        return vocab.encode(text)
    except ValueError:
        pass
    known = set(vocab.chars)
    unknown = sorted({c for c in text if c not in known})
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    raise ValueError(f"{len(unknown)} character{'s' if len(unknown) != 1 else ''} of the text "
                     f"{'are' if len(unknown) != 1 else 'is'} not in the model's vocabulary: "
                     f"{shown}{more}")


def training_split(ckpt: Checkpoint, text: str) -> tuple[np.ndarray, int] | None:
    """(ids, n_train) of ``text`` as the checkpoint's run read it, if it is
    the run's training text (characters in its vocabulary, size and CRC-32 of the ids, as
    charrnn_ext.run.training records them); else None."""
    if not ckpt.data_size or len(text) != ckpt.data_size:
        return None
    if ckpt.vocab.missing(text):   # (a fine-tuned run's text may lack some of them)
        return None
    ids = ckpt.vocab.encode(text)
    if zlib.crc32(ids) != ckpt.data_crc32:
        return None
    val_fraction = ckpt.hyperparameters.get("val_fraction", SETTINGS["val_fraction"].default)
    return ids, ids.size - held_out(ids.size, val_fraction)


def _held_out_read(ckpt: Checkpoint, training_text: str, length: int, from_zero: bool):
    """(ids, h0, source, start) of the held-out read: evaluate's continuation
    of the data pass (evaluation.py), ids = the last training character then
    up to ``length`` - 1 held-out ones (``length`` characters shown). Without a held-out part, the training
    text from where the data pass stands."""
    split = training_split(ckpt, training_text)
    if split is None:
        raise ValueError("the training text given is not the one the checkpoint was trained on "
                         "(its size, vocabulary or CRC-32 differ)")
    ids, n_train = split
    model = ckpt.model
    h, B = _last_stream(model, ckpt.hidden, None)
    part = stream_part(n_train, B)
    position = ckpt.position
    if position >= part - 1:   # the end of the parts: the data pass starts again from zero
        h, position = None, 0
    first = (B - 1) * part + position      # stream B-1's next input
    if ids.size > n_train:                 # the held-out part: read on to its first input
        lo, what = n_train - 1, (f"the held-out text (the last {ids.size - n_train:,} of the "
                                 f"{ids.size:,} characters of the training text)")
    else:
        lo, what = first, "the training text from where training stands (no held-out part)"
    if from_zero:
        h = None
    else:
        read = max(256, CALL_WORK // (model.hidden_size ** 2))   # evaluate's call size
        for a in range(first, lo, read):
            h = model.advance(ids[a:min(a + read, lo)], h)
    h0 = np.zeros(model.state_size) if h is None else np.asarray(h, float).ravel()
    ids = ids[lo:lo + length]     # the first is not scored: length - 1 are
    start = ("a zero state (--from-zero)" if from_zero else
             "the state training left, read on through the text to here, as evaluation does")
    return ids, h0, f"{what}: characters {lo:,} to {lo + ids.size:,}", start


def find_training_text(path: str, ckpt: Checkpoint) -> tuple[str, str] | None:
    """(text, where) of the checkpoint's training text, found beside it or
    in the current directory under its name (``input.txt`` for
    ``input.npz``, ``input.best.npz``, ``input-2.npz``), or the demo corpus;
    recognised by training_split. None if none is."""
    if not ckpt.data_size:
        return None
    stem = os.path.basename(path)
    for suffix in (".npz", ".best"):
        if stem.endswith(suffix):
            stem = stem[:-len(suffix)]
    stems = {stem, stem.rsplit("-", 1)[0] if stem.rsplit("-", 1)[-1].isdigit() else stem}
    seen = set()
    for folder in (os.path.dirname(os.path.abspath(path)), os.getcwd()):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for entry in names:
            full = os.path.join(folder, entry)
            if os.path.splitext(entry)[0] not in stems or entry.endswith(
                    (".npz", ".lock", ".html", ".log", ".png", ".csv")) or full in seen:
                continue
            seen.add(full)
            try:
                if not os.path.isfile(full) or os.path.getsize(full) < ckpt.data_size \
                        or os.path.getsize(full) > 4 * ckpt.data_size + 4:
                    continue
                with open(full, "rb") as f:
                    text = f.read().decode("utf-8-sig")
            except (OSError, UnicodeDecodeError):
                continue
            if training_split(ckpt, text) is not None:
                return text, entry
    from ..text.corpus import demo_corpus
    try:
        text, _ = demo_corpus()
    except RuntimeError:
        return None
    return (text, "the demo corpus") if training_split(ckpt, text) is not None else None


# -- the ranking of units -------------------------------------------------------

def text_features(text: str) -> dict:
    """Per character t of text, what holds after reading it (n,) float arrays:
    inside double quotes (a '"' opens or closes), inside brackets ((, [, { not
    yet closed), position in the line (characters since the last newline),
    whitespace."""
    n = len(text)
    quote, bracket, column, space = (np.zeros(n) for _ in range(4))
    inside, depth, col = False, 0, 0
    for t, c in enumerate(text):
        if c == '"':
            inside = not inside
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(depth - 1, 0)
        col = 0 if c == "\n" else col + 1
        quote[t], bracket[t], column[t], space[t] = inside, depth > 0, col, c.isspace()
    return {"inside quotes": quote, "inside brackets": bracket, "position in line": column,
            "whitespace": space}


def rank_units(text: str, hidden: np.ndarray, per_feature: int = 3) -> list:
    """The units most correlated with each of text_features (|Pearson r|,
    the ``per_feature`` highest; features constant over the text are left
    out) and the ``per_feature`` of highest variance, as dicts: feature,
    unit, score (r, or the variance), set ("h"). Features in order of their
    best |r|, the highest variance last."""
    hidden = np.asarray(hidden, dtype=np.float64)
    centred = hidden - hidden.mean(axis=0)
    spread = np.sqrt((centred ** 2).sum(axis=0))
    groups = []
    for feature, values in text_features(text).items():
        f = values - values.mean()
        norm = math.sqrt(float(f @ f))
        if norm == 0.0:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(spread > 0, (f @ centred) / (norm * spread), 0.0)
        best = np.argsort(-np.abs(r), kind="stable")[:per_feature]
        groups.append([{"feature": feature, "unit": int(j), "score": float(r[j]), "set": "h"}
                       for j in best])
    groups.sort(key=lambda g: -abs(g[0]["score"]))   # the clearest feature first
    out = [entry for group in groups for entry in group]
    var = (centred ** 2).mean(axis=0)
    for j in np.argsort(-var, kind="stable")[:per_feature]:
        out.append({"feature": "highest variance", "unit": int(j), "score": float(var[j]),
                    "set": "h"})
    return out


def page_bytes_per_character(model) -> int:
    """An upper bound of the bytes per character shown of ``model``'s page
    (charrnn_ext.page.render's format): the code point as JSON (at most 8 bytes),
    then as base64 its top-K ids (4 bytes each), their probabilities (2),
    its surprise (4) and one byte per unit of the state (every set)."""
    K = min(TOP_K, model.vocab_size)
    return 8 + math.ceil((6 * K + 4 + model.state_size) * 4 / 3)


def page_limit(model) -> int:
    """The most characters charrnn-inspect shows on a page of ``model``'s:
    PAGE_CHARACTERS, or fewer when they would make more than PAGE_BYTES."""
    return max(1, min(PAGE_CHARACTERS, PAGE_BYTES // page_bytes_per_character(model)))


def to_html(ckpt, text: str | None = None, *, live: bool = True, **options) -> str:
    """The page of ``trace(ckpt, text, **options)`` (or of an Inspection
    passed as ``ckpt``) as a string: one self-contained HTML file. ``live``:
    the page carries the model and runs it (a text box read from the state
    the text starts from, sampling; charrnn_ext.page.live), else the static
    page."""
    from .render import render
    from .live import live_data
    inspection = ckpt if isinstance(ckpt, Inspection) else trace(ckpt, text, **options)
    return render(inspection, live_data(inspection.ckpt.model, inspection.h0) if live else None)
