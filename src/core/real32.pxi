# The compute type of this build: real = float, BLAS sgemm (charrnn_ext._core32).
import numpy as np

from scipy.linalg.cython_blas cimport sgemm as blas_gemm

ctypedef float real
REAL = np.float32       # the dtype of every array of reals the core reads or writes
cdef int KERNEL_REVISION = 5   # how this build rounds (knobs.pxi: kernel_revision)
cdef char *REAL_FORMAT = b"f"   # its buffer-protocol format (Storage)

cdef extern from *:
    """
    #define charrnn_ext_block4x32 charrnn_ext_block4x32_f
    """
    # microkernel.pxi's Y[0:4, 0:32] = X[0:4, :K] @ W[:K, 0:32] over float
    void block4x32 "charrnn_ext_block4x32" (real *Y, int ldy, const real *X, int ldx,
                                            const real *W, int ldw, int K) noexcept nogil
