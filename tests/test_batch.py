"""B parallel streams (issue 9): CharRNN.train_step, loss_and_grads and loss
on inputs/targets (B, T) and hprev (H, B), against the batched numpy
reference (reference.batch_lossFun: the obvious loop over lossFun, raw
gradients averaged over streams, then clipped).

Semantics: the loss is the mean over streams of each stream's summed chunk
loss; the gradients are the mean over streams, clipped to [-5, 5]; one
Adagrad update. The recurrence of B streams runs on the core's own kernel
below core.gemm_min_streams() streams and on dgemm from there on: both are
checked (B = 2 and 7 below the default threshold, 32 above it, and each B
forced through both kernels).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import charrnn_ext
from charrnn_ext import CharRNN, PARAM_NAMES, Vocab, reference
from charrnn_ext._dispatch import core
from charrnn_ext.defaults import CLIP, LEARNING_RATE

from conftest import assert_close, copy_dict, english_like_text, random_memory, random_params

RTOL = 1e-10        # loss, gradients, hidden states
TRAIN_RTOL = 1e-9   # parameters and memory after a step (see tests/test_parity.py)


def problem(V, H, T, B, seed, scale=0.1):
    rng = np.random.default_rng(seed)
    params = random_params(V, H, rng, scale)
    inputs = rng.integers(0, V, (B, T))
    targets = rng.integers(0, V, (B, T))
    hprev = rng.uniform(-1, 1, (H, B))
    return params, inputs, targets, hprev


def lists(ids):
    return [list(map(int, row)) for row in ids]


def check_batch_parity(params, inputs, targets, hprev, rtol=RTOL):
    """loss_and_grads and loss (forward only) against reference.batch_lossFun."""
    B = inputs.shape[0]
    H = params["Whh"].shape[0]
    model = CharRNN.from_params(params)
    loss, grads, h = model.loss_and_grads(inputs, targets, hprev)
    ref_loss, ref_grads, ref_h = reference.batch_lossFun(lists(inputs), lists(targets), hprev, params)
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
    ref_loss, ref_h = reference.batch_train_step(lists(inputs), lists(targets), hprev,
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
            ref_loss, _, ref_h = reference.batch_lossFun(lists(x), lists(y), h0, params)
            assert abs(loss - ref_loss) <= RTOL * ref_loss, (B, n)
            assert_close(h, ref_h, RTOL, f"B={B} n={n}")


# ---------------------------------------------------------------------------
# training: 100 teacher-forced steps at B = 8
# ---------------------------------------------------------------------------

def stream_chunks(ids, B, T, n_steps):
    """The text cut into B equal parts; stream b reads part b in chunks of T,
    all streams resetting together at the end of their parts."""
    part = len(ids) // B
    p = 0
    for step in range(n_steps):
        reset = step == 0 or p + T + 1 > part
        if reset:
            p = 0
        x = np.stack([ids[b * part + p: b * part + p + T] for b in range(B)])
        y = np.stack([ids[b * part + p + 1: b * part + p + T + 1] for b in range(B)])
        p += T
        yield x, y, reset


def test_hundred_teacher_forced_steps_at_b8():
    """Each core step starts from the reference's state (params, memory, h):
    loss, h, params and memory within 1e-9 for 100 steps of 8 streams."""
    text = english_like_text(4000, seed=21)
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    V, H, T, B = len(vocab), 64, 25, 8
    params = reference.init_params(V, H, seed=3)
    memory = {n: np.zeros_like(p) for n, p in params.items()}
    hprev = np.zeros((H, B))
    losses, resets = [], 0
    for step, (x, y, reset) in enumerate(stream_chunks(ids, B, T, 100)):
        if reset:
            hprev = np.zeros((H, B))
            resets += 1
        model = CharRNN.from_params(params, memory)
        loss, h = model.train_step(x, y, hprev, learning_rate=LEARNING_RATE)
        loss_ref, h_ref = reference.batch_train_step(lists(x), lists(y), hprev, params, memory,
                                                     LEARNING_RATE)
        where = f"step {step}"
        assert abs(loss - loss_ref) <= 1e-9 * abs(loss_ref), f"{where}: {loss!r} vs {loss_ref!r}"
        assert h.shape == (H, B)
        assert_close(h, h_ref, 1e-9, f"{where}: h")
        for n in PARAM_NAMES:
            assert_close(model.params[n], params[n], 1e-9, f"{where}: {n}")
            assert_close(model.memory[n], memory[n], 1e-9, f"{where}: memory {n}")
        hprev = h_ref
        losses.append(loss_ref)
    assert resets >= 2, "the streams never wrapped"
    assert np.mean(losses[-20:]) < np.mean(losses[:20])   # a learning run


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


# ---------------------------------------------------------------------------
# gradient check of the mean loss at B = 3
# ---------------------------------------------------------------------------

def test_gradcheck_mean_loss_at_b3():
    """Central differences of the mean loss (model.loss, 2-D) against
    loss_and_grads' mean gradients, on every entry of a small model."""
    V, H, T, B = 9, 6, 10, 3
    delta, rel_tol, abs_tol, meaningful_at = 1e-5, 1e-6, 1e-8, 1e-3
    rng = np.random.default_rng(8)
    params = random_params(V, H, rng, 0.3)
    inputs = rng.integers(0, V - 2, (B, T))      # the last two characters never read
    targets = rng.integers(0, V, (B, T))
    hprev = rng.uniform(-0.5, 0.5, (H, B))
    model = CharRNN.from_params(params)
    _, grads, _ = model.loss_and_grads(inputs, targets, hprev)
    assert max(np.max(np.abs(g)) for g in grads.values()) < CLIP   # no clipping: a fair check
    for name in PARAM_NAMES:
        param = model.params[name]
        meaningful = 0
        for index in range(param.size):
            old = param.flat[index]
            param.flat[index] = old + delta
            plus = model.loss(inputs, targets, hprev)
            param.flat[index] = old - delta
            minus = model.loss(inputs, targets, hprev)
            param.flat[index] = old
            num = (plus - minus) / (2 * delta)
            a = grads[name].flat[index]
            assert abs(a - num) <= abs_tol, f"d{name}.flat[{index}]: {a!r} vs {num!r}"
            if max(abs(a), abs(num)) >= meaningful_at:
                meaningful += 1
                assert abs(a - num) <= rel_tol * max(abs(a), abs(num)), (name, index, a, num)
        present = H * np.unique(inputs).size if name == "Wxh" else param.size
        assert meaningful >= 0.5 * present, f"{name}: {meaningful}/{present}"
    assert np.all(grads["Wxh"][:, V - 2:] == 0.0)
    # the sum-over-streams gradient (a plausible bug) is B times too large
    assert np.max(np.abs(B * grads["Why"] - grads["Why"])) > 1e3 * abs_tol


