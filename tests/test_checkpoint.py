"""Checkpoints written and read back: exact round trips (the model, the
state, the random generator of any kind), a checkpoint's one-line repr; saves
that are atomic, keep their exact name and clear a dead writer's temporary
file (never a live one's); save writes only what load accepts.

Files from a stranger: test_checkpoint_files (the archive) and
test_checkpoint_contents (its members' values); fields against each other:
test_checkpoint_consistency.
"""
import json
import os
import subprocess
import sys
import textwrap
import threading
import zipfile

import numpy as np
import pytest

import charrnn_ext
from charrnn_ext import CharRNN, Checkpoint, Vocab, load_checkpoint
from charrnn_ext.ckpt import _ckptfile
from charrnn_ext.ckpt import checkpoint as ckmod
from charrnn_ext.ckpt.checkpoint import FORMAT_NAME, FORMAT_VERSION
from charrnn_ext.core.spec import PARAM_NAMES, param_names

from conftest import ADAM_EMBED, CHECKPOINT_TEXT, new_checkpoint, trained_checkpoint

BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def test_round_trip_is_exact(saved_trained):
    ckpt, path = saved_trained
    back = charrnn_ext.load_checkpoint(path)  # the package-level export
    assert isinstance(back.model, CharRNN) and isinstance(back.vocab, Vocab)
    assert back.vocab == ckpt.vocab and back.vocab.chars == ckpt.vocab.chars
    for name in PARAM_NAMES:
        assert np.array_equal(back.model.params[name], ckpt.model.params[name])
        assert np.array_equal(back.model.memory[name], ckpt.model.memory[name])
        assert back.model.params[name].dtype == np.float64
    assert np.array_equal(back.hidden, ckpt.hidden) and back.hidden.shape == (8, 1)
    assert back.smooth_loss == ckpt.smooth_loss  # bit-exact float
    assert (back.iteration, back.position) == (5, 35)
    assert (back.data_size, back.data_crc32, back.core) == \
        (len(CHECKPOINT_TEXT), 123456789, "baseline")
    assert back.hyperparameters == ckpt.hyperparameters
    assert back.version == FORMAT_VERSION
    for key in ckpt.history:
        assert np.array_equal(back.history[key], ckpt.history[key])
    # the restored RNG continues the saved stream exactly
    assert back.rng.bit_generator.state == ckpt.rng.bit_generator.state
    assert np.array_equal(back.rng.random(10), ckpt.rng.random(10))


def test_restored_model_trains_identically(saved_trained):
    """Training on from the loaded checkpoint matches training on from the
    in-memory state bit for bit (params, memory and hidden state)."""
    ckpt, path = saved_trained
    back = load_checkpoint(path)
    ids = ckpt.vocab.encode(CHECKPOINT_TEXT)
    h1, h2 = ckpt.hidden, back.hidden
    for k in range(5, 10):
        x, y = ids[k * 7:k * 7 + 7], ids[k * 7 + 1:k * 7 + 8]
        l1, h1 = ckpt.model.train_step(x, y, h1, 0.1)
        l2, h2 = back.model.train_step(x, y, h2, 0.1)
        assert l1 == l2
    assert np.array_equal(h1, h2)
    for name in PARAM_NAMES:
        assert np.array_equal(ckpt.model.params[name], back.model.params[name])
        assert np.array_equal(ckpt.model.memory[name], back.model.memory[name])


