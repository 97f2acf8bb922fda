"""B parallel streams (issue 9): CharRNN.train_step, loss_and_grads and loss
on inputs/targets (B, T) and hprev (H, B), against the batched numpy
reference (reference.batch_lossFun: the obvious loop over lossFun, raw
gradients averaged over streams, then clipped).

Semantics: the loss is the mean over streams of each stream's summed chunk
loss; the gradients are the mean over streams, clipped to [-5, 5]; one
Adagrad update. The recurrence of B streams runs on the core's own kernel
below core.gemm_min_streams() streams and on dgemm from there on: both are
checked (B = 2 and 7 below the default threshold, 32 above it, and each B
forced through both kernels). Elsewhere: properties over B in
test_core_properties, the gradient check at B = 3 in test_core_gradcheck,
100 steps at B = 8 in test_core_training, threads in test_core_threads, bad
shapes in test_model_inputs, the streams' data pass in test_datapass.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN, PARAM_NAMES
from charrnn_ext.core import reference
from charrnn_ext.core._dispatch import core
from charrnn_ext.defaults import CLIP

from conftest import (RTOL, TRAIN_RTOL, assert_close, copy_dict, id_lists, random_memory,
                      random_params)


def problem(V, H, T, B, seed, scale=0.1):
    rng = np.random.default_rng(seed)
    params = random_params(V, H, rng, scale)
    inputs = rng.integers(0, V, (B, T))
    targets = rng.integers(0, V, (B, T))
    hprev = rng.uniform(-1, 1, (H, B))
    return params, inputs, targets, hprev


def check_batch_parity(params, inputs, targets, hprev, rtol=RTOL):
    """loss_and_grads and loss (forward only) against reference.batch_lossFun."""
    B = inputs.shape[0]
    H = params["Whh"].shape[0]
    model = CharRNN.from_params(params)
    loss, grads, h = model.loss_and_grads(inputs, targets, hprev)
    ref_loss, ref_grads, ref_h = reference.batch_lossFun(id_lists(inputs), id_lists(targets),
                                                         hprev, params)
    assert isinstance(loss, float)
    assert abs(loss - ref_loss) <= rtol * abs(ref_loss), (loss, ref_loss)
    assert h.shape == (H, B)
    assert_close(h, ref_h, rtol, "h")
    for name in PARAM_NAMES:
        assert grads[name].shape == params[name].shape
        assert_close(grads[name], ref_grads[name], rtol, f"d{name}")
    fwd_loss, fwd_h = model.loss(inputs, targets, hprev, return_hidden=True)
    assert abs(fwd_loss - ref_loss) <= rtol * abs(ref_loss), (fwd_loss, ref_loss)
    assert fwd_h.shape == (H, B)
    assert_close(fwd_h, ref_h, rtol, "loss(): h")
    return grads, ref_grads


def check_batch_train_step(params, memory, inputs, targets, hprev, lr=0.1):
    model = CharRNN.from_params(params, memory)
    loss, h = model.train_step(inputs, targets, hprev, learning_rate=lr)
    ref_params, ref_memory = copy_dict(params), copy_dict(memory)
    ref_loss, ref_h = reference.batch_train_step(id_lists(inputs), id_lists(targets), hprev,
                                                 ref_params, ref_memory, lr)
    assert abs(loss - ref_loss) <= RTOL * abs(ref_loss), (loss, ref_loss)
    assert_close(h, ref_h, RTOL, "h")
    for name in PARAM_NAMES:
        assert_close(model.params[name], ref_params[name], TRAIN_RTOL, f"param {name}")
        assert_close(model.memory[name], ref_memory[name], TRAIN_RTOL, f"memory {name}")


@pytest.fixture
def gemm_threshold():
    """Restores the recurrence's kernel threshold after a test that moves it."""
    old = core._set_gemm_min_streams(core.gemm_min_streams())
    yield
    core._set_gemm_min_streams(old)


# ---------------------------------------------------------------------------
# parity with the batched reference
# ---------------------------------------------------------------------------

