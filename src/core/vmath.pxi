# Vectorisable math: branch-free exp and tanh in double (vexp, vtanh) and float (vexpf, vtanhf), rexp / rtanh on real, and their test faces.
#
# glibc's scalar exp and tanh are not vectorised; these are, and are accurate
# to a few ulp (tested against numpy in tests/test_core_parity.py). All are
# pure functions of one number: no state, no allocation. The kernels call
# rexp and rtanh, which are the build's own precision: the float32 build
# computes in float (8 lanes of AVX2 and a degree-6 polynomial where double
# needs 4 lanes and degree 13).

cdef union Bits:
    f64 d
    unsigned long long u

cdef f64 LOG2E = 1.4426950408889634
cdef f64 LN2_HI = 0.6931471803691238        # high bits of ln 2 (exact in k * LN2_HI)
cdef f64 LN2_LO = 1.9082149292705877e-10    # ln 2 - LN2_HI
cdef f64 ROUND_SHIFT = 6755399441055744.0   # 1.5 * 2**52: x + shift rounds x to an integer
cdef f64 EXP_MIN = -708.0                    # exp(x) for x below is treated as 0 (< 4e-308)
cdef f64 EXP_MAX = 709.782712893384           # log(DBL_MAX); exp overflows above


cdef inline f64 vexp(f64 x) noexcept nogil:
    """exp(x) (Cody-Waite reduction, degree-13 Taylor polynomial, scale by
    2**k through the exponent bits); 0 below -708 (where exp < 4e-308),
    inf above log(DBL_MAX), NaN stays NaN."""
    cdef Bits kbits, scale
    cdef f64 xc = EXP_MAX if x > EXP_MAX else (EXP_MIN if x < EXP_MIN else x)
    cdef f64 kd = xc * LOG2E + ROUND_SHIFT
    kbits.d = kd
    kd = kd - ROUND_SHIFT
    cdef f64 r = (xc - kd * LN2_HI) - kd * LN2_LO      # |r| <= ln(2) / 2
    cdef f64 p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r * r + r                                   # expm1(r)
    scale.u = (kbits.u + 1022) << 52                    # 2**(k-1): k may be 1024
    p = ((p + 1.0) * scale.d) * 2.0
    p = 0.0 if x < EXP_MIN else p
    p = INFINITY if x > EXP_MAX else p                  # overflow
    return x if x != x else p


# Cephes' tanh: rational approximation below 0.625, 1 - 2 / (exp(2|x|) + 1) above
cdef f64 TANH_P0 = -9.64399179425052238628E-1
cdef f64 TANH_P1 = -9.92877231001918586564E1
cdef f64 TANH_P2 = -1.61468768441708447952E3
cdef f64 TANH_Q0 = 1.12811678491632931402E2
cdef f64 TANH_Q1 = 2.23548839060100448583E3
cdef f64 TANH_Q2 = 4.84406305325125486048E3


cdef inline f64 vtanh(f64 x) noexcept nogil:
    """tanh(x), branch-free so that loops over it vectorise."""
    cdef f64 ax = -x if x < 0.0 else x
    cdef f64 z = x * x
    cdef f64 small = x + x * z * (((TANH_P0 * z + TANH_P1) * z + TANH_P2)
                                  / (((z + TANH_Q0) * z + TANH_Q1) * z + TANH_Q2))
    cdef f64 big = 1.0 - 2.0 / (vexp(2.0 * (20.0 if ax > 20.0 else ax)) + 1.0)
    big = -big if x < 0.0 else big
    return small if ax < 0.625 else big


# Cephes' expf and tanhf, branch-free: the same reduction as vexp with
# float constants (2**(k-1) built in the exponent bits: k may be 128)
cdef union BitsF:
    float f
    unsigned int u

cdef float LOG2EF = 1.44269504088896341
cdef float LN2F_HI = 0.693359375               # exact in k * LN2F_HI for |k| < 2**12
cdef float LN2F_LO = -2.12194440e-4            # ln 2 - LN2F_HI
cdef float ROUND_SHIFT_F = 12582912.0          # 1.5 * 2**23: x + shift rounds x to an integer
cdef float EXPF_MIN = -86.0                    # exp(x) for x below is treated as 0 (< 5e-38)
cdef float EXPF_MAX = 88.7228317               # log(FLT_MAX); exp overflows above


cdef inline float vexpf(float x) noexcept nogil:
    """exp(x) in float (Cephes' expf polynomial, |error| ~1 ulp); 0 below
    -86, inf above log(FLT_MAX), NaN stays NaN."""
    cdef BitsF kbits, scale
    cdef float xc = EXPF_MAX if x > EXPF_MAX else (EXPF_MIN if x < EXPF_MIN else x)
    cdef float kd = xc * LOG2EF + ROUND_SHIFT_F
    kbits.f = kd
    kd = kd - ROUND_SHIFT_F
    cdef float r = (xc - kd * LN2F_HI) - kd * LN2F_LO   # |r| <= ln(2) / 2
    cdef float p = <float> 1.9875691500E-4
    p = p * r + <float> 1.3981999507E-3
    p = p * r + <float> 8.3334519073E-3
    p = p * r + <float> 4.1665795894E-2
    p = p * r + <float> 1.6666665459E-1
    p = p * r + <float> 5.0000001201E-1
    p = p * (r * r) + r                                  # expm1(r)
    scale.u = (kbits.u + 126) << 23                     # 2**(k-1)
    p = ((p + <float> 1.0) * scale.f) * <float> 2.0
    p = <float> 0.0 if x < EXPF_MIN else p
    p = <float> INFINITY if x > EXPF_MAX else p
    return x if x != x else p


cdef inline float vtanhf(float x) noexcept nogil:
    """tanh(x) in float (Cephes' tanhf), branch-free."""
    cdef float ax = -x if x < 0 else x
    cdef float z = x * x
    cdef float small = ((((<float> -5.70498872745E-3 * z + <float> 2.06390887954E-2) * z
                          - <float> 5.37397155531E-2) * z + <float> 1.33314422036E-1) * z
                        - <float> 3.33332819422E-1) * z * x + x
    cdef float big = <float> 1.0 - <float> 2.0 / (vexpf(<float> 2.0 * (<float> 10.0 if ax > 10.0
                                                                      else ax)) + <float> 1.0)
    big = -big if x < 0 else big
    return small if ax < 0.625 else big


cdef inline real rexp(real x) noexcept nogil:
    """exp in the build's precision (vexp or vexpf)."""
    if sizeof(real) == 4:
        return vexpf(<float> x)
    return vexp(x)


cdef inline real rtanh(real x) noexcept nogil:
    """tanh in the build's precision (vtanh or vtanhf)."""
    if sizeof(real) == 4:
        return vtanhf(<float> x)
    return vtanh(x)


def _real_exp(const real[::1] x, real[::1] out):
    """out (n,) = rexp(x), the build's own precision (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = rexp(x[i])


def _real_tanh(const real[::1] x, real[::1] out):
    """out (n,) = rtanh(x), the build's own precision (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = rtanh(x[i])


def _exp(const f64[::1] x, f64[::1] out):
    """out (n,) = exp(x) with the core's vectorised exp (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = vexp(x[i])


def _tanh(const f64[::1] x, f64[::1] out):
    """out (n,) = tanh(x) with the core's vectorised tanh (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = vtanh(x[i])