def test_adam_with_an_embedding_round_trips_exactly(saved_adam):
    """The batched recipe's kind of model (Adam, an input embedding): params
    with embed, Adam's second moment (memory) and first moment, its step
    count, all back bit for bit; the file's members name them."""
    ckpt, path = saved_adam
    back = load_checkpoint(path)
    model, theirs = back.model, ckpt.model
    assert (model.optimizer, model.embedding_size, model.hidden_size, model.vocab_size) == \
        ("adam", 5, 8, len(ckpt.vocab))
    assert model.adam_steps == theirs.adam_steps == 5
    names = set(param_names(5))
    assert set(model.params) == set(model.memory) == set(model.moment) == names
    assert model.params["embed"].shape == (len(ckpt.vocab), 5)
    assert model.params["Wxh"].shape == (8, 5)
    for kind in ("params", "memory", "moment"):
        for name in names:
            a, b = getattr(model, kind)[name], getattr(theirs, kind)[name]
            assert np.array_equal(a, b) and a.dtype == np.float64, (kind, name)
            assert np.any(b != 0), (kind, name)   # trained: a lost array would show
    assert back.hyperparameters == ckpt.hyperparameters
    assert np.array_equal(back.hidden, ckpt.hidden) and back.version == FORMAT_VERSION
    with np.load(path) as npz:
        assert {f"{k}.{n}" for k in ("params", "memory", "moment") for n in names} <= \
            set(npz.files)
        assert json.loads(str(npz["state"]))["adam_steps"] == 5
    # and written again: the same file contents
    back.save(path.with_name("again.npz"))
    again = load_checkpoint(path.with_name("again.npz"))
    assert again.model.adam_steps == 5
    assert all(np.array_equal(again.model.moment[n], theirs.moment[n]) for n in names)


def test_restored_adam_model_trains_identically(saved_adam):
    """Adam's next steps from the loaded checkpoint (its bias correction at
    step 6, not 1) equal those from the in-memory state, bit for bit."""
    ckpt, path = saved_adam
    back = load_checkpoint(path)
    ids = ckpt.vocab.encode(CHECKPOINT_TEXT)
    h1, h2 = ckpt.hidden, back.hidden
    for k in range(5, 10):
        x, y = ids[k * 7:k * 7 + 7], ids[k * 7 + 1:k * 7 + 8]
        l1, h1 = ckpt.model.train_step(x, y, h1, 0.01)
        l2, h2 = back.model.train_step(x, y, h2, 0.01)
        assert l1 == l2
    assert np.array_equal(h1, h2) and back.model.adam_steps == ckpt.model.adam_steps == 10
    for kind in ("params", "memory", "moment"):
        for name in param_names(5):
            assert np.array_equal(getattr(ckpt.model, kind)[name],
                                  getattr(back.model, kind)[name]), (kind, name)
    # a model that forgot its step count would step differently
    fresh = trained_checkpoint(**ADAM_EMBED)
    lost = CharRNN.from_params(dict(fresh.model.params), dict(fresh.model.memory),
                               optimizer="adam", moment=dict(fresh.model.moment), adam_steps=0)
    x, y = ids[35:42], ids[36:43]
    fresh.model.train_step(x, y, fresh.hidden, 0.01)
    lost.train_step(x, y, fresh.hidden, 0.01)
    assert not np.array_equal(fresh.model.params["Why"], lost.params["Why"])


def test_file_is_plain_data(saved_trained):
    """Every member is a numeric or string array, readable without pickle."""
    _, path = saved_trained
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["format"]) == FORMAT_NAME
        for key in npz.files:
            assert npz[key].dtype.kind in "iufU", key
        assert npz["vocab"].dtype == np.uint32
        json.loads(str(npz["rng_state"]))
        json.loads(str(npz["hyperparameters"]))


@pytest.mark.parametrize("name", BIT_GENERATORS)
def test_every_bit_generator_round_trips_exactly(tmp_path, name):
    """Saved mid-stream (a buffered 32-bit half, a part-used Philox buffer),
    the loaded Generator draws exactly what the original draws next."""
    rng = np.random.Generator(getattr(np.random, name)(7))
    rng.random(4)
    rng.integers(0, 2**32, dtype=np.uint32)
    state = rng.bit_generator.state
    if name != "MT19937":
        assert state["has_uint32"] == 1
    if name == "Philox":
        assert 0 < state["buffer_pos"] < 4
    path = tmp_path / "rng.npz"
    new_checkpoint(rng=rng).save(path)   # failed: "ndarray is not JSON serializable"
    back = load_checkpoint(path).rng
    assert type(back.bit_generator).__name__ == name
    for draw in (lambda r: r.integers(0, 2**32, 9, dtype=np.uint32), lambda r: r.random(9),
                 lambda r: r.integers(0, 2**64, 9, dtype=np.uint64)):
        assert np.array_equal(draw(back), draw(rng))


