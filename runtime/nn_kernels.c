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
