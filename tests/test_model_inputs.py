"""The model's arguments: every invalid argument to a CharRNN call (ids,
hidden states, B streams' shapes, chunk sizes, learning rates, sample's
arguments, seeds) raises the documented error (ValueError / TypeError),
before anything reaches the unchecked core, and changes nothing; valid but
unusual inputs (dtypes, layouts, lists, read-only arrays) work; the caller's
arrays are never modified.

Constructing a model (sizes, from_params): test_model_params. Non-finite
values written into a model's arrays: test_model_nonfinite. Checks of
model.train's data and arguments: test_datapass.
"""
import math

import numpy as np
import pytest

from charrnn_ext import CharRNN, PARAM_NAMES, Vocab
from charrnn_ext.core import reference

from conftest import (HAS_FLOAT128, assert_close, assert_model_unchanged, copy_dict,
                      float128_array, masked_array, model_state, random_params)


V, H, T = 11, 7, 9


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    return CharRNN.from_params(random_params(V, H, rng, 0.3))


@pytest.fixture
def chunk():
    rng = np.random.default_rng(1)
    return rng.integers(0, V, T), rng.integers(0, V, T)


def call(model, method, inputs, targets, hprev=None, **kw):
    hprev = np.zeros((H, 1)) if hprev is None else hprev
    if method == "train_step":
        return model.train_step(inputs, targets, hprev, **kw)
    if method == "loss_and_grads":
        return model.loss_and_grads(inputs, targets, hprev)
    return model.loss(inputs, targets, hprev)


METHODS = ["loss_and_grads", "train_step", "loss"]


# ---------------------------------------------------------------------------
# ids
# ---------------------------------------------------------------------------

BAD_IDS = [
    pytest.param([0, 1, V], ValueError, id="equal-to-V"),
    pytest.param([0, 1, V + 1000], ValueError, id="far-above-V"),
    pytest.param([0, -1, 2], ValueError, id="negative"),
    pytest.param(np.array([3, -5], dtype=np.int32), ValueError, id="negative-int32"),
    pytest.param(np.array([3, V], dtype=np.int32), ValueError, id="V-int32"),
    pytest.param(np.array([3, 2**31 - 1], dtype=np.int32), ValueError, id="int32-max"),
    pytest.param(np.array([3, -2**31], dtype=np.int32), ValueError, id="int32-min"),
    pytest.param(np.array([1, 2**32], dtype=np.int64), ValueError, id="int64-2**32-wraps-to-0"),
    pytest.param(np.array([1, 2**32 + 3], dtype=np.int64), ValueError, id="int64-wraps-to-3"),
    pytest.param(np.array([1, -2**32 + 2], dtype=np.int64), ValueError, id="int64-neg-wraps-to-2"),
    pytest.param(np.array([1, 2**63 - 1], dtype=np.int64), ValueError, id="int64-max"),
    pytest.param(np.array([1, 2**32 + 1], dtype=np.uint64), ValueError, id="uint64"),
    pytest.param(np.array([1, 2**64 - 1], dtype=np.uint64), ValueError, id="uint64-max"),
    pytest.param(np.array([1, 255], dtype=np.uint8), ValueError, id="uint8"),
    pytest.param([1, 2**32 + 1], ValueError, id="python-int-beyond-int32"),
    pytest.param([0.0, 1.0], TypeError, id="float-list"),
    pytest.param(np.array([0.0, 1.0]), TypeError, id="float-array"),
    pytest.param(np.array([0.5, 1.0], dtype=np.float32), TypeError, id="float32"),
    pytest.param([0, 1.5], TypeError, id="mixed-float"),
    pytest.param(["a", "b"], TypeError, id="strings"),
    pytest.param([True, False], TypeError, id="bools"),
    pytest.param([1 + 0j, 0j], TypeError, id="complex"),
    pytest.param([None, 1], TypeError, id="none"),
    pytest.param([], ValueError, id="empty-list"),
    pytest.param(np.zeros(0, dtype=np.int32), ValueError, id="empty-array"),
    pytest.param(np.zeros((3, 3), dtype=np.int32), ValueError, id="2-D"),
    pytest.param(np.int32(3), ValueError, id="scalar"),
]


