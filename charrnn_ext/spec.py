"""The model's definition shared by the core wrapper and the numpy reference:
parameter names, their shapes and the seed's initialisation (one place each)."""
import numpy as np

from .defaults import INIT_SCALE

# The parameter names, in the seed's order.
PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


def param_shapes(vocab_size: int, hidden_size: int) -> dict:
    """The seed's shapes: Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1)."""
    H, V = hidden_size, vocab_size
    return {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}


def init_params(vocab_size: int, hidden_size: int, seed=None) -> dict:
    """The seed's initialisation: weights randn * 0.01 drawn in the order
    Wxh, Whh, Why from np.random.RandomState(seed) (the stream of the seed's
    global np.random.randn), biases zero."""
    rng = np.random.RandomState(seed)
    shapes = param_shapes(vocab_size, hidden_size)
    return {
        name: (rng.randn(*shapes[name]) * INIT_SCALE if name.startswith("W") else np.zeros(shapes[name]))
        for name in PARAM_NAMES
    }
