"""Dynamic evaluation (charrnn-score --dynamic, charrnn_ext.use.scoring.dynamic_bits):
each chunk scored before the model learns from it (the first chunk as the
static score scores it, no chunk depending on the text after it), the
steps those of a copy (the model and its file never changed), and a
repeated passage predicted far better the second time."""
import json
import math

import numpy as np
import pytest

from charrnn_ext.use.scoring import Dynamic, dynamic_bits, score_text, static_bits

from conftest import run_cli, run_many, same_model, sha
from model_kinds import kinds, rtol_of, small_checkpoint

LN2 = math.log(2.0)
TEXT = "the quick brown fox jumps over the lazy dog. seven small birds sing.\n" * 4


@kinds
def test_first_chunk_scores_as_the_static_score(kind):
    """Chunk 0 is predicted by the trained weights, from the start state: its
    bits are the static score of the same characters; every later chunk
    differs (the weights have learned)."""
    ckpt = small_checkpoint(kind)
    ids, h0 = ckpt.vocab.encode(TEXT), ckpt.hidden[:, :1]
    dyn = Dynamic(learning_rate=0.01, chunk=20)
    chunks = dynamic_bits(ckpt.model, ids, h0, dyn)
    assert chunks.size == math.ceil((ids.size - 1) / 20)
    static = static_bits(ckpt.model, ids, h0, list(range(1, ids.size, 20)) + [ids.size])
    assert chunks[0] == pytest.approx(static[0], rel=rtol_of(kind[1]), abs=0)
    assert np.all(np.abs(chunks[1:] - static[1:]) > 1e-6 * np.abs(static[1:]))
    s = score_text(ckpt, TEXT, dynamic=dyn)
    assert s.bits == pytest.approx(chunks.sum(), rel=1e-12) and s.dynamic == dyn


@kinds
def test_no_chunk_reads_the_text_after_it(kind):
    """Scored before learned from: changing the text from chunk k on leaves
    the scores of chunks 0..k-1 exactly as they were."""
    ckpt = small_checkpoint(kind)
    ids = ckpt.vocab.encode(TEXT)
    other = ids.copy()
    other[61:] = ids[::-1][:ids.size - 61]     # chunk 3 of 20 on (predictions from id 61)
    dyn = Dynamic(learning_rate=0.01, chunk=20)
    a = dynamic_bits(ckpt.model, ids, ckpt.hidden[:, :1], dyn)
    b = dynamic_bits(ckpt.model, other, ckpt.hidden[:, :1], dyn)
    assert np.array_equal(a[:3], b[:3])
    assert a[3] != b[3]


@kinds
def test_a_repeated_passage_is_learnt(kind):
    """A sentence the model has not seen, read eight times in chunks of its
    length: the frozen model scores every repeat about the same, dynamic
    evaluation each repeat lower than the one before, the last far lower."""
    ckpt = small_checkpoint(kind)
    passage = "a lazy fox sings to the brown birds over the dog and quick small.\n"
    n = len(passage)
    ids, h0 = ckpt.vocab.encode(passage * 8), ckpt.hidden[:, :1]
    static = static_bits(ckpt.model, ids, h0, list(range(1, ids.size, n)) + [ids.size]) / n
    dynamic = dynamic_bits(ckpt.model, ids, h0, Dynamic(learning_rate=0.1, chunk=n)) / n
    assert abs(static[-1] - static[0]) < 0.2, static
    assert np.all(np.diff(dynamic) < 0), dynamic
    assert dynamic[-1] < static[-1] - 0.8, (static, dynamic)
    assert dynamic.sum() < static.sum() - 0.3 * dynamic.size


@kinds
def test_the_model_is_not_changed(kind):
    """The checkpoint's model keeps its weights and optimizer state (dropout
    models too: the copy has none)."""
    ckpt = small_checkpoint(kind, optimizer="adam")
    before = ckpt.model.copy()
    score_text(ckpt, TEXT, dynamic=Dynamic(0.01, 10))
    assert same_model(ckpt.model, before)


