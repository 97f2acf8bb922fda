"""Sampling: the seed's sample() with a temperature and a seeded Generator
(against reference.sample), and what a Generator hands the core checked first."""
import numpy as np
import pytest

from charrnn_ext import CharRNN, PARAM_NAMES
from charrnn_ext.core import reference

from conftest import assert_close, random_params, reference_hidden_after, reference_probs

V, H = 40, 32


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(100)
    # output weights large enough that the distributions are far from uniform
    # and argmax ties do not occur
    params = random_params(V, H, rng, dict(Wxh=0.5, Whh=0.2, Why=1.0, bh=0.3, by=0.5))
    model = CharRNN.from_params(params)
    h = rng.uniform(-1, 1, (H, 1))
    return model, params, h


def test_greedy_path_equals_reference_argmax(setup):
    model, params, h = setup
    for seed_ix in (0, 7, V - 1):
        ids = model.sample(h, seed_ix, 300, temperature=0)
        ref = reference.sample(h, seed_ix, 300, params, temperature=0)
        assert ids.tolist() == ref
        # the greedy path is not trivial (it visits several characters)
        assert len(set(ref)) > 1


def test_greedy_ignores_rng(setup):
    model, _, h = setup
    a = model.sample(h, 3, 50, temperature=0.0, rng=1)
    b = model.sample(h, 3, 50, temperature=0.0, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
def test_seeded_sampling_equals_reference(setup, temperature):
    model, params, h = setup
    ids = model.sample(h, 5, 400, temperature=temperature, rng=np.random.default_rng(7))
    ref = reference.sample(h, 5, 400, params, temperature=temperature, rng=np.random.default_rng(7))
    assert ids.tolist() == ref


def test_seeded_sampling_is_reproducible(setup):
    model, _, h = setup
    a = model.sample(h, 1, 500, rng=123)
    b = model.sample(h, 1, 500, rng=123)
    c = model.sample(h, 1, 500, rng=np.random.default_rng(123))
    d = model.sample(h, 1, 500, rng=124)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)   # an int seed means default_rng(seed)
    assert not np.array_equal(a, d)


def test_generator_state_advances_like_reference(setup):
    """Two consecutive calls with one Generator continue its stream exactly
    like two consecutive reference.sample calls."""
    model, params, h = setup
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    first = model.sample(h, 2, 60, rng=g1).tolist() + model.sample(h, 4, 60, rng=g1).tolist()
    second = reference.sample(h, 2, 60, params, rng=g2) + reference.sample(h, 4, 60, params, rng=g2)
    assert first == second
    assert g1.random() == g2.random()


def test_sampled_ids_in_range_and_typed(setup):
    model, _, h = setup
    for temperature in (0.0, 0.5, 1.0, 10.0):
        ids = model.sample(h, 0, 1000, temperature=temperature, rng=0)
        assert isinstance(ids, np.ndarray)
        assert ids.dtype.kind in "iu"
        assert ids.shape == (1000,)
        assert ids.min() >= 0 and ids.max() < V


def test_one_character_vocabulary():
    model = CharRNN(1, 5, seed=0)
    np.testing.assert_array_equal(model.sample(np.zeros(5), 0, 20, rng=0), np.zeros(20))
    np.testing.assert_array_equal(model.sample(np.zeros(5), 0, 20, temperature=0), np.zeros(20))


def test_n_zero_returns_empty(setup):
    model, _, h = setup
    ids = model.sample(h, 0, 0)
    assert len(ids) == 0
    ids, h_after = model.sample(h, 0, 0, return_hidden=True)
    assert len(ids) == 0
    assert_close(h_after, h, 0.0, "h unchanged")


def test_return_hidden_is_the_state_after_the_last_input(setup):
    """With return_hidden, h_after is the hidden state after reading seed_ix
    and the first n-1 sampled ids (the last sampled id is not read)."""
    model, params, h = setup
    h_copy = h.copy()
    ids, h_after = model.sample(h, 6, 30, temperature=0.8, rng=5, return_hidden=True)
    assert h_after.shape == (H, 1)
    expected = reference_hidden_after(params, [6] + ids[:-1].tolist(), h)
    assert_close(h_after, expected, 1e-10, "h after sampling")
    np.testing.assert_array_equal(h, h_copy)   # the caller's h is untouched
    # continuing from (last id, h_after) with the same Generator reproduces
    # one long call
    gen = np.random.default_rng(5)
    first, h_mid = model.sample(h, 6, 12, temperature=0.8, rng=gen, return_hidden=True)
    rest = model.sample(h_mid, int(first[-1]), 18, temperature=0.8, rng=gen)
    assert np.concatenate([first, rest]).tolist() == ids.tolist()


def test_very_low_temperature_is_greedy(setup):
    model, _, h = setup
    greedy = model.sample(h, 3, 200, temperature=0)
    cold = model.sample(h, 3, 200, temperature=1e-3, rng=0)
    # a divergence at one step would change every later step: compare the
    # fraction of agreement, which is 1 unless two logits are within ~1e-2
    assert np.mean(greedy == cold) >= 0.95


