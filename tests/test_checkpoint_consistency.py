"""Checkpoint fields against each other: a field that another determines
(shapes, sizes, positions, counts) must agree with it, or the file is refused
with a one-line ValueError (the CLIs: exit status 2, one line, no traceback);
and every file the tools write still loads (save runs the same checks)."""
import json

import numpy as np
import pytest

from charrnn_ext import CharRNN, Vocab, load_checkpoint
from charrnn_ext.ckpt.checkpoint import FORMAT_VERSION, Checkpoint
from charrnn_ext.core.datapass import held_out, stream_part

from conftest import (assert_cli_refusal, assert_load_refused, english_like_text,
                      rewrite_archive, run_cli)

H, B, T, VF = 8, 2, 16, 0.1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A directory with input.txt and base.npz, a real run of the train CLI:
    2 streams, a held-out part, evaluations, a best score, an open interval."""
    cwd = tmp_path_factory.mktemp("consistency")
    (cwd / "input.txt").write_text(english_like_text(3000, seed=5), encoding="utf-8")
    code, _, err = run_cli("train", "input.txt", "--checkpoint", "base.npz", "--iters", 60,
                           "--batch-size", B, "--seq-length", T, "--val-fraction", VF,
                           "--hidden-size", H, "--eval-every", 20, "--sample-every", 10,
                           "--checkpoint-every", 25, "--sample-length", 5, cwd=cwd)
    assert code == 0, err
    return cwd


def _arrays(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _json(arrays, key) -> dict:
    return json.loads(str(arrays[key]))


def _variant(trained, name, state=None, hyper=None, **members):
    """A copy of base.npz with members replaced (None: removed), and the
    JSON members ``state`` / ``hyperparameters`` changed key by key (a value
    None removes the key; use the string "null" for JSON null)."""
    return rewrite_archive(trained / "base.npz", trained / name, edit_state=state,
                           edit_hyper=hyper, **members)


def _base(trained) -> Checkpoint:
    return load_checkpoint(trained / "base.npz")


def _part(data_size, val_fraction, streams) -> int:
    return stream_part(data_size - held_out(data_size, val_fraction), streams)


def test_the_trained_file_has_what_the_relations_check(trained):
    ck = _base(trained)
    assert ck.hidden.shape == (H, B) and ck.hyperparameters["batch_size"] == B
    assert ck.data_size == 3000 and 0 < ck.position <= _part(3000, VF, B) - 1
    assert ck.best_iteration is not None and ck.interval_steps > 0 and ck.interval_loss > 0
    assert list(ck.history["val_iteration"]) == [0, 20, 40, 60]
    assert ck.history["iteration"][-1] + ck.interval_steps == ck.iteration == 60


# -- shapes and sizes: hidden, hidden_size, batch_size ----------------------------

def test_hidden_streams_must_match_batch_size(trained):
    """The audit's example: hidden (H, 7) in a run of batch_size 2 resumed
    silently as 7 streams."""
    path = _variant(trained, "h7.npz", hidden=np.zeros((H, 7)))
    assert_load_refused(path, "'hidden' holds 7 streams", "batch_size 2")
    path = _variant(trained, "b7.npz", hyper={"batch_size": 7})
    assert_load_refused(path, "'hidden' holds 2 streams", "batch_size 7")
    path = _variant(trained, "h1.npz", hidden=np.zeros(H))   # (H,): one stream
    assert_load_refused(path, "'hidden' holds 1 stream,", "batch_size 2")


def test_hidden_size_must_match_the_parameters(trained):
    path = _variant(trained, "hs.npz", hyper={"hidden_size": H + 1})
    assert_load_refused(path, f"hidden_size {H + 1}", f"have {H}")


def test_optimizer_and_embedding_must_match_the_model(trained):
    """base.npz is the batched recipe's (2 streams): Adam, a 64-wide embedding.
    The hyperparameters must say so; a file whose moments say Adam and whose
    hyperparameters say Adagrad (or another width) is refused."""
    ck = _base(trained)
    assert (ck.model.optimizer, ck.model.embedding_size, ck.model.adam_steps) == ("adam", 64, 60)
    assert (ck.hyperparameters["optimizer"], ck.hyperparameters["embedding_size"]) == ("adam", 64)
    cases = [
        ({"optimizer": "adagrad"}, {}, ("optimizer adagrad", "adam")),
        ({"embedding_size": 0}, {}, ("embedding_size 0", "64")),
        ({"embedding_size": 32}, {}, ("embedding_size 32", "64")),
        ({"optimizer": "sgd"}, {}, ("'hyperparameters'", "optimizer", "sgd")),
        ({"embedding_size": -1}, {}, ("'hyperparameters'", "embedding_size")),
        ({"embedding_size": "64"}, {}, ()),   # read as the trainer reads it: loads
        # the moments gone: an Adagrad model, which the hyperparameters contradict
        ({"optimizer": "adagrad"}, {f"moment.{n}": None for n in ck.model.params}, ("adam",)),
    ]
    for i, (hyper, members, words) in enumerate(cases):
        path = _variant(trained, f"opt{i}.npz", hyper=hyper, **members)
        if not words:
            assert load_checkpoint(path).model.embedding_size == 64
            continue
        assert len(assert_load_refused(path, *words)) < 300


@pytest.mark.parametrize("key, value, words", [
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("batch_size", "two", "batch_size must be a positive integer"),
    ("batch_size", 2.5, "batch_size must be a positive integer"),
    ("hidden_size", [8], "hidden_size must be a positive integer"),
    ("seq_length", -1, "seq_length must be a positive integer"),
    ("val_fraction", 1.5, "val_fraction must be a number in [0, 1)"),
    ("val_fraction", "null", "val_fraction must be a number in [0, 1)"),
])
def test_settings_the_relations_use_must_be_valid(trained, key, value, words):
    path = _variant(trained, "bad_setting.npz", hyper={key: value})
    message = assert_load_refused(path, "'hyperparameters'", words)
    assert len(message) < 300


def test_settings_are_read_as_the_trainer_reads_them(trained):
    """charrnn-train reads a stored setting through its command-line check of
    the setting's text: "2" is batch size 2 there, so here too."""
    path = _variant(trained, "text_settings.npz", hyper={"batch_size": "2", "val_fraction": "0.1"})
    assert load_checkpoint(path).hidden.shape == (H, B)


