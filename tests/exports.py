"""What the export tests share (test_export, test_export_onnx, test_cli_export):
every kind of model (MODEL_KINDS: cell x layers x embedding x dtype) as a
trained checkpoint with the state training left (kind_checkpoint), exported
by the command (export_kind); the tolerance of an exported model's loss
(EXPORT_RTOL); README's ```py blocks (readme_block); and the margins that
make a greedy text the model's, not its rounding's (greedy_margins)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from charrnn_ext import CharRNN, Checkpoint, Vocab
from charrnn_ext.core import cells

# Every kind of model an export must carry (export's tables): cell x layers x
# input embedding (0: one-hot) x dtype; ("rnn", 1, ...) is min-char-rnn's CharRNN.
MODEL_KINDS = [pytest.param(cell, L, D, dtype, id=f"{cell}-L{L}-D{D}-{dtype}")
               for cell in cells.NAMES for L in (1, 2) for D in (0, 6)
               for dtype in ("float64", "float32")]


def kind_checkpoint(cell, num_layers, embedding_size, dtype, text, hidden=16, steps=60,
                    streams=2, seed=5):
    """A Checkpoint of a small model of this kind (the batched recipe's Adam and
    PyTorch's init) after ``steps`` training steps of T 25 on ``text`` in
    ``streams`` streams, its ``hidden`` the states training left (S, streams)."""
    vocab = Vocab.from_text(text)
    model = CharRNN(len(vocab), hidden, seed, cell=cell, num_layers=num_layers,
                    dropout=0.1 if num_layers > 1 else 0.0, embedding_size=embedding_size,
                    optimizer="adam", init="pytorch", dtype=dtype)
    _, h, position = model.train(vocab.encode(text), steps, 25, learning_rate=0.01,
                                 streams=streams)
    hyper = {"hidden_size": hidden, "batch_size": streams, "seq_length": 25, "cell": cell,
             "num_layers": num_layers, "embedding_size": embedding_size, "dtype": dtype,
             "optimizer": "adam"}
    return Checkpoint(model=model, vocab=vocab, iteration=steps, position=position,
                      hidden=np.asarray(h).reshape(model.state_size, streams),
                      hyperparameters=hyper)


# An exported model's loss of a text (PyTorch's, onnxruntime's) against ours, by dtype
EXPORT_RTOL = {"float64": 1e-10, "float32": 1e-5}
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def export_kind(tmp_path, kind, text, ext):
    """(kind_checkpoint(*kind, text) saved as tmp_path/input.npz, the file
    charrnn-export's main writes from it: tmp_path/input<ext>)."""
    from charrnn_ext.cli.export import main
    ckpt = kind_checkpoint(*kind, text)
    ckpt.save(tmp_path / "input.npz")
    assert main([str(tmp_path / "input.npz"), str(tmp_path / f"input{ext}")]) == 0
    return ckpt, tmp_path / f"input{ext}"


def readme_block(marker: str) -> str:
    """The one ```py block of README.md that contains ``marker``."""
    import re
    with open(README, encoding="utf-8") as f:
        blocks = [b for b in re.findall(r"^```py\n(.*?)^```", f.read(), re.M | re.S)
                  if marker in b]
    assert len(blocks) == 1, f"{len(blocks)} blocks of README.md contain {marker!r}"
    return blocks[0]


def greedy_margins(ckpt, prime: str, text: str) -> np.ndarray:
    """Our model's margin (log-probability of its first choice less its
    second's) at each character it chose greedily in ``text`` after ``prime``
    (read from the state training left): where these are well above two
    implementations' difference, their greedy texts are the model's, not
    their rounding's."""
    ids = ckpt.vocab.encode(prime + text)
    _, probs = ckpt.model.trace(ids[:-1], ckpt.hidden[:, :1])
    top2 = np.sort(np.log(probs[len(prime) - 1:].astype(np.float64)), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]
