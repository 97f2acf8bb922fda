"""Non-finite values never reach the core, and a non-finite training loss is an error.

The audit's case: ``m.params['Whh'][0, 0] = np.inf; m.train(ids, 5, 25)``
returned ``[nan]`` (one loss, not five), no error, and left the parameters
non-finite. Now every call (train, train_step, loss_and_grads, loss,
advance, sample) refuses NaN or infinite params, and NaN, infinite or
negative Adagrad memory, written through the model's views, with a
ValueError naming the array and the index, before the core runs; a step
whose loss is NaN or infinite raises TrainingDiverged, which carries the
losses, states and position of the steps run. grads' views are read-only
(the core reads grads['Wxh'] back).
"""
import pickle

import numpy as np
import pytest

from charrnn_ext import CharRNN, PARAM_NAMES
from charrnn_ext.core.model import TrainingDiverged
from charrnn_ext.core.spec import param_shapes

from conftest import assert_model_unchanged, data_pass, model_state


V, H, T = 10, 8, 5


IDS = (np.arange(200) % (V - 1)).astype(np.int32)   # id V - 1 is never read


CALLS = {
    "train": lambda m: m.train(IDS, 3, T),
    "train_step": lambda m: m.train_step(IDS[:T], IDS[1:T + 1], None),
    "train_step_batched": lambda m: m.train_step(np.stack([IDS[:T]] * 2),
                                                 np.stack([IDS[1:T + 1]] * 2), None),
    "loss_and_grads": lambda m: m.loss_and_grads(IDS[:T], IDS[1:T + 1], None),
    "loss": lambda m: m.loss(IDS[:50], IDS[1:51], None),
    "advance": lambda m: m.advance(IDS[:7]),
    "advance_nothing": lambda m: m.advance([]),
    "sample": lambda m: m.sample(None, 3, 20, rng=0),
    "sample_greedy": lambda m: m.sample(None, 3, 20, temperature=0),
}


# (kind, name, index, value, the message's start): each would reach the core
BAD = [
    ("params", "Whh", (0, 0), np.inf, r"params\['Whh'\]\[0, 0\] is inf"),
    ("params", "Why", (3, 2), np.nan, r"params\['Why'\]\[3, 2\] is nan"),
    # a column no call here reads: still refused (later chunks would read it)
    ("params", "Wxh", (2, V - 1), -np.inf, rf"params\['Wxh'\]\[2, {V - 1}\] is -inf"),
    # tanh saturates at an infinite bias: the loss stays finite, the value would stay
    ("params", "bh", (4, 0), np.inf, r"params\['bh'\]\[4, 0\] is inf"),
    ("params", "by", (1, 0), np.nan, r"params\['by'\]\[1, 0\] is nan"),
    ("memory", "Whh", (5, 6), np.nan, r"memory\['Whh'\]\[5, 6\] is nan"),
    # an infinite memory entry silently freezes its parameter
    ("memory", "Why", (0, 1), np.inf, r"memory\['Why'\]\[0, 1\] is inf"),
    ("memory", "bh", (2, 0), -1e-3, r"memory\['bh'\]\[2, 0\] is -0.001"),
    ("memory", "Wxh", (7, 0), -np.inf, r"memory\['Wxh'\]\[7, 0\] is -inf"),
]


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("kind, name, index, value, message", BAD,
                         ids=[f"{b[0]}-{b[1]}-{b[3]}" for b in BAD])
def test_every_call_refuses_a_bad_value_written_through_a_view(call, kind, name, index, value,
                                                               message):
    m = CharRNN(V, H, seed=0)
    CALLS["train_step"](m)                           # a used model: nonzero memory and grads
    getattr(m, kind)[name][index] = value            # the view is dropped at once
    before = model_state(m)
    with pytest.raises(ValueError, match=message):
        call(m)
    assert_model_unchanged(m, before)                      # the core did not run
    with pytest.raises(ValueError, match=message):   # and still refuses it
        call(m)
    getattr(m, kind)[name][index] = 0.0              # mended: the model works again
    call(m)


