# The core's imports and its pieces, in order: the body of _core.pyx and _core32.pyx.
# (The real type, `real`, and its BLAS gemm come first: core/real64.pxi or real32.pxi.)

import numpy as np

from libc.math cimport INFINITY, log, pow, sqrt
from libc.stdlib cimport qsort
from libc.string cimport memcpy, memset
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cython.parallel cimport parallel, prange, threadid

include "shim.pxi"
include "knobs.pxi"
include "vmath.pxi"
include "microkernel.pxi"
include "linalg.pxi"
include "partition.pxi"
include "update.pxi"
include "rnn.pxi"
include "output.pxi"
include "sampling.pxi"
include "trace.pxi"
include "datapass.pxi"
include "model.pxi"
include "pipeline.pxi"
include "workspace.pxi"
include "storage.pxi"
include "lstm.pxi"
include "gru.pxi"
include "stack.pxi"
include "layer.pxi"
include "gated_workspace.pxi"
include "face.pxi"
