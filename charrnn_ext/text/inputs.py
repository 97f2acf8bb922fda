"""Reading the user's text: a file, standard input or the built-in demo corpus, checked and decoded."""
from __future__ import annotations

import codecs
import os
import stat
import sys

from ..errors import InputError


def read_text(path: str | None, encoding: str) -> tuple[str, str, str | None]:
    """(text, name for messages, first output line or None)."""
    if path is None:
        from .corpus import demo_corpus
        try:
            text, modules = demo_corpus()
        except RuntimeError as exc:
            raise InputError(str(exc)) from None
        note = (f"no input file given: training on the built-in demo corpus, the source of "
                f"{len(modules)} Python standard library modules ({', '.join(modules)})")
        return text, "the demo corpus", note
    data, name = read_input(path, encoding)
    return decode_input(data, name, encoding), name, None


def read_input(path: str, encoding: str) -> tuple[bytes, str]:
    """(the bytes of the text at ``path`` ('-': standard input), its name for
    messages): a readable, non-empty file that is not a device, and an
    ``encoding`` that names a text codec; else InputError. The one reader of
    input texts (charrnn-train, charrnn-sweep)."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown --encoding {encoding!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise InputError(f"--encoding {encoding!r} is not a text encoding")
    if path == "-":
        name = "standard input"
        if sys.stdin is None:
            raise InputError("standard input is closed")
        data = sys.stdin.buffer.read()
    else:
        name = path
        if os.path.isdir(path):
            raise InputError(f"{path} is a directory, not a text file")
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0  # reported by open() below
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
            raise InputError(f"{path} is a device or socket, not a text file")
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except PermissionError:
            raise InputError(f"{path}: permission denied") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not data:
        raise InputError(f"{name} is empty")
    return data, name


def decode_input(data: bytes, name: str, encoding: str) -> str:
    """The text of read_input's bytes (a UTF-8 byte-order mark is not part of
    it), or InputError naming the first undecodable bytes."""
    info = codecs.lookup(encoding)
    try:
        text = data.decode("utf-8-sig" if info.name == "utf-8" else encoding)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.end][:4].hex(" ")
        raise InputError(f"{name} is not valid {info.name} text: cannot decode byte(s) {bad} at "
                         f"offset {exc.start} (use --encoding to name its encoding)") from None
    except UnicodeError as exc:
        raise InputError(f"{name} cannot be decoded as {info.name}: {exc}") from None
    if not text:
        raise InputError(f"{name} has no text")
    return text
