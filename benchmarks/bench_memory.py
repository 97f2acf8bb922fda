"""charrnn_ext.run.memory.model_bytes against the peak RSS of building a model and training it:
each configuration in a fresh process, its peak resident size (VmHWM) after two training
steps less that after the imports, beside the estimate.

    python benchmarks/bench_memory.py              # the table of benchmarks/README.md
"""
import json
import subprocess
import sys

PROBE = r"""
import json, sys
import numpy as np
import charrnn_ext
from charrnn_ext import CharRNN
from charrnn_ext.run.memory import model_bytes

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))

c = json.loads(sys.argv[1])
V, H, T, B, D = c["V"], c["H"], c["T"], c["B"], c["D"]
kind = {k: c[k] for k in ("cell", "num_layers", "dtype", "optimizer")}
ids = np.random.default_rng(0).integers(0, V, 4 * B * (T + 1))
base = hwm()
model = CharRNN(V, H, 1, embedding_size=D, **kind)
model.train(ids, 2, T, streams=B, learning_rate=1e-3)
print(json.dumps({"measured": hwm() - base, "estimate": model_bytes(V, H, T, B, D, **kind)}))
"""

CONFIGS = [
    dict(cell="rnn", num_layers=1, dtype="float64", optimizer="adagrad", V=100, H=2048, T=25, B=1, D=0),
    dict(cell="rnn", num_layers=1, dtype="float32", optimizer="adam", V=3000, H=512, T=50, B=32, D=64),
    dict(cell="rnn", num_layers=2, dtype="float64", optimizer="adagrad", V=100, H=1024, T=25, B=4, D=0),
    dict(cell="lstm", num_layers=2, dtype="float64", optimizer="adam", V=100, H=768, T=50, B=8, D=64),
    dict(cell="lstm", num_layers=1, dtype="float32", optimizer="adam", V=3000, H=384, T=50, B=32, D=128),
    dict(cell="gru", num_layers=2, dtype="float32", optimizer="adagrad", V=100, H=1024, T=25, B=1, D=0),
]


def measure(config: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(config)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    print("| cell | layers | dtype | optimizer | V | H | T x B | D | peak RSS growth | estimate | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for c in CONFIGS:
        m = measure(c)
        print(f"| {c['cell']} | {c['num_layers']} | {c['dtype']} | {c['optimizer']} | {c['V']} "
              f"| {c['H']} | {c['T']} x {c['B']} | {c['D']} | {m['measured'] / 2**20:.0f} MiB "
              f"| {m['estimate'] / 2**20:.0f} MiB | {m['estimate'] / m['measured']:.2f} |")


if __name__ == "__main__":
    main()
