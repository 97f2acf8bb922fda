"""Export to PyTorch: a model's weights as a safetensors file under the names of a torch module (charrnn-export).

The module the file loads into (``load_state_dict(strict=True)``)::

    class Model(torch.nn.Module):
        def __init__(self, V, H, cell, num_layers):
            super().__init__()
            kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
            self.rnn = kind(V, H, num_layers=num_layers, batch_first=True)  # one-hot input
            self.out = torch.nn.Linear(H, V)
            # with an input embedding of width D: self.embed = torch.nn.Embedding(V, D)
            # and self.rnn = kind(D, H, ...), reading self.embed(ids)

Keys: rnn.weight_ih_l{k}, rnn.weight_hh_l{k}, rnn.bias_ih_l{k}, rnn.bias_hh_l{k}
per layer, out.weight, out.bias (and embed.weight, (V, D), for a model
with an input embedding); float64. A bias the model lacks is
exported as zeros: min-char-rnn's tanh RNN has one bias, bh, exported as
bias_ih_l0 with zeros as bias_hh_l0. Metadata: cell, num_layers,
hidden_size, vocab_size, vocab (a JSON list of the characters in id order).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .gated import GatedCharRNN
from .model import CharRNN


def state_dict(model) -> dict:
    """{torch name: float64 array} of a CharRNN or GatedCharRNN."""
    if isinstance(model, GatedCharRNN):
        out = {f"rnn.{name}": np.array(a) for name, a in model.params.items()
               if name not in ("Why", "by", "embed")}
    elif isinstance(model, CharRNN):
        p = model.params
        out = {"rnn.weight_ih_l0": np.array(p["Wxh"]), "rnn.weight_hh_l0": np.array(p["Whh"]),
               "rnn.bias_ih_l0": np.array(p["bh"]).reshape(-1),
               "rnn.bias_hh_l0": np.zeros(model.hidden_size)}
    else:
        raise TypeError(f"expected a CharRNN, got {type(model).__name__}")
    if "embed" in model.params:
        out["embed.weight"] = np.array(model.params["embed"])
    out["out.weight"] = np.array(model.params["Why"])
    out["out.bias"] = np.array(model.params["by"]).reshape(-1)
    return {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in out.items()}


def metadata(model, chars) -> dict:
    """The file's metadata (strings): cell, num_layers, sizes, vocab (JSON list)."""
    cell = getattr(model, "cell", "rnn")
    if len(chars) != model.vocab_size:
        raise ValueError(f"the vocabulary has {len(chars)} characters, the model "
                         f"{model.vocab_size}")
    return {"cell": cell, "num_layers": str(getattr(model, "num_layers", 1)),
            "embedding_size": str(getattr(model, "embedding_size", 0)),
            "hidden_size": str(model.hidden_size), "vocab_size": str(model.vocab_size),
            "vocab": json.dumps(list(chars), ensure_ascii=False)}


def export(model, chars, path) -> None:
    """Write ``model`` (vocabulary ``chars``, in id order) to ``path`` as safetensors."""
    from safetensors.numpy import save_file
    save_file(state_dict(model), str(path), metadata=metadata(model, chars))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="charrnn-export",
        description="Write a checkpoint's model as a safetensors file for PyTorch "
                    "(rnn = nn.RNN/nn.LSTM/nn.GRU with one-hot input, out = nn.Linear).")
    parser.add_argument("model", help="a checkpoint written by charrnn-train (.npz)")
    parser.add_argument("out", help="the safetensors file to write")
    args = parser.parse_args(argv)
    from .checkpoint import load_checkpoint
    try:
        ckpt = load_checkpoint(args.model)
        export(ckpt.model, ckpt.vocab.chars, args.out)
    except (OSError, ValueError) as exc:
        print(f"charrnn-export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
