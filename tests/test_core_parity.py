"""The compiled core against the numpy reference (the seed's lossFun, with
the correct BPTT), one stream, one call at a time: loss, every clipped
gradient and the last hidden state within 1e-10 relative (RTOL), the
parameters and memory after a fused step within 1e-9 (TRAIN_RTOL); the
sparse Wxh path, clipping, forward-only calls, every compiled variant of the
core and its own exp and tanh, no allocation per step.

A note on the weights: with large *recurrent* weights (e.g. Whh ~ randn * 1 at
H = 100) the forward recurrence is chaotic and amplifies the 1e-16 rounding
differences of any two correct implementations (different summation order)
to ~1e-7 within 25 steps -- in the reference itself. The large-weight cases
below therefore make the input and output layers large (so tanh saturates,
logits are large and clipping is active) and keep Whh contracting, where the
computation is well-conditioned and 1e-10 is a fair bound.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN, PARAM_NAMES
from charrnn_ext.core import reference
from charrnn_ext.defaults import CLIP

from conftest import (RTOL, TRAIN_RTOL, assert_close, copy_dict, random_chunk, random_params,
                      reference_hidden_after, rel_err)


def check_loss_and_grads(params, inputs, targets, hprev, rtol=RTOL):
    """Core vs reference lossFun; returns (core grads, reference grads)."""
    model = CharRNN.from_params(params)
    loss, grads, h = model.loss_and_grads(inputs, targets, hprev)
    ref_loss, ref_grads, ref_h = reference.lossFun(list(inputs), list(targets), hprev, params)
    assert isinstance(loss, float)
    assert np.isfinite(ref_loss) and np.isfinite(loss), (loss, ref_loss)
    assert abs(loss - ref_loss) <= rtol * abs(ref_loss), (loss, ref_loss)
    assert h.shape == (params["Whh"].shape[0], 1)
    assert_close(h, ref_h, rtol, "h")
    assert set(grads) == set(PARAM_NAMES)
    for name in PARAM_NAMES:
        assert grads[name].shape == params[name].shape, name
        assert grads[name].dtype == np.float64
        assert_close(grads[name], ref_grads[name], rtol, f"d{name}")
    return grads, ref_grads


def check_train_step(params, memory, inputs, targets, hprev, lr=0.1, rtol=RTOL, train_rtol=TRAIN_RTOL):
    model = CharRNN.from_params(params, memory)
    loss, h = model.train_step(inputs, targets, hprev, learning_rate=lr)
    ref_params, ref_memory = copy_dict(params), copy_dict(memory)
    ref_loss, ref_h = reference.train_step(list(inputs), list(targets), hprev, ref_params, ref_memory, lr)
    assert np.isfinite(ref_loss) and np.isfinite(loss), (loss, ref_loss)
    assert abs(loss - ref_loss) <= rtol * abs(ref_loss), (loss, ref_loss)
    assert_close(h, ref_h, rtol, "h")
    grads = ref_grads(params, inputs, targets, hprev)
    for name in PARAM_NAMES:
        assert_close(model.params[name], ref_params[name], train_rtol, f"param {name}")
        assert_close(model.memory[name], ref_memory[name], train_rtol, f"memory {name}")
        assert_close(model.grads[name], grads[name], rtol, f"d{name}")
    return model, ref_params, ref_memory


def ref_grads(params, inputs, targets, hprev):
    return reference.lossFun(list(inputs), list(targets), hprev, params)[1]


# (V, H, T, weight scale)
SHAPES = [
    pytest.param(65, 100, 25, 0.1, id="V65-H100-T25"),
    pytest.param(3001, 200, 30, 0.1, id="V3001-H200-T30"),
    pytest.param(65, 100, 1, 0.1, id="T1"),
    pytest.param(2, 100, 25, 0.1, id="V2"),
    pytest.param(65, 1, 25, 0.5, id="H1"),
    pytest.param(1, 7, 10, 0.3, id="V1"),
    pytest.param(2, 1, 1, 0.5, id="V2-H1-T1"),
    pytest.param(30, 13, 300, 0.1, id="T300-beyond-initial-buffers"),
    # the output layer in stripes (V * H >= 131072): 2 stripes of 150 rows
    # (blocks of 128 + 22); 4 stripes of 129, 129, 129 and 130 rows
    pytest.param(300, 440, 9, 0.1, id="V300-H440-two-stripes"),
    pytest.param(517, 256, 12, 0.1, id="V517-H256-four-stripes"),
]


def stripe_edges(V, H):
    """The first and last row of every output-layer stripe of a (V, H) model."""
    from charrnn_ext.core._dispatch import core
    S = core.stripe_count(V, H)
    bounds = [s * V // S for s in range(S + 1)]
    return sorted({b for lo, hi in zip(bounds, bounds[1:]) for b in (lo, hi - 1)})


@pytest.mark.parametrize("V,H", [(300, 440), (517, 256), (1030, 128)])
def test_targets_on_stripe_edges(V, H):
    """Targets (and inputs) on the first and last row of every stripe: the
    stripe that owns a target must be the one that reads its logit and
    subtracts its one-hot, whatever the thread count."""
    edges = stripe_edges(V, H)
    assert len(edges) >= 4
    rng = np.random.default_rng(V + H)
    params = random_params(V, H, rng, 0.1)
    targets = np.array(edges + edges[::-1], dtype=np.int32)
    inputs = np.roll(targets, 1)
    hprev = rng.uniform(-1, 1, (H, 1))
    check_loss_and_grads(params, inputs, targets, hprev)
    memory = {n: rng.uniform(0, 2, params[n].shape) for n in PARAM_NAMES}
    check_train_step(params, memory, inputs, targets, hprev)
    model = CharRNN.from_params(params)
    loss = model.loss(inputs, targets, hprev)
    ref_loss = reference.lossFun(list(inputs), list(targets), hprev, params)[0]
    assert abs(loss - ref_loss) <= RTOL * abs(ref_loss)


@pytest.mark.parametrize("V,H,T,scale", SHAPES)
def test_loss_and_grads_parity(V, H, T, scale):
    rng = np.random.default_rng(V * 1000 + H * 10 + T)
    params = random_params(V, H, rng, scale)
    inputs, targets = random_chunk(V, T, rng)
    hprev = rng.uniform(-1, 1, (H, 1))
    check_loss_and_grads(params, inputs, targets, hprev)


@pytest.mark.parametrize("V,H,T,scale", SHAPES)
def test_train_step_parity(V, H, T, scale):
    rng = np.random.default_rng(V * 1000 + H * 10 + T + 1)
    params = random_params(V, H, rng, scale)
    memory = {n: rng.uniform(0, 2, params[n].shape) for n in PARAM_NAMES}
    inputs, targets = random_chunk(V, T, rng)
    hprev = rng.uniform(-1, 1, (H, 1))
    model, ref_params, _ = check_train_step(params, memory, inputs, targets, hprev, lr=0.1)
    if V == 1:  # a one-character vocabulary has loss 0 and zero gradients
        return
    # the update really happened (a no-op core would fail parity above, but
    # make the point explicit): parameters moved
    assert any(not np.array_equal(model.params[n], params[n]) for n in PARAM_NAMES)


def test_zero_initial_hidden_state_and_seed_init():
    """The seed's situation: init_params, zero hprev, zero memory."""
    V, H, T = 65, 100, 25
    model = CharRNN(V, H, seed=3)
    params = reference.init_params(V, H, 3)
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(model.params[name], params[name])
        np.testing.assert_array_equal(model.memory[name], 0.0)
    rng = np.random.default_rng(0)
    inputs, targets = random_chunk(V, T, rng)
    check_loss_and_grads(params, inputs, targets, np.zeros((H, 1)))
    check_train_step(params, {n: np.zeros_like(p) for n, p in params.items()}, inputs, targets,
                     np.zeros((H, 1)))


