"""charrnn_ext.formats.safetensors's file (names, dtype, metadata, the state
training left) and charrnn_ext.formats.torch.load, on every kind of model.

PyTorch's nn.RNN / nn.LSTM / nn.GRU loaded from the file must compute our
loss on a text (to 1e-10 in float64, 1e-5 in float32), from a zero state
and from the state training left: the cross-check of the gates against an
independent implementation. README's PyTorch code runs as written on every
kind and prints what charrnn-sample prints. Without torch these skip; CI
installs it. The command's output rules: test_cli_export.py.
"""
import json
import re

import numpy as np
import pytest

from charrnn_ext import CharRNN
from charrnn_ext.core.torch_layout import state_dict
from charrnn_ext.formats.exporting import export
from charrnn_ext.use.generation import generate

from conftest import english_like_text
from exports import EXPORT_RTOL, MODEL_KINDS, README, export_kind, greedy_margins, readme_block

safetensors = pytest.importorskip("safetensors")
TEXT = english_like_text(3000, seed=3)


def exported(tmp_path, kind):
    """(checkpoint of ``kind``, its safetensors file written by the command)."""
    return export_kind(tmp_path, kind, TEXT, ".safetensors")


@pytest.mark.parametrize("cell, L, D, dtype", MODEL_KINDS)
def test_torch_loss_equals_ours(cell, L, D, dtype, tmp_path):
    """The loaded module's loss over 3,000 characters equals ours, from a
    zero state and from the state training left; the state it returns after
    them equals ours."""
    torch = pytest.importorskip("torch")
    import charrnn_ext.formats.torch
    ckpt, path = exported(tmp_path, (cell, L, D, dtype))
    model, state = charrnn_ext.formats.torch.load(path)
    assert model.vocab == ckpt.vocab.chars and model.out.weight.dtype == getattr(torch, dtype)
    ids = ckpt.vocab.encode(TEXT)
    x = torch.tensor(ids[None, :-1], dtype=torch.long)
    y = torch.tensor(ids[1:], dtype=torch.long)
    first = {}   # the loss of the first 30 characters, by start
    for start, h0 in ((None, None), (state, ckpt.hidden[:, :1])):
        with torch.no_grad():   # (ids as a tensor of int64, or as vocab.encode's int32 array)
            logits, after = model(x if h0 is None else ids[None, :-1], start)
            theirs = torch.nn.functional.cross_entropy(logits[0].double(), y,
                                                       reduction="none").numpy()
        ours, h = ckpt.model.loss(ids[:-1], ids[1:], h0, return_hidden=True)
        assert abs(theirs.sum() - ours) <= EXPORT_RTOL[dtype] * abs(ours), (theirs.sum(), ours)
        first[h0 is None] = theirs[:30].sum()
        ours = ckpt.model.loss(ids[:30], ids[1:31], h0)
        assert abs(first[h0 is None] - ours) <= EXPORT_RTOL[dtype] * abs(ours)
        hc = after if isinstance(after, tuple) else (after,)
        K = len(hc)   # per layer: h, then an LSTM's c
        mine = np.asarray(h, dtype=np.float64).reshape(L, K, -1)
        for k in range(K):
            np.testing.assert_allclose(hc[k][:, 0].double().numpy(), mine[:, k],
                                       rtol=0, atol=100 * EXPORT_RTOL[dtype])
    # (the state training left matters: from it the first characters read otherwise)
    assert abs(first[True] - first[False]) > 100 * EXPORT_RTOL[dtype] * first[False]


@pytest.mark.parametrize("cell, L, D, dtype", MODEL_KINDS)
def test_the_file_holds_the_state_training_left(cell, L, D, dtype, tmp_path):
    """state.h (and an LSTM's state.c), (L, 1, H), are stream 0's state of
    the checkpoint, bit for bit, in the model's dtype, as is every weight;
    the metadata names the kind."""
    from safetensors import safe_open
    from safetensors.numpy import load_file
    ckpt, path = exported(tmp_path, (cell, L, D, dtype))
    tensors = load_file(str(path))
    K = 2 if cell == "lstm" else 1
    st = ckpt.hidden[:, 0].reshape(L, K, 16)
    assert tensors["state.h"].shape == (L, 1, 16)
    assert np.array_equal(tensors["state.h"][:, 0], st[:, 0])
    assert ("state.c" in tensors) == (cell == "lstm")
    if cell == "lstm":
        assert np.array_equal(tensors["state.c"][:, 0], st[:, 1])
    assert {a.dtype for a in tensors.values()} == {np.dtype(dtype)}
    for key, a in state_dict(ckpt.model).items():
        assert np.array_equal(tensors[key], a), key
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert (meta["cell"], int(meta["num_layers"]), int(meta["embedding_size"]),
            meta["dtype"]) == (cell, L, D, dtype)
    assert "".join(json.loads(meta["vocab"])) == ckpt.vocab.chars


@pytest.mark.parametrize("cell, L, D, dtype", MODEL_KINDS)
def test_readme_pytorch_code_runs_as_written(cell, L, D, dtype, tmp_path, monkeypatch, capsys):
    """README's block, as written, on an export of each kind: it prints what
    charrnn-sample --prime "The " --temperature 0 --length 200 prints."""
    pytest.importorskip("torch")
    ckpt, _ = exported(tmp_path, (cell, L, D, dtype))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    namespace = {}
    exec(compile(readme_block("charrnn_ext.formats.torch.load"), str(README), "exec"), namespace)
    expected = generate(ckpt, 200, temperature=0, prime="The ")
    margins = greedy_margins(ckpt, "The ", expected[4:])
    assert margins.min() > 100 * EXPORT_RTOL[dtype], "a near tie: the test needs another model"
    assert capsys.readouterr().out == expected + "\n"
    # and its state is ours after reading all of it from the state training left
    state = namespace["state"]
    theirs = np.concatenate([s[:, 0].double().numpy()[:, None] for s in
                             (state if isinstance(state, tuple) else (state,))], axis=1)
    ours = ckpt.model.advance(ckpt.vocab.encode(expected), ckpt.hidden[:, :1])
    np.testing.assert_allclose(theirs.reshape(-1), np.asarray(ours, np.float64).reshape(-1),
                               rtol=0, atol=100 * EXPORT_RTOL[dtype])