def test_checkpoint_prints_in_one_line(long_run):
    text = repr(load_checkpoint(long_run[0] / "words.npz"))
    assert "\n" not in text and len(text) < 250 and "iteration 4000" in text
    assert str(load_checkpoint(long_run[0] / "words.npz")) == text


# ---------------------------------------------------------------------------
# saving: atomic, under the exact name
# ---------------------------------------------------------------------------

def test_save_is_atomic(saved_trained, monkeypatch):
    """A save that fails half-way (here: an error while writing the arrays)
    leaves the previous checkpoint byte-identical and no temporary file."""
    ckpt, path = saved_trained
    before = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 partial garbage")
        raise KeyboardInterrupt  # e.g. a second Ctrl-C during the save

    monkeypatch.setattr(ckmod.np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["model.npz"]


def test_save_replaces_and_keeps_name(tmp_path):
    """np.savez would append .npz to a path; the checkpoint keeps the exact name."""
    path = tmp_path / "model.ckpt"
    trained_checkpoint(steps=2).save(path)
    trained_checkpoint(steps=4).save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    assert load_checkpoint(path).iteration == 4


# ---------------------------------------------------------------------------
# temporary files: a writer killed mid-save leaves one; the next save removes it
# ---------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from charrnn_ext import CharRNN, Vocab
    from charrnn_ext.ckpt import checkpoint as ckmod
    vocab = Vocab.from_text("hello world")
    ckpt = ckmod.Checkpoint(CharRNN(len(vocab), 4, seed=0), vocab, iteration=7)

    def stalled_savez(f, **arrays):  # half the archive, then wait for the parent
        f.write(b"PK\x03\x04 half an archive")
        f.flush()
        print("writing", flush=True)
        sys.stdin.readline()
        f.seek(0)
        f.truncate()
        real_savez(f, **arrays)

    real_savez, ckmod.np.savez = ckmod.np.savez, stalled_savez
    ckpt.save(sys.argv[1])
    print("saved", flush=True)
""")


def _stalled_writer(path):
    """A process stopped in the middle of saving a checkpoint to ``path``
    (it finishes when a line is written to its stdin)."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    return proc


def _temps(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def test_temp_file_of_a_writer_killed_mid_save_is_removed_by_the_next_save(saved_trained):
    ckpt, path = saved_trained
    before = path.read_bytes()
    proc = _stalled_writer(path)
    proc.kill()  # SIGKILL: no handler, no finally
    proc.wait()
    (tmp,) = _temps(path.parent)
    assert tmp.startswith(".model.npz.") and path.read_bytes() == before
    ckpt.save(path)
    assert sorted(os.listdir(path.parent)) == ["model.npz"]
    assert load_checkpoint(path).iteration == ckpt.iteration


def test_temp_file_of_a_live_writer_is_kept(saved_trained):
    """Another process writing the same file (no run lock between API
    callers) keeps its temporary file through our save, and finishes."""
    ckpt, path = saved_trained
    proc = _stalled_writer(path)
    try:
        (tmp,) = _temps(path.parent)
        ckpt.save(path)
        assert _temps(path.parent) == [tmp]
        out, _ = proc.communicate("go\n", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == "saved\n"
    assert sorted(os.listdir(path.parent)) == ["model.npz"]
    assert load_checkpoint(path).iteration == 7  # the other process's save landed


def test_temp_file_of_a_live_thread_is_kept(saved_trained, monkeypatch):
    ckpt, path = saved_trained
    writing, go = threading.Event(), threading.Event()
    real_savez = np.savez

    def stalled_savez(f, **arrays):
        if threading.current_thread() is not threading.main_thread():
            writing.set()
            go.wait(60)
        real_savez(f, **arrays)

    monkeypatch.setattr(ckmod.np, "savez", stalled_savez)
    other = trained_checkpoint(steps=2)
    thread = threading.Thread(target=other.save, args=(path,))
    thread.start()
    assert writing.wait(60)
    (tmp,) = _temps(path.parent)
    ckpt.save(path)
    assert _temps(path.parent) == [tmp]
    go.set()
    thread.join(60)
    assert sorted(os.listdir(path.parent)) == ["model.npz"]
    assert load_checkpoint(path).iteration == 2


def test_only_dead_temp_files_of_the_same_file_are_removed(saved_trained):
    """An unlocked temporary file named as a save of this file names is a
    dead writer's; the probes of charrnn-train and the files of
    charrnn-sweep (tempfile.mkstemp names, never locked) and other files'
    temporary files are not touched."""
    ckpt, path = saved_trained
    d = path.parent
    dead = [".model.npz.-abc_123.tmp", ".model.npz.-zzzzzzz.tmp"]
    kept = [".model.npz.abcdefgh.tmp",     # a probe / charrnn-sweep (mkstemp)
            ".model.npz.-abcdefgh.tmp",    # not our length
            ".model.npz.-ABCDEFG.tmp",     # not our alphabet
            ".other.npz.-abcdefg.tmp",     # another file's
            ".model.npz.best.npz.-abcdefg.tmp",
            "model.npz.-abcdefg.tmp", ".model.npz.-abcdefg.tmp.x"]
    for name in dead + kept:
        (d / name).write_bytes(b"partial")
    (d / ".model.npz.-dir_abc.tmp").mkdir()  # not a regular file: left
    ckpt.save(path)
    assert sorted(os.listdir(d)) == sorted(kept + ["model.npz", ".model.npz.-dir_abc.tmp"])


def test_temp_name_is_as_long_as_the_trainers_probe(tmp_path, monkeypatch):
    """charrnn-train checks up front that the directory takes a temporary
    name as long as a save's (tempfile.mkstemp's, as its probe makes)."""
    import tempfile
    names = []
    real_savez = np.savez

    def recording_savez(f, **arrays):
        names.extend(_temps(tmp_path))
        real_savez(f, **arrays)

    monkeypatch.setattr(ckmod.np, "savez", recording_savez)
    base = "x" * 200 + ".npz"
    trained_checkpoint().save(tmp_path / base)
    fd, probe = tempfile.mkstemp(prefix="." + base + ".", suffix=".tmp", dir=tmp_path)
    os.close(fd)
    os.unlink(probe)
    (name,) = names
    assert len(name) == len(os.path.basename(probe))
    assert _ckptfile.temp_name_pattern(base).match(name)
    assert not _ckptfile.temp_name_pattern(base).match(os.path.basename(probe))


def test_probe_writes_as_a_save_would_and_leaves_nothing(tmp_path):
    """_ckptfile.probe: a save's own temporary name and lock, removed; the
    directory's refusals (a name too long, no directory) are OSError."""
    _ckptfile.probe(str(tmp_path / "model.npz"))
    assert os.listdir(tmp_path) == []
    with pytest.raises(OSError):
        _ckptfile.probe(str(tmp_path / ("x" * 245 + ".npz")))  # fits alone, not with ".-XXXXXXX.tmp"
    with pytest.raises(OSError):
        _ckptfile.probe(str(tmp_path / "missing" / "model.npz"))
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# save writes only what load accepts (the loader's own checks run first)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("fields, words", [
    (dict(smooth_loss=float("nan")), "smoothed loss"),
    (dict(hidden=np.full((8, 1), np.inf)), "hidden"),
    (dict(iteration=-1), "iteration"),
    (dict(hyperparameters={"a": json.loads("[" * 40 + "]" * 40)}), "nests JSON"),
    (dict(hyperparameters={"a": "x" * 300_000}), "'hyperparameters' takes"),
])
def test_save_refuses_what_load_would_refuse(tmp_path, fields, words):
    path = tmp_path / "model.npz"
    new_checkpoint().save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="would not load") as info:
        new_checkpoint(**fields).save(path)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_default_checkpoint_saves_and_loads(tmp_path):
    """Checkpoint(model, vocab) with its defaults is written only if it loads."""
    vocab = Vocab.from_text(CHECKPOINT_TEXT)
    ckpt = Checkpoint(CharRNN(len(vocab), 4, seed=0), vocab)
    try:
        ckpt.save(tmp_path / "d.npz")
    except ValueError as exc:  # a default the loader rejects: refused, nothing written
        assert "would not load" in str(exc)
        assert not (tmp_path / "d.npz").exists()
    else:
        assert load_checkpoint(tmp_path / "d.npz").iteration == 0


