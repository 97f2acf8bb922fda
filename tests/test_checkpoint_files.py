"""Checkpoint files from a stranger, as files (issue 11): a checkpoint is
data, never code, bounded in size and time. Missing files, directories,
FIFOs, devices and sockets; foreign, truncated and bit-flipped files;
pickles; zip bombs, compressed members, headers that lie about sizes,
members the format does not define or that share bytes; files larger than a
checkpoint can be or than the memory available: each is a one-line
ValueError (the CLIs: one line on stderr, exit status 2), never a crash, a
hang or a traceback.

The members' values: test_checkpoint_contents.
"""
import copy
import io
import json
import os
import socket
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from charrnn_ext import load_checkpoint
from charrnn_ext.ckpt import checkpoint as ckmod
from charrnn_ext.core.spec import PARAM_NAMES

from conftest import (assert_cli_refusal, assert_load_refused, new_checkpoint, rewrite_archive,
                      run_cli, trained_checkpoint)


# ---------------------------------------------------------------------------
# missing, foreign, damaged
# ---------------------------------------------------------------------------

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


def test_every_truncation_is_a_clear_error(saved_trained, tmp_path):
    _, path = saved_trained
    data = path.read_bytes()
    cut_path = tmp_path / "cut.npz"
    for cut in list(range(0, len(data), max(1, len(data) // 150))) + [len(data) - 1]:
        cut_path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="cut.npz"):
            load_checkpoint(cut_path)


def test_flipped_bits_are_detected_or_harmless(saved_trained, tmp_path):
    """A flipped bit anywhere is a ValueError, unless it hits zip metadata
    that does not affect the data (then the contents load unchanged)."""
    ckpt, path = saved_trained
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


def test_pickled_payload_is_refused_not_run(tmp_path):
    """An archive smuggling a pickled object is rejected, and the object's
    __reduce__ never runs."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.npz"
    ckpt = trained_checkpoint()
    arrays = ckmod._arrays(ckpt)
    arrays["vocab"] = np.array([Evil()], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="evil.npz"):
        load_checkpoint(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------
# zip bombs and lying sizes: nothing is decompressed, nothing read past
# what a member's shape needs, no member the format does not define
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
def test_zip_bomb_is_refused_without_decompressing(saved_new, member):
    """A deflated member of 64 MiB of zeros (the issue's: 2 GiB, 12 s and
    2.1 GB of memory) is refused at once: an unknown member by its name, a
    known one as compressed; nothing is inflated (peak memory << 64 MiB)."""
    if member != "extra.npy":
        rewrite_archive(saved_new, **{member[:-4]: None})
    _add_deflated_zeros(saved_new, member, _npy_header((64 << 20,), "|u1"), 64 << 20)
    assert saved_new.stat().st_size < 1 << 20
    message, seconds, peak = _load_cost(saved_new)
    assert member in message and ("not part of the format" in message or "compressed" in message)
    assert seconds < 1.0 and peak < 8 << 20, (seconds, peak)


def test_compressed_checkpoint_is_refused(saved_new):
    """np.savez_compressed of a valid checkpoint: checkpoints are stored
    uncompressed, so no member is ever inflated."""
    with np.load(saved_new) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez_compressed(saved_new, **arrays)
    assert_load_refused(saved_new, "compressed")


@pytest.mark.parametrize("shape, words", [
    ((2**32,), ("'hidden' takes 34,359,738,368 bytes", "more than")),  # beyond any model
    ((4000,), ("declares", "bytes")),  # within the limits, more than the member's size
])
def test_member_header_claiming_more_than_its_size_is_refused(saved_new, shape, words):
    """A .npy header claiming a shape its member's bytes cannot hold is
    refused before anything is allocated for it (np.load allocated first)."""
    with zipfile.ZipFile(saved_new) as z:
        items = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(saved_new, "w") as z:
        for name, data in items:
            z.writestr(name, _npy_header(shape) + bytes(64) if name == "hidden.npy" else data)
    message, _, peak = _load_cost(saved_new)
    assert all(word in message for word in words), message
    assert peak < 8 << 20, peak


def test_unknown_member_is_refused(saved_new):
    """Only the members the format defines (checkpoint._member_limits) load."""
    rewrite_archive(saved_new, notes=np.arange(3.0))
    assert_load_refused(saved_new, "'notes.npy' is not part of the format")


def test_json_member_over_its_bound_is_refused(saved_new):
    text = json.dumps({"note": "x" * (ckmod._MAX_JSON_BYTES // 4)})
    rewrite_archive(saved_new, hyperparameters=np.array(text))
    assert_load_refused(saved_new, "'hyperparameters' takes", "more than")


def test_history_member_over_its_bound_is_refused(saved_new):
    """A history array longer than there can be iterations (C ints) is
    refused from its header (a sparse member: the bytes are never read)."""
    n = 2**31
    rewrite_archive(saved_new, **{"history.val_bpc": None})
    with zipfile.ZipFile(saved_new, "a") as z:
        info = zipfile.ZipInfo("history.val_bpc.npy")
        with z.open(info, "w", force_zip64=True) as w:
            w.write(_npy_header((n,)))
    assert_load_refused(saved_new, "'history.val_bpc' takes 17,179,869,184 bytes")


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
    assert_load_refused(path, "claim more bytes than the file holds")


def test_file_larger_than_any_checkpoint_is_refused(saved_new):
    """A (sparse) file larger than every member at its limit is refused
    from its size, before it is opened as a zip."""
    limit = ckmod._max_file_size()
    try:
        with open(saved_new, "r+b") as f:
            f.truncate(limit + 1)
    except OSError:
        pytest.skip("no sparse file of that size here")
    assert_load_refused(saved_new, "more than a checkpoint can be")


def test_loading_is_refused_when_memory_is_short(saved_new, monkeypatch):
    """Members are sized from their headers before anything is read; a file
    whose arrays cannot fit in the memory available now is refused."""
    from charrnn_ext.ckpt import _ckptfile  # the archive reader
    total = os.path.getsize(saved_new)
    monkeypatch.setattr(_ckptfile, "available_memory", lambda: total)
    assert_load_refused(saved_new, "needs about", "available")
    monkeypatch.setattr(_ckptfile, "available_memory", lambda: 100 * total)
    assert load_checkpoint(saved_new).iteration == 0


# ---------------------------------------------------------------------------
# FIFOs, devices, sockets: only regular files are read
# ---------------------------------------------------------------------------

def _load_a_fifo(fifo) -> ValueError:
    """The ValueError load_checkpoint(fifo) raises, in a thread; the test
    fails if it raised anything else, nothing, or blocked for 10 s (the
    blocked open is then released, so the thread ends)."""
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
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
        pytest.fail("load_checkpoint blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], ValueError), outcome
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_not_waited_on(tmp_path):
    """Opening a FIFO for reading waited forever for a writer."""
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    error = _load_a_fifo(fifo)
    assert "FIFO" in str(error) and "model.npz" in str(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_swapped_in_after_the_check_is_refused(tmp_path, monkeypatch):
    """A FIFO put in place between the check of the path and its opening:
    the open returns at once (O_NONBLOCK) and the open file is checked."""
    regular = tmp_path / "regular.npz"
    new_checkpoint().save(regular)
    fifo = tmp_path / "swapped.npz"
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(ckmod.os, "stat",  # the path looks regular when checked
                        lambda p, *a, **k: real_stat(regular if str(p) == str(fifo) else p, *a, **k))
    assert "a FIFO, not a regular file" in str(_load_a_fifo(fifo))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_cli(tmp_path):
    os.mkfifo(tmp_path / "pipe.npz")
    result = run_cli("sample", "pipe.npz", cwd=tmp_path, timeout=60)
    assert_cli_refusal(result, "pipe.npz", "not a regular file")


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_device_is_refused():
    assert_load_refused("/dev/zero", "a device, not a regular file")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_socket_is_refused(tmp_path):
    path = tmp_path / "s.npz"
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.bind(str(path))
        except OSError:
            pytest.skip("socket path too long here")
        assert_load_refused(path, "a socket, not a regular file")
