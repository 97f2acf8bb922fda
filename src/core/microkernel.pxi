# The register-blocked microkernel of matmul_blocked (linalg.pxi): Y[0:4, 0:32] = X[0:4, :K] @ W[:K, 0:32].
#
# C, because Cython's arrays of accumulators were kept in memory by GCC (a
# store and a load around every multiply-add: half the speed; measured in
# benchmarks/README.md). With GCC or Clang the 32 columns are computed in
# chunks whose 4 x C block of accumulators fits the register file of the
# instruction set the build targets (chosen at compile time, per ISA variant):
#     AVX-512 (32 x 64 bytes):  4 rows x 4 vectors   (double: C 32, float: 2 vectors, C 32)
#     AVX/AVX2 (16 x 32 bytes): 4 rows x 2 vectors   (double: C 8,  float: C 16)
#     NEON (32 x 16 bytes):     4 rows x 4 vectors   (double: C 8,  float: C 16)
#     SSE2 and others (16 x 16 bytes): 4 rows x 2 vectors (double: C 4, float: C 8)
# so that 4 x NV accumulators, NV vectors of W and the 4 broadcasts of X stay
# in registers (a 4 x 32 block of 64-byte vectors spilled on AVX2 and SSE2:
# benchmarks/README.md, "The kernels on every CPU"); elsewhere plain loops.
# Every element is the same sum in every build and chunking: acc = acc +
# x[k] * w[k] for k in order (contracted to a fused multiply-add where the
# build has FMA, in every kernel of the build alike), so results do not
# depend on which rows or columns a block covers.

