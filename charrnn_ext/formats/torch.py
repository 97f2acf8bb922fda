"""``charrnn_ext.formats.torch.load``: a safetensors file written by charrnn-export as a PyTorch module and the state training left.

PyTorch is optional: it is imported when ``load`` is called, never with
charrnn_ext. The module (the names the file's weights have; export.py)::

    model.embed   nn.Embedding(V, D)        (a model with an input embedding;
                                             else the input is one-hot, width V)
    model.rnn     nn.RNN (tanh) / nn.LSTM / nn.GRU, L layers, batch_first
    model.out     nn.Linear(H, V)
    model(ids, state) -> (logits, state)    ids (batch, time) integers (a tensor
                                            or an array), logits (batch, time, V)
    model.vocab   the characters, in id order (a str)

``state`` is what ``model.rnn`` takes and returns: (L, batch, H) for the RNN
and GRU, a tuple (h, c) of two for the LSTM; ``load`` returns the one
training left in stream 0 (batch 1; ``state.expand(-1, B, -1)`` for B rows),
from which charrnn-sample generates.
"""
from __future__ import annotations

import json
import warnings

from ..core.cells import CELLS
from ..core.spec import MAX_LAYERS

_DTYPES = ("float32", "float64")


def _int_field(meta: dict, key: str, low: int, high: int) -> int:
    text = meta.get(key)
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 12 \
            or not low <= int(text) <= high:
        raise ValueError(f"metadata {key} must be an integer in [{low}, {high}], got {text!r}")
    return int(text)


def _architecture(meta: dict) -> dict:
    """cell, L, H, V, D, dtype and vocab of a file's metadata, checked."""
    cell = meta.get("cell")
    if cell not in CELLS:
        raise ValueError(f"metadata cell must be one of {', '.join(CELLS)}, got {cell!r}")
    arch = {"cell": cell, "L": _int_field(meta, "num_layers", 1, MAX_LAYERS),
            "H": _int_field(meta, "hidden_size", 1, 2**31 - 1),
            "V": _int_field(meta, "vocab_size", 1, 2**31 - 1),
            "D": _int_field(meta, "embedding_size", 0, 2**31 - 1)}
    arch["dtype"] = meta.get("dtype", "float64")   # files of charrnn_ext 0.2.0: float64
    if arch["dtype"] not in _DTYPES:
        raise ValueError(f"metadata dtype must be float32 or float64, got {arch['dtype']!r}")
    try:
        vocab = json.loads(meta.get("vocab", ""))
    except ValueError:
        vocab = None
    if not (isinstance(vocab, list) and len(vocab) == arch["V"]
            and all(isinstance(c, str) and len(c) == 1 for c in vocab)):
        raise ValueError(f"metadata vocab must be a JSON list of {arch['V']} characters")
    arch["vocab"] = "".join(vocab)
    return arch


def expected_shapes(arch: dict) -> dict:
    """{key: shape} of every tensor a file of this architecture holds."""
    from ..core.reference_gated import param_shapes
    cell, L, H, V, D = arch["cell"], arch["L"], arch["H"], arch["V"], arch["D"]
    shapes = {("out.weight" if n == "Why" else "out.bias" if n == "by" else
               "embed.weight" if n == "embed" else f"rnn.{n}"): s
              for n, s in param_shapes(cell, V, H, L, D).items()}
    shapes["state.h"] = (L, 1, H)
    if "c" in CELLS[cell].state_parts:
        shapes["state.c"] = (L, 1, H)
    return shapes


def _module_class():
    """The nn.Module subclass (made once PyTorch is imported)."""
    global _Module
    if _Module is not None:
        return _Module
    import torch

    class CharRNNModule(torch.nn.Module):
        """A charrnn_ext model in PyTorch: (embed or one-hot) -> rnn -> out."""

        def __init__(self, cell: str, V: int, H: int, L: int, D: int, vocab: str):
            super().__init__()
            kind = getattr(torch.nn, CELLS[cell].torch_module)
            if D:
                self.embed = torch.nn.Embedding(V, D)
            self.rnn = kind(D or V, H, num_layers=L, batch_first=True)
            self.out = torch.nn.Linear(H, V)
            self.cell, self.vocab, self.vocab_size = cell, vocab, V

        def forward(self, ids, state=None):
            """ids (batch, time) integers -> (logits (batch, time, V), the state after them)."""
            ids = torch.as_tensor(ids, dtype=torch.long, device=self.out.weight.device)
            if hasattr(self, "embed"):
                x = self.embed(ids)
            else:
                x = torch.nn.functional.one_hot(ids, self.vocab_size).to(self.out.weight.dtype)
            y, state = self.rnn(x, state)
            return self.out(y), state

        def extra_repr(self) -> str:
            return f"cell={self.cell!r}, vocab={len(self.vocab)} characters"

    _Module = CharRNNModule
    return _Module


_Module = None


def load(path, device=None):
    """(model, state) from the safetensors file ``path`` written by
    charrnn-export: the nn.Module with the file's weights (in the file's
    dtype, on ``device``, in eval mode) and the state training left (see the
    module's docstring). ValueError (naming the file) for a file that is not
    such an export: its metadata and every tensor's shape and dtype are
    checked before anything is allocated. Needs PyTorch."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            arch = _architecture(meta)
            shapes = expected_shapes(arch)
            keys = set(f.keys())
            stateless = not any(k.startswith("state.") for k in keys)   # an older export
            needed = {k for k in shapes if not (stateless and k.startswith("state."))}
            if keys != needed:
                raise ValueError(f"not a {arch['cell']} model of {arch['L']} layers: "
                                 + "; ".join(f"{what} {', '.join(sorted(ks))}" for what, ks in
                                             (("unknown tensors", keys - needed),
                                              ("no tensors", needed - keys)) if ks))
            dtype = getattr(torch, arch["dtype"])
            for key in sorted(keys):
                piece = f.get_slice(key)
                shape = tuple(piece.get_shape())
                if shape != shapes[key] or piece.get_dtype() != {"float32": "F32",
                                                                 "float64": "F64"}[arch["dtype"]]:
                    raise ValueError(f"tensor {key} is {piece.get_dtype()} {shape}, expected "
                                     f"{arch['dtype']} {shapes[key]}")
            tensors = {key: f.get_tensor(key) for key in keys}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    except SafetensorError as exc:   # a damaged file
        raise ValueError(f"{path}: not a safetensors file ({exc})") from None
    model = _module_class()(arch["cell"], arch["V"], arch["H"], arch["L"], arch["D"],
                            arch["vocab"]).to(dtype)
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("state.")},
                          strict=True)
    model.eval()
    if stateless:   # written by charrnn_ext 0.2.0, before the state was exported
        warnings.warn(f"{path} holds no state (an older export): starting from zeros; "
                      f"export the checkpoint again to continue as charrnn-sample does",
                      stacklevel=2)
        zeros = torch.zeros(shapes["state.h"], dtype=dtype)
        tensors["state.h"] = zeros
        tensors["state.c"] = zeros.clone()
    state = tensors["state.h"]
    if "c" in CELLS[arch["cell"]].state_parts:
        state = (state, tensors["state.c"])
    if device is not None:
        model = model.to(device)
        state = tuple(s.to(device) for s in state) if isinstance(state, tuple) else \
            state.to(device)
    return model, state
