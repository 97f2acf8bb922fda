"""What batching buys: held-out bits per character on tinyshakespeare after the same wall time, for one stream (min-char-rnn) and B parallel streams of wider models."""
from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bench_data import StreamsDataPass, load_corpus
from charrnn_ext import CharRNN, evaluate
from harness import Parser, Report, progress

FULL = dict(seconds=[60.0, 300.0])
QUICK = dict(seconds=[3.0])
SIZES = dict(seconds="cumulative wall-time budgets at which each configuration is scored")
EPILOG = """\
Each configuration trains as `charrnn-train --batch-size B` does (the same data pass:
bench_data.StreamsDataPass; Adagrad; the text's last 5% held out) for each time budget,
then is scored as the training tool scores it (charrnn_ext.evaluate: the data pass
continued from the carried states, into all the held-out text). Configurations run one
after another, each on the core's default threads.

  python benchmarks/bench_quality.py            # 60 s and 300 s each
  python benchmarks/bench_quality.py --seconds 30 120 --configs 1x100 32x256"""


def parse_config(text: str) -> tuple[int, int, float]:
    """'BxH' or 'BxH@LR' -> (streams, hidden size, learning rate)."""
    lr = 0.1
    if "@" in text:
        text, lr_text = text.split("@")
        lr = float(lr_text)
    b, h = text.lower().split("x")
    return int(b), int(h), lr


def train_for(ids: np.ndarray, n_train: int, B: int, H: int, lr: float, T: int,
              budgets: list[float], seed: int = 0) -> list[dict]:
    """Train (B, H, lr) and score it at each cumulative time budget."""
    V = int(ids.max()) + 1
    model = CharRNN(V, H, seed=seed)
    data = StreamsDataPass(ids[:n_train], T, B)
    h = np.zeros((H, B))
    results, steps, spent = [], 0, 0.0
    with threadpool_limits(limits=1, user_api="blas"):
        for budget in sorted(budgets):
            t0 = time.perf_counter()
            while spent + (time.perf_counter() - t0) < budget:
                for _ in range(50):
                    x, y, reset = data.next()
                    if reset:
                        h = np.zeros((H, B))
                    _, h = model.train_step(x if B > 1 else x[0], y if B > 1 else y[0], h, lr)
                    steps += 1
            spent += time.perf_counter() - t0
            scores = evaluate(model, ids, n_train, h, data.p, val_chars=ids.size)
            results.append({"seconds": budget, "steps": steps, "chars": steps * B * T,
                            "val": scores.val_bpc, "train": scores.train_bpc})
            progress(f"{B}x{H} lr {lr:g}: {budget:g} s, {steps} steps, "
                     f"val {scores.val_bpc:.4f} bits/char")
    return results


def main(argv=None) -> int:
    p = Parser(__doc__, FULL, QUICK, SIZES, epilog=EPILOG)
    p.add_argument("--configs", nargs="+", default=["1x100", "32x256", "64x256", "32x512"],
                   help="BxH or BxH@LR (default learning rate 0.1)")
    p.add_argument("--seq-length", type=int, default=25)
    args = p.parse_args(argv)
    corpus = load_corpus("SMALL", args.data_dir)
    ids = corpus.ids
    n_train = ids.size - int(ids.size * 0.05)
    r = Report("Held-out bits per character after the same wall time", args, [
        ["text", f"{corpus.source} ({ids.size:,} characters, {corpus.V} symbols, last "
                 f"{ids.size - n_train:,} held out), seq length {args.seq_length}, Adagrad"]])
    rows = []
    for config in args.configs:
        B, H, lr = parse_config(config)
        for res in train_for(ids, n_train, B, H, lr, args.seq_length, args.seconds, args.seed):
            rows.append([f"B = {B}, H = {H}, lr {lr:g}", f"{res['seconds']:g} s", f"{res['steps']:,}",
                         f"{res['chars'] / res['seconds'] / 1e3:,.0f}k", f"**{res['val']:.3f}**",
                         f"{res['train']:.3f}"])
    r.table(["model", "wall time", "steps", "chars/s", "held-out bits/char", "train bits/char"], rows)
    r.finish(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
