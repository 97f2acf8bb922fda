"""What a model of given sizes takes in memory (per cell, layers, dtype, optimizer), checked against what this process may still allocate.

``model_bytes`` counts the arrays a training run holds: the parameters and,
beside each, the optimiser's memory, the gradients and Adam's first moment
(charrnn_ext.core.model); the core's own copies of some
weights (the transposed or packed recurrent and input weights, an
embedding's lookup table and its gradient); and the work buffers of a step
of T * B rows (its states, gates and probabilities: src/core/workspace.pxi,
gated_workspace.pxi). While the model is built, its initial parameters are
drawn in float64 beside it. ``check_memory`` refuses a model that would not
fit in available_memory() (the smallest of the RAM available, the cgroup's
limit and RLIMIT_AS): the operating system would kill the process rather
than let it fail cleanly. Measured against the peak RSS of real runs:
benchmarks/bench_memory.py.
"""
from __future__ import annotations

import math

import numpy as np

from ..core import optimizers, reference_gated
from .._machine import available_memory
from .._words import count
from ..core._dispatch import core_for
from ..core.spec import param_shapes

MARGIN = 0.8   # of the memory available: the rest for Python, numpy, the text and the data pass


class TooLarge(MemoryError):
    """A model too large for the memory available, refused before it is built
    (charrnn-train: bad settings for this machine, exit status 2)."""


def model_bytes(V: int, H: int, T: int, B: int, D: int = 0, *, cell: str = "rnn",
                num_layers: int = 1, dtype="float64", optimizer: str = "adagrad") -> int:
    """Bytes a training run of this model holds at its peak (see the module):
    V characters, hidden size H, chunks of T steps of B streams, an input
    embedding of width D (0: one-hot)."""
    itemsize = np.dtype(dtype).itemsize
    copies = 2 + len(optimizers.get(optimizer).slots)   # params, grads, the optimizer's slots
    N, L = T * B, num_layers
    stripes = core_for(dtype).stripe_count(V, H)
    # the output layer's work: probabilities, the stripes' partial dh and their sums
    output = N * V + (stripes - 1) * N * H + 3 * stripes * N + N + V
    if cell == "rnn" and L == 1:   # min-char-rnn's model (workspace.pxi)
        P = sum(math.prod(s) for s in param_shapes(V, H, D).values())
        core = H * H + H * V + 2 * H * V * (D > 0)          # WhhT, WhyT, table, dtable
        work = (N + B) * H + 2 * B * H + N * H              # hs, dh_next, h_next, dhs
    else:                           # gated or stacked (gated_workspace.pxi)
        G = reference_gated.GATES[cell]
        K, GH = (2 if cell == "lstm" else 1), G * H
        P = sum(math.prod(s) for s in
                reference_gated.param_shapes(cell, V, H, L, D).values())
        core = V * GH * (1 + (D > 0)) + 2 * L * H * GH      # WihT0, dtable, packed Whh twice
        work = (L * (N + B) * H * K + L * N * (GH + H) + 2 * (L - 1) * N * H
                + N * GH * (3 if cell == "gru" else 2) + N * H + 3 * B * H)
    steady = itemsize * (copies * P + core + work + output)
    building = 8 * P + itemsize * (copies * P + core)   # the float64 draw beside the model
    return max(steady, building)


def check_memory(V: int, H: int, T: int, B: int, D: int = 0, **model) -> None:
    """TooLarge (a MemoryError) for a model (model_bytes' keywords: cell,
    num_layers, dtype, optimizer) that would not fit in the memory
    available to this process now."""
    need = model_bytes(V, H, T, B, D, **model)
    available = available_memory()
    if available and need > MARGIN * available:
        width = f" and --embedding-size {D}" if D else ""
        what = describe_model(**model)
        raise TooLarge(f"--hidden-size {H}{width} with {count(V, 'character')} needs "
                       f"{need / 2**30:.1f} GiB for the parameters, the optimizer's state and "
                       f"gradients ({what}); {available / 2**30:.1f} GiB of memory is available "
                       f"to this process")


def describe_model(cell: str = "rnn", num_layers: int = 1, dtype="float64",
                   optimizer: str = "adagrad") -> str:
    """E.g. "lstm, 2 layers, float32, adam"."""
    layers = f", {count(num_layers, 'layer')}" if num_layers > 1 else ""
    return f"{cell}{layers}, {np.dtype(dtype).name}, {optimizer}"