def test_the_audit_example():
    m = CharRNN(V, H, seed=0)
    m.params["Whh"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"params\['Whh'\]\[0, 0\] is inf"):
        m.train(IDS, steps=5, seq_length=T)
    m.params["Whh"][0, 0] = 0.0
    losses, h, position = m.train(IDS, steps=5, seq_length=T)
    assert losses.shape == (5,) and np.all(np.isfinite(losses)) and position == 5 * T


def test_a_view_kept_across_calls_is_checked_at_every_call():
    """A view handed out before a call that passed, written after it."""
    m = CharRNN(V, H, seed=0)
    W = m.params["Whh"]
    mem_by = m.memory["by"]
    m.train(IDS, 2, T)                      # checked here, the views still held
    W[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"params\['Whh'\]\[1, 2\] is nan"):
        m.train_step(IDS[:T], IDS[1:T + 1], None)
    W[1, 2] = 0.5
    m.train_step(IDS[:T], IDS[1:T + 1], None)
    mem_by[4] = -2.0
    with pytest.raises(ValueError, match=r"memory\['by'\]\[4, 0\] is -2.0"):
        m.loss(IDS[:T], IDS[1:T + 1], None)


@pytest.mark.parametrize("derive", [
    lambda v: v[3],                                   # a row
    lambda v: np.asarray(v).reshape(-1)[::2],         # a strided reshape
    lambda v: v.T.view(),                             # a view of a transposed view
    lambda v: np.frombuffer(memoryview(v), dtype=np.float64),   # through a memoryview
], ids=["row", "reshape", "transpose", "memoryview"])
def test_an_array_derived_from_a_view_is_tracked_after_the_view_is_gone(derive):
    m = CharRNN(V, H, seed=0)
    derived = derive(m.params["Whh"])       # the view itself is dropped at once
    m.train_step(IDS[:T], IDS[1:T + 1], None)
    derived[...] = np.inf
    with pytest.raises(ValueError, match=r"params\['Whh'\]\[.*\] is inf"):
        m.train(IDS, 3, T)
    derived[...] = 0.0
    del derived
    m.train(IDS, 3, T)


def test_train_diverging_raises_after_the_step_with_what_train_would_return():
    """A huge learning rate on finite parameters: the loss becomes NaN at
    some step. The steps before it, and its own update, are applied; the
    exception holds their losses (the NaN last), the states and position
    after it; a loop of train_step stops at the same step with the same
    losses; the model refuses later calls (its parameters are NaN)."""
    a, b = CharRNN(V, H, seed=3), CharRNN(V, H, seed=3)
    with pytest.raises(TrainingDiverged) as caught:
        a.train(IDS, 40, T, learning_rate=1e308)
    exc = caught.value
    # no view of the NaN parameters has been handed out: they are checked all the same
    with pytest.raises(ValueError, match=r"params\['\w+'\]\[.*\] is (nan|-?inf)"):
        a.train(IDS, 1, T)
    assert isinstance(exc, FloatingPointError)
    n = exc.losses.size
    assert 1 < n < 40 and np.all(np.isfinite(exc.losses[:-1])) and not np.isfinite(exc.losses[-1])
    assert exc.position == n * T and exc.hidden.shape == (H, 1)
    assert f"step {n} of 40 is nan" in str(exc) and "learning rate" in str(exc)
    h, expected = None, []
    for k, (inputs, targets, _) in enumerate(data_pass(IDS, T, n)):
        if k == n - 1:
            with pytest.raises(TrainingDiverged) as last:
                b.train_step(inputs, targets, h, learning_rate=1e308)
            with pytest.raises(ValueError, match=r"params\['\w+'\]\[.*\] is (nan|-?inf)"):
                b.loss(IDS[:T], IDS[1:T + 1], None)
            expected.append(last.value.losses[0])
            assert last.value.losses.shape == (1,) and last.value.position is None
            assert last.value.hidden.shape == (H, 1)
            np.testing.assert_array_equal(last.value.hidden, exc.hidden)
        else:
            loss, h = b.train_step(inputs, targets, h, learning_rate=1e308)
            expected.append(loss)
    np.testing.assert_array_equal(exc.losses, expected)
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    assert not all(np.all(np.isfinite(a.params[n])) for n in PARAM_NAMES)
    for model in (a, b):
        with pytest.raises(ValueError, match=r"params\['\w+'\]\[.*\] is (nan|-?inf)"):
            model.train(IDS, 1, T)
    fresh = CharRNN(V, H, seed=3)
    a2 = CharRNN.from_params(fresh.params)       # a mended model trains on
    assert a2.train(IDS, 5, T)[0].shape == (5,)


