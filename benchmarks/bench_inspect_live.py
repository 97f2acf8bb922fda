"""charrnn-inspect's live page in headless Chromium: a keystroke's cost in the text box (one step
of the model's JavaScript forward pass, the page's update and layout) at hidden size 512, and how
long pages carrying more weights take to open; what _page_live.LIVE_BYTES was chosen from.

    python benchmarks/bench_inspect_live.py         # needs selenium, chromium, chromium-driver
    python benchmarks/bench_inspect_live.py --repeats 5 --keys 300

Models are freshly initialised, float32 (the speed does not depend on the weights' values); the
text is generated English (V about 43). Keystrokes are Selenium's send_keys into the box, each
timed by the page itself (window.charrnn.keystrokeMs, the input event's handler with a forced
layout); medians over the keystrokes of every repeat, the configurations interleaved.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import numpy as np  # noqa: E402

from conftest import english_like_text  # noqa: E402
from test_inspect_browser import open_browser, open_page  # noqa: E402

from charrnn_ext import CharRNN, Checkpoint, Vocab  # noqa: E402
from charrnn_ext.page.live import weight_bytes  # noqa: E402
from charrnn_ext.page.inspection import to_html  # noqa: E402

TEXT = english_like_text(20_000, seed=5)


def page(folder, cell, H, layers=1, D=0, shown=3000):
    vocab = Vocab.from_text(TEXT)
    model = CharRNN(len(vocab), H, seed=1, cell=cell, num_layers=layers, embedding_size=D,
                    dtype="float32")
    ckpt = Checkpoint(model=model, vocab=vocab, hidden=np.zeros((model.state_size, 1)))
    name = f"{cell} {H}" + (f" x{layers}" if layers > 1 else "") + (f", embedding {D}" if D else "")
    path = os.path.join(folder, name.replace(" ", "_").replace(",", "") + ".html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(to_html(ckpt, TEXT[:shown]))
    return name, path, weight_bytes(model)


def main(repeats, keys):
    typed = TEXT[5000:5000 + keys]
    with tempfile.TemporaryDirectory() as d:
        typing = [page(d, c, 512, L) for c in ("rnn", "gru", "lstm") for L in (1, 2)]
        opening = [page(d, "lstm", 384, 1, 128), page(d, "lstm", 960),
                   page(d, "lstm", 1360), page(d, "lstm", 1920)]
        driver = open_browser()
        ms = {name: [] for name, _, _ in typing}
        opened = {name: [] for name, _, _ in opening}
        try:
            for _ in range(repeats):
                for name, path, _ in typing:
                    open_page(driver, path)
                    driver.find_element("id", "live-text").send_keys(typed)
                    ms[name] += driver.execute_script("return window.charrnn.keystrokeMs()")[1:]
                for name, path, _ in opening:
                    t0 = time.perf_counter()
                    opened[name].append((open_page(driver, path), time.perf_counter() - t0))
        finally:
            driver.quit()
        print(f"a keystroke at H 512 ({keys} keys x {repeats} repeats): median / 90th percentile "
              f"/ max ms")
        for name, _, _ in typing:
            t = np.array(ms[name])
            print(f"  {name:12} {np.median(t):6.2f} {np.percentile(t, 90):6.2f} {t.max():7.1f}")
        print("opening a page of 3,000 characters: weights, page, first paint, opened (medians)")
        for name, path, size in opening:
            paint = statistics.median(p for p, _ in opened[name])
            wall = statistics.median(w for _, w in opened[name])
            print(f"  {name:22} {size / 1e6:6.1f} MB {os.path.getsize(path) / 1e6:6.1f} MB "
                  f"{paint:6.2f} s {wall:6.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keys", type=int, default=200)
    args = parser.parse_args()
    main(args.repeats, args.keys)
