"""Build the Cython core ``charrnn_ext._core`` (all metadata lives in pyproject.toml).

On x86-64 the same source, src/_core.pyx, is also compiled for the
x86-64-v3 (AVX2 + FMA) and x86-64-v4 (AVX-512) instruction sets as
``_core_x86_64_v3`` / ``_core_x86_64_v4``; ``charrnn_ext._dispatch`` picks the
best one the CPU supports at import time. The wheel stays portable: the
baseline module needs nothing beyond the platform's baseline ISA.
"""
import os
import sys
import sysconfig

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
CORE_SOURCE = os.path.join("src", "_core.pyx")

if sys.platform == "win32":
    base_args = ["/O2", "/fp:precise"]
    variants = {"x86_64_v3": ["/arch:AVX2"], "x86_64_v4": ["/arch:AVX512"]}
else:
    # -fno-math-errno lets sqrt/division vectorise; IEEE semantics are otherwise kept.
    # -g0: no debug info in the wheel (Python's own CFLAGS add -g).
    base_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-g0"]
    # x86-64-v3 / v4 spelled out, so that compilers older than GCC 11 accept them
    v3 = ["-mavx", "-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mf16c", "-mlzcnt", "-mmovbe",
          "-msse4.2", "-mpopcnt"]
    v4 = v3 + ["-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq", "-mavx512vl",
               "-mprefer-vector-width=512"]
    variants = {"x86_64_v3": v3, "x86_64_v4": v4}

# the target platform (respects cross-compilation, e.g. macOS arm64 from x86_64)
target = sysconfig.get_platform().lower()
if not any(arch in target for arch in ("x86_64", "amd64", "win-amd64")) or "arm64" in target:
    variants = {}
if os.environ.get("CHARRNN_EXT_NO_VARIANTS"):
    variants = {}

def variant_source(name):
    """A build-time stub that includes the one kernel source under another module name."""
    path = os.path.join("build", "variants", f"_core_{name}.pyx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = f'include "{os.path.join(HERE, CORE_SOURCE)}"\n'.replace("\\", "/")
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)
    return path

def openmp_flags():
    """(compile args, link args) for OpenMP, or ([], []) where the compiler has
    none (e.g. Apple clang) or CHARRNN_EXT_NO_OPENMP is set: the core then runs
    its output-layer stripes on one thread, with the same results."""
    if os.environ.get("CHARRNN_EXT_NO_OPENMP"):
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    if sys.platform == "darwin":
        return [], []
    import shutil
    import subprocess
    import tempfile
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    if not shutil.which(compiler[0]):
        return [], []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            result = subprocess.run(compiler + ["-fopenmp", src, "-o", os.path.join(tmp, "omp")],
                                    capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return [], []
    return (["-fopenmp"], ["-fopenmp"]) if result.returncode == 0 else ([], [])


omp_compile, omp_link = openmp_flags()
common = dict(
    include_dirs=[np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)
extensions = [Extension("charrnn_ext._core", [CORE_SOURCE], extra_compile_args=base_args + omp_compile,
                        extra_link_args=omp_link, **common)]
for name, flags in variants.items():
    extensions.append(Extension(f"charrnn_ext._core_{name}", [variant_source(name)],
                                extra_compile_args=base_args + flags + omp_compile,
                                extra_link_args=omp_link, **common))

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
)
