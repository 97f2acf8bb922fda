"""The character vocabulary: sorted distinct characters <-> integer ids.

Building and encoding run in Cython (charrnn_ext._text), one pass over the
string's own buffer (no Python loop per character, no UTF-32 copy).
"""
from __future__ import annotations

import numpy as np

from ._text import encode_text, mark_code_points

_MAX_CODE_POINT = 0x10FFFF


def _as_str(text) -> str:
    if type(text) is str:
        return text
    if isinstance(text, str):
        return str(text)  # a str subclass: the encoder reads plain str buffers
    raise TypeError(f"text must be str, not {type(text).__name__}")


def _from_code_points(codes: np.ndarray) -> str:
    return np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


class Vocab:
    """Sorted distinct characters of a text; ``len(vocab)`` is the vocabulary size."""

    __slots__ = ("_chars", "_codes", "_lookup")

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        for ch in chars:
            if not isinstance(ch, str):
                raise TypeError(f"vocabulary entries must be characters (str), got {ch!r}")
            if len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        codes = np.array([ord(ch) for ch in chars], dtype=np.uint32)
        if np.any(np.diff(codes.astype(np.int64)) <= 0):
            raise ValueError("vocabulary characters must be distinct and sorted")
        self._chars = "".join(chars)
        self._codes = codes
        # code point -> id, -1 where the character is not in the vocabulary
        self._lookup = np.full(int(codes[-1]) + 1, -1, dtype=np.int32)
        self._lookup[codes] = np.arange(len(codes), dtype=np.int32)

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """The sorted distinct characters of ``text`` (which must not be empty)."""
        text = _as_str(text)
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        marks = np.zeros(_MAX_CODE_POINT + 1, dtype=np.uint8)
        mark_code_points(text, marks)
        present = np.flatnonzero(marks)
        return cls(_from_code_points(present))

    @property
    def chars(self) -> str:
        """The vocabulary's characters in id order (sorted by code point)."""
        return self._chars

    def lone_surrogate(self) -> str | None:
        """The first lone surrogate (U+D800..U+DFFF) of the vocabulary, or None.
        A Python string may hold one (surrogateescape, broken UTF-16), and so
        a Vocab; no UTF-8 text can, so a checkpoint's vocabulary never does."""
        found = self._codes[(self._codes >= 0xD800) & (self._codes <= 0xDFFF)]
        return chr(found[0]) if found.size else None

    def __len__(self) -> int:
        return len(self._codes)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"Vocab({len(self)} character{'' if len(self) == 1 else 's'})"

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text`` as an int32 array.

        A character outside the vocabulary is a ValueError naming it.
        """
        text = _as_str(text)
        ids = np.empty(len(text), dtype=np.int32)
        bad = encode_text(text, self._lookup, ids)
        if bad >= 0:
            ch = text[bad]
            raise ValueError(
                f"character {ch!r} (U+{ord(ch):04X}) at position {bad} is not in the vocabulary"
            )
        return ids

    def decode(self, ids) -> str:
        """The text of a sequence of ids (ValueError for ids out of range)."""
        ids = np.asarray(ids)
        if ids.size == 0:
            return ""
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= len(self):
            raise ValueError(f"ids must be in [0, {len(self)})")
        return _from_code_points(self._codes[ids.ravel()])