def test_dropout_is_off_while_scoring():
    """A model trained with dropout scores deterministically (the adapted copy has none)."""
    ckpt = small_checkpoint(("lstm", "float64", "2x-embed5"))
    params = {k: np.array(v) for k, v in ckpt.model.params.items()}
    from charrnn_ext.core.model import CharRNN
    ckpt.model = CharRNN.from_params(params, dropout=0.5, seed=1)
    dyn = Dynamic(0.01, 20)
    a, b = (score_text(ckpt, TEXT, dynamic=dyn).bits for _ in range(2))
    assert a == b
    plain = CharRNN.from_params(params)
    ids, h0 = ckpt.vocab.encode(TEXT), ckpt.hidden[:, :1]
    assert np.array_equal(dynamic_bits(plain, ids, h0, dyn), dynamic_bits(ckpt.model, ids, h0, dyn))


def test_settings_are_checked():
    for lr in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="learning rate"):
            Dynamic(learning_rate=lr)
    for chunk in (0, 2.5, True):
        with pytest.raises(ValueError, match="chunk"):
            Dynamic(chunk=chunk)


def test_cli_dynamic_leaves_the_file_as_it_was(tmp_path):
    ckpt = small_checkpoint(("gru", "float32", "2x-embed5"), optimizer="adam")
    path = tmp_path / "m.npz"
    ckpt.save(path)
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    digest, mtime = sha(path), path.stat().st_mtime_ns
    (rc, out, err), (rc2, out2, err2), (rc3, out3, err3) = run_many([
        ("score", "m.npz", "t.txt", "--dynamic", "--dynamic-lr", 0.01, "--dynamic-chunk", 20),
        ("score", "m.npz", "t.txt", "--dynamic", "--dynamic-lr", 1e38),
        ("score", "m.npz", "t.txt", "--dynamic", "--dynamic-lr", 1e6),
    ], cwd=tmp_path)
    assert rc == 0, err
    expected = score_text(ckpt, TEXT, dynamic=Dynamic(0.01, 20))
    assert out.startswith(f"t.txt: {expected.bits_per_char:.4f} bits/char")
    assert sha(path) == digest and path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "t.txt"]
    # a learning rate far too large: the weights overflow, said in one line
    assert rc2 == 1 and out2 == "" and err2.count("\n") == 1, (rc2, out2, err2)
    assert "t.txt: dynamic evaluation diverged" in err2 and "--dynamic-lr" in err2
    # large enough to ruin the figures, not to overflow: the figure, and a warning
    assert rc3 == 0 and out3.startswith("t.txt: ") and err3.count("\n") == 1, (out3, err3)
    assert "worse than a uniform guess" in err3 and "--dynamic-lr 1e+06" in err3
    assert sha(path) == digest


def test_the_default_rate_is_a_third_of_the_one_training_ended_at(tmp_path):
    """Without a learning rate: a third of the model's --learning-rate times
    --lr-decay (the floor its schedule fell to), as the command's JSON reports it."""
    ckpt = small_checkpoint(("gru", "float64", "1x-onehot"), optimizer="adam")
    ckpt.hyperparameters.update(learning_rate=0.012, lr_decay=0.25)
    s = score_text(ckpt, TEXT, dynamic=Dynamic())
    assert s.dynamic == Dynamic(0.001, 25)
    assert s.bits == score_text(ckpt, TEXT, dynamic=Dynamic(0.001, 25)).bits
    ckpt.save(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    rc, out, err = run_cli("score", "m.npz", "t.txt", "--dynamic", "--json", cwd=tmp_path)
    assert rc == 0, err
    record = json.loads(out)
    assert record["dynamic"] == {"learning_rate": 0.001, "chunk": 25}
    assert record["bits"] == pytest.approx(s.bits, rel=1e-12)
