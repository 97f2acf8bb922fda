"""charrnn-inspect's page in a real browser (headless Chromium through Selenium): it renders
without console errors, picking a unit recolours the text, hovering shows the guesses, hostile
text stays text, a 20,000-character page opens quickly; a screenshot is kept.

Needs selenium (the test extra) and Debian's chromium and chromium-driver (.ci/run installs
them where it may); without them the tests are skipped with the reason. Run by hand,
``python tests/test_inspect_browser.py docs/inspect.png`` makes the README's screenshot
through the same code (a model trained on the demo corpus for a few seconds).
"""
from __future__ import annotations

import os
import shutil
import sys
import time

import numpy as np
import pytest

from charrnn_ext.run import training
from charrnn_ext.page.inspection import to_html, trace

WINDOW = (1400, 900)
HOSTILE = ('</script><script>window.pwned = 1</script> <img src=x onerror="window.pwned = 2"> '
           '<svg/onload="window.pwned = 3"> & &amp; " \' \u2028 </SCRIPT > <b>bold</b>\n')


def chromium_paths():
    """(browser, driver) executables, or (None, reason)."""
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        return None, "no headless Chromium here (apt-get install chromium chromium-driver)"
    return browser, driver


def open_browser():
    """A headless Chromium driven by Selenium (WINDOW sized, console logged)."""
    from selenium import webdriver
    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options,
                            service=webdriver.ChromeService(executable_path=driver))


def open_page(driver, path) -> float:
    """Open the page file; returns the seconds from navigation start until
    the page was first painted with its text (window.inspectPainted), after
    emptying the console log."""
    driver.get_log("browser")
    driver.get("file://" + os.path.abspath(path))
    for _ in range(200):
        ready = driver.execute_script("return window.inspectPainted")
        if ready is not None:
            return ready / 1000
        time.sleep(0.05)
    raise AssertionError("the page's script never finished")


def console_errors(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def hover(driver, index: int):
    """Move the mouse over character ``index`` of the text."""
    from selenium.webdriver.common.action_chains import ActionChains
    span = driver.find_elements("css selector", "#text span")[index]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", span)
    ActionChains(driver).move_to_element(span).perform()
    return span


def colours(driver, count=400) -> list:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#text span')).slice(0, arguments[0])"
        ".map(s => s.style.backgroundColor)", count)


@pytest.fixture(scope="module")
def driver():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install '.[test]')")
    browser, reason = chromium_paths()
    if browser is None:
        pytest.skip(reason)
    d = open_browser()
    yield d
    d.quit()


@pytest.fixture(scope="module")
def model():
    """A small model trained on English-like text with quotes (a Checkpoint) and the text."""
    from test_inspect import quoted_text
    text = quoted_text(300, seed=1)
    result = training.run(text, {"hidden_size": 32, "seq_length": 20, "iters": 600,
                                 "val_fraction": 0.1, "eval_every": 600,
                                 "sample_every": 10_000})
    return result.run, text


@pytest.fixture(scope="module")
def page(model, tmp_path_factory):
    """(path, Inspection) of a page over 2,000 characters of the model's text."""
    ckpt, text = model
    ins = trace(ckpt, text[:2000], name="quotes.npz")
    path = tmp_path_factory.mktemp("pages") / "page.html"
    path.write_text(to_html(ins), encoding="utf-8")
    return path, ins


def test_the_page_renders_without_console_errors(driver, page):
    path, ins = page
    open_page(driver, path)
    assert console_errors(driver) == []
    assert driver.title == "charrnn-inspect: quotes.npz"
    spans = driver.execute_script("return document.querySelectorAll('#text span').length")
    assert spans == len(ins.text)
    header = driver.find_element("css selector", "header").text
    assert "hidden size\n32" in header or "hidden size 32" in header
    assert f"{ins.mean_surprise:.4f} bits/char" in header
    assert len(driver.find_elements("css selector", "#ranking button")) == len(ins.ranking())


def test_choosing_another_unit_changes_the_colours(driver, page):
    path, ins = page
    open_page(driver, path)
    unit = lambda: int(driver.find_element("id", "unit").get_attribute("value"))  # noqa: E731
    first, before = unit(), colours(driver)
    assert first == ins.ranking()[0]["unit"]   # the clearest unit is shown first
    # the colour of character t is its activation: positive orange, negative blue
    for t in (0, 100, 399):
        v = ins.hidden[t, first]
        assert ("226, 107, 36" in before[t]) == (round(v * 127) > 0), (t, v, before[t])
    driver.find_element("id", "next").click()
    assert unit() == (first + 1) % 32 and colours(driver) != before
    driver.find_element("css selector", "body").send_keys("k")
    assert unit() == first and colours(driver) == before
    from selenium.webdriver.common.keys import Keys
    driver.find_element("css selector", "body").send_keys(Keys.SHIFT, Keys.ARROW_RIGHT)
    assert unit() == (first + 10) % 32
    target = ins.ranking()[-1]
    driver.find_elements("css selector", "#ranking button")[-1].click()
    assert unit() == target["unit"]


