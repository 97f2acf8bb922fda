# The compute type of this build: real = float, BLAS sgemm (charrnn_ext._core32).
import numpy as np

from scipy.linalg.cython_blas cimport sgemm as blas_gemm

ctypedef float real
REAL = np.float32       # the dtype of every array of reals the core reads or writes
cdef char *REAL_FORMAT = b"f"   # its buffer-protocol format (Storage)
