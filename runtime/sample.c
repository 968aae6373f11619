/* Sampling the next token from logits (see sample.h). */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "kernels.h"
#include "kernels_math.h"
#include "rng.h"

/* The k-th largest (1-based k) of a[0..n) by quickselect; a is reordered. */
static float kth_largest(float *a, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1, want = k - 1;
  while (lo < hi) {
    float pivot = a[lo + (hi - lo) / 2];
    int64_t i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        float t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j)
      hi = j;
    else if (want >= i)
      lo = i;
    else
      return a[want];
  }
  return a[want];
}

/* A row's work goes in blocks of SAMPLE_BLOCK logits, 16 lanes each: every pass below is a
 * lane-wise loop that GCC vectorizes in each RC_CLONES version with the same bits (no
 * reassociation: lane j takes elements j, j + 16, ...; the lanes combine in a fixed order). */
#define SAMPLE_BLOCK 256

/* The row's maximum (m), unless it holds a NaN (then 1). On integer keys, whose maximum GCC
 * vectorizes where a float one would need -ffinite-math-only: a float's bits with the lower 31
 * flipped when negative order as the floats do (-0 just below +0), and the largest magnitude
 * above +inf's is a NaN. Exact in any order. */
RC_CLONES static int row_max(const float *restrict z, int64_t V, float *m) {
  int32_t key = INT32_MIN, mag = 0;
  for (int64_t i = 0; i < V; i++) {
    int32_t b;
    memcpy(&b, z + i, sizeof b);
    int32_t k = b ^ ((b >> 31) & 0x7fffffff), a = b & 0x7fffffff;
    key = k > key ? k : key;
    mag = a > mag ? a : mag;
  }
  if (mag > 0x7f800000) return 1;
  key ^= (key >> 31) & 0x7fffffff;
  memcpy(m, &key, sizeof *m);
  return 0;
}

/* the first i with z[i] == m (there is one): blocks of 64 tested side by side, then the block
 * that has it in order */
RC_CLONES static int64_t first_equal(const float *restrict z, int64_t V, float m) {
  int64_t i = 0;
  for (; i + 64 <= V; i += 64) {
    int hit = 0;
    for (int j = 0; j < 64; j++) hit |= z[i + j] == m;
    if (hit) break;
  }
  while (z[i] != m) i++;
  return i;
}

/* p[i] = exp((z[i] - m) / temperature), 0 where z[i] < cut: the argument in double (z - m
 * exact, one rounding to float), clamped where recur's float exp (within 1 ulp) gives 0 (so
 * a -inf logit, a mask, is never drawn); bs[b] the sum of block b's p (16 double lanes, then
 * in lane order) */
RC_CLONES static void row_probs(const float *restrict z, int64_t V, float m, double inv_t,
                                float cut, float *restrict p, double *restrict bs) {
  for (int64_t b0 = 0, b = 0; b0 < V; b0 += SAMPLE_BLOCK, b++) {
    int64_t n = V - b0 < SAMPLE_BLOCK ? V - b0 : SAMPLE_BLOCK;
    const float *zb = z + b0;
    float *pb = p + b0;
    for (int64_t i = 0; i < n; i++) {
      double a = ((double)zb[i] - (double)m) * inv_t;
      pb[i] = (float)(a > -104.0 ? a : -104.0);
    }
    for (int64_t i = 0; i < n; i++) pb[i] = rc_expf(pb[i]);
    if (cut > -INFINITY)
      for (int64_t i = 0; i < n; i++) pb[i] = zb[i] >= cut ? pb[i] : 0.0f;
    double acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (int j = 0; j < 16; j++) acc[j] += (double)pb[i + j];
    for (; i < n; i++) acc[0] += (double)pb[i];
    double t = acc[0];
    for (int j = 1; j < 16; j++) t += acc[j];
    bs[b] = t;
  }
}

/* one row with caller-provided scratch (p: V floats; s: V floats when top-k is used; bs: one
 * double per SAMPLE_BLOCK logits) */
