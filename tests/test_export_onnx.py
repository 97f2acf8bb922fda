"""charrnn-export's ONNX graph (charrnn_ext.formats.onnx) on every kind of
model, run by onnxruntime: the loss of a text from its logits equals the
model's own (1e-5 relative in float32, 1e-10 in float64), from a zero state
and from the state training left; its next_state is ours; the default state
serves every row of a batch; README's onnxruntime code, as written, prints
charrnn-sample's greedy text; the graph passes onnx.checker's full check
and names its kind in its metadata. Both recurrences (ONNX's RNN/LSTM/GRU
operators, float32's; a Scan of plain operators, float64's) are checked on
float32 models. Skipped without onnx and onnxruntime; CI installs them.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from charrnn_ext.use.generation import generate

from conftest import ENV, english_like_text
from exports import (EXPORT_RTOL, MODEL_KINDS, README, export_kind, greedy_margins,
                     kind_checkpoint, readme_block)

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from charrnn_ext.formats.onnx import OPSET, onnx_model  # noqa: E402  (needs onnx)

TEXT = english_like_text(3000, seed=3)
F32_KINDS = [k for k in MODEL_KINDS if k.values[3] == "float32"]


def session(model_proto):
    options = ort.SessionOptions()
    options.log_severity_level = 3   # (the warning that the input state has a default)
    return ort.InferenceSession(model_proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def text_loss(logits: np.ndarray, targets: np.ndarray) -> float:
    """Summed cross-entropy (nats) of logits (T, V) on targets (T,), in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(targets.size), targets].sum())


def check_against_ours(ckpt, proto):
    """onnxruntime's loss of TEXT and state after it, against ours, from a zero
    state and from the state training left; the first 30 characters' loss
    differs between the two (the default state is the one training left)."""
    dtype = ckpt.model.dtype.name
    run = session(proto)
    ids = ckpt.vocab.encode(TEXT)
    first = {}
    for zero in (True, False):
        feed = {"ids": ids[None, :-1].astype(np.int64)}
        if zero:
            feed["state"] = np.zeros((ckpt.model.state_size, 1), dtype)
        logits, after = run.run(None, feed)
        assert logits.shape == (1, ids.size - 1, len(ckpt.vocab)) and logits.dtype == dtype
        h0 = None if zero else ckpt.hidden[:, :1]
        ours, h = ckpt.model.loss(ids[:-1], ids[1:], h0, return_hidden=True)
        theirs = text_loss(logits[0], ids[1:])
        assert abs(theirs - ours) <= EXPORT_RTOL[dtype] * ours, (zero, theirs, ours)
        np.testing.assert_allclose(after, h, rtol=100 * EXPORT_RTOL[dtype],
                                   atol=100 * EXPORT_RTOL[dtype])
        first[zero] = text_loss(logits[0, :30], ids[1:31])
        ours = ckpt.model.loss(ids[:30], ids[1:31], h0)
        assert abs(first[zero] - ours) <= EXPORT_RTOL[dtype] * ours
    assert abs(first[True] - first[False]) > 100 * EXPORT_RTOL[dtype] * first[True]


@pytest.mark.parametrize("cell, L, D, dtype", MODEL_KINDS)
def test_onnxruntime_loss_equals_ours(cell, L, D, dtype, tmp_path):
    """The file charrnn-export writes: checked, its metadata, its loss."""
    ckpt, path = export_kind(tmp_path, (cell, L, D, dtype), TEXT, ".onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    assert (meta["cell"], int(meta["num_layers"]), int(meta["embedding_size"]),
            int(meta["hidden_size"]), meta["dtype"]) == (cell, L, D, 16, dtype)
    assert "".join(json.loads(meta["vocab"])) == ckpt.vocab.chars
    assert int(meta["state_size"]) == ckpt.model.state_size
    assert meta["recurrence"] == ("operators" if dtype == "float32" else "scan")
    if dtype == "float32":   # ONNX's own cell operators carry the recurrence
        ops = {n.op_type for n in proto.graph.node}
        assert {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell] in ops and "Scan" not in ops
    check_against_ours(ckpt, proto)


@pytest.mark.parametrize("cell, L, D, dtype", F32_KINDS)
def test_the_scan_recurrence_equals_ours_in_float32(cell, L, D, dtype):
    """The Scan of plain operators (float64's) on float32 models: the gate
    equations written out agree with ONNX's operators and with ours."""
    ckpt = kind_checkpoint(cell, L, D, dtype, TEXT)
    proto = onnx_model(ckpt.model, ckpt.vocab.chars, ckpt.hidden[:, :1], recurrence="scan")
    onnx.checker.check_model(proto, full_check=True)
    assert "Scan" in {n.op_type for n in proto.graph.node}
    check_against_ours(ckpt, proto)


