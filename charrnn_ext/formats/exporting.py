"""A model exported to a file other tools load, the format chosen by the file's extension: safetensors (export_safetensors.py), ONNX (export_onnx.py)."""
from __future__ import annotations

import os

from ..ckpt._ckptfile import write_atomic
from .safetensors import safetensors_bytes

# The formats, by the output's extension (lower case): what writes each.
FORMATS = {".safetensors": "safetensors", ".onnx": "onnx"}


def format_of(path) -> str:
    """"safetensors" or "onnx", from ``path``'s extension; ValueError otherwise."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown format {ext or '(no extension)'!r}; name the file "
                         f"{' or '.join('OUT' + e for e in FORMATS)}")
    return FORMATS[ext]


def to_bytes(model, chars, path, state=None) -> bytes:
    """The file ``export`` writes at ``path`` (format from its extension)."""
    if format_of(path) == "onnx":
        from .onnx import onnx_bytes
        return onnx_bytes(model, chars, state)
    return safetensors_bytes(model, chars, state)


def export(model, chars, path, state=None) -> None:
    """Write ``model`` (vocabulary ``chars``, in id order) and one stream's
    ``state`` (default zeros; a checkpoint's is ``hidden[:, :1]``) to
    ``path``, as safetensors or ONNX by its extension, atomically."""
    data = to_bytes(model, chars, path, state)
    write_atomic(os.path.realpath(path), lambda f: f.write(data))
