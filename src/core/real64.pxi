# The compute type of this build: real = double, BLAS dgemm (charrnn_ext._core).
import numpy as np

from scipy.linalg.cython_blas cimport dgemm as blas_gemm

ctypedef double real
REAL = np.float64       # the dtype of every array of reals the core reads or writes
cdef char *REAL_FORMAT = b"d"   # its buffer-protocol format (Storage)