def test_save_refuses_a_non_generator_rng(tmp_path):
    with pytest.raises(TypeError, match="numpy Generator"):
        new_checkpoint(rng=np.random.RandomState(0)).save(tmp_path / "r.npz")
    assert not os.listdir(tmp_path)


def test_every_member_written_is_in_the_format(tmp_path):
    """_member_limits lists every member save writes (the loader's one list)."""
    path = tmp_path / "full.npz"
    new_checkpoint().save(path)
    with zipfile.ZipFile(path) as z:
        names = {i.filename[:-4] for i in z.infolist()}
    assert names <= set(ckmod._member_limits())
    assert {f"params.{n}" for n in PARAM_NAMES} | {f"memory.{n}" for n in PARAM_NAMES} <= names
    assert load_checkpoint(path).iteration == 0
    path = tmp_path / "adam.npz"
    trained_checkpoint(**ADAM_EMBED).save(path)
    with zipfile.ZipFile(path) as z:
        names = {i.filename[:-4] for i in z.infolist()}
    assert names <= set(ckmod._member_limits())
    assert {"params.embed", "memory.embed", "moment.embed", "moment.Wxh"} <= names


# -- pickling: models and checkpoints as data (joblib, multiprocessing) ------------

PICKLE_TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def _trained_on_elsewhere(model):
    """(In another process) ``model`` after 6 more steps on PICKLE_TEXT."""
    ids = Vocab.from_text(PICKLE_TEXT).encode(PICKLE_TEXT)
    model.train(ids, 6, 8, streams=2)
    return model


