"""charrnn_ext.evaluate: the held-out and training figures continue the data
pass from where training stands, so the state and the text it reads agree.

On periodic texts a trained model is confidently right when it reads the
text in step with its state and confidently wrong out of step: a state moved
to another place in the text scored 'ab' * N at ~12 bits/char while training
scored 0.0003. These texts are where a wrong evaluation shows."""
import math

import numpy as np
import pytest

from charrnn_ext import CharRNN, evaluate, load_checkpoint
from conftest import run_cli


def _periodic(period: str, n: int):
    text = (period * (n // len(period) + 1))[:n]
    vocab = sorted(set(text))
    return text, np.array([vocab.index(c) for c in text], dtype=np.int32)


@pytest.mark.parametrize("period, H, T, B, n", [
    ("ab", 16, 25, 1, 20_000),        # odd T: the chunks start in alternating phase
    ("ab", 16, 16, 1, 20_000),
    ("abcb", 16, 25, 1, 40_000),
    ("ab", 16, 25, 3, 20_000),        # streams: the read starts in the last part
    ("abcdefg", 32, 10, 2, 70_000),
])
def test_periodic_texts_score_as_training_does(period, H, T, B, n):
    _, ids = _periodic(period, n)
    n_train = n - int(n * 0.05)
    model = CharRNN(int(ids.max()) + 1, H, seed=0)
    losses, h, p = model.train(ids[:n_train], 300, T, None, 0, 0.1, streams=B)
    trained = losses[-20:].mean() / T / math.log(2)
    assert trained < 0.02                        # the model has learnt the period
    s = evaluate(model, ids, n_train, h, p)
    assert s.val_bpc < 0.02 and s.train_bpc < 0.02, (s, trained)
    # by construction: the text read on in order from the last stream's position
    part = n_train // B
    start = (B - 1) * part + p
    S = min(10_000, n_train - 1 - start)
    hh = model.advance(ids[start:n_train - 1 - S], h[:, B - 1:])
    nats, hh = model.loss(ids[n_train - 1 - S:n_train - 1], ids[n_train - S:n_train], hh,
                          return_hidden=True)
    assert s.train_bpc == pytest.approx(nats / S / math.log(2), rel=1e-9, abs=1e-12)


def test_the_training_tool_reports_and_keeps_in_phase_figures(tmp_path):
    """charrnn-train on 'ab' * N: the figures it prints, the best model it
    keeps and the history it saves are those of the model it trained."""
    text, ids = _periodic("ab", 200_000)
    (tmp_path / "ab.txt").write_text(text, encoding="utf-8")
    rc, out, err = run_cli("train", "ab.txt", "--hidden-size", 16, "--iters", 400,
                           "--eval-every", 200, "--sample-every", 200, "--checkpoint", "m.npz",
                           cwd=tmp_path)
    assert rc == 0, err
    ckpt, best = load_checkpoint(tmp_path / "m.npz"), load_checkpoint(tmp_path / "m.best.npz")
    assert ckpt.history["val_bpc"][1:].max() < 0.05, ckpt.history["val_bpc"]
    assert ckpt.history["train_bpc"][1:].max() < 0.05
    assert best.best_val_bpc < 0.05
    n_train = ids.size - int(ids.size * 0.05)
    assert evaluate(best.model, ids, n_train, best.hidden, best.position).val_bpc \
        == best.best_val_bpc
