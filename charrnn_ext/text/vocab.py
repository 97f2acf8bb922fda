"""The character vocabulary: distinct characters <-> integer ids (a text's own: sorted).

A text's vocabulary (Vocab.from_text) is its distinct characters sorted by
code point. A fine-tuned model's is the vocabulary it started from with the
new text's other characters appended (Vocab.grown): every known character
keeps its id, so ids are in id order, not always sorted.

Building and encoding run in Cython (charrnn_ext._text), one pass over the
string's own buffer (no Python loop per character, no UTF-32 copy).
"""
from __future__ import annotations

import numpy as np

from .._text import encode_text, mark_code_points

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
    """Distinct characters in id order; ``len(vocab)`` is the vocabulary size.
    A text's own (from_text) is sorted; a grown one (grown) is its start's
    characters, then the new ones."""

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
        if np.unique(codes).size != codes.size:
            raise ValueError("vocabulary characters must be distinct")
        self._chars = "".join(chars)
        self._codes = codes
        # code point -> id, -1 where the character is not in the vocabulary
        self._lookup = np.full(int(codes.max()) + 1, -1, dtype=np.int32)
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

    @classmethod
    def of_text(cls, text: str, like: "Vocab | None" = None) -> "Vocab":
        """The vocabulary ``text`` is read in: ``like`` (a checkpoint's, in its
        id order) when it holds every character of the text, else the text's
        own (from_text). Resuming reads its text this way: a fine-tuned run's
        text need not hold every character its model knows."""
        own = cls.from_text(text)
        return like if like is not None and not like.missing(own.chars) else own

    def grown(self, text: str) -> "Vocab":
        """This vocabulary with the characters of ``text`` it lacks appended
        (sorted among themselves): every character here keeps its id."""
        new = self.missing(text)
        return Vocab(self._chars + "".join(new)) if new else self

    def missing(self, text: str) -> list[str]:
        """The characters of ``text`` this vocabulary lacks, sorted."""
        if not text:
            return []
        own = Vocab.from_text(text)
        return [c for c, i in zip(own.chars, self.ids_of_codes(own._codes).tolist()) if i < 0]

    def id_of(self, ch: str) -> int:
        """The id of character ``ch``, or -1 outside the vocabulary."""
        return int(self.ids_of_codes(np.array([ord(ch)]))[0])

    def ids_of_codes(self, codes) -> np.ndarray:
        """Ids (int32) of an array of code points, -1 where one is not in the vocabulary."""
        codes = np.asarray(codes, dtype=np.int64)
        inside = (codes >= 0) & (codes < self._lookup.size)
        return np.where(inside, self._lookup[np.where(inside, codes, 0)], -1).astype(np.int32)

    @property
    def chars(self) -> str:
        """The vocabulary's characters in id order (a text's own: sorted by code point)."""
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
