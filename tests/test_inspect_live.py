"""charrnn-inspect's live page in headless Chromium: window.charrnn.next equals the core's
model.trace for every kind of model, typing shows the guesses and surprise, Continue samples,
hostile text and vocabularies stay data, a keystroke's cost at H 512, the page's size and the
static page above the weights' limit.

Needs selenium and Debian's chromium and chromium-driver, as test_inspect_browser.py (whose
browser helpers this reuses); without them the browser tests are skipped with the reason.
"""
from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from charrnn_ext import CharRNN, Checkpoint, Vocab
from charrnn_ext.page.live import LIVE_BYTES, live_data, weight_bytes
from charrnn_ext.core.torch_layout import state_dict
from charrnn_ext.cli.inspect import main
from charrnn_ext.page.inspection import to_html, trace

from model_kinds import KIND_IDS, KINDS, TEXT, small_checkpoint
from test_inspect_browser import HOSTILE, console_errors, driver, open_page  # noqa: F401


def write_page(tmp_path, ckpt, text, name="live.html", **options):
    path = tmp_path / name
    path.write_text(to_html(ckpt, text, **options), encoding="utf-8")
    return path


def js_next(drv, text: str) -> np.ndarray:
    return np.array(drv.execute_script("return window.charrnn.next(arguments[0])", text))


def first_guess_probs(model, h0) -> np.ndarray:
    """softmax(Why h + by) of the top layer's h of state h0 (S,): the model's
    guess before it reads anything (numpy, float64)."""
    sd = state_dict(model)
    top = np.asarray(model.top_hidden(np.asarray(h0, model.dtype).reshape(-1, 1))).reshape(-1)
    z = sd["out.weight"].astype(float) @ top.astype(float) + sd["out.bias"].astype(float)
    e = np.exp(z - z.max())
    return e / e.sum()


def typed(drv, keys) -> None:
    drv.find_element("id", "live-text").send_keys(keys)


def shown_guesses(drv) -> list:
    return [td.text for td in drv.find_elements("css selector", "#live-guesses td.g")]


LABEL = {" ": "\u2423", "\n": "\u21b5", "\t": "\u21e5"}


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_next_equals_the_cores_trace(driver, tmp_path, kind):  # noqa: F811
    ckpt = small_checkpoint(kind)
    page = write_page(tmp_path, ckpt, TEXT[:200])
    open_page(driver, page)
    assert console_errors(driver) == []
    assert driver.execute_script("return window.charrnn.vocab") == list(ckpt.vocab.chars)
    h0 = ckpt.hidden[:, 0].copy()
    for n in (1, 7, 60):
        text = TEXT[300:300 + n]
        _, probs = ckpt.model.trace(ckpt.vocab.encode(text), h0)
        got = js_next(driver, text)
        assert got.shape == (len(ckpt.vocab),)
        np.testing.assert_allclose(got, probs[-1], rtol=0, atol=1e-6, err_msg=f"{kind} {n}")
    np.testing.assert_allclose(js_next(driver, ""), first_guess_probs(ckpt.model, h0),
                               rtol=0, atol=1e-6)
    bad = driver.execute_script(
        "try { window.charrnn.next('ab\u00e9'); return null } catch (e) { return e.message }")
    assert bad and "U+00E9" in bad


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_next_of_min_char_rnns_model_with_an_embedding(driver, tmp_path, dtype):  # noqa: F811
    """min-char-rnn's model (CharRNN, no bias_hh) reading an embedding, from a state
    of its own (not zero)."""
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(len(vocab), 16, seed=4, embedding_size=6, dtype=dtype)
    h0 = np.tanh(np.random.default_rng(0).standard_normal((16, 1)))
    ckpt = Checkpoint(model=model, vocab=vocab, hidden=h0)
    open_page(driver, write_page(tmp_path, ckpt, TEXT[:50]))
    text = TEXT[100:140]
    _, probs = model.trace(vocab.encode(text), h0[:, 0].copy())
    np.testing.assert_allclose(js_next(driver, text), probs[-1], rtol=0, atol=1e-6)


def test_the_page_reads_from_the_state_its_text_starts_from(driver, tmp_path):  # noqa: F811
    """With --from-zero the text, and so the box, start from a zero state."""
    ckpt = small_checkpoint(("gru", "float64", "1x-onehot"))
    page = write_page(tmp_path, ckpt, TEXT[:100], from_zero=True)
    open_page(driver, page)
    text = TEXT[:25]
    _, probs = ckpt.model.trace(ckpt.vocab.encode(text), np.zeros(ckpt.model.state_size))
    np.testing.assert_allclose(js_next(driver, text), probs[-1], rtol=0, atol=1e-9)