# ---------------------------------------------------------------------------
# the sparse Wxh path
# ---------------------------------------------------------------------------

def test_repeated_character_accumulates_wxh_column():
    """A chunk that repeats one character: its Wxh column must accumulate all
    T contributions (not keep only the last), every other column is exactly 0."""
    V, H, T = 40, 30, 60
    rng = np.random.default_rng(11)
    params = random_params(V, H, rng, 0.1)
    c = 17
    inputs = np.full(T, c)
    targets = rng.integers(0, V, T)
    hprev = rng.uniform(-1, 1, (H, 1))
    grads, ref_grads = check_loss_and_grads(params, inputs, targets, hprev)
    others = np.delete(np.arange(V), c)
    assert np.all(grads["Wxh"][:, others] == 0.0)
    # with a single input character, dWxh[:, c] is the whole sum of dh_raw = dbh
    np.testing.assert_array_equal(grads["Wxh"][:, c], grads["bh"][:, 0])
    # and it is much larger than any one step's contribution: accumulation matters
    model = CharRNN.from_params(params)
    _, one, _ = model.loss_and_grads(inputs[-1:], targets[-1:], hprev)
    assert rel_err(one["Wxh"][:, c], ref_grads["Wxh"][:, c]) > 1e-3


def test_mixed_chunk_with_one_dominant_character():
    V, H, T = 50, 20, 80
    rng = np.random.default_rng(12)
    params = random_params(V, H, rng, 0.2)
    inputs = np.where(rng.random(T) < 0.8, 3, rng.integers(0, V, T))
    targets = rng.integers(0, V, T)
    grads, _ = check_loss_and_grads(params, inputs, targets, rng.uniform(-1, 1, (H, 1)))
    absent = np.setdiff1d(np.arange(V), inputs)
    assert absent.size > 0
    assert np.all(grads["Wxh"][:, absent] == 0.0)


