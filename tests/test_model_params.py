"""Constructing a model: CharRNN(V, H, seed) and CharRNN.from_params(params,
memory) refuse bad sizes, missing, extra, misshapen, non-finite, masked or
too-wide (float128) parameters and memory with a ValueError / TypeError that
names what is wrong.

A call's arguments: test_model_inputs; values written into a model's arrays
later: test_model_nonfinite.
"""
import numpy as np
import pytest

from charrnn_ext import CharRNN
from charrnn_ext.core.spec import param_shapes

from conftest import HAS_FLOAT128, float128_array, masked_array, random_params

V, H = 11, 7


# ---------------------------------------------------------------------------
# sizes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,error", [
    ((0, 5), ValueError), ((5, 0), ValueError), ((0, 0), ValueError),
    ((-3, 5), ValueError), ((5, -1), ValueError),
    ((5.0, 5), TypeError), ((5, 5.5), TypeError), (("5", 5), TypeError),
    ((True, 5), TypeError), ((None, 5), TypeError),
])
def test_bad_sizes(args, error):
    with pytest.raises(error):
        CharRNN(*args)


def test_good_sizes():
    m = CharRNN(np.int64(3), np.int32(2), seed=0)
    assert m.vocab_size == 3 and m.hidden_size == 2
    assert m.params["Wxh"].shape == (2, 3) and m.params["by"].shape == (3, 1)


# ---------------------------------------------------------------------------
# from_params
# ---------------------------------------------------------------------------

def _params():
    return random_params(V, H, np.random.default_rng(10), 0.3)


def _with(name, value, base=None):
    p = _params() if base is None else base
    p[name] = value
    return p


def _without(name):
    p = _params()
    del p[name]
    return p


BAD_PARAMS = [
    pytest.param(_without("Wxh"), ValueError, id="missing-Wxh"),
    pytest.param(_without("by"), ValueError, id="missing-by"),
    pytest.param({}, ValueError, id="empty-dict"),
    pytest.param(_with("extra", np.zeros(3)), ValueError, id="unknown-name"),
    pytest.param(_with("Whh", np.zeros((H, H + 1))), ValueError, id="Whh-columns"),
    pytest.param(_with("Whh", np.zeros((H + 1, H + 1))), ValueError, id="Whh-square-wrong-H"),
    pytest.param(_with("Why", np.zeros((V + 1, H))), ValueError, id="Why-rows"),
    pytest.param(_with("Why", np.zeros((H, V))), ValueError, id="Why-transposed"),
    pytest.param(_with("bh", np.zeros((H + 1, 1))), ValueError, id="bh-length"),
    pytest.param(_with("bh", np.zeros((1, H))), ValueError, id="bh-row"),
    pytest.param(_with("by", np.zeros((V, 2))), ValueError, id="by-two-columns"),
    pytest.param(_with("by", np.zeros((V - 1,))), ValueError, id="by-short"),
    pytest.param(_with("Wxh", np.zeros(V * H)), ValueError, id="Wxh-1-D"),
    pytest.param(_with("Wxh", np.zeros((H, V, 1))), ValueError, id="Wxh-3-D"),
    pytest.param(_with("Wxh", np.zeros((0, V))), ValueError, id="Wxh-H0"),
    pytest.param(_with("Wxh", np.zeros((H, 0))), ValueError, id="Wxh-V0"),
    pytest.param(_with("Whh", np.full((H, H), np.nan)), ValueError, id="nan"),
    pytest.param(_with("by", np.full((V, 1), np.inf)), ValueError, id="inf"),
    pytest.param(_with("Whh", np.full((H, H), "x")), TypeError, id="strings"),
    pytest.param(_with("Whh", np.zeros((H, H), dtype=complex)), TypeError, id="complex"),
    pytest.param(_with("Whh", None), TypeError, id="none"),
    pytest.param([np.zeros(1)] * 5, TypeError, id="not-a-dict"),
]


@pytest.mark.parametrize("params,error", BAD_PARAMS)
def test_bad_from_params(params, error):
    with pytest.raises(error):
        CharRNN.from_params(params)


def _memory(**changes):
    p = _params()
    m = {n: np.ones_like(a) for n, a in p.items()}
    for k, v in changes.items():
        if v is None:
            del m[k]
        else:
            m[k] = v
    return p, m


@pytest.mark.parametrize("pm,error", [
    pytest.param(_memory(Wxh=np.ones((H, V + 1))), ValueError, id="Wxh-shape"),
    pytest.param(_memory(Whh=np.ones((H + 1, H + 1))), ValueError, id="Whh-shape"),
    pytest.param(_memory(by=np.ones((V + 1, 1))), ValueError, id="by-shape"),
    pytest.param(_memory(bh=None), ValueError, id="missing"),
    pytest.param(_memory(Why=-np.ones((V, H))), ValueError, id="negative"),
    pytest.param(_memory(bh=np.full((H, 1), np.nan)), ValueError, id="nan"),
    pytest.param(_memory(bh=np.full((H, 1), np.inf)), ValueError, id="inf"),
    pytest.param((_params(), "memory"), TypeError, id="not-a-dict"),
])
def test_bad_memory(pm, error):
    params, memory = pm
    with pytest.raises(error):
        CharRNN.from_params(params, memory)


def test_from_params_errors_name_the_parameter():
    with pytest.raises(ValueError, match="Whh"):
        CharRNN.from_params(_with("Whh", np.zeros((H, H + 1))))
    with pytest.raises(ValueError, match="by"):
        CharRNN.from_params(_without("by"))
    with pytest.raises(ValueError, match="Why"):
        CharRNN.from_params(*_memory(Why=-np.ones((V, H))))


def _from_params_with(which, name, array):
    """CharRNN.from_params of zero (V, H) = (5, 3) params and memory, with
    ``which`` ("params" or "memory") [name] = array."""
    params = {n: np.zeros(s) for n, s in param_shapes(5, 3).items()}
    memory = {n: np.zeros(s) for n, s in param_shapes(5, 3).items()}
    (params if which == "params" else memory)[name] = array
    return CharRNN.from_params(params, memory)


@pytest.mark.skipif(not HAS_FLOAT128, reason="long double is float64 here")
@pytest.mark.parametrize("which", ["params", "memory"])
def test_from_params_refuses_float128(which):
    with pytest.raises(TypeError, match=rf"{which}\['Whh'\].*float128"):
        _from_params_with(which, "Whh", float128_array((3, 3)))


@pytest.mark.parametrize("which", ["params", "memory"])
def test_from_params_refuses_masked_arrays(which):
    with pytest.raises(TypeError, match=rf"{which}\['by'\].*masked"):
        _from_params_with(which, "by", masked_array((5, 1)))
