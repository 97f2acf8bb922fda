"""The benchmarks' texts and data passes: SMALL and LARGE corpora (the shared files, else generated stand-ins), the seed's data pass, B streams, a generated mixed text."""
# SMALL  English, 65 symbols    (tinyshakespeare.txt)  hidden 100, seq 25
# LARGE  Chinese, ~3150 symbols (lunyu_shijing.txt)    hidden 200, seq 30
# A missing file is replaced by generated text of the same alphabet size (deterministic, seeded).
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn_ext import Vocab

# The 65 symbols of tinyshakespeare: newline, space, 11 punctuation marks, '3', A-Z, a-z.
ENGLISH_ALPHABET = "\n !$&',-.3:;?" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "abcdefghijklmnopqrstuvwxyz"
# Rough English letter frequencies (a..z), in percent.
_LETTER_FREQ = [8.2, 1.5, 2.8, 4.3, 12.7, 2.2, 2.0, 6.1, 7.0, 0.15, 0.77, 4.0, 2.4,
                6.7, 7.5, 1.9, 0.095, 6.0, 6.3, 9.1, 2.8, 0.98, 2.4, 0.15, 2.0, 0.074]
CJK_PUNCTUATION = "\n，。；：？！、“”‘’《》（）"


@dataclass
class Corpus:
    """A configuration's text, vocabulary and encoded ids."""
    name: str           # "SMALL" / "LARGE"
    hidden: int         # hidden size
    seq: int            # sequence length (chunk length T)
    source: str         # where the text came from
    vocab: Vocab
    ids: np.ndarray     # int32, the whole text encoded

    @property
    def V(self) -> int:
        return len(self.vocab)


def _symbols_text(symbols: np.ndarray, probs: np.ndarray, n: int, seed: int) -> str:
    """n i.i.d. symbols drawn with ``probs``, preceded by every symbol once
    (so the vocabulary is exactly ``symbols``)."""
    rng = np.random.default_rng(seed)
    body = rng.choice(symbols, size=n, p=probs / probs.sum())
    codes = np.concatenate([rng.permutation(symbols), body]).astype("<u4")
    return codes.tobytes().decode("utf-32-le")


def generated_english(n_chars: int = 1_115_394, seed: int = 1) -> str:
    """English-like text over exactly the 65 tinyshakespeare symbols."""
    weights = {"\n": 3.0, " ": 16.0, ",": 1.2, ".": 0.9, "'": 0.4, ":": 0.15, ";": 0.15,
               "?": 0.3, "!": 0.2, "-": 0.1, "&": 0.005, "$": 0.001, "3": 0.002}
    probs = []
    for ch in ENGLISH_ALPHABET:
        if ch in weights:
            probs.append(weights[ch])
        elif ch.islower():
            probs.append(_LETTER_FREQ[ord(ch) - ord("a")] * 0.75)
        else:  # capitals
            probs.append(_LETTER_FREQ[ord(ch) - ord("A")] * 0.05)
    symbols = np.array([ord(c) for c in ENGLISH_ALPHABET], dtype=np.uint32)
    return _symbols_text(symbols, np.array(probs), n_chars - len(symbols), seed)


def cjk_symbols(n: int) -> np.ndarray:
    """n common CJK unified ideographs (a fixed stride through U+4E00..U+9FFF)."""
    return (0x4E00 + np.arange(n, dtype=np.uint32) * 6).astype(np.uint32)


def generated_chinese(n_chars: int = 61_663, n_symbols: int = 3150, seed: int = 2) -> str:
    """Chinese-like text: Zipf-distributed ideographs plus CJK punctuation,
    ``n_symbols`` distinct symbols in all."""
    punct = np.array([ord(c) for c in CJK_PUNCTUATION], dtype=np.uint32)
    ideo = cjk_symbols(n_symbols - len(punct))
    symbols = np.concatenate([punct, ideo])
    probs = np.concatenate([np.full(len(punct), 0.02), 1.0 / np.arange(1, len(ideo) + 1)])
    probs[0] = 0.01  # newline
    return _symbols_text(symbols, probs, n_chars - len(symbols), seed)


