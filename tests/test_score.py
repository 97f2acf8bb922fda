"""charrnn-score and charrnn_ext.score (static scoring): bits per character
from a zero state against the model's own loss and the numpy references,
from the state training left, per line, characters outside the vocabulary,
and the command (JSON, several files, standard input, one-line refusals).
Dynamic evaluation: test_dynamic.py."""
import json
import math

import numpy as np
import pytest

from charrnn_ext.core import reference, reference_gated
from charrnn_ext.page.inspection import trace
from charrnn_ext.use.scoring import known_ids, score, score_text

from conftest import assert_cli_refusal, run_cli, run_many
from model_kinds import TEXT, kinds, rtol_of, small_checkpoint

LN2 = math.log(2.0)
PIECE = "the quick brown fox jumps over the lazy dog.\nseven small birds sing\n\nover the fox\n"


def _reference_nats(ckpt, ids, h0) -> float:
    """The numpy reference's summed loss over ids[1:] from h0 (float64 models)."""
    model, params = ckpt.model, {k: np.array(v, dtype=np.float64) for k, v in ckpt.model.params.items()}
    if (model.cell, model.num_layers) == ("rnn", 1):
        hprev = np.zeros((model.hidden_size, 1)) if h0 is None else np.array(h0)
        return reference.lossFun(ids[:-1], ids[1:], hprev, params)[0]
    state = np.zeros((model.state_size, 1)) if h0 is None else np.array(h0)
    return reference_gated.batch_lossFun(model.cell, model.num_layers, [ids[:-1]], [ids[1:]],
                                         state, params)[0]


@kinds
def test_from_zero_is_the_models_own_loss(kind):
    """--from-zero over N characters: the mean surprise of characters 2..N,
    the model's loss from a zero state over the same ids (to 1e-9), and the
    numpy reference's for float64 models."""
    ckpt = small_checkpoint(kind)
    text = PIECE * 3
    ids = ckpt.vocab.encode(text)
    s = score_text(ckpt, text, from_zero=True)
    assert (s.characters, s.predictions) == (len(text), len(text) - 1)
    own = ckpt.model.loss(ids[:-1], ids[1:], None) / (len(text) - 1) / LN2
    assert s.bits_per_char == pytest.approx(own, rel=1e-9, abs=0)
    if kind[1] == "float64":
        ref = _reference_nats(ckpt, ids, None) / (len(text) - 1) / LN2
        assert s.bits_per_char == pytest.approx(ref, rel=1e-9, abs=0)


@kinds
def test_default_reads_from_the_state_training_left(kind):
    """By default the text is read from stream 0's state (as a --prime is):
    the loss from that state, which differs from the zero state's, and
    charrnn-inspect's mean surprise over the same text."""
    ckpt = small_checkpoint(kind)
    ids = ckpt.vocab.encode(PIECE)
    h0 = ckpt.hidden[:, :1]
    s = score_text(ckpt, PIECE)
    own = ckpt.model.loss(ids[:-1], ids[1:], h0) / (ids.size - 1) / LN2
    assert s.bits_per_char == pytest.approx(own, rel=1e-9, abs=0)
    assert abs(s.bits_per_char - score_text(ckpt, PIECE, from_zero=True).bits_per_char) > 1e-6
    assert s.bits_per_char == pytest.approx(trace(ckpt, PIECE).mean_surprise,
                                            rel=rtol_of(kind[1]), abs=0)
    if kind[1] == "float64":
        ref = _reference_nats(ckpt, ids, h0) / (ids.size - 1) / LN2
        assert s.bits_per_char == pytest.approx(ref, rel=1e-9, abs=0)


@kinds
def test_per_line_figures_add_up_and_each_is_its_lines(kind):
    """--per-line: one figure per line (its characters and its newline), each
    the loss of its characters read on from the text before it; together the
    whole text's figure. The first character (no prediction) is line 1's."""
    ckpt = small_checkpoint(kind)
    text = PIECE + "fox"                       # 5 lines: one empty, the last without a newline
    s = score_text(ckpt, text, per_line=True)
    assert [ln.line for ln in s.lines] == [1, 2, 3, 4, 5]
    lines = text.split("\n")
    sizes = [len(line) + 1 for line in lines[:-1]] + [len(lines[-1])]
    assert [ln.predictions for ln in s.lines] == [sizes[0] - 1] + sizes[1:]
    assert sum(ln.bits for ln in s.lines) == pytest.approx(s.bits, rel=1e-12)
    assert s.bits == pytest.approx(score_text(ckpt, text).bits, rel=rtol_of(kind[1]))
    ids, model, h0 = ckpt.vocab.encode(text), ckpt.model, ckpt.hidden[:, :1]
    a = sizes[0] + sizes[1]                    # line 3 ("\n") and line 4
    b = a + sizes[2] + sizes[3]
    h = model.advance(ids[:a - 1], h0)
    expected = model.loss(ids[a - 1:b - 1], ids[a:b], h) / LN2
    assert s.lines[2].bits + s.lines[3].bits == pytest.approx(expected, rel=rtol_of(kind[1]))
    assert s.lines[2].predictions == 1 and s.lines[2].bits_per_char is not None


def test_one_character_has_no_prediction():
    ckpt = small_checkpoint(("rnn", "float64", "1x-onehot"))
    s = score_text(ckpt, "t", per_line=True)
    assert (s.characters, s.predictions, s.bits, s.bits_per_char) == (1, 0, 0.0, None)
    assert [(ln.line, ln.predictions, ln.bits_per_char) for ln in s.lines] == [(1, 0, None)]