# -- the data pass: position and data_size ----------------------------------------

def test_position_within_the_stream_part(trained):
    """A step at p reads targets up to p + T of each stream's part and leaves
    the position at p + T: at most part - 1."""
    part = _part(3000, VF, B)
    ok = _variant(trained, "pos_ok.npz", state={"position": part - 1})
    assert load_checkpoint(ok).position == part - 1
    path = _variant(trained, "pos_past.npz", state={"position": part})
    assert_load_refused(path, f"position {part} is past the end of the data pass",
                        f"at most {part - 1}", "data_size 3000", "0.1 val_fraction", "2 streams")


def test_position_bound_follows_val_fraction_and_streams(trained):
    """The part is the training text (less the held-out tail) cut into the
    streams: another val_fraction or stream count moves the bound."""
    part = _part(3000, 0.5, B)
    assert_load_refused(_variant(trained, "vf.npz", state={"position": part},
                                 hyper={"val_fraction": 0.5}), "past the end")
    assert load_checkpoint(_variant(trained, "vf_ok.npz", state={"position": part - 1},
                                    hyper={"val_fraction": 0.5})).position == part - 1
    part = _part(3000, VF, 3)
    assert_load_refused(_variant(trained, "b3.npz", state={"position": part},
                                 hidden=np.zeros((H, 3)), hyper={"batch_size": 3}),
                        "past the end", "3 streams")


def test_position_without_val_fraction_is_bounded_by_the_largest_part(trained):
    """With no val_fraction recorded (files made through the API), the
    bound is the part with nothing held out."""
    part = 3000 // B
    assert load_checkpoint(_variant(trained, "novf_ok.npz", state={"position": part - 1},
                                    hyper={"val_fraction": None})).position == part - 1
    assert_load_refused(_variant(trained, "novf.npz", state={"position": part},
                                 hyper={"val_fraction": None}), "past the end", "no val_fraction")


def test_position_is_unchecked_when_the_text_is_unknown(trained):
    """data_size 0: a file that does not record its text (older ones)."""
    path = _variant(trained, "nosize.npz", state={"data_size": 0, "data_crc32": 0,
                                                  "position": 10**6})
    assert load_checkpoint(path).position == 10**6


def test_data_size_must_leave_each_stream_a_chunk(trained):
    """charrnn-train refuses a text whose parts are shorter than
    seq_length + 1; no file it writes records one."""
    # 37 characters less 3 held out: 2 parts of 17 = T + 1; 36 less 3: parts of 16
    assert load_checkpoint(_variant(trained, "small_ok.npz",
                                    state={"data_size": 37, "position": 0})).data_size == 37
    path = _variant(trained, "small.npz", state={"data_size": 36, "position": 0})
    assert_load_refused(path, "data_size 36", "parts of 16 characters", "seq_length + 1 = 17")


