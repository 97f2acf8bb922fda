"""charrnn-inspect's live page: the model's weights and starting state as the JSON its JavaScript forward pass reads, and when a page is too heavy to carry them.

The page then runs the model itself (charrnn_ext.page.live_assets): a text
box read from the page's starting state, its guesses and surprise live, and
sampling in the browser. Everything travels in one more
``<script type="application/json" id="model">`` block (embedded with
_page.embed_json, so no character sequence can close it), format 1:

    cell        "rnn", "lstm" or "gru" (min-char-rnn's model is "rnn", one
                layer, bias_hh zero: charrnn_ext.formats.safetensors.state_dict's mapping)
    layers, hidden, vocab_size, embedding (0: one-hot input)
    dtype       "float32" or "float64": the model's, the arrays' element type
    h0          base64 little-endian (S,): the state the page's text starts
                from (Inspection.h0, in the model's dtype); per layer, bottom
                first, its h (H) then an LSTM's c (H)
    weights     {PyTorch name: base64 little-endian, row-major}: export_safetensors.state_dict's
                rnn.weight_ih_l{k} (G*H, I), rnn.weight_hh_l{k} (G*H, H),
                rnn.bias_ih_l{k}, rnn.bias_hh_l{k} (G*H,), out.weight (V, H),
                out.bias (V,), embed.weight (V, D); gate order lstm (i, f, g,
                o), gru (r, z, n) as reference_gated
"""
from __future__ import annotations

import numpy as np

from ..core.torch_layout import layers_of, state_dict

FORMAT = 1
# The most bytes of weights a live page carries (as raw floats; base64 adds a third): a page of
# 3,000 characters with 15.6 MB of weights paints in 1.1 s in headless Chromium on a busy 2-core
# AMD EPYC, with 31 MB in 2.1 s, 61 MB in 3.6 s (benchmarks/bench_inspect_live.py); a page's
# characters may add up to inspection.PAGE_BYTES. Above it charrnn-inspect writes the static page.
LIVE_BYTES = 16 << 20


def weight_bytes(model) -> int:
    """The bytes of ``model``'s weights as a live page carries them (its dtype)."""
    itemsize = np.dtype(model.dtype).itemsize
    return sum(int(np.asarray(a).size) for a in model.params.values()) * itemsize


def live_data(model, h0) -> dict:
    """The JSON-ready model block of a live page (see the module docstring):
    ``model``'s weights and the state ``h0`` (S,) the page reads from."""
    import base64
    dtype = np.dtype(model.dtype)
    little = dtype.newbyteorder("<")
    L, _ = layers_of(model)
    h0 = np.asarray(h0, dtype=np.float64).reshape(-1)
    if h0.size != model.state_size:
        raise ValueError(f"the starting state has {h0.size} values, the model's {model.state_size}")

    def b64(a) -> str:
        return base64.b64encode(np.ascontiguousarray(a, dtype=little).tobytes()).decode("ascii")

    return {
        "format": FORMAT,
        "cell": getattr(model, "cell", "rnn"),
        "layers": L,
        "hidden": model.hidden_size,
        "vocab_size": model.vocab_size,
        "embedding": model.embedding_size,
        "dtype": dtype.name,
        "h0": b64(h0),
        "weights": {name: b64(a) for name, a in state_dict(model).items()},
    }
