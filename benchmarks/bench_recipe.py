"""Best model in two minutes: held-out bits/char after a fixed wall time, the recommended command beside the PyTorch scripts."""
# What a user gets: each side trains for the same wall time on the same text (the last 5%
# held out), one after the other, then the saved model is scored the same way for all:
# its state warmed on the 2,000 characters before the held-out part (from zero), then
# the held-out characters read in order (bits/char). Sides:
#   ours        `python -m charrnn_ext.train FILE --recipe batched --time-limit S` (the
#               README's command), as a subprocess; the saved checkpoint is scored
#   ours-f32    the same with `--dtype float32` (and ours-f32-h512: `--hidden-size 512`)
#   ours, B32   `--batch-size 32 --hidden-size 256 --seq-length 50`, no other flag (the
#   H256 T50    flags that looked right and were a trap: 3.40 before the recipes)
#   min-char-rnn  the defaults (one stream, H 100, T 25, Adagrad 0.1)
#   ours-lstm   README's LSTM command (LSTM 384, embedding 128, Adam 0.004 decaying to a
#               tenth, B 32, T 50, float32); ours-gru: its GRU command (Adam 0.003);
#               ours-lstm2, ours-gru2: the same with two layers and dropout 0.25
#   ours-gru-recipe  `--recipe gru`: the GRU command's settings as a recipe (README's first
#               command under "Best model in two minutes")
#   ours-lstm256  `--cell lstm --batch-size 32`: the batched recipe's LSTM (256, Adam 0.002)
#   ours-lstm256-f32  the same with `--dtype float32`
#   torch-rnn   a 40-line PyTorch script: nn.Embedding(V, 256) -> nn.RNN(tanh) 256 ->
#               nn.Linear, B 32, T 50, Adagrad lr 0.1, elementwise clip 5, float32
#   torch-lstm  the same with nn.LSTM 256 and Adam 2e-3
# PyTorch is optional: without it its rows are left out, with a note.
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from harness import Parser, Report, load_peer, missing, progress

torch = load_peer("torch")

from bench_data import load_corpus  # noqa: E402  (after the peer: see harness.load_peer)
from charrnn_ext import load_checkpoint  # noqa: E402

FULL = dict(seconds=[120.0, 300.0])
QUICK = dict(seconds=[5.0])
SIZES = dict(seconds="wall-time budgets, each a separate run of every side")
SIDES = ("ours", "ours-f32", "ours-f32-h512", "ours-trap", "min-char-rnn", "ours-lstm",
         "ours-gru", "ours-gru-recipe", "ours-lstm2", "ours-gru2", "ours-lstm256", "ours-lstm256-f32", "torch-rnn",
         "torch-lstm")
COMMANDS = {   # charrnn-train's flags of our sides (after the text)
    "ours": ["--recipe", "batched"],
    "ours-f32": ["--recipe", "batched", "--dtype", "float32"],
    "ours-f32-h512": ["--recipe", "batched", "--dtype", "float32", "--hidden-size", "512"],
    "ours-trap": ["--batch-size", "32", "--hidden-size", "256", "--seq-length", "50"],
    "min-char-rnn": [],
    "ours-lstm": ["--cell", "lstm", "--batch-size", "32", "--hidden-size", "384",
                  "--embedding-size", "128", "--learning-rate", "0.004", "--dtype", "float32"],
    "ours-lstm2": ["--cell", "lstm", "--batch-size", "32", "--hidden-size", "384",
                   "--embedding-size", "128", "--learning-rate", "0.004", "--dtype", "float32",
                   "--num-layers", "2", "--dropout", "0.25"],
    "ours-gru2": ["--cell", "gru", "--batch-size", "32", "--hidden-size", "384",
                  "--embedding-size", "128", "--learning-rate", "0.003", "--dtype", "float32",
                  "--num-layers", "2", "--dropout", "0.25"],
    "ours-gru": ["--cell", "gru", "--batch-size", "32", "--hidden-size", "384",
                 "--embedding-size", "128", "--learning-rate", "0.003", "--dtype", "float32"],
    "ours-gru-recipe": ["--recipe", "gru"],
    "ours-lstm256": ["--cell", "lstm", "--batch-size", "32"],   # the batched recipe's LSTM
    "ours-lstm256-f32": ["--cell", "lstm", "--batch-size", "32", "--dtype", "float32"],
}
WARM = 2000    # characters before the held-out part that warm the scored state
EPILOG = """\
  python benchmarks/bench_recipe.py                        # 120 s and 300 s, tinyshakespeare
  python benchmarks/bench_recipe.py --corpus LARGE --seconds 120 --only ours torch-rnn"""


def split(ids: np.ndarray) -> int:
    """The training part's length: the text less its last 5% (charrnn-train's default)."""
    return ids.size - int(ids.size * 0.05)


