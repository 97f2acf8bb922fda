"""The character vocabulary: sorted distinct characters <-> integer ids.

All encoding is vectorised numpy work over Unicode code points (no Python loop
per character), so a 100 MB text encodes in about a second.
"""
from __future__ import annotations

import numpy as np

_MAX_CODE_POINT = 0x10FFFF


def _code_points(text: str) -> np.ndarray:
    """The code points of ``text`` as a uint32 array (lone surrogates kept)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def _from_code_points(codes: np.ndarray) -> str:
    return np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


class Vocab:
    """Sorted distinct characters of a text; ``len(vocab)`` is the vocabulary size."""

    __slots__ = ("chars", "_codes", "_lookup")

    def __init__(self, chars):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character")
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        codes = np.array([ord(ch) for ch in chars], dtype=np.uint32)
        if np.any(np.diff(codes.astype(np.int64)) <= 0):
            raise ValueError("vocabulary characters must be distinct and sorted")
        self.chars = "".join(chars)
        self._codes = codes
        # code point -> id, -1 where the character is not in the vocabulary
        self._lookup = np.full(int(codes[-1]) + 1, -1, dtype=np.int32)
        self._lookup[codes] = np.arange(len(codes), dtype=np.int32)

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """The sorted distinct characters of ``text`` (which must not be empty)."""
        codes = _code_points(text)
        if codes.size == 0:
            raise ValueError("cannot build a vocabulary from empty text")
        present = np.flatnonzero(np.bincount(codes, minlength=1))
        return cls(_from_code_points(present))

    def __len__(self) -> int:
        return len(self._codes)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"Vocab({len(self)} characters)"

    def encode(self, text: str) -> np.ndarray:
        """Ids of the characters of ``text`` as an int32 array.

        A character outside the vocabulary is a ValueError naming it.
        """
        codes = _code_points(text)
        if codes.size == 0:
            return np.zeros(0, dtype=np.int32)
        ids = np.full(codes.shape, -1, dtype=np.int32)
        inside = codes < self._lookup.size
        ids[inside] = self._lookup[codes[inside]]
        bad = np.flatnonzero(ids < 0)
        if bad.size:
            ch = chr(int(codes[bad[0]]))
            raise ValueError(
                f"character {ch!r} (U+{ord(ch):04X}) at position {int(bad[0])} is not in the vocabulary"
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
