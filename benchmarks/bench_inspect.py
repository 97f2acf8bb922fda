"""charrnn-inspect's page at 20,000 characters: how long it takes to make (trace + HTML) and to
open in headless Chromium (tests/test_inspect_browser.py's driver), and its size.

    python benchmarks/bench_inspect.py            # needs selenium, chromium, chromium-driver
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from conftest import english_like_text  # noqa: E402
from test_inspect_browser import open_browser, open_page  # noqa: E402

from charrnn_ext import training  # noqa: E402
from charrnn_ext.inspect import to_html, trace  # noqa: E402


def main(n=20_000, repeats=5):
    text = english_like_text(200_000, seed=5)
    run = training.run(text, {"iters": 3000, "val_fraction": 0.0, "eval_every": 10_000,
                              "sample_every": 100_000}).run        # hidden 100, as by default
    shown = text[:n]
    t0 = time.perf_counter()
    ins = trace(run, shown, length=n)
    t1 = time.perf_counter()
    page = to_html(ins)
    t2 = time.perf_counter()
    print(f"{n:,} characters, V = {len(run.vocab)}, H = {run.model.hidden_size}: trace "
          f"{t1 - t0:.3f} s, page {t2 - t1:.3f} s, {len(page.encode()) / 1e6:.2f} MB")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "page.html")
        with open(path, "w", encoding="utf-8") as f:
            f.write(page)
        driver = open_browser()
        try:
            ready, wall, recolour = [], [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                ready.append(open_page(driver, path))
                wall.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                driver.execute_script("document.getElementById('next').click()")
                recolour.append(time.perf_counter() - t0)
        finally:
            driver.quit()
    print(f"open (median of {repeats}): painted {statistics.median(ready):.2f} s after "
          f"navigation, opened (Selenium's get and the wait) {statistics.median(wall):.2f} s; "
          f"recolour {statistics.median(recolour) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