def test_crc_without_data_size_is_refused(trained):
    assert_load_refused(_variant(trained, "crc.npz", state={"data_size": 0}), "data_crc32",
                        "data_size")
    assert_load_refused(_variant(trained, "crc_big.npz", state={"data_crc32": 2**32}), "data_crc32")


# -- the run's counters: best score, interval, history ------------------------------

@pytest.mark.parametrize("state", [{"best_val_bpc": "null"}, {"best_iteration": "null"},
                                   {"best_val_bpc": None}])
def test_best_score_and_its_iteration_go_together(trained, state):
    assert_load_refused(_variant(trained, "best.npz", state=state),
                        "best_val_bpc and best_iteration")


def test_no_best_at_all_loads(trained):
    path = _variant(trained, "nobest.npz", state={"best_val_bpc": "null", "best_iteration": "null"})
    assert load_checkpoint(path).best_iteration is None


def test_interval_loss_without_steps_is_refused(trained):
    path = _variant(trained, "interval.npz", state={"interval_steps": 0, "interval_loss": 5.0})
    assert_load_refused(path, "interval_loss 5.0", "interval_steps 0")
    path = _variant(trained, "interval_ok.npz", state={"interval_steps": 0, "interval_loss": 0.0})
    assert load_checkpoint(path).interval_steps == 0


def test_interval_cannot_reach_before_the_last_history_point(trained):
    ck = _base(trained)
    last = int(ck.history["iteration"][-1])
    path = _variant(trained, "interval_long.npz", state={"interval_steps": 60 - last + 1})
    assert_load_refused(path, f"interval_steps {60 - last + 1}", f"iteration {last}")


@pytest.mark.parametrize("points", [
    [1, 11, 11, 31],          # two points at one iteration
    [1, 21, 11, 31],          # out of order
    [-1, 11, 21, 31],         # negative
    [1, 11, 21, 61],          # after the iteration reached
])
def test_history_points_increase_up_to_the_iteration(trained, points):
    n = len(points)
    path = _variant(trained, "points.npz", state={"interval_steps": 0, "interval_loss": 0.0},
                    **{"history.iteration": np.array(points, dtype=np.int64),
                       "history.smooth_loss": np.ones(n), "history.interval_bpc": np.ones(n)})
    assert_load_refused(path, "'history.iteration' must increase within [0, 60]")


def test_at_most_one_history_point_per_step(trained):
    """A point closes an interval of at least one step: at iteration 0 there
    is none (version 1 recorded one at the step's own number, 0)."""
    path = _variant(trained, "zero.npz", state={
        "iteration": 0, "position": 0, "interval_steps": 0, "interval_loss": 0.0,
        "best_val_bpc": "null", "best_iteration": "null"},
        **{"history.iteration": np.array([0]), "history.smooth_loss": np.ones(1),
           "history.interval_bpc": np.ones(1), "history.val_iteration": np.zeros(0, np.int64),
           "history.val_bpc": np.zeros(0), "history.train_bpc": np.zeros(0)})
    assert_load_refused(path, "at most one point per step")


@pytest.mark.parametrize("evals", [[0, 40, 20, 60], [0, 20, 40, 61], [-5, 20, 40, 60]])
def test_evaluations_in_order_up_to_the_iteration(trained, evals):
    path = _variant(trained, "evals.npz",
                    **{"history.val_iteration": np.array(evals, dtype=np.int64)})
    assert_load_refused(path, "'history.val_iteration' must not decrease, within [0, 60]")


def test_negative_smoothed_loss_is_refused(trained):
    assert_load_refused(_variant(trained, "smooth.npz", smooth_loss=np.array(-1.0)),
                        "smoothed loss", "non-negative")


# -- what the tools write always loads -----------------------------------------------

def _version_1(trained, name) -> str:
    """base.npz as version 1 wrote a one-stream run: hidden (H,), no
    batch_size, no best score or interval sums, no interval/train curves,
    points at the step's own number (the iteration before it)."""
    arrays = _arrays(trained / "base.npz")
    state, hyper = _json(arrays, "state"), _json(arrays, "hyperparameters")
    for key in ("best_val_bpc", "best_iteration", "interval_loss", "interval_steps"):
        del state[key]
    del hyper["batch_size"]
    state["position"] = min(state["position"], _part(3000, VF, 1) - 2)
    arrays.update(version=np.array(1, dtype=np.int64), hidden=arrays["hidden"][:, 0].copy(),
                  state=np.array(json.dumps(state)), hyperparameters=np.array(json.dumps(hyper)))
    arrays["history.iteration"] = np.array([0, 10, 20, 30, 40, 50])
    arrays["history.val_iteration"] = np.array([19, 39, 59])
    arrays["history.smooth_loss"] = np.ones(6)
    arrays["history.val_bpc"] = np.ones(3)
    for key in ("history.interval_bpc", "history.train_bpc"):
        del arrays[key]
    path = trained / name
    np.savez(path, **arrays)
    return path


