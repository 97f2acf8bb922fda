"""The gated and stacked models' gradients against finite differences, and their thread-count independence.

Finite differences of the core's own forward-only loss (model.loss) check
the core's backward independently of the numpy oracle; the threaded parts
(the output layer's stripes, the recurrence's groups of streams, the pieces
of products) must give the same bits on any number of threads.
"""
import numpy as np
import pytest

import charrnn_ext
from charrnn_ext import CharRNN
from charrnn_ext.core import reference_gated as R
from charrnn_ext.core.model import CharRNN

from conftest import worst_difference_error

from charrnn_ext.core.cells import NAMES as CELLS  # noqa: E402


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("L, B, dropout, D", [(1, 1, 0.0, 0), (2, 3, 0.0, 0), (2, 2, 0.5, 0),
                                              (2, 2, 0.0, 3)])
def test_gradients_match_finite_differences(cell, L, B, dropout, D):
    V, H, T, eps = 6, 4, 5, 1e-6
    rng = np.random.default_rng(5)
    params = {n: a * (1.5 if n != "embed" else 0.5)
              for n, a in R.init_params(cell, V, H, L, 5, D).items()}
    model = CharRNN.from_params(params, dropout=dropout)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = rng.normal(size=(model.state_size, B)) * 0.5
    u = rng.random((L - 1, T, B, H)) if dropout and L > 1 else None
    _, grads, _ = model.loss_and_grads(x, y, state, uniforms=u)   # all well inside the clip

    def loss_at():
        if u is None:
            return model.loss(x, y, state)
        return model.loss_and_grads(x, y, state, uniforms=u)[0]   # dropout: training's loss

    worst = worst_difference_error(model.params, grads, loss_at, eps, 6, rng)
    assert worst < 1e-6, worst


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("V, H, T, B", [(300, 440, 4, 2), (11, 64, 8, 40), (7, 384, 2, 15)])
def test_same_bits_on_any_thread_count(cell, V, H, T, B, restore_threads):
    """Train, loss, advance, sample give the same bits on 1, 2 and 3 threads:
    a striped output layer (V*H >= 131072, V >= 256); the recurrence in
    groups of streams (B 40) with the weight gradients in pieces; one group
    with each step's product in pieces of columns (B 15, H 384)."""
    rng = np.random.default_rng(2)
    data = rng.integers(0, V, 2000)
    results = []
    for threads in (1, 2, 3):
        charrnn_ext.set_num_threads(threads)
        model = CharRNN(V, H, 1, cell=cell, num_layers=2, dropout=0.2)
        losses, state, _ = model.train(data, 2, T, streams=B)
        loss = model.loss(data[:50], data[1:51], None)
        ids = model.sample(model.advance(data[:10]), 3, 20, rng=4)
        results.append((losses, state, loss, ids, model.params["Why"].copy()))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert np.array_equal(a, b)
