"""Build the extension modules of charrnn_ext (all metadata lives in pyproject.toml).

``charrnn_ext._core`` (src/_core.pyx, one compilation unit: the pieces it
includes, src/core/*.pxi, are part of it) is the numerical core;
``charrnn_ext._core32`` (src/_core32.pyx) is the same source over float32 (the
opt-in --dtype float32 path). On x86-64 each is also compiled for the
x86-64-v3 (AVX2 + FMA) and x86-64-v4 (AVX-512) instruction sets, as the
variants ``_core_x86_64_v3`` / ``_core_x86_64_v4`` (``_core32_...``);
``charrnn_ext.core._dispatch`` picks the best variant the CPU supports at import
time. The wheel stays portable: the baseline variant needs
nothing beyond the platform's baseline ISA.

``charrnn_ext._text`` (src/_text.pyx), the text encoder of charrnn_ext.text.vocab,
is built once: it has no variants.
"""
import os
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

try:
    from setuptools.errors import CCompilerError, DistutilsError
except ImportError:  # older setuptools
    from distutils.errors import CCompilerError, DistutilsError

HERE = os.path.dirname(os.path.abspath(__file__))
CORE_SOURCE = os.path.join("src", "_core.pyx")
CORE32_SOURCE = os.path.join("src", "_core32.pyx")
TEXT_SOURCE = os.path.join("src", "_text.pyx")

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
if os.environ.get("CHARRNN_EXT_VARIANTS"):   # a development build of some variants only
    variants = {name: variants[name] for name in os.environ["CHARRNN_EXT_VARIANTS"].split(",")
                if name in variants}

def variant_source(module, source, name):
    """A build-time stub that includes the kernel source ``source`` under the
    module name ``{module}_{name}`` (its own includes, src/core/*.pxi, are found
    next to it)."""
    path = os.path.join("build", "variants", f"{module}_{name}.pyx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = f'include "{os.path.join(HERE, source)}"\n'.replace("\\", "/")
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)
    return path

def no_openmp_requested() -> bool:
    return os.environ.get("CHARRNN_EXT_NO_OPENMP", "").strip() not in ("", "0")


class BuildExt(build_ext):
    """build_ext that adds OpenMP flags to the core's variants where the
    compiler actually in use ($CC, CFLAGS, ... as setuptools configured it)
    compiles and links an OpenMP program. Without OpenMP (e.g. Apple clang, or
    CHARRNN_EXT_NO_OPENMP=1) the core runs its output-layer stripes on one
    thread, with the same results."""

    def build_extensions(self):
        compile_args, link_args = self.openmp_flags()
        for ext in self.extensions:
            if not ext.name.startswith("charrnn_ext._core"):
                continue
            ext.extra_compile_args = list(ext.extra_compile_args or []) + compile_args
            ext.extra_link_args = list(ext.extra_link_args or []) + link_args
        super().build_extensions()

    def openmp_flags(self):
        if no_openmp_requested():
            return [], []
        if self.compiler.compiler_type == "msvc":
            return ["/openmp"], []
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "omp_probe.c")
            with open(source, "w") as f:
                f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
            try:
                objects = self.compiler.compile([source], output_dir=tmp, extra_postargs=["-fopenmp"])
                self.compiler.link_executable(objects, "omp_probe", output_dir=tmp,
                                              extra_postargs=["-fopenmp"])
            except (CCompilerError, DistutilsError, OSError):
                print("charrnn_ext: the compiler has no OpenMP; the core will use one thread")
                return [], []
        return ["-fopenmp"], ["-fopenmp"]


common = dict(
    include_dirs=[np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)
extensions = [Extension("charrnn_ext._core", [CORE_SOURCE], extra_compile_args=base_args, **common),
              Extension("charrnn_ext._core32", [CORE32_SOURCE], extra_compile_args=base_args,
                        **common),
              Extension("charrnn_ext._text", [TEXT_SOURCE], extra_compile_args=base_args, **common)]
for module, source in (("_core", CORE_SOURCE), ("_core32", CORE32_SOURCE)):
    for name, flags in variants.items():
        extensions.append(Extension(f"charrnn_ext.{module}_{name}",
                                    [variant_source(module, source, name)],
                                    extra_compile_args=base_args + flags, **common))

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False,
                             "cdivision": True, "initializedcheck": False},
    ),
)
