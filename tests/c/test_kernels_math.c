/* The runtime's exp, tanh and sigmoid (runtime/kernels_math.h) against double-precision libm:
 * every 251st float bit pattern and every float of the critical ranges (exp's underflow into
 * subnormals and its overflow, tanh's switch at 0.625, sigmoid's tails), within 2 float ulp;
 * the special values; and the vectorized RC_CLONES loops equal to the scalar functions
 * compiled here without clones, bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/kernels.h"
#include "../../runtime/kernels_math.h"
#include "test.h"

enum { F_EXP, F_TANH, F_SIGMOID };
static const char *fname[] = {"exp", "tanh", "sigmoid"};
static double worst[3];
static long mismatches[3];
static long tanh_formula_mismatches, sigmoid_formula_mismatches;

/* tanh above 0.625 as rc_tanhf computed it before it took e^{2|x|} over [0, 20] only: its bits
 * must not have changed */
static float tanh_by_expf(float x) {
  return copysignf(1.0f - 2.0f / (rc_expf(2.0f * fabsf(x)) + 1.0f), x);
}

/* sigmoid as rc_sigmoidf computed it before it dropped rc_expf's upper clamp (which -|x| never
 * meets): its bits must not have changed */
static float sigmoid_by_expf(float x) {
  float e = rc_expf(-fabsf(x));
  float num = x >= 0.0f ? 1.0f : e;
  return (float)((double)num / (1.0 + (double)e));
}

static double ref(int f, float xf) {
  double x = xf;
  if (f == F_EXP) return exp(x);
  if (f == F_TANH) return tanh(x);
  return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

/* |y - exact| in units of the float ulp at the exact value (subnormal spacing below 2^-126,
 * 2^104 beyond the largest float); a wrong NaN or infinity is infinitely wrong. */
static double ulp_err(float y, double r) {
  if (isnan(r) || isnan(y)) return isnan(r) && isnan(y) ? 0 : INFINITY;
  if (isinf((float)r)) return y == (float)r ? 0 : INFINITY; /* beyond the largest float */
  double yy = isinf(y) ? copysign(0x1p128, y) : y;
  double a = fabs(r), u;
  int e;
  frexp(a, &e);
  u = a < 0x1p-126 ? 0x1p-149 : a >= 0x1p128 ? 0x1p104 : ldexp(1.0, e - 24);
  return fabs(yy - r) / u;
}

static float scalar(int f, float x) {
  return f == F_EXP ? rc_expf(x) : f == F_TANH ? rc_tanhf(x) : rc_sigmoidf(x);
}

static void check_block(const float *x, float *y, int64_t n) {
  for (int f = 0; f < 3; f++) {
    if (f == F_EXP) rc_k_exp(x, y, n);
    if (f == F_TANH) rc_k_tanh(x, y, n);
    if (f == F_SIGMOID) rc_k_sigmoid(x, y, n);
    for (int64_t i = 0; i < n; i++) {
      double e = ulp_err(y[i], ref(f, x[i]));
      if (e > worst[f]) worst[f] = e;
      float s = scalar(f, x[i]);
      if (memcmp(&s, &y[i], sizeof s) != 0) mismatches[f]++;
      if (f == F_TANH && fabsf(x[i]) >= 0.625f) {
        float e = tanh_by_expf(x[i]);
        if (memcmp(&e, &y[i], sizeof e) != 0) tanh_formula_mismatches++;
      }
      if (f == F_SIGMOID) {
        float e = sigmoid_by_expf(x[i]);
        if (memcmp(&e, &y[i], sizeof e) != 0) sigmoid_formula_mismatches++;
      }
    }
  }
}

enum { BLOCK = 1 << 16 };
static float xs[BLOCK], ys[BLOCK];
static int64_t filled;

static void push(float v) {
  xs[filled++] = v;
  if (filled == BLOCK) {
    check_block(xs, ys, filled);
    filled = 0;
  }
}

static void flush(void) {
  check_block(xs, ys, filled);
  filled = 0;
}

static void push_bits(uint32_t b) {
  float v;
  memcpy(&v, &b, sizeof v);
  push(v);
}

/* every float in [lo, hi] (same sign, lo <= hi in magnitude) */
static void push_range(float lo, float hi) {
  uint32_t a, b;
  memcpy(&a, &lo, sizeof a);
  memcpy(&b, &hi, sizeof b);
  if (a > b) {
    uint32_t t = a;
    a = b;
    b = t;
  }
  for (uint32_t i = a; i <= b; i++) push_bits(i);
}

static void test_sweep(void) {
  for (uint64_t b = 0; b <= 0xffffffffu; b += 251) push_bits((uint32_t)b);
  push_range(-104.0f, -87.0f); /* exp: subnormal results */
  push_range(88.0f, 89.0f);    /* exp: overflow */
  push_range(0.6f, 0.65f);     /* tanh: the switch of formula at 0.625 */
  push_range(-0.65f, -0.6f);
  push_range(-17.0f, -16.0f); /* sigmoid: e where 1 + e stops rounding to 1 */
  push_range(9.99f, 10.01f);  /* tanh: e^{2|x|}'s argument clamped at 20 */
  push_range(-10.01f, -9.99f);
  flush();
  for (int f = 0; f < 3; f++) {
    printf("  %-8s worst %.3f ulp, %ld clone/scalar mismatches\n", fname[f], worst[f],
           mismatches[f]);
    CHECK(worst[f] <= 2.0);
    CHECK(mismatches[f] == 0);
  }
  printf("  tanh above 0.625: %ld differ from 1 - 2 / (rc_expf(2|x|) + 1)\n",
         tanh_formula_mismatches);
  CHECK(tanh_formula_mismatches == 0);
  printf("  sigmoid: %ld differ from num / (1 + rc_expf(-|x|)) in double\n",
         sigmoid_formula_mismatches);
  CHECK(sigmoid_formula_mismatches == 0);
}

static void test_specials(void) {
  float x[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 100.0f, -100.0f, -200.0f}, y[8];
  rc_k_exp(x, y, 8);
  CHECK(isnan(y[0]) && y[1] == INFINITY && y[2] == 0.0f && y[3] == 1.0f && y[4] == 1.0f);
  CHECK(y[5] == INFINITY && y[6] > 0.0f && y[6] < 1e-43f && y[7] == 0.0f);
  rc_k_tanh(x, y, 8);
  CHECK(isnan(y[0]) && y[1] == 1.0f && y[2] == -1.0f && y[5] == 1.0f && y[6] == -1.0f);
  CHECK(y[3] == 0.0f && !signbit(y[3]) && y[4] == 0.0f && signbit(y[4]));
  rc_k_sigmoid(x, y, 8);
  CHECK(isnan(y[0]) && y[1] == 1.0f && y[2] == 0.0f && y[3] == 0.5f && y[4] == 0.5f);
  CHECK(y[5] == 1.0f && y[6] > 0.0f && y[6] < 1e-43f && y[7] == 0.0f);
  /* in place */
  float z[3] = {1.0f, -1.0f, 0.5f}, w[3];
  rc_k_tanh(z, w, 3);
  rc_k_tanh(z, z, 3);
  CHECK(memcmp(z, w, sizeof z) == 0);
}

int main(void) {
  test_specials();
  test_sweep();
  return TEST_SUMMARY();
}