def test_consecutive_chunks_do_not_leak_wxh_columns():
    """Gradients of a chunk must not contain leftovers of the previous chunk's
    characters (the core clears only the columns it touched before)."""
    V, H, T = 30, 12, 20
    rng = np.random.default_rng(13)
    params = random_params(V, H, rng, 0.2)
    model = CharRNN.from_params(params)
    hprev = rng.uniform(-1, 1, (H, 1))
    chunks = [
        (rng.integers(0, 10, T), rng.integers(0, V, T)),      # chars 0..9
        (rng.integers(20, 30, T), rng.integers(0, V, T)),     # chars 20..29
        (np.full(5, 4), rng.integers(0, V, 5)),               # one char, shorter chunk
        (rng.integers(0, V, 3 * T), rng.integers(0, V, 3 * T)),  # longer chunk
        (np.array([29]), np.array([0])),
    ]
    for use_train_step in (False, True):
        for inputs, targets in chunks:
            if use_train_step:
                before = copy_dict(model.params)
                model.train_step(inputs, targets, hprev, learning_rate=0.05)
                _, ref_grads, _ = reference.lossFun(inputs, targets, hprev, before)
                grads = model.grads
                absent = np.setdiff1d(np.arange(V), inputs)
                # Wxh columns of absent characters: unchanged, bit for bit
                np.testing.assert_array_equal(model.params["Wxh"][:, absent], before["Wxh"][:, absent])
            else:
                _, grads, _ = model.loss_and_grads(inputs, targets, hprev)
                _, ref_grads, _ = reference.lossFun(inputs, targets, hprev, model.params)
            for name in PARAM_NAMES:
                assert_close(grads[name], ref_grads[name], RTOL, f"d{name}")
            absent = np.setdiff1d(np.arange(V), inputs)
            assert np.all(grads["Wxh"][:, absent] == 0.0)


