"""charrnn_ext.run.training.run, a whole training run as a library call (what
charrnn-train and charrnn-sweep's workers call), in memory: its steps are
min-char-rnn's data pass run by CharRNN.train, a run resumed from its Result
ends where a straight run does, bad settings and texts are refused before
any step.

The same run through the command (files, flags, signals): test_cli_train*.
"""
import time

import numpy as np
import pytest

from charrnn_ext import CharRNN, Vocab, load_checkpoint
from charrnn_ext.run import training

from conftest import data_pass_end, english_like_text, same_model

WORDS_6K = english_like_text(6000, seed=11)
QUIET = {"sample_every": 10**6, "eval_every": 10**6}   # one evaluation, at the end


@pytest.mark.parametrize("B", [1, 3])
def test_a_run_is_model_train_over_the_data_pass(B):
    """A fresh run's model, hidden states and position are those of
    CharRNN(V, H, seed).train over the training part of the text (the text
    less its held-out end), with the position the oracle gives."""
    settings = dict(QUIET, iters=250, hidden_size=16, seq_length=12, batch_size=B, seed=4,
                    recipe="min-char-rnn")
    result = training.run(WORDS_6K, settings)
    vocab = Vocab.from_text(WORDS_6K)
    ids = vocab.encode(WORDS_6K)
    n_train = ids.size - int(ids.size * 0.05)
    model = CharRNN(len(vocab), 16, seed=4)
    _, hidden, position = model.train(ids[:n_train], 250, 12, streams=B)
    run = result.run
    assert run.iteration == 250 and result.steps == 250 and not result.stopped
    assert same_model(run.model, model)
    assert np.array_equal(run.hidden, hidden.reshape(16, B))
    assert run.position == position == data_pass_end(n_train, 12, 250, streams=B)
    assert result.final.val_bpc is not None and result.final.val_bpc < np.log2(len(vocab))


def test_a_resumed_run_ends_where_a_straight_run_does():
    settings = dict(QUIET, iters=240, hidden_size=12, seq_length=10, seed=2)
    straight = training.run(WORDS_6K, settings).run
    half = training.run(WORDS_6K, dict(settings, iters=120)).run
    resumed = training.run(WORDS_6K, {"iters": 240}, resume=half).run   # the rest from the checkpoint
    assert resumed is half and resumed.iteration == 240
    assert same_model(straight.model, resumed.model)
    assert np.array_equal(straight.hidden, resumed.hidden)
    assert straight.position == resumed.position
    assert straight.rng.bit_generator.state == resumed.rng.bit_generator.state


@pytest.mark.parametrize("settings, error, words", [
    ({"hiden_size": 8}, ValueError, "unknown setting 'hiden_size'"),
    ({"hidden_size": 0}, ValueError, "hidden_size"),
    ({"seq_length": 10**6}, training.TextError, "seq-length"),
])
def test_bad_settings_are_refused_before_any_step(settings, error, words):
    with pytest.raises(error, match=words):
        training.run(WORDS_6K, dict(QUIET, iters=5, **settings))


# -- the recipes' models (settings: test_recipe.py) ---------------------------

@pytest.mark.parametrize("settings, model_kw, lr", [
    ({"batch_size": 3, "lr_decay": 1.0}, dict(optimizer="adam", embedding_size=64,
                                              init="pytorch"), 0.002),
    ({"batch_size": 3, "optimizer": "adagrad", "embedding_size": 5},
     dict(optimizer="adagrad", embedding_size=5, init="pytorch"), 0.02),
    ({"optimizer": "adam", "init": "pytorch"}, dict(optimizer="adam", init="pytorch"), 0.002),
])
def test_a_recipes_run_is_its_model_train(settings, model_kw, lr):
    """The model a run builds from its settings (recipe, optimizer, embedding,
    init) and trains: CharRNN(V, H, seed, ...).train over the data pass at
    the recipe's learning rate, bit for bit, Adam's step count included."""
    B = settings.get("batch_size", 1)
    run = training.run(WORDS_6K, dict(QUIET, iters=60, hidden_size=10, seq_length=9, seed=5,
                                      **settings)).run
    vocab = Vocab.from_text(WORDS_6K)
    ids = vocab.encode(WORDS_6K)
    n_train = ids.size - int(ids.size * 0.05)
    model = CharRNN(len(vocab), 10, seed=5, **model_kw)
    _, hidden, position = model.train(ids[:n_train], 60, 9, learning_rate=lr, streams=B)
    assert run.hyperparameters["learning_rate"] == lr
    assert (run.model.optimizer, run.model.embedding_size) == \
        (model_kw["optimizer"], model_kw.get("embedding_size", 0))
    assert same_model(run.model, model)
    assert run.model.adam_steps == model.adam_steps == (60 if model_kw["optimizer"] == "adam"
                                                        else 0)
    for name in model.moment:
        assert np.array_equal(run.model.moment[name], model.moment[name]), name
    assert np.array_equal(run.hidden, hidden.reshape(10, B)) and run.position == position


