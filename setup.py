"""Build the Cython core ``charrnn_ext._core`` (all metadata lives in pyproject.toml)."""
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args = ["/O2", "/fp:precise"]
else:
    # Portable flags only (no -march=native: wheels run on any x86-64/arm64 CPU).
    # -fno-math-errno lets sqrt/division vectorise; IEEE semantics are otherwise kept.
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"]

extensions = [
    Extension(
        "charrnn_ext._core",
        ["src/_core.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
)