def test_a_version_1_file_loads_and_resumes(trained):
    path = _version_1(trained, "v1.npz")
    ck = load_checkpoint(path)
    assert ck.version == 1 and ck.hidden.shape == (H, 1) and ck.best_iteration is None
    code, _, err = run_cli("train", "input.txt", "--resume", "v1.npz",
                           "--checkpoint", "v1_more.npz", "--iters", 75, "--checkpoint-every", 5, "--sample-every", 10,
                           "--eval-every", 10, "--sample-length", 5, cwd=trained)
    assert code == 0, err
    more = load_checkpoint(trained / "v1_more.npz")
    assert more.version == FORMAT_VERSION and more.iteration == 75
    assert list(more.history["iteration"][:6]) == [0, 10, 20, 30, 40, 50]  # v1's, kept


@pytest.mark.parametrize("extra", [
    ["--val-fraction", "0"], ["--val-fraction", "0.5"], ["--seq-length", "3"],
    ["--seq-length", "40"]])
def test_runs_resumed_with_other_settings_save_files_that_load(trained, tmp_path, extra):
    """--val-fraction and --seq-length may change on --resume (the
    hyperparameters then record the new values); every save validates."""
    (tmp_path / "input.txt").write_bytes((trained / "input.txt").read_bytes())
    (tmp_path / "r.npz").write_bytes((trained / "base.npz").read_bytes())
    code, _, err = run_cli("train", "input.txt", "--resume", "r.npz", "--iters", 140,
                           "--checkpoint-every", 3, "--eval-every", 7, "--sample-every", 50,
                           "--sample-length", 5, *extra, cwd=tmp_path)
    assert code == 0, err
    assert load_checkpoint(tmp_path / "r.npz").iteration == 140


@pytest.mark.parametrize("N, val_fraction, streams, T", [
    (60, 0.0, 1, 58), (60, 0.0, 5, 11), (60, 0.3, 5, 7), (200, 0.05, 3, 7), (97, 0.1, 2, 1),
    (500, 0.0, 1, 25), (41, 0.5, 1, 19)])
