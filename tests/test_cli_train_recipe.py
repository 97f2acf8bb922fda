"""charrnn-train's recipes as a user meets them (issue 20): --batch-size 1
alone is still min-char-rnn bit for bit, --batch-size B > 1 alone is the
batched recipe (Adam, an input embedding, PyTorch's init) and the header
says so, a flag given overrides its recipe's value, notes (stderr) name
settings known to train badly, --time-limit ends a run scored as at its end.

The recipes' settings in process: test_recipe.py; the model a run's settings
build: test_training.py; their bad values: test_cli_train.py's BAD_TRAIN;
resuming such runs: test_cli_train_resume.py.
"""
import re

import numpy as np
import pytest

from charrnn_ext import CharRNN, Vocab, evaluate, load_checkpoint

from conftest import progress_lines, run_cli, run_many, same_model

QUIET = ("--sample-every", 1000, "--eval-every", 1000)


def header(stdout: str) -> str:
    """The line naming the model settings (the third one), less the compute
    type it may name (", float64": the default, not a recipe's)."""
    line = stdout.splitlines()[2]
    assert line.startswith("hidden size "), stdout[:500]
    return re.sub(r", float(64|32),", ",", line)


def warnings(stderr: str) -> list:
    return [line for line in stderr.splitlines() if "warning:" in line]


def test_one_stream_with_no_other_flag_is_min_char_rnn_bit_for_bit(cli_texts, tmp_path):
    """No flag, and --batch-size 1 with no other flag: min-char-rnn's
    settings (hidden 100, seq 25, Adagrad 0.1, one-hot, randn * 0.01), the
    model CharRNN(V, 100, seed 0).train makes, bit for bit, and the header
    says min-char-rnn's recipe; no note."""
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
    results = run_many([
        ("train", "en.txt", "--iters", 60, *QUIET, "--checkpoint", tmp_path / "a.npz"),
        ("train", "en.txt", "--iters", 60, *QUIET, "--batch-size", 1,
         "--checkpoint", tmp_path / "b.npz"),
    ], cwd=cli_texts)
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    n_train = ids.size - int(ids.size * 0.05)
    model = CharRNN(len(vocab), 100, seed=0)
    _, hidden, position = model.train(ids[:n_train], 60, 25)
    for (rc, out, err), name in zip(results, "ab"):
        assert rc == 0 and err == "", err
        assert header(out) == ("hidden size 100, seq length 25, Adagrad learning rate 0.1, "
                               "seed 0, 60 iterations (min-char-rnn recipe)")
        ckpt = load_checkpoint(tmp_path / f"{name}.npz")
        assert ckpt.model.optimizer == "adagrad" and ckpt.model.embedding_size == 0
        assert dict(ckpt.model.moment) == {} and ckpt.model.adam_steps == 0
        assert same_model(ckpt.model, model)
        assert np.array_equal(ckpt.hidden, hidden.reshape(100, 1)) and ckpt.position == position
        assert ckpt.hyperparameters["recipe"] == "min-char-rnn"
    assert progress_lines(results[0][1]) == progress_lines(results[1][1])


def test_more_streams_alone_get_the_batched_recipe(cli_texts, tmp_path):
    """--batch-size 32 and nothing else: hidden 256, seq 50, Adam 0.002, a
    64-wide input embedding, PyTorch's init; the header says so, no note."""
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
    rc, out, err = run_cli("train", "en.txt", "--batch-size", 32, "--iters", 6, *QUIET,
                           "--checkpoint", tmp_path / "b.npz", cwd=cli_texts)
    assert rc == 0 and warnings(err) == [], err
    n_train = len(text) - int(len(text) * 0.05)
    assert header(out) == (f"hidden size 256, seq length 50, 32 streams of {n_train // 32} "
                           f"characters, input embedding 64, Adam learning rate 0.002 falling to 0.1x, "
                           f"seed 0, "
                           f"6 iterations (batched recipe)")
    ckpt = load_checkpoint(tmp_path / "b.npz")
    model = ckpt.model
    V = len(set(text))
    assert (model.hidden_size, model.embedding_size, model.optimizer) == (256, 64, "adam")
    assert ckpt.hidden.shape == (256, 32) and model.adam_steps == 6
    assert model.params["embed"].shape == (V, 64) and model.params["Wxh"].shape == (256, 64)
    assert set(model.moment) == set(model.params)
    hyper = ckpt.hyperparameters
    assert {k: hyper[k] for k in ("recipe", "hidden_size", "seq_length", "batch_size",
                                  "learning_rate", "optimizer", "embedding_size", "init")} == \
        dict(recipe="batched", hidden_size=256, seq_length=50, batch_size=32,
             learning_rate=0.002, optimizer="adam", embedding_size=64, init="pytorch")