def load_corpus(name: str, data_dir: Path | None) -> Corpus:
    """The SMALL or LARGE configuration with its text (file if present, else generated)."""
    if name == "SMALL":
        filename, hidden, seq, fallback = "tinyshakespeare.txt", 100, 25, generated_english
    elif name == "LARGE":
        filename, hidden, seq, fallback = "lunyu_shijing.txt", 200, 30, generated_chinese
    else:
        raise ValueError(name)
    path = None if data_dir is None else Path(data_dir) / filename
    if path is not None and path.is_file():
        text = path.read_text(encoding="utf-8")
        source = f"`{path.name}`"
    else:
        text = fallback()
        source = f"generated ({filename} not found)"
    vocab = Vocab.from_text(text)
    return Corpus(name, hidden, seq, source, vocab, vocab.encode(text))


class DataPass:
    """The seed's walk through the data: chunks of T ids with the targets one
    ahead; back to the start (and hidden state reset) at step 0 and whenever
    the next chunk would run past the end."""

    def __init__(self, ids: np.ndarray, seq: int):
        self.ids, self.seq, self.p, self.n = ids, seq, 0, 0

    def next(self):
        """(inputs, targets, reset): int32 views of the ids, and whether the
        hidden state must be reset to zeros before this chunk."""
        T = self.seq
        reset = self.n == 0 or self.p + T + 1 >= len(self.ids)
        if reset:
            self.p = 0
        x, y = self.ids[self.p:self.p + T], self.ids[self.p + 1:self.p + T + 1]
        self.p += T
        self.n += 1
        return x, y, reset


def write_mixed_text(path: os.PathLike, n_bytes: int, cjk_fraction: float = 0.05,
                     n_cjk: int = 3000, seed: int = 3, chunk_chars: int = 1 << 20) -> None:
    """Write exactly ``n_bytes`` of UTF-8 text to ``path``: printable ASCII and
    newlines, with about ``cjk_fraction`` of the characters CJK ideographs
    (3 bytes each) drawn from ``n_cjk`` distinct ones. Written in chunks so
    the generator itself stays small in memory."""
    rng = np.random.default_rng(seed)
    ascii_syms = np.array([10] + list(range(32, 127)), dtype=np.uint32)
    ascii_p = np.ones(len(ascii_syms))
    ascii_p[ascii_syms == 32] = 15.0          # spaces
    ascii_p[(ascii_syms >= 97) & (ascii_syms <= 122)] = 4.0   # lower case letters
    ascii_p /= ascii_p.sum()
    cjk = cjk_symbols(n_cjk)
    written = 0
    with open(path, "wb") as fh:
        while written < n_bytes:
            codes = rng.choice(ascii_syms, size=chunk_chars, p=ascii_p)
            is_cjk = rng.random(chunk_chars) < cjk_fraction
            codes[is_cjk] = rng.choice(cjk, size=int(is_cjk.sum()))
            data = codes.astype("<u4").tobytes().decode("utf-32-le").encode("utf-8")
            if written + len(data) > n_bytes:
                # finish on an exact byte count with ASCII (1 byte per character)
                rest = n_bytes - written
                data = rng.choice(ascii_syms[1:], size=rest).astype(np.uint8).tobytes()
            fh.write(data)
            written += len(data)


class StreamsDataPass:
    """B parallel streams (as ``charrnn-train --batch-size B`` reads the text):
    the ids cut into B equal parts, stream b reads part b in chunks of T, all
    streams going back to the start of their parts together (hidden states
    reset) at step 0 and whenever the next chunk would run past a part's end."""

    def __init__(self, ids: np.ndarray, seq: int, streams: int):
        self.part = len(ids) // streams
        if self.part < seq + 2:
            raise ValueError(f"a text of {len(ids)} characters is too short for {streams} streams")
        self.ids, self.seq, self.streams, self.p, self.n = ids, seq, streams, 0, 0

    def next(self):
        """(inputs, targets, reset): int32 arrays (B, T), and whether the
        hidden states must be reset to zeros before this chunk."""
        T, part = self.seq, self.part
        reset = self.n == 0 or self.p + T + 1 >= part
        if reset:
            self.p = 0
        starts = np.arange(self.streams) * part + self.p
        x = self.ids[starts[:, None] + np.arange(T)]
        y = self.ids[starts[:, None] + np.arange(1, T + 1)]
        self.p += T
        self.n += 1
        return x, y, reset