def score_ours(path: Path, ids: np.ndarray, n_train: int) -> float:
    """Held-out bits/char of a saved checkpoint (WARM characters warm a zero state)."""
    model = load_checkpoint(path).model
    h = model.advance(ids[n_train - WARM:n_train])
    held = ids[n_train:]
    return model.loss(held[:-1], held[1:], h) / (held.size - 1) / math.log(2)


def run_ours(side: str, text_path: Path, seconds: float, ids, n_train, work: Path) -> dict:
    ckpt = work / f"{side}.npz"
    for stale in work.glob(f"{side}*.npz"):
        stale.unlink()
    cmd = [sys.executable, "-m", "charrnn_ext.train", str(text_path), *COMMANDS[side],
           "--iters", "10000000", "--time-limit", f"{seconds:g}", "--sample-every", "10000000",
           "--eval-every", "10000000", "--checkpoint", str(ckpt), "--no-keep-best"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    steps = load_checkpoint(ckpt).iteration
    return {"steps": steps, "val": score_ours(ckpt, ids, n_train),
            "command": "charrnn-train FILE " + " ".join(COMMANDS[side])}


def run_torch(side: str, seconds: float, ids: np.ndarray, n_train: int, V: int,
              seed: int) -> dict:
    """The PyTorch script, trained for ``seconds`` of wall time on two threads."""
    nn = torch.nn
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    H, B, T = 256, 32, 50
    lstm = side == "torch-lstm"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(V, H)
            self.rnn = (nn.LSTM if lstm else nn.RNN)(H, H, batch_first=True)
            self.out = nn.Linear(H, V)

        def forward(self, x, h):
            y, h = self.rnn(self.embed(x), h)
            return self.out(y), h

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3) if lstm else \
        torch.optim.Adagrad(net.parameters(), lr=0.1)
    part = n_train // B
    data = torch.from_numpy(ids[:part * B].astype(np.int64).reshape(B, part))
    h, pos, steps = None, 0, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        if pos + T + 1 > part:
            h, pos = None, 0
        x, y = data[:, pos:pos + T], data[:, pos + 1:pos + T + 1]
        logits, h = net(x, h)
        loss = nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        for p in net.parameters():
            p.grad.clamp_(-5, 5)
        opt.step()
        h = tuple(s.detach() for s in h) if lstm else h.detach()
        pos, steps = pos + T, steps + 1
    with torch.no_grad():
        warm = torch.from_numpy(ids[n_train - WARM:n_train].astype(np.int64))[None]
        _, h = net(warm, None)
        held = torch.from_numpy(ids[n_train:].astype(np.int64))
        logits, _ = net(held[None, :-1], h)
        nats = nn.functional.cross_entropy(logits[0].double(), held[1:]).item()
    return {"steps": steps, "val": nats / math.log(2),
            "command": f"PyTorch {'nn.LSTM, Adam 2e-3' if lstm else 'nn.RNN, Adagrad 0.1'}"}


def main(argv=None) -> int:
    p = Parser(__doc__, FULL, QUICK, SIZES, only=SIDES, epilog=EPILOG)
    p.add_argument("--corpus", choices=["SMALL", "LARGE"], default="SMALL",
                   help="SMALL: tinyshakespeare (English); LARGE: lunyu_shijing (Chinese)")
    args = p.parse_args(argv)
    corpus = load_corpus(args.corpus, args.data_dir)
    ids, V = corpus.ids, corpus.V
    n_train = split(ids)
    sides = list(args.only or SIDES)
    if torch is None:
        progress(missing("torch", "the PyTorch rows are left out"))
        sides = [s for s in sides if not s.startswith("torch")]
    r = Report("Held-out bits per character after a fixed wall time", args, [
        ["text", f"{corpus.source} ({ids.size:,} characters, {V} symbols, the last "
                 f"{ids.size - n_train:,} held out)"],
        ["scored", f"the saved model, its state warmed on the {WARM:,} characters before the "
                   f"held-out part, reading the held-out part in order"]])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text_path = work / "input.txt"
        text_path.write_text(corpus.vocab.decode(ids), encoding="utf-8")
        for seconds in args.seconds:
            for side in sides:     # one after the other, the same budget
                progress(f"{side}: {seconds:g} s")
                res = (run_torch(side, seconds, ids, n_train, V, args.seed)
                       if side.startswith("torch")
                       else run_ours(side, text_path, seconds, ids, n_train, work))
                progress(f"{side}: {seconds:g} s, {res['steps']:,} steps, "
                         f"{res['val']:.4f} bits/char")
                rows.append([side, res["command"], f"{seconds:g} s", f"{res['steps']:,}",
                             f"**{res['val']:.3f}**"])
    r.table(["side", "what ran", "wall time", "steps", "held-out bits/char"], rows)
    r.finish(args.output)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
