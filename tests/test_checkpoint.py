"""Checkpoints: exact round trips, atomic writes, and one clear ValueError for
every damaged, truncated or foreign file (never code execution: no pickle)."""
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
from charrnn_ext import CharRNN, Vocab, load_checkpoint
from charrnn_ext import _ckptfile
from charrnn_ext import checkpoint as ckmod
from charrnn_ext.checkpoint import FORMAT_NAME, FORMAT_VERSION, Checkpoint
from charrnn_ext.spec import PARAM_NAMES

TEXT = "hello world, 你好世界! the quick brown fox. " * 20
V = len(Vocab.from_text(TEXT))


def _trained(steps=5, hidden=8, seed=3):
    """A checkpoint of a model after a few real training steps."""
    vocab = Vocab.from_text(TEXT)
    ids = vocab.encode(TEXT)
    model = CharRNN(len(vocab), hidden, seed=seed)
    rng = np.random.default_rng(seed)
    h = np.zeros((hidden, 1))
    for k in range(steps):
        x, y = ids[k * 7:k * 7 + 7], ids[k * 7 + 1:k * 7 + 8]
        model.sample(h, int(x[0]), 5, rng=rng)  # advance the RNG like training does
        _, h = model.train_step(x, y, h, 0.1)
    return Checkpoint(
        model=model, vocab=vocab, iteration=steps, position=steps * 7, hidden=h,
        smooth_loss=12.345678901234567, rng=rng,
        hyperparameters={"seq_length": 7, "learning_rate": 0.1, "hidden_size": hidden},
        history={"iteration": np.array([0, 2]), "smooth_loss": np.array([30.0, 29.5]),
                 "val_iteration": np.array([2]), "val_bpc": np.array([4.25])},
        data_size=len(TEXT), data_crc32=123456789, core="baseline",
    )


@pytest.fixture
def saved(tmp_path):
    ckpt = _trained()
    path = tmp_path / "model.npz"
    ckpt.save(path)
    return ckpt, path


def test_round_trip_is_exact(saved):
    ckpt, path = saved
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
    assert (back.data_size, back.data_crc32, back.core) == (len(TEXT), 123456789, "baseline")
    assert back.hyperparameters == ckpt.hyperparameters
    assert back.version == FORMAT_VERSION
    for key in ckpt.history:
        assert np.array_equal(back.history[key], ckpt.history[key])
    # the restored RNG continues the saved stream exactly
    assert back.rng.bit_generator.state == ckpt.rng.bit_generator.state
    assert np.array_equal(back.rng.random(10), ckpt.rng.random(10))


def test_restored_model_trains_identically(saved):
    """Training on from the loaded checkpoint matches training on from the
    in-memory state bit for bit (params, memory and hidden state)."""
    ckpt, path = saved
    back = load_checkpoint(path)
    ids = ckpt.vocab.encode(TEXT)
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


def test_file_is_plain_data(saved):
    """Every member is a numeric or string array, readable without pickle."""
    _, path = saved
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["format"]) == FORMAT_NAME
        for key in npz.files:
            assert npz[key].dtype.kind in "iufU", key
        assert npz["vocab"].dtype == np.uint32
        json.loads(str(npz["rng_state"]))
        json.loads(str(npz["hyperparameters"]))


