/* The kernel floor (kernels.h): branch-free loops that the compiler turns into SIMD code. The
 * Makefile compiles this file with the flags of runtime/nn_kernels.c (-O3 -fno-math-errno
 * -fno-trapping-math), none of which changes a result. */
#include "kernels.h"
#include "kernels_math.h"

RC_CLONES double rc_k_sumsq(const float *g, int64_t n) {
  /* 16 float lanes (vectorized) over blocks of 1024 elements, blocks added in double:
   * deterministic, fast and accurate enough for a norm */
  double total = 0;
  int64_t i = 0;
  for (; i + 1024 <= n; i += 1024) {
    float acc[16] = {0};
    for (int64_t k = 0; k < 1024; k += 16)
      for (int j = 0; j < 16; j++) acc[j] += g[i + k + j] * g[i + k + j];
    double s = 0;
    for (int j = 0; j < 16; j++) s += acc[j];
    total += s;
  }
  for (; i < n; i++) total += (double)g[i] * g[i];
  return total;
}

RC_CLONES void rc_k_scale(float *g, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) g[i] *= s;
}

RC_CLONES void rc_k_clamp(float *g, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++) {
    float v = g[i] < lo ? lo : g[i];
    g[i] = v > hi ? hi : v;
  }
}

RC_CLONES void rc_k_add(float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) a[i] += b[i];
}

RC_CLONES void rc_colsum_add(const float *g, int64_t rows, int64_t cols, float *out) {
  for (int64_t i = 0; i < rows; i++) {
    const float *r = g + i * cols;
    for (int64_t j = 0; j < cols; j++) out[j] += r[j];
  }
}

RC_CLONES void rc_k_exp(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = rc_expf(x[i]);
}

RC_CLONES void rc_k_tanh(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = rc_tanhf(x[i]);
}

RC_CLONES void rc_k_sigmoid(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = rc_sigmoidf(x[i]);
}