def test_flags_given_override_the_recipe(cli_texts, tmp_path):
    """Each flag given wins over its recipe's value; the other optimizer gets
    its own rate; --recipe min-char-rnn with B streams keeps Adagrad 0.1
    one-hot at min-char-rnn's sizes."""
    runs = {
        "over": ("--batch-size", 4, "--hidden-size", 16, "--seq-length", 8,
                 "--learning-rate", 0.01, "--embedding-size", 5, "--init", "min-char-rnn"),
        "adagrad": ("--batch-size", 4, "--hidden-size", 16, "--optimizer", "adagrad"),
        "onehot": ("--batch-size", 4, "--hidden-size", 16, "--embedding-size", 0),
        "mcr": ("--recipe", "min-char-rnn", "--batch-size", 4),
        "adam1": ("--optimizer", "adam", "--hidden-size", 16),
        "batched1": ("--recipe", "batched", "--batch-size", 1, "--hidden-size", 16),
    }
    results = dict(zip(runs, run_many([
        ("train", "en.txt", *args, "--iters", 5, *QUIET, "--checkpoint", tmp_path / f"{n}.npz")
        for n, args in runs.items()], cwd=cli_texts)))
    for name, (rc, _, err) in results.items():
        assert rc == 0 and warnings(err) == [], (name, err)
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
    part = (len(text) - int(len(text) * 0.05)) // 4
    expected = {
        "over": f"hidden size 16, seq length 8, 4 streams of {part} characters, input embedding "
                f"5, Adam learning rate 0.01 falling to 0.1x, seed 0, 5 iterations (batched recipe)",
        "adagrad": f"hidden size 16, seq length 50, 4 streams of {part} characters, input "
                   f"embedding 64, Adagrad learning rate 0.02 falling to 0.1x, seed 0, 5 iterations "
                   f"(batched recipe)",
        "onehot": f"hidden size 16, seq length 50, 4 streams of {part} characters, Adam "
                  f"learning rate 0.002 falling to 0.1x, seed 0, 5 iterations (batched recipe)",
        "mcr": f"hidden size 100, seq length 25, 4 streams of {part} characters, Adagrad "
               f"learning rate 0.1, seed 0, 5 iterations (min-char-rnn recipe)",
        "adam1": "hidden size 16, seq length 25, Adam learning rate 0.002, seed 0, "
                 "5 iterations (min-char-rnn recipe)",
        "batched1": "hidden size 16, seq length 50, input embedding 64, Adam learning rate "
                    "0.002 falling to 0.1x, seed 0, 5 iterations (batched recipe)",
    }
    for name, line in expected.items():
        assert header(results[name][1]) == line, name
    models = {name: load_checkpoint(tmp_path / f"{name}.npz").model for name in runs}
    assert [(m.optimizer, m.embedding_size) for m in models.values()] == [
        ("adam", 5), ("adagrad", 64), ("adam", 0), ("adagrad", 0), ("adam", 0), ("adam", 64)]
    # --init min-char-rnn: the embedding's Wxh starts at randn * 0.01 (PyTorch's is
    # uniform in +-1/sqrt(16) = 0.25); the batched recipe's init otherwise
    V = len(set(text))
    ref = CharRNN(V, 16, seed=0, embedding_size=5, init="min-char-rnn")
    assert np.abs(ref.params["Wxh"]).max() < 0.05
    assert load_checkpoint(tmp_path / "over.npz").hyperparameters["init"] == "min-char-rnn"
    assert load_checkpoint(tmp_path / "adagrad.npz").hyperparameters["init"] == "pytorch"
    assert load_checkpoint(tmp_path / "mcr.npz").hyperparameters["init"] == "min-char-rnn"


