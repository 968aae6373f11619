/* Vectorizable elementwise kernels for the nn layer: exp, tanh and sigmoid without libm
 * calls (libm's tanhf and expm1f took a third of a small MLP's training step), relu and the
 * activations' backward. Every loop is branch-free so that the compiler turns it into
 * SIMD code. The Makefile compiles this file with -O3 -fno-math-errno -fno-trapping-math: GCC
 * 12's -O2 does not vectorize loops of unknown trip count, errno keeps sqrtf scalar, and
 * trapping math keeps float-to-int conversions from being if-converted. None of these flags
 * changes a result (no reassociation, no fast-math: IEEE semantics are kept).
 *
 * Accuracy (checked in tests/c/test_nn.c against double precision over a dense grid):
 * exp within a relative error of 1e-7 on [-87.5, 88.72]; tanh and sigmoid within 3e-7. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "nn.h"
#include "nn_internal.h"

/* exp(x) by Cody-Waite range reduction x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial
 * for e^r (Cephes' expf coefficients) and 2^n built in the exponent bits (n = 128, the top of
 * the range, as 2^127 * 2). Above 88.7228 the result is inf, below -87.5 it is flushed to 0
 * (true values there are below 1e-38); NaN stays NaN. */
static inline float exp_approx(float x) {
  float x0 = x;
  x = x < -87.5f ? -87.5f : x;
  x = x > 88.72283f ? 88.72283f : x;
  float n = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to an integer */
  n -= 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  float nn = n == n ? n : 0.0f; /* NaN input: keep the conversion defined */
  nn = nn > 127.0f ? 127.0f : nn;
  int32_t e = ((int32_t)nn + 127) << 23;
  float scale;
  memcpy(&scale, &e, sizeof scale);
  float r0 = p * scale;
  r0 = n > 127.0f ? r0 * 2.0f : r0;
  r0 = x0 < -87.5f ? 0.0f : r0;
  return x0 > 88.72284f ? INFINITY : r0;
}

/* tanh: an odd polynomial below 0.625 (Cephes' tanhf), 1 - 2 / (e^{2|x|} + 1) above. */
static inline float tanh_approx(float x) {
  float a = fabsf(x);
  float z = x * x;
  float ps = -5.70498872745e-3f;
  ps = ps * z + 2.06390887954e-2f;
  ps = ps * z - 5.37397155531e-2f;
  ps = ps * z + 1.33314422036e-1f;
  ps = ps * z - 3.33332819422e-1f;
  ps = ps * z * x + x;
  float e = exp_approx(2.0f * a);
  float pl = 1.0f - 2.0f / (e + 1.0f);
  pl = copysignf(pl, x);
  return a < 0.625f ? ps : pl;
}

static inline float sigmoid_approx(float x) {
  return 1.0f / (1.0f + exp_approx(-x));
}

RC_CLONES void rc_exp_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = exp_approx(x[i]);
}

RC_CLONES void rc_tanh_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = tanh_approx(x[i]);
}

RC_CLONES void rc_sigmoid_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = sigmoid_approx(x[i]);
}

RC_CLONES void rc_relu_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* g * f'(x) written in terms of the output y. */
RC_CLONES void rc_act_backward_kernel(rc_act act, const float *y, const float *g, float *out,
                                      int64_t n) {
  switch (act) {
  case RC_ACT_TANH:
    for (int64_t i = 0; i < n; i++) out[i] = g[i] * (1.0f - y[i] * y[i]);
    break;
  case RC_ACT_SIGMOID:
    for (int64_t i = 0; i < n; i++) out[i] = g[i] * (y[i] * (1.0f - y[i]));
    break;
  case RC_ACT_RELU:
    for (int64_t i = 0; i < n; i++) {
      float gi = g[i];
      out[i] = y[i] > 0.0f ? gi : 0.0f;
    }
    break;
  default:
    memcpy(out, g, (size_t)n * sizeof(float));
    break;
  }
}