def test_absent_columns_untouched_by_train_step():
    """A zero gradient changes neither the parameter nor its memory: Wxh and
    mWxh columns of characters absent from the chunk stay bit-identical."""
    V, H, T = 200, 16, 25
    rng = np.random.default_rng(14)
    params = random_params(V, H, rng, 0.1)
    memory = {n: rng.uniform(0, 1, params[n].shape) for n in PARAM_NAMES}
    model = CharRNN.from_params(params, memory)
    inputs, targets = rng.integers(0, 20, T), rng.integers(0, V, T)
    model.train_step(inputs, targets, np.zeros(H))
    absent = np.setdiff1d(np.arange(V), inputs)
    present = np.unique(inputs)
    np.testing.assert_array_equal(model.params["Wxh"][:, absent], params["Wxh"][:, absent])
    np.testing.assert_array_equal(model.memory["Wxh"][:, absent], memory["Wxh"][:, absent])
    assert np.all(model.params["Wxh"][:, present] != params["Wxh"][:, present])


# ---------------------------------------------------------------------------
# clipping
# ---------------------------------------------------------------------------

LARGE = [
    # (scales, T, targets mostly one character?)
    pytest.param(dict(Wxh=1.0, Whh=0.05, Why=2.0, bh=0.5, by=0.5), 25, False, id="large-in-out"),
    pytest.param(dict(Wxh=0.3, Whh=0.08, Why=5.0, bh=0.1, by=1.0), 60, False, id="huge-out"),
    pytest.param(dict(Wxh=0.5, Whh=0.05, Why=3.0, bh=0.3, by=1.0), 100, True, id="one-target"),
]


@pytest.mark.parametrize("scales,T,one_target", LARGE)
def test_parity_with_clipping_active(scales, T, one_target):
    V, H = 65, 100
    rng = np.random.default_rng(T)
    params = random_params(V, H, rng, scales)
    inputs, targets = random_chunk(V, T, rng)
    if one_target:
        targets = np.where(rng.random(T) < 0.9, 7, targets)
    hprev = rng.uniform(-1, 1, (H, 1))
    grads, ref_grads = check_loss_and_grads(params, inputs, targets, hprev)
    n_clipped = 0
    for name in PARAM_NAMES:
        g, r = grads[name], ref_grads[name]
        assert np.all(np.abs(g) <= CLIP), name
        at_clip = np.abs(r) == CLIP
        # the core clips the same entries to exactly +-5
        np.testing.assert_array_equal(g[at_clip], r[at_clip])
        n_clipped += int(at_clip.sum())
    assert n_clipped > 0, "clipping is not exercised"
    # clipping is hit in the hidden-layer gradients, where it matters most
    assert np.any(np.abs(grads["Whh"]) == CLIP) and np.any(np.abs(grads["bh"]) == CLIP)
    memory = {n: rng.uniform(0, 1, params[n].shape) for n in PARAM_NAMES}
    check_train_step(params, memory, inputs, targets, hprev, lr=0.1)


def test_clipping_reaches_every_parameter():
    """One configuration where every gradient (Wxh, Whh, Why, bh, by) has
    entries clipped to exactly +-5, in both the core and the reference."""
    V, H, T = 20, 50, 200
    rng = np.random.default_rng(21)
    params = random_params(V, H, rng, dict(Wxh=0.5, Whh=0.05, Why=3.0, bh=0.3, by=1.0))
    params["bh"][:] = np.abs(params["bh"]) + 1.0   # h_t all near +1: dWhy rows add up coherently
    inputs = rng.integers(0, V, T)
    targets = np.where(rng.random(T) < 0.9, 2, rng.integers(0, V, T))
    grads, ref_grads = check_loss_and_grads(params, inputs, targets, rng.uniform(-1, 1, (H, 1)))
    for name in PARAM_NAMES:
        assert np.any(np.abs(ref_grads[name]) == CLIP), f"reference d{name} not clipped"
        assert np.any(np.abs(grads[name]) == CLIP), f"core d{name} not clipped"
        assert np.all(np.abs(grads[name]) <= CLIP)


