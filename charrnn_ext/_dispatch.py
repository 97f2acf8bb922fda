"""Pick the fastest build of the Cython core that this CPU can run.

The wheel carries ``_core`` (portable baseline) and, on x86-64,
``_core_x86_64_v3`` (AVX2 + FMA) and ``_core_x86_64_v4`` (AVX-512), all
compiled from the same ``src/_core.pyx``. Set ``CHARRNN_EXT_CORE`` to
``baseline``, ``x86_64_v3`` or ``x86_64_v4`` to force one.
"""
import importlib
import os

import numpy as np

# CPU features each variant needs (names as numpy's runtime detection spells them)
_REQUIREMENTS = {
    "x86_64_v4": ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL", "AVX2", "FMA3", "BMI2"),
    "x86_64_v3": ("AVX2", "FMA3", "BMI2", "F16C"),
}


def _cpu_features() -> dict:
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(importlib.import_module(module).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def available_variants() -> list:
    """The core builds importable here and runnable on this CPU, best first."""
    features = _cpu_features()
    found = []
    for name, needs in _REQUIREMENTS.items():
        if all(features.get(f, False) for f in needs):
            try:
                importlib.import_module(f"charrnn_ext._core_{name}")
            except ImportError:
                continue
            found.append(name)
    return found + ["baseline"]


def load_core(name=None):
    """(variant name, core module): ``name``, else $CHARRNN_EXT_CORE, else the best available."""
    name = name or os.environ.get("CHARRNN_EXT_CORE") or available_variants()[0]
    if name == "baseline":
        return name, importlib.import_module("charrnn_ext._core")
    if name not in _REQUIREMENTS:
        raise ValueError(f"unknown core variant {name!r}; choose baseline, x86_64_v3 or x86_64_v4")
    if name not in available_variants():
        raise ValueError(f"core variant {name!r} is not built or not supported by this CPU")
    return name, importlib.import_module(f"charrnn_ext._core_{name}")


variant, core = load_core()
