"""charrnn-inspect on every model that trains: cells x dtypes x layers x an input embedding
(the Inspection against the model's own trace and a numpy forward pass, the page's sets and
summary, the command), the number of characters shown, and the page-size limit."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_cli_refusal, english_like_text, run_cli

from charrnn_ext import CharRNN, Checkpoint, Vocab
from charrnn_ext.core import reference
from charrnn_ext.run import training
from charrnn_ext.cli import inspect as inspect_mod
from charrnn_ext.page import inspection
from charrnn_ext.core import reference_gated as R
from charrnn_ext.page.inspection import page_bytes_per_character, page_limit, to_html, trace
from test_inspect import embedded, env_for_cli

TEXT = english_like_text(3000, seed=21)
MODELS = [(cell, L, D, dtype) for cell in ("rnn", "lstm", "gru") for L in (1, 2)
          for D in (0, 6) for dtype in ("float64", "float32")]
# the model's probabilities against a float64 numpy forward pass over its own weights
PROB_ATOL = {"float64": 1e-12, "float32": 2e-5}


def reference_probs(model, ids, h0) -> np.ndarray:
    """(n, V) softmax predictions after each of ids from state h0 (S,), in
    float64 numpy: reference.trace for min-char-rnn's model, else
    reference_gated.cell_forward layer by layer (state: per layer h, then c)."""
    params = {n: np.asarray(a, dtype=np.float64) for n, a in model.params.items()}
    if model.cell == "rnn" and model.num_layers == 1:
        return reference.trace(list(ids), np.asarray(h0, np.float64), params)[1]
    L, H, K = model.num_layers, model.hidden_size, 2 if model.cell == "lstm" else 1
    st = np.asarray(h0, np.float64).reshape(L, K, H, 1)
    h = [st[k, 0] for k in range(L)]
    c = [st[k, 1] if K == 2 else np.zeros((H, 1)) for k in range(L)]
    out = []
    for i in ids:
        if "embed" in params:
            x = params["embed"][i].reshape(-1, 1)
        else:
            x = np.zeros((model.vocab_size, 1))
            x[i] = 1
        for k in range(L):
            P = [params[f"{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            h[k], c[k], _ = R.cell_forward(model.cell, x, h[k], c[k], *P)
            x = h[k]
        y = (params["Why"] @ x).ravel() + params["by"].ravel()
        e = np.exp(y - y.max())
        out.append(e / e.sum())
    return np.array(out)


def model_checkpoint(cell, L, D, dtype, H=7, seed=5) -> Checkpoint:
    """An untrained model of each kind with a nonzero state to start from."""
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(len(vocab), H, seed, cell=cell, num_layers=L, embedding_size=D,
                    dtype=dtype, init="pytorch" if D else "min-char-rnn")
    hidden = np.random.default_rng(seed).uniform(-0.5, 0.5, (model.state_size, 1))
    return Checkpoint(model=model, vocab=vocab, hidden=hidden)


@pytest.mark.parametrize("cell, L, D, dtype", MODELS)
def test_every_model_inspects(cell, L, D, dtype):
    ckpt = model_checkpoint(cell, L, D, dtype)
    model, piece = ckpt.model, TEXT[:300]
    ins = trace(ckpt, piece)
    ids = ckpt.vocab.encode(piece)
    h0 = ckpt.hidden[:, 0]
    states, probs = model.trace(ids, h0)
    # the model's own trace, bit for bit, in its own dtype
    assert ins.probs.dtype == model.dtype and np.array_equal(ins.probs, probs)
    assert np.array_equal(ins.hidden, model.top_hidden(states.T).T)
    assert np.abs(ins.probs - reference_probs(model, ids, h0)).max() <= PROB_ATOL[dtype]
    # the guesses are the likeliest, the surprise the next character's
    order = np.lexsort((np.broadcast_to(np.arange(probs.shape[1]), probs.shape), -probs))[:, :5]
    assert np.array_equal(ins.top_ids, order)
    assert np.array_equal(ins.top_probs, np.take_along_axis(probs, order, axis=1))
    p = probs[np.arange(ids.size - 1), ids[1:]].astype(np.float64)
    assert np.allclose(ins.surprise[1:], -np.log2(p), rtol=1e-12) and math.isnan(ins.surprise[0])
    # the page: one set per layer's h (and an LSTM's c), every unit of the state shown
    data = embedded(to_html(ins))
    names = [s["name"] for s in data["sets"]]
    layers = [f"h{k}" for k in range(1, L)]
    assert names[0] == "h" and len(names) == (2 if cell == "lstm" else 1) * L
    assert set(layers) <= set(names) and ("c" in names) == (cell == "lstm")
    assert sum(s["units"] for s in data["sets"]) == model.state_size
    summary = dict(data["summary"])
    assert {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell] in summary["cell"]
    assert (dtype == "float32") == summary["cell"].endswith("float32")
    assert (f"width {D}" in summary["cell"]) == bool(D)
    if L > 1:
        assert f"{L} layers" in summary["cell"]


@pytest.fixture(scope="module")
def trained_float32(tmp_path_factory):
    """A directory with t.txt and, trained on it in float32, rnn.npz (min-char-rnn's
    model) and lstm.npz (2 layers, an embedding): the README's kind of run."""
    d = tmp_path_factory.mktemp("inspect32")
    (d / "t.txt").write_text(TEXT * 2, encoding="utf-8")
    common = {"hidden_size": 8, "seq_length": 10, "iters": 40, "eval_every": 40,
              "sample_every": 10_000, "val_fraction": 0.6, "dtype": "float32"}
    training.run(TEXT * 2, common, checkpoint=str(d / "rnn.npz"))
    training.run(TEXT * 2, dict(common, cell="lstm", num_layers=2, embedding_size=4),
                 checkpoint=str(d / "lstm.npz"))
    for name in ("rnn", "lstm"):
        (d / f"{name}.txt").write_text(TEXT * 2, encoding="utf-8")   # its training text
    return d