@pytest.mark.parametrize("cell, L, D, dtype", [("lstm", 2, 6, "float32"), ("gru", 1, 0, "float64")])
def test_a_batch_of_rows(cell, L, D, dtype):
    """Without state, every row starts from the state training left; a fed
    state [S, B] gives each row its own column (here: the checkpoint's two
    streams and a zero state); each row reads as it would alone."""
    ckpt = kind_checkpoint(cell, L, D, dtype, TEXT)
    run = session(onnx_model(ckpt.model, ckpt.vocab.chars, ckpt.hidden[:, :1]))
    ids = ckpt.vocab.encode(TEXT)[:300].reshape(3, 100).astype(np.int64)
    S = ckpt.model.state_size
    states = np.concatenate([ckpt.hidden, np.zeros((S, 1))], axis=1).astype(dtype)
    tol = 10 * EXPORT_RTOL[dtype]
    for feed in ({}, {"state": states}):
        logits, after = run.run(None, {"ids": ids, **feed})
        assert logits.shape == (3, 100, len(ckpt.vocab)) and after.shape == (S, 3)
        for b in range(3):
            h0 = feed["state"][:, b:b + 1] if feed else ckpt.hidden[:, :1]
            alone, alone_after = run.run(None, {"ids": ids[b:b + 1], "state": h0})
            np.testing.assert_allclose(logits[b], alone[0], rtol=tol, atol=tol)
            np.testing.assert_allclose(after[:, b], alone_after[:, 0], rtol=tol, atol=tol)
            ours = ckpt.model.advance(ids[b], h0)
            np.testing.assert_allclose(after[:, b:b + 1], ours, rtol=tol, atol=tol)


@pytest.mark.parametrize("cell, L, D, dtype", MODEL_KINDS)
def test_readme_onnxruntime_code_runs_as_written(cell, L, D, dtype, tmp_path, monkeypatch,
                                                 capsys):
    """README's block, as written, on an export of each kind: a greedy text
    generated with onnxruntime, the same as charrnn-sample's
    (--prime "The " --temperature 0 --length 200)."""
    ckpt, _ = export_kind(tmp_path, (cell, L, D, dtype), TEXT, ".onnx")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    exec(compile(readme_block("onnxruntime"), README, "exec"), {})
    expected = generate(ckpt, 200, temperature=0, prime="The ")
    assert greedy_margins(ckpt, "The ", expected[4:]).min() > 100 * EXPORT_RTOL[dtype], \
        "a near tie: the test needs another model"
    assert capsys.readouterr().out == expected + "\n"


def test_the_commands_agree(tmp_path):
    """charrnn-export to .onnx and charrnn-sample, as commands: README's code
    prints what charrnn-sample printed; the file has every output's mode."""
    ckpt = kind_checkpoint("lstm", 2, 6, "float32", TEXT)
    ckpt.save(tmp_path / "input.npz")
    common = dict(cwd=tmp_path, env=ENV, capture_output=True, text=True)
    done = subprocess.run([sys.executable, "-m", "charrnn_ext.export", "input.npz",
                           "input.onnx"], preexec_fn=lambda: os.umask(0o022), **common)
    assert done.returncode == 0 and done.stdout == "wrote input.onnx\n", done.stderr
    assert os.stat(tmp_path / "input.onnx").st_mode & 0o777 == 0o644
    sampled = subprocess.run([sys.executable, "-m", "charrnn_ext.sample", "input.npz",
                              "--prime", "The ", "--temperature", "0", "--length", "200"],
                             **common)
    assert sampled.returncode == 0, sampled.stderr
    code = readme_block("onnxruntime")
    ran = subprocess.run([sys.executable, "-c", code], **common)
    assert ran.returncode == 0 and ran.stderr == "", ran.stderr
    assert ran.stdout == sampled.stdout


def test_refusals(tmp_path):
    ckpt = kind_checkpoint("gru", 1, 0, "float32", TEXT)
    with pytest.raises(ValueError, match="recurrence"):
        onnx_model(ckpt.model, ckpt.vocab.chars, recurrence="loop")
    with pytest.raises(ValueError, match="state"):
        onnx_model(ckpt.model, ckpt.vocab.chars, state=np.zeros(3))
    with pytest.raises(ValueError, match="vocabulary"):
        onnx_model(ckpt.model, ckpt.vocab.chars[:-1])
    assert OPSET >= 17
