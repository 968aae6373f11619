/* The runtime's one exp, tanh and sigmoid on a float, branch-free so that the loops of
 * runtime/kernels.c (rc_k_exp, rc_k_tanh, rc_k_sigmoid) vectorize them; x:exp(), nn.Tanh and
 * a fused cell's gates all go through these, so they agree bit for bit. Every operation is a
 * correctly rounded IEEE one (no fmaf: a clone without FMA would round differently), so each
 * RC_CLONES version and a scalar call give identical bits.
 *
 * Accuracy against the exact value (tests/c/test_kernels_math.c sweeps every 251st float and all
 * floats of the critical ranges against double libm): exp within 1 ulp, tanh and sigmoid
 * within 1.5 ulp (measured 0.99, 1.33, 1.47), subnormal results included. NaN gives NaN,
 * +-inf the limits, tanh(-0) = -0. Not part of the API. */
#ifndef RECUR_KERNELS_MATH_H
#define RECUR_KERNELS_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float rc_pow2i(int32_t n) { /* 2^n for n in [-126, 127] */
  int32_t b = (n + 127) << 23;
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

/* e^x = p 2^n for x already clamped to [-104, 89]: Cody-Waite range reduction x = n ln2 + r,
 * |r| <= ln2 / 2, and a degree-6 polynomial for e^r (Cephes' expf coefficients); n is an
 * integer in a float. */
static inline float rc_exp_reduced(float xc, float *n_out) {
  float n = xc * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
  n -= 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  *n_out = n;
  return p * r * r + r + 1.0f;
}

/* e^xc for xc in [-104, 89] (or NaN): rc_exp_reduced, with 2^n applied as two factors
 * 2^(n>>1) 2^(n - (n>>1)), each a normal float, so that results in the subnormal range round
 * once, correctly. */
static inline float rc_exp_clamped(float xc) {
  float n, p = rc_exp_reduced(xc, &n);
  int32_t k = n == n ? (int32_t)n : 0; /* NaN: keep the conversion defined, p is NaN */
  int32_t k1 = k >> 1;
  return p * rc_pow2i(k1) * rc_pow2i(k - k1);
}

/* exp(x), x clamped to [-104, 89], beyond which the result is 0 (below half the smallest
 * subnormal) or inf. */
static inline float rc_expf(float x) {
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  return rc_exp_clamped(xc);
}

/* tanh: an odd polynomial below 0.625 (Cephes' tanhf), 1 - 2 / (e^{2|x|} + 1) above. e^{2|x|}
 * is rc_expf's arithmetic on [0, 20] only (beyond 10, tanh rounds to 1 either way): no lower
 * clamp, no NaN case (a NaN takes the polynomial, which is NaN) and one power of two, since
 * 2^n, n <= 29, is normal; the same bits as rc_expf(2|x|) (all 2^32 floats compared when this
 * was written) in 27% less time. */
static inline float rc_tanhf(float x) {
  float a = fabsf(x);
  float z = x * x;
  float ps = -5.70498872745e-3f;
  ps = ps * z + 2.06390887954e-2f;
  ps = ps * z - 5.37397155531e-2f;
  ps = ps * z + 1.33314422036e-1f;
  ps = ps * z - 3.33332819422e-1f;
  ps = ps * z * x + x;
  float y = 2.0f * a, n;
  float e = rc_exp_reduced(y < 20.0f ? y : 20.0f, &n);
  e *= rc_pow2i((int32_t)n);
  float pl = 1.0f - 2.0f / (e + 1.0f);
  return copysignf(a >= 0.625f ? pl : ps, x); /* the sign for -0 too (ps is +0 there) */
}

/* sigmoid: num / (1 + e) with e = exp(-|x|) <= 1, num = 1 for x >= 0 and e below. The last
 * two steps in double: in float, the rounding of 1 + e and of the quotient add to e's own
 * error (2.3 ulp measured); in double only the final rounding to float does. e is rc_expf's
 * arithmetic without its upper clamp, which -|x| <= 0 (or NaN) never meets: the same bits. */
static inline float rc_sigmoidf(float x) {
  float a = -fabsf(x);
  float e = rc_exp_clamped(a < -104.0f ? -104.0f : a);
  float num = x >= 0.0f ? 1.0f : e;
  return (float)((double)num / (1.0 + (double)e));
}

#endif