def test_train_diverging_over_several_streams():
    m = CharRNN(V, H, seed=1)
    with pytest.raises(TrainingDiverged) as caught:
        m.train(IDS, 40, T, learning_rate=1e308, streams=2)
    exc = caught.value
    assert exc.hidden.shape == (H, 2) and not np.isfinite(exc.losses[-1])
    assert exc.position == exc.losses.size * T


def test_train_returns_the_loss_of_every_step():
    m = CharRNN(V, H, seed=0)
    for steps in (1, 7, 100):
        losses, _, _ = m.train(IDS, steps, T)
        assert losses.shape == (steps,) and np.all(np.isfinite(losses))


def test_the_exception_pickles():
    exc = TrainingDiverged("training diverged: x", np.array([1.0, np.nan]), np.zeros((H, 1)), 10)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is TrainingDiverged and str(back) == str(exc) and back.position == 10
    np.testing.assert_array_equal(back.losses, exc.losses)
    np.testing.assert_array_equal(back.hidden, exc.hidden)


def test_loss_of_overflowing_finite_parameters_is_reported_not_raised():
    """Forward-only calls change no parameter: a loss that overflows float64
    at finite (huge) parameters comes back as it is."""
    m = CharRNN(V, H, seed=0)
    m.params["Why"][...] = 1e308
    m.params["bh"][...] = 10.0            # hidden states near +1: V rows of 8 * 1e308
    before = model_state(m)
    assert not np.isfinite(m.loss(IDS[:T], IDS[1:T + 1], None))
    loss, grads, _ = m.loss_and_grads(IDS[:T], IDS[1:T + 1], None)
    assert not np.isfinite(loss)
    assert_model_unchanged(m, before, skip={("grads", n) for n in PARAM_NAMES})


def test_grads_views_are_read_only():
    """The core reads grads['Wxh'] back (its columns outside the last chunk's
    inputs must be zero): a value written there would enter a later update."""
    m = CharRNN(V, H, seed=0)
    m.train_step(IDS[:T], IDS[1:T + 1], None)
    for name in PARAM_NAMES:
        g = m.grads[name]
        with pytest.raises(ValueError, match="read-only"):
            g[0, 0] = 1.0
        with pytest.raises(ValueError):
            g.flags.writeable = True
    # and they still show the core's values
    loss, grads, _ = m.loss_and_grads(IDS[:T], IDS[1:T + 1], None)
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(m.grads[name], grads[name])


def test_a_bad_value_is_refused_while_another_view_is_held():
    """Many views handed out and held: each array is checked, the first bad
    one named."""
    m = CharRNN(V, H, seed=0)
    held = [m.params[n] for n in PARAM_NAMES] + [m.memory[n] for n in PARAM_NAMES]
    m.train(IDS, 2, T)
    held[PARAM_NAMES.index("by") + len(PARAM_NAMES)][V - 1] = np.nan
    with pytest.raises(ValueError, match=rf"memory\['by'\]\[{V - 1}, 0\] is nan"):
        m.sample(None, 0, 5, rng=0)


def test_finiteness_is_checked_after_the_cast():
    """float32 / int inputs are cast exactly; the check sees what the core reads."""
    params = {n: np.zeros(s, dtype=np.float32) for n, s in param_shapes(5, 3).items()}
    params["Why"][0, 0] = np.inf
    with pytest.raises(ValueError, match=r"params\['Why'\] contains NaN or infinite"):
        CharRNN.from_params(params)
    params["Why"][0, 0] = 1.0
    params["bh"] = np.array([1, 2, 3], dtype=np.int64)
    model = CharRNN.from_params(params)
    assert model.params["bh"].dtype == np.float64 and model.params["bh"][2, 0] == 3.0
