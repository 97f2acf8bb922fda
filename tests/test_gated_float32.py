"""The gated and stacked models in float32 (CharRNN(..., cell=..., dtype="float32"),
the GatedWorkspace of charrnn_ext._core32) against float64 at float32's
tolerance, on their own gradient checks, bit-identical on 1, 2 and 3 threads,
and through checkpoints. float64 stays the reference (test_gated_parity)."""
import numpy as np
import pytest

import charrnn_ext
from charrnn_ext import CharRNN, load_checkpoint
from charrnn_ext.core import reference_gated as R
from charrnn_ext.ckpt.checkpoint import Checkpoint, save_checkpoint
from charrnn_ext.core._dispatch import core32
from charrnn_ext.core.model import CharRNN
from charrnn_ext.text.vocab import Vocab

from conftest import assert_close, assert_reads_alike, worst_difference_error

pytestmark = pytest.mark.skipif(core32 is None, reason="the float32 core is not built")
F32 = 1e-4        # float32 rounding (eps 1.2e-7) accumulated over a chunk and the gates
from charrnn_ext.core.cells import NAMES as CELLS  # noqa: E402


def problem(cell, V, H, T, B, L, D=0, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    params = {n: a * scale for n, a in R.init_params(cell, V, H, L, seed, D).items()}
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    state = rng.normal(size=(R.state_size(cell, H, L), B)) * 0.5
    return params, x, y, state, rng


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("V, H, T, B, L, D", [(9, 7, 5, 1, 1, 0), (11, 12, 6, 3, 2, 4),
                                              (13, 64, 8, 40, 2, 0), (7, 384, 2, 15, 1, 8)])
def test_float32_agrees_with_float64(cell, V, H, T, B, L, D):
    """Loss, every gradient and the last states, with dropout between layers;
    the recurrence in groups of streams (B 40) and in pieces (B 15, H 384)."""
    params, x, y, state, rng = problem(cell, V, H, T, B, L, D)
    u = rng.random((L - 1, T, B, H)) if L > 1 else None
    f64 = CharRNN.from_params(params, dropout=0.3)
    f32 = CharRNN.from_params(params, dropout=0.3, dtype="float32")
    assert f32.dtype == np.float32 and f32.params["weight_hh_l0"].dtype == np.float32
    assert "float32" in repr(f32)
    loss64, g64, s64 = f64.loss_and_grads(x, y, state, uniforms=u)
    loss32, g32, s32 = f32.loss_and_grads(x, y, state, uniforms=u)
    assert abs(loss32 - loss64) <= F32 * abs(loss64)
    assert s32.dtype == np.float32
    assert_close(s32, s64, F32, "state")
    assert set(g32) == set(g64)
    for name in g64:
        assert g32[name].dtype == np.float32
        assert_close(g32[name], g64[name], 20 * F32, f"d{name}")
    ref_loss = R.batch_lossFun(cell, L, x, y, state, params, 0.3, u)[0]
    assert abs(loss32 - ref_loss) <= F32 * abs(ref_loss)
    assert abs(f32.loss(x, y, state) - f64.loss(x, y, state)) <= F32 * abs(loss64)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_gradients_match_finite_differences(cell):
    """The float32 core's own gradients against central differences of its own loss."""
    params, x, y, state, rng = problem(cell, 7, 5, 4, 2, 2, D=3, scale=1.0)
    _, grads, _ = CharRNN.from_params(params, dtype="float32").loss_and_grads(x, y, state)
    def loss_at():
        return CharRNN.from_params(params, dtype="float32").loss(x, y, state)

    worst = worst_difference_error(params, grads, loss_at, 1e-2, 4, rng)
    assert worst < 3e-3, worst


@pytest.mark.parametrize("cell", CELLS)
def test_float32_same_bits_on_any_thread_count(cell, restore_threads):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 11, 4000)
    out = []
    for threads in (1, 2, 3):
        charrnn_ext.set_num_threads(threads)
        model = CharRNN(11, 64, 1, cell=cell, num_layers=2, dropout=0.2, dtype="float32",
                        optimizer="adam", embedding_size=8)
        losses, state, _ = model.train(data, 3, 8, streams=40, learning_rate=0.002)
        out.append((losses, state, model.params["weight_hh_l1"].copy(),
                    model.params["embed"].copy(), model.loss(data[:90], data[1:91], None)))
    for other in out[1:]:
        for a, b in zip(out[0], other):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("cell", ("lstm", "gru"))
def test_float32_training_follows_float64(cell):
    rng = np.random.default_rng(4)
    data = rng.integers(0, 20, 6000)
    kw = dict(seed=2, cell=cell, optimizer="adam", embedding_size=8)
    a, b = CharRNN(20, 24, **kw), CharRNN(20, 24, dtype="float32", **kw)
    la, _, pa = a.train(data, 60, 10, streams=4, learning_rate=0.002)
    lb, _, pb = b.train(data, 60, 10, streams=4, learning_rate=0.002)
    assert pa == pb
    np.testing.assert_allclose(lb, la, rtol=1e-3)
    for name in a.params:
        assert_close(b.params[name], a.params[name], 1e-3, name)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_sample_advance_trace_agree_with_float64(cell):
    params, _, _, _, _ = problem(cell, 30, 16, 1, 1, 2, D=6, scale=1.0)
    a = CharRNN.from_params(params)
    b = CharRNN.from_params(params, dtype="float32")
    assert_reads_alike(a, b, np.arange(60) % 30, F32)


def test_float32_gated_checkpoint_round_trip(tmp_path):
    vocab = Vocab("abcdefgh")
    model = CharRNN(8, 6, seed=1, cell="lstm", num_layers=2, dropout=0.1, dtype="float32",
                    optimizer="adam")
    model.train(np.arange(400) % 8, 20, 5, learning_rate=0.01, streams=2)
    path = tmp_path / "f32.npz"
    hp = {"dtype": "float32", "optimizer": "adam", "cell": "lstm", "num_layers": 2,
          "dropout": 0.1}
    save_checkpoint(path, Checkpoint(model=model, vocab=vocab, hyperparameters=hp))
    back = load_checkpoint(path).model
    assert back.dtype == np.float32 and back.adam_steps == 20 and back.cell == "lstm"
    for kind in ("params", "memory", "moment"):
        for name, arr in getattr(model, kind).items():
            assert np.array_equal(getattr(back, kind)[name], arr), (kind, name)
    with pytest.raises(ValueError, match="dtype"):
        save_checkpoint(tmp_path / "bad.npz", Checkpoint(
            model=model, vocab=vocab, hyperparameters={**hp, "dtype": "float64"}))


def test_float32_gated_refusals():
    params = R.init_params("lstm", 5, 4, 1, 0)
    params["weight_hh_l0"][0, 0] = 1e39          # beyond float32: inf after the cast
    with pytest.raises(ValueError, match="finite"):
        CharRNN.from_params(params, dtype="float32")
    model = CharRNN(5, 4, cell="gru", dtype="float32")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.advance([1, 2], np.full(4, 1e39))
    with pytest.raises(ValueError, match="dtype"):
        CharRNN(5, 4, cell="lstm", dtype="float16")
