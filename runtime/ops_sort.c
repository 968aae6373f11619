/* Sorting and tests: sort, topk (values and 0-based indices along a dim), any, all, isnan,
 * isinf, isfinite.
 *
 * Indices are float values, so a slice may hold at most 2^24 elements (all exact in float32).
 *
 * sort and topk are stable: equal values keep their order (the first occurrence first, in
 * both directions). NaN compares greater than every number, as in PyTorch: it sorts last in
 * ascending order, first in descending order, and topk(largest) picks NaNs first. Their values
 * are differentiable: the backward scatters each value's gradient back to the position it came
 * from (indices are distinct within a slice, so nothing is summed). Indices, any, all and the
 * isnan family are 0/1 or integer float tensors without gradient. */
#include <math.h>
#include <string.h>

#include "ops.h"

typedef struct {
  float v;
  int64_t i;
} pair_t;

/* "a comes before b": NaN is greater than every number (last going up, first going down);
 * equal values are not before each other, so the sort below keeps their order (stable). */
static inline int before_up(float a, float b) {
  return !isnan(a) && (isnan(b) || a < b);
}
static inline int before_down(float a, float b) {
  return isnan(a) ? !isnan(b) : (!isnan(b) && a > b);
}

/* A stable sort of a[0..n) with tmp[0..n) as scratch: insertion sort of runs of 16, then
 * bottom-up merges (an inlined comparison: qsort's indirect calls were 5x slower). */
#define RUN 16
#define DEFINE_SORT(NAME, BEFORE)                                                                  \
  static void NAME(pair_t *a, pair_t *tmp, int64_t n) {                                            \
    for (int64_t s = 0; s < n; s += RUN) {                                                         \
      int64_t e = s + RUN < n ? s + RUN : n;                                                       \
      for (int64_t i = s + 1; i < e; i++) {                                                        \
        pair_t x = a[i];                                                                           \
        int64_t j = i;                                                                             \
        for (; j > s && BEFORE(x.v, a[j - 1].v); j--) a[j] = a[j - 1];                             \
        a[j] = x;                                                                                  \
      }                                                                                            \
    }                                                                                              \
    pair_t *src = a, *dst = tmp;                                                                   \
    for (int64_t w = RUN; w < n; w *= 2) {                                                         \
      for (int64_t lo = 0; lo < n; lo += 2 * w) {                                                  \
        int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;               \
        int64_t i = lo, j = mid, k = lo;                                                           \
        while (i < mid && j < hi) dst[k++] = BEFORE(src[j].v, src[i].v) ? src[j++] : src[i++];     \
        while (i < mid) dst[k++] = src[i++];                                                       \
        while (j < hi) dst[k++] = src[j++];                                                        \
      }                                                                                            \
      pair_t *t = src;                                                                             \
      src = dst;                                                                                   \
      dst = t;                                                                                     \
    }                                                                                              \
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);                                           \
  }
DEFINE_SORT(sort_up, before_up)
DEFINE_SORT(sort_down, before_down)

/* gin = zeros, gin[slice, ix[k]] = g[slice, k]: the values' gradient back where they came from */
static int sort_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *ixs = rc_node_saved(nd, 0);
  if (!ixs) return -1;
  const rc_shape *s = &nd->in_shape[0];
  rc_span p = rc_span_of(s, (int)nd->i[0]);
  int64_t k = nd->i[1];
  rc_tensor *g = rc_raw_contiguous(gout[0]);
  rc_tensor *ix = g ? rc_raw_contiguous(ixs) : NULL;
  rc_tensor *r = ix ? rc_zeros(nd->ctx, s->ndim, s->size) : NULL;
  if (!r) {
    rc_release(g);
    rc_release(ix);
    return -1;
  }
  const float *gp = rc_data(g), *ip = rc_data(ix);
  float *rp = rc_data(r);
  for (int64_t o = 0; o < p.outer; o++)
    for (int64_t q = 0; q < k; q++)
      for (int64_t j = 0; j < p.inner; j++) {
        int64_t src = (o * k + q) * p.inner + j;
        int64_t at = (int64_t)ip[src];
        if (at >= 0 && at < p.n) rp[(o * p.n + at) * p.inner + j] += gp[src];
      }
  rc_release(g);
  rc_release(ix);
  gin[0] = r;
  return 0;
}