cdef extern from *:
    """
    #include <stddef.h>
    #if defined(__GNUC__) || defined(__clang__)
    #if defined(__AVX512F__)
    #define CHARRNN_EXT_VBYTES 64
    #define CHARRNN_EXT_VREGS 32
    #elif defined(__AVX__)
    #define CHARRNN_EXT_VBYTES 32
    #define CHARRNN_EXT_VREGS 16
    #elif defined(__aarch64__)
    #define CHARRNN_EXT_VBYTES 16
    #define CHARRNN_EXT_VREGS 32
    #else
    #define CHARRNN_EXT_VBYTES 16
    #define CHARRNN_EXT_VREGS 16
    #endif
    typedef double charrnn_ext_vd __attribute__((vector_size(CHARRNN_EXT_VBYTES), aligned(8)));
    typedef float charrnn_ext_vf __attribute__((vector_size(CHARRNN_EXT_VBYTES), aligned(4)));

    /* Y[0:4, 0:NV*L] = X[0:4, :K] @ W[:K, 0:NV*L] with 4 x NV vector
       accumulators held in named variables (arrays of them were kept on the
       stack by GCC), L = the vector's lanes, NV = 2 or 4. */
    #define CHARRNN_EXT_CHUNK(NAME, T, VT, NV, DECLARE, LOAD, MAC, STORE) \\
    static inline void NAME(T *Y, int ldy, const T *X, int ldx, const T *W, int ldw, int K) { \\
        enum { L = CHARRNN_EXT_VBYTES / sizeof(T) }; \\
        DECLARE(VT) \\
        const T *x0 = X, *x1 = X + ldx, *x2 = X + 2 * (ptrdiff_t) ldx; \\
        const T *x3 = X + 3 * (ptrdiff_t) ldx; \\
        for (int k = 0; k < K; k++) { \\
            const T *w = W + (ptrdiff_t) k * ldw; \\
            LOAD(VT) \\
            T s0 = x0[k], s1 = x1[k], s2 = x2[k], s3 = x3[k]; \\
            MAC(0) MAC(1) MAC(2) MAC(3) \\
        } \\
        VT *y = (VT *) Y; STORE(0) \\
        y = (VT *) (Y + ldy); STORE(1) \\
        y = (VT *) (Y + 2 * (ptrdiff_t) ldy); STORE(2) \\
        y = (VT *) (Y + 3 * (ptrdiff_t) ldy); STORE(3) \\
    }
    #define CHARRNN_EXT_DECLARE2(VT) VT a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, \\
        a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    #define CHARRNN_EXT_LOAD2(VT) VT w0 = *(const VT *) w, w1 = *(const VT *) (w + L);
    #define CHARRNN_EXT_MAC2(r) a##r##0 += s##r * w0; a##r##1 += s##r * w1;
    #define CHARRNN_EXT_STORE2(r) y[0] = a##r##0; y[1] = a##r##1;
    #define CHARRNN_EXT_DECLARE4(VT) VT a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0}, \\
        a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0}, a20 = {0}, a21 = {0}, a22 = {0}, \\
        a23 = {0}, a30 = {0}, a31 = {0}, a32 = {0}, a33 = {0};
    #define CHARRNN_EXT_LOAD4(VT) VT w0 = *(const VT *) w, w1 = *(const VT *) (w + L), \\
        w2 = *(const VT *) (w + 2 * L), w3 = *(const VT *) (w + 3 * L);
    #define CHARRNN_EXT_MAC4(r) a##r##0 += s##r * w0; a##r##1 += s##r * w1; \\
        a##r##2 += s##r * w2; a##r##3 += s##r * w3;
    #define CHARRNN_EXT_STORE4(r) y[0] = a##r##0; y[1] = a##r##1; y[2] = a##r##2; \\
        y[3] = a##r##3;
    #define CHARRNN_EXT_CHUNK_NV(NAME, T, VT, NV) CHARRNN_EXT_CHUNK(NAME, T, VT, NV, \\
        CHARRNN_EXT_DECLARE##NV, CHARRNN_EXT_LOAD##NV, CHARRNN_EXT_MAC##NV, CHARRNN_EXT_STORE##NV)
    /* NV: 4 x NV accumulators + NV vectors of W + the broadcasts fit the
       registers; a chunk covers at most 32 columns (NV * L <= 32). */
    #if CHARRNN_EXT_VREGS >= 32 && CHARRNN_EXT_VBYTES == 64
    #define CHARRNN_EXT_NV_D 4
    #define CHARRNN_EXT_NV_F 2
    #elif CHARRNN_EXT_VREGS >= 32
    #define CHARRNN_EXT_NV_D 4
    #define CHARRNN_EXT_NV_F 4
    #else
    #define CHARRNN_EXT_NV_D 2
    #define CHARRNN_EXT_NV_F 2
    #endif
    #define CHARRNN_EXT_CHUNK_OF(NAME, T, VT, NV) CHARRNN_EXT_CHUNK_NV(NAME, T, VT, NV)
    CHARRNN_EXT_CHUNK_OF(charrnn_ext_chunk_d, double, charrnn_ext_vd, CHARRNN_EXT_NV_D)
    CHARRNN_EXT_CHUNK_OF(charrnn_ext_chunk_f, float, charrnn_ext_vf, CHARRNN_EXT_NV_F)

    __attribute__((unused))  /* each build uses one of the two */
    static void charrnn_ext_block4x32_d(double *Y, int ldy, const double *X, int ldx,
                                        const double *W, int ldw, int K) {
        const int C = CHARRNN_EXT_NV_D * (CHARRNN_EXT_VBYTES / 8);
        for (int c = 0; c < 32; c += C) charrnn_ext_chunk_d(Y + c, ldy, X, ldx, W + c, ldw, K);
    }
    __attribute__((unused))
    static void charrnn_ext_block4x32_f(float *Y, int ldy, const float *X, int ldx,
                                        const float *W, int ldw, int K) {
        const int C = CHARRNN_EXT_NV_F * (CHARRNN_EXT_VBYTES / 4);
        for (int c = 0; c < 32; c += C) charrnn_ext_chunk_f(Y + c, ldy, X, ldx, W + c, ldw, K);
    }
    #else
    #define CHARRNN_EXT_BLOCK4X32(NAME, T) \\
    static void NAME(T *Y, int ldy, const T *X, int ldx, const T *W, int ldw, int K) { \\
        T a[4][32] = {{0}}; \\
        for (int k = 0; k < K; k++) { \\
            const T *w = W + (ptrdiff_t) k * ldw; \\
            for (int r = 0; r < 4; r++) { \\
                T s = X[r * (ptrdiff_t) ldx + k]; \\
                for (int j = 0; j < 32; j++) a[r][j] = a[r][j] + s * w[j]; \\
            } \\
        } \\
        for (int r = 0; r < 4; r++) \\
            for (int j = 0; j < 32; j++) Y[r * (ptrdiff_t) ldy + j] = a[r][j]; \\
    }
    CHARRNN_EXT_BLOCK4X32(charrnn_ext_block4x32_d, double)
    CHARRNN_EXT_BLOCK4X32(charrnn_ext_block4x32_f, float)
    #endif
    """
    void block4x32_d "charrnn_ext_block4x32_d" (double *Y, int ldy, const double *X, int ldx,
                                                const double *W, int ldw, int K) noexcept nogil
    void block4x32_f "charrnn_ext_block4x32_f" (float *Y, int ldy, const float *X, int ldx,
                                                const float *W, int ldw, int K) noexcept nogil
