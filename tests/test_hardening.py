"""Issue 11, hardening: each attack on the model API and on checkpoint files,
as a test. A checkpoint is a file from a stranger: data, never code, bounded
in size and time; bad input is a one-line ValueError / TypeError (in the
CLIs one line on stderr, exit status 2), never a crash, a hang or a
traceback. Attacks that crashed the process run in a subprocess.
"""
import copy
import io
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import charrnn_ext
from charrnn_ext import CharRNN, Vocab, load_checkpoint
from charrnn_ext import checkpoint as ckmod
from charrnn_ext.checkpoint import Checkpoint
from charrnn_ext.spec import PARAM_NAMES, param_shapes

from conftest import english_like_text

TEXT = "hello world, the quick brown fox jumps. " * 10
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
HAS_FLOAT128 = np.finfo(np.longdouble).maxexp > np.finfo(np.float64).maxexp  # holds 1e400


def _checkpoint(rng=None, hidden_size=8, **fields) -> Checkpoint:
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(len(vocab), hidden_size, seed=1)
    fields.setdefault("smooth_loss", 50.0)
    fields.setdefault("hyperparameters", {"seq_length": 8, "hidden_size": hidden_size})
    return Checkpoint(model=model, vocab=vocab,
                      rng=np.random.default_rng(1) if rng is None else rng, **fields)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.npz"
    _checkpoint().save(path)
    return path


def _rewrite(path, **changes):
    """Replace (or, with None, delete) members of the archive at ``path``."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(path, **arrays)


def _refused(path, *words):
    """load_checkpoint(path) raises a one-line ValueError naming the file and ``words``."""
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    reason = message.replace(str(path), "")  # the words are not in the path (test names)
    for word in words:
        assert word in reason, message
    return message


# ---------------------------------------------------------------------------
# the command-line tools, run from wherever the tests import charrnn_ext
# ---------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(charrnn_ext.__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
TRAIN_ARGS = ["--hidden-size", 12, "--seq-length", 16, "--sample-length", 8, "--no-keep-best"]


def _run(tool, *args, cwd, timeout=120):
    proc = subprocess.run([sys.executable, "-m", f"charrnn_ext.{tool}", *map(str, args)],
                          cwd=cwd, env=ENV, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def _assert_cli_refusal(result, *words):
    """Exit status 2 and one line on stderr (no traceback) holding ``words``."""
    code, _, err = result
    lines = [line for line in err.splitlines() if "warning:" not in line]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, (code, err[-2000:])
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(directory, checkpoint name) of a short run of the train CLI."""
    cwd = tmp_path_factory.mktemp("cli")
    (cwd / "input.txt").write_text(english_like_text(3000, seed=2), encoding="utf-8")
    result = _run("train", "input.txt", "--checkpoint", "base.npz", "--iters", 20,
                  *TRAIN_ARGS, cwd=cwd)
    assert result[0] == 0, result[2]
    return cwd


def _copy(cwd, name, **changes):
    data = (cwd / "base.npz").read_bytes()
    (cwd / name).write_bytes(data)
    if changes:
        _rewrite(cwd / name, **changes)
    return name


# ---------------------------------------------------------------------------
# 1. random generator states: every field checked; every generator round-trips
# ---------------------------------------------------------------------------

