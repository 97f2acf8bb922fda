"""charrnn-inspect's page: an Inspection as one self-contained HTML file (the data as escaped JSON, a fixed style and script).

Text is data, never markup: everything that comes from the text or the
checkpoint travels in one ``<script type="application/json">`` block, as
numbers (code points) and ASCII-only JSON whose ``<``, ``>`` and ``&`` are
escaped, so no character sequence can end the block or open a tag; the
script builds the page from it with ``textContent`` only. The page's
Content-Security-Policy allows no network at all and runs only this
module's own script and style (by their hashes); a live page adds the
model block and script of charrnn_ext.page.live.

The embedded data (``page_data``; JSON, format 1), for n characters:

    text, vocab     code points (a character per entry)
    top_ids         base64 little-endian uint32 (n, k): the k likeliest next characters
    top_probs       base64 uint16 (n, k): their probabilities * 65535, rounded
    surprise        base64 float32 (n,): bits; NaN for the first character
    sets            activation sets, each {name, label, units, scale (units,),
                    values: base64 int8 (units, n), unit-major:
                    activation = values / 127 * scale[unit]}; "h" is the hidden
                    state (tanh: scale 1); more layers or an LSTM's cell state
                    are more entries (Inspection.sets; unbounded ones scaled
                    per unit by their largest |value|)
    ranking         [{feature, unit, score, set}] (Inspection.ranking)
    summary         [[label, value], ...] shown at the top; mean_surprise
"""
from __future__ import annotations

import base64
import hashlib
import json
import math

import numpy as np

from ..core.cells import CELLS, MINCHAR_EQUATIONS

FORMAT = 1


def _b64(arr: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=dtype).tobytes()).decode("ascii")


def quantize(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """values (n, units) as int8 (units, n), unit-major: round(v / scale * 127),
    clipped to [-127, 127] (a unit of scale 0 is all 0)."""
    safe = np.where(scale > 0, scale, 1.0)
    q = np.rint(np.clip(values / safe, -1.0, 1.0) * 127.0)
    return q.T.astype(np.int8)


def _validation(ckpt) -> str:
    vals, its = ckpt.history.get("val_bpc", []), ckpt.history.get("val_iteration", [])
    finite = [(float(v), int(i)) for v, i in zip(vals, its) if math.isfinite(v)]
    if not finite:
        return "none recorded"
    v, i = finite[-1]
    best = ("" if ckpt.best_val_bpc is None else
            f" (best {ckpt.best_val_bpc:.4f} at iteration {ckpt.best_iteration:,})")
    return f"{v:.4f} bits/char at iteration {i:,}{best}"


def _cell(ckpt) -> str:
    """The model's cell, layers, input and dtype, e.g. "LSTM, 2 layers (PyTorch's
    equations), x the input's embedding (width 64), float32"."""
    model = ckpt.model
    D, L = model.embedding_size, model.num_layers
    cell = f"vanilla RNN, {MINCHAR_EQUATIONS}" if model.minchar else (
        f"{CELLS[model.cell].label}, {L} layer{'s' if L > 1 else ''} (PyTorch's equations)")
    return (cell + (f", x the input's embedding (width {D})" if D else ", x one-hot")
            + ("" if model.dtype == np.float64 else f", {model.dtype.name}"))


def page_data(ins) -> dict:
    """The JSON-ready data of an Inspection (see the module docstring)."""
    ckpt, n = ins.ckpt, len(ins.text)
    sets = []
    for name, act in ins.sets.items():
        values = np.asarray(act.values, dtype=np.float64)
        units = values.shape[1]
        # bounded (tanh) states: one fixed scale, comparable across units; else per unit
        scale = np.ones(units) if act.bounded else np.abs(values).max(axis=0, initial=0.0)
        sets.append({"name": name, "label": act.label, "units": units,
                     "scale": scale.tolist(), "values": _b64(quantize(values, scale), "i1")})
    probs16 = np.rint(np.clip(ins.top_probs, 0.0, 1.0) * 65535)
    mean = ins.mean_surprise
    return {
        "format": FORMAT,
        "name": ins.name,
        "summary": [["vocabulary", f"{len(ckpt.vocab):,} characters"], ["cell", _cell(ckpt)],
                    ["hidden size", f"{ckpt.model.hidden_size:,}"],
                    ["iteration", f"{ckpt.iteration:,}"], ["validation", _validation(ckpt)],
                    ["text", ins.source], ["read from", ins.start]],
        "mean_surprise": None if math.isnan(mean) else mean,
        "n": n,
        "text": [ord(c) for c in ins.text],
        "vocab": [ord(c) for c in ckpt.vocab.chars],
        "k": int(ins.top_ids.shape[1]),
        "top_ids": _b64(ins.top_ids, "<u4"),
        "top_probs": _b64(probs16, "<u2"),
        "surprise": _b64(ins.surprise, "<f4"),
        "sets": sets,
        "ranking": ins.ranking(),
    }


def embed_json(obj) -> str:
    """obj as JSON that is safe inside a <script> element: ASCII only, with
    <, >, & and U+2028/U+2029 as \\u escapes (valid JSON, inert in HTML)."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def render(ins, live: dict | None = None) -> str:
    """The page of an Inspection, as a string; with ``live`` (the model block
    of charrnn_ext.page.live.live_data) the live page, which runs the model."""
    from .assets import SCRIPT, STYLE
    from .live_assets import LIVE_SCRIPT, LIVE_STYLE
    scripts = [SCRIPT] + ([LIVE_SCRIPT] if live is not None else [])
    style = STYLE + (LIVE_STYLE if live is not None else "")
    csp = (f"default-src 'none'; script-src {' '.join(map(_hash, scripts))}; "
           f"style-src {_hash(style)}; img-src data:; base-uri 'none'; form-action 'none'")
    model = ("" if live is None else
             f"<script type=\"application/json\" id=\"model\">{embed_json(live)}</script>\n")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>charrnn-inspect</title>\n"
        f"<style>{style}</style>\n</head>\n<body>\n"
        "<noscript>This page needs JavaScript to show the model's data.</noscript>\n"
        f"<script type=\"application/json\" id=\"data\">{embed_json(page_data(ins))}</script>\n"
        + model + "".join(f"<script>{s}</script>\n" for s in scripts) + "</body>\n</html>\n"
    )
