"""The model's definition shared by the core wrapper and the numpy reference:
parameter names, their shapes and initialisations, the real dtypes it takes (one place each)."""
import numpy as np

from .cells import NAMES as CELLS  # noqa: F401 (the recurrent cells: charrnn_ext.core.cells)
from ..defaults import INIT_SCALE

# The parameter names, in the seed's order; a model with an input embedding
# (embedding_size D > 0) has embed (V, D) too, and its Wxh reads the
# embedding: (H, D).
PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")
EMBED = "embed"
INITS = ("min-char-rnn", "pytorch")   # init_params' schemes
DTYPES = ("float64", "float32")      # what a model computes in (float64: the reference)
MAX_LAYERS = 16     # stacked layers at most (a checkpoint lists the members of this many)


def param_names(embedding_size: int = 0) -> tuple:
    """The parameter names of a model with this input embedding width (0: none)."""
    return PARAM_NAMES + ((EMBED,) if embedding_size else ())


def param_shapes(vocab_size: int, hidden_size: int, embedding_size: int = 0) -> dict:
    """The seed's shapes: Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1);
    with an input embedding of width D, Wxh (H,D) and embed (V,D)."""
    H, V, D = hidden_size, vocab_size, embedding_size
    shapes = {"Wxh": (H, D or V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    if D:
        shapes[EMBED] = (V, D)
    return shapes


def init_params(vocab_size: int, hidden_size: int, seed=None, embedding_size: int = 0,
                init: str = "min-char-rnn") -> dict:
    """Initial parameters, drawn from np.random.RandomState(seed).

    "min-char-rnn" (the seed's): weights randn * 0.01 drawn in the order Wxh,
    Whh, Why (the stream of the seed's global np.random.randn), biases zero.
    "pytorch" (as nn.Embedding, nn.RNN and nn.Linear initialise): embed
    randn; Wxh, Whh, Why, bh, by uniform in [-1/sqrt(H), 1/sqrt(H)), drawn in
    the order embed, Wxh, Whh, Why, bh, by."""
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    rng = np.random.RandomState(seed)
    shapes = param_shapes(vocab_size, hidden_size, embedding_size)
    names = param_names(embedding_size)
    if init == "min-char-rnn":
        out = {name: (rng.randn(*shapes[name]) * INIT_SCALE if name.startswith("W")
                      else np.zeros(shapes[name])) for name in PARAM_NAMES}
        if embedding_size:
            out[EMBED] = rng.randn(*shapes[EMBED])
        return out
    bound = 1.0 / np.sqrt(hidden_size)
    out = {}
    for name in (EMBED,) + PARAM_NAMES:
        if name in names:
            out[name] = (rng.randn(*shapes[name]) if name == EMBED
                         else rng.uniform(-bound, bound, shapes[name]))
    return {name: out[name] for name in names}


def check_real_dtype(dtype: np.dtype, what: str) -> None:
    """TypeError unless ``dtype`` holds real numbers that float64 represents
    without overflow: integers and float16/32/64. Refused: bool, complex,
    strings, objects, records, and floats wider than float64 (a float128
    holding 1e400 would become inf in the cast, after any finiteness check
    made before it). The one rule for every array that becomes float64 model
    state: from_params (params, memory), hprev, and every numeric member of a
    checkpoint (charrnn_ext.ckpt.checkpoint)."""
    if not (dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize <= 8)):
        raise TypeError(f"{what} must be a real array (integers or float16/32/64), "
                        f"got dtype {dtype}")