def test_pickled_payload_is_refused_not_run(tmp_path):
    """An archive smuggling a pickled object is rejected, and the object's
    __reduce__ never runs."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    ckpt = _trained()
    arrays = ckmod._arrays(ckpt)
    arrays["vocab"] = np.array([Evil()], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="evil.npz"):
        load_checkpoint(path)
    assert not marker.exists()


def test_save_is_atomic(saved, monkeypatch):
    """A save that fails half-way (here: an error while writing the arrays)
    leaves the previous checkpoint byte-identical and no temporary file."""
    ckpt, path = saved
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
    _trained(steps=2).save(path)
    _trained(steps=4).save(path)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]
    assert load_checkpoint(path).iteration == 4


# -- temporary files: a writer killed mid-save leaves one; the next save removes it

_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from charrnn_ext import CharRNN, Vocab
    from charrnn_ext import checkpoint as ckmod
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


def test_temp_file_of_a_writer_killed_mid_save_is_removed_by_the_next_save(saved):
    ckpt, path = saved
    before = path.read_bytes()
    proc = _stalled_writer(path)
    proc.kill()  # SIGKILL: no handler, no finally
    proc.wait()
    (tmp,) = _temps(path.parent)
    assert tmp.startswith(".model.npz.") and path.read_bytes() == before
    ckpt.save(path)
    assert sorted(os.listdir(path.parent)) == ["model.npz"]
    assert load_checkpoint(path).iteration == ckpt.iteration


def test_temp_file_of_a_live_writer_is_kept(saved):
    """Another process writing the same file (no run lock between API
    callers) keeps its temporary file through our save, and finishes."""
    ckpt, path = saved
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


def test_temp_file_of_a_live_thread_is_kept(saved, monkeypatch):
    ckpt, path = saved
    writing, go = threading.Event(), threading.Event()
    real_savez = np.savez

    def stalled_savez(f, **arrays):
        if threading.current_thread() is not threading.main_thread():
            writing.set()
            go.wait(60)
        real_savez(f, **arrays)

    monkeypatch.setattr(ckmod.np, "savez", stalled_savez)
    other = _trained(steps=2)
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


def test_only_dead_temp_files_of_the_same_file_are_removed(saved):
    """An unlocked temporary file named as a save of this file names is a
    dead writer's; the probes of charrnn-train and the files of
    charrnn-sweep (tempfile.mkstemp names, never locked) and other files'
    temporary files are not touched."""
    ckpt, path = saved
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
    _trained().save(tmp_path / base)
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


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"just some text\n", "not an .npz archive"),
    (b"\x93NUMPY\x01\x00", "not an .npz archive"),
    (b"PK\x03\x04" + b"\x00" * 100, "damaged or truncated"),
])
def test_foreign_bytes(tmp_path, content, message):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(path)


def test_foreign_archives(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3))
    with pytest.raises(ValueError, match="not a charrnn_ext checkpoint"):
        load_checkpoint(tmp_path / "a.npy")
    np.savez(tmp_path / "b.npz", weights=np.arange(3.0))
    with pytest.raises(ValueError, match="not a charrnn_ext checkpoint"):
        load_checkpoint(tmp_path / "b.npz")
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="c.zip"):
        load_checkpoint(tmp_path / "c.zip")


def test_every_truncation_is_a_clear_error(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    cut_path = tmp_path / "cut.npz"
    for cut in list(range(0, len(data), max(1, len(data) // 150))) + [len(data) - 1]:
        cut_path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.npz"):
            load_checkpoint(cut_path)


def test_flipped_bits_are_detected_or_harmless(saved, tmp_path):
    """A flipped bit anywhere is a ValueError, unless it hits zip metadata
    that does not affect the data (then the contents load unchanged)."""
    ckpt, path = saved
    data = path.read_bytes()
    rng = np.random.default_rng(0)
    bad_path = tmp_path / "flip.npz"
    detected = 0
    for _ in range(150):
        b = bytearray(data)
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
        bad_path.write_bytes(bytes(b))
        try:
            back = load_checkpoint(bad_path)
        except ValueError as exc:
            assert "flip.npz" in str(exc) and "\n" not in str(exc)
            detected += 1
            continue
        for name in PARAM_NAMES:
            assert np.array_equal(back.model.params[name], ckpt.model.params[name])
        assert back.vocab == ckpt.vocab and back.iteration == ckpt.iteration
    assert detected > 100


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


@pytest.mark.parametrize("changes, message", [
    ({"version": np.array(FORMAT_VERSION + 1)}, "newer"),
    ({"format": np.array("something else")}, "not a charrnn_ext checkpoint"),
    ({"params.Whh": None}, "params.Whh"),
    ({"params.Whh": np.zeros((3, 3))}, "shape"),
    ({"params.Wxh": np.full((8, V), np.nan)}, "NaN"),
    ({"memory.by": -np.ones((V, 1))}, "negative"),
    ({"vocab": np.arange(5, dtype=np.uint32)}, "vocabulary"),
    ({"vocab": np.array([70, 65, 66] + list(range(90, 90 + V - 3)), dtype=np.uint32)}, "sorted"),
    ({"hidden": np.zeros(3)}, "hidden"),
    ({"smooth_loss": np.array(np.inf)}, "smoothed loss"),
    ({"state": np.array('{"iteration": -1, "position": 0}')}, "iteration"),
    ({"state": np.array("not json")}, "'state' is not valid JSON"),
    ({"rng_state": np.array('{"bit_generator": "os.system", "state": {}}')}, "random generator"),
    ({"rng_state": np.array('{"bit_generator": "PCG64", "state": {"state": "x"}}')}, "not a valid PCG64 state"),
    ({"history.val_bpc": np.zeros(5)}, "history"),
])
def test_inconsistent_contents(saved, changes, message):
    ckpt, path = saved
    _rewrite(path, **changes)
    with pytest.raises(ValueError, match=message) as info:
        load_checkpoint(path)
    assert "model.npz" in str(info.value) and "\n" not in str(info.value)
