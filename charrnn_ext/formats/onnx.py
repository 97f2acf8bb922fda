"""charrnn-export's ONNX graph: a model and the state training left as one graph onnxruntime (and other runtimes) run.

Inputs and outputs (B the batch, T the time, V the vocabulary, S = L*K*H the
rows of a stream's state, K = 2 for an LSTM (h then c per layer), else 1)::

    ids         int64 [B, T]        character ids (the vocabulary: metadata "vocab")
    state       float [S, B]        optional: the state to start from, columns
                                    streams, charrnn_ext's layout (per layer h, then an
                                    LSTM's c); default the state training left
                                    (stream 0), [S, 1], for every row of the batch
    logits      float [B, T, V]     the next character's logits after each id
    next_state  float [S, B]        the state after the last id (feed it back as state)

in the model's float type. Metadata (metadata_props): export_safetensors.metadata's
(cell, num_layers, embedding_size, hidden_size, vocab_size, dtype, vocab),
state_size and recurrence.

The recurrence, by dtype (``recurrence`` overrides it):

- "operators" (float32): ONNX's RNN / LSTM / GRU operators, one node a
  layer, time-major, over one-hot or embedded input. PyTorch's gates
  reordered to ONNX's: LSTM i, f, g, o -> i, o, f, c; GRU r, z, n -> z, r, h
  with linear_before_reset=1 (PyTorch's n = tanh(W_in x + b_in + r * (W_hn h
  + b_hn)) is ONNX's h_t with linear_before_reset); B = [W biases, R biases].
- "scan" (float64; onnxruntime has no float64 kernel of those operators): a
  Scan over time whose body is PyTorch's equations in plain operators
  (MatMul, Add, Sigmoid, Tanh, Mul), the first layer's input product taken
  for all steps before the loop (for one-hot input: a row of W_ih^T + b_ih).
"""
from __future__ import annotations

import numpy as np

from ..core.cells import CELLS
from ..core.torch_layout import layers_of, state_dict
from .safetensors import metadata, stream_state

OPSET = 17          # Scan-16, Shape-15 (start/end), Split-13 (sizes as an input)
IR_VERSION = 8      # the IR of opset 17: runtimes from onnxruntime 1.13 on read it
MAX_BYTES = 2**31 - 2**24   # one protobuf message (the weights inline) stays under 2 GiB
RECURRENCES = ("operators", "scan")


