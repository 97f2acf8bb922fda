"""charrnn_ext.training.run, a whole training run as a library call (what
charrnn-train and charrnn-sweep's workers call), in memory: its steps are
min-char-rnn's data pass run by CharRNN.train, a run resumed from its Result
ends where a straight run does, bad settings and texts are refused before
any step.

The same run through the command (files, flags, signals): test_cli_train*.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN, Vocab, training

from conftest import data_pass_end, english_like_text, same_model

WORDS_6K = english_like_text(6000, seed=11)
QUIET = {"sample_every": 10**6, "eval_every": 10**6}   # one evaluation, at the end


@pytest.mark.parametrize("B", [1, 3])
def test_a_run_is_model_train_over_the_data_pass(B):
    """A fresh run's model, hidden states and position are those of
    CharRNN(V, H, seed).train over the training part of the text (the text
    less its held-out end), with the position the oracle gives."""
    settings = dict(QUIET, iters=250, hidden_size=16, seq_length=12, batch_size=B, seed=4,
                    recipe="min-char-rnn")
    result = training.run(WORDS_6K, settings)
    vocab = Vocab.from_text(WORDS_6K)
    ids = vocab.encode(WORDS_6K)
    n_train = ids.size - int(ids.size * 0.05)
    model = CharRNN(len(vocab), 16, seed=4)
    _, hidden, position = model.train(ids[:n_train], 250, 12, streams=B)
    run = result.run
    assert run.iteration == 250 and result.steps == 250 and not result.stopped
    assert same_model(run.model, model)
    assert np.array_equal(run.hidden, hidden.reshape(16, B))
    assert run.position == position == data_pass_end(n_train, 12, 250, streams=B)
    assert result.final.val_bpc is not None and result.final.val_bpc < np.log2(len(vocab))


def test_a_resumed_run_ends_where_a_straight_run_does():
    settings = dict(QUIET, iters=240, hidden_size=12, seq_length=10, seed=2)
    straight = training.run(WORDS_6K, settings).run
    half = training.run(WORDS_6K, dict(settings, iters=120)).run
    resumed = training.run(WORDS_6K, {"iters": 240}, resume=half).run   # the rest from the checkpoint
    assert resumed is half and resumed.iteration == 240
    assert same_model(straight.model, resumed.model)
    assert np.array_equal(straight.hidden, resumed.hidden)
    assert straight.position == resumed.position
    assert straight.rng.bit_generator.state == resumed.rng.bit_generator.state


@pytest.mark.parametrize("settings, error, words", [
    ({"hiden_size": 8}, ValueError, "unknown setting 'hiden_size'"),
    ({"hidden_size": 0}, ValueError, "hidden_size"),
    ({"seq_length": 10**6}, training.TextError, "seq-length"),
])
def test_bad_settings_are_refused_before_any_step(settings, error, words):
    with pytest.raises(error, match=words):
        training.run(WORDS_6K, dict(QUIET, iters=5, **settings))
