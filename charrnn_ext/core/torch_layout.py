"""A model's weights under the names and in the layout of PyTorch's modules (nn.RNN/LSTM/GRU, nn.Linear, nn.Embedding): what export, ONNX and the live page read."""
from __future__ import annotations

import numpy as np

from . import cells
from .model import CharRNN


def state_dict(model) -> dict:
    """{torch name: array in the model's dtype} of a CharRNN."""
    if not isinstance(model, CharRNN):
        raise TypeError(f"expected a CharRNN, got {type(model).__name__}")
    if not model.minchar:
        out = {f"rnn.{name}": np.array(a) for name, a in model.params.items()
               if name not in ("Why", "by", "embed")}
    else:
        p = model.params
        out = {"rnn.weight_ih_l0": np.array(p["Wxh"]), "rnn.weight_hh_l0": np.array(p["Whh"]),
               "rnn.bias_ih_l0": np.array(p["bh"]).reshape(-1),
               "rnn.bias_hh_l0": np.zeros(model.hidden_size)}
    if "embed" in model.params:
        out["embed.weight"] = np.array(model.params["embed"])
    out["out.weight"] = np.array(model.params["Why"])
    out["out.bias"] = np.array(model.params["by"]).reshape(-1)
    return {k: np.ascontiguousarray(v, dtype=model.dtype) for k, v in out.items()}


def layers_of(model) -> tuple[int, int]:
    """(L, K): the model's layers and the vectors per layer in its state
    (2 for an LSTM: h then c; else 1). A stream's state is (L*K*H,)."""
    return model.num_layers, cells.CELLS[model.cell].state_rows