# ---------------------------------------------------------------------------
# properties over (B, T, V, H)
# ---------------------------------------------------------------------------

@st.composite
def batch_problems(draw, max_B=9, max_T=12, max_V=12, max_H=10):
    B = draw(st.integers(1, max_B))
    T = draw(st.integers(1, max_T))
    V = draw(st.integers(1, max_V))
    H = draw(st.integers(1, max_H))
    seed = draw(st.integers(0, 2**32 - 1))
    out_scale = draw(st.sampled_from([0.01, 0.1, 1.0, 3.0]))
    rec_scale = draw(st.floats(0.0, 0.9)) / np.sqrt(H)
    rng = np.random.default_rng(seed)
    params = random_params(V, H, rng, dict(Wxh=out_scale, Whh=rec_scale, Why=out_scale,
                                           bh=0.3, by=0.3))
    keep = draw(st.sampled_from([0.0, 1.0]))          # zero memory: Adagrad's first step
    memory = {n: m * keep for n, m in random_memory(V, H, rng).items()}
    inputs = rng.integers(0, V, (B, T))
    targets = rng.integers(0, V, (B, T))
    hprev = rng.uniform(-1, 1, (H, B))
    return params, memory, inputs, targets, hprev


def same_loss(a, b, rows):
    """Relative, with an absolute floor of 1e-15 per step (see test_properties)."""
    assert np.isfinite(a) and np.isfinite(b)
    assert abs(a - b) <= RTOL * abs(b) + 1e-15 * rows, (a, b)


@given(batch_problems(), st.sampled_from([2, 4, 1000]))
def test_batch_properties(prob, threshold):
    params, memory, inputs, targets, hprev = prob
    old = core._set_gemm_min_streams(threshold)
    try:
        model = CharRNN.from_params(params, memory)
        loss, grads, h = model.loss_and_grads(inputs, targets, hprev)
        ref_loss, ref_grads, ref_h = reference.batch_lossFun(lists(inputs), lists(targets),
                                                             hprev, params)
        same_loss(loss, ref_loss, inputs.shape[1])
        assert_close(h, ref_h, RTOL, "h")
        for n in PARAM_NAMES:
            assert_close(grads[n], ref_grads[n], RTOL, f"d{n}")
        same_loss(model.loss(inputs, targets, hprev), ref_loss, inputs.shape[1])
        lr = 0.05
        loss, h = model.train_step(inputs, targets, hprev, learning_rate=lr)
        ref_params, ref_memory = copy_dict(params), copy_dict(memory)
        reference.batch_train_step(lists(inputs), lists(targets), hprev, ref_params, ref_memory, lr)
        for n in PARAM_NAMES:
            assert_close(model.params[n], ref_params[n], TRAIN_RTOL, n)
            assert_close(model.memory[n], ref_memory[n], TRAIN_RTOL, f"memory {n}")
    finally:
        core._set_gemm_min_streams(old)


# ---------------------------------------------------------------------------
# bad shapes: clear ValueErrors, nothing changed
# ---------------------------------------------------------------------------

V_BAD, H_BAD = 10, 6
X2 = np.arange(8).reshape(2, 4) % V_BAD