def test_large_logits_are_stable():
    """Softmax subtracts the max: logits around 1e3 (exp overflows at 710)
    give a finite loss and gradients equal to the reference's."""
    V, H, T = 10, 8, 12
    rng = np.random.default_rng(22)
    params = random_params(V, H, rng, dict(Wxh=1.0, Whh=0.1, Why=5.0, bh=0.5, by=3.0))
    params["by"] += 1000.0
    inputs, targets = random_chunk(V, T, rng)
    model = CharRNN.from_params(params)
    loss = model.loss(inputs, targets, np.zeros(H))
    assert np.isfinite(loss) and loss > 10
    grads, _ = check_loss_and_grads(params, inputs, targets, np.zeros((H, 1)))
    assert all(np.all(np.isfinite(g)) for g in grads.values())


def test_extreme_logit_gaps_give_finite_loss():
    """Logit gaps beyond 745 make the seed's -log(softmax) underflow to
    -log(0) = inf; the core's log-sum-exp loss stays finite and equals the
    logit gap (the probability of the target is ~exp(-gap))."""
    V, H = 3, 1
    params = {"Wxh": np.zeros((H, V)), "Whh": np.zeros((H, H)), "bh": np.zeros((H, 1)),
              "Why": np.zeros((V, H)), "by": np.array([[0.0], [2000.0], [0.0]])}
    model = CharRNN.from_params(params)
    loss = model.loss([0, 0], [0, 1], np.zeros(H))
    # step 1: target 0, gap 2000 (+ log(1 + 2e^-2000)); step 2: target 1, ~0
    assert loss == pytest.approx(2000.0, rel=1e-15)


# ---------------------------------------------------------------------------
# forward-only paths
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("T", [1, 25, 255, 256, 257, 700])
def test_forward_loss_parity_any_length(T):
    V, H = 30, 20
    rng = np.random.default_rng(T + 5)
    params = random_params(V, H, rng, 0.2)
    inputs, targets = random_chunk(V, T, rng)
    hprev = rng.uniform(-1, 1, (H, 1))
    model = CharRNN.from_params(params)
    loss, h = model.loss(inputs, targets, hprev, return_hidden=True)
    ref_loss, _, ref_h = reference.lossFun(inputs, targets, hprev, params)
    assert abs(loss - ref_loss) <= RTOL * ref_loss
    assert_close(h, ref_h, RTOL, "h")
    assert model.loss(inputs, targets, hprev) == loss
    # training-step loss equals the forward-only loss
    loss2, _, h2 = model.loss_and_grads(inputs, targets, hprev)
    assert abs(loss2 - loss) <= RTOL * loss
    assert_close(h2, h, RTOL, "h")


def test_advance_parity():
    V, H = 30, 20
    rng = np.random.default_rng(31)
    params = random_params(V, H, rng, 0.3)
    model = CharRNN.from_params(params)
    inputs = rng.integers(0, V, 500)
    hprev = rng.uniform(-1, 1, (H, 1))
    h = model.advance(inputs, hprev)
    assert h.shape == (H, 1)
    assert_close(h, reference_hidden_after(params, inputs, hprev), RTOL, "advance")
    h0 = model.advance(inputs[:3])   # hprev=None means zeros
    assert_close(h0, reference_hidden_after(params, inputs[:3], np.zeros(H)), RTOL, "advance from zeros")


def test_results_independent_of_call_history():
    """The same call gives bit-identical results before and after calls with
    other chunk lengths (work buffers are reused, never stale)."""
    V, H = 25, 15
    rng = np.random.default_rng(41)
    params = random_params(V, H, rng, 0.3)
    model = CharRNN.from_params(params)
    x, y = random_chunk(V, 10, rng)
    hprev = rng.uniform(-1, 1, H)
    first = model.loss_and_grads(x, y, hprev)
    for T in (1, 400, 3, 50):
        model.loss_and_grads(*random_chunk(V, T, rng), hprev)
        model.loss(*random_chunk(V, T + 300, rng), hprev)
        model.advance(rng.integers(0, V, T), hprev)
    again = model.loss_and_grads(x, y, hprev)
    assert first[0] == again[0]
    np.testing.assert_array_equal(first[2], again[2])
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(first[1][name], again[1][name])


# ---------------------------------------------------------------------------
# every compiled variant of the core (if the package ships several)
# ---------------------------------------------------------------------------

