# The compute type of this build: real = double, BLAS dgemm (charrnn_ext._core).
import numpy as np

from scipy.linalg.cython_blas cimport dgemm as blas_gemm

ctypedef double real
REAL = np.float64       # the dtype of every array of reals the core reads or writes
cdef int KERNEL_REVISION = 4   # how this build rounds (knobs.pxi: kernel_revision)
cdef char *REAL_FORMAT = b"d"   # its buffer-protocol format (Storage)

cdef extern from *:
    """
    #define charrnn_ext_block4x32 charrnn_ext_block4x32_d
    """
    # microkernel.pxi's Y[0:4, 0:32] = X[0:4, :K] @ W[:K, 0:32] over double
    void block4x32 "charrnn_ext_block4x32" (real *Y, int ldy, const real *X, int ldx,
                                            const real *W, int ldw, int K) noexcept nogil
