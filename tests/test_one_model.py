"""One model class for every cell, layer count, embedding and dtype: one loop in the core, one set of errors, init honoured, one from_params.

The kernels' parity with the numpy references is test_core_parity's and
test_gated_parity's; here the one class is held to the same behaviour on
every kind of model (tests/model_kinds.py).
"""
import pickle

import numpy as np
import pytest

from charrnn_ext import CharRNN
from charrnn_ext.core import cells
from charrnn_ext.core.datapass import chunk_wraps
from charrnn_ext.core.reference_gated import param_shapes

from model_kinds import KIND_IDS, KINDS, SHAPES, kinds

V, H = 9, 6


def model_of(kind, seed=2, dropout=0.0, **kw):
    cell, dtype, shape = kind
    L, D = SHAPES[shape]
    return CharRNN(V, H, seed, cell=cell, num_layers=L, embedding_size=D, dtype=dtype,
                   dropout=dropout if L > 1 else 0.0, **kw)


def same(a, b) -> bool:
    return list(a.params) == list(b.params) and all(
        np.array_equal(a.params[n], b.params[n]) and np.array_equal(a.memory[n], b.memory[n])
        for n in a.params)


@kinds
@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_train_in_the_core_is_the_loop_of_train_steps(kind, optimizer):
    """model.train (every step in the core, dropout's draws of a whole call at
    once) equals min-char-rnn's loop of train_step calls bit for bit: losses,
    parameters, optimiser state, states and position, across wraps of the
    data pass."""
    B, T, steps, lr = 2, 7, 23, (0.05 if optimizer == "adagrad" else 0.01)
    data = np.random.default_rng(5).integers(0, V, 2 * 60)
    fast = model_of(kind, dropout=0.3, optimizer=optimizer)
    slow = model_of(kind, dropout=0.3, optimizer=optimizer)
    losses, h, position = fast.train(data, steps, T, learning_rate=lr, streams=B)
    part, pos, state, ref = data.size // B, 0, None, []
    parts = data[:B * part].reshape(B, part)
    for _ in range(steps):
        if chunk_wraps(pos, part, T):
            pos, state = 0, None
        loss, state = slow.train_step(parts[:, pos:pos + T], parts[:, pos + 1:pos + T + 1],
                                      state, lr)
        ref.append(loss)
        pos += T
    assert np.array_equal(losses, np.array(ref, dtype=fast.dtype))
    assert same(fast, slow) and np.array_equal(h, state) and position == pos
    assert fast.adam_steps == slow.adam_steps


@kinds
def test_one_class_and_its_names(kind):
    model = model_of(kind)
    cell, _, shape = kind
    L, D = SHAPES[shape]
    assert type(model) is CharRNN and model.cell == cell and model.num_layers == L
    assert model.minchar == ((cell, L) == ("rnn", 1))
    if model.minchar:      # min-char-rnn's names and shapes
        assert list(model.params) == ["Wxh", "Whh", "Why", "bh", "by"] + (["embed"] if D else [])
        assert model.params["bh"].shape == (H, 1)
    else:                  # PyTorch's
        assert dict((n, a.shape) for n, a in model.params.items()) == \
            param_shapes(cell, V, H, L, D)
    assert model.state_size == L * cells.CELLS[cell].state_rows * H
    back = CharRNN.from_params(model.params, model.memory, cell=cell, dtype=model.dtype)
    assert same(back, model) and back.minchar == model.minchar
    assert pickle.loads(pickle.dumps(model)) == model


@kinds
def test_one_set_of_errors(kind):
    model = model_of(kind)
    with pytest.raises(TypeError, match="seed_ix must be an integer"):
        model.sample(None, 1.5, 3)
    with pytest.raises(ValueError, match="seed_ix = 99 is outside"):
        model.sample(None, 99, 3)
    with pytest.raises(ValueError, match="hprev must have shape"):
        model.loss([1, 2], [2, 3], np.zeros((model.state_size + 1, 1)))
    with pytest.raises(ValueError, match="outside"):
        model.loss([1, 2], [2, V], None)
    with pytest.raises(ValueError, match="differ in length"):
        model.train_step([1, 2, 3], [2, 3], None)
    params = {n: np.array(a) for n, a in model.params.items()}
    name = next(iter(params))
    params[name][0, 0] = np.nan
    with pytest.raises(ValueError, match=f"params\\['{name}'\\] contains NaN"):
        CharRNN.from_params(params, dtype=model.dtype)
    model.params[name][0, 0] = np.inf
    with pytest.raises(ValueError, match=f"params\\['{name}'\\]\\[0, 0\\] is inf"):
        model.loss([1, 2], [2, 3], None)


@pytest.mark.parametrize("cell", cells.NAMES)
@pytest.mark.parametrize("L", [1, 2])
def test_init_is_honoured_for_every_cell(cell, L):
    """init="min-char-rnn": weights randn * 0.01 and zero biases; "pytorch":
    uniform in +-1/sqrt(H); None: min-char-rnn's for its own model, PyTorch's
    for the others."""
    small = CharRNN(V, 50, 1, cell=cell, num_layers=L, init="min-char-rnn")
    torch_like = CharRNN(V, 50, 1, cell=cell, num_layers=L, init="pytorch")
    for name, a in small.params.items():
        if name.startswith("b") or name.startswith("bias"):
            assert not np.any(a), name
        else:
            assert 0.003 < np.std(a) < 0.03, name
    bound = 1 / np.sqrt(50)
    assert all(np.abs(a).max() <= bound and np.abs(a).max() > bound / 2
               for a in torch_like.params.values())
    default = CharRNN(V, 50, 1, cell=cell, num_layers=L)
    assert default == (small if (cell, L) == ("rnn", 1) else torch_like)


def test_from_params_reads_the_cell_or_is_told():
    lstm = CharRNN(V, H, 1, cell="lstm")
    assert CharRNN.from_params(lstm.params).cell == "lstm"
    with pytest.raises(ValueError, match="weight_hh_l0.*rows"):
        CharRNN.from_params({**lstm.params, "weight_hh_l0": np.zeros((5 * H, H))})
    with pytest.raises(ValueError, match="names"):
        CharRNN.from_params({"W": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="dict of arrays"):
        CharRNN.from_params([1, 2])
    tanh = CharRNN(V, H, 1)
    with pytest.raises(ValueError, match="tanh RNN's, not cell 'gru'"):
        CharRNN.from_params(tanh.params, cell="gru")


def test_every_kind_is_in_the_table():
    assert len(KINDS) == len(KIND_IDS) == 12
    assert cells.NAMES == ("rnn", "lstm", "gru")
    for cell in cells.CELLS.values():
        assert cell.gates == len(cell.gate_order) and len(cell.onnx_order) == cell.gates


@pytest.mark.parametrize("cell", cells.NAMES)
def test_the_core_agrees_with_the_cell_table(cell):
    """The core's own dispatch on the cell (its enum) and the table say the same:
    gate blocks per weight, state blocks per layer."""
    model = CharRNN(V, H, 0, cell=cell, num_layers=2)
    entry = cells.CELLS[cell]
    assert model._workspace.state_parts == entry.state_rows
    assert model.params["weight_hh_l1"].shape == (entry.gates * H, H)
    assert model.state_size == 2 * entry.state_rows * H
