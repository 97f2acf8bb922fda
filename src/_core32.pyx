# charrnn_ext._core32, the module: its docstring, and the float32 build of the core.
# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""The core of charrnn_ext over float32 (the opt-in --dtype float32 path):
src/_core.pyx's kernels compiled with real = float and BLAS sgemm. The same
invariants hold (see src/_core.pyx); float64 (charrnn_ext._core) stays the
default and the reference.
"""
include "core/real32.pxi"
include "core/body.pxi"