def test_every_position_the_data_pass_reaches_loads(tmp_path, N, val_fraction, streams, T):
    """model.train's positions, step after step, through its wraps (including
    a part of exactly seq_length + 1, where each step starts at 0 and leaves
    the position at part - 1), saved with the text they were reached on."""
    text = english_like_text(N, seed=N)
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    n_train = N - held_out(N, val_fraction)
    part = stream_part(n_train, streams)
    assert part >= T + 1
    model = CharRNN(len(vocab), 4, seed=0)
    hidden, position, seen = np.zeros((4, streams)), 0, set()
    for step in range(1, 3 * (part // T + 2)):
        _, hidden, position = model.train(ids[:n_train], 1, T, hidden, position, 0.01,
                                          streams=streams)
        hidden = np.asarray(hidden).reshape(4, streams)
        seen.add(position)
        ck = Checkpoint(model=model, vocab=vocab, iteration=step, position=position,
                        hidden=hidden, data_size=N, data_crc32=1,
                        hyperparameters={"hidden_size": 4, "batch_size": streams,
                                         "seq_length": T, "val_fraction": val_fraction})
        ck.save(tmp_path / "p.npz")
        assert load_checkpoint(tmp_path / "p.npz").position == position
    assert max(seen) <= part - 1


# -- the command-line tools: exit status 2, one line, no traceback ----------------------

@pytest.mark.parametrize("name, kwargs, words", [
    ("cli_h7.npz", {"hidden": np.zeros((H, 7))}, ("holds 7 streams",)),
    ("cli_pos.npz", {"state": {"position": 10**6}}, ("position 1000000",)),
    ("cli_hist.npz", {"history.val_iteration": np.array([0, 40, 20, 60])}, ("val_iteration",)),
    ("cli_best.npz", {"state": {"best_iteration": "null"}}, ("best_val_bpc",)),
])
def test_cli_refuses_an_inconsistent_checkpoint(trained, name, kwargs, words):
    _variant(trained, name, **kwargs)
    for result in (run_cli("train", "input.txt", "--resume", name, "--iters", 100, cwd=trained),
                   run_cli("sample", name, "--length", 10, cwd=trained)):
        assert_cli_refusal(result, name, *words)


# -- the settings the model fixes, every stored setting, the vocabulary (issue 28) ----

def _saved(tmp_path, name, **model) -> str:
    """A small model of CHARS saved at tmp_path / name, its hyperparameters
    saying what its arrays are (as charrnn-train writes them)."""
    vocab = Vocab.from_text(CHARS)
    m = CharRNN(len(vocab), 6, 3, **model)
    hyper = {"hidden_size": 6, "cell": m.cell, "num_layers": m.num_layers,
             "dtype": m.dtype.name, "embedding_size": m.embedding_size, "dropout": m.dropout,
             "learning_rate": 0.01, "init": "pytorch", "seq_length": 8}
    path = tmp_path / name
    Checkpoint(model=m, vocab=vocab, hyperparameters=hyper).save(path)
    return path


CHARS = "hello world, the quick brown fox"


@pytest.mark.parametrize("model", [dict(cell="lstm", num_layers=2, dtype="float32"),
                                   dict(cell="gru", embedding_size=4), dict()])
@pytest.mark.parametrize("hyper, words", [
    ({"cell": "gru"}, ("cell gru", "have")), ({"cell": "lstm"}, ("cell lstm", "have")),
    ({"cell": "bogus"}, ("'hyperparameters' cell", "rnn|lstm|gru", "'bogus'")),
    ({"num_layers": 3}, ("num_layers 3", "have")),
    ({"num_layers": 1e12}, ("num_layers must be an integer in [1, 16]",)),
    ({"num_layers": 10**12}, ("num_layers", "1000000000000")),
    ({"dtype": "float64"}, ("dtype float64",)), ({"dtype": "float32"}, ("dtype float32",)),
    ({"hidden_size": 7}, ("hidden_size 7", "have 6")),
])
def test_settings_must_say_what_the_arrays_are(tmp_path, model, hyper, words):
    """A file whose settings contradict its arrays (a 2-layer LSTM said to be a
    GRU, or of 3 layers) is refused at load, naming the field; the arrays no
    longer win silently."""
    path = _saved(tmp_path, "m.npz", **model)
    ck = load_checkpoint(path)
    (key, value), = hyper.items()
    if ck.hyperparameters[key] == value:   # not a contradiction for this model
        return
    rewrite_archive(path, edit_hyper=hyper)
    assert len(assert_load_refused(path, *words)) < 300


@pytest.mark.parametrize("key, value", [
    ("learning_rate", "abc"), ("learning_rate", -1), ("init", "xavier"), ("recipe", "fast"),
    ("dropout", 2), ("dropout", "x"), ("seed", -1), ("temperature", "null"), ("lr_decay", 0),
    ("iters", 0), ("optimizer", "sgd"), ("sample_length", 10**9),
])
def test_every_stored_setting_is_checked(tmp_path, key, value):
    """Each setting the file stores is read as charrnn-train reads it on
    --resume; a bad one is refused at load (sample, export, inspect too), naming it."""
    path = _saved(tmp_path, "m.npz")
    rewrite_archive(path, edit_hyper={key: value})
    assert_load_refused(path, f"'hyperparameters' {key} ")
    rewrite_archive(path, edit_hyper={key: None, "not_a_setting": [1]})   # unknown: left alone
    assert "not_a_setting" in load_checkpoint(path).hyperparameters


def test_a_lone_surrogate_in_the_vocabulary_is_refused(tmp_path):
    path = _saved(tmp_path, "m.npz", cell="gru")
    codes = np.frombuffer(CHARS.encode("utf-32-le"), "<u4")
    vocab = np.unique(codes)
    vocab[-1] = 0xD800                     # sorted, distinct, the model's size: only this is wrong
    rewrite_archive(path, vocab=np.sort(vocab).astype(np.uint32))
    assert_load_refused(path, "'vocab'", "U+D800", "surrogate")
    for tool, args in (("sample", ("m.npz", "--length", 5)),
                       ("export", ("m.npz", "m.safetensors"))):
        assert_cli_refusal(run_cli(tool, *args, cwd=tmp_path), "'vocab'", "U+D800")
    # nor is one trained on: no checkpoint could hold it
    from charrnn_ext.run import training
    with pytest.raises(training.TextError, match="U\\+DCFF, a lone surrogate"):
        training.run(b"caf\xff ".decode("utf-8", "surrogateescape") * 20,
                     {"hidden_size": 4, "seq_length": 4, "iters": 1})
