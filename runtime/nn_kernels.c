/* Vectorizable elementwise kernels for the nn layer: relu and the activations' backward (exp,
 * tanh and sigmoid are the kernel floor's, runtime/kernels_math.h). Every loop is branch-free
 * so that the compiler turns it into SIMD code. The Makefile compiles this file with -O3
 * -fno-math-errno -fno-trapping-math: GCC 12's -O2 does not vectorize loops of unknown trip count,
 * errno keeps sqrtf scalar, and trapping math keeps float-to-int conversions from being
 * if-converted. None of these flags changes a result (no reassociation, no fast-math: IEEE
 * semantics are kept). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "kernels_math.h"
#include "nn.h"
#include "nn_internal.h"

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

/* ---- rows of a softmax (nn.linear_cross_entropy) ----
 * Sums and maxima run in 16 float lanes (vectorized), a sum's lanes added in double every
 * 1024 elements: the same bits from every clone, as rc_k_sumsq. */

RC_CLONES float rc_row_bias_max(float *z, const float *b, int64_t n) {
  float acc[16];
  for (int j = 0; j < 16; j++) acc[j] = -INFINITY;
  int64_t i = 0;
  if (b) {
    for (; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; j++) {
        float v = z[i + j] + b[i + j];
        z[i + j] = v;
        acc[j] = v > acc[j] ? v : acc[j];
      }
    for (; i < n; i++) z[i] += b[i];
  } else {
    for (; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; j++) acc[j] = z[i + j] > acc[j] ? z[i + j] : acc[j];
  }
  float m = -INFINITY;
  for (int j = 0; j < 16; j++) m = acc[j] > m ? acc[j] : m;
  for (int64_t k = n - n % 16; k < n; k++) m = z[k] > m ? z[k] : m;
  return m;
}

RC_CLONES double rc_row_exp_sum(float *z, float shift, int64_t n) {
  double total = 0;
  int64_t i = 0;
  for (; i + 1024 <= n; i += 1024) {
    float acc[16] = {0};
    for (int64_t k = 0; k < 1024; k += 16)
      for (int j = 0; j < 16; j++) {
        float e = rc_expf(z[i + k + j] - shift);
        z[i + k + j] = e;
        acc[j] += e;
      }
    double s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    total += s;
  }
  for (; i < n; i++) {
    z[i] = rc_expf(z[i] - shift);
    total += z[i];
  }
  return total;
}

RC_CLONES void rc_row_scale_acc(float *z, int64_t n, float s, float *acc) {
  if (acc)
    for (int64_t i = 0; i < n; i++) {
      z[i] *= s;
      acc[i] += z[i];
    }
  else
    for (int64_t i = 0; i < n; i++) z[i] *= s;
}

RC_CLONES void rc_row_softmax_scaled(float *z, const float *b, float lse, float s, int64_t n,
                                     float *acc) {
  if (b)
    for (int64_t i = 0; i < n; i++) z[i] = s * rc_expf(z[i] + b[i] - lse);
  else
    for (int64_t i = 0; i < n; i++) z[i] = s * rc_expf(z[i] - lse);
  if (acc)
    for (int64_t i = 0; i < n; i++) acc[i] += z[i];
}