BATCH_SHAPES = [
    *(pytest.param(65, 100, 25, B, id=f"V65-H100-T25-B{B}") for B in (1, 2, 7, 32)),
    *(pytest.param(3001, 200, 30, B, id=f"V3001-H200-T30-B{B}") for B in (1, 2, 7)),
    pytest.param(517, 200, 30, 32, id="V517-H200-T30-B32-four-stripes"),
    *(pytest.param(29, 512, 20, B, id=f"V29-H512-T20-B{B}") for B in (1, 2, 7, 32)),
]


@pytest.mark.parametrize("V,H,T,B", BATCH_SHAPES)
def test_batch_parity(V, H, T, B):
    params, inputs, targets, hprev = problem(V, H, T, B, seed=V + H + T + B)
    check_batch_parity(params, inputs, targets, hprev)


def test_default_kernel_threshold_splits_the_tested_batches():
    """B = 2 and 7 run on the core's own recurrence kernel, B = 32 on dgemm."""
    assert 7 < core.gemm_min_streams() <= 32


@pytest.mark.parametrize("B", [2, 5, 9])
@pytest.mark.parametrize("threshold", [2, 1000])
def test_both_recurrence_kernels_match_the_reference(B, threshold, gemm_threshold):
    """Each B through dgemm (threshold 2) and through the core's own kernel (1000)."""
    core._set_gemm_min_streams(threshold)
    params, inputs, targets, hprev = problem(40, 37, 13, B, seed=B + threshold)
    check_batch_parity(params, inputs, targets, hprev)
    memory = random_memory(40, 37, np.random.default_rng(B))
    check_batch_train_step(params, memory, inputs, targets, hprev)


@pytest.mark.parametrize("V,H,T,B", [(65, 100, 25, 4), (300, 440, 9, 3), (29, 512, 10, 8)])
def test_batch_train_step_parity(V, H, T, B):
    params, inputs, targets, hprev = problem(V, H, T, B, seed=7 * B + T)
    memory = random_memory(V, H, np.random.default_rng(B))
    check_batch_train_step(params, memory, inputs, targets, hprev)


def test_batch_parity_with_clipping_active():
    """Large input and output weights: gradients beyond +-5 before averaging;
    the mean is clipped after averaging, as in the reference."""
    V, H, T, B = 20, 16, 12, 6
    params, inputs, targets, hprev = problem(V, H, T, B, seed=3, scale=dict(
        Wxh=3.0, Whh=0.05, Why=3.0, bh=0.5, by=0.5))
    grads, _ = check_batch_parity(params, inputs, targets, hprev)
    assert max(np.max(np.abs(g)) for g in grads.values()) == CLIP


def test_streams_are_independent_in_the_forward_pass():
    """Stream b's hidden state and loss do not depend on the other streams:
    each equals the single-stream call on its own row."""
    V, H, T, B = 30, 24, 15, 5
    params, inputs, targets, hprev = problem(V, H, T, B, seed=11)
    model = CharRNN.from_params(params)
    loss, h = model.loss(inputs, targets, hprev, return_hidden=True)
    singles = [model.loss(inputs[b], targets[b], hprev[:, b], return_hidden=True) for b in range(B)]
    assert abs(loss - np.mean([s[0] for s in singles])) <= RTOL * loss
    for b in range(B):
        assert_close(h[:, b:b + 1], singles[b][1], RTOL, f"stream {b}")


def test_forward_loss_any_length_and_block_boundaries():
    """loss() runs in blocks of core.loss_block_steps(B) steps (85 steps for
    B = 3, 4 for B = 64): lengths around the block size and long chunks."""
    V, H = 19, 11
    rng = np.random.default_rng(13)
    params = random_params(V, H, rng, 0.3)
    model = CharRNN.from_params(params)
    for B in (3, 64):
        steps = core.loss_block_steps(B)
        assert steps == 256 // B
        for n in (1, steps - 1, steps, steps + 1, 3 * steps + 2, 301):
            x, y = rng.integers(0, V, (B, n)), rng.integers(0, V, (B, n))
            h0 = rng.uniform(-1, 1, (H, B))
            loss, h = model.loss(x, y, h0, return_hidden=True)
            ref_loss, _, ref_h = reference.batch_lossFun(id_lists(x), id_lists(y), h0, params)
            assert abs(loss - ref_loss) <= RTOL * ref_loss, (B, n)
            assert_close(h, ref_h, RTOL, f"B={B} n={n}")