def test_unknown_characters_are_named_or_skipped():
    ckpt = small_checkpoint(("gru", "float64", "2x-embed5"))
    text = "the fox é sings ü over é"
    with pytest.raises(ValueError) as info:
        score_text(ckpt, text)
    message = str(info.value)
    assert "2 characters are not in the model's vocabulary" in message
    assert "'é' (U+00E9)" in message and "'ü' (U+00FC)" in message
    assert "3 in all, the first at position 8" in message
    skipped = score_text(ckpt, text, skip_unknown=True)
    clean = text.replace("é", "").replace("ü", "")
    plain = score_text(ckpt, clean)
    assert skipped.skipped == 3 and skipped.characters == len(clean)
    assert skipped.bits == plain.bits
    ids, kept = known_ids(ckpt.vocab, text, skip_unknown=True)
    assert np.array_equal(ids, ckpt.vocab.encode(clean)) and int((~kept).sum()) == 3


def test_score_reads_several_texts_from_the_same_start(tmp_path):
    ckpt = small_checkpoint(("lstm", "float32", "1x-onehot"))
    path = tmp_path / "m.npz"
    ckpt.save(path)
    a, b = score(str(path), [PIECE, TEXT[:300]])
    assert a.bits == score_text(ckpt, PIECE).bits and b.bits == score_text(ckpt, TEXT[:300]).bits


# -- the command ------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    ckpt = small_checkpoint(("gru", "float32", "2x-embed5"))
    ckpt.save(d / "m.npz")
    (d / "a.txt").write_text(PIECE, encoding="utf-8")
    (d / "b.txt").write_text(TEXT[:400], encoding="utf-8")
    (d / "bad.txt").write_text("the fox é\n", encoding="utf-8")
    return d, ckpt


def test_cli_figures_json_and_total(saved):
    d, ckpt = saved
    (rc, out, err), (rc2, out2, _) = run_many([
        ("score", "m.npz", "a.txt", "b.txt"),
        ("score", "m.npz", "a.txt", "b.txt", "--json", "--from-zero"),
    ], cwd=d)
    assert rc == 0 and err == "", err
    a, b = score_text(ckpt, PIECE), score_text(ckpt, TEXT[:400])
    lines = out.splitlines()
    assert lines[0] == (f"a.txt: {a.bits_per_char:.4f} bits/char ({len(PIECE)} characters, "
                        f"{len(PIECE) - 1} predicted)")
    assert lines[1].startswith(f"b.txt: {b.bits_per_char:.4f} bits/char")
    both = (a.bits + b.bits) / (a.predictions + b.predictions)
    assert lines[2] == f"all 2 files: {both:.4f} bits/char ({a.predictions + b.predictions:,} predicted)"
    assert rc2 == 0
    records = [json.loads(line) for line in out2.splitlines()]
    assert [r["file"] for r in records] == ["a.txt", "b.txt", None]
    za = score_text(ckpt, PIECE, from_zero=True)
    assert records[0]["bits_per_char"] == pytest.approx(za.bits_per_char, rel=1e-12)
    assert records[0]["start"] == "zero" and records[0]["dynamic"] is None
    assert records[0]["characters"] == len(PIECE) and records[0]["skipped"] == 0
    assert records[2]["files"] == 2 and records[2]["predictions"] == za.predictions + 399


def test_cli_standard_input_and_per_line(saved):
    d, ckpt = saved
    rc, out, err = run_cli("score", "m.npz", "-", "--per-line", "--json", cwd=d,
                           stdin=PIECE.encode())
    assert rc == 0, err
    record = json.loads(out)
    expected = score_text(ckpt, PIECE, per_line=True)
    assert record["file"] == "standard input" and len(record["lines"]) == 4
    assert [ln["predictions"] for ln in record["lines"]] == [ln.predictions for ln in expected.lines]
    rc, out, err = run_cli("score", "m.npz", "a.txt", "--per-line", cwd=d)
    assert rc == 0 and out.splitlines()[3].startswith("a.txt:3: ")


def test_cli_refusals(saved):
    d, _ = saved
    cases = [
        (("score", "m.npz", "a.txt", "bad.txt"), ("bad.txt: 1 character is not in the model's "
                                                  "vocabulary", "'é' (U+00E9)", "--skip-unknown")),
        (("score", "m.npz", "missing.txt"), ("missing.txt: no such file",)),
        (("score", "missing.npz", "a.txt"), ("missing.npz does not exist",)),
        (("score", "a.txt", "a.txt"), ("not a charrnn_ext checkpoint",)),
        (("score", "m.npz", "a.txt", "--per-line", "--dynamic"), ("--per-line", "--dynamic")),
        (("score", "m.npz", "a.txt", "--dynamic-lr", "0"), ("--dynamic-lr: must be positive",)),
        (("score", "m.npz"), ("the following arguments are required: FILE",)),
        (("score", "m.npz", "-", "-"), ("standard input",)),
    ]
    results = run_many([job for job, _ in cases], cwd=d)
    for (job, words), result in zip(cases, results):
        assert result[1] == "", job
        assert_cli_refusal(result, *words)
    rc, out, err = run_cli("score", "m.npz", "bad.txt", "--skip-unknown", cwd=d)
    assert rc == 0 and "1 unknown character skipped" in out, err


def test_cli_help_version_and_listing(saved):
    d, _ = saved
    (rc, out, _), (rc2, out2, _), (rc3, out3, _) = run_many([
        ("score", "--help"), ("score", "--version"), ("__main__",)], cwd=d)
    assert rc == 0 and "--dynamic" in out and "--skip-unknown" in out and "--json" in out
    assert rc2 == 0 and "(charrnn_ext)" in out2
    assert rc3 == 0 and "charrnn_ext.score" in out3 and "charrnn-score" in out3
