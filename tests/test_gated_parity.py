"""The gated and stacked models (LSTM, GRU, tanh RNN of L layers, dropout) against their numpy oracle.

charrnn_ext.core.reference_gated is the obvious loop; the core must agree within
RTOL on the loss, every gradient and every state, for B streams, T = 1,
H = 1, dropout, and over many training steps; loss, advance and sample too.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN
from charrnn_ext.core import reference_gated as R
from charrnn_ext.core.reference import ADAGRAD_EPS
from charrnn_ext.core.model import CharRNN

from conftest import RTOL, TRAIN_RTOL, assert_close, same_loss

from charrnn_ext.core.cells import NAMES as CELLS  # noqa: E402
# (V, H, T, B, L): the shapes, incl. T = 1, H = 1, one and many streams, 3 layers,
# and B >= 2 (blocked recurrence) next to B = 1 (matvec); B 40 and 48: the
# recurrence in groups of streams (2 and 3), the weight gradients and the
# products with the layer below in pieces; B 15, H 384: one group, each
# step's product in pieces of columns
SHAPES = [(7, 5, 6, 1, 1), (7, 5, 6, 3, 2), (11, 1, 4, 2, 2), (5, 4, 1, 1, 2),
          (9, 6, 5, 17, 3), (13, 8, 9, 2, 1), (11, 64, 8, 40, 2), (9, 20, 3, 48, 1),
          (7, 384, 2, 15, 1)]


def problem(cell, V, H, T, B, L, seed=0, scale=2.0, dropout=0.0, D=0):
    """A model with PyTorch's init times ``scale`` (gates away from linear), a
    chunk (B, T), a random state (S, B)."""
    rng = np.random.default_rng(seed)
    params = {n: a * scale for n, a in R.init_params(cell, V, H, L, seed, D).items()}
    model = CharRNN.from_params(params, dropout=dropout)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = rng.normal(size=(R.state_size(cell, H, L), B)) * 0.5
    return model, params, x, y, state, rng


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("V, H, T, B, L", SHAPES)
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_loss_grads_state(cell, V, H, T, B, L, dropout):
    model, params, x, y, state, rng = problem(cell, V, H, T, B, L, dropout=dropout)
    u = rng.random((L - 1, T, B, H)) if dropout and L > 1 else None
    loss, grads, last = model.loss_and_grads(x, y, state, uniforms=u)
    ref_loss, ref_grads, ref_last = R.batch_lossFun(cell, L, x, y, state, params, dropout, u)
    same_loss(loss, ref_loss, T)
    assert set(grads) == set(ref_grads)
    for name in grads:
        assert_close(grads[name], ref_grads[name], RTOL, name)
    assert_close(last, ref_last, RTOL, "state")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L, B, dropout", [(1, 1, 0.0), (2, 3, 0.3)])
def test_input_embedding(cell, L, B, dropout):
    """An input embedding (V, D): layer 0 reads embed[x]; dembed and dW_ih from dtable."""
    V, H, T, D = 9, 5, 6, 4
    model, params, x, y, state, rng = problem(cell, V, H, T, B, L, dropout=dropout, D=D,
                                              scale=0.7)
    assert model.embedding_size == D and model.params["weight_ih_l0"].shape[1] == D
    u = rng.random((L - 1, T, B, H)) if dropout and L > 1 else None
    loss, grads, last = model.loss_and_grads(x, y, state, uniforms=u)
    ref_loss, ref_grads, ref_last = R.batch_lossFun(cell, L, x, y, state, params, dropout, u)
    same_loss(loss, ref_loss, T)
    for name in ref_grads:
        assert_close(grads[name], ref_grads[name], RTOL, name)
    assert_close(last, ref_last, RTOL, "state")
    same_loss(model.loss(x, y, state), R.batch_lossFun(cell, L, x, y, state, params)[0], T)


@pytest.mark.parametrize("cell", CELLS)
def test_clipping_bites(cell):
    """Long chunks of one target: gradients beyond [-5, 5] (dby[0] about -T), clipped
    after averaging, as the oracle."""
    model, params, x, y, state, _ = problem(cell, 6, 4, 40, 2, 2, scale=3.0)
    y = np.zeros_like(y)
    _, grads, _ = model.loss_and_grads(x, y, state)
    _, ref_grads, _ = R.batch_lossFun(cell, 2, x, y, state, params)
    raw = R.batch_lossFun(cell, 2, x, y, state, params, clip=False)[1]
    assert max(np.abs(g).max() for g in raw.values()) > 5.0
    for name in grads:
        assert_close(grads[name], ref_grads[name], RTOL, name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L, B", [(1, 1), (2, 3)])
def test_training_steps(cell, L, B):
    """Twelve train_steps (teacher-forced chunks) against the oracle with Adagrad."""
    V, H, T, lr = 8, 6, 7, 0.1
    model, params, _, _, _, rng = problem(cell, V, H, T, B, L, scale=1.0)
    memory = {n: np.zeros_like(a) for n, a in params.items()}
    state = ref_state = None
    for _ in range(12):
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        loss, state = model.train_step(x, y, state, lr)
        ref_loss, grads, ref_state = R.batch_lossFun(cell, L, x, y, ref_state, params)
        R.adagrad_step(params, memory, grads, lr, ADAGRAD_EPS)
        same_loss(loss, ref_loss, T, TRAIN_RTOL)
    for name in params:
        assert_close(model.params[name], params[name], TRAIN_RTOL, name)
        assert_close(model.memory[name], memory[name], TRAIN_RTOL, name)
    assert_close(state, ref_state, TRAIN_RTOL, "state")


@pytest.mark.parametrize("cell", CELLS)
def test_adam_steps(cell):
    """Ten Adam steps (the update.pxi shared with the tanh RNN) against the oracle."""
    V, H, T, B, L, lr = 8, 6, 7, 3, 2, 0.01
    rng = np.random.default_rng(3)
    params = R.init_params(cell, V, H, L, 3)
    model = CharRNN.from_params(params, optimizer="adam")
    moment = {n: np.zeros_like(a) for n, a in params.items()}
    memory = {n: np.zeros_like(a) for n, a in params.items()}
    state = ref_state = None
    for t in range(1, 11):
        x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
        loss, state = model.train_step(x, y, state, lr)
        ref_loss, grads, ref_state = R.batch_lossFun(cell, L, x, y, ref_state, params)
        R.adam_step(params, moment, memory, grads, lr, t)
        same_loss(loss, ref_loss, T, TRAIN_RTOL)
    assert model.adam_steps == 10
    for name in params:
        assert_close(model.params[name], params[name], TRAIN_RTOL, name)
        assert_close(model.moment[name], moment[name], TRAIN_RTOL, name)
        assert_close(model.memory[name], memory[name], TRAIN_RTOL, name)


@pytest.mark.parametrize("cell", CELLS)
def test_loss_any_length_and_advance(cell):
    """loss over 700 steps (several blocks) and advance, one stream and B."""
    model, params, _, _, _, rng = problem(cell, 9, 5, 1, 1, 2)
    ids = rng.integers(0, 9, 701)
    loss, h = model.loss(ids[:-1], ids[1:], None, return_hidden=True)
    ref_loss, _, ref_h = R.batch_lossFun(cell, 2, [ids[:-1]], [ids[1:]], None, params)
    same_loss(loss, ref_loss, 700)
    assert_close(h, ref_h, RTOL, "state after loss")
    assert_close(model.advance(ids[:-1]), ref_h, RTOL, "advance")
    x = rng.integers(0, 9, (4, 300))
    y = rng.integers(0, 9, (4, 300))
    same_loss(model.loss(x, y, None), R.batch_lossFun(cell, 2, x, y, None, params)[0], 300)


@pytest.mark.parametrize("cell", CELLS)
def test_loss_from_zero_state_is_summed(cell):
    model = CharRNN(10, 6, 3, cell=cell, num_layers=2)
    ids = np.arange(30) % 10
    summed, h = 0.0, None
    for t in range(29):     # one step at a time, carrying the state
        loss, h = model.loss(ids[t:t + 1], ids[t + 1:t + 2], h, return_hidden=True)
        summed += loss
    same_loss(model.loss(ids[:-1], ids[1:], None), summed, 29)
    assert_close(model.advance(ids[:-1]), h, RTOL, "advance")


@pytest.mark.parametrize("cell", CELLS)
def test_sample_follows_the_oracle(cell):
    """sample draws as inverse CDF over softmax(y / temperature) with rng.random(n)."""
    model, params, _, _, _, _ = problem(cell, 12, 6, 1, 1, 2, scale=3.0)
    state = model.advance([1, 2, 3])
    ids, after = model.sample(state, 4, 40, temperature=0.8, rng=7, return_hidden=True)
    u = np.random.default_rng(7).random(40)
    h, x, expected = state, 4, []
    for t in range(40):
        _, _, h = R.batch_lossFun(cell, 2, [[x]], [[0]], h, params)
        top = params["Why"] @ h[-6:, 0] + params["by"]       # the top layer's h (rnn/gru)
        if cell == "lstm":
            top = params["Why"] @ h[-12:-6, 0] + params["by"]
        p = np.exp((top - top.max()) / 0.8)
        x = int(np.searchsorted(np.cumsum(p) / p.sum(), u[t], side="right"))
        expected.append(x)
    assert list(ids) == expected
    assert_close(after, h, RTOL, "state after sampling")
    greedy = model.sample(state, 4, 5, temperature=0)
    assert greedy.shape == (5,) and np.all((greedy >= 0) & (greedy < 12))


def test_default_is_min_char_rnn():
    """cell rnn, one layer: CharRNN itself, the seed's parameters."""
    assert type(CharRNN(5, 4, 0)) is CharRNN
    assert type(CharRNN(5, 4, 0, cell="rnn", num_layers=1)) is CharRNN
    model = CharRNN(5, 4, 0, cell="gru", num_layers=1)
    assert isinstance(model, CharRNN) and model.cell == "gru"
    with pytest.raises(ValueError):
        CharRNN(5, 4, 0, cell="transformer")
    with pytest.raises(ValueError):
        CharRNN(5, 4, 0, cell="lstm", dropout=1.0)


def test_dropout_draws_follow_the_seed():
    """Training with dropout is deterministic from the seed, and dropout changes it."""
    ids = np.arange(400) % 13
    runs = [CharRNN(13, 8, s, cell="lstm", num_layers=2, dropout=p).train(ids, 5, 10)[0]
            for s, p in ((1, 0.3), (1, 0.3), (1, 0.0))]
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