/* The k first of each slice along dim in sorted order (k == size: a full sort). */
static int sort_impl(rc_tensor *a, int dim, int descending, int64_t k, const char *fn,
                     rc_tensor **values, rc_tensor **indices) {
  /* argsort drops the values: values == NULL records no node */
  rc_ctx *c = a->ctx;
  if (values) *values = NULL;
  *indices = NULL;
  int d = 0;
  if (a->ndim > 0 && rc_wrap_dim(c, fn, dim, a->ndim, &d)) return -1;
  rc_shape s = rc_shape_of(a);
  rc_span p = rc_span_of(&s, d);
  if (k < 0 || k > p.n) {
    char buf[128];
    return rc_error(c, "%s: k = %lld is out of range for dimension %d of shape %s (size %lld)", fn,
                    (long long)k, d + 1, rc_shape_str(a, buf, sizeof buf), (long long)p.n);
  }
  if (p.n > ((int64_t)1 << 24)) { /* as randperm and multinomial */
    char buf[128];
    return rc_error(c,
                    "%s: dimension %d of shape %s has %lld elements, more than 2^24, the largest "
                    "count whose indices float32 holds exactly",
                    fn, d + 1, rc_shape_str(a, buf, sizeof buf), (long long)p.n);
  }
  int64_t numel = rc_numel(a);
  if (rc_charge(c, fn, (uint64_t)numel / 4 + 1)) return -1;
  rc_shape os = s;
  if (os.ndim > 0) os.size[d] = k;
  /* pairs + scratch, counted by the memory limit (8 times the slice's floats) */
  pair_t *buf = rc_mem_alloc(c, (size_t)(p.n > 0 ? 2 * p.n : 1) * sizeof *buf);
  rc_tensor *x = buf ? rc_raw_contiguous(a) : NULL;
  rc_tensor *v = x ? rc_empty(c, os.ndim, os.size) : NULL;
  rc_tensor *ix = v ? rc_empty(c, os.ndim, os.size) : NULL;
  if (!ix) {
    if (!buf) rc_error_prefix(c, fn);
    rc_mem_free(c, buf);
    rc_release(x);
    rc_release(v);
    return -1;
  }
  const float *xp = rc_data(x);
  float *vp = rc_data(v), *ipp = rc_data(ix);
  for (int64_t o = 0; o < p.outer; o++)
    for (int64_t j = 0; j < p.inner; j++) {
      for (int64_t q = 0; q < p.n; q++) {
        buf[q].v = xp[(o * p.n + q) * p.inner + j];
        buf[q].i = q;
      }
      if (p.n > 1) (descending ? sort_down : sort_up)(buf, buf + p.n, p.n);
      for (int64_t q = 0; q < k; q++) {
        vp[(o * k + q) * p.inner + j] = buf[q].v;
        ipp[(o * k + q) * p.inner + j] = (float)buf[q].i;
      }
    }
  rc_mem_free(c, buf);
  rc_release(x);
  if (!values) {
    rc_release(v);
    *indices = ix;
    return 0;
  }
  rc_node *nd;
  if (rc_record(c, k == p.n ? "SortBackward" : "TopkBackward", sort_backward, &a, 1, &v, &nd)) {
    rc_release(ix);
    return -1;
  }
  if (nd) {
    nd->i[0] = d;
    nd->i[1] = k;
    rc_node_save(nd, 0, ix);
  }
  *values = v;
  *indices = ix;
  return 0;
}