def test_first_draw_follows_softmax_of_temperature(setup):
    """The first sampled id is distributed as softmax(y / T): empirical
    frequencies over 20000 seeded draws match it (5-sigma bound)."""
    model, params, h = setup
    n_draws = 20000
    gen = np.random.default_rng(77)
    for temperature in (0.5, 1.0, 3.0):
        p = reference_probs(params, h, 4, temperature)
        counts = np.zeros(V)
        for _ in range(n_draws):
            counts[model.sample(h, 4, 1, temperature=temperature, rng=gen)[0]] += 1
        freq = counts / n_draws
        sigma = np.sqrt(p * (1 - p) / n_draws)
        assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12), temperature


def test_temperature_changes_the_distribution(setup):
    """Higher temperature: flatter distribution (higher entropy), more
    distinct characters in a long sample."""
    model, params, h = setup
    entropies = []
    for temperature in (0.2, 1.0, 5.0):
        p = reference_probs(params, h, 4, temperature)
        entropies.append(-np.sum(p * np.log(p + 1e-300)))
    assert entropies[0] < entropies[1] < entropies[2]
    distinct = [len(set(model.sample(h, 4, 2000, temperature=t, rng=3).tolist())) for t in (0.2, 5.0)]
    assert distinct[0] < distinct[1]


def test_sampling_leaves_the_model_untouched(setup):
    model, params, h = setup
    model.sample(h, 0, 100, rng=0)
    for n in PARAM_NAMES:
        np.testing.assert_array_equal(model.params[n], params[n])
        np.testing.assert_array_equal(model.memory[n], 0.0)


@pytest.mark.parametrize("h_shape", [(H, 1), (H,)])
def test_hidden_state_shapes_and_none(setup, h_shape):
    model, params, h = setup
    a = model.sample(h.reshape(h_shape), 2, 50, rng=4)
    b = model.sample(h, 2, 50, rng=4)
    np.testing.assert_array_equal(a, b)
    z = model.sample(None, 2, 50, rng=4)   # None: zero hidden state
    ref = reference.sample(np.zeros((H, 1)), 2, 50, params, rng=np.random.default_rng(4))
    assert z.tolist() == ref


def test_sample_of_trained_model_matches_reference_after_training():
    """After a few fused steps, sampling the core model equals sampling the
    reference with the core's parameters (sampling reads the updated arrays)."""
    rng = np.random.default_rng(5)
    model = CharRNN(20, 16, seed=1)
    for _ in range(5):
        x = rng.integers(0, 20, 25)
        model.train_step(x, np.roll(x, -1), np.zeros(16))
    params = {n: model.params[n].copy() for n in PARAM_NAMES}
    ids = model.sample(np.zeros(16), 0, 100, temperature=1.0, rng=8)
    ref = reference.sample(np.zeros((16, 1)), 0, 100, params, temperature=1.0, rng=np.random.default_rng(8))
    assert ids.tolist() == ref


@pytest.mark.parametrize("V_big", [511, 512, 513, 1100])
def test_large_vocabulary_sampling_equals_reference(V_big):
    """Vocabularies around and beyond the sampler's column blocks (512)."""
    rng = np.random.default_rng(V_big)
    params = random_params(V_big, 24, rng, dict(Wxh=0.5, Whh=0.2, Why=1.5, bh=0.3, by=0.5))
    model = CharRNN.from_params(params)
    h = rng.uniform(-1, 1, (24, 1))
    for temperature in (0.0, 1.0):
        ids = model.sample(h, V_big - 1, 120, temperature=temperature, rng=np.random.default_rng(3))
        ref = reference.sample(h, V_big - 1, 120, params, temperature=temperature,
                               rng=np.random.default_rng(3))
        assert ids.tolist() == ref
    if V_big > 1000:
        assert max(ref) >= 512            # ids beyond the first block were drawn


def test_a_generator_subclass_cannot_hand_the_core_too_few_uniforms():
    """sample() reads n uniforms without bounds checks: what rng.random(n)
    returns is checked (shape, dtype, range) and copied first."""
    class Short(np.random.Generator):
        def random(self, *args, **kwargs):
            return np.zeros(1)

    class OutOfRange(np.random.Generator):
        def random(self, size=None, *args, **kwargs):
            return np.full(size, 7.0)

    class NotAnArray(np.random.Generator):
        def random(self, size=None, *args, **kwargs):
            return [0.5] * size

    model = CharRNN(3, 8, seed=0)
    for cls in (Short, OutOfRange, NotAnArray):
        with pytest.raises(ValueError, match="must give"):
            model.sample(None, 0, 1000, rng=cls(np.random.PCG64(0)))
    assert model.sample(None, 0, 1000, rng=np.random.Generator(np.random.PCG64(0))).shape == (1000,)
