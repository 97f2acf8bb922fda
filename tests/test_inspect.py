"""charrnn-inspect without a browser: CharRNN.trace against the numpy reference, the
Inspection's numbers (the mean surprise is evaluate's), the ranking of units, the page's
embedded data, hostile text and vocabularies, and the command's refusals."""
from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import ENV, assert_cli_refusal, random_params, rel_err, run_cli, sha

import charrnn_ext
from charrnn_ext import CharRNN, Checkpoint, evaluate, load_checkpoint
from charrnn_ext.core import reference
from charrnn_ext.run import training
from charrnn_ext.page.inspection import (ActivationSet, find_training_text, rank_units, text_features,
                                 to_html, trace, training_split)

TRACE_RTOL = 1e-12
HOSTILE = ('</script><script>alert(1)</script> <img src=x onerror="alert(2)"> & &amp; '
           "<!-- '\"' --> <svg/onload=alert(3)> \u2028\u2029 </SCRIPT > \\u003c ")


def quoted_text(n_lines=120, seed=0) -> str:
    """Lines of words with "quoted speech" and (brackets), ~40 characters each."""
    rng = random.Random(seed)
    words = "the cat sat on a mat and said yes no maybe so we go home now".split()
    lines = []
    for _ in range(n_lines):
        w = [rng.choice(words) for _ in range(rng.randint(3, 7))]
        if rng.random() < 0.5:
            w.insert(rng.randint(0, len(w)), '"' + " ".join(rng.sample(words, 3)) + '"')
        if rng.random() < 0.4:
            w.insert(rng.randint(0, len(w)), "(" + " ".join(rng.sample(words, 2)) + ")")
        lines.append(" ".join(w) + ".")
    return "\n".join(lines) + "\n"


def env_for_cli():
    """ENV, with the package this test process imported first on the path when
    it is a source tree (a subprocess would otherwise import another copy)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(charrnn_ext.__file__)))
    if "site-packages" in root or "dist-packages" in root:
        return ENV
    return dict(ENV, PYTHONPATH=root)


def embedded(page: str) -> dict:
    """The JSON data block of a page."""
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def b64(data: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(data), dtype=dtype)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(directory, checkpoint path, text): a small model trained on quoted_text
    (300 steps, 10% held out) saved as words.npz beside words.txt."""
    d = tmp_path_factory.mktemp("inspect")
    text = quoted_text()
    (d / "words.txt").write_text(text, encoding="utf-8")
    training.run(text, {"hidden_size": 24, "seq_length": 16, "iters": 300, "eval_every": 300,
                        "val_fraction": 0.1, "sample_every": 10_000},
                 checkpoint=str(d / "words.npz"))
    return d, d / "words.npz", text


# -- CharRNN.trace: the core against the reference -------------------------------

@pytest.mark.parametrize("V, H, n, D", [(65, 100, 300, 0), (2, 1, 7, 0), (700, 50, 120, 0),
                                        (30, 8, 1, 0), (65, 40, 200, 6)])