int rc_sort(rc_tensor *a, int dim, int descending, rc_tensor **values, rc_tensor **indices) {
  int d = 0;
  if (a->ndim > 0 && rc_wrap_dim(a->ctx, "sort", dim, a->ndim, &d)) return -1;
  return sort_impl(a, d, descending, a->ndim ? a->size[d] : 1, "sort", values, indices);
}

int rc_topk(rc_tensor *a, int64_t k, int dim, int largest, rc_tensor **values,
            rc_tensor **indices) {
  return sort_impl(a, dim, largest, k, "topk", values, indices);
}

rc_tensor *rc_argsort(rc_tensor *a, int dim, int descending) {
  int d = 0;
  if (a->ndim > 0 && rc_wrap_dim(a->ctx, "argsort", dim, a->ndim, &d)) return NULL;
  rc_tensor *ix;
  if (sort_impl(a, d, descending, a->ndim ? a->size[d] : 1, "argsort", NULL, &ix)) return NULL;
  return ix;
}

/* ---- any, all ---- */

rc_tensor *rc_any_all(rc_tensor *a, int dim, int keepdim, int is_all) {
  rc_ctx *c = a->ctx;
  const char *fn = is_all ? "all" : "any";
  rc_shape s = rc_shape_of(a), os;
  rc_span p = {1, rc_numel(a), 1};
  int d = -1;
  if (dim != RC_ALL && a->ndim > 0) {
    if (rc_wrap_dim(c, fn, dim, a->ndim, &d)) return NULL;
    p = rc_span_of(&s, d);
  }
  memset(&os, 0, sizeof os);
  if (d < 0) {
    os.ndim = keepdim ? s.ndim : 0;
    for (int i = 0; i < os.ndim; i++) os.size[i] = 1;
  } else {
    for (int i = 0; i < s.ndim; i++)
      if (i != d)
        os.size[os.ndim++] = s.size[i];
      else if (keepdim)
        os.size[os.ndim++] = 1;
  }
  if (rc_charge(c, fn, (uint64_t)rc_numel(a) / 16 + 1)) return NULL;
  rc_tensor *x = rc_raw_contiguous(a);
  rc_tensor *out = x ? rc_full(c, os.ndim, os.size, is_all ? 1.0f : 0.0f) : NULL;
  if (!out) {
    rc_release(x);
    return NULL;
  }
  const float *xp = rc_data(x);
  float *op = rc_data(out);
  for (int64_t o = 0; o < p.outer; o++)
    for (int64_t q = 0; q < p.n; q++)
      for (int64_t j = 0; j < p.inner; j++) {
        int nz = xp[(o * p.n + q) * p.inner + j] != 0.0f; /* NaN is nonzero: true */
        if (is_all && !nz) op[o * p.inner + j] = 0.0f;
        if (!is_all && nz) op[o * p.inner + j] = 1.0f;
      }
  rc_release(x);
  return out;
}

/* ---- isnan, isinf, isfinite ---- */

rc_tensor *rc_isclass(rc_tensor *a, rc_fpclass what) {
  static const char *const names[] = {"isnan", "isinf", "isfinite"};
  rc_ctx *c = a->ctx;
  if (rc_charge(c, names[what], (uint64_t)rc_numel(a) / 16 + 1)) return NULL;
  rc_tensor *x = rc_raw_contiguous(a);
  rc_tensor *out = x ? rc_empty(c, a->ndim, a->size) : NULL;
  if (!out) {
    rc_release(x);
    return NULL;
  }
  const float *xp = rc_data(x);
  float *op = rc_data(out);
  for (int64_t q = 0, n = rc_numel(a); q < n; q++) {
    float v = xp[q];
    op[q] = what == RC_ISNAN ? isnan(v) : what == RC_ISINF ? isinf(v) != 0 : isfinite(v) != 0;
  }
  rc_release(x);
  return out;
}
