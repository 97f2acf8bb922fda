"""What a model's arrays must be: its architecture read from them, their layout, checked copies into the core's storage."""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from . import cells, reference_gated
from ._arrays import _MAX_ELEMENTS, _check_size, _real_array
from ._ids import _embedding_size, _positive_int
from .spec import EMBED, MAX_LAYERS, PARAM_NAMES, param_shapes

PARAMS_FORMS = (f"a dict of arrays named {', '.join(PARAM_NAMES)} (min-char-rnn's; and {EMBED} "
                f"with an input embedding) or weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, "
                f"..., Why, by (PyTorch's names, per layer)")


class Architecture:
    """A model's cell, layers, sizes, and whether it is min-char-rnn's own model
    (one tanh layer, the original script's names, its own kernels)."""

    __slots__ = ("cell", "num_layers", "V", "H", "D", "minchar")

    def __init__(self, cell: str, num_layers: int, V: int, H: int, D: int, minchar: bool):
        self.cell, self.num_layers, self.V, self.H, self.D = cell, num_layers, V, H, D
        self.minchar = minchar
        if minchar and (cell != "rnn" or num_layers != 1):
            raise ValueError("min-char-rnn's names are for one tanh layer (cell 'rnn')")

    def shapes(self) -> dict:
        """{name: shape} in the core's storage order."""
        if self.minchar:
            return param_shapes(self.V, self.H, self.D)
        return reference_gated.param_shapes(self.cell, self.V, self.H, self.num_layers, self.D)

    def layout(self) -> dict:
        """{name: (offset, shape)} in one flat array, and its length."""
        out, at = {}, 0
        for name, shape in self.shapes().items():
            out[name] = (at, shape)
            at += math.prod(shape)
        return out, at

    @property
    def state_parts(self) -> int:
        return cells.CELLS[self.cell].state_rows

    @property
    def gates(self) -> int:
        return cells.CELLS[self.cell].gates

    def sizes(self) -> str:
        """The sizes a shape error names: "hidden_size=H, vocab_size=V[, ...]"."""
        return (f"hidden_size={self.H}, vocab_size={self.V}"
                + (f", embedding_size={self.D}" if self.D else "")
                + (f", cell={self.cell!r}, num_layers={self.num_layers}" if not self.minchar
                   else ""))

    def check_size(self) -> None:
        """ValueError unless every matrix and the whole model fit the core's limits."""
        _check_size(self.V, self.gates * self.H, self.D)
        _check_size(self.V, self.H, self.D)
        n = sum(math.prod(s) for s in self.shapes().values())
        if n > _MAX_ELEMENTS:
            raise ValueError(f"the model's {n:,} parameters are too many (the core handles up "
                             f"to {_MAX_ELEMENTS:,})")


def check_architecture(cell, num_layers, dropout) -> tuple:
    """(cell, num_layers, dropout) validated: a cell of charrnn_ext.core.cells,
    1 <= num_layers <= MAX_LAYERS, 0 <= dropout < 1."""
    cell = cells.cell(cell).name
    L = _positive_int(num_layers, "num_layers")
    if L > MAX_LAYERS:
        raise ValueError(f"num_layers must be at most {MAX_LAYERS}, got {L}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) \
            or not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return cell, L, float(dropout)


def _matrix(params, name: str) -> tuple:
    shape = np.shape(_real_array(params[name], f"params['{name}']"))
    if len(shape) != 2:
        raise ValueError(f"params['{name}'] must be 2-D, got shape {shape}")
    return shape


def architecture_of(params, cell=None) -> Architecture:
    """The architecture ``params`` describe, by their names and shapes: min-char-rnn's
    (Wxh, Whh, Why, bh, by[, embed]) or PyTorch's per layer (weight_ih_l0, ...,
    Why, by[, embed]). ``cell``: which cell PyTorch-named weights are (None: the
    one cell with their gate count)."""
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be {PARAMS_FORMS}")
    D = _embedding_size(_matrix(params, EMBED)[1]) if EMBED in params else 0
    if "Wxh" in params and "Why" in params:
        (H, I), (V, _) = _matrix(params, "Wxh"), _matrix(params, "Why")
        if cell not in (None, "rnn"):
            raise ValueError(f"min-char-rnn's names are a tanh RNN's, not cell {cell!r}")
        return Architecture("rnn", 1, V if D else I, H, D, True)
    if "weight_hh_l0" in params and "Why" in params:
        V, H = _matrix(params, "Why")
        L = 0
        while f"weight_hh_l{L}" in params:
            L += 1
        rows = _matrix(params, "weight_hh_l0")[0]
        if cell is None:
            found = cells.by_gates(rows // H) if H and rows % H == 0 else None
            if found is None:
                raise ValueError(f"params['weight_hh_l0'] has {rows} rows: G * H rows for one of "
                                 + ", ".join(f"{c.name} (G = {c.gates})" for c in cells.CELLS.values()))
            cell = found.name
        cell, L, _ = check_architecture(cell, L, 0.0)
        return Architecture(cell, L, V, H, D, False)
    raise ValueError(f"params must be {PARAMS_FORMS}")


def fill(target: dict, given, what: str, dtype, sizes: str = "") -> None:
    """Copy ``given`` (a mapping of arrays) into ``target`` ({name: the model's
    private view}), checked: exactly the target's names, each of its shape (a
    bias may also come as (n,) or (n, 1)), finite after the cast to ``dtype``."""
    if not isinstance(given, Mapping):
        raise TypeError(f"{what} must be a dict of arrays named {', '.join(target)}")
    missing = [n for n in target if n not in given]
    if missing:
        raise ValueError(f"{what} is missing {', '.join(missing)}")
    extra = sorted(map(repr, set(given) - set(target)))
    if extra:
        raise ValueError(f"{what} has unknown entries {', '.join(extra)}")
    for name, out in target.items():
        arr = _real_array(given[name], f"{what}['{name}']")
        shape = out.shape
        if arr.size == 0:
            raise ValueError(f"{what}['{name}'] is empty")
        if arr.shape != shape and not (arr.size == shape[0] and arr.shape in
                                       ((shape[0],), (shape[0], 1))):
            raise ValueError(f"{what}['{name}'] has shape {arr.shape}, expected {shape}"
                             + (f" ({sizes})" if sizes else ""))
        with np.errstate(over="ignore"):   # a value float32 cannot hold: inf, refused below
            out[...] = arr.reshape(shape).astype(dtype, copy=False)
        if not np.isfinite(out).all():   # what the core will read: after the cast
            raise ValueError(f"{what}['{name}'] contains NaN or infinite values")