def test_trace_matches_the_reference(V, H, n, D):
    rng = np.random.default_rng(V + H + n)
    params = random_params(V, H, rng)
    if D:   # an input embedding: embed (V, D), Wxh (H, D)
        params.update(Wxh=rng.standard_normal((H, D)) * 0.1, embed=rng.standard_normal((V, D)))
    model = CharRNN.from_params(params)
    assert model.embedding_size == D
    ids = rng.integers(0, V, n)
    ids[n // 2:n // 2 + 5] = ids[n // 2]     # repeated characters
    h0 = rng.standard_normal(H) * 0.5
    hs, probs = model.trace(ids, h0)
    ref_hs, ref_probs = reference.trace(list(ids), h0, model.params)
    assert hs.shape == (n, H) and probs.shape == (n, V)
    assert rel_err(hs, ref_hs) <= TRACE_RTOL
    assert rel_err(probs, ref_probs) <= TRACE_RTOL
    assert np.allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    # the recurrence is advance's, bit for bit, and the sum of the losses is loss's
    assert np.array_equal(hs[-1], model.advance(ids, h0).ravel())
    if n > 1:
        nats = -np.log(probs[np.arange(n - 1), ids[1:]]).sum()
        assert abs(nats - model.loss(ids[:-1], ids[1:], h0)) <= 1e-12 * nats


def test_trace_from_zero_and_its_argument_checks():
    model = CharRNN.from_params(random_params(11, 6, np.random.default_rng(0)))
    hs, _ = model.trace([1, 2, 3])
    assert np.array_equal(hs, model.trace([1, 2, 3], np.zeros((6, 1)))[0])
    with pytest.raises(ValueError, match="empty"):
        model.trace([])
    with pytest.raises(ValueError, match="outside|range"):
        model.trace([1, 11])
    with pytest.raises(ValueError, match="hprev"):
        model.trace([1], np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        model.trace([1], np.full(6, np.nan))


def test_trace_releases_the_gil():
    """While one thread traces a long text, another keeps running Python."""
    model = CharRNN.from_params(random_params(200, 200, np.random.default_rng(1)))
    ids = np.random.default_rng(2).integers(0, 200, 12_000)
    t0 = time.perf_counter()
    model.trace(ids)
    alone = time.perf_counter() - t0
    gaps, done = [], threading.Event()
    worker = threading.Thread(target=lambda: (model.trace(ids), done.set()))
    last = time.perf_counter()
    worker.start()
    while not done.is_set():
        time.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    worker.join()
    assert alone > 0.05, "the trace is too short to tell"
    assert max(gaps) < alone / 2, (max(gaps), alone)


def test_top_k_takes_the_likeliest_ties_to_the_smaller_id():
    from charrnn_ext.core._dispatch import core
    rng = np.random.default_rng(3)
    probs = rng.random((60, 40))
    probs[3] = 0.5                       # all tied
    probs[4, [9, 2, 7]] = 2.0            # a tie at the top
    probs[5, :] = 0.0
    probs[5, 39] = 1.0
    for k in (1, 5, 40):
        ids, top = np.empty((60, k), np.int32), np.empty((60, k))
        core.top_k(probs, ids, top)
        order = np.lexsort((np.broadcast_to(np.arange(40), probs.shape), -probs))[:, :k]
        assert np.array_equal(ids, order), k
        assert np.array_equal(top, np.take_along_axis(probs, order, axis=1))
    assert list(ids[4, :3]) == [2, 7, 9] and ids[5, 0] == 39


# -- the Inspection: where the read starts, the mean surprise ---------------------

def test_held_out_read_scores_what_evaluate_scores(trained):
    _, path, text = trained
    ckpt = load_checkpoint(path)
    ids, n_train = training_split(ckpt, text)
    for length in (2, 100, 10_000):   # length characters: the last training one, then P scored
        ins = trace(ckpt, training_text=text, length=length)
        P = min(length - 1, ids.size - n_train)
        assert ins.ids[0] == ids[n_train - 1] and ins.ids.size == P + 1
        assert np.array_equal(ins.ids, ids[n_train - 1:n_train + P])
        scores = evaluate(ckpt.model, ids, n_train, ckpt.hidden, ckpt.position, val_chars=P)
        assert abs(ins.mean_surprise - scores.val_bpc) <= 1e-12 * scores.val_bpc
        assert math.isnan(ins.surprise[0]) and np.isfinite(ins.surprise[1:]).all()


def test_held_out_read_with_streams():
    text = quoted_text(200, seed=5)
    result = training.run(text, {"hidden_size": 12, "seq_length": 10, "iters": 120,
                                 "batch_size": 3, "val_fraction": 0.2, "eval_every": 1000,
                                 "sample_every": 10_000})
    ckpt = result.run
    ids, n_train = training_split(ckpt, text)
    ins = trace(ckpt, training_text=text, length=501)    # 500 held-out characters scored
    scores = evaluate(ckpt.model, ids, n_train, ckpt.hidden, ckpt.position, val_chars=500)
    assert abs(ins.mean_surprise - scores.val_bpc) <= 1e-12 * scores.val_bpc
    assert "the state training left" in ins.start


def test_a_given_text_is_read_from_the_state_training_left(trained):
    _, path, text = trained
    ckpt = load_checkpoint(path)
    piece = text[:400]
    ins = trace(ckpt, piece)
    ids = ckpt.vocab.encode(piece)
    h0 = ckpt.hidden[:, :1]          # stream 0's, as sampling starts
    nats = ckpt.model.loss(ids[:-1], ids[1:], h0)
    assert abs(ins.mean_surprise - nats / (ids.size - 1) / math.log(2)) <= 1e-12 * ins.mean_surprise
    assert np.array_equal(ins.h0, h0.ravel()) and np.abs(ins.h0).max() > 0
    zero = trace(ckpt, piece, from_zero=True)
    assert not np.any(zero.h0) and zero.mean_surprise != ins.mean_surprise
    short = trace(ckpt, piece + "\u00e9", length=50, text_name="t.txt")   # é after the 50th
    assert short.text == piece[:50] and short.source == "t.txt: its first 50 characters"
    assert trace(ckpt, "t").mean_surprise != trace(ckpt, "t").mean_surprise   # NaN: none predicted
    # the raw arrays: one row per character, the guesses the likeliest, in order
    assert ins.hidden.shape == (400, 24) and ins.probs.shape == (400, len(ckpt.vocab))
    assert np.array_equal(ins.top_ids[:, 0], ins.probs.argmax(axis=1))
    assert np.all(np.diff(ins.top_probs, axis=1) <= 0)


def test_bad_texts_are_refused_with_a_clear_message(trained):
    ckpt = load_checkpoint(trained[1])
    with pytest.raises(ValueError, match="empty"):
        trace(ckpt, "")
    with pytest.raises(ValueError, match=r"2 characters .*'Z' \(U\+005A\), 'é'"):
        trace(ckpt, "the Z é cat")
    with pytest.raises(ValueError, match="not the one"):
        trace(ckpt, training_text=trained[2][:-1] + "x")


def test_the_training_text_is_found_beside_the_checkpoint(trained, tmp_path, monkeypatch):
    d, path, text = trained
    ckpt = load_checkpoint(path)
    assert find_training_text(str(path), ckpt) == (text, "words.txt")
    best = d / "words.best.npz"
    assert find_training_text(str(best), load_checkpoint(best))[1] == "words.txt"
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other.npz"
    other.write_bytes(path.read_bytes())
    assert find_training_text(str(other), ckpt) is None     # no other.txt
    (tmp_path / "other.txt").write_text(text[:-1] + "x", encoding="utf-8")
    assert find_training_text(str(other), ckpt) is None     # not the same text


# -- the ranking ---------------------------------------------------------------------

def test_ranking_finds_planted_units():
    text = quoted_text(60, seed=2)
    feats = text_features(text)
    rng = np.random.default_rng(0)
    hidden = rng.uniform(-0.3, 0.3, (len(text), 10))
    hidden[:, 7] = np.tanh(2 * feats["inside quotes"] - 1) + rng.normal(0, 0.05, len(text))
    hidden[:, 2] = -feats["position in line"] / 40
    hidden[:, 5] *= 5
    ranking = rank_units(text, hidden)
    best = {}
    for r in ranking:
        best.setdefault(r["feature"], r)
    assert best["inside quotes"]["unit"] == 7 and best["inside quotes"]["score"] > 0.9
    assert best["position in line"]["unit"] == 2 and best["position in line"]["score"] < -0.99
    assert best["highest variance"]["unit"] == 5
    assert ranking[0]["feature"] == "position in line"   # the clearest first
    assert "inside brackets" in best and "whitespace" in best
    no_quotes = rank_units("abc def\n" * 5, np.ones((40, 3)) * np.arange(3))
    assert {r["feature"] for r in no_quotes} == {"position in line", "whitespace",
                                                  "highest variance"}


def test_text_features():
    f = text_features('a "b" (c [d]) e\nxy')
    assert list(f["inside quotes"][:6]) == [0, 0, 1, 1, 0, 0]
    assert list(f["inside brackets"][5:15]) == [0, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    assert list(f["position in line"][-4:]) == [15, 0, 1, 2]
    assert f["whitespace"].sum() == 5


# -- the page's data -------------------------------------------------------------------

def test_the_page_embeds_the_inspection(trained):
    ckpt = load_checkpoint(trained[1])
    ins = trace(ckpt, trained[2][:700], name="words.npz")
    page = to_html(ins)
    data = embedded(page)
    n, H, K = 700, 24, 5
    assert data["format"] == 1 and data["n"] == n and data["k"] == K
    assert "".join(map(chr, data["text"])) == ins.text
    assert "".join(map(chr, data["vocab"])) == ckpt.vocab.chars
    assert np.array_equal(b64(data["top_ids"], "<u4").reshape(n, K), ins.top_ids)
    probs = b64(data["top_probs"], "<u2").reshape(n, K) / 65535
    assert np.abs(probs - ins.top_probs).max() <= 0.5 / 65535 + 1e-12
    surprise = b64(data["surprise"], "<f4")
    assert np.isnan(surprise[0]) and np.allclose(surprise[1:], ins.surprise[1:], rtol=1e-6)
    (h,) = data["sets"]
    assert (h["name"], h["units"]) == ("h", H) and h["scale"] == [1.0] * H
    values = b64(h["values"], "i1").reshape(H, n) / 127
    assert np.abs(values - ins.hidden.T).max() <= 0.5 / 127 + 1e-12
    assert data["ranking"] == ins.ranking()
    assert data["mean_surprise"] == ins.mean_surprise
    summary = dict(data["summary"])
    assert summary["vocabulary"] == f"{len(ckpt.vocab)} characters"
    assert summary["hidden size"] == "24" and summary["iteration"] == "300"
    assert summary["validation"].startswith(f"{ckpt.history['val_bpc'][-1]:.4f} bits/char")
    assert "tanh" in summary["cell"]


def test_more_activation_sets_travel_with_their_scales(trained):
    """A set that is not a tanh state (an LSTM's cell state, later) is scaled
    per unit; the page lists every set."""
    ins = trace(load_checkpoint(trained[1]), trained[2][:300])
    cell = ins.hidden * np.linspace(1, 8, 24)
    ins.sets["c"] = ActivationSet("cell state c", cell, bounded=False)
    h, c = embedded(to_html(ins))["sets"]
    assert (h["name"], c["name"], c["label"], c["units"]) == ("h", "c", "cell state c", 24)
    assert np.allclose(c["scale"], np.abs(cell).max(axis=0), rtol=1e-15)
    values = b64(c["values"], "i1").reshape(24, 300) / 127 * np.array(c["scale"])[:, None]
    assert np.all(np.abs(values - cell.T) <= 0.5 / 127 * np.array(c["scale"])[:, None] + 1e-12)


@pytest.mark.parametrize("live", [True, False], ids=["live", "static"])
def test_the_page_is_self_contained(trained, live):
    page = to_html(load_checkpoint(trained[1]), trained[2][:200], live=live)
    assert not re.search(r"(src|href)\s*=|https?:|@import|url\(", page.split('id="data">')[0])
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1)
    assert "default-src 'none'" in csp and "unsafe" not in csp
    # the data (and a live page's model) blocks, then the script (and the live page's)
    scripts = 4 if live else 2
    assert page.count("<script") == scripts and page.count("</script>") == scripts
    assert csp.count("'sha256-") == scripts // 2 + 1    # each script and the style, by hash
    assert ('id="model"' in page) == live


def test_hostile_text_and_vocabulary_stay_data(tmp_path):
    """Text that is markup, in the text and in the vocabulary: the page's
    markup is the template's alone, and the data decodes to the text."""
    text = (HOSTILE + quoted_text(20)) * 3
    result = training.run(text, {"hidden_size": 8, "seq_length": 8, "iters": 20,
                                 "val_fraction": 0.0, "sample_every": 10_000,
                                 "eval_every": 10_000})
    ckpt = result.run
    assert "<" in ckpt.vocab.chars and "\u2028" in ckpt.vocab.chars
    page = to_html(ckpt, HOSTILE * 2, name='<img src=x onerror="alert(4)">.npz')
    template = to_html(ckpt, "ab", name="x.npz")
    # the page's markup outside the data block is the same as for a harmless text
    outside = page.split('id="data">')[0] + page.split("</script>", 1)[1]
    assert outside == template.split('id="data">')[0] + template.split("</script>", 1)[1]
    block = page.split('id="data">')[1].split("</script>")[0]
    assert not set(block) & set("<>&\u2028\u2029") and block.isascii()
    data = embedded(page)
    assert "".join(map(chr, data["text"])) == HOSTILE * 2
    assert data["name"] == '<img src=x onerror="alert(4)">.npz'


# -- the command -------------------------------------------------------------------------

def test_the_command_writes_the_page(trained, tmp_path):
    d, path, text = trained
    (tmp_path / "t.txt").write_text(text[:500], encoding="utf-8")
    out = tmp_path / "page.html"
    code, stdout, err = run_cli("inspect", path, "t.txt", "--out", out, "--length", 300,
                                cwd=tmp_path, env=env_for_cli())
    assert code == 0, err
    data = embedded(out.read_text(encoding="utf-8"))
    assert data["n"] == 300 and "mean surprise" in stdout
    assert dict(data["summary"])["text"] == "t.txt: its first 300 characters"
    before = sha(out)
    result = run_cli("inspect", path, "t.txt", "--out", out, cwd=tmp_path, env=env_for_cli())
    assert_cli_refusal(result, "already exists", "--overwrite")   # never without asking
    assert sha(out) == before
    code, _, err = run_cli("inspect", path, "t.txt", "--out", out, "--overwrite", cwd=tmp_path,
                           env=env_for_cli())            # a page may be replaced when asked
    assert code == 0, err
    assert sha(out) != before
    code, stdout, err = run_cli("inspect", path, "--out", "held.html", cwd=d, env=env_for_cli())
    assert code == 0, err
    assert "held-out" in dict(embedded((d / "held.html").read_text())["summary"])["text"]


def test_the_command_refuses_bad_input(trained, tmp_path):
    d, path, text = trained
    env = env_for_cli()
    (tmp_path / "t.txt").write_text("the cat", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "odd.txt").write_text("the Zebra", encoding="utf-8")
    model = tmp_path / "m.npz"
    model.write_bytes(path.read_bytes())
    before = {p.name: sha(p) for p in tmp_path.iterdir()}
    cases = [
        (("t.txt", "t.txt", "--out", "x.html"), ("t.txt",)),                 # not a checkpoint
        (("m.npz", "empty.txt", "--out", "x.html"), ("empty",)),
        (("m.npz", "odd.txt", "--out", "x.html"), ("'Z' (U+005A)", "vocabulary")),
        (("m.npz", "t.txt", "--out", "m.npz"), ("same file",)),
        (("m.npz", "t.txt", "--out", "t.txt"), ("same file",)),
        (("m.npz", "--out", "x.html"), ("no TEXT given",)),                   # no words.txt here
        (("m.npz", "t.txt", "--out", "nowhere/x.html"), ("does not exist",)),
        (("m.npz", "t.txt"), ("--out",)),
        (("m.npz", "t.txt", "--out", "odd.txt"), ("already exists", "--overwrite")),
        (("m.npz", "t.txt", "--out", "odd.txt", "--overwrite"), ("not a web page",)),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:   # each run is mostly start-up
        results = list(pool.map(lambda case: run_cli("inspect", *case[0], cwd=tmp_path,
                                                     env=env), cases))
    for (args, words), result in zip(cases, results):
        assert_cli_refusal(result, *words)
    assert {p.name: sha(p) for p in tmp_path.iterdir()} == before


def test_an_embedded_adam_model_reads_as_its_one_hot_twin():
    """A batched-recipe checkpoint (Adam, an input embedding): the trace
    reads the embedding -- hidden states and predictions equal those of the
    one-hot model Wxh @ embed.T, which computes the same function."""
    from conftest import ADAM_EMBED, CHECKPOINT_TEXT, trained_checkpoint
    ckpt = trained_checkpoint(steps=20, **ADAM_EMBED)
    params = {n: np.array(ckpt.model.params[n]) for n in ("Whh", "Why", "bh", "by")}
    params["Wxh"] = np.array(ckpt.model.params["Wxh"]) @ np.array(ckpt.model.params["embed"]).T
    twin = Checkpoint(model=CharRNN.from_params(params), vocab=ckpt.vocab, hidden=ckpt.hidden,
                      rng=np.random.default_rng(0), iteration=ckpt.iteration,
                      position=ckpt.position)
    text = CHECKPOINT_TEXT[:300]
    got, want = trace(ckpt, text), trace(twin, text)
    assert rel_err(got.hidden, want.hidden) < 1e-12
    assert rel_err(got.probs, want.probs) < 1e-12
    assert got.mean_surprise == pytest.approx(want.mean_surprise, rel=1e-12)
    ids = ckpt.vocab.encode(text)
    h = ckpt.model.advance(ids, ckpt.hidden)
    assert rel_err(got.hidden[-1], h.ravel()) < 1e-12


@pytest.mark.parametrize("cell, layers, width, dtype", [
    ("rnn", 1, 0, "float64"), ("rnn", 2, 0, "float32"), ("lstm", 1, 0, "float64"),
    ("lstm", 2, 4, "float32"), ("gru", 1, 4, "float64"), ("gru", 3, 0, "float32")])
def test_the_page_names_the_cell_it_shows(cell, layers, width, dtype):
    """The summary's cell: min-char-rnn's equation for its tanh RNN only; an
    LSTM, a GRU or stacked tanh layers by name and layers; the input; the dtype."""
    from charrnn_ext.page.render import page_data
    text = "the quick brown fox. " * 20
    vocab = charrnn_ext.Vocab.from_text(text)
    model = CharRNN(len(vocab), 6, 0, cell=cell, num_layers=layers, embedding_size=width,
                    dtype=dtype)
    summary = dict(page_data(trace(Checkpoint(model=model, vocab=vocab), text))["summary"])
    name = "vanilla RNN, h = tanh(Wxh x + Whh h + bh)" if (cell, layers) == ("rnn", 1) else (
        f"{ {'rnn': 'tanh RNN', 'lstm': 'LSTM', 'gru': 'GRU'}[cell]}, {layers} "
        f"layer{'s' if layers > 1 else ''} (PyTorch's equations)")
    width_says = f"x the input's embedding (width {width})" if width else "x one-hot"
    assert summary["cell"] == f"{name}, {width_says}" + ("" if dtype == "float64" else
                                                          ", float32")