@pytest.mark.parametrize("side", ["inputs", "targets"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad,error", BAD_IDS)
def test_bad_ids(model, chunk, method, bad, error, side):
    snap = model_state(model)
    good = chunk[0][: len(bad)] if np.ndim(bad) == 1 and len(bad) else chunk[0]
    with pytest.raises(error):
        if side == "inputs":
            call(model, method, bad, good)
        else:
            call(model, method, good, bad)
    assert_model_unchanged(model, snap)


@pytest.mark.parametrize("bad,error", [b for b in BAD_IDS if not b.id.startswith("empty")])
def test_bad_ids_in_advance(model, bad, error):
    # (an empty list is valid for advance: see test_advance_empty_returns_hprev)
    with pytest.raises(error):
        model.advance(bad, np.zeros(H))


def test_advance_empty_returns_hprev(model):
    """Reading no characters leaves the hidden state as it was (a copy)."""
    h0 = np.linspace(-0.5, 0.5, H)
    h = model.advance([], h0)
    assert h.shape == (H, 1)
    np.testing.assert_array_equal(h.ravel(), h0)
    h[0, 0] = 7.0
    assert h0[0] == -0.5


def test_error_message_names_the_offending_id(model):
    with pytest.raises(ValueError, match=r"inputs\[2\]") as info:
        model.loss([0, 1, V + 4, 2], [0, 1, 2, 3], np.zeros(H))
    assert str(V + 4) in str(info.value)
    with pytest.raises(ValueError, match=r"targets\[1\]"):
        model.loss([0, 1, 2], [0, -3, 2], np.zeros(H))
    with pytest.raises(ValueError, match=str(2**32)):
        model.loss(np.array([0, 2**32]), [0, 1], np.zeros(H))


@pytest.mark.parametrize("method", METHODS)
def test_lengths_differ(model, chunk, method):
    x, y = chunk
    snap = model_state(model)
    with pytest.raises(ValueError, match="length"):
        call(model, method, x, y[:-1])
    with pytest.raises(ValueError):
        call(model, method, x[:1], y)
    assert_model_unchanged(model, snap)


# ---------------------------------------------------------------------------
# hidden state
# ---------------------------------------------------------------------------

BAD_H = [
    pytest.param(np.zeros((H + 1, 1)), ValueError, id="H+1"),
    pytest.param(np.zeros((H - 1,)), ValueError, id="H-1 1-D"),
    pytest.param(np.zeros((1, H)), ValueError, id="row"),
    pytest.param(np.zeros((H, 2)), ValueError, id="two-columns"),
    pytest.param(np.zeros((H, 1, 1)), ValueError, id="3-D"),
    pytest.param(np.zeros(()), ValueError, id="scalar"),
    pytest.param(np.full((H, 1), np.nan), ValueError, id="nan"),
    pytest.param(np.full((H,), np.inf), ValueError, id="inf"),
    pytest.param(np.array(["x"] * H), TypeError, id="strings"),
    pytest.param(np.zeros(H, dtype=complex), TypeError, id="complex"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad,error", BAD_H)
def test_bad_hprev(model, chunk, method, bad, error):
    snap = model_state(model)
    with pytest.raises(error):
        call(model, method, *chunk, hprev=bad)
    assert_model_unchanged(model, snap)


@pytest.mark.parametrize("bad,error", BAD_H)
def test_bad_hprev_advance_and_sample(model, bad, error):
    with pytest.raises(error):
        model.advance([0, 1], bad)
    with pytest.raises(error):
        model.sample(bad, 0, 5)


@pytest.mark.parametrize("method", METHODS + ["advance", "sample"])
@pytest.mark.parametrize("shape", [(H, 1), (H,)])
def test_caller_hprev_never_modified(model, chunk, method, shape):
    rng = np.random.default_rng(2)
    hprev = rng.uniform(-1, 1, shape)
    keep = hprev.copy()
    if method == "advance":
        out = model.advance(chunk[0], hprev)
    elif method == "sample":
        out = model.sample(hprev, 0, 20, rng=0, return_hidden=True)[1]
    elif method == "loss":
        out = model.loss(*chunk, hprev, return_hidden=True)[1]
    else:
        out = call(model, method, *chunk, hprev=hprev)[-1]
    np.testing.assert_array_equal(hprev, keep)
    assert out.shape == (H, 1)
    assert not np.shares_memory(out, hprev)
    assert not np.array_equal(out.ravel(), keep.ravel())   # the state did move


@pytest.mark.parametrize("method", METHODS)
def test_1d_hprev_equals_column_hprev(model, chunk, method):
    rng = np.random.default_rng(3)
    h = rng.uniform(-1, 1, (H, 1))
    a = call(copy_model(model), method, *chunk, hprev=h)
    b = call(copy_model(model), method, *chunk, hprev=h.ravel())
    c = call(copy_model(model), method, *chunk, hprev=h.ravel().tolist())
    for other in (b, c):
        if method == "loss":
            assert a == other
        else:
            assert a[0] == other[0]
            np.testing.assert_array_equal(a[-1], other[-1])


def copy_model(model):
    return CharRNN.from_params(model.params, model.memory)


def test_hprev_other_dtypes_and_layouts(model, chunk):
    h = np.random.default_rng(4).uniform(-1, 1, (H, 1))
    expected = model.loss(*chunk, h)
    assert model.loss(*chunk, np.asfortranarray(h)) == expected
    assert model.loss(*chunk, np.repeat(h, 2, axis=1)[:, :1]) == expected   # non-contiguous
    assert model.loss(*chunk, np.zeros(H, dtype=np.int64)) == model.loss(*chunk, np.zeros(H))
    h32 = h.astype(np.float32)
    assert model.loss(*chunk, h32) == model.loss(*chunk, h32.astype(np.float64))


@pytest.mark.skipif(not HAS_FLOAT128, reason="long double is float64 here")
def test_hprev_refuses_float128():
    model = CharRNN(5, 3, seed=0)
    with pytest.raises(TypeError, match="hprev.*float128"):
        model.train_step([0, 1], [1, 2], float128_array((3, 1)))


@pytest.mark.parametrize("call", [
    lambda m, h: m.train_step([0, 1], [1, 2], h),
    lambda m, h: m.loss([0, 1], [1, 2], h),
    lambda m, h: m.loss_and_grads([0, 1], [1, 2], h),
    lambda m, h: m.advance([0, 1], h),
    lambda m, h: m.sample(h, 0, 3, rng=0),
], ids=["train_step", "loss", "loss_and_grads", "advance", "sample"])
def test_hprev_refuses_masked_arrays(call):
    model = CharRNN(5, 3, seed=0)
    with pytest.raises(TypeError, match="hprev.*masked"):
        call(model, masked_array((3, 1)))


# ---------------------------------------------------------------------------
# B streams: bad shapes are clear ValueErrors, nothing changed
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


def test_a_chunk_too_large_is_refused_before_it_is_copied():
    """The size check looks at the shape first: a broadcast 32768 x 32768 chunk
    (4 GiB once copied) is refused at once, without copying it."""
    import resource
    import time
    model = CharRNN(11, 7, seed=0)
    huge = np.broadcast_to(np.int32(0), (32768, 32768))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="too large for one step"):
        model.train_step(huge, huge, None, 0.1)
    with pytest.raises(ValueError, match="too large for one step"):
        model.loss_and_grads(huge, huge, None)
    assert time.perf_counter() - t0 < 2.0
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 512 * 1024, grown_kb  # far below the 4 GiB a copy would take


# ---------------------------------------------------------------------------
# the returned / stored state
# ---------------------------------------------------------------------------

def test_loss_and_grads_leaves_params_and_memory_untouched(chunk):
    rng = np.random.default_rng(5)
    params = random_params(V, H, rng, 0.3)
    memory = {n: rng.uniform(0, 1, params[n].shape) for n in PARAM_NAMES}
    model = CharRNN.from_params(params, memory)
    for _ in range(3):
        model.loss_and_grads(*chunk, np.zeros(H))
        model.loss(*chunk, np.zeros(H))
        model.advance(chunk[0])
        model.sample(None, 0, 10, rng=0)
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(model.params[n], params[n])
        np.testing.assert_array_equal(model.memory[n], memory[n])


def test_returned_grads_are_fresh_copies(model, chunk):
    _, g1, _ = model.loss_and_grads(*chunk, np.zeros(H))
    keep = copy_dict(g1)
    for g in g1.values():
        g[...] = 123.0   # the caller scribbles on them
    _, g2, _ = model.loss_and_grads(*chunk, np.zeros(H))
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(g2[n], keep[n])
    x2 = (chunk[0] + 1) % V
    model.loss_and_grads(x2, chunk[1], np.zeros(H))
    for n in PARAM_NAMES:   # a later call does not change grads returned earlier
        np.testing.assert_array_equal(g2[n], keep[n])


def test_from_params_copies(chunk):
    rng = np.random.default_rng(6)
    params = random_params(V, H, rng, 0.3)
    memory = {n: rng.uniform(0, 1, params[n].shape) for n in PARAM_NAMES}
    keep_p, keep_m = copy_dict(params), copy_dict(memory)
    model = CharRNN.from_params(params, memory)
    for n in PARAM_NAMES:
        assert not np.shares_memory(model.params[n], params[n])
        assert not np.shares_memory(model.memory[n], memory[n])
    model.train_step(*chunk, np.zeros(H))
    for n in PARAM_NAMES:   # the caller's dicts are untouched by training
        np.testing.assert_array_equal(params[n], keep_p[n])
        np.testing.assert_array_equal(memory[n], keep_m[n])
    # and changing the caller's arrays does not change the model
    before = model.loss(*chunk, np.zeros(H))
    for n in PARAM_NAMES:
        params[n][...] = 0.0
    assert model.loss(*chunk, np.zeros(H)) == before


def test_from_params_accepts_1d_biases_and_other_layouts(chunk):
    rng = np.random.default_rng(7)
    params = random_params(V, H, rng, 0.3)
    loose = {
        "Wxh": np.asfortranarray(params["Wxh"]),
        "Whh": params["Whh"].T.copy().T,            # Fortran order
        "Why": np.repeat(params["Why"], 2, axis=1)[:, ::2],   # non-contiguous view
        "bh": params["bh"].ravel(),                  # (H,)
        "by": params["by"].ravel().tolist(),         # a list of length V
    }
    model = CharRNN.from_params(loose)
    for n in PARAM_NAMES:
        assert model.params[n].shape == params[n].shape
        assert model.params[n].dtype == np.float64 and model.params[n].flags.c_contiguous
    loss, grads, h = model.loss_and_grads(*chunk, np.zeros(H))
    ref_loss, ref_grads, ref_h = reference.lossFun(*chunk, np.zeros((H, 1)), params)
    assert abs(loss - ref_loss) <= 1e-12 * ref_loss
    for n in PARAM_NAMES:
        assert_close(grads[n], ref_grads[n], 1e-10, n)
    # a training step on the normalised copies updates the model's arrays
    before = copy_dict(model.params)
    model.train_step(*chunk, np.zeros(H))
    assert all(not np.array_equal(model.params[n], before[n]) for n in PARAM_NAMES)


def test_non_contiguous_id_arrays(model):
    rng = np.random.default_rng(8)
    for dtype in (np.int32, np.int64, np.int16, np.uint16, np.dtype(">i4")):
        big = rng.integers(0, V, (2 * T, 3)).astype(dtype)
        x = big[::2, 1]           # strided views
        y = big[1::2, 2]
        assert not x.flags.c_contiguous
        xc, yc = np.ascontiguousarray(x, dtype=np.int32), np.ascontiguousarray(y, dtype=np.int32)
        h = np.zeros(H)
        assert model.loss(x, y, h) == model.loss(xc, yc, h)
        a, b = model.loss_and_grads(x, y, h), model.loss_and_grads(xc, yc, h)
        assert a[0] == b[0]
        for n in PARAM_NAMES:
            np.testing.assert_array_equal(a[1][n], b[1][n])
        np.testing.assert_array_equal(model.advance(x[::-1], h), model.advance(xc[::-1].copy(), h))
        ref = reference.lossFun(xc.tolist(), yc.tolist(), h.reshape(-1, 1), model.params)
        assert abs(a[0] - ref[0]) <= 1e-12 * ref[0]


def test_ids_as_lists_and_tuples(model, chunk):
    x, y = chunk
    a = model.loss(x, y, np.zeros(H))
    assert model.loss(x.tolist(), y.tolist(), np.zeros(H)) == a
    assert model.loss(tuple(x.tolist()), tuple(y.tolist()), np.zeros(H)) == a
    assert model.loss([np.int64(i) for i in x], y, np.zeros(H)) == a


def test_read_only_arrays_are_accepted(model, chunk):
    x = np.ascontiguousarray(chunk[0], dtype=np.int32)
    y = np.ascontiguousarray(chunk[1], dtype=np.int32)
    h = np.random.default_rng(11).uniform(-1, 1, (H, 1))
    expected = model.loss_and_grads(x, y, h)
    for a in (x, y, h):
        a.flags.writeable = False
    got = model.loss_and_grads(x, y, h)
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[2], expected[2])
    assert model.loss(x, y, h) == expected[0]
    model.advance(x, h)
    model.sample(h, int(x[0]), 5, rng=0)
    copy_model(model).train_step(x, y, h)
    params = copy_dict(model.params)
    for p in params.values():
        p.flags.writeable = False
    trained = CharRNN.from_params(params)   # copies: the model's arrays are writable
    trained.train_step(x, y, h)
    assert not np.array_equal(trained.params["Whh"], params["Whh"])


# ---------------------------------------------------------------------------
# learning rate
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("lr,error", [
    (0.0, ValueError), (-0.1, ValueError), (-0.0, ValueError),
    (math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError),
    (np.float64("nan"), ValueError), (np.float32(-1), ValueError),
    ("0.1", TypeError), (None, TypeError), (True, TypeError), ([0.1], TypeError), (1j, TypeError),
])
def test_bad_learning_rate(model, chunk, lr, error):
    snap = model_state(model)
    with pytest.raises(error):
        model.train_step(*chunk, np.zeros(H), learning_rate=lr)
    assert_model_unchanged(model, snap)


@pytest.mark.parametrize("lr", [1, np.float32(0.5), np.float64(1e-3), 1e-300, 10.0])
def test_good_learning_rates(chunk, lr):
    rng = np.random.default_rng(9)
    params = random_params(V, H, rng, 0.3)
    model = CharRNN.from_params(params)
    model.train_step(*chunk, np.zeros(H), learning_rate=lr)
    ref_params, ref_memory = copy_dict(params), {n: np.zeros_like(p) for n, p in params.items()}
    reference.train_step(*chunk, np.zeros((H, 1)), ref_params, ref_memory, float(lr))
    for n in PARAM_NAMES:
        assert_close(model.params[n], ref_params[n], 1e-9, n)


# ---------------------------------------------------------------------------
# sample arguments
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw,error", [
    (dict(n=-1), ValueError),
    (dict(n=-100), ValueError),
    (dict(n=2.0), TypeError),
    (dict(n="3"), TypeError),
    (dict(n=None), TypeError),
    (dict(temperature=-0.5), ValueError),
    (dict(temperature=-1e-300), ValueError),
    (dict(temperature=math.nan), ValueError),
    (dict(temperature=math.inf), ValueError),
    (dict(temperature="1"), TypeError),
    (dict(temperature=None), TypeError),
    (dict(seed_ix=V), ValueError),
    (dict(seed_ix=-1), ValueError),
    (dict(seed_ix=2**32), ValueError),
    (dict(seed_ix=1.0), TypeError),
    (dict(seed_ix="a"), TypeError),
    (dict(seed_ix=True), TypeError),
    (dict(rng="seed"), (TypeError, ValueError)),
])
def test_bad_sample_arguments(model, kw, error):
    args = dict(h=np.zeros(H), seed_ix=0, n=5, temperature=1.0, rng=0)
    args.update(kw)
    snap = model_state(model)
    with pytest.raises(error):
        model.sample(**args)
    assert_model_unchanged(model, snap)