@pytest.fixture
def gru_page(tmp_path):
    ckpt = small_checkpoint(("gru", "float32", "2x-embed5"))
    return ckpt, write_page(tmp_path, ckpt, TEXT[:300])


def test_typing_shows_the_guesses_and_surprise(driver, gru_page):  # noqa: F811
    from selenium.webdriver.common.keys import Keys
    ckpt, page = gru_page
    open_page(driver, page)
    vocab, h0 = ckpt.vocab.chars, ckpt.hidden[:, 0].copy()

    def check(text):
        ids = ckpt.vocab.encode(text)
        _, probs = ckpt.model.trace(ids, h0)
        top = sorted(range(len(vocab)), key=lambda j: (-probs[-1][j], j))[:5]
        assert shown_guesses(driver) == [LABEL.get(vocab[j], vocab[j]) for j in top]
        spans = driver.find_elements("css selector", "#typed-surprise span")
        assert "".join(s.text for s in spans) == text.replace("\n", "\u21b5\n")
        before = np.vstack([first_guess_probs(ckpt.model, h0), probs[:-1]])
        bits = -np.log2(before[np.arange(len(ids)), ids])
        titles = [s.get_attribute("title") for s in spans]
        assert titles == [f"surprise {b:.2f} bits" for b in bits]

    unit = driver.find_element("id", "unit").get_attribute("value")
    typed(driver, "jumps the small")
    check("jumps the small")
    # j and k step the units, but not while typing
    assert driver.find_element("id", "unit").get_attribute("value") == unit
    typed(driver, Keys.BACKSPACE * 3)
    check("jumps the sm")
    # a paste: the box's whole value changes at once
    driver.execute_script("const b = document.getElementById('live-text');"
                          "b.value = arguments[0]; b.dispatchEvent(new Event('input'))",
                          "Dogs over the")
    check("Dogs over the")
    unit = int(driver.find_element("id", "unit").get_attribute("value"))
    colours = lambda: [s.value_of_css_property("background-color")  # noqa: E731
                       for s in driver.find_elements("css selector", "#typed span")]
    before = colours()
    states, _ = ckpt.model.trace(ckpt.vocab.encode("Dogs over the"), h0)
    top = np.asarray(ckpt.model.top_hidden(states.T)).T[:, unit]
    for t in range(len(top)):   # the static view's colours: positive orange, negative blue
        if abs(top[t]) > 0.05:
            assert ("226, 107, 36" in before[t]) == (top[t] > 0), (t, top[t], before[t])
    assert driver.find_element("id", "typed-unit").text == f"h[{unit}]"
    driver.find_element("id", "next").click()
    assert colours() != before and console_errors(driver) == []
    assert driver.find_element("id", "typed-unit").text == f"h[{(unit + 1) % 10}]"
    typed(driver, "\u00e9x")   # not in the vocabulary: struck out, skipped
    assert driver.find_elements("css selector", "#typed span.unknown")
    assert "not in the model's vocabulary" in driver.find_element("id", "live-stat").text
    np.testing.assert_allclose(
        ckpt.model.trace(ckpt.vocab.encode("Dogs over thex"), h0)[1][-1],
        js_next(driver, "Dogs over thex"), atol=1e-6)


def generate(drv, n, seed, temperature="1", top_k="0") -> str:
    for field, value in (("gen-n", n), ("gen-seed", seed), ("gen-t", temperature),
                         ("gen-k", top_k)):
        box = drv.find_element("id", field)
        box.clear()
        box.send_keys(str(value))
    drv.find_element("id", "continue").click()
    for _ in range(400):
        if drv.execute_script("return document.getElementById('generated').dataset.done"):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the continuation never finished")
    return drv.execute_script("return document.getElementById('generated').textContent")


def test_continue_generates_n_characters(driver, gru_page):  # noqa: F811
    ckpt, page = gru_page
    open_page(driver, page)
    typed(driver, "The ")
    a = generate(driver, 300, 7)
    assert len(a) == 300 and set(a) <= set(ckpt.vocab.chars)
    assert generate(driver, 300, 7) == a           # a seed repeats its sample
    assert generate(driver, 300, 8) != a
    greedy = generate(driver, 40, 1, temperature="0")
    text, expected = "The ", []
    for _ in range(40):   # greedy decoding is the likeliest character each step, as the core says
        _, probs = ckpt.model.trace(ckpt.vocab.encode(text), ckpt.hidden[:, 0].copy())
        text += ckpt.vocab.chars[int(np.argmax(probs[-1]))]
    assert greedy == text[4:]
    top1 = generate(driver, 40, 3, top_k="1")
    assert top1 == greedy
    assert console_errors(driver) == []