def _json_state(name: str, seed: int = 3) -> dict:
    """A valid bit_generator.state of ``name`` as JSON data (arrays as lists)."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v.tolist() if isinstance(v, np.ndarray) else v
    return plain(getattr(np.random, name)(seed).state)


def _set(path, value):
    def change(state):
        *keys, last = path
        for key in keys:
            state = state[key]
        if value is KeyError:
            del state[last]
        else:
            state[last] = value(state[last]) if callable(value) else value
    return change


BAD_RNG_STATES = [
    ("MT19937", _set(("state", "pos"), 10**9), "pos-huge"),
    ("MT19937", _set(("state", "pos"), -1), "pos-negative"),
    ("MT19937", _set(("state", "pos"), 625), "pos-625"),
    ("MT19937", _set(("state", "pos"), 1.0), "pos-float"),
    ("MT19937", _set(("state", "pos"), True), "pos-bool"),
    ("MT19937", _set(("state", "key"), lambda k: k[:10]), "key-short"),
    ("MT19937", _set(("state", "key"), lambda k: k + [1]), "key-long"),
    ("MT19937", _set(("state", "key"), lambda k: [2**32] + k[1:]), "key-value"),
    ("MT19937", _set(("state", "key"), lambda k: [-1] + k[1:]), "key-negative"),
    ("MT19937", _set(("state", "key"), "x" * 624), "key-string"),
    ("Philox", _set(("buffer_pos",), -10**9), "buffer_pos-negative"),
    ("Philox", _set(("buffer_pos",), 5), "buffer_pos-5"),
    ("Philox", _set(("buffer",), lambda b: b[:1]), "buffer-short"),
    ("Philox", _set(("state", "key"), lambda k: k[:1]), "key-short"),
    ("Philox", _set(("state", "counter"), lambda c: c + [0]), "counter-long"),
    ("Philox", _set(("state", "counter"), lambda c: [2**64] + c[1:]), "counter-value"),
    ("SFC64", _set(("state", "state"), lambda s: s[:3]), "state-short"),
    ("SFC64", _set(("has_uint32",), 2), "has_uint32-2"),
    ("PCG64", _set(("state", "state"), -1), "state-negative"),
    ("PCG64", _set(("state", "inc"), 2**128), "inc-too-big"),
    ("PCG64", _set(("state", "state"), "x"), "state-string"),
    ("PCG64", _set(("has_uint32",), KeyError), "missing-field"),
    ("PCG64", _set(("extra",), 0), "extra-field"),
    ("PCG64DXSM", _set(("uinteger",), 2**32), "uinteger-too-big"),
    ("PCG64DXSM", _set(("state",), [1, 2]), "state-not-a-dict"),
]


@pytest.mark.parametrize("name, change", [pytest.param(n, c, id=f"{n}-{i}")
                                          for n, c, i in BAD_RNG_STATES])
def test_bad_rng_state_is_refused(saved, name, change):
    state = _json_state(name)
    change(state)
    _rewrite(saved, rng_state=np.array(json.dumps(state)))
    _refused(saved, f"not a valid {name} state")


@pytest.mark.parametrize("name", ["os.system", "RandomState", "pcg64", ["PCG64"], None])
def test_unknown_bit_generator_is_refused(saved, name):
    state = _json_state("PCG64")
    state["bit_generator"] = name
    _rewrite(saved, rng_state=np.array(json.dumps(state)))
    _refused(saved, "unknown random generator")


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
    _checkpoint(rng=rng).save(path)   # failed: "ndarray is not JSON serializable"
    back = load_checkpoint(path).rng
    assert type(back.bit_generator).__name__ == name
    for draw in (lambda r: r.integers(0, 2**32, 9, dtype=np.uint32), lambda r: r.random(9),
                 lambda r: r.integers(0, 2**64, 9, dtype=np.uint64)):
        assert np.array_equal(draw(back), draw(rng))


def test_resume_with_an_out_of_range_rng_state_is_refused(trained):
    """An MT19937 pos of 10**9 loaded fine, and train --resume then crashed
    the process (numpy's state setters do not range-check)."""
    state = _json_state("MT19937")
    state["state"]["pos"] = 10**9
    name = _copy(trained, "mt_pos.npz", rng_state=np.array(json.dumps(state)))
    result = _run("train", "input.txt", "--resume", name, "--iters", 30, *TRAIN_ARGS, cwd=trained)
    _assert_cli_refusal(result, name, "not a valid MT19937 state")


def test_resume_trains_and_saves_with_a_philox_state(trained):
    """A valid Philox state resumes, trains and saves (saving failed with
    "ndarray is not JSON serializable"); the stream carries on from it."""
    rng = np.random.Generator(np.random.Philox(5))
    rng.random(3)
    state = _json_state("Philox")
    state.update(json.loads(json.dumps(rng.bit_generator.state,
                                       default=lambda a: a.tolist())))
    name = _copy(trained, "philox.npz", rng_state=np.array(json.dumps(state)))
    before = load_checkpoint(trained / name)
    code, _, err = _run("train", "input.txt", "--resume", name, "--iters", 30, *TRAIN_ARGS,
                        "--sample-every", 5, cwd=trained)
    assert code == 0, err
    after = load_checkpoint(trained / name)
    assert after.iteration == 30
    assert type(after.rng.bit_generator).__name__ == "Philox"
    assert after.rng.bit_generator.state["state"]["key"].tolist() == state["state"]["key"]
    assert not np.array_equal(after.rng.random(4), before.rng.random(4))  # it sampled


# ---------------------------------------------------------------------------
# 2. zip bombs and lying sizes: nothing is decompressed, nothing read past
#    what a member's shape needs, no member the format does not define
# ---------------------------------------------------------------------------

def _npy_bytes(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _npy_header(shape, descr="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue()


def _add_deflated_zeros(path, member: str, header: bytes, n_bytes: int) -> None:
    """Append ``member``: ``header`` then n_bytes of zeros, deflated."""
    block = bytes(1 << 20)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open(member, "w", force_zip64=True) as w:
            w.write(header)
            for _ in range(n_bytes >> 20):
                w.write(block)


def _load_cost(path):
    """(the ValueError's reason, seconds, peak bytes allocated) of loading ``path``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(ValueError) as info:
            load_checkpoint(path)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    return str(info.value).replace(str(path), ""), seconds, peak  # the reason only


@pytest.mark.parametrize("member", ["extra.npy", "history.iteration.npy"])
def test_zip_bomb_is_refused_without_decompressing(saved, member):
    """A deflated member of 64 MiB of zeros (the issue's: 2 GiB, 12 s and
    2.1 GB of memory) is refused at once: an unknown member by its name, a
    known one as compressed; nothing is inflated (peak memory << 64 MiB)."""
    if member != "extra.npy":
        _rewrite(saved, **{member[:-4]: None})
    _add_deflated_zeros(saved, member, _npy_header((64 << 20,), "|u1"), 64 << 20)
    assert saved.stat().st_size < 1 << 20
    message, seconds, peak = _load_cost(saved)
    assert member in message and ("not part of the format" in message or "compressed" in message)
    assert seconds < 1.0 and peak < 8 << 20, (seconds, peak)


def test_compressed_checkpoint_is_refused(saved):
    """np.savez_compressed of a valid checkpoint: checkpoints are stored
    uncompressed, so no member is ever inflated."""
    with np.load(saved) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez_compressed(saved, **arrays)
    _refused(saved, "compressed")


@pytest.mark.parametrize("shape, words", [
    ((2**32,), ("'hidden' takes 34,359,738,368 bytes", "more than")),  # beyond any model
    ((4000,), ("declares", "bytes")),  # within the limits, more than the member's size
])
def test_member_header_claiming_more_than_its_size_is_refused(saved, shape, words):
    """A .npy header claiming a shape its member's bytes cannot hold is
    refused before anything is allocated for it (np.load allocated first)."""
    with zipfile.ZipFile(saved) as z:
        items = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(saved, "w") as z:
        for name, data in items:
            z.writestr(name, _npy_header(shape) + bytes(64) if name == "hidden.npy" else data)
    message, _, peak = _load_cost(saved)
    assert all(word in message for word in words), message
    assert peak < 8 << 20, peak


def test_unknown_member_is_refused(saved):
    """Only the members the format defines (checkpoint._member_limits) load."""
    _rewrite(saved, notes=np.arange(3.0))
    _refused(saved, "'notes.npy' is not part of the format")


def test_every_member_written_is_in_the_format(tmp_path):
    """_member_limits lists every member save writes (the loader's one list)."""
    path = tmp_path / "full.npz"
    _checkpoint().save(path)
    with zipfile.ZipFile(path) as z:
        names = {i.filename[:-4] for i in z.infolist()}
    assert names <= set(ckmod._member_limits())
    assert {f"params.{n}" for n in PARAM_NAMES} | {f"memory.{n}" for n in PARAM_NAMES} <= names
    assert load_checkpoint(path).iteration == 0


def test_json_member_over_its_bound_is_refused(saved):
    text = json.dumps({"note": "x" * (ckmod._MAX_JSON_BYTES // 4)})
    _rewrite(saved, hyperparameters=np.array(text))
    _refused(saved, "'hyperparameters' takes", "more than")


def test_history_member_over_its_bound_is_refused(saved):
    """A history array longer than there can be iterations (C ints) is
    refused from its header (a sparse member: the bytes are never read)."""
    n = 2**31
    _rewrite(saved, **{"history.val_bpc": None})
    with zipfile.ZipFile(saved, "a") as z:
        info = zipfile.ZipInfo("history.val_bpc.npy")
        with z.open(info, "w", force_zip64=True) as w:
            w.write(_npy_header((n,)))
    _refused(saved, "'history.val_bpc' takes 17,179,869,184 bytes")


def _zip_with_nested_member(path, inner_size: int) -> None:
    """A stored zip whose member history.iteration.npy holds, inside its
    data, a whole second member (params.Wxh.npy: local header and data),
    with a central-directory entry each: two members share the same bytes,
    so a file of N bytes could expand to about 25 N."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("params.Wxh.npy", _npy_bytes(np.zeros(inner_size // 8)))
    inner_info = z.infolist()[0]
    raw = inner.getvalue()
    name_len, extra_len = int.from_bytes(raw[26:28], "little"), int.from_bytes(raw[28:30], "little")
    local = raw[:30 + name_len + extra_len + inner_info.compress_size]
    outer = _npy_bytes(np.frombuffer(local, dtype=np.uint8))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("format.npy", _npy_bytes(np.array(ckmod.FORMAT_NAME)))
        z.writestr("history.iteration.npy", outer)
        a = z.getinfo("history.iteration.npy")
        nested = copy.copy(inner_info)
        nested.header_offset = (a.header_offset + 30 + len(a.filename.encode()) + len(a.extra)
                                + len(outer) - len(local))
        z.filelist.append(nested)
        z.NameToInfo[nested.filename] = nested


def test_members_sharing_bytes_are_refused(tmp_path):
    path = tmp_path / "nested.npz"
    _zip_with_nested_member(path, 200_000)
    with zipfile.ZipFile(path) as z:  # a well-formed zip: both members read
        assert len(z.read("params.Wxh.npy")) > 200_000 and len(z.read("history.iteration.npy"))
    _refused(path, "claim more bytes than the file holds")


def test_file_larger_than_any_checkpoint_is_refused(saved):
    """A (sparse) file larger than every member at its limit is refused
    from its size, before it is opened as a zip."""
    limit = ckmod._max_file_size()
    try:
        with open(saved, "r+b") as f:
            f.truncate(limit + 1)
    except OSError:
        pytest.skip("no sparse file of that size here")
    _refused(saved, "more than a checkpoint can be")


# ---------------------------------------------------------------------------
# 3. deeply nested JSON
# ---------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("member", ["state", "hyperparameters", "rng_state"])
def test_deeply_nested_json_is_refused(saved, member):
    """100,000 levels (within the size bound) were a RecursionError traceback."""
    _rewrite(saved, **{member: np.array(DEEP)})
    _refused(saved, f"'{member}' nests JSON deeper than")


def test_json_depth_bound_is_exact(tmp_path):
    depth = ckmod._MAX_JSON_DEPTH
    ok = tmp_path / "ok.npz"
    _checkpoint(hyperparameters={"a": json.loads("[" * (depth - 1) + "]" * (depth - 1))}).save(ok)
    assert load_checkpoint(ok).hyperparameters["a"] == json.loads("[" * (depth - 1) + "]" * (depth - 1))
    with pytest.raises(ValueError, match="nests JSON deeper"):
        _checkpoint(hyperparameters={"a": json.loads("[" * depth + "]" * depth)}).save(tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def test_brackets_quotes_and_backslashes_inside_strings_do_not_count(tmp_path):
    tricky = {"a": "[" * 200, "b": '\\"' + "{" * 200, "c": "\\", "d": '"]]]' + "[" * 100,
              "e": "\\\\[[[", "[" * 50: ["\\", '"[', "]"]}
    path = tmp_path / "tricky.npz"
    _checkpoint(hyperparameters=tricky).save(path)
    assert load_checkpoint(path).hyperparameters == tricky


@pytest.mark.parametrize("tool, member", [("sample", "state"), ("train", "hyperparameters")])
def test_deeply_nested_json_cli(trained, tool, member):
    name = _copy(trained, f"deep_{member}.npz", **{member: np.array(DEEP)})
    if tool == "sample":
        result = _run("sample", name, "--length", 5, cwd=trained)
    else:
        result = _run("train", "input.txt", "--resume", name, "--iters", 30, *TRAIN_ARGS,
                      cwd=trained)
    _assert_cli_refusal(result, name, "nests JSON deeper than")


# ---------------------------------------------------------------------------
# 4. floats wider than float64 (1e400 in float128 became inf in the cast)
# ---------------------------------------------------------------------------

needs_float128 = pytest.mark.skipif(not HAS_FLOAT128, reason="long double is float64 here")


def _huge(shape):
    arr = np.zeros(shape, dtype=np.longdouble)
    arr.flat[0] = np.longdouble("1e400")
    return arr


@needs_float128
@pytest.mark.parametrize("member", ["params.Wxh", "memory.by", "hidden", "smooth_loss",
                                    "history.val_bpc"])
def test_checkpoint_refuses_float128(saved, member):
    if member.startswith("history."):  # a consistent group of one evaluation
        changes = {"history.val_iteration": np.array([3]), "history.val_bpc": _huge((1,)),
                   "history.train_bpc": np.array([2.0])}
    else:
        with np.load(saved) as npz:
            changes = {member: _huge(npz[member].shape)}
    _rewrite(saved, **changes)
    _refused(saved, f"'{member}'", "float128")


@needs_float128
def test_resume_from_float128_params_cli(trained):
    """train --resume exited 0, writing a checkpoint its own loader rejects."""
    with np.load(trained / "base.npz") as npz:
        shape = npz["params.Why"].shape
    name = _copy(trained, "f128.npz", **{"params.Why": _huge(shape)})
    result = _run("train", "input.txt", "--resume", name, "--iters", 30, *TRAIN_ARGS, cwd=trained)
    _assert_cli_refusal(result, name, "float128")


# ---------------------------------------------------------------------------
# 5. save writes only what load accepts (the loader's own checks run first)
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
    _checkpoint().save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="would not load") as info:
        _checkpoint(**fields).save(path)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_default_checkpoint_saves_and_loads(tmp_path):
    """Checkpoint(model, vocab) with its defaults is written only if it loads."""
    vocab = Vocab.from_text(TEXT)
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
        _checkpoint(rng=np.random.RandomState(0)).save(tmp_path / "r.npz")
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------
# 6. FIFOs, devices, sockets: only regular files are read
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_not_waited_on(tmp_path):
    """Opening a FIFO for reading waited forever for a writer."""
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    outcome = []

    def load():
        try:
            load_checkpoint(fifo)
        except Exception as exc:  # noqa: BLE001 -- recorded and checked below
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # release the blocked open so the thread ends
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(10)
        pytest.fail("load_checkpoint blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome
    assert "FIFO" in str(outcome[0]) and "model.npz" in str(outcome[0])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_swapped_in_after_the_check_is_refused(tmp_path, monkeypatch):
    """A FIFO put in place between the check of the path and its opening:
    the open returns at once (O_NONBLOCK) and the open file is checked."""
    regular = tmp_path / "regular.npz"
    _checkpoint().save(regular)
    fifo = tmp_path / "swapped.npz"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(ckmod.os, "stat",  # the path looks regular when checked
                        lambda p, *a, **k: real_stat(regular if str(p) == str(fifo) else p, *a, **k))
    outcome = []

    def load():
        try:
            load_checkpoint(fifo)
        except Exception as exc:  # noqa: BLE001 -- recorded and checked below
            outcome.append(exc)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("load_checkpoint blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome
    assert "a FIFO, not a regular file" in str(outcome[0])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_cli(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")
    result = _run("sample", "pipe.npz", cwd=tmp_path, timeout=60)
    _assert_cli_refusal(result, "pipe.npz", "not a regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_is_refused():
    _refused("/dev/zero", "a device, not a regular file")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_socket_is_refused(tmp_path):
    path = tmp_path / "s.npz"
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.bind(str(path))
        except OSError:
            pytest.skip("socket path too long here")
        _refused(path, "a socket, not a regular file")


# ---------------------------------------------------------------------------
# 7. the model's arrays: views out, the core's arrays private
# ---------------------------------------------------------------------------

METADATA_ATTACKS = textwrap.dedent("""
    import numpy as np
    from charrnn_ext import CharRNN

    def attempt(what, f):
        try:
            f()
        except (AttributeError, TypeError, ValueError) as exc:
            print(what, "refused", type(exc).__name__)
        else:
            print(what, "done")

    m = CharRNN(2, 64, seed=0)
    m.params["Why"].shape = (64, 2)          # changes a view only
    m.memory["Whh"].shape = (16, 256)
    m.grads["by"].shape = (1, 2)
    print("sizes", m.vocab_size, m.hidden_size, m.params["Why"].shape)
    ids = np.arange(50) % 60
    attempt("ids beyond the vocabulary", lambda: m.train_step(ids, ids, None))
    attempt("resize a view", lambda: m.params["Why"].resize((64, 64), refcheck=False))
    attempt("resize its base", lambda: m.params["Why"].base.resize(10**6, refcheck=False))
    attempt("rebind params", lambda: setattr(m, "params", {}))
    attempt("rebind memory", lambda: setattr(m, "memory", {}))
    attempt("rebind grads", lambda: setattr(m, "grads", {}))
    def replace():
        m.params["Why"] = np.zeros((64, 2))
    attempt("replace an entry", replace)
    for _ in range(3):
        loss, h = m.train_step([0, 1, 1, 0], [1, 1, 0, 0], None)
    print("loss", 0 < loss < 10)
""")


# ---------------------------------------------------------------------------
# 8. masked arrays
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# counters and sizes a crafted file could set out of range
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("interval_steps", 10**400), ("interval_steps", 101), ("best_iteration", 101),
    ("iteration", 2**63), ("interval_loss", 10**400),
])
def test_state_counters_are_bounded(tmp_path, field, value):
    """Counters are checked against each other (no more steps in the open
    interval, and no best, after the iteration reached) and against 2**63."""
    path = tmp_path / "c.npz"
    _checkpoint(iteration=100, interval_steps=3, interval_loss=1.0, best_val_bpc=2.0,
                best_iteration=50).save(path)
    with np.load(path, allow_pickle=False) as npz:
        state = json.loads(str(npz["state"]))
    state[field] = value
    _rewrite(path, state=np.array(json.dumps(state)))
    message = _refused(path, field)
    assert len(message) < 300


def test_loading_is_refused_when_memory_is_short(saved, monkeypatch):
    """Members are sized from their headers before anything is read; a file
    whose arrays cannot fit in the memory available now is refused."""
    from charrnn_ext import _ckptfile  # the archive reader
    total = os.path.getsize(saved)
    monkeypatch.setattr(_ckptfile, "available_memory", lambda: total)
    _refused(saved, "needs about", "available")
    monkeypatch.setattr(_ckptfile, "available_memory", lambda: 100 * total)
    assert load_checkpoint(saved).iteration == 0