def test_an_adam_run_resumed_ends_where_a_straight_run_does():
    settings = dict(QUIET, iters=80, hidden_size=10, seq_length=9, seed=2, batch_size=2,
                    embedding_size=4)
    straight = training.run(WORDS_6K, settings).run
    half = training.run(WORDS_6K, dict(settings, iters=40)).run
    assert half.model.adam_steps == 40
    resumed = training.run(WORDS_6K, {"iters": 80}, resume=half).run
    assert resumed.model.adam_steps == straight.model.adam_steps == 80
    assert same_model(straight.model, resumed.model)
    for name in straight.model.moment:
        assert np.array_equal(straight.model.moment[name], resumed.model.moment[name]), name
    assert np.array_equal(straight.hidden, resumed.hidden)
    assert straight.hyperparameters == resumed.hyperparameters


# -- time_limit -----------------------------------------------------------------

def test_time_limit_ends_the_run_early_scored_as_at_its_end():
    """time_limit: the run stops after that many seconds, then is scored and
    saved as at the end of its iterations (not as stopped)."""
    t0 = time.perf_counter()
    result = training.run(WORDS_6K, dict(QUIET, iters=10**8, hidden_size=8, seq_length=8),
                          time_limit=0.3)
    elapsed = time.perf_counter() - t0
    assert result.timed_out and not result.stopped
    assert 0 < result.run.iteration == result.steps < 10**8
    assert elapsed < 10
    assert result.final is not None and result.final.val_bpc is not None \
        and result.final.train_bpc is not None
    # the final evaluation is recorded at the iteration reached, and the best kept
    assert result.run.history["val_iteration"][-1] == result.run.iteration
    assert result.best is not None and result.run.best_val_bpc is not None


def test_a_run_that_finishes_within_its_time_limit_did_not_time_out():
    result = training.run(WORDS_6K, dict(QUIET, iters=20, hidden_size=8, seq_length=8),
                          time_limit=600)
    assert not result.timed_out and result.run.iteration == 20
    # all iterations ran, however long the last block took
    result = training.run(WORDS_6K, dict(QUIET, iters=1, hidden_size=8, seq_length=8),
                          time_limit=1e-9)
    assert result.run.iteration == 1 and not result.timed_out


@pytest.mark.parametrize("limit", [-1, float("nan"), float("-inf"), "10", True])
def test_a_bad_time_limit_is_refused_before_any_step(limit):
    with pytest.raises((ValueError, TypeError), match="time_limit"):
        training.run(WORDS_6K, dict(QUIET, iters=5, hidden_size=8, seq_length=8),
                     time_limit=limit)


def test_a_decaying_rate_is_model_train_window_by_window():
    """lr_decay: the run is model.train over windows of LR_WINDOW iterations,
    window w at learning_rate * (1 - (1 - lr_decay) * w * LR_WINDOW / iters)."""
    from charrnn_ext.defaults import LR_WINDOW
    iters, lr, decay = 350, 0.004, 0.25
    settings = dict(QUIET, iters=iters, hidden_size=12, seq_length=10, batch_size=2, seed=5,
                    recipe="batched", embedding_size=4, learning_rate=lr, lr_decay=decay)
    result = training.run(WORDS_6K, settings)
    vocab = Vocab.from_text(WORDS_6K)
    ids = vocab.encode(WORDS_6K)
    n_train = ids.size - int(ids.size * 0.05)
    model = CharRNN(len(vocab), 12, seed=5, embedding_size=4, optimizer="adam", init="pytorch")
    h, position, n = None, 0, 0
    while n < iters:
        steps = min(LR_WINDOW, iters - n)
        rate = lr * (1 - (1 - decay) * (n / iters))
        _, h, position = model.train(ids[:n_train], steps, 10, h, position, rate, streams=2)
        n += steps
    assert same_model(result.run.model, model)
    assert np.array_equal(result.run.hidden, h) and result.run.position == position
    constant = training.run(WORDS_6K, dict(settings, lr_decay=1.0))
    assert not same_model(constant.run.model, model)