def _pickled_run(cell, L, dtype):
    from charrnn_ext.run import training
    return training.run(PICKLE_TEXT, dict(iters=12, hidden_size=8, seq_length=8, batch_size=2,
                                          cell=cell, num_layers=L, dropout=0.25 * (L > 1),
                                          dtype=dtype, embedding_size=4, eval_every=6)).run


@pytest.mark.parametrize("cell, L", [("rnn", 1), ("rnn", 2), ("lstm", 1), ("lstm", 2),
                                     ("gru", 2)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_models_and_checkpoints_pickle_and_are_equal_after_the_round_trip(cell, L, dtype,
                                                                          tmp_path):
    """pickle (every protocol from 2) and a file give back an equal model and
    checkpoint (every array bit for bit, Adam's steps, dropout's Generator),
    which trains on as the original does; equality is of contents: a model
    that trained more steps is no longer equal."""
    import pickle
    run = _pickled_run(cell, L, dtype)
    assert run.model.adam_steps == 12 and run.history["val_iteration"].size == 3
    assert type(run.model).__name__ == "CharRNN" and run.model.minchar == ((cell, L) == ("rnn", 1))
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(run, protocol))
        assert back == run and back.model == run.model and back.model is not run.model
        assert back.rng.bit_generator.state == run.rng.bit_generator.state
    run.save(tmp_path / "m.npz")
    assert load_checkpoint(tmp_path / "m.npz") == run
    copy = pickle.loads(pickle.dumps(run.model))
    trained = _trained_on_elsewhere(pickle.loads(pickle.dumps(copy)))
    assert _trained_on_elsewhere(run.model) == trained != copy
    assert back != run and back.model != run.model
    for change in ("memory", "moment", "rng"):   # every part of a model counts
        other = pickle.loads(pickle.dumps(copy))
        if change == "rng":
            if L == 1:
                continue
            other._rng.random()
        else:
            next(iter(getattr(other, change).values()))[...] += 1
        assert other != copy, change


def test_a_model_trained_in_another_process_comes_back_as_it_trained_there():
    """multiprocessing (and joblib) send models to workers pickled: one
    trained in a spawned process equals the same training here."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    models = [_pickled_run("rnn", 1, "float64").model, _pickled_run("lstm", 2, "float32").model]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        there = list(pool.map(_trained_on_elsewhere, models))
    assert [_trained_on_elsewhere(m) for m in models] == there
