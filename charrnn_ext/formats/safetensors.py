"""A model as safetensors for PyTorch: its weights under PyTorch's names, one stream's state, the metadata (charrnn-export's OUT.safetensors).

The safetensors file holds the weights under the names of this PyTorch
module (charrnn_ext.formats.torch.load builds it and loads the file)::

    class Model(torch.nn.Module):
        def __init__(self, V, H, cell, num_layers, D=0):
            super().__init__()
            kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
            if D:                                      # an input embedding of width D
                self.embed = torch.nn.Embedding(V, D)  # else one-hot input of width V
            self.rnn = kind(D or V, H, num_layers=num_layers, batch_first=True)
            self.out = torch.nn.Linear(H, V)

Keys: rnn.weight_ih_l{k}, rnn.weight_hh_l{k}, rnn.bias_ih_l{k},
rnn.bias_hh_l{k} per layer, out.weight, out.bias (and embed.weight, (V, D),
for a model with an input embedding), in the model's dtype (float32 or
float64). A bias the model lacks is exported as zeros: min-char-rnn's tanh
RNN has one bias, bh, exported as bias_ih_l0 with zeros as bias_hh_l0.
The state training left (stream 0) is there too, in PyTorch's layout (the
``hx`` nn.RNN/nn.GRU take, (h, c) for nn.LSTM): state.h (L, 1, H), and for
an LSTM state.c (L, 1, H); these two are not the module's weights.
Metadata (strings): cell, num_layers, embedding_size, hidden_size,
vocab_size, dtype, vocab (a JSON list of the characters in id order).
"""
from __future__ import annotations

import json

import numpy as np

from ..core.torch_layout import layers_of, state_dict


def stream_state(model, state=None) -> np.ndarray:
    """One stream's state (S,) in the model's dtype: ``state`` (S,) or (S, 1)
    -- a checkpoint's ``hidden[:, :1]``, the state training left in stream
    0 -- or zeros when None. ValueError for another shape or a value that
    is not finite."""
    S = model.state_size
    if state is None:
        return np.zeros(S, model.dtype)
    arr = np.asarray(state)
    if arr.shape not in ((S,), (S, 1)) or arr.dtype.kind != "f":
        raise ValueError(f"the state must be (S,) or (S, 1) floats, S = {S}; got {arr.shape} "
                         f"{arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError("the state contains NaN or infinite values")
    return np.ascontiguousarray(arr.reshape(S), dtype=model.dtype)


def torch_state(model, state=None) -> dict:
    """{"state.h": (L, 1, H)[, "state.c": (L, 1, H)]}: one stream's state
    (stream_state) in the layout of PyTorch's hx (h, and an LSTM's c)."""
    (L, K), H = layers_of(model), model.hidden_size
    st = stream_state(model, state).reshape(L, K, 1, H)   # per layer: h, then c
    out = {"state.h": np.ascontiguousarray(st[:, 0])}
    if K == 2:
        out["state.c"] = np.ascontiguousarray(st[:, 1])
    return out


def metadata(model, chars) -> dict:
    """The file's metadata (strings): cell, num_layers, sizes, dtype, vocab (JSON list)."""
    cell = getattr(model, "cell", "rnn")
    if len(chars) != model.vocab_size:
        raise ValueError(f"the vocabulary has {len(chars)} characters, the model "
                         f"{model.vocab_size}")
    return {"cell": cell, "num_layers": str(getattr(model, "num_layers", 1)),
            "embedding_size": str(getattr(model, "embedding_size", 0)),
            "hidden_size": str(model.hidden_size), "vocab_size": str(model.vocab_size),
            "dtype": np.dtype(model.dtype).name,
            "vocab": json.dumps(list(chars), ensure_ascii=False)}


def safetensors_bytes(model, chars, state=None) -> bytes:
    """The safetensors file of ``model`` (vocabulary ``chars``, in id order)
    and one stream's ``state`` (see stream_state), as bytes."""
    from safetensors.numpy import save
    return save({**state_dict(model), **torch_state(model, state)},
                metadata=metadata(model, chars))
