"""Gated and stacked models through the tools: training.run, checkpoints, resume, sampling, charrnn-train's flags, the sweep's grid.

The parity of the kernels is test_gated_parity's; here the layers above
them carry the cell, the layers and dropout's draws.
"""
import os

import numpy as np
import pytest

import charrnn_ext

from charrnn_ext import CharRNN, Vocab
from charrnn_ext.run import training
from charrnn_ext.ckpt.checkpoint import load_checkpoint, save_checkpoint
from charrnn_ext.core.model import CharRNN
from charrnn_ext.run.grid import expand, parse_grid, run_name, sweepable_settings
from charrnn_ext.use.generation import generate_blocks

from conftest import ENV, english_like_text, rewrite_archive, run_cli

# the subprocesses import the charrnn_ext this test imports
ENV_HERE = dict(ENV, PYTHONPATH=os.path.dirname(os.path.dirname(charrnn_ext.__file__)))

TEXT = english_like_text(6000, seed=12)
QUIET = {"sample_every": 10**6, "eval_every": 10**6}
GATED = [("lstm", 2, 0.25), ("gru", 1, 0.0), ("rnn", 2, 0.1)]


def same_params(a, b) -> bool:
    return list(a.params) == list(b.params) and all(
        np.array_equal(a.params[n], b.params[n]) and np.array_equal(a.memory[n], b.memory[n])
        for n in a.params)


@pytest.mark.parametrize("cell, L, dropout", GATED)
def test_a_run_is_model_train(cell, L, dropout):
    settings = dict(QUIET, iters=60, hidden_size=10, seq_length=12, batch_size=2, seed=4,
                    cell=cell, num_layers=L, dropout=dropout)
    run = training.run(TEXT, settings).run
    vocab = Vocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    s = run.hyperparameters   # two streams: the batched recipe's Adam and input embedding
    assert (s["optimizer"], s["embedding_size"]) == ("adam", 64)
    model = CharRNN(len(vocab), 10, 4, cell=cell, num_layers=L, dropout=dropout,
                    optimizer="adam", embedding_size=64)
    _, hidden, position = model.train(ids[:ids.size - int(ids.size * 0.05)], 60, 12,
                                      learning_rate=s["learning_rate"], streams=2)
    assert isinstance(run.model, CharRNN) and run.model.cell == cell
    assert same_params(run.model, model)
    assert np.array_equal(run.hidden, hidden) and run.position == position
    assert run.hidden.shape == (model.state_size, 2)


@pytest.mark.parametrize("cell, L, dropout", GATED)
@pytest.mark.parametrize("optimizer, dtype", [("adagrad", "float64"), ("adam", "float64"),
                                              ("adam", "float32")])
def test_resumed_from_a_file_ends_where_a_straight_run_does(cell, L, dropout, optimizer, dtype,
                                                            tmp_path):
    """Bit-identical, dropout's draws and Adam's moments included (the checkpoint
    keeps them), in float64 and float32."""
    settings = dict(QUIET, iters=80, hidden_size=8, seq_length=10, seed=2, cell=cell,
                    num_layers=L, dropout=dropout, optimizer=optimizer, dtype=dtype)
    straight = training.run(TEXT, settings).run
    path = tmp_path / "half.npz"
    training.run(TEXT, dict(settings, iters=40), checkpoint=str(path), keep_best=False)
    half = load_checkpoint(path)
    assert (half.model.cell, half.model.num_layers, half.model.dropout) == (cell, L, dropout)
    assert half.model.dtype == np.dtype(dtype) == straight.model.dtype
    resumed = training.run(TEXT, {"iters": 80}, resume=half).run
    assert same_params(straight.model, resumed.model)
    assert np.array_equal(straight.hidden, resumed.hidden)
    assert resumed.model.adam_steps == (80 if optimizer == "adam" else 0)
    for name in straight.model.moment:
        assert np.array_equal(straight.model.moment[name], resumed.model.moment[name])


def test_checkpoint_round_trip_and_sampling(tmp_path):
    vocab = Vocab.from_text(TEXT)
    run = training.run(TEXT, dict(QUIET, iters=30, hidden_size=8, cell="lstm",
                                  num_layers=2)).run
    save_checkpoint(tmp_path / "m.npz", run)
    loaded = load_checkpoint(tmp_path / "m.npz")
    assert same_params(loaded.model, run.model) and loaded.vocab == vocab
    assert loaded.hidden.shape == (2 * 2 * 8, 1)
    text = "".join(generate_blocks(loaded, 50, seed=3))
    assert len(text) == 50 and set(text) <= set(vocab.chars)
    assert text == "".join(generate_blocks(run, 50, seed=3))


def test_min_char_rnn_checkpoints_are_unchanged(tmp_path):
    """The default cell writes the members it always wrote, and loads as a CharRNN."""
    run = training.run(TEXT, dict(QUIET, iters=5, hidden_size=6)).run
    save_checkpoint(tmp_path / "m.npz", run)
    with np.load(tmp_path / "m.npz") as f:
        params = sorted(k for k in f.files if k.startswith("params."))
    assert params == ["params.Whh", "params.Why", "params.Wxh", "params.bh", "params.by"]
    assert type(load_checkpoint(tmp_path / "m.npz").model) is CharRNN