def test_the_mcr_recipe_with_streams_is_model_train_bit_for_bit(cli_texts, tmp_path):
    """--recipe min-char-rnn --batch-size 4: CharRNN(V, 100, seed).train over
    4 streams, one-hot and Adagrad 0.1, bit for bit."""
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
    rc, _, err = run_cli("train", "en.txt", "--recipe", "min-char-rnn", "--batch-size", 4,
                         "--iters", 30, "--seed", 2, *QUIET, "--checkpoint", tmp_path / "m.npz",
                         cwd=cli_texts)
    assert rc == 0, err
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    n_train = ids.size - int(ids.size * 0.05)
    model = CharRNN(len(vocab), 100, seed=2)
    _, hidden, _ = model.train(ids[:n_train], 30, 25, learning_rate=0.1, streams=4)
    ckpt = load_checkpoint(tmp_path / "m.npz")
    assert same_model(ckpt.model, model) and np.array_equal(ckpt.hidden, hidden)


# -- notes: settings known to train badly -------------------------------------

def test_the_trap_is_named_in_one_line_when_the_run_starts(cli_texts, tmp_path):
    """--batch-size 32 --hidden-size 256 --optimizer adagrad --embedding-size 0
    (min-char-rnn's input and optimiser at a width it trains badly): one
    line on stderr, before training; the run goes on."""
    rc, out, err = run_cli("train", "en.txt", "--batch-size", 32, "--hidden-size", 256,
                           "--optimizer", "adagrad", "--embedding-size", 0, "--seq-length", 20,
                           "--iters", 3, *QUIET, "--checkpoint", tmp_path / "t.npz",
                           cwd=cli_texts)
    assert rc == 0, err
    lines = warnings(err)
    assert len(lines) == 1 and len(err.splitlines()) == 1, err
    assert "Adagrad" in lines[0] and "--recipe batched" in lines[0] and "256" in lines[0]
    assert "Adagrad learning rate 0.02" in header(out)
    # and a large Adam rate
    rc, _, err = run_cli("train", "en.txt", "--batch-size", 4, "--hidden-size", 8,
                         "--learning-rate", 0.5, "--iters", 3, *QUIET,
                         "--checkpoint", tmp_path / "u.npz", cwd=cli_texts)
    assert rc == 0 and len(warnings(err)) == 1 and "Adam" in err and "0.5" in err, err


# -- --time-limit -----------------------------------------------------------------

def test_time_limit_stops_early_saves_and_scores(cli_texts, tmp_path):
    """--time-limit S: training stops after S seconds, says where, and the
    run ends as if its iterations were done: saved, scored (train and
    validation figures), its best model kept."""
    text = (cli_texts / "en.txt").read_text(encoding="utf-8")
    rc, out, err = run_cli("train", "en.txt", "--hidden-size", 8, "--seq-length", 8,
                           "--iters", 10**8, *QUIET, "--time-limit", 0.5,
                           "--checkpoint", tmp_path / "t.npz", cwd=cli_texts)
    assert rc == 0 and err == "", err
    m = re.search(r"^--time-limit 0\.5 s reached at iteration (\d+) of 100000000$", out, re.M)
    assert m, out[-2000:]
    n = int(m.group(1))
    assert 0 < n < 10**8
    assert re.search(rf"^summary: {n} iterations, ", out, re.M)
    m = re.search(r"^bits per character, continuing from the trained state: train (\S+) "
                  r"\(last \d+ training characters\), validation (\S+) ", out, re.M)
    assert m, out[-2000:]
    ckpt = load_checkpoint(tmp_path / "t.npz")
    assert ckpt.iteration == n and ckpt.history["val_iteration"][-1] == n
    ids = Vocab.from_text(text).encode(text)
    scores = evaluate(ckpt.model, ids, ids.size - int(ids.size * 0.05), ckpt.hidden,
                      ckpt.position)
    assert float(m.group(2)) == pytest.approx(scores.val_bpc, abs=1e-4)
    assert (tmp_path / "t.best.npz").exists() and f"checkpoint: {tmp_path / 't.npz'} " \
        f"(iteration {n})" in out


def test_a_time_limit_not_reached_changes_nothing(cli_texts, tmp_path):
    (rc1, out1, _), (rc2, out2, _) = run_many([
        ("train", "en.txt", "--hidden-size", 8, "--seq-length", 8, "--iters", 40, *QUIET,
         *extra, "--checkpoint", tmp_path / f"{name}.npz")
        for name, extra in (("a", ()), ("b", ("--time-limit", 600)))], cwd=cli_texts)
    assert rc1 == rc2 == 0
    assert "--time-limit" not in out2 and "summary: 40 iterations" in out2
    assert same_model(load_checkpoint(tmp_path / "a.npz").model,
                      load_checkpoint(tmp_path / "b.npz").model)
    assert progress_lines(out1) == progress_lines(out2)