static int sample_row(rc_ctx *c, const float *z, int64_t V, double temperature, int64_t top_k,
                      float *p, float *s, double *bs, int64_t row, int64_t *out) {
  float m;
  if (row_max(z, V, &m)) {
    int64_t i = 0;
    while (!isnan(z[i])) i++;
    return rc_error(c, "sample_logits: row %lld has a NaN logit (at %lld, 1-based)",
                    (long long)row + 1, (long long)i + 1);
  }
  if (isinf(m))
    return rc_error(c, "sample_logits: row %lld has an infinite largest logit", (long long)row + 1);
  int64_t best = first_equal(z, V, m);                /* the first maximum */
  if (temperature <= 0 || isinf(1.0 / temperature)) { /* 0, or so small that 1/T overflows */
    *out = best;
    return 0;
  }
  float cut = -INFINITY;
  if (top_k > 0 && top_k < V) {
    memcpy(s, z, sizeof(float) * (size_t)V);
    cut = kth_largest(s, V, top_k);
  }
  row_probs(z, V, m, 1.0 / temperature, cut, p, bs);
  int64_t nb = (V + SAMPLE_BLOCK - 1) / SAMPLE_BLOCK;
  double total = 0;
  for (int64_t b = 0; b < nb; b++) total += bs[b];
  /* the block where the running sum passes u, then the entry within it (in order, in double);
   * rounding can leave u past the block's last entry: then that entry (p > 0) */
  double u = rc_rng_uniform(&c->rng) * total, acc = 0;
  int64_t pick = best;
  for (int64_t b = 0; b < nb; b++) {
    if (!(u < acc + bs[b])) {
      acc += bs[b];
      continue;
    }
    int64_t i0 = b * SAMPLE_BLOCK, i1 = i0 + SAMPLE_BLOCK < V ? i0 + SAMPLE_BLOCK : V;
    for (int64_t i = i0; i < i1; i++) {
      if (p[i] <= 0) continue;
      pick = i;
      acc += p[i];
      if (u < acc) break;
    }
    break;
  }
  *out = pick;
  return 0;
}

static int sample_rows(rc_ctx *c, const float *L, int64_t N, int64_t V, double temperature,
                       int64_t top_k, int64_t *out) {
  if (V < 1) return rc_error(c, "sample_logits: logits have no entries (V = 0)");
  if (isnan(temperature)) return rc_error(c, "sample_logits: temperature is NaN");
  enum { STACK_V = 1024 };
  float stack_p[STACK_V], stack_s[STACK_V];
  double stack_bs[STACK_V / SAMPLE_BLOCK];
  int small = V <= STACK_V;
  float *p = small ? stack_p : malloc(sizeof(float) * (size_t)V);
  float *s = small ? stack_s : top_k > 0 && top_k < V ? malloc(sizeof(float) * (size_t)V) : NULL;
  double *bs =
      small ? stack_bs : malloc(sizeof(double) * (size_t)((V + SAMPLE_BLOCK - 1) / SAMPLE_BLOCK));
  int rc = 0;
  if (!p || !bs || (!s && top_k > 0 && top_k < V)) rc = rc_error(c, "sample_logits: out of memory");
  for (int64_t r = 0; r < N && !rc; r++)
    rc = sample_row(c, L + r * V, V, temperature, top_k, p, s, bs, r, out + r);
  if (!small) {
    free(p);
    free(s);
    free(bs);
  }
  return rc ? -1 : 0;
}

int rc_sample_row(rc_ctx *c, const float *z, int64_t V, double temperature, int64_t top_k,
                  int64_t *out) {
  return sample_rows(c, z, 1, V, temperature, top_k, out);
}

int rc_sample_logits(rc_tensor *logits, double temperature, int64_t top_k, int64_t *out) {
  rc_ctx *c = logits->ctx;
  if (logits->ndim != 1 && logits->ndim != 2)
    return rc_error(c, "sample_logits: logits must be [V] or [N, V], got %d dimensions",
                    logits->ndim);
  int64_t V = logits->size[logits->ndim - 1];
  int64_t N = logits->ndim == 2 ? logits->size[0] : 1;
  if (V < 1) return rc_error(c, "sample_logits: logits have no entries (V = 0)");
  /* the budget sees each row's exponentials and selection (about 12 units per 16 logits;
   * a contiguous [V] is read in place, allocating nothing that would be charged) */
  int64_t n = N > INT64_MAX / 12 / V ? INT64_MAX : N * V * 12;
  if (rc_charge_elems(c, "sample_logits", n)) return -1;
  rc_tensor *lc = rc_raw_contiguous(logits);
  if (!lc) return -1;
  int rc = sample_rows(c, rc_data(lc), N, V, temperature, top_k, out);
  rc_release(lc);
  return rc;
}
