"""``charrnn-export``: a checkpoint's model as a file other tools load -- safetensors for PyTorch (here), ONNX (export_onnx.py).

The safetensors file holds the weights under the names of this PyTorch
module (charrnn_ext.torch.load builds it and loads the file)::

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

from . import _loading, cells

with _loading():  # Ctrl-C while the heavy modules load: exit quietly with 130
    import argparse
    import json
    import os
    import sys

    import numpy as np

    from . import __version__
    from ._cli import ArgumentParser, CLIError, prog_name, run
    from .model import CharRNN

# The formats, by the output's extension (lower case): what writes each.
FORMATS = {".safetensors": "safetensors", ".onnx": "onnx"}


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


def format_of(path) -> str:
    """"safetensors" or "onnx", from ``path``'s extension; ValueError otherwise."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown format {ext or '(no extension)'!r}; name the file "
                         f"{' or '.join('OUT' + e for e in FORMATS)}")
    return FORMATS[ext]


def to_bytes(model, chars, path, state=None) -> bytes:
    """The file ``export`` writes at ``path`` (format from its extension)."""
    if format_of(path) == "onnx":
        from .export_onnx import onnx_bytes
        return onnx_bytes(model, chars, state)
    return safetensors_bytes(model, chars, state)


def export(model, chars, path, state=None) -> None:
    """Write ``model`` (vocabulary ``chars``, in id order) and one stream's
    ``state`` (default zeros; a checkpoint's is ``hidden[:, :1]``) to
    ``path``, as safetensors or ONNX by its extension, atomically."""
    from ._ckptfile import write_atomic
    data = to_bytes(model, chars, path, state)
    write_atomic(os.path.realpath(path), lambda f: f.write(data))


DESCRIPTION = """\
Write a checkpoint's model, with the state training left, as a file other
tools load; the format follows OUT's extension:

  OUT.safetensors  the weights of a PyTorch module (nn.RNN / nn.LSTM / nn.GRU
                   read by nn.Linear; one-hot input or nn.Embedding) and the
                   state: charrnn_ext.torch.load(OUT) returns both
  OUT.onnx         an ONNX graph (ids [batch, time] -> logits, next_state)
                   for onnxruntime and other runtimes

OUT is never the checkpoint, and an existing file is replaced only with
--overwrite (atomically: a reader never sees half a file).
"""

EPILOG = """\
examples:
  charrnn-export input.npz input.safetensors
  charrnn-export input.best.npz model.onnx --overwrite

exit status: 0 done, 1 the file could not be written, 2 bad checkpoint,
path or options.
"""


def build_parser(prog: str | None = None) -> ArgumentParser:
    p = ArgumentParser(prog=prog or prog_name("charrnn_ext.export"), description=DESCRIPTION,
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"%(prog)s (charrnn_ext) {__version__}")
    p.add_argument("model", metavar="MODEL.npz",
                   help="a checkpoint written by charrnn-train (or its .best.npz)")
    p.add_argument("out", metavar="OUT", help="the file to write: OUT.safetensors or OUT.onnx")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p


def _main(argv) -> int:
    args = build_parser().parse_args(argv)
    from .checkpoint import load_checkpoint
    from .outputs import check_new_file, write_file
    check_new_file(args.out, "OUT", {"MODEL": args.model}, args.overwrite)
    try:
        format_of(args.out)
    except ValueError as exc:
        raise CLIError(f"OUT {exc}") from None
    try:
        ckpt = load_checkpoint(args.model)
    except (ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    try:
        data = to_bytes(ckpt.model, ckpt.vocab.chars, args.out, ckpt.hidden[:, :1])
    except ValueError as exc:
        raise CLIError(f"{args.model}: {exc}") from None
    except ImportError as exc:   # the onnx package (an extra)
        raise CLIError(f"OUT {args.out} needs the {exc.name or 'onnx'} package, which is not "
                       f"installed (pip install 'charrnn_ext[onnx]')") from None
    write_file(args.out, data, "OUT")
    print(f"wrote {args.out}")
    return 0


def main(argv=None) -> int:
    return run(_main, argv, build_parser().prog)


if __name__ == "__main__":
    sys.exit(main())
