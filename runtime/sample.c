/* Sampling the next token from logits (see sample.h). */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
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

/* one row with caller-provided scratch (p: V doubles; s: V floats when top-k is used) */
static int sample_row(rc_ctx *c, const float *z, int64_t V, double temperature, int64_t top_k,
                      double *p, float *s, int64_t row, int64_t *out) {
  int64_t best = 0;
  for (int64_t i = 0; i < V; i++) {
    if (isnan(z[i]))
      return rc_error(c, "sample_logits: row %lld has a NaN logit (at %lld, 1-based)",
                      (long long)row + 1, (long long)i + 1);
    if (z[i] > z[best]) best = i;
  }
  if (isinf(z[best]))
    return rc_error(c, "sample_logits: row %lld has an infinite largest logit", (long long)row + 1);
  if (temperature <= 0) {
    *out = best;
    return 0;
  }
  float cut = -INFINITY;
  if (top_k > 0 && top_k < V) {
    memcpy(s, z, sizeof(float) * (size_t)V);
    cut = kth_largest(s, V, top_k);
  }
  double m = z[best], total = 0;
  for (int64_t i = 0; i < V; i++) {
    p[i] = z[i] >= cut ? exp(((double)z[i] - m) / temperature) : 0.0;
    total += p[i];
  }
  double u = rc_rng_uniform(&c->rng) * total, acc = 0;
  int64_t pick = best;
  for (int64_t i = 0; i < V; i++) {
    acc += p[i];
    if (p[i] > 0 && u < acc) {
      pick = i;
      break;
    }
  }
  *out = pick;
  return 0;
}

static int sample_rows(rc_ctx *c, const float *L, int64_t N, int64_t V, double temperature,
                       int64_t top_k, int64_t *out) {
  if (V < 1) return rc_error(c, "sample_logits: logits have no entries (V = 0)");
  if (isnan(temperature)) return rc_error(c, "sample_logits: temperature is NaN");
  double stack_p[256];
  float stack_s[256];
  double *p = V <= 256 ? stack_p : malloc(sizeof(double) * (size_t)V);
  float *s = V <= 256 ? stack_s : malloc(sizeof(float) * (size_t)V);
  int rc = 0;
  if (!p || !s) rc = rc_error(c, "sample_logits: out of memory");
  for (int64_t r = 0; r < N && !rc; r++)
    rc = sample_row(c, L + r * V, V, temperature, top_k, p, s, r, out + r);
  if (p != stack_p) free(p);
  if (s != stack_s) free(s);
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
