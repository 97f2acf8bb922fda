"""The float32 path (CharRNN(..., dtype="float32"), charrnn_ext._core32: the
same kernels compiled over float32) against the float64 path at float32's
tolerance, on its own gradient checks, bit-identical on 1 and 2 threads, and
through checkpoints. float64 stays the reference (test_core_parity)."""
import numpy as np
import pytest

from charrnn_ext import CharRNN, load_checkpoint
from charrnn_ext.core import reference
from charrnn_ext.ckpt.checkpoint import Checkpoint, save_checkpoint
from charrnn_ext.core._dispatch import core32, cores
from charrnn_ext.core.spec import init_params
from charrnn_ext.text.vocab import Vocab

from conftest import assert_close, assert_reads_alike, id_lists, worst_difference_error

pytestmark = pytest.mark.skipif(core32 is None, reason="the float32 core is not built")
F32 = 3e-5        # float32 rounding, accumulated over a chunk (eps = 1.2e-7)


def problem(V, H, D, T, B, seed, scale=0.3):
    rng = np.random.default_rng(seed)
    params = init_params(V, H, seed, D, "pytorch")
    for name in params:
        params[name] = params[name] * (scale * np.sqrt(H) if name != "embed" else 1.0)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    return params, x, y, rng.uniform(-1, 1, (H, B))


@pytest.mark.parametrize("V,H,D,T,B", [(9, 7, 0, 5, 1), (13, 10, 4, 6, 3), (1, 1, 0, 1, 1),
                                       (40, 32, 8, 12, 32), (65, 64, 16, 50, 32)])
def test_float32_loss_grads_states_agree_with_float64(V, H, D, T, B):
    params, x, y, h0 = problem(V, H, D, T, B, V + B)
    f64 = CharRNN.from_params(params)
    f32 = CharRNN.from_params(params, dtype="float32")
    assert f32.dtype == np.float32 and f32.params["Whh"].dtype == np.float32
    loss64, g64, h64 = f64.loss_and_grads(x, y, h0)
    loss32, g32, h32 = f32.loss_and_grads(x, y, h0)
    assert abs(loss32 - loss64) <= F32 * abs(loss64)
    assert h32.dtype == np.float32
    assert_close(h32, h64, F32, "h")
    for name in g64:
        assert g32[name].dtype == np.float32
        assert_close(g32[name], g64[name], 10 * F32, f"d{name}")
    assert abs(f32.loss(x, y, h0) - loss64) <= F32 * abs(loss64)
    ref_loss, _, _ = reference.batch_lossFun(id_lists(x), id_lists(y), h0, params)
    assert abs(loss32 - ref_loss) <= F32 * abs(ref_loss)


@pytest.mark.parametrize("optimizer,lr", [("adagrad", 0.02), ("adam", 0.002)])
def test_float32_training_follows_float64(optimizer, lr):
    """100 steps of the data pass: the float32 run stays within float32's
    rounding of the float64 run, amplified by training (losses and
    parameters; at Adagrad's min-char-rnn rate 0.1 on random ids the two
    runs part after ~20 steps, as any two roundings would)."""
    rng = np.random.default_rng(4)
    V, H, T, B = 20, 24, 10, 4
    data = rng.integers(0, V, 6000)
    kw = dict(seed=2, optimizer=optimizer, embedding_size=8, init="pytorch")
    a, b = CharRNN(V, H, **kw), CharRNN(V, H, dtype="float32", **kw)
    la, ha, pa = a.train(data, 100, T, streams=B, learning_rate=lr)
    lb, hb, pb = b.train(data, 100, T, streams=B, learning_rate=lr)
    assert lb.dtype == np.float32 and pa == pb
    np.testing.assert_allclose(lb, la, rtol=1e-3)
    for name in a.params:
        assert_close(b.params[name], a.params[name], 1e-3, name)


def test_float32_gradients_match_finite_differences():
    """The float32 core's own gradients against central differences of its
    own float32 loss (a step large enough for float32's rounding)."""
    params, x, y, h0 = problem(7, 6, 3, 5, 2, 11)
    model = CharRNN.from_params(params, dtype="float32")
    _, grads, _ = model.loss_and_grads(x, y, h0)
    worst = worst_difference_error(
        params, grads, lambda: CharRNN.from_params(params, dtype="float32").loss(x, y, h0),
        1e-2, 5, np.random.default_rng(0))
    assert worst <= 2e-3, worst


def test_float32_threads_bit_identical(restore_threads):
    params, x, y, h0 = problem(65, 64, 16, 50, 32, 3)
    out = []
    for threads in (1, 2):
        for c in cores:
            c.set_num_threads(threads)
        model = CharRNN.from_params(params, dtype="float32", optimizer="adam")
        loss, h = model.train_step(x, y, h0, 0.002)
        out.append((loss, h, np.array(model.params["Whh"]), np.array(model.params["embed"])))
    assert out[0][0] == out[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(out[0][1:], out[1][1:]))


def test_float32_sample_advance_trace_agree_with_float64():
    params, _, _, _ = problem(30, 16, 6, 1, 1, 8)
    a, b = CharRNN.from_params(params), CharRNN.from_params(params, dtype="float32")
    assert_reads_alike(a, b, np.arange(60) % 30, F32)


def test_float32_checkpoint_round_trip(tmp_path):
    vocab = Vocab("abcdefgh")
    model = CharRNN(8, 6, seed=1, dtype="float32", optimizer="adam")
    model.train(np.arange(200) % 8, 20, 5, learning_rate=0.01)
    path = tmp_path / "f32.npz"
    save_checkpoint(path, Checkpoint(model=model, vocab=vocab,
                                     hyperparameters={"dtype": "float32", "optimizer": "adam"}))
    back = load_checkpoint(path).model
    assert back.dtype == np.float32 and back.adam_steps == 20
    for kind in ("params", "memory", "moment"):
        for name, arr in getattr(model, kind).items():
            assert np.array_equal(getattr(back, kind)[name], arr), (kind, name)
    with pytest.raises(ValueError, match="dtype"):
        save_checkpoint(tmp_path / "bad.npz", Checkpoint(
            model=model, vocab=vocab, hyperparameters={"dtype": "float64", "optimizer": "adam"}))


def test_dtype_refusals():
    assert CharRNN(5, 4, dtype=None).dtype == np.float64     # numpy's default, as np.dtype(None)
    for bad in ("float16", "int32", "complex128", "nope"):
        with pytest.raises(ValueError, match="dtype"):
            CharRNN(5, 4, dtype=bad)
    params = init_params(5, 4, 0)
    params["Whh"][0, 0] = 1e39          # beyond float32: inf after the cast
    with pytest.raises(ValueError, match="NaN or infinite"):
        CharRNN.from_params(params, dtype="float32")
    model = CharRNN(5, 4, dtype="float32")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.advance([1, 2], np.full(4, 1e39))
