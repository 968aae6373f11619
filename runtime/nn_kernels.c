/* Vectorizable elementwise kernels for the nn layer: exp, tanh and sigmoid without libm
 * calls (libm's tanhf and expm1f took a third of a small MLP's training step), and the
 * optimizer/clipping loops. Every loop is branch-free so that the compiler turns it into
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

#include "nn.h"
#include "nn_internal.h"

/* Wider SIMD where the CPU has it: GCC builds an AVX-512, an AVX2 and a baseline version of
 * each hot kernel and picks one at load time. With -std=c11 GCC contracts nothing into FMA and
 * every operation here is correctly rounded IEEE, so all versions give identical bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    !defined(RECUR_NO_CLONES)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

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

CLONES void rc_exp_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = exp_approx(x[i]);
}

CLONES void rc_tanh_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = tanh_approx(x[i]);
}

CLONES void rc_sigmoid_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = sigmoid_approx(x[i]);
}

CLONES void rc_relu_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* g * f'(x) written in terms of the output y. */
CLONES void rc_act_backward_kernel(rc_act act, const float *y, const float *g, float *out,
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

/* out[j] += sum_i g[i * cols + j] (bias gradients) */
CLONES void rc_colsum_add(const float *g, int64_t rows, int64_t cols, float *out) {
  for (int64_t i = 0; i < rows; i++) {
    const float *r = g + i * cols;
    for (int64_t j = 0; j < cols; j++) out[j] += r[j];
  }
}

/* ---- optimizer updates: one call per parameter, all arrays of length n ---- */

CLONES void rc_k_sgd(float *p, const float *g, float *buf, int64_t n, float lr, float momentum,
                     float keep, float wd, int nesterov, int first) {
  if (momentum == 0.0f) {
    if (wd == 0.0f) {
      for (int64_t i = 0; i < n; i++) p[i] -= lr * g[i];
    } else {
      for (int64_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
    }
    return;
  }
  if (first) {
    for (int64_t i = 0; i < n; i++) buf[i] = g[i] + wd * p[i];
  } else {
    for (int64_t i = 0; i < n; i++) buf[i] = momentum * buf[i] + keep * (g[i] + wd * p[i]);
  }
  if (nesterov) {
    for (int64_t i = 0; i < n; i++) p[i] -= lr * ((g[i] + wd * p[i]) + momentum * buf[i]);
  } else {
    for (int64_t i = 0; i < n; i++) p[i] -= lr * buf[i];
  }
}

/* eps_in_sqrt = 0: p -= lr g / (sqrt(acc) + eps) (PyTorch); 1: p -= lr g / sqrt(acc + eps)
 * (TensorFlow, where eps = 0 and the accumulator starts at 0.1). */
CLONES void rc_k_adagrad(float *p, const float *g, float *acc, int64_t n, float clr, float wd,
                         float eps, int eps_in_sqrt) {
  if (eps_in_sqrt) {
    for (int64_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float a = acc[i] + d * d;
      acc[i] = a;
      p[i] -= clr * d / sqrtf(a + eps);
    }
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float a = acc[i] + d * d;
    acc[i] = a;
    p[i] -= clr * d / (sqrtf(a) + eps);
  }
}

/* one loop per combination of options, so that each one vectorizes */
#define RMSPROP_LOOP(CENTERED, MOMENTUM, IN_SQRT)                                                  \
  for (int64_t i = 0; i < n; i++) {                                                                \
    float d = g[i] + wd * p[i];                                                                    \
    float s = alpha * sq[i] + one_m * d * d;                                                       \
    sq[i] = s;                                                                                     \
    float v = s;                                                                                   \
    if (CENTERED) {                                                                                \
      float ga = alpha * gavg[i] + one_m * d;                                                      \
      gavg[i] = ga;                                                                                \
      v = s - ga * ga;                                                                             \
    }                                                                                              \
    float den = IN_SQRT ? sqrtf(v + eps) : sqrtf(v) + eps;                                         \
    if (MOMENTUM) {                                                                                \
      float b = momentum * mom[i] + d / den;                                                       \
      mom[i] = b;                                                                                  \
      p[i] -= lr * b;                                                                              \
    } else {                                                                                       \
      p[i] -= lr * d / den;                                                                        \
    }                                                                                              \
  }

CLONES void rc_k_rmsprop(float *p, const float *g, float *sq, float *mom, float *gavg, int64_t n,
                         float lr, float alpha, float one_m, float eps, float wd, float momentum,
                         int eps_in_sqrt) {
  int variant = (gavg ? 4 : 0) | (mom ? 2 : 0) | (eps_in_sqrt ? 1 : 0);
  switch (variant) {
  case 0:
    RMSPROP_LOOP(0, 0, 0) break;
  case 1:
    RMSPROP_LOOP(0, 0, 1) break;
  case 2:
    RMSPROP_LOOP(0, 1, 0) break;
  case 3:
    RMSPROP_LOOP(0, 1, 1) break;
  case 4:
    RMSPROP_LOOP(1, 0, 0) break;
  case 5:
    RMSPROP_LOOP(1, 0, 1) break;
  case 6:
    RMSPROP_LOOP(1, 1, 0) break;
  default:
    RMSPROP_LOOP(1, 1, 1) break;
  }
}
#undef RMSPROP_LOOP

/* Adam (decoupled = 0: weight decay added to the gradient) and AdamW (decoupled = 1:
 * p *= decay = 1 - lr wd first). PyTorch's formula: p -= step * m / (sqrt(v) / sbc2 + eps)
 * with step = lr / (1 - beta1^t), sbc2 = sqrt(1 - beta2^t). The caller computes the scalars
 * (and 1 - beta) in double, as PyTorch does in Python, so that the float32 results agree. */
CLONES void rc_k_adam(float *p, const float *g, float *m, float *v, int64_t n, float beta1,
                      float one_m_b1, float beta2, float one_m_b2, float eps, float wd,
                      int decoupled, float decay, float step, float sbc2) {
  float cwd = decoupled ? 0.0f : wd;
  if (!decoupled) decay = 1.0f;
  for (int64_t i = 0; i < n; i++) {
    float pi = p[i] * decay;
    float d = g[i] + cwd * p[i];
    float mi = beta1 * m[i] + one_m_b1 * d;
    float vi = beta2 * v[i] + one_m_b2 * d * d;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * mi / (sqrtf(vi) / sbc2 + eps);
  }
}

CLONES double rc_k_sumsq(const float *g, int64_t n) {
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

CLONES void rc_k_scale(float *g, int64_t n, float s) {
  for (int64_t i = 0; i < n; i++) g[i] *= s;
}

CLONES void rc_k_clamp(float *g, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++) {
    float v = g[i] < lo ? lo : g[i];
    g[i] = v > hi ? hi : v;
  }
}

CLONES void rc_k_add(float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) a[i] += b[i];
}
