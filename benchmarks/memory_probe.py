#!/usr/bin/env python
"""bench.py's memory probe: RSS while training SMALL or LARGE in a fresh process, printed as one JSON line."""
from __future__ import annotations

import gc
import json
import sys

from bench_data import load_corpus
from charrnn_ext.core.spec import init_params
from harness import perf, rss
from peers import CoreRunner


def probe(kind: str, steps: int, data_dir: str, seed: int) -> dict:
    """memory-small: RSS and peak RSS after imports, after warm-up steps and after
    ``steps`` more SMALL steps; memory-large: after imports, loading, building and
    1 and ``steps`` LARGE steps, with the bytes of the model's arrays and the data."""
    base = rss()      # interpreter + numpy + scipy BLAS + charrnn_ext imported
    c = load_corpus("SMALL" if kind == "memory-small" else "LARGE", data_dir)
    if kind == "memory-small":
        runner = CoreRunner(init_params(c.V, c.hidden, seed), c.ids, c.seq)
        warmup = min(1000, max(10, steps // 10))
        runner.run(warmup)
        gc.collect()
        warm = rss()
        t0 = perf()
        runner.run(steps)
        elapsed = perf() - t0
        gc.collect()
        return dict(V=c.V, steps=steps, warmup=warmup, base=base, warm=warm, after=rss(),
                    us_per_step=1e6 * elapsed / steps)
    gc.collect()
    loaded = rss()
    runner = CoreRunner(init_params(c.V, c.hidden, seed), c.ids, c.seq)
    built = rss()
    runner.run(1)
    one = rss()
    runner.run(steps - 1)
    gc.collect()
    m = runner.model
    model_bytes = sum(arr.nbytes for d in (m.params, m.memory, m.grads) for arr in d.values())
    return dict(V=c.V, steps=steps, base=base, loaded=loaded, built=built, one=one, after=rss(),
                model_bytes=model_bytes, data_bytes=int(c.ids.nbytes))


if __name__ == "__main__":
    kind, steps, data_dir, seed = sys.argv[1:5]
    print(json.dumps(probe(kind, int(steps), data_dir, int(seed))))