def test_readme_pytorch_code_draws_when_told(tmp_path, monkeypatch, capsys):
    """Its commented line (drawing at temperature 0.8) runs too."""
    pytest.importorskip("torch")
    ckpt, _ = exported(tmp_path, ("gru", 2, 6, "float32"))
    code = readme_block("charrnn_ext.formats.torch.load")
    drawing = re.sub(r"\n(\s*)# (x = torch\.multinomial.*?)\s+#[^\n]*", r"\n\1\2", code)
    assert drawing != code
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    exec(compile(drawing, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert len(out) == 205 and out.startswith("The ") and set(out[:-1]) <= set(ckpt.vocab.chars)


def test_vanilla_names_and_zero_bias(tmp_path):
    from safetensors.numpy import load_file
    model = CharRNN(5, 3, 0)
    path = tmp_path / "v.safetensors"
    export(model, "abcde", path)
    loaded = load_file(str(path))
    assert sorted(loaded) == sorted(["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
                                     "rnn.bias_hh_l0", "out.weight", "out.bias", "state.h"])
    assert np.array_equal(loaded["rnn.weight_ih_l0"], model.params["Wxh"])
    assert np.array_equal(loaded["rnn.bias_hh_l0"], np.zeros(3))
    assert np.array_equal(loaded["state.h"], np.zeros((1, 1, 3)))   # no state given: zeros
    assert state_dict(model)["out.bias"].shape == (5,)
    with pytest.raises(ValueError):
        export(model, "abc", path)          # the vocabulary must match
    with pytest.raises(ValueError, match="state"):
        export(model, "abcde", path, state=np.zeros(4))
    with pytest.raises(ValueError, match="unknown format"):
        export(model, "abcde", tmp_path / "v.pt")


def _rewritten(path, target, edit_meta=None, edit_tensors=None):
    from safetensors import safe_open
    from safetensors.numpy import save_file
    with safe_open(str(path), "np") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for k, v in (edit_meta or {}).items():
        if v is None:
            del meta[k]
        else:
            meta[k] = v
    for k, v in (edit_tensors or {}).items():
        if v is None:
            del tensors[k]
        else:
            tensors[k] = v
    save_file(tensors, str(target), metadata=meta)
    return target


def test_loader_refuses_what_is_not_an_export(tmp_path):
    """A damaged file, metadata that contradicts the tensors, a tensor too
    many, too few or of another shape or dtype: ValueError naming the file
    and the reason, before any module is built."""
    pytest.importorskip("torch")
    import charrnn_ext.formats.torch
    _, path = exported(tmp_path, ("lstm", 2, 6, "float32"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    cases = [
        (tmp_path / "junk.safetensors", "not a safetensors file"),
        (_rewritten(path, tmp_path / "c.safetensors", {"cell": "gru"}), "state.c"),
        (_rewritten(path, tmp_path / "b.safetensors", {"cell": "bogus"}), "cell must be"),
        (_rewritten(path, tmp_path / "l.safetensors", {"num_layers": "3"}), "weight_ih_l2"),
        (_rewritten(path, tmp_path / "n.safetensors", {"num_layers": "1e12"}), "num_layers"),
        (_rewritten(path, tmp_path / "u.safetensors", {"num_layers": "\u00b2"}), "num_layers"),
        (_rewritten(path, tmp_path / "w.safetensors", {"hidden_size": "9" * 5000}), "hidden_size"),
        (_rewritten(path, tmp_path / "h.safetensors", {"hidden_size": "17"}), "expected"),
        (_rewritten(path, tmp_path / "v.safetensors", {"vocab": '["a"]'}), "vocab"),
        (_rewritten(path, tmp_path / "d.safetensors", {"dtype": "float64"}), "F32"),
        (_rewritten(path, tmp_path / "x.safetensors", None,
                    {"extra": np.zeros(2, np.float32)}), "unknown tensors extra"),
        (_rewritten(path, tmp_path / "s.safetensors", None,
                    {"state.h": np.zeros((2, 2, 16), np.float32)}), "state.h"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError) as info:
            charrnn_ext.formats.torch.load(bad)
        assert str(bad) in str(info.value) and words in str(info.value), (bad, info.value)


def test_an_older_export_without_state_loads_from_zeros(tmp_path):
    """charrnn_ext 0.2.0 wrote float64 weights, no state, no dtype: they load,
    with a warning that the state is zeros."""
    torch = pytest.importorskip("torch")
    import charrnn_ext.formats.torch
    ckpt, path = exported(tmp_path, ("lstm", 1, 0, "float64"))
    old = _rewritten(path, tmp_path / "old.safetensors", {"dtype": None},
                     {"state.h": None, "state.c": None})
    from safetensors import safe_open
    with pytest.warns(UserWarning, match="no state"):
        model, (h, c) = charrnn_ext.formats.torch.load(old)
    assert not h.any() and not c.any() and h.shape == (1, 1, 16)
    assert torch.equal(model.out.weight, torch.from_numpy(np.array(ckpt.model.params["Why"])))
    with safe_open(str(old), "np") as f:
        assert "state.h" not in f.keys()