def _variants():
    try:
        from charrnn_ext.core import _dispatch
    except ImportError:
        return ["default"]
    return _dispatch.available_variants()


@pytest.mark.parametrize("variant", _variants())
def test_every_core_variant_matches_reference(variant, monkeypatch):
    """The default tests exercise the variant picked for this CPU; run a
    parity check (loss_and_grads, train_step, loss, sampling) on each one."""
    if variant != "default":
        from charrnn_ext.core import _dispatch
        import charrnn_ext.core.model as model_module
        monkeypatch.setattr(model_module, "_core", _dispatch.load_core(variant)[1])
    rng = np.random.default_rng(51)
    for V, H, T in ((65, 100, 25), (7, 3, 40), (300, 33, 17)):
        params = random_params(V, H, rng, dict(Wxh=0.5, Whh=0.05, Why=2.0, bh=0.3, by=0.5))
        inputs, targets = random_chunk(V, T, rng)
        hprev = rng.uniform(-1, 1, (H, 1))
        check_loss_and_grads(params, inputs, targets, hprev)
        memory = {n: rng.uniform(0, 1, params[n].shape) for n in PARAM_NAMES}
        check_train_step(params, memory, inputs, targets, hprev)
        model = CharRNN.from_params(params)
        assert model.sample(hprev, 1, 100, temperature=0.7, rng=3).tolist() == reference.sample(
            hprev, 1, 100, params, temperature=0.7, rng=np.random.default_rng(3))
        assert model.sample(hprev, 1, 100, temperature=0).tolist() == reference.sample(
            hprev, 1, 100, params, temperature=0)


# ---------------------------------------------------------------------------
# the core's own exp and tanh (when it has test hooks for them)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("variant", _variants())
def test_core_exp_and_tanh_accuracy(variant):
    if variant == "default":
        from charrnn_ext import _core as core
    else:
        from charrnn_ext.core import _dispatch
        core = _dispatch.load_core(variant)[1]
    if not (hasattr(core, "_exp") and hasattr(core, "_tanh")):
        pytest.skip("the core uses libm's exp and tanh")
    rng = np.random.default_rng(61)
    x = np.concatenate([
        rng.uniform(-708, 709, 100_000), rng.uniform(-1, 1, 100_000), rng.uniform(-30, 30, 100_000),
        rng.standard_normal(10_000) * 1e-8, np.linspace(0.62, 0.63, 1001), -np.linspace(0.62, 0.63, 1001),
        [0.0, -0.0, 5e-324, -5e-324, 1e-300, 0.625, -0.625, 19.999, 20.0, 20.001, 708.9, -707.9],
    ])
    out = np.empty_like(x)
    core._exp(x, out)
    ref = np.exp(x)
    ulp = np.abs(out - ref) / np.spacing(ref)
    assert ulp.max() <= 4, f"exp: {ulp.max()} ulp at x = {x[np.argmax(ulp)]!r}"
    core._tanh(x, out)
    ref = np.tanh(x)
    ulp = np.abs(out - ref) / np.spacing(np.abs(ref))
    assert ulp.max() <= 4, f"tanh: {ulp.max()} ulp at x = {x[np.argmax(ulp)]!r}"
    assert np.all(np.abs(out) <= 1.0)
    special = np.array([np.inf, -np.inf, np.nan, -1e308, -746.0, -1000.0, 1e308])
    out = np.empty_like(special)
    core._exp(special[:6], out[:6])
    np.testing.assert_array_equal(out[:6], [np.inf, 0.0, np.nan, 0.0, 0.0, 0.0])
    core._tanh(special, out)
    np.testing.assert_array_equal(out, [1.0, -1.0, np.nan, -1.0, -1.0, -1.0, 1.0])


def _core32_modules():
    from charrnn_ext.core import _dispatch
    return [pytest.param(_dispatch.load_core32(v), id=v) for v in _dispatch.available_variants()]