def test_sample_accepts_numpy_integer_arguments(model):
    a = model.sample(np.zeros(H), np.int64(3), np.int32(10), temperature=np.float32(0.5), rng=1)
    b = model.sample(np.zeros(H), 3, 10, temperature=0.5, rng=1)
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# seeds and the edges' clear errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, error", [
    (lambda: CharRNN(5, 4, seed=1.5), TypeError),
    (lambda: CharRNN(5, 4, seed="abc"), TypeError),
    (lambda: CharRNN(5, 4, seed=-1), ValueError),
    (lambda: CharRNN(5, 4, seed=2**32), ValueError),
    (lambda: CharRNN(5, 4, seed=0).sample(None, 0, 3, rng="abc"), TypeError),
    (lambda: CharRNN(5, 4, seed=0).train_step("abc", [1, 2, 3], None), TypeError),
    (lambda: CharRNN(5, 4, seed=0).train_step(np.ma.array([1, 2], mask=[0, 1]), [1, 2], None),
     TypeError),
    (lambda: Vocab([1, 2]), TypeError),
    (lambda: Vocab(["ab"]), ValueError),
    (lambda: CharRNN.from_params({**CharRNN(5, 4, seed=0).params, 3: np.zeros(1)}), ValueError),
])
def test_clear_errors_at_the_edges(call, error):
    with pytest.raises(error) as info:
        call()
    assert "Cannot cast" not in str(info.value) and "SeedSequence" not in str(info.value)
