"""The memory a model takes (charrnn_ext.run.memory: per cell, layers, dtype, optimizer) against
the peak RSS of real runs, the memory a process may still allocate (RAM, cgroup,
RLIMIT_AS), and a MemoryError anywhere as one line with its reason."""
from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest
from conftest import ENV, english_like_text

from charrnn_ext import _machine
from charrnn_ext.run import training
from charrnn_ext.cli.common import run
from charrnn_ext._machine import out_of_memory, rlimit_room
from charrnn_ext.run.memory import TooLarge, check_memory, model_bytes

# A model built and trained two steps in a fresh process: its peak RSS less that after
# the imports (VmHWM), and model_bytes' estimate (benchmarks/bench_memory.py's probe).
PROBE = r"""
import json, sys
import numpy as np
from charrnn_ext import CharRNN
from charrnn_ext.run.memory import model_bytes

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))

c = json.loads(sys.argv[1])
V, H, T, B, D = c["V"], c["H"], c["T"], c["B"], c["D"]
kind = {k: c[k] for k in ("cell", "num_layers", "dtype", "optimizer")}
ids = np.random.default_rng(0).integers(0, V, 4 * B * (T + 1))
base = hwm()
model = CharRNN(V, H, 1, embedding_size=D, **kind)
model.train(ids, 2, T, streams=B, learning_rate=1e-3)
print(json.dumps({"measured": hwm() - base, "estimate": model_bytes(V, H, T, B, D, **kind)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
@pytest.mark.parametrize("config", [
    dict(cell="rnn", num_layers=1, dtype="float64", optimizer="adagrad", H=1536, B=1, D=0),
    dict(cell="lstm", num_layers=2, dtype="float64", optimizer="adam", H=512, B=8, D=32),
    dict(cell="gru", num_layers=2, dtype="float32", optimizer="adagrad", H=768, B=4, D=0),
    dict(cell="rnn", num_layers=3, dtype="float32", optimizer="adam", H=1024, B=2, D=16),
], ids=lambda c: f"{c['cell']}-L{c['num_layers']}-{c['dtype']}-{c['optimizer']}")
def test_the_estimate_is_the_peak_of_a_real_run(config):
    """Within 0.85x-1.6x of the measured peak growth (~50-250 MB here): the
    estimate knows the cell, the layers, the dtype and the optimizer."""
    config = dict(config, V=200, T=25)
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(config)], capture_output=True,
                         text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert 0.85 * m["measured"] <= m["estimate"] <= 1.6 * m["measured"], (config, m)


def test_the_estimate_grows_with_the_cell_layers_and_dtype():
    """The figure the issue saw: H 100,000 said 373 GiB whatever the cell or dtype."""
    tanh = model_bytes(62, 100_000, 25, 1)
    assert model_bytes(62, 100_000, 25, 1, cell="lstm") > 3.5 * tanh
    assert model_bytes(62, 100_000, 25, 1, cell="gru") > 2.5 * tanh
    assert model_bytes(62, 1000, 25, 1, cell="rnn", num_layers=3) > 2.5 * model_bytes(62, 1000,
                                                                                         25, 1)
    steady32 = model_bytes(62, 1000, 25, 1, cell="lstm", dtype="float32")
    steady64 = model_bytes(62, 1000, 25, 1, cell="lstm")
    assert 0.4 * steady64 < steady32 < 0.9 * steady64   # float32 arrays, a float64 initial draw
    assert model_bytes(62, 1000, 25, 1, optimizer="adam") > model_bytes(62, 1000, 25, 1)


def test_check_memory_names_the_model_and_what_is_available(monkeypatch):
    monkeypatch.setattr("charrnn_ext.run.memory.available_memory", lambda: 6 * 10**9)
    with pytest.raises(TooLarge) as caught:
        check_memory(62, 8000, 25, 1, cell="lstm")
    message = str(caught.value)
    assert message.startswith("--hidden-size 8000 with 62 characters needs ")
    assert "(lstm, float64, adagrad)" in message and "5.6 GiB of memory is available" in message
    check_memory(62, 8000, 25, 1)   # min-char-rnn's model of that size fits


def _limited(limit: int):
    """A preexec_fn: the child's address space limited to ``limit`` bytes (ulimit -v)."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status")
