"""How messages word numbers: a count and its noun in agreement."""
from __future__ import annotations


def count(n: int, noun: str) -> str:
    """'1 character', '2 characters': a number and its noun, in agreement."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
