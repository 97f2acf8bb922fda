"""charrnn_ext.evaluate: the held-out and training figures continue the data
pass from where training stands, so the state and the text it reads agree.

On periodic texts a trained model is confidently right when it reads the
text in step with its state and confidently wrong out of step: a state moved
to another place in the text scored 'ab' * N at ~12 bits/char while training
scored 0.0003. These texts are where a wrong evaluation shows.

Also here: the figures the train command prints and keeps (its history, the
best model's score), run as subprocesses, against evaluate."""
import math
import re

import numpy as np
import pytest

from charrnn_ext import CharRNN, Vocab, evaluate, load_checkpoint

from conftest import SMALL_FLAGS, run_cli


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


def test_evaluation_is_a_continuation_of_the_training_text():
    """evaluate(): from the states at the given position, read the training
    text on in order (stream B-1's part, then the rest), score its last
    characters, then go on into the held-out prefix, in one pass (equal to
    scoring the concatenated text step by step)."""
    from charrnn_ext import evaluate

    rng = np.random.default_rng(0)
    V, H = 7, 6
    model = CharRNN(V, H, seed=2)
    ids = rng.integers(0, V, 400).astype(np.int32)
    h0 = rng.standard_normal((H, 1)) * 0.5
    n_train = 300
    s = evaluate(model, ids, n_train, h0, 209, train_chars=50, val_chars=30)
    assert (s.train_chars, s.val_chars) == (50, 30)
    # the same by hand: inputs ids[209:249] are read, ids[249:299] -> targets ids[250:300],
    # then ids[299:329] -> targets ids[300:330]
    h = model.advance(ids[209:249], h0)
    train_nats, h = model.loss(ids[249:299], ids[250:300], h, return_hidden=True)
    val_nats = model.loss(ids[299:329], ids[300:330], h)
    assert s.train_bpc == pytest.approx(train_nats / 50 / math.log(2), rel=1e-12)
    assert s.val_bpc == pytest.approx(val_nats / 30 / math.log(2), rel=1e-12)
    # B streams: the read starts in the last stream's part (parts of 100), from its state
    hB = rng.standard_normal((H, 3)) * 0.5
    sB = evaluate(model, ids, n_train, hB, 9, train_chars=50, val_chars=30)
    h = model.advance(ids[209:249], hB[:, 2:])
    assert sB.train_bpc == pytest.approx(
        model.loss(ids[249:299], ids[250:300], h) / 50 / math.log(2), rel=1e-12)
    # the read is never shorter than from the position: fewer training characters scored
    near = evaluate(model, ids, n_train, h0, 280, train_chars=50)
    assert near.train_chars == 300 - 1 - 280
    # None: the data pass's start, zero states at position 0
    assert evaluate(model, ids, n_train) == evaluate(model, ids, n_train, np.zeros((H, 1)), 0)
    assert evaluate(model, ids, n_train, None, streams=3) == \
        evaluate(model, ids, n_train, np.zeros((H, 3)), 0)
    short = evaluate(model, ids, n_train, h0, 0, train_chars=10**6, val_chars=10**6)
    assert (short.train_chars, short.val_chars) == (n_train - 1, 100)
    assert evaluate(model, ids, ids.size, h0).val_bpc is None
    # the end of a part (a step of T = part - 1 leaves it there) is the data pass's reset
    assert evaluate(model, ids, n_train, h0, 299) == evaluate(model, ids, n_train)
    # positions the data pass never stands at, and states of the wrong shape, are refused
    for bad in (-1, 300, 1.5, True):
        with pytest.raises(ValueError, match="position"):
            evaluate(model, ids, n_train, h0, bad)
    with pytest.raises(ValueError, match="streams"):
        evaluate(model, ids, n_train, hB, 0, streams=2)
    with pytest.raises(ValueError, match="hidden"):
        evaluate(model, ids, n_train, np.zeros((H + 1, 1)), 0)


# ---------------------------------------------------------------------------
# the figures the train command reports and keeps
# ---------------------------------------------------------------------------

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


def test_kept_best_model_rescores_exactly(long_run):
    d, out = long_run
    ckpt, best = load_checkpoint(d / "words.npz"), load_checkpoint(d / "words.best.npz")
    text = (d / "words.txt").read_text(encoding="utf-8")
    ids = Vocab.from_text(text).encode(text)
    n_train = ids.size - int(ids.size * 0.05)
    vals = ckpt.history["val_bpc"]
    assert ckpt.best_val_bpc == best.best_val_bpc == vals.min()
    assert best.iteration == ckpt.best_iteration == ckpt.history["val_iteration"][np.argmin(vals)]
    assert evaluate(best.model, ids, n_train, best.hidden, best.position).val_bpc == best.best_val_bpc
    m = re.search(r"^best validation: (\S+) bits/char at iteration (\d+), kept in words.best.npz$",
                  out, re.M)
    assert m and int(m.group(2)) == best.iteration
    # the model learnt: far below a uniform guess, train and validation alike
    V = len(ckpt.vocab)
    assert best.best_val_bpc < 0.7 * math.log2(V)
    assert ckpt.history["train_bpc"][-1] < 0.7 * math.log2(V)


def test_figures_are_those_of_the_saved_state(text_dir_20k):
    rc, _, err = run_cli("train", "t.txt", *SMALL_FLAGS, "--sample-every", 1000, "--iters", 600,
                         "--eval-every", 200, "--checkpoint", "q.npz", cwd=text_dir_20k)
    assert rc == 0, err
    ckpt = load_checkpoint(text_dir_20k / "q.npz")
    text = (text_dir_20k / "t.txt").read_text(encoding="utf-8")
    ids = Vocab.from_text(text).encode(text)
    n_train = ids.size - int(ids.size * 0.05)
    s = evaluate(ckpt.model, ids, n_train, ckpt.hidden, ckpt.position)
    assert s.val_bpc == ckpt.history["val_bpc"][-1]


@pytest.mark.parametrize("B", [1, 3])
def test_an_embedded_adam_model_scores_as_its_one_hot_twin(B):
    """evaluate reads an input embedding (the batched recipe's model): its
    figures equal those of the one-hot model Wxh @ embed.T, which computes
    the same function, from the same states, within rounding."""
    text, ids = _periodic("abcdefgh", 8_000)
    V, n_train = 8, 8_000 - 400
    model = CharRNN(V, 16, seed=2, embedding_size=5, optimizer="adam", init="pytorch")
    _, h, p = model.train(ids[:n_train], 200, 10, None, 0, 0.01, streams=B)
    params = {n: np.array(model.params[n]) for n in ("Whh", "Why", "bh", "by")}
    params["Wxh"] = np.array(model.params["Wxh"]) @ np.array(model.params["embed"]).T
    twin = CharRNN.from_params(params)
    got, want = evaluate(model, ids, n_train, h, p), evaluate(twin, ids, n_train, h, p)
    assert (got.train_chars, got.val_chars) == (want.train_chars, want.val_chars)
    assert got.val_bpc == pytest.approx(want.val_bpc, rel=1e-9)
    assert got.train_bpc == pytest.approx(want.train_bpc, rel=1e-9)
    assert got.val_bpc < 1.0       # trained on the period: far below log2(8) = 3
    # a state from elsewhere scores differently: the figures depend on the embedding
    other = CharRNN(V, 16, seed=3, embedding_size=5, optimizer="adam", init="pytorch")
    assert evaluate(other, ids, n_train, h, p).val_bpc != got.val_bpc
