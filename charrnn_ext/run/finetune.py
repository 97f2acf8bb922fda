"""Fine-tuning: a trained model's weights as the start of a new run on another text, its vocabulary grown to the text's.

``charrnn-train NEW.txt --init-from MODEL.npz`` (``training.run(text,
settings, init_from=ckpt)``) starts from MODEL's weights: its cell, layers,
sizes, embedding and dtype are kept; the optimizer's state, the data pass,
the iteration count and the random state start afresh (``--resume`` keeps
them instead, on a text whose characters the model knows). The other settings default
to MODEL's run's (its learning rate, streams, chunk length, ...).

Characters of the new text that MODEL lacks join the vocabulary after the
ones it knew (Vocab.grown): every character MODEL knew keeps its id and its
own weights (its input column or embedding row, its output row and bias, at
the same index), and the new characters (ids V, V+1, ..., sorted among
themselves) get weights drawn as the model's initialisation draws them
(spec.init_params / reference_gated.init_params for the grown vocabulary,
with the run's seed: the new characters' rows of that draw). The grown
vocabulary is then no longer sorted; the checkpoint stores it in id order.
With ``fixed_vocab`` a text holding new characters is refused instead.
"""
from __future__ import annotations

import os

import numpy as np

from ..core import reference_gated
from .._words import count
from ..ckpt.checkpoint import Checkpoint, load_checkpoint
from ..core.model import CharRNN
from ..core.spec import init_params
from ..text.vocab import Vocab

# What a model fixes for a run that starts from its weights (settings.fixed_by
# minus the training choices a new run may change: streams, optimizer).
KEPT = ("hidden_size", "embedding_size", "dtype", "cell", "num_layers")


def fixed(model) -> dict:
    """The settings a run starting from ``model``'s weights keeps."""
    return {"hidden_size": model.hidden_size, "embedding_size": model.embedding_size,
            "dtype": model.dtype.name, "cell": model.cell, "num_layers": model.num_layers}


def start(init_from, resume=None) -> tuple[Checkpoint, str | None] | None:
    """training.run's ``init_from`` read: (the Checkpoint, the name of its
    file or None), or None without one. ValueError with ``resume`` too."""
    if init_from is None:
        return None
    if resume is not None:
        raise ValueError("init_from starts a fresh run from a model's weights; resume continues "
                         "a run: give one of them")
    if isinstance(init_from, (str, os.PathLike)):
        return load_checkpoint(init_from), os.fspath(init_from)
    return init_from, None


def new_characters(ckpt: Checkpoint, text: str) -> list[str]:
    """The characters of ``text`` that ``ckpt``'s vocabulary lacks, sorted."""
    return ckpt.vocab.missing(text)


def grown_vocab(ckpt: Checkpoint, text: str, fixed_vocab: bool = False) -> Vocab:
    """``ckpt``'s vocabulary with the characters of ``text`` it lacks appended
    (old ids kept); with ``fixed_vocab``, ValueError naming them instead (if
    there are any)."""
    new = new_characters(ckpt, text)
    if new and fixed_vocab:
        raise ValueError(f"the text has {count(len(new), 'character')} the model's vocabulary "
                         f"lacks: {_shown(new)} (without a fixed vocabulary they join it)")
    return ckpt.vocab.grown(text)


def _shown(chars, at_most: int = 10) -> str:
    more = f" and {len(chars) - at_most} more" if len(chars) > at_most else ""
    return " ".join(repr(c) for c in chars[:at_most]) + more


def describe(ckpt: Checkpoint, vocab: Vocab, name: str | None = None) -> str:
    """The line a fine-tuning run opens with: where it starts, and the new characters."""
    new = [c for c in vocab.chars if ckpt.vocab.id_of(c) < 0]   # in id order: sorted
    head = (f"fine-tuning {name or 'a model'} (iteration {ckpt.iteration:,}, "
            f"{count(len(ckpt.vocab), 'character')})")
    if not new:
        return f"{head}: no new characters"
    return f"{head}: {count(len(new), 'new character')} join its vocabulary: {_shown(new)}"


def _fresh_params(model, V: int, seed, init: str) -> dict:
    """Parameters of ``model``'s shape for a vocabulary of V, as its initialisation draws them."""
    D = model.embedding_size
    if model.minchar:
        return init_params(V, model.hidden_size, seed, D, init)
    return reference_gated.init_params(model.cell, V, model.hidden_size, model.num_layers,
                                       seed, D, init)


def grown_params(model, old: Vocab, new: Vocab, seed=None, init: str = "min-char-rnn") -> dict:
    """``model``'s parameters for the vocabulary ``new`` (which holds ``old``):
    the entries of each character of ``old`` at its id in ``new`` (the same
    id when ``new`` is old.grown(...)), the new characters' drawn by the
    model's initialisation (``init``: a tanh
    model's, spec.INITS; a gated model's is PyTorch's). Along the axis whose
    length is the vocabulary size (Wxh / weight_ih_l0 columns of a one-hot
    input, embed rows, Why rows, by)."""
    fresh = _fresh_params(model, len(new), seed, init)
    where = new.encode(old.chars)   # old id -> new id
    out = {}
    for name, arr in model.params.items():
        arr, grown = np.asarray(arr), np.array(fresh[name], dtype=np.float64)
        if grown.size == arr.size:
            out[name] = np.array(arr, dtype=np.float64).reshape(grown.shape)
            continue
        axis = next(k for k in range(arr.ndim) if arr.shape[k] != grown.shape[k])
        index = [slice(None)] * arr.ndim
        index[axis] = where
        grown[tuple(index)] = arr
        out[name] = grown
    return out


def start_model(ckpt: Checkpoint, vocab: Vocab, settings: dict):
    """A model with ``ckpt``'s weights for the vocabulary ``vocab`` (grown_params;
    ``settings``' seed draws the new characters' weights, as ``settings``'
    init says for a tanh model), a fresh optimizer state of ``settings``'
    optimizer, and its dropout."""
    model = ckpt.model
    lost = vocab.missing(ckpt.vocab.chars)
    if lost:
        raise ValueError(f"the vocabulary lacks {count(len(lost), 'character')} of the model's "
                         f"({_shown(lost)}): a grown vocabulary holds all of them (grown_vocab)")
    params = model.params if vocab == ckpt.vocab else \
        grown_params(model, ckpt.vocab, vocab, settings["seed"], settings["init"])
    return CharRNN.from_params(params, dropout=0.0 if model.minchar else settings["dropout"],
                               seed=settings["seed"], cell=model.cell,
                               optimizer=settings["optimizer"], dtype=model.dtype)
