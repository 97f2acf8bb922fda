"""The built-in demo corpus: source text of Python standard-library modules.

Every Python installation carries its standard library, so
``python -m charrnn_ext.train`` with no input file has ~0.5 MB of English
prose (docstrings, comments) and code to learn from without any download.
The modules are read as files (nothing is imported); a module whose source is
missing (frozen, or stripped by a distribution) is skipped.
"""
from __future__ import annotations

import importlib.util
import os
import sysconfig

# A fixed list, in a fixed order, so the corpus is the same on every run of
# the same Python. Chosen for their long docstrings; about 0.5 MB together.
MODULES = (
    "textwrap", "string", "difflib", "argparse", "shlex", "fractions",
    "heapq", "calendar", "csv", "functools", "statistics", "random",
    "contextlib", "optparse",
)


def _source_path(name: str) -> str | None:
    stdlib = sysconfig.get_paths().get("stdlib")
    if stdlib:
        candidate = os.path.join(stdlib, name + ".py")
        if os.path.isfile(candidate):
            return candidate
    try:  # unusual layouts: ask the import system (top-level names import nothing)
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    if origin and origin.endswith(".py") and os.path.isfile(origin):
        return origin
    return None


def demo_corpus() -> tuple[str, list[str]]:
    """(text, module names used): the sources of the MODULES that are
    available, each preceded by a ``# <name>.py`` line. Raises RuntimeError
    if none of them can be read."""
    parts, used = [], []
    for name in MODULES:
        path = _source_path(name)
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                source = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        parts.append(f"# {name}.py\n{source}")
        used.append(name)
    if not parts:
        raise RuntimeError("the Python standard library's source files are not available "
                           "here, so there is no built-in demo corpus; pass a text file")
    return "\n\n".join(parts), used