def test_available_memory_honours_rlimit_as():
    code = ("from charrnn_ext._machine import available_memory, rlimit_room;"
            "print(available_memory(), rlimit_room())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV,
                         preexec_fn=_limited(3 * 2**30), timeout=60)
    assert out.returncode == 0, out.stderr
    available, room = map(int, out.stdout.split())
    assert available == room and 0 < room < 3 * 2**30
    assert rlimit_room() is None or rlimit_room() > 0   # this process: no limit, or room


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS")
def test_train_under_ulimit_v_says_what_fits(tmp_path):
    """The issue's run: under ulimit -v 6000000, an LSTM of hidden size 8000 is
    refused before it is built, with the limit's room, not the RAM's."""
    (tmp_path / "t.txt").write_text(english_like_text(3000), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "charrnn_ext.train", "t.txt", "--hidden-size",
                           "8000", "--cell", "lstm", "--iters", "5"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, preexec_fn=_limited(6_000_000 * 1024),
                          timeout=120)
    err = proc.stderr
    assert proc.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "--hidden-size 8000 with" in err and "(lstm, float64, adagrad)" in err
    available = float(err.split(" GiB of memory is available")[0].rsplit(" ", 1)[1])
    assert 0 < available < 6_000_000 * 1024 / 2**30, err


def test_a_memory_error_while_building_says_why(monkeypatch):
    """Past the estimate, the model's own allocation fails: one line, numpy's reason."""
    monkeypatch.setattr("charrnn_ext.run.training.check_memory", lambda *a, **k: None)

    def refuse(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.91 GiB for an array with shape (32000, 8000) "
                          "and data type float64")
    monkeypatch.setattr("charrnn_ext.run.training.CharRNN", refuse)
    with pytest.raises(TooLarge) as caught:
        training.run(english_like_text(500), {"hidden_size": 8000, "cell": "lstm", "iters": 1})
    message = str(caught.value)
    assert message.startswith("--hidden-size 8000 with ") and "(lstm, float64, adagrad): " \
        "out of memory: Unable to allocate 1.91 GiB" in message, message
    assert "\n" not in message


def test_a_memory_error_anywhere_is_one_line_with_the_reason(capsys, monkeypatch):
    """A command's MemoryError (numpy's, or a bare one) becomes one line and exit 1."""
    monkeypatch.setattr(_machine, "available_memory", lambda: 3 * 2**30)
    for exc, reason in ((MemoryError("Unable to allocate 8.00 GiB for an array\nmore"),
                         "Unable to allocate 8.00 GiB for an array"),
                        (MemoryError(), "an allocation failed")):
        def main(argv, exc=exc):
            raise exc
        assert run(main, [], "charrnn-x") == 1
        err = capsys.readouterr().err
        assert err == (f"charrnn-x: error: out of memory: {reason}; 3.0 GiB is available to this "
                       f"process (try smaller sizes or lengths)\n"), err
    assert out_of_memory(MemoryError()).startswith("out of memory: an allocation failed")


def test_a_memory_error_while_training_is_a_failure(tmp_path):
    """charrnn-train: a MemoryError after the model is built (a step's buffers)
    is exit 1 with the reason, not the bad-input exit 2 with an empty line."""
    (tmp_path / "t.txt").write_text(english_like_text(3000), encoding="utf-8")
    (tmp_path / "boom.py").write_text(
        "import runpy, sys\n"
        "import charrnn_ext.core.model as m\n"
        "def train(self, *a, **k):\n"
        "    raise MemoryError('Unable to allocate 2.00 GiB for an array with shape (1,)')\n"
        "m.CharRNN.train = train\n"
        "sys.argv = ['charrnn-train'] + sys.argv[1:]\n"
        "runpy.run_module('charrnn_ext.train', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "boom.py", "t.txt", "--iters", "5", "--hidden-size",
                           "8"], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                          timeout=120)
    err = proc.stderr
    assert proc.returncode == 1 and err.count("\n") == 1, (proc.returncode, err)
    assert "error: out of memory: Unable to allocate 2.00 GiB" in err and "available" in err