BAD_SHAPES = [
    pytest.param(X2, X2[:1], None, r"number of streams \(B = 2 vs 1\)", id="B-mismatch-targets"),
    pytest.param(X2, X2[:, :3], None, r"differ in length \(4 vs 3\)", id="T-mismatch"),
    pytest.param(X2, X2[0], None, "both be 1-D .* or both 2-D", id="2-D-vs-1-D"),
    pytest.param(X2, X2, np.zeros((H_BAD, 3)), r"shape \(6, 2\) \(H, B\).*got \(6, 3\)",
                 id="hprev-B-mismatch"),
    pytest.param(X2, X2, np.zeros((H_BAD, 1)), r"one hidden state, but the inputs hold B = 2",
                 id="hprev-H1-with-B2"),
    pytest.param(X2, X2, np.zeros(H_BAD), r"one hidden state, but the inputs hold B = 2",
                 id="hprev-1-D-with-B2"),
    pytest.param(X2, X2, np.zeros((2, H_BAD)), r"shape \(6, 2\)", id="hprev-transposed"),
    pytest.param(X2[0], X2[0], np.zeros((H_BAD, 2)), "for 1-D inputs", id="1-D-inputs-with-(H,2)"),
    pytest.param(np.zeros((0, 4), int), np.zeros((0, 4), int), None, r"no streams \(B = 0\)",
                 id="B0"),
    pytest.param(np.zeros((2, 0), int), np.zeros((2, 0), int), None, "empty", id="T0"),
    pytest.param([[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 5, 6]], None, "rows differ in length",
                 id="ragged-inputs"),
    pytest.param([[1, 2, 3], [4, 5, 6]], [[1, 2], [4, 5, 6]], None, "rows differ in length",
                 id="ragged-targets"),
    pytest.param(np.zeros((2, 3, 4), int), np.zeros((2, 3, 4), int), None, r"1-D \(T,\) or 2-D",
                 id="3-D"),
    pytest.param([[1, 2], [3, V_BAD]], [[1, 2], [3, 4]], None, r"inputs\[1, 1\] = 10 is outside",
                 id="id-out-of-range"),
]


@pytest.mark.parametrize("method", ["train_step", "loss_and_grads", "loss"])
@pytest.mark.parametrize("inputs,targets,hprev,message", BAD_SHAPES)
def test_bad_shapes_are_clear_value_errors(method, inputs, targets, hprev, message):
    model = CharRNN(V_BAD, H_BAD, seed=0)
    before = {n: model.params[n].copy() for n in PARAM_NAMES}
    with pytest.raises(ValueError, match=message):
        getattr(model, method)(inputs, targets, hprev)
    for n in PARAM_NAMES:
        assert np.array_equal(model.params[n], before[n])


def test_advance_and_sample_stay_single_stream():
    model = CharRNN(V_BAD, H_BAD, seed=0)
    with pytest.raises(ValueError, match="1-D"):
        model.advance(X2, None)
    with pytest.raises(ValueError):
        model.sample(np.zeros((H_BAD, 2)), 0, 5)


# ---------------------------------------------------------------------------
# threads: identical results for any thread count at B > 1
# ---------------------------------------------------------------------------

@pytest.fixture
def restore_threads():
    before = charrnn_ext.get_num_threads()
    yield
    charrnn_ext.set_num_threads(before)


def run_batched(V, H, T, B, n_threads):
    charrnn_ext.set_num_threads(n_threads)
    rng = np.random.default_rng(0)
    model = CharRNN.from_params(random_params(V, H, rng, 0.1))
    h = np.zeros((H, B))
    out = {"losses": []}
    for _ in range(3):
        loss, h = model.train_step(rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T)), h)
        out["losses"].append(loss)
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    out["lg_loss"], out["grads"], out["lg_h"] = model.loss_and_grads(x, y, h)
    out["loss"], out["loss_h"] = model.loss(rng.integers(0, V, (B, 3 * T)),
                                            rng.integers(0, V, (B, 3 * T)), h, return_hidden=True)
    out["params"], out["memory"] = copy_dict(model.params), copy_dict(model.memory)
    out["h"] = h
    return out


@pytest.mark.parametrize("V,H,T,B", [(517, 256, 12, 3), (300, 440, 9, 9), (29, 512, 6, 32),
                                     (29, 512, 6, 4)])
def test_batch_results_identical_for_any_thread_count(V, H, T, B, restore_threads):
    """A striped output layer (the first two); at H = 512 the recurrence's
    dgemm and dWhh in pieces (32 streams), dWhh alone in pieces (4 streams)."""
    assert core.stripe_count(V, H) > 1 or H >= 363
    runs = {n: run_batched(V, H, T, B, n) for n in (1, 2, 3, 8)}
    first = runs[1]
    for n, run in runs.items():
        assert run["losses"] == first["losses"], n
        assert run["lg_loss"] == first["lg_loss"] and run["loss"] == first["loss"], n
        for key in ("lg_h", "loss_h", "h"):
            assert np.array_equal(run[key], first[key]), (n, key)
        for name in PARAM_NAMES:
            for key in ("grads", "params", "memory"):
                assert np.array_equal(run[key][name], first[key][name]), (n, key, name)
