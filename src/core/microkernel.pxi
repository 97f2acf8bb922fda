# The register-blocked microkernel of matmul_blocked (linalg.pxi): Y[0:4, 0:32] = X[0:4, :K] @ W[:K, 0:32].
#
# C, because Cython's arrays of accumulators were kept in memory by GCC (a
# store and a load around every multiply-add: half the speed; measured in
# benchmarks/README.md). With GCC or Clang the 4 x 32 block is held in
# vector registers (64-byte vectors: 4 x 2 of float, 4 x 4 of double; the
# compiler splits them on narrower ISAs); elsewhere plain loops. Every
# element is the same sum in both: acc = acc + x[k] * w[k] for k in order
# (contracted to a fused multiply-add where the build has FMA, in every
# kernel of the build alike), so results do not depend on which rows or
# columns a block covers.

cdef extern from *:
    """
    #include <stddef.h>
    #if defined(__GNUC__) || defined(__clang__)
    typedef double charrnn_ext_vd __attribute__((vector_size(64), aligned(8)));
    typedef float charrnn_ext_vf __attribute__((vector_size(64), aligned(4)));
    __attribute__((unused))  /* each build uses one of the two */
    static void charrnn_ext_block4x32_d(double *Y, int ldy, const double *X, int ldx,
                                        const double *W, int ldw, int K) {
        charrnn_ext_vd a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0};
        charrnn_ext_vd a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
        charrnn_ext_vd a20 = {0}, a21 = {0}, a22 = {0}, a23 = {0};
        charrnn_ext_vd a30 = {0}, a31 = {0}, a32 = {0}, a33 = {0};
        const double *x0 = X, *x1 = X + ldx, *x2 = X + 2 * (ptrdiff_t) ldx;
        const double *x3 = X + 3 * (ptrdiff_t) ldx;
        for (int k = 0; k < K; k++) {
            const double *w = W + (ptrdiff_t) k * ldw;
            charrnn_ext_vd w0 = *(const charrnn_ext_vd *) w;
            charrnn_ext_vd w1 = *(const charrnn_ext_vd *) (w + 8);
            charrnn_ext_vd w2 = *(const charrnn_ext_vd *) (w + 16);
            charrnn_ext_vd w3 = *(const charrnn_ext_vd *) (w + 24);
            double s0 = x0[k], s1 = x1[k], s2 = x2[k], s3 = x3[k];
            a00 += s0 * w0; a01 += s0 * w1; a02 += s0 * w2; a03 += s0 * w3;
            a10 += s1 * w0; a11 += s1 * w1; a12 += s1 * w2; a13 += s1 * w3;
            a20 += s2 * w0; a21 += s2 * w1; a22 += s2 * w2; a23 += s2 * w3;
            a30 += s3 * w0; a31 += s3 * w1; a32 += s3 * w2; a33 += s3 * w3;
        }
        charrnn_ext_vd *y = (charrnn_ext_vd *) Y;
        y[0] = a00; y[1] = a01; y[2] = a02; y[3] = a03;
        y = (charrnn_ext_vd *) (Y + ldy);
        y[0] = a10; y[1] = a11; y[2] = a12; y[3] = a13;
        y = (charrnn_ext_vd *) (Y + 2 * (ptrdiff_t) ldy);
        y[0] = a20; y[1] = a21; y[2] = a22; y[3] = a23;
        y = (charrnn_ext_vd *) (Y + 3 * (ptrdiff_t) ldy);
        y[0] = a30; y[1] = a31; y[2] = a32; y[3] = a33;
    }
    __attribute__((unused))
    static void charrnn_ext_block4x32_f(float *Y, int ldy, const float *X, int ldx,
                                        const float *W, int ldw, int K) {
        charrnn_ext_vf a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0};
        charrnn_ext_vf a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
        const float *x0 = X, *x1 = X + ldx, *x2 = X + 2 * (ptrdiff_t) ldx;
        const float *x3 = X + 3 * (ptrdiff_t) ldx;
        for (int k = 0; k < K; k++) {
            const float *w = W + (ptrdiff_t) k * ldw;
            charrnn_ext_vf w0 = *(const charrnn_ext_vf *) w;
            charrnn_ext_vf w1 = *(const charrnn_ext_vf *) (w + 16);
            float s0 = x0[k], s1 = x1[k], s2 = x2[k], s3 = x3[k];
            a00 += s0 * w0; a01 += s0 * w1;
            a10 += s1 * w0; a11 += s1 * w1;
            a20 += s2 * w0; a21 += s2 * w1;
            a30 += s3 * w0; a31 += s3 * w1;
        }
        charrnn_ext_vf *y = (charrnn_ext_vf *) Y;
        y[0] = a00; y[1] = a01;
        y = (charrnn_ext_vf *) (Y + ldy);
        y[0] = a10; y[1] = a11;
        y = (charrnn_ext_vf *) (Y + 2 * (ptrdiff_t) ldy);
        y[0] = a20; y[1] = a21;
        y = (charrnn_ext_vf *) (Y + 3 * (ptrdiff_t) ldy);
        y[0] = a30; y[1] = a31;
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
