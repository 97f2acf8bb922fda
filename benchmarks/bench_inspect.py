"""charrnn-inspect's page at 20,000 characters (or the sizes given): how long it takes to make
(trace + HTML) and to open in headless Chromium (tests/test_inspect_browser.py's driver), and its
size; what charrnn_ext.inspect's PAGE_CHARACTERS and PAGE_BYTES were chosen from.

    python benchmarks/bench_inspect.py            # needs selenium, chromium, chromium-driver
    python benchmarks/bench_inspect.py 50000 100000 200000 --hidden-size 512 --repeats 3
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from conftest import english_like_text  # noqa: E402
from test_inspect_browser import open_browser, open_page  # noqa: E402

from charrnn_ext.run import training  # noqa: E402
from charrnn_ext.page.inspection import to_html, trace  # noqa: E402


def main(n=20_000, repeats=5, run=None):
    text = english_like_text(max(200_000, n), seed=5)
    if run is None:
        run = trained(text, 100)
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


def trained(text, hidden_size):
    """A model of ``hidden_size`` trained on text for 3,000 steps (hidden 100: the default;
    larger: 300 steps at a rate that does not diverge)."""
    large = hidden_size > 100
    return training.run(text[:200_000], {"iters": 300 if large else 3000, "val_fraction": 0.0,
                                         "hidden_size": hidden_size, "eval_every": 10_000,
                                         "learning_rate": 0.01 if large else 0.1,
                                         "sample_every": 100_000}).run


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[20_000], help="characters shown")
    parser.add_argument("--hidden-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = trained(english_like_text(200_000, seed=5), args.hidden_size)
    for size in args.sizes:
        main(size, args.repeats, model)