# -- the files: charrnn-train's output rules (outputs.take_run_files) ------------

SMALL = dict(QUIET, iters=6, hidden_size=8, seq_length=8)


class _Steps(training.Reporter):
    """Counts the steps a run takes."""

    def __init__(self):
        self.steps = 0

    def progress(self, run, steps):
        self.steps += steps


def _refused(path, words, **kw):
    """training.run(checkpoint=path) raises a one-line ValueError with
    ``words`` before its first step."""
    steps = _Steps()
    with pytest.raises(ValueError, match=words) as caught:
        training.run(WORDS_6K, SMALL, checkpoint=str(path), reporter=steps, **kw)
    assert steps.steps == 0 and "\n" not in str(caught.value)


def test_a_run_never_replaces_a_file_that_is_not_its_checkpoint(tmp_path):
    """A text (the training text itself, say), a symlink to one, another
    run's checkpoint or the best file of an unrelated run beside the path:
    refused, byte for byte as they were, as charrnn-train refuses them."""
    from conftest import sha
    text = tmp_path / "input.txt"
    text.write_text(WORDS_6K, encoding="utf-8")
    (tmp_path / "link.npz").symlink_to(text)
    other = training.run(WORDS_6K, SMALL, checkpoint=str(tmp_path / "other.npz"))
    assert other.run.best_iteration == 6 and (tmp_path / "other.best.npz").exists()
    (tmp_path / "x.best.npz").write_bytes((tmp_path / "other.best.npz").read_bytes())
    before = {p.name: sha(p) for p in tmp_path.iterdir()}
    _refused(text, "refusing to overwrite checkpoint .*input.txt")
    _refused(tmp_path / "link.npz", "refusing to overwrite checkpoint .*link.npz")
    _refused(tmp_path / "other.npz", r"already holds a run at iteration 6; pass resume=.*other"
                                     r".npz' to continue it, or overwrite=True")
    _refused(tmp_path / "x.npz", "the best-model file .*x.best.npz already holds a model at "
                                 "iteration 6; pass overwrite=True")
    assert {p.name: sha(p) for p in tmp_path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)   # no lock, no temp