def test_hostile_vocabulary_and_typing_stay_data(driver, tmp_path):  # noqa: F811
    vocab = Vocab.from_text(HOSTILE)
    model = CharRNN(len(vocab), 12, seed=1, cell="lstm", dtype="float32")
    ckpt = Checkpoint(model=model, vocab=vocab, hidden=np.zeros((model.state_size, 1)),
                      position=0, iteration=0, hyperparameters={"hidden_size": 12})
    html = to_html(ckpt, HOSTILE)
    block = re.search(r'<script type="application/json" id="model">(.*?)</script>', html,
                      re.S).group(1)
    assert "<" not in block and ">" not in block and "&" not in block
    assert json.loads(block)["vocab_size"] == len(vocab)
    page = tmp_path / "hostile.html"
    page.write_text(html, encoding="utf-8")
    open_page(driver, page)
    assert driver.execute_script("return window.charrnn.vocab") == list(vocab.chars)
    hostile = HOSTILE.replace("\u2028", "")
    typed(driver, hostile)
    generate(driver, 500, 1)
    assert driver.execute_script("return window.pwned") is None
    for tag in ("img", "svg", "b"):
        assert driver.find_elements("tag name", tag) == []
    assert len(driver.find_elements("tag name", "script")) == 4   # data, model, two scripts
    shown = driver.execute_script("return document.getElementById('typed').textContent")
    assert shown == hostile.replace("\n", "\u21b5\n")
    assert console_errors(driver) == []


def h512_page(tmp_path, cell, layers=1):
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(len(vocab), 512, seed=2, cell=cell, num_layers=layers, dtype="float32")
    ckpt = Checkpoint(model=model, vocab=vocab, hidden=np.zeros((model.state_size, 1)),
                      position=0, iteration=0, hyperparameters={"hidden_size": 512})
    return write_page(tmp_path, ckpt, TEXT[:500], name=f"{cell}{layers}.html")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_keystroke_at_h512_costs_one_step(driver, tmp_path, cell):  # noqa: F811
    open_page(driver, h512_page(tmp_path, cell))
    typed(driver, TEXT[:80])
    ms = np.array(driver.execute_script("return window.charrnn.keystrokeMs()"))[1:]
    print(f"\n{cell} H 512, V {len(set(TEXT))}: a keystroke takes {np.median(ms):.2f} ms "
          f"(median of {ms.size}; max {ms.max():.1f} ms) in headless Chromium")
    assert ms.size == 80
    assert np.median(ms) < 16   # the aim: one step, within a frame


def test_a_long_paste_is_read_in_pieces(driver, tmp_path):  # noqa: F811
    """At H 512 a paste of 600 characters is read in tasks of about 12 ms, the page
    answering between them, until all are read."""
    open_page(driver, h512_page(tmp_path, "gru"))
    text = (TEXT * 3)[:600]
    driver.execute_script("const b = document.getElementById('live-text');"
                          "b.value = arguments[0]; b.dispatchEvent(new Event('input'))", text)
    for _ in range(600):
        if len(driver.find_elements("css selector", "#typed span")) == 600:
            break
        time.sleep(0.05)
    shown = driver.execute_script("return document.getElementById('typed').textContent")
    assert shown == text.replace("\n", "\u21b5\n")
    assert len(driver.execute_script("return window.charrnn.keystrokeMs()")) > 3
    assert "reading" not in driver.find_element("id", "live-stat").text


def test_the_page_size_of_the_readmes_models(tmp_path, capsys):
    """GRU and LSTM 384 with an embedding of 128 over 65 characters (the README's
    recommended commands, float32): their pages carry the model."""
    vocab = Vocab("".join(chr(c) for c in range(32, 97)))
    for cell in ("gru", "lstm"):
        model = CharRNN(65, 384, seed=1, cell=cell, embedding_size=128, dtype="float32")
        ckpt = Checkpoint(model=model, vocab=vocab, hidden=np.zeros((model.state_size, 1)),
                          position=0, iteration=0, hyperparameters={})
        text = "".join(vocab.chars) * 46   # 2,990 characters, about the default 3,000
        live, static = to_html(ckpt, text), to_html(ckpt, text, live=False)
        assert weight_bytes(model) < LIVE_BYTES
        assert len(live) - len(static) == pytest.approx(weight_bytes(model) * 4 / 3, rel=0.01)
        with capsys.disabled():
            print(f"\n{cell} 384, embedding 128, V 65: weights {weight_bytes(model) / 1e6:.1f} MB,"
                  f" page of 2,990 characters {len(live) / 1e6:.1f} MB "
                  f"(static {len(static) / 1e6:.1f} MB)")