class _Graph:
    """Nodes, initializers and fresh names of one graph being built."""

    def __init__(self, dtype, prefix: str = ""):
        import onnx
        self.onnx, self.dtype, self.prefix = onnx, np.dtype(dtype), prefix
        self.elem = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.nodes, self.inits, self._n = [], [], 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{self.prefix}{stem}_{self._n}"

    def const(self, stem: str, value, dtype=None) -> str:
        """An initializer holding ``value`` (the model's float type unless ``dtype``)."""
        arr = np.ascontiguousarray(value, dtype=dtype or self.dtype)
        name = self.name(stem)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list, n_out: int = 1, out: str | None = None, **attrs):
        """Add a node; its output name (``out`` if given; a list of names when n_out > 1)."""
        outs = [out] if out else [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs


def _layer_weights(params: dict, k: int, D: int):
    """(W_ih, W_hh, b_ih, b_hh) of layer k in PyTorch's names and gate order."""
    return tuple(params[f"rnn.{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))


def _onnx_gates(a: np.ndarray, cell: str, H: int) -> np.ndarray:
    """PyTorch's gate blocks (rows of H) of ``a`` in ONNX's order."""
    return np.concatenate([a[g * H:(g + 1) * H] for g in CELLS[cell].onnx_order], axis=0)


def _first_input(g: _Graph, params: dict, ids_t: str, V: int, D: int, projected: bool) -> str:
    """The first layer's input [T, B, .]: one-hot (V) or embedded (D); with
    ``projected``, W_ih0 x + b_ih0 [T, B, G*H] (one-hot: a row of W_ih0^T + b_ih0)."""
    w, _, b, _ = _layer_weights(params, 0, D)
    if D:
        x = g.op("Gather", [g.const("embed", params["embed.weight"]), ids_t], axis=0)
        if not projected:
            return x
        return g.op("Add", [g.op("MatMul", [x, g.const("W_ih_l0_T", w.T)]),
                            g.const("b_ih_l0", b)])
    if projected:
        return g.op("Gather", [g.const("W_ih_l0_T_plus_b", w.T + b), ids_t], axis=0)
    ids3 = g.op("Unsqueeze", [ids_t, g.const("axis2", [2], np.int64)])
    hot = g.op("Equal", [ids3, g.const("ids_range", np.arange(V), np.int64)])
    return g.op("Cast", [hot], to=g.elem)                 # [T, B, V] one-hot


def _operator_layers(g: _Graph, cell: str, params: dict, x: str, starts: list, L: int, K: int,
                     H: int, D: int) -> tuple[str, list]:
    """ONNX RNN/LSTM/GRU nodes, one a layer: (top layer's h [T, B, H], the
    final states [1, B, H] in the state's order)."""
    finals = []
    for k in range(L):
        w, r, bi, bh = _layer_weights(params, k, D)
        inputs = [x, g.const(f"W_l{k}", _onnx_gates(w, cell, H)[None]),
                  g.const(f"R_l{k}", _onnx_gates(r, cell, H)[None]),
                  g.const(f"B_l{k}", np.concatenate([_onnx_gates(bi, cell, H),
                                                     _onnx_gates(bh, cell, H)])[None]),
                  "", starts[k * K]] + ([starts[k * K + 1]] if K == 2 else [])
        op_type = CELLS[cell].torch_module   # ONNX's RNN, LSTM, GRU: the same names
        attrs = {"linear_before_reset": 1} if cell == "gru" else {}
        outs = g.op(op_type, inputs, n_out=1 + K, hidden_size=H, **attrs)
        x = g.op("Squeeze", [outs[0], g.const("axis1", [1], np.int64)])   # [T, B, H]
        finals += outs[1:]
    return x, finals


def _scan_body(g: _Graph, cell: str, params: dict, L: int, K: int, H: int, D: int):
    """The Scan's body: PyTorch's equations, one step of every layer.
    Inputs: the states [B, H] in the state's order, then p [B, G*H] (layer 0's
    input product); outputs: the new states, then the top layer's h."""
    helper = g.onnx.helper
    body = _Graph(g.dtype, prefix="step_")   # names distinct from the outer graph's
    states = [f"step_state{j}" for j in range(L * K)]
    p = "step_p"
    # the weights are the outer graph's initializers (a body sees the outer scope)
    if cell != "rnn":
        split = g.const("split", [H] * CELLS[cell].gates, np.int64)
    if cell == "gru":
        one = g.const("one", 1.0)
    new, x = [], None
    for k in range(L):
        w_ih, r, bi, bh = _layer_weights(params, k, D)
        gx = p if k == 0 else body.op("Add", [body.op("MatMul", [x, g.const(f"W_ih_l{k}_T",
                                                                          w_ih.T)]),
                                              g.const(f"b_ih_l{k}", bi)])
        gh = body.op("Add", [body.op("MatMul", [states[k * K], g.const(f"W_hh_l{k}_T", r.T)]),
                             g.const(f"b_hh_l{k}", bh)])
        h = states[k * K]
        if cell == "rnn":
            h = body.op("Tanh", [body.op("Add", [gx, gh])])
            new.append(h)
        elif cell == "lstm":
            i, f, c_hat, o = body.op("Split", [body.op("Add", [gx, gh]), split], n_out=4, axis=1)
            c = body.op("Add", [body.op("Mul", [body.op("Sigmoid", [f]), states[k * K + 1]]),
                                body.op("Mul", [body.op("Sigmoid", [i]),
                                                body.op("Tanh", [c_hat])])])
            h = body.op("Mul", [body.op("Sigmoid", [o]), body.op("Tanh", [c])])
            new += [h, c]
        else:
            xr, xz, xn = body.op("Split", [gx, split], n_out=3, axis=1)
            hr, hz, hn = body.op("Split", [gh, split], n_out=3, axis=1)
            rg = body.op("Sigmoid", [body.op("Add", [xr, hr])])
            z = body.op("Sigmoid", [body.op("Add", [xz, hz])])
            n = body.op("Tanh", [body.op("Add", [xn, body.op("Mul", [rg, hn])])])
            h = body.op("Add", [body.op("Mul", [body.op("Sub", [one, z]), n]),
                                body.op("Mul", [z, states[k * K]])])
            new.append(h)
        x = h
    outs = [body.op("Identity", [s]) for s in new] + [body.op("Identity", [x])]
    vi = helper.make_tensor_value_info
    GH = params["rnn.weight_hh_l0"].shape[0]
    graph = helper.make_graph(
        body.nodes, "step",
        [vi(s, g.elem, ["batch", H]) for s in states] + [vi(p, g.elem, ["batch", GH])],
        [vi(o, g.elem, ["batch", H]) for o in outs])
    return graph


def _scan_layers(g: _Graph, cell: str, params: dict, p: str, starts: list, L: int, K: int,
                 H: int, D: int) -> tuple[str, list]:
    """A Scan over time of _scan_body: (top layer's h [T, B, H], the final
    states [1, B, H] in the state's order)."""
    axis0 = g.const("axis0", [0], np.int64)
    initial = [g.op("Squeeze", [s, axis0]) for s in starts]          # [B, H] each
    body = _scan_body(g, cell, params, L, K, H, D)
    outs = g.op("Scan", initial + [p], n_out=L * K + 1, body=body, num_scan_inputs=1)
    return outs[-1], [g.op("Unsqueeze", [s, axis0]) for s in outs[:-1]]


def onnx_model(model, chars, state=None, recurrence: str | None = None):
    """The onnx.ModelProto of ``model`` (vocabulary ``chars`` in id order) whose
    ``state`` input defaults to ``state`` ((S,) or (S, 1); None: zeros; a
    checkpoint's is ``hidden[:, :1]``). ``recurrence``: "operators" or
    "scan" (default: operators for float32, scan for float64)."""
    import onnx
    from onnx import helper
    from .. import __version__
    meta = metadata(model, chars)
    if recurrence is None:
        recurrence = "operators" if model.dtype == np.float32 else "scan"
    if recurrence not in RECURRENCES:
        raise ValueError(f"recurrence must be one of {', '.join(RECURRENCES)}, got {recurrence!r}")
    params = state_dict(model)
    if sum(a.nbytes for a in params.values()) > MAX_BYTES:
        raise ValueError("the model's weights take more than the 2 GB one ONNX file holds")
    cell, (L, K), H = meta["cell"], layers_of(model), model.hidden_size
    V, D, S = model.vocab_size, model.embedding_size, model.state_size
    g = _Graph(model.dtype)
    default = stream_state(model, state).reshape(S, 1)
    g.inits.append(onnx.numpy_helper.from_array(default, "state"))   # the input's default

    ids_t = g.op("Transpose", ["ids"], perm=[1, 0])                     # [T, B]
    batch = g.op("Shape", ["ids"], start=0, end=1)                      # [1]: B
    st = g.op("Expand", ["state", g.op("Concat", [g.const("S", [S], np.int64), batch],
                                       axis=0)])                       # [S, B]
    st = g.op("Transpose", [g.op("Reshape", [st, g.const("LKH", [L * K, H, -1], np.int64)])],
              perm=[0, 2, 1])                                           # [L*K, B, H]
    starts = g.op("Split", [st, g.const("ones", [1] * (L * K), np.int64)], n_out=L * K, axis=0)
    starts = starts if L * K > 1 else [starts]                          # [1, B, H] each
    if recurrence == "operators":
        x = _first_input(g, params, ids_t, V, D, projected=False)
        top, finals = _operator_layers(g, cell, params, x, starts, L, K, H, D)
    else:
        p = _first_input(g, params, ids_t, V, D, projected=True)
        top, finals = _scan_layers(g, cell, params, p, starts, L, K, H, D)
    top = g.op("Transpose", [top], perm=[1, 0, 2])                      # [B, T, H]
    g.op("Add", [g.op("MatMul", [top, g.const("out_weight_T", params["out.weight"].T)]),
                 g.const("out_bias", params["out.bias"])], out="logits")   # [B, T, V]
    after = finals[0] if len(finals) == 1 else g.op("Concat", finals, axis=0)   # [L*K, B, H]
    after = g.op("Transpose", [after], perm=[0, 2, 1])                  # [L*K, H, B]
    g.op("Reshape", [after, g.const("S_B", [S, -1], np.int64)], out="next_state")   # [S, B]

    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        g.nodes, "charrnn_ext",
        [vi("ids", onnx.TensorProto.INT64, ["batch", "time"]),
         vi("state", g.elem, [S, "batch"])],
        [vi("logits", g.elem, ["batch", "time", V]), vi("next_state", g.elem, [S, "batch"])],
        initializer=g.inits,
        doc_string=f"charrnn_ext {cell}, {L} layer(s) of {H}: ids [batch, time] -> logits "
                   f"[batch, time, {V}], next_state [{S}, batch]; state defaults to the state "
                   f"training left")
    onnx_model_ = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                    producer_name="charrnn_ext", producer_version=__version__)
    onnx_model_.ir_version = IR_VERSION
    helper.set_model_props(onnx_model_, {**meta, "state_size": str(S),
                                         "recurrence": recurrence})
    return onnx_model_


def onnx_bytes(model, chars, state=None, recurrence: str | None = None) -> bytes:
    """onnx_model(...) serialized: the bytes of the .onnx file."""
    return onnx_model(model, chars, state, recurrence).SerializeToString()