# ---------------------------------------------------------------------------
# B = 1 through the batched API is the 1-D call, bit for bit
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("V,H,T", [(65, 100, 25), (517, 256, 12)])
def test_b1_batched_is_bit_identical_to_1d(V, H, T):
    rng = np.random.default_rng(V)
    params = random_params(V, H, rng, 0.1)
    memory = random_memory(V, H, rng)
    one, batched = CharRNN.from_params(params, memory), CharRNN.from_params(params, memory)
    h1 = rng.uniform(-1, 1, (H, 1))
    hb = h1.copy()
    for step in range(4):
        x, y = rng.integers(0, V, T), rng.integers(0, V, T)
        hprev = h1 if step % 2 else h1.ravel()        # (H, 1) and (H,) both mean B = 1
        l1, h1 = one.train_step(x, y, hprev)
        lb, hb = batched.train_step(x[None, :], y[None, :], hb)
        assert l1 == lb and h1.shape == hb.shape == (H, 1)
        assert np.array_equal(h1, hb)
    for n in PARAM_NAMES:
        assert np.array_equal(one.params[n], batched.params[n]), n
        assert np.array_equal(one.memory[n], batched.memory[n]), n
    x, y = rng.integers(0, V, T), rng.integers(0, V, T)
    l1, g1, h1 = one.loss_and_grads(x, y, h1)
    lb, gb, hb = batched.loss_and_grads(x[None, :], y[None, :], hb)
    assert l1 == lb and np.array_equal(h1, hb)
    for n in PARAM_NAMES:
        assert np.array_equal(g1[n], gb[n]), n
    x, y = rng.integers(0, V, 700), rng.integers(0, V, 700)
    l1, h1 = one.loss(x, y, h1, return_hidden=True)
    lb, hb = batched.loss(x[None, :], y[None, :], hb, return_hidden=True)
    assert l1 == lb and np.array_equal(h1, hb)


def test_returned_hidden_shapes():
    V, H, T = 10, 6, 4
    model = CharRNN(V, H, seed=0)
    x = np.arange(T) % V
    assert model.train_step(x, x, None)[1].shape == (H, 1)
    assert model.train_step(x[None], x[None], None)[1].shape == (H, 1)
    for B in (2, 5):
        xb = np.tile(x, (B, 1))
        assert model.train_step(xb, xb, None)[1].shape == (H, B)
        assert model.loss_and_grads(xb, xb, np.zeros((H, B)))[2].shape == (H, B)
        assert model.loss(xb, xb, None, return_hidden=True)[1].shape == (H, B)
        h = model.loss(xb, xb, None, return_hidden=True)[1]
        assert h.flags.c_contiguous and h.dtype == np.float64


def test_caller_arrays_never_modified():
    V, H, T, B = 12, 7, 5, 3
    params, inputs, targets, hprev = problem(V, H, T, B, seed=5)
    keep = [inputs.copy(), targets.copy(), hprev.copy()]
    model = CharRNN.from_params(params)
    _, h = model.train_step(inputs, targets, hprev)
    for a, b in zip((inputs, targets, hprev), keep):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(h, hprev)


def test_non_contiguous_and_other_dtypes_are_accepted():
    """Strided views, Fortran order, int64 / uint8 / int32 ids, nested lists:
    the same values give the same results bit for bit."""
    V, H, T, B = 12, 7, 5, 3
    params, inputs, targets, hprev = problem(V, H, T, B, seed=6)
    model = CharRNN.from_params(params)
    expected = model.loss(inputs, targets, hprev, return_hidden=True)
    strided = np.zeros((B, 2 * T), dtype=np.int64)
    strided[:, ::2] = inputs
    variants = [
        (np.asfortranarray(inputs), np.asfortranarray(targets), np.asfortranarray(hprev)),
        (strided[:, ::2], targets.astype(np.uint8), hprev.tolist()),
        (inputs.tolist(), targets.astype(np.int32), np.concatenate([hprev, hprev], 1)[:, :B]),
    ]
    for x, y, h in variants:
        loss, h_out = model.loss(x, y, h, return_hidden=True)
        assert loss == expected[0] and np.array_equal(h_out, expected[1])