def test_train_command_flags(tmp_path):
    (tmp_path / "in.txt").write_text(TEXT)
    code, out, err = run_cli("train", "in.txt", "--cell", "gru", "--num-layers", "2",
                             "--dropout", "0.1", "--hidden-size", "8", "--iters", "30",
                             "--sample-every", "1000", "--eval-every", "1000", cwd=tmp_path,
                             env=ENV_HERE)
    assert code == 0, err
    assert "gru, 2 layers, dropout 0.1, hidden size 8" in out
    model = load_checkpoint(tmp_path / "in.npz").model
    assert (model.cell, model.num_layers) == ("gru", 2)
    code, out, err = run_cli("export", "in.npz", "in.safetensors", cwd=tmp_path, env=ENV_HERE)
    assert code == 0 and (tmp_path / "in.safetensors").stat().st_size > 0, err
    code, out, err = run_cli("train", "in.txt", "--cell", "lstm", "--dtype", "float32",
                             "--batch-size", "4", "--hidden-size", "8", "--iters", "30",
                             "--sample-every", "1000", "--eval-every", "1000", "--checkpoint",
                             "f32.npz", cwd=tmp_path, env=ENV_HERE)
    assert code == 0, err
    model = load_checkpoint(tmp_path / "f32.npz").model
    assert (model.cell, model.dtype) == ("lstm", np.float32)
    code, out, err = run_cli("sample", "f32.npz", "--length", "50", cwd=tmp_path, env=ENV_HERE)
    assert code == 0 and len(out) >= 50, err
    code, _, err = run_cli("train", "in.txt", "--cell", "tcn", cwd=tmp_path, env=ENV_HERE)
    assert code == 2 and "rnn, lstm or gru" in err
    code, out, _ = run_cli("train", "--help", cwd=tmp_path, env=ENV_HERE)
    assert code == 0 and "stacked recurrent layers, at most 16" in " ".join(out.split())
    # dropout with one layer does nothing, and says so (one line, as PyTorch warns)
    code, _, err = run_cli("train", "in.txt", "--cell", "gru", "--dropout", "0.5",
                           "--hidden-size", "8", "--iters", "5", "--checkpoint", "one.npz",
                           cwd=tmp_path, env=ENV_HERE)
    assert code == 0 and err.count("\n") == 1, err
    assert "warning: --dropout 0.5 has no effect with one layer" in err


def test_sweep_varies_the_cell():
    assert run_name({"cell": "lstm", "num_layers": 2, "dropout": 0.2}) == "lstm-L2-do0.2"
    s = sweepable_settings()
    grid = parse_grid(["cell=lstm,gru", "num_layers=1,2"], {}, s)
    runs = expand(grid, {}, s)
    assert [name for name, _ in runs] == ["lstm-L1", "lstm-L2", "gru-L1", "gru-L2"]
    assert runs[1][1]["cell"] == "lstm" and runs[1][1]["num_layers"] == 2


@pytest.mark.parametrize("cell, L", [("lstm", 2), ("gru", 1)])
def test_trace_and_inspect(cell, L):
    """trace's states are advance's, its probabilities the oracle's; charrnn-inspect's
    trace shows the top layer's h."""
    from charrnn_ext.core import reference_gated as R
    from charrnn_ext.page.inspection import trace as inspect_trace
    run = training.run(TEXT, dict(QUIET, iters=10, hidden_size=6, cell=cell, num_layers=L)).run
    model, ids = run.model, run.vocab.encode(TEXT[:40])
    states, probs = model.trace(ids, run.hidden[:, :1])
    assert states.shape == (40, model.state_size)
    assert np.allclose(states[-1], model.advance(ids, run.hidden[:, :1]).ravel(), rtol=1e-12)
    params = {n: np.array(a) for n, a in model.params.items()}
    _, _, h5 = R.batch_lossFun(cell, L, [ids[:5]], [ids[1:6]], run.hidden[:, :1], params)
    assert np.allclose(states[4], h5.ravel(), rtol=1e-10, atol=1e-12)
    top = model.top_hidden(h5)[:, 0]
    y = params["Why"] @ top + params["by"]
    assert np.allclose(probs[4], np.exp(y - y.max()) / np.exp(y - y.max()).sum(), rtol=1e-10)
    traced = inspect_trace(run, TEXT[:60])
    assert traced.hidden.shape == (60, 6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_dropout_changed_on_resume_trains_from_the_resumed_step(cell, dtype, tmp_path):
    """--dropout given on resume is what trains from there on (the header and
    the checkpoint say it): bit for bit the run resumed from the same file
    with the new rate written into it, and not the run at the old rate."""
    settings = dict(QUIET, iters=40, hidden_size=8, seq_length=10, seed=2, cell=cell,
                    num_layers=2, dropout=0.3, dtype=dtype, batch_size=2, lr_decay=1.0)
    path = tmp_path / "half.npz"
    training.run(TEXT, dict(settings, iters=20), checkpoint=str(path), keep_best=False)
    edited = rewrite_archive(path, tmp_path / "edited.npz", edit_hyper={"dropout": 0.6})
    assert load_checkpoint(edited).model.dropout == 0.6
    oracle = training.run(TEXT, {"iters": 40}, resume=load_checkpoint(edited)).run
    old_rate = training.run(TEXT, settings).run
    lines = []
    resumed = training.run(TEXT, {"iters": 40, "dropout": 0.6}, resume=load_checkpoint(path),
                           reporter=training.Printer(lines.append)).run
    assert "dropout 0.6" in lines[2] and resumed.hyperparameters["dropout"] == 0.6
    assert resumed.model.dropout == 0.6 and resumed.model.dtype == np.dtype(dtype)
    assert same_params(resumed.model, oracle.model) and np.array_equal(resumed.hidden, oracle.hidden)
    assert not same_params(resumed.model, old_rate.model)