def test_another_activation_set_can_be_chosen(driver, model, tmp_path):
    from selenium.webdriver.support.select import Select

    from charrnn_ext.page.inspection import ActivationSet
    ckpt, text = model
    ins = trace(ckpt, text[:500])
    ins.sets["c"] = ActivationSet("cell state c", ins.hidden[:, ::-1] * 4, bounded=False)
    path = tmp_path / "sets.html"
    path.write_text(to_html(ins), encoding="utf-8")
    open_page(driver, path)
    before = colours(driver)
    Select(driver.find_element("id", "set")).select_by_visible_text("cell state c")
    assert colours(driver) != before and console_errors(driver) == []
    legend = driver.find_element("css selector", ".legend").text
    unit = int(driver.find_element("id", "unit").get_attribute("value"))
    top = np.abs(ins.hidden[:, ::-1][:, unit] * 4).max()
    assert f"+{top:.2f}" in legend


def test_hovering_shows_the_guesses(driver, page):
    path, ins = page
    open_page(driver, path)
    t = 57
    hover(driver, t)
    rows = driver.find_elements("css selector", "#guesses tr")
    assert len(rows) == 5
    vocab = ins.ckpt.vocab.chars
    shown = [r.find_element("css selector", "td.g").text for r in rows]
    label = {" ": "\u2423", "\n": "\u21b5"}
    assert shown == [label.get(vocab[j], vocab[j]) for j in ins.top_ids[t]]
    details = driver.find_element("id", "details").text
    assert f"surprise {ins.surprise[t]:.2f} bits" in details
    assert f"character {t + 1} of" in details
    hover(driver, 0)
    assert "first character: not predicted" in driver.find_element("id", "details").text


def test_a_screenshot_is_kept(driver, page, tmp_path):
    path, _ = page
    open_page(driver, path)
    hover(driver, 30)
    png = tmp_path / "page.png"
    assert driver.save_screenshot(str(png))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_hostile_text_is_shown_as_text(driver, tmp_path):
    text = HOSTILE * 3
    result = training.run(text * 20, {"hidden_size": 8, "seq_length": 8, "iters": 10,
                                      "val_fraction": 0.0, "eval_every": 1000,
                                      "sample_every": 10_000})
    path = tmp_path / "hostile.html"
    name = '</script><img src=x onerror="window.pwned = 4"><b>x</b>.npz'
    path.write_text(to_html(result.run, text, name=name), encoding="utf-8")
    open_page(driver, path)
    assert console_errors(driver) == []
    assert driver.execute_script("return window.pwned") is None
    for tag in ("img", "svg", "b"):
        assert driver.find_elements("tag name", tag) == []
    # the data and the model (JSON), the page's script and the live part's
    assert len(driver.find_elements("tag name", "script")) == 4
    shown = driver.execute_script("return document.getElementById('text').textContent")
    assert shown == text.replace("\n", "\u21b5\n")
    assert driver.title == "charrnn-inspect: " + name
    hover(driver, 1)
    assert driver.execute_script("return window.pwned") is None


def test_a_20000_character_page_opens_quickly(driver, tmp_path):
    from conftest import english_like_text
    text = english_like_text(20_001, seed=5)
    result = training.run(text, {"hidden_size": 100, "iters": 50, "val_fraction": 0.0,
                                 "eval_every": 1000, "sample_every": 10_000})
    path = tmp_path / "big.html"
    path.write_text(to_html(result.run, text, length=20_000), encoding="utf-8")
    t0 = time.perf_counter()
    ready = open_page(driver, path)
    wall = time.perf_counter() - t0
    assert console_errors(driver) == []
    t1 = time.perf_counter()
    driver.find_element("id", "next").click()
    recolour = time.perf_counter() - t1
    print(f"\n20,000 characters: {path.stat().st_size / 1e6:.1f} MB, painted {ready:.2f} s "
          f"after navigation, {wall:.2f} s to open, recolour {recolour * 1000:.0f} ms")
    assert ready < 5.0 and wall < 10.0   # aim: 2 s (benchmarks/README.md)


def make_screenshot(png: str) -> None:
    """The README's screenshot: a model trained on the demo corpus for a
    few seconds, the page over its held-out text, one character hovered."""
    import tempfile

    from charrnn_ext.text.corpus import demo_corpus
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
            hover(drv, 190)
            drv.execute_script("window.scrollTo(0, 0)")
            drv.save_screenshot(png)
        finally:
            drv.quit()
    print(f"{png}: mean surprise {ins.mean_surprise:.4f} bits/char")


if __name__ == "__main__":
    make_screenshot(sys.argv[1] if len(sys.argv) > 1 else "inspect.png")
