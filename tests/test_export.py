"""charrnn-export and charrnn_ext.export: the safetensors file, its names and metadata, and PyTorch's loss on it.

PyTorch's nn.RNN / nn.LSTM / nn.GRU loading the file (strict) must compute
our loss on a text to 1e-10 in float64: the cross-check of the gates
against an independent implementation. Skipped without torch.
"""
import json

import numpy as np
import pytest

from charrnn_ext import CharRNN, Vocab
from charrnn_ext.export import export, main, state_dict

from conftest import english_like_text

safetensors = pytest.importorskip("safetensors")
TEXT = english_like_text(700, seed=3)


def torch_module(torch, V, H, cell, L, D=0):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            kind = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
            if D:
                self.embed = torch.nn.Embedding(V, D)
            self.rnn = kind(D or V, H, num_layers=L, batch_first=True)
            self.out = torch.nn.Linear(H, V)

        def forward(self, ids):
            x = self.embed(ids) if D else torch.nn.functional.one_hot(ids, V).double()
            return self.out(self.rnn(x)[0])
    return Model().double()


def trained(cell, L, V, ids, D=0):
    model = CharRNN(V, 16, 4, cell=cell, num_layers=L, dropout=0.1 if L > 1 else 0.0,
                    embedding_size=D)
    model.train(ids, 20, 25, learning_rate=0.05)   # parameters away from their init
    return model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("L, D", [(1, 0), (2, 0), (1, 6), (2, 6)])
def test_torch_loss_equals_ours(cell, L, D, tmp_path):
    """Each cell, 1 and 2 layers, one-hot input or an input embedding (embed.weight)."""
    torch = pytest.importorskip("torch")
    from safetensors import safe_open
    from safetensors.torch import load_file
    vocab = Vocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    V = len(vocab)
    model = trained(cell, L, V, ids, D)
    path = tmp_path / "m.safetensors"
    export(model, vocab.chars, path)
    module = torch_module(torch, V, 16, cell, L, D)
    module.load_state_dict(load_file(str(path)), strict=True)
    with torch.no_grad():
        logits = module(torch.tensor(ids[:-1][None, :], dtype=torch.long))
        theirs = torch.nn.functional.cross_entropy(
            logits[0], torch.tensor(ids[1:], dtype=torch.long), reduction="sum").item()
    ours = model.loss(ids[:-1], ids[1:], None)
    assert abs(theirs - ours) <= 1e-10 * abs(ours), (theirs, ours)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert meta["cell"] == cell and int(meta["num_layers"]) == L
    assert "".join(json.loads(meta["vocab"])) == vocab.chars


def test_vanilla_names_and_zero_bias(tmp_path):
    from safetensors.numpy import load_file
    model = CharRNN(5, 3, 0)
    path = tmp_path / "v.safetensors"
    export(model, "abcde", path)
    loaded = load_file(str(path))
    assert sorted(loaded) == sorted(["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                                     "rnn.bias_hh_l0", "out.weight", "out.bias"])
    assert np.array_equal(loaded["rnn.weight_ih_l0"], model.params["Wxh"])
    assert np.array_equal(loaded["rnn.bias_hh_l0"], np.zeros(3))
    assert state_dict(model)["out.bias"].shape == (5,)
    with pytest.raises(ValueError):
        export(model, "abc", path)          # the vocabulary must match


def test_command_on_a_checkpoint(tmp_path, capsys):
    from safetensors.numpy import load_file
    from charrnn_ext.checkpoint import Checkpoint, save_checkpoint
    vocab = Vocab.from_text("hello world")
    save_checkpoint(tmp_path / "m.npz", Checkpoint(CharRNN(len(vocab), 4, 1), vocab))
    assert main([str(tmp_path / "m.npz"), str(tmp_path / "m.safetensors")]) == 0
    assert load_file(str(tmp_path / "m.safetensors"))["out.weight"].shape == (len(vocab), 4)
    assert main([str(tmp_path / "missing.npz"), str(tmp_path / "x.safetensors")]) == 2
