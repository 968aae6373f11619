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
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}

int rc_sample_logits(rc_tensor *logits, double temperature, int64_t top_k, int64_t *out) {
  rc_ctx *c = logits->ctx;
  if (logits->ndim != 1 && logits->ndim != 2)
    return rc_error(c, "sample_logits: logits must be [V] or [N, V], got %d dimensions",
                    logits->ndim);
  int64_t V = logits->size[logits->ndim - 1];
  int64_t N = logits->ndim == 2 ? logits->size[0] : 1;
  if (V < 1) return rc_error(c, "sample_logits: logits have no entries (V = 0)");
  if (isnan(temperature)) return rc_error(c, "sample_logits: temperature is NaN");
  rc_tensor *lc = rc_raw_contiguous(logits);
  if (!lc) return -1;
  const float *L = rc_data(lc);
  int use_k = top_k > 0 && top_k < V && temperature > 0;
  double stack_p[256];
  float stack_s[256];
  double *p = V <= 256 ? stack_p : malloc(sizeof(double) * (size_t)V);
  float *scratch = !use_k ? NULL : V <= 256 ? stack_s : malloc(sizeof(float) * (size_t)V);
  int rc = 0;
  if (!p || (use_k && !scratch)) {
    rc = rc_error(c, "sample_logits: out of memory");
    goto done;
  }
  for (int64_t r = 0; r < N; r++) {
    const float *z = L + r * V;
    int64_t best = 0;
    for (int64_t i = 0; i < V; i++) {
      if (isnan(z[i])) {
        rc = rc_error(c, "sample_logits: row %lld has a NaN logit (at %lld, 1-based)",
                      (long long)r + 1, (long long)i + 1);
        goto done;
      }
      if (z[i] > z[best]) best = i;
    }
    if (isinf(z[best])) {
      rc = rc_error(c, "sample_logits: row %lld has an infinite largest logit",
                    (long long)r + 1);
      goto done;
    }
    if (temperature <= 0) {
      out[r] = best;
      continue;
    }
    float cut = -INFINITY;
    if (use_k) {
      memcpy(scratch, z, sizeof(float) * (size_t)V);
      cut = kth_largest(scratch, V, top_k);
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
    out[r] = pick;
  }
done:
  if (p != stack_p) free(p);
  if (scratch && scratch != stack_s) free(scratch);
  rc_release(lc);
  return rc;
}
