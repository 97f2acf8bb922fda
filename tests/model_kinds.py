"""The kinds of model every after-training feature is tested on (score, dynamic
evaluation, fine-tuning, decoding): cells x dtypes x (one layer, one-hot |
two layers, an input embedding), and min-char-rnn's default tanh model;
small checkpoints of each, trained a little on a generated text.

(conftest.py is past its 600 lines: the table and its checkpoints live here,
imported with ``from model_kinds import ...``.)
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from charrnn_ext import CharRNN, Checkpoint, Vocab
from charrnn_ext.core import cells

from conftest import sentence_text

CELLS = cells.NAMES
DTYPES = ("float64", "float32")
SHAPES = {"1x-onehot": (1, 0), "2x-embed5": (2, 5)}   # (layers, embedding width)
# (cell, dtype, shape); ("rnn", "float64", "1x-onehot") is min-char-rnn's own model
KINDS = [(c, d, s) for c in CELLS for d in DTYPES for s in SHAPES]
KIND_IDS = [f"{c}-{d}-{s}" for c, d, s in KINDS]
kinds = pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)

TEXT = sentence_text(40, seed=5)          # what the checkpoints trained on
HIDDEN = 10


def rtol_of(dtype: str) -> float:
    """How closely two computations of one figure in ``dtype`` agree."""
    return 1e-9 if dtype == "float64" else 2e-5


@functools.lru_cache(maxsize=None)
def _trained(kind, optimizer: str, streams: int):
    cell, dtype, shape = kind
    L, D = SHAPES[shape]
    vocab = Vocab.from_text(TEXT)
    extra = {"init": "pytorch"} if optimizer == "adam" else {}
    model = CharRNN(len(vocab), HIDDEN, seed=3, cell=cell, num_layers=L, embedding_size=D,
                    dtype=dtype, optimizer=optimizer, **extra)
    ids = vocab.encode(TEXT)
    lr = 0.01 if optimizer == "adam" else 0.1
    _, hidden, position = model.train(ids, 40, 16, None, 0, lr, streams=streams)
    return model, vocab, np.asarray(hidden).reshape(model.state_size, streams), position


def small_checkpoint(kind, optimizer: str = "adagrad", streams: int = 2) -> Checkpoint:
    """A Checkpoint of a model of ``kind`` (cell, dtype, shape) trained 40
    steps of 16 on TEXT in ``streams`` streams with ``optimizer``: its state
    (S, streams) and position as training left them. A fresh copy each call
    (the training runs once per kind)."""
    model, vocab, hidden, position = _trained(tuple(kind), optimizer, streams)
    cell, dtype, shape = kind
    L, D = SHAPES[shape]
    hyper = {"seq_length": 16, "hidden_size": HIDDEN, "cell": cell, "num_layers": L,
             "embedding_size": D, "dtype": dtype, "optimizer": optimizer,
             "batch_size": streams, "learning_rate": 0.01 if optimizer == "adam" else 0.1,
             "init": "pytorch" if optimizer == "adam" or (cell, L) != ("rnn", 1)
             else "min-char-rnn"}
    return Checkpoint(model=model.copy(), vocab=vocab, hidden=hidden.copy(),
                      position=position, iteration=40, hyperparameters=hyper,
                      data_size=len(TEXT))
