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
 * Maxima and sums run in 16 float lanes (GCC's vector extension: its plain-C reductions of
 * this shape stay scalar), a sum's lanes added in double every 1024 elements: the same bits
 * from every clone, as rc_k_sumsq. */

typedef float rc_v16 __attribute__((vector_size(64)));
typedef int32_t rc_i16 __attribute__((vector_size(64)));

/* (no helper functions: a function returning a 64-byte vector changes the ABI per clone) */
#define V16_LOAD(v, p) memcpy(&(v), (p), sizeof(v))

RC_CLONES float rc_row_bias_max(float *restrict z, const float *restrict b, int64_t n) {
  if (b)
    for (int64_t i = 0; i < n; i++) z[i] += b[i];
  rc_v16 acc;
  for (int j = 0; j < 16; j++) acc[j] = -INFINITY;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) { /* acc = v where v > acc (a NaN is skipped) */
    rc_v16 v;
    V16_LOAD(v, z + i);
    rc_i16 gt = v > acc;
    acc = (rc_v16)(((rc_i16)v & gt) | ((rc_i16)acc & ~gt));
  }
  float m = -INFINITY;
  for (int j = 0; j < 16; j++) m = acc[j] > m ? acc[j] : m;
  for (; i < n; i++) m = z[i] > m ? z[i] : m;
  return m;
}

RC_CLONES double rc_row_exp_sum(float *restrict z, float shift, int64_t n) {
  double total = 0;
  int64_t i = 0;
  for (; i + 1024 <= n; i += 1024) {
    float *zb = z + i;
    for (int k = 0; k < 1024; k++) zb[k] = rc_expf(zb[k] - shift);
    rc_v16 acc = {0};
    for (int k = 0; k < 1024; k += 16) {
      rc_v16 v;
      V16_LOAD(v, zb + k);
      acc += v;
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

RC_CLONES void rc_row_scale_acc(float *restrict z, int64_t n, float s, float *restrict acc) {
  for (int64_t i = 0; i < n; i++) z[i] *= s;
  if (acc)
    for (int64_t i = 0; i < n; i++) acc[i] += z[i];
}

RC_CLONES void rc_row_softmax_scaled(float *restrict z, const float *restrict b, float lse, float s,
                                     int64_t n, float *restrict acc) {
  if (b)
    for (int64_t i = 0; i < n; i++) z[i] += b[i];
  for (int64_t i = 0; i < n; i++) z[i] = s * rc_expf(z[i] - lse);
  if (acc)
    for (int64_t i = 0; i < n; i++) acc[i] += z[i];
}

/* out = exp(x - lse) * s (nn.cross_entropy's gradient row) */
RC_CLONES void rc_row_exp_scaled(const float *restrict x, float lse, float s, int64_t n,
                                 float *restrict out) {
  for (int64_t i = 0; i < n; i++) out[i] = rc_expf(x[i] - lse) * s;
}

/* ---- rows of a log-sum-exp (nn.cross_entropy) ----
 * lse[r] = m + log(sum_k exp(x[r, k] - m)), m the row's maximum (0 when infinite: the
 * arithmetic then gives inf or nan), the sum in double in k order. A row's sum is one chain of
 * dependent adds, so sixteen rows go side by side (XENT_COLS columns at a time), sixteen chains
 * the CPU overlaps; each keeps its order, and a row gets the bits it gets alone. The maximum is
 * exact in any order (a NaN anywhere in a row makes its lse NaN whichever maximum it gives). */
#define XENT_COLS 256

RC_CLONES void rc_rows_logsumexp(const float *restrict x, int64_t R, int64_t C, float *restrict tmp,
                                 float *restrict lse) {
  if (C < 1) return;
  for (int64_t r0 = 0; r0 < R; r0 += 16) {
    int nr = R - r0 < 16 ? (int)(R - r0) : 16;
    const float *xr = x + r0 * C;
    float m[16];
    double s[16];
    for (int j = 0; j < nr; j++) {
      const float *row = xr + j * C;
      float mj = row[0];
      int64_t k = 1;
      if (C >= 32) { /* 16 lanes, then across them */
        rc_v16 acc;
        V16_LOAD(acc, row);
        for (k = 16; k + 16 <= C; k += 16) {
          rc_v16 v;
          V16_LOAD(v, row + k);
          rc_i16 gt = v > acc;
          acc = (rc_v16)(((rc_i16)v & gt) | ((rc_i16)acc & ~gt));
        }
        mj = acc[0];
        for (int i = 1; i < 16; i++) mj = acc[i] > mj ? acc[i] : mj;
      }
      for (; k < C; k++) mj = row[k] > mj ? row[k] : mj;
      m[j] = isinf(mj) ? 0.0f : mj;
      s[j] = 0.0;
    }
    for (int64_t k0 = 0; k0 < C; k0 += XENT_COLS) {
      int64_t nk = C - k0 < XENT_COLS ? C - k0 : XENT_COLS;
      for (int j = 0; j < nr; j++) {
        const float *row = xr + j * C + k0;
        float *t = tmp + j * nk, mj = m[j];
        for (int64_t k = 0; k < nk; k++) t[k] = rc_expf(row[k] - mj);
      }
      if (nr == 16) {
        for (int64_t k = 0; k < nk; k++)
          for (int j = 0; j < 16; j++) s[j] += tmp[j * nk + k];
      } else {
        for (int64_t k = 0; k < nk; k++)
          for (int j = 0; j < nr; j++) s[j] += tmp[j * nk + k];
      }
    }
    for (int j = 0; j < nr; j++) lse[r0 + j] = m[j] + (float)log(s[j]);
  }
}