@pytest.mark.parametrize("core32", _core32_modules())
def test_core32_exp_and_tanh_in_float_accuracy(core32):
    """The float32 build's own exp and tanh (computed in float): a few float
    ulp of numpy's double results rounded to float, over the range the
    kernels meet; 0 and inf at the ends; NaN stays NaN."""
    rng = np.random.default_rng(62)
    x = np.concatenate([
        rng.uniform(-86, 88.7, 100_000), rng.uniform(-1, 1, 100_000), rng.uniform(-12, 12, 100_000),
        rng.standard_normal(10_000) * 1e-6, np.linspace(0.62, 0.63, 1001), -np.linspace(0.62, 0.63, 1001),
        [0.0, -0.0, 1e-40, 0.625, -0.625, 9.999, 10.0, 10.001, 88.7, -85.9],
    ]).astype(np.float32)
    out = np.empty_like(x)
    core32._real_exp(x, out)
    ref = np.exp(x.astype(np.float64))
    ulp = np.abs(out - ref) / np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert ulp.max() <= 3, f"exp: {ulp.max()} ulp at x = {x[np.argmax(ulp)]!r}"
    core32._real_tanh(x, out)
    ref = np.tanh(x.astype(np.float64))
    ulp = np.abs(out - ref) / np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    assert ulp.max() <= 3, f"tanh: {ulp.max()} ulp at x = {x[np.argmax(ulp)]!r}"
    assert np.all(np.abs(out) <= 1.0)
    special = np.array([np.inf, -np.inf, np.nan, -3e38, -87.0, -1000.0, 89.0], np.float32)
    out = np.empty_like(special)
    core32._real_exp(special, out)
    np.testing.assert_array_equal(out, [np.inf, 0.0, np.nan, 0.0, 0.0, 0.0, np.inf])
    core32._real_tanh(special, out)
    np.testing.assert_array_equal(out, [1.0, -1.0, np.nan, -1.0, -1.0, -1.0, 1.0])


def _core_modules():
    out = []
    for variant in _variants():
        if variant == "default":
            from charrnn_ext import _core as core
        else:
            from charrnn_ext.core import _dispatch
            core = _dispatch.load_core(variant)[1]
        out.append(pytest.param(core, id=variant))
    return out


@pytest.mark.parametrize("core", _core_modules())
def test_core_exp_near_overflow(core):
    """exp near and beyond log(DBL_MAX): finite values to a few ulp, then inf."""
    if not hasattr(core, "_exp"):
        pytest.skip("the core uses libm's exp")
    x = np.array([700.0, 709.0, 709.5, 709.78])
    out = np.empty_like(x)
    core._exp(x, out)
    np.testing.assert_allclose(out, np.exp(x), rtol=4 * np.finfo(float).eps, atol=0)
    x = np.array([709.79, 710.0, 1000.0, 1e308, np.inf])
    out = np.empty_like(x)
    core._exp(x, out)
    assert np.all(np.isposinf(out))


# ---------------------------------------------------------------------------
# no allocation per step
# ---------------------------------------------------------------------------

def test_no_per_step_allocation():
    """Work buffers live with the model: once a chunk length has been seen,
    further steps allocate only the Python-level copy of h (H floats), far
    below the size of any per-step work buffer (T*V*8 = 600 kB here).
    numpy reports its buffers to tracemalloc, so a per-step buffer would show."""
    import tracemalloc
    V, H, T = 3000, 50, 25
    rng = np.random.default_rng(71)
    model = CharRNN.from_params(random_params(V, H, rng, 0.1))
    x, y = (a.astype(np.int32) for a in random_chunk(V, T, rng))
    h = np.zeros((H, 1))
    model.train_step(x, y, h)
    model.loss_and_grads(x, y, h)
    model.loss(x, y, h)
    tracemalloc.start()
    try:
        # sanity: a numpy buffer of T*V doubles is seen by tracemalloc
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        probe = np.empty((T, V))
        seen = tracemalloc.get_traced_memory()[1] - base
        del probe
        assert seen >= T * V * 8
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            _, h = model.train_step(x, y, h)
            model.loss(x, y, h)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 50_000, f"{peak} bytes allocated at peak over 50 steps"