@pytest.mark.parametrize("name", ["rnn", "lstm"])
@pytest.mark.parametrize("with_text", [True, False])
def test_the_command_inspects_float32_models(trained_float32, name, with_text):
    d = trained_float32
    text = ("t.txt",) if with_text else ()
    code, out, err = run_cli("inspect", f"{name}.npz", *text, "--out", f"{name}{with_text}.html",
                             cwd=d, env=env_for_cli())
    assert code == 0 and err == "", err
    assert out.startswith(f"{name}{with_text}.html: 3,000 characters, mean surprise ")
    page = (d / f"{name}{with_text}.html").read_text(encoding="utf-8")
    assert embedded(page)["n"] == 3000


def test_the_held_out_read_shows_length_characters(trained_float32):
    d = trained_float32
    ckpt = inspect_mod.load_checkpoint(d / "rnn.npz")
    for length in (1, 2, 3000):
        ins = trace(ckpt, training_text=TEXT * 2, length=length)
        assert len(ins.text) == ins.ids.size == length
        assert np.isfinite(ins.surprise[1:]).all() and ins.surprise.size == length
    code, out, _ = run_cli("inspect", "rnn.npz", "--out", "one.html", "--length", 1, cwd=d,
                           env=env_for_cli())
    assert code == 0 and out == "one.html: 1 character, none predicted\n", out


def test_the_page_size_per_character_bounds_the_page():
    """page_bytes_per_character is an upper bound of a real page's size per
    character, and a close one (the fixed part of the page aside)."""
    for cell, L, D, dtype in [("rnn", 1, 0, "float64"), ("lstm", 2, 6, "float32")]:
        ckpt = model_checkpoint(cell, L, D, dtype, H=40)
        empty = len(to_html(trace(ckpt, TEXT[:1])).encode())
        size = len(to_html(trace(ckpt, TEXT[:2001])).encode()) - empty
        per = page_bytes_per_character(ckpt.model)
        assert 0.9 * per * 2000 <= size <= per * 2000, (cell, size / 2000, per)


def test_a_page_over_the_limit_is_refused(trained_float32, monkeypatch, capsys):
    d = trained_float32
    monkeypatch.chdir(d)
    monkeypatch.setattr(inspection, "PAGE_CHARACTERS", 120)
    monkeypatch.setattr(inspect_mod, "PAGE_CHARACTERS", 120)
    ckpt = inspect_mod.load_checkpoint(d / "rnn.npz")
    assert page_limit(ckpt.model) == 120
    # --length above the limit: refused when the text is longer than the limit ...
    for text in (("t.txt",), ()):
        assert inspect_mod.main(["rnn.npz", *text, "--out", "big.html", "--length", "121"]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "--length 121" in err and "120" in err, err
        assert not (d / "big.html").exists()
    # ... at the limit, or over a shorter text, written
    assert inspect_mod.main(["rnn.npz", "t.txt", "--out", "ok.html", "--length", "120"]) == 0
    (d / "short.txt").write_text(TEXT[:100], encoding="utf-8")
    assert inspect_mod.main(["rnn.npz", "short.txt", "--out", "s.html", "--length", "10000"]) == 0
    assert "s.html: 100 characters" in capsys.readouterr().out


def test_the_limit_is_the_smaller_of_characters_and_bytes():
    small = model_checkpoint("rnn", 1, 0, "float64", H=8).model
    assert page_limit(small) == inspection.PAGE_CHARACTERS
    wide = model_checkpoint("lstm", 2, 0, "float32", H=1000).model   # 4,000 units a character
    per = page_bytes_per_character(wide)
    assert per > 4000 and page_limit(wide) == inspection.PAGE_BYTES // per


def test_the_limit_is_refused_on_the_command_line(tmp_path):
    """The real limit, through the command: a text longer than it, --length above it."""
    ckpt = model_checkpoint("rnn", 1, 0, "float64")
    ckpt.save(tmp_path / "m.npz")
    limit = page_limit(ckpt.model)
    (tmp_path / "long.txt").write_text(TEXT * (limit // len(TEXT) + 1), encoding="utf-8")
    assert_cli_refusal(run_cli("inspect", "m.npz", "long.txt", "--out", "p.html", "--length",
                               limit + 1, cwd=tmp_path, env=env_for_cli()),
                       f"--length {limit + 1:,}", f"{limit:,}")
    assert not (tmp_path / "p.html").exists()
