"""Gradient check against central finite differences (the seed's gradCheck,
corrected).

The seed's gradCheck has these defects, fixed here:
  * its signature says ``target`` but the body uses the global ``targets``;
    ``uniform`` is undefined (numpy's ``np.random.uniform`` was meant);
  * the relative error ``|a - n| / |n + a|`` divides by ~0 when the two have
    opposite signs or are both tiny; here ``|a - n| / max(|a|, |n|)``;
  * it compares *clipped* analytic gradients with unclipped numerical ones;
    here the weights are chosen so that no gradient reaches the clip (asserted);
  * 10 random entries per parameter; here every entry of a small model (the
    Wxh columns of characters absent from the chunk must have exactly zero
    analytic and numerical gradient), and many entries of a larger one,
    including every present Wxh column.

The finite differences use the core's forward-only ``model.loss`` (perturbing
``model.params`` in place: the core views those arrays). Both the core's and
the reference's analytic gradients are checked; at B = 3 streams, the
gradients of the mean loss (the core's).

Accuracy: with delta = 1e-5 the central difference has truncation error
~1e-10 * f''' and rounding error ~eps * loss / delta ~ 1e-9 (absolute), so the
relative error bound 1e-6 is asserted on entries with |gradient| >= 1e-3
(the large majority, asserted) and an absolute bound of 1e-8 on all entries.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN, PARAM_NAMES
from charrnn_ext.core import reference
from charrnn_ext.defaults import CLIP

from conftest import random_params


DELTA = 1e-5
REL_TOL = 1e-6
ABS_TOL = 1e-8
MEANINGFUL = 1e-3


def numerical_gradient(model, inputs, targets, hprev, name, index):
    param = model.params[name]
    old = param.flat[index]
    param.flat[index] = old + DELTA
    loss_plus = model.loss(inputs, targets, hprev)
    param.flat[index] = old - DELTA
    loss_minus = model.loss(inputs, targets, hprev)
    param.flat[index] = old
    return (loss_plus - loss_minus) / (2 * DELTA)


def check_entries(model, inputs, targets, hprev, analytic: dict, name, indices):
    """Compare analytic[name].flat[indices] (for each analytic dict) with central
    differences; returns the number of meaningful (large enough) entries."""
    meaningful = 0
    for index in indices:
        num = numerical_gradient(model, inputs, targets, hprev, name, index)
        for which, grads in analytic.items():
            a = grads[name].flat[index]
            err = abs(a - num)
            assert err <= ABS_TOL, f"{which} d{name}.flat[{index}]: analytic {a!r}, numerical {num!r}"
            scale = max(abs(a), abs(num))
            if scale >= MEANINGFUL:
                rel = err / scale
                assert rel <= REL_TOL, (
                    f"{which} d{name}.flat[{index}]: analytic {a!r}, numerical {num!r}, rel {rel:.2e}")
        if max(abs(g[name].flat[index]) for g in analytic.values()) >= MEANINGFUL:
            meaningful += 1
    return meaningful


def analytic_gradients(model, params, inputs, targets, hprev):
    _, grads, _ = model.loss_and_grads(inputs, targets, hprev)
    _, ref_grads, _ = reference.lossFun(inputs, targets, hprev, params)
    for g in list(grads.values()) + list(ref_grads.values()):
        assert np.max(np.abs(g)) < CLIP, "clipping active: a finite-difference check would be meaningless"
    return {"core": grads, "reference": ref_grads}


def gradcheck_problem(V, H, T, rng, scale, n_in=None):
    """(model, params, (inputs, targets, hprev), analytic gradients) of a
    model with random parameters of ``scale`` and a chunk of T steps whose
    inputs are among the first ``n_in`` characters (default: all V)."""
    params = random_params(V, H, rng, scale)
    inputs = rng.integers(0, V if n_in is None else n_in, T)
    targets = rng.integers(0, V, T)
    hprev = rng.uniform(-0.5, 0.5, (H, 1))
    model = CharRNN.from_params(params)
    return model, params, (inputs, targets, hprev), analytic_gradients(model, params, inputs,
                                                                       targets, hprev)


@pytest.mark.parametrize("V,H,T,seed", [
    (12, 10, 15, 0),
    (7, 3, 1, 1),      # one step
    (5, 1, 8, 2),      # hidden size 1
    (2, 6, 12, 3),     # two characters
])
def test_gradcheck_every_entry(V, H, T, seed):
    # leave some characters out of the chunk when there are enough of them
    n_in = V - 3 if V > 5 else V
    model, params, chunk, analytic = gradcheck_problem(V, H, T, np.random.default_rng(seed), 0.3,
                                                       n_in)
    for name in PARAM_NAMES:
        size = model.params[name].size
        meaningful = check_entries(model, *chunk, analytic, name, range(size))
        if name == "Wxh":
            present = np.unique(chunk[0])
            absent = np.setdiff1d(np.arange(V), present)
            for grads in analytic.values():
                assert np.all(grads["Wxh"][:, absent] == 0.0)
            size = H * present.size
        # the relative check is not vacuous
        assert meaningful >= 0.5 * size, f"{name}: only {meaningful}/{size} entries >= {MEANINGFUL}"
    # the perturbations were all undone
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(model.params[name], params[name])


def test_gradcheck_absent_columns_are_exactly_zero_numerically():
    """The loss does not depend on Wxh columns of characters absent from the
    chunk: the numerical gradient there is exactly 0, as the analytic one."""
    V, H, T = 9, 4, 10
    rng = np.random.default_rng(5)
    params = random_params(V, H, rng, 0.3)
    inputs = rng.integers(0, 4, T)
    targets = rng.integers(0, V, T)
    model = CharRNN.from_params(params)
    for c in range(4, V):
        for i in range(H):
            idx = i * V + c
            assert numerical_gradient(model, inputs, targets, np.zeros(H), "Wxh", idx) == 0.0


def test_gradcheck_seed_sizes_sampled_entries():
    """The seed's setting (V=65, H=100, T=25, randn*0.01-like weights made a
    bit larger so that gradients are not tiny): 40 random entries of each
    parameter plus 3 rows of every Wxh column present in the chunk."""
    V, H, T = 65, 100, 25
    rng = np.random.default_rng(6)
    model, _, chunk, analytic = gradcheck_problem(
        V, H, T, rng, dict(Wxh=0.1, Whh=0.05, Why=0.1, bh=0.1, by=0.1))
    for name in PARAM_NAMES:
        size = model.params[name].size
        if name == "Wxh":
            rows = rng.choice(H, 3, replace=False)
            indices = [r * V + c for c in np.unique(chunk[0]) for r in rows]
        else:
            indices = rng.choice(size, min(40, size), replace=False)
        meaningful = check_entries(model, *chunk, analytic, name, indices)
        assert meaningful >= 0.3 * len(indices), f"{name}: {meaningful}/{len(indices)}"


def test_gradcheck_would_catch_the_seed_bptt_bug():
    """The seed's complete listing never carries dhnext through Whh. That
    gradient differs from the finite differences far beyond the tolerance,
    so the check above is able to fail."""
    V, H, T = 8, 6, 10
    rng = np.random.default_rng(7)
    params = random_params(V, H, rng, 0.4)
    inputs, targets = rng.integers(0, V, T), rng.integers(0, V, T)
    model = CharRNN.from_params(params)
    # truncated BPTT: sum of one-step gradients (dhnext = 0 everywhere)
    hs = [np.zeros((H, 1))]
    for x in inputs:
        hs.append(np.tanh(params["Wxh"][:, [x]] + params["Whh"] @ hs[-1] + params["bh"]))
    dWhh_truncated = np.zeros((H, H))
    for t in range(T):
        y = params["Why"] @ hs[t + 1] + params["by"]
        p = np.exp(y - y.max())
        p /= p.sum()
        p[targets[t]] -= 1
        dhraw = (1 - hs[t + 1] ** 2) * (params["Why"].T @ p)
        dWhh_truncated += dhraw @ hs[t].T
    index = int(np.argmax(np.abs(dWhh_truncated)))
    num = numerical_gradient(model, inputs, targets, np.zeros(H), "Whh", index)
    _, grads, _ = model.loss_and_grads(inputs, targets, np.zeros(H))
    assert abs(grads["Whh"].flat[index] - num) <= max(ABS_TOL, REL_TOL * abs(num))
    worst = max(abs(dWhh_truncated.flat[i] - numerical_gradient(model, inputs, targets, np.zeros(H), "Whh", i))
                for i in range(H * H))
    assert worst > 1e3 * ABS_TOL


# ---------------------------------------------------------------------------
# the mean loss of B streams
# ---------------------------------------------------------------------------

def test_gradcheck_mean_loss_at_b3():
    """Central differences of the mean loss (model.loss, 2-D) against
    loss_and_grads' mean gradients, on every entry of a small model (the
    bounds of check_entries)."""
    V, H, T, B = 9, 6, 10, 3
    rng = np.random.default_rng(8)
    params = random_params(V, H, rng, 0.3)
    inputs = rng.integers(0, V - 2, (B, T))      # the last two characters never read
    targets = rng.integers(0, V, (B, T))
    hprev = rng.uniform(-0.5, 0.5, (H, B))
    model = CharRNN.from_params(params)
    _, grads, _ = model.loss_and_grads(inputs, targets, hprev)
    assert max(np.max(np.abs(g)) for g in grads.values()) < CLIP   # no clipping: a fair check
    for name in PARAM_NAMES:
        size = model.params[name].size
        meaningful = check_entries(model, inputs, targets, hprev, {"core B=3": grads}, name,
                                   range(size))
        present = H * np.unique(inputs).size if name == "Wxh" else size
        assert meaningful >= 0.5 * present, f"{name}: {meaningful}/{present}"
    assert np.all(grads["Wxh"][:, V - 2:] == 0.0)
    # the sum-over-streams gradient (a plausible bug) is B times too large
    assert np.max(np.abs(B * grads["Why"] - grads["Why"])) > 1e3 * ABS_TOL