@pytest.mark.parametrize("where, words", [
    ("", "needs a file name"), ("sub", "is a directory"), ("sub/", "is a directory"),
    ("missing/dir/m.npz", "does not exist"), ("/proc/m.npz", "cannot write"),
])
def test_a_path_that_cannot_be_written_fails_before_the_first_step(tmp_path, monkeypatch,
                                                                    where, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    _refused(where, words)


def test_a_run_continues_its_own_file_and_starts_over_only_with_overwrite(tmp_path):
    """resume=PATH (or a Checkpoint with resumed_from=PATH) continues the run
    in that file, its best file too; overwrite=True starts a run over on a
    checkpoint (its first save removes the old best file)."""
    path = str(tmp_path / "m.npz")
    training.run(WORDS_6K, SMALL, checkpoint=path)
    result = training.run(WORDS_6K, {"iters": 12}, resume=path, checkpoint=path)
    assert result.run.iteration == 12 and load_checkpoint(path).iteration == 12
    result = training.run(WORDS_6K, {"iters": 18}, resume=load_checkpoint(path),
                          resumed_from=path, checkpoint=path)
    assert load_checkpoint(path).iteration == 18
    with pytest.raises(ValueError, match="already holds a run at iteration 18"):
        training.run(WORDS_6K, {"iters": 24}, resume=load_checkpoint(path), checkpoint=path)
    fresh = training.run(WORDS_6K, dict(SMALL, iters=3, eval_every=10**6), checkpoint=path,
                         overwrite=True, keep_best=False)
    assert load_checkpoint(path).iteration == 3 and fresh.saved_at == 3
    assert not (tmp_path / "m.best.npz").exists()
    assert not list(tmp_path.glob("*.lock"))


def test_a_run_is_refused_a_file_another_process_is_writing(tmp_path):
    """The lock charrnn-train holds keeps a library run out (and the other way)."""
    import subprocess
    import sys
    from conftest import ENV
    path = tmp_path / "m.npz"
    code = ("import sys, time; from charrnn_ext._runlock import RunLock; "
            "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], env=ENV,
                              stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        _refused(path, f"another run is writing checkpoint .*m.npz .*process {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("given, words", [
    ({"batch_size": 8}, "setting batch_size 8 differs from the 2 streams"),
    ({"hidden_size": 64}, "setting hidden_size 64 differs from the hidden size 16"),
    ({"cell": "gru"}, "setting cell gru differs from the cell lstm"),
    ({"dtype": "float64"}, "setting dtype float64 differs from the dtype float32"),
    ({"recipe": "min-char-rnn"}, "setting recipe min-char-rnn differs from the recipe batched"),
])
def test_resume_refuses_settings_that_contradict_the_checkpoint(given, words):
    """training.run(resume=...) with a setting its model fixes given
    otherwise: a ValueError naming it before any step, the checkpoint as it
    was (charrnn-train's exit 2)."""
    ckpt = training.run(WORDS_6K, dict(QUIET, iters=4, batch_size=2, hidden_size=16,
                                       seq_length=8, cell="lstm", dtype="float32")).run
    params = {name: np.array(a) for name, a in ckpt.model.params.items()}
    steps = _Steps()
    with pytest.raises(ValueError, match=words):
        training.run(WORDS_6K, {"iters": 8, **given}, resume=ckpt, reporter=steps)
    assert steps.steps == 0 and ckpt.iteration == 4
    assert all(np.array_equal(params[n], a) for n, a in ckpt.model.params.items())


class _Said(training.Reporter):
    """Keeps a run's lines and notes."""

    def __init__(self):
        self.lines, self.notes = [], []

    def line(self, text):
        self.lines.append(text)

    def note(self, text):
        self.notes.append(text)


def test_a_resumed_run_ignores_a_seed_or_init_in_a_note_and_shows_its_own():
    """The seed and the initialisation are spent once a model has trained: on
    resume they are ignored with a note, the header and the checkpoint keep
    the run's own (as charrnn-train's --seed and --init)."""
    settings = dict(QUIET, iters=20, hidden_size=8, seq_length=8, seed=3)
    straight = training.run(WORDS_6K, settings).run
    half = training.run(WORDS_6K, dict(settings, iters=10)).run
    said = _Said()
    training.run(WORDS_6K, {"iters": 20, "seed": 99, "init": "pytorch"}, resume=half,
                 reporter=said)
    assert said.notes[:2] == ["setting seed is ignored when resuming (the checkpoint's random "
                              "state continues)", "setting init is ignored when resuming (the "
                                                  "checkpoint's weights continue)"]
    assert "seed 3, 20 iterations" in said.lines[2]
    assert (half.hyperparameters["seed"], half.hyperparameters["init"]) == (3, "min-char-rnn")
    assert same_model(straight.model, half.model)


# -- resuming under the decaying learning rate --------------------------------------

CELLS = [("rnn", 1), ("rnn", 2), ("lstm", 1), ("gru", 2)]


class _StopAt(training.Reporter):
    """stop() once the run has reached an iteration."""

    def __init__(self, at):
        self.at, self.iteration = at, 0

    def progress(self, run, steps):
        self.iteration = run.iteration

    def stop(self):
        return self.iteration >= self.at


@pytest.mark.parametrize("cell, L", CELLS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_run_stopped_and_resumed_to_its_iters_is_the_straight_run_under_decay(cell, L, dtype):
    """The default decay of several streams (the batched recipe's: Adam
    falling to a tenth): a run stopped mid-window and resumed to the same
    iters is bit for bit the straight run."""
    settings = dict(QUIET, iters=330, hidden_size=8, seq_length=10, seed=2, batch_size=2,
                    cell=cell, num_layers=L, dtype=dtype, sample_every=30)
    assert training.run(WORDS_6K, dict(settings, iters=5)).run.hyperparameters["lr_decay"] == 0.1
    straight = training.run(WORDS_6K, settings).run
    stopper = _StopAt(150)
    part = training.run(WORDS_6K, settings, reporter=stopper, stop=stopper.stop)
    assert part.stopped and part.run.iteration == 150   # in the middle of a window of 100
    said = _Said()
    resumed = training.run(WORDS_6K, {}, resume=part.run, reporter=said).run
    assert not said.notes and resumed.iteration == 330
    assert same_model(straight.model, resumed.model)
    for name in straight.model.moment:
        assert np.array_equal(straight.model.moment[name], resumed.model.moment[name]), name
    assert np.array_equal(straight.hidden, resumed.hidden)


def test_resumed_to_a_new_total_the_rate_goes_on_from_where_it_stopped_to_the_floor(tmp_path):
    """A run of 400 iterations stopped at 200 (the rate of its window from
    200 then 0.625 of its start) and resumed to 600: its rate goes on from there, window by window,
    down to the floor at 600, not back up; one note says the result differs
    from a straight run of 600; an interruption of that continued run resumed
    to 600 again is bit for bit the same."""
    from charrnn_ext.defaults import LR_WINDOW
    lr, decay = 0.004, 0.25
    settings = dict(QUIET, iters=400, hidden_size=12, seq_length=10, batch_size=2, seed=5,
                    recipe="batched", embedding_size=4, learning_rate=lr, lr_decay=decay)
    stopper = _StopAt(200)
    first = training.run(WORDS_6K, settings, reporter=stopper, stop=stopper.stop).run
    assert first.iteration == 200 and first.lr_from is None
    said = _Said()
    result = training.run(WORDS_6K, {"iters": 600}, resume=first, reporter=said)
    assert said.notes == [
        "the learning rate goes on from 0.0025 at iteration 200 down to 0.001 at iteration 600 "
        "(the checkpoint's run was planned for 400): the result differs from a straight run "
        "of 600 iterations"]
    vocab = Vocab.from_text(WORDS_6K)
    ids = vocab.encode(WORDS_6K)
    n_train = ids.size - int(ids.size * 0.05)
    model = CharRNN(len(vocab), 12, seed=5, embedding_size=4, optimizer="adam", init="pytorch")
    h, position, rates = None, 0, []
    at_200 = lr * (1 - (1 - decay) * (200 / 400))   # the first run's rate from 200
    for n in range(0, 600, LR_WINDOW):
        if n < 200:
            rate = lr * (1 - (1 - decay) * (n / 400))
        else:
            p = (n - 200) / 400
            rate = at_200 * (1 - p) + lr * decay * p
        rates.append(rate)
        _, h, position = model.train(ids[:n_train], LR_WINDOW, 10, h, position, rate, streams=2)
    assert rates[2] == at_200 < rates[1]   # no jump at 200: its window's rate, as before
    assert rates == sorted(rates, reverse=True) and rates[-1] > lr * decay
    assert training.scheduled_rate(600, result.run.hyperparameters, result.run.lr_from) == \
        lr * decay
    assert same_model(result.run.model, model)
    assert np.array_equal(result.run.hidden, h) and result.run.position == position
    # the continued schedule is the checkpoint's: that run stopped at 450 (its file read
    # back) and resumed to 600 is bit for bit the same, and says nothing
    stopper = _StopAt(200)
    again = training.run(WORDS_6K, settings, reporter=stopper, stop=stopper.stop).run
    stopper = _StopAt(450)
    path = str(tmp_path / "m.npz")
    training.run(WORDS_6K, {"iters": 600, "checkpoint_every": 50}, resume=again,
                 reporter=stopper, stop=stopper.stop, checkpoint=path)
    saved = load_checkpoint(path)
    assert saved.iteration == 450 and saved.lr_from == result.run.lr_from == (200, rates[2])
    said = _Said()
    last = training.run(WORDS_6K, {}, resume=path, checkpoint=path, reporter=said).run
    assert not said.notes and same_model(last.model, result.run.model)


def test_a_run_ended_by_its_time_limit_resumes_at_the_rate_it_reached(monkeypatch):
    """A time limit brings the decaying rate to its floor by the end of the
    time: resumed without one, the run goes on from there down to the floor
    at iters, not back up to where the iterations alone would put it."""
    settings = dict(QUIET, iters=10**6, hidden_size=8, seq_length=8, batch_size=2,
                    lr_decay=0.1, learning_rate=0.004)
    timed = training.run(WORDS_6K, settings, time_limit=0.5)
    n, rate = timed.run.lr_from
    assert timed.timed_out and n == timed.run.iteration < 10**6
    assert rate == pytest.approx(0.0004, rel=1e-12)   # the floor, reached in time
    used = []
    train = CharRNN.train

    def spy(model, data, steps, seq_length, hprev, position, learning_rate, streams):
        used.append(learning_rate)
        return train(model, data, steps, seq_length, hprev, position, learning_rate, streams)
    monkeypatch.setattr(CharRNN, "train", spy)
    training.run(WORDS_6K, {"iters": n + 300}, resume=timed.run)
    assert used and all(r == pytest.approx(0.0004, rel=1e-12) for r in used), used


def test_a_seq_length_changed_on_resume_keeps_the_smoothed_loss_per_character():
    """The smoothed loss (and the open interval's sum) is nats per chunk:
    resumed with another seq_length it goes on per chunk of the new length,
    the same per character, so the summary's bits/char stay below a uniform
    guess (not the old chunk's losses divided by the new length)."""
    half = training.run(WORDS_6K, dict(QUIET, iters=150, hidden_size=16, seq_length=25,
                                       sample_every=100)).run
    per_char, open_sum = half.smooth_loss / 25, half.interval_loss
    assert half.interval_steps == 49   # since the point at iteration 101
    result = training.run(WORDS_6K, {"iters": 151, "seq_length": 5}, resume=half)
    loss = result.run.interval_loss - open_sum * 5 / 25          # the one step's loss
    assert 0 < loss < 5 * np.log(len(half.vocab))
    assert result.run.smooth_loss == pytest.approx(per_char * 5 * 0.999 + loss * 0.001,
                                                   rel=1e-12)
    lines = training.summary(result, result.run.hyperparameters, None, None)
    bpc = float(lines[1].split("(")[1].split()[0])
    assert bpc == pytest.approx(per_char / np.log(2), rel=0.01)
    assert bpc < np.log2(len(half.vocab))


@pytest.mark.parametrize("change", [{"val_fraction": 0.1}, {"text": True}])
def test_a_resume_on_other_held_out_text_says_the_best_is_judged_anew(tmp_path, change):
    """The checkpoint's best was scored on other held-out text (another
    val_fraction, another text of the same characters): one note says so, and
    the run's best is its own."""
    path = str(tmp_path / "m.npz")
    first = training.run(WORDS_6K, dict(QUIET, iters=20, hidden_size=8, seq_length=8),
                         checkpoint=path).run
    assert first.best_iteration == 20
    text = WORDS_6K[::-1] if change.get("text") else WORDS_6K
    said = _Said()
    settings = {"iters": 30, **{k: v for k, v in change.items() if k != "text"}}
    run = training.run(text, settings, resume=path, checkpoint=path, reporter=said).run
    assert "the held-out text differs from the checkpoint's (--val-fraction or the text): the " \
           "best model is judged anew" in said.notes
    assert run.best_iteration == 30 and load_checkpoint(str(tmp_path / "m.best.npz")).iteration == 30
    said = _Said()
    training.run(text, {"iters": 40}, resume=path, checkpoint=path, reporter=said)
    assert not any("judged anew" in note for note in said.notes)


class _Breaks(training.Reporter):
    """A reporter (and stop()) whose hook ``where`` raises once the run has
    passed iteration 30."""

    def __init__(self, where):
        self.where, self.iteration = where, 0

    def _maybe(self, where):
        if where == self.where and self.iteration > 30:
            raise RuntimeError(f"{where} broke")

    def line(self, text):
        self._maybe("loss line" if text.startswith("iter") else "sample")

    def progress(self, run, steps):
        self.iteration = run.iteration
        self._maybe("progress")

    def evaluated(self, run, scores, best):
        self._maybe("evaluated")

    def stop(self):
        self._maybe("stop")
        return False


@pytest.mark.parametrize("where", ["sample", "loss line", "progress", "evaluated", "stop"])
def test_a_reporter_or_stop_that_raises_ends_the_run_saved(tmp_path, where):
    """What was trained is saved (the state as the model is), then the
    error is raised; resumed, the run ends where a straight one does."""
    settings = dict(QUIET, iters=80, hidden_size=8, seq_length=8, sample_every=20,
                    eval_every=20, checkpoint_every=1000)
    path = str(tmp_path / "m.npz")
    broken = _Breaks(where)
    with pytest.raises(RuntimeError, match=f"{where} broke"):
        training.run(WORDS_6K, settings, checkpoint=path, reporter=broken, stop=broken.stop)
    saved = load_checkpoint(path)
    assert 30 < saved.iteration < 80
    assert not list(tmp_path.glob("*.lock"))
    resumed = training.run(WORDS_6K, {}, resume=path, checkpoint=path).run
    straight = training.run(WORDS_6K, settings).run
    assert same_model(straight.model, resumed.model)
    assert np.array_equal(straight.hidden, resumed.hidden) and resumed.smooth_loss == \
        straight.smooth_loss