def test_live_data_checks_the_state():
    model = CharRNN(5, 4, seed=1, cell="gru")
    with pytest.raises(ValueError, match="starting state"):
        live_data(model, np.zeros(3))


@pytest.fixture
def small_run(tmp_path):
    ckpt = small_checkpoint(("lstm", "float32", "1x-onehot"))
    ckpt.save(tmp_path / "m.npz")
    (tmp_path / "t.txt").write_text(TEXT[:200], encoding="utf-8")
    return tmp_path


def test_the_command_writes_the_live_page_or_the_static_one(small_run, monkeypatch, capsys):
    d = small_run
    assert main([str(d / "m.npz"), str(d / "t.txt"), "--out", str(d / "a.html")]) == 0
    assert 'id="model"' in (d / "a.html").read_text(encoding="utf-8")
    assert main([str(d / "m.npz"), str(d / "t.txt"), "--out", str(d / "b.html"),
                 "--static"]) == 0
    assert 'id="model"' not in (d / "b.html").read_text(encoding="utf-8")
    capsys.readouterr()
    monkeypatch.setattr("charrnn_ext.cli.inspect.LIVE_BYTES", 1000)
    assert main([str(d / "m.npz"), str(d / "t.txt"), "--out", str(d / "c.html")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "slow to open" in out[0] and "static page" in out[0]
    assert 'id="model"' not in (d / "c.html").read_text(encoding="utf-8")


def test_the_help_says_when_the_page_is_static(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--static" in out and "16 MB" in out


def test_a_page_at_the_weights_limit_opens_quickly(driver, tmp_path):  # noqa: F811
    """A model of just under LIVE_BYTES of weights (LSTM 960, float32)."""
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(len(vocab), 960, seed=2, cell="lstm", dtype="float32")
    assert 0.9 * LIVE_BYTES < weight_bytes(model) <= LIVE_BYTES
    ckpt = Checkpoint(model=model, vocab=vocab, hidden=np.zeros((model.state_size, 1)),
                      position=0, iteration=0, hyperparameters={})
    page = write_page(tmp_path, ckpt, TEXT[:3000])
    t0 = time.perf_counter()
    painted = open_page(driver, page)
    wall = time.perf_counter() - t0
    assert driver.execute_script("return window.charrnn.vocab.length") == len(vocab)
    print(f"\nLSTM 960 ({weight_bytes(model) / 1e6:.1f} MB of weights): page "
          f"{page.stat().st_size / 1e6:.1f} MB, painted {painted:.2f} s after navigation, "
          f"{wall:.2f} s to open")
    assert painted < 5.0 and wall < 10.0


def make_screenshot(png: str) -> None:
    """The README's screenshot of the live page: the demo model of
    test_inspect_browser.make_screenshot, a line typed into the box, its
    guesses, and a continuation."""
    import os
    import tempfile

    from charrnn_ext.run import training
    from charrnn_ext.text.corpus import demo_corpus
    from test_inspect_browser import open_browser
    text, _ = demo_corpus()
    with tempfile.TemporaryDirectory() as d:
        result = training.run(text, {"iters": 20_000, "eval_every": 20_000,
                                     "sample_every": 100_000})
        ins = trace(result.run, training_text=text, length=3000, name="demo.npz")
        page = os.path.join(d, "demo.html")
        with open(page, "w", encoding="utf-8") as f:
            f.write(to_html(ins))
        drv = open_browser()
        try:
            open_page(drv, page)
            typed(drv, "    def read(self, path):\n        return self.")
            generate(drv, 160, 1, temperature="0.7")
            drv.execute_script("window.scrollTo(0, 0)")
            drv.save_screenshot(png)
        finally:
            drv.quit()
    print(f"{png}: written")


if __name__ == "__main__":
    import sys
    make_screenshot(sys.argv[1] if len(sys.argv) > 1 else "inspect-live.png")
