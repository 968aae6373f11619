/* Copies that rearrange elements: flip, roll, tril/triu, diag, trace, tile, repeat_interleave;
 * cumprod; linspace and logspace.
 *
 * flip, roll, tril/triu, diag and tile are one "index map" op each: every output element is
 * one element of the (contiguous) input or zero. The map is not stored: a backward rebuilds it
 * from the node's shapes and parameters and scatter-adds the output's gradient through it.
 * repeat_interleave is an index_select with a built index, trace the sum of diag. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

enum { MAP_FLIP, MAP_ROLL, MAP_TRI, MAP_DIAG_EMBED, MAP_DIAG_EXTRACT, MAP_TILE };
static const char *const map_bw[] = {"FlipBackward", "RollBackward", "TriBackward",
                                     "DiagBackward", "DiagBackward", "TileBackward"};

typedef struct {
  int kind;
  const char *fn;
  int64_t k;               /* tri, diag: the diagonal (clamped to +-2^41: same result) */
  int upper;               /* tri */
  int64_t per[RC_MAX_DIM]; /* flip: 1 per flipped dim; roll: shift in [0, size); tile: reps */
  rc_shape in;             /* tile: a's shape padded with leading 1s to out.ndim */
  rc_shape out;
  int64_t istr[RC_MAX_DIM]; /* contiguous strides of in */
} map_t;

static void set_strides(map_t *m) {
  int64_t st = 1;
  for (int d = m->in.ndim - 1; d >= 0; d--) {
    m->istr[d] = st;
    st *= m->in.size[d];
  }
}

/* The input element (flat index into contiguous in) of output position oi, or -1: zero. */
static int64_t src_of(const map_t *m, const int64_t *oi) {
  int nd = m->out.ndim;
  int64_t off = 0;
  switch (m->kind) {
  case MAP_FLIP:
    for (int d = 0; d < nd; d++)
      off += (m->per[d] ? m->out.size[d] - 1 - oi[d] : oi[d]) * m->istr[d];
    return off;
  case MAP_ROLL:
    for (int d = 0; d < nd; d++) {
      int64_t i = oi[d] - m->per[d];
      off += (i < 0 ? i + m->out.size[d] : i) * m->istr[d];
    }
    return off;
  case MAP_TRI: {
    int64_t dc = oi[nd - 1] - oi[nd - 2];
    if (m->upper ? dc < m->k : dc > m->k) return -1;
    for (int d = 0; d < nd; d++) off += oi[d] * m->istr[d];
    return off;
  }
  case MAP_DIAG_EMBED:
    if (oi[1] - oi[0] != m->k) return -1;
    return m->k >= 0 ? oi[0] : oi[1];
  case MAP_DIAG_EXTRACT:
    return m->k >= 0 ? oi[0] * m->istr[0] + (oi[0] + m->k) * m->istr[1]
                     : (oi[0] - m->k) * m->istr[0] + oi[0] * m->istr[1];
  default: /* MAP_TILE */
    for (int d = 0; d < nd; d++) off += (oi[d] % m->in.size[d]) * m->istr[d];
    return off;
  }
}

/* Advances a multi-index over `size`; returns 0 once it wraps around. */
static int next_index(int64_t *idx, const int64_t *size, int ndim) {
  for (int d = ndim - 1; d >= 0; d--) {
    if (++idx[d] < size[d]) return 1;
    idx[d] = 0;
  }
  return 0;
}

static int64_t shape_numel(const rc_shape *s) {
  int64_t n = 1;
  for (int i = 0; i < s->ndim; i++) n *= s->size[i];
  return n;
}

static int map_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  map_t m;
  memset(&m, 0, sizeof m);
  m.kind = (int)nd->i[0];
  m.k = nd->i[1];
  m.upper = (int)nd->i[2];
  for (int d = 0; d < RC_MAX_DIM; d++) m.per[d] = nd->i[3 + d];
  m.out = nd->out_shape[0];
  m.in = nd->in_shape[0];
  if (m.kind == MAP_TILE) { /* pad with leading 1s as the forward did */
    int pad = m.out.ndim - m.in.ndim;
    memmove(m.in.size + pad, m.in.size, (size_t)m.in.ndim * sizeof m.in.size[0]);
    for (int d = 0; d < pad; d++) m.in.size[d] = 1;
    m.in.ndim = m.out.ndim;
  }
  set_strides(&m);
  const rc_shape *is = &nd->in_shape[0];
  rc_tensor *g = rc_raw_contiguous(gout[0]);
  rc_tensor *r = g ? rc_zeros(nd->ctx, is->ndim, is->size) : NULL;
  if (!r) {
    rc_release(g);
    return -1;
  }
  const float *gp = rc_data(g);
  float *rp = rc_data(r);
  int64_t n = shape_numel(&m.out), oi[RC_MAX_DIM] = {0};
  for (int64_t q = 0; q < n; q++, next_index(oi, m.out.size, m.out.ndim)) {
    int64_t s = src_of(&m, oi);
    if (s >= 0) rp[s] += gp[q];
  }
  rc_release(g);
  gin[0] = r;
  return 0;
}

/* Runs map m (in = a's shape, or padded for tile; out set) on a: a new tensor, or NULL. */
static rc_tensor *map_forward(rc_tensor *a, map_t *m) {
  rc_ctx *c = a->ctx;
  const char *fn = m->fn;
  if (rc_check_shape(c, fn, m->out.ndim, m->out.size)) return NULL;
  int64_t n = shape_numel(&m->out);
  if (rc_charge(c, fn, (uint64_t)n / 8 + 1)) return NULL;
  set_strides(m);
  rc_tensor *x = rc_raw_contiguous(a);
  rc_tensor *out = x ? rc_empty(c, m->out.ndim, m->out.size) : NULL;
  if (!out) {
    rc_release(x);
    return NULL;
  }
  const float *xp = rc_data(x);
  float *op = rc_data(out);
  int64_t oi[RC_MAX_DIM] = {0};
  for (int64_t q = 0; q < n; q++, next_index(oi, m->out.size, m->out.ndim)) {
    int64_t s = src_of(m, oi);
    op[q] = s >= 0 ? xp[s] : 0.0f;
  }
  rc_release(x);
  rc_node *nd;
  if (rc_record(c, map_bw[m->kind], map_backward, &a, 1, &out, &nd)) return NULL;
  if (nd) {
    nd->i[0] = m->kind;
    nd->i[1] = m->k;
    nd->i[2] = m->upper;
    for (int d = 0; d < RC_MAX_DIM; d++) nd->i[3 + d] = m->per[d];
  }
  return out;
}

static void map_init(map_t *m, int kind, const char *fn, rc_tensor *a) {
  memset(m, 0, sizeof *m);
  m->kind = kind;
  m->fn = fn;
  m->in = rc_shape_of(a);
  m->out = m->in;
}

rc_tensor *rc_flip(rc_tensor *a, int ndims, const int *dims) {
  map_t m;
  map_init(&m, MAP_FLIP, "flip", a);
  if (ndims < 1) return rc_error_null(a->ctx, "flip: at least one dimension is required");
  for (int i = 0; i < ndims; i++) {
    int d;
    if (rc_wrap_dim(a->ctx, "flip", dims[i], a->ndim, &d)) return NULL;
    if (a->ndim == 0) continue;
    if (m.per[d]) return rc_error_null(a->ctx, "flip: dimension %d appears more than once", d + 1);
    m.per[d] = 1;
  }
  return map_forward(a, &m);
}

rc_tensor *rc_roll(rc_tensor *a, int ndims, const int64_t *shifts, const int *dims) {
  rc_ctx *c = a->ctx;
  if (ndims == 0) { /* flattened */
    int64_t n = rc_numel(a), one = n, sh[1] = {shifts[0]};
    int z[1] = {0};
    rc_tensor *f = rc_reshape(a, 1, &one);
    rc_tensor *r = f ? rc_roll(f, 1, sh, z) : NULL;
    rc_release(f);
    if (!r) return NULL;
    rc_tensor *o = rc_reshape(r, a->ndim, a->size);
    rc_release(r);
    return o;
  }
  map_t m;
  map_init(&m, MAP_ROLL, "roll", a);
  for (int i = 0; i < ndims; i++) {
    int d;
    if (rc_wrap_dim(c, "roll", dims[i], a->ndim, &d)) return NULL;
    if (a->ndim == 0) continue;
    int64_t n = a->size[d];
    if (n == 0) continue;
    int64_t s = shifts[i] % n;
    if (s < 0) s += n;
    m.per[d] = (m.per[d] + s) % n;
  }
  return map_forward(a, &m);
}

/* k clamped to +-2^41: beyond the largest size either way, so nothing changes */
static int64_t clamp_k(int64_t k) {
  const int64_t lim = RC_MAX_NUMEL * 2;
  return k > lim ? lim : k < -lim ? -lim : k;
}

rc_tensor *rc_tri(rc_tensor *a, int64_t k, int upper) {
  const char *fn = upper ? "triu" : "tril";
  if (a->ndim < 2) {
    char buf[128];
    return rc_error_null(a->ctx, "%s: the tensor must have at least 2 dimensions, got shape %s", fn,
                         rc_shape_str(a, buf, sizeof buf));
  }
  map_t m;
  map_init(&m, MAP_TRI, fn, a);
  m.k = clamp_k(k);
  m.upper = upper ? 1 : 0;
  return map_forward(a, &m);
}

rc_tensor *rc_diag(rc_tensor *a, int64_t k) {
  rc_ctx *c = a->ctx;
  map_t m;
  if (a->ndim == 1) {
    map_init(&m, MAP_DIAG_EMBED, "diag", a);
    /* |k| clamped first: -k and size + k overflow at the ends of int64 */
    int64_t ak = k < -RC_MAX_NUMEL || k > RC_MAX_NUMEL ? RC_MAX_NUMEL : k < 0 ? -k : k;
    if (ak >= RC_MAX_NUMEL)
      return rc_error_null(
          c, "diag: offset %lld is too large (the result would have more than 2^40 elements)",
          (long long)k);
    int64_t side = a->size[0] + ak;
    if ((double)side * (double)side > (double)RC_MAX_NUMEL)
      return rc_error_null(c, "diag: a %lld x %lld result is too large (more than 2^40 elements)",
                           (long long)side, (long long)side);
    m.k = k;
    m.out.ndim = 2;
    m.out.size[0] = m.out.size[1] = side;
    return map_forward(a, &m);
  }
  if (a->ndim == 2) {
    map_init(&m, MAP_DIAG_EXTRACT, "diag", a);
    int64_t R = a->size[0], C = a->size[1], L;
    k = clamp_k(k);
    if (k >= 0)
      L = k >= C ? 0 : (R < C - k ? R : C - k);
    else
      L = -k >= R ? 0 : (R + k < C ? R + k : C);
    m.k = k;
    m.out.ndim = 1;
    m.out.size[0] = L;
    return map_forward(a, &m);
  }
  char buf[128];
  return rc_error_null(c, "diag: the tensor must have 1 or 2 dimensions, got shape %s",
                       rc_shape_str(a, buf, sizeof buf));
}

rc_tensor *rc_trace(rc_tensor *a) {
  if (a->ndim != 2) {
    char buf[128];
    return rc_error_null(a->ctx, "trace: the tensor must have 2 dimensions, got shape %s",
                         rc_shape_str(a, buf, sizeof buf));
  }
  rc_tensor *d = rc_diag(a, 0);
  if (!d) return NULL;
  rc_tensor *s = rc_reduce(RC_SUM, d, RC_ALL, 0);
  rc_release(d);
  return s;
}

rc_tensor *rc_tile(rc_tensor *a, int nreps, const int64_t *reps) {
  rc_ctx *c = a->ctx;
  if (nreps < 0 || nreps > RC_MAX_DIM)
    return rc_error_null(c, "tile: %d repetitions given, at most %d dimensions are supported",
                         nreps, RC_MAX_DIM);
  map_t m;
  map_init(&m, MAP_TILE, "tile", a);
  int nd = a->ndim > nreps ? a->ndim : nreps;
  m.in.ndim = m.out.ndim = nd;
  for (int d = 0; d < nd; d++) {
    int ai = d - (nd - a->ndim), ri = d - (nd - nreps);
    int64_t sz = ai >= 0 ? a->size[ai] : 1, r = ri >= 0 ? reps[ri] : 1;
    if (r < 0)
      return rc_error_null(c, "tile: repetition %d is negative (%lld)", ri + 1, (long long)r);
    if (r > RC_MAX_NUMEL || (sz > 0 && r > RC_MAX_NUMEL / sz))
      return rc_error_null(c, "tile: the result is too large (more than 2^40 elements)");
    m.in.size[d] = sz;
    m.out.size[d] = sz * r;
    m.per[d] = r;
  }
  return map_forward(a, &m);
}

rc_tensor *rc_repeat_interleave(rc_tensor *a, int n_counts, const int64_t *counts, int dim) {
  rc_ctx *c = a->ctx;
  const char *fn = "repeat_interleave";
  if (dim == RC_ALL) { /* over the flattened tensor */
    int64_t n = rc_numel(a);
    rc_tensor *f = rc_reshape(a, 1, &n);
    rc_tensor *r = f ? rc_repeat_interleave(f, n_counts, counts, 0) : NULL;
    rc_release(f);
    return r;
  }
  int d = 0;
  if (rc_wrap_dim(c, fn, dim, a->ndim, &d)) return NULL;
  rc_tensor *src = a, *owned = NULL;
  if (a->ndim == 0) { /* a 0-d tensor is one slice of size 1 */
    int64_t one = 1;
    if (!(src = owned = rc_reshape(a, 1, &one))) return NULL;
  }
  int64_t n = src->size[d];
  char buf[128];
  if (n_counts != 1 && n_counts != n) {
    rc_release(owned);
    return rc_error_null(c,
                         "%s: %d repeat counts for dimension %d of shape %s (size %lld): give "
                         "one count or one per slice",
                         fn, n_counts, d + 1, rc_shape_str(a, buf, sizeof buf), (long long)n);
  }
  if (n > (1 << 24)) {
    rc_release(owned);
    return rc_error_null(c, "%s: dimension %d has %lld slices, more than 2^24", fn, d + 1,
                         (long long)n);
  }
  int64_t total = 0, inner = rc_numel(src) / (n ? n : 1);
  for (int i = 0; i < n_counts; i++) {
    if (counts[i] < 0 || counts[i] > RC_MAX_NUMEL) {
      rc_release(owned);
      return rc_error_null(c, "%s: repeat count %d is %lld, must be between 0 and 2^40", fn, i + 1,
                           (long long)counts[i]);
    }
    int big = n_counts == 1 && n > 0 && counts[0] > RC_MAX_NUMEL / n;
    total += big ? 0 : n_counts == 1 ? counts[0] * n : counts[i];
    if (big || total > RC_MAX_NUMEL || (inner > 0 && total > RC_MAX_NUMEL / inner)) {
      rc_release(owned);
      return rc_error_null(c, "%s: the result is too large (more than 2^40 elements)", fn);
    }
    if (n_counts == 1) break;
  }
  if (rc_charge(c, fn, (uint64_t)total / 16 + 1)) {
    rc_release(owned);
    return NULL;
  }
  rc_tensor *ix = rc_empty(c, 1, &total);
  if (!ix) {
    rc_release(owned);
    return NULL;
  }
  float *ip = rc_data(ix);
  int64_t q = 0;
  for (int64_t i = 0; i < n; i++)
    for (int64_t r = 0, cnt = counts[n_counts == 1 ? 0 : i]; r < cnt; r++) ip[q++] = (float)i;
  rc_tensor *out = rc_index_select(src, d, ix);
  rc_release(ix);
  rc_release(owned);
  return out;
}

/* ---- cumprod ---- */

#define AT(p, o, k, j) ((((o) * (p).n) + (k)) * (p).inner + (j))

/* d/dx_i of sum_j g_j y_j with y_j = prod_{k<=j} x_k, exact with zeros:
 * gx_i = P_i * S_i, P_i = prod_{k<i} x_k, S_i = g_i + x_{i+1} S_{i+1}. */
static int cumprod_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *xs = rc_node_saved(nd, 0);
  if (!xs) return -1;
  const rc_shape *s = &nd->in_shape[0];
  rc_span p = rc_span_of(s, (int)nd->i[0]);
  rc_tensor *x = rc_raw_contiguous(xs);
  rc_tensor *g = x ? rc_raw_contiguous(gout[0]) : NULL;
  rc_tensor *r = g ? rc_empty(nd->ctx, s->ndim, s->size) : NULL;
  if (!r) {
    rc_release(x);
    rc_release(g);
    return -1;
  }
  const float *xp = rc_data(x), *gp = rc_data(g);
  float *rp = rc_data(r);
  for (int64_t o = 0; o < p.outer; o++)
    for (int64_t j = 0; j < p.inner; j++) {
      double S = 0;
      for (int64_t k = p.n - 1; k >= 0; k--) { /* r holds S_k for now */
        S = gp[AT(p, o, k, j)] + (k + 1 < p.n ? (double)xp[AT(p, o, k + 1, j)] * S : 0.0);
        rp[AT(p, o, k, j)] = (float)S;
      }
      double P = 1;
      for (int64_t k = 0; k < p.n; k++) {
        double sk = rp[AT(p, o, k, j)];
        rp[AT(p, o, k, j)] = (float)(P * sk);
        P *= xp[AT(p, o, k, j)];
      }
    }
  rc_release(x);
  rc_release(g);
  gin[0] = r;
  return 0;
}

rc_tensor *rc_cumprod(rc_tensor *a, int dim) {
  rc_ctx *c = a->ctx;
  int d = 0;
  if (dim == RC_ALL) return rc_error_null(c, "cumprod: a dimension is required");
  if (rc_wrap_dim(c, "cumprod", dim, a->ndim, &d)) return NULL;
  rc_shape s = rc_shape_of(a);
  rc_span p = rc_span_of(&s, d);
  if (rc_charge(c, "cumprod", (uint64_t)rc_numel(a) / 16 + 1)) return NULL;
  rc_tensor *x = rc_raw_contiguous(a);
  rc_tensor *out = x ? rc_empty(c, s.ndim, s.size) : NULL;
  if (!out) {
    rc_release(x);
    return NULL;
  }
  const float *xp = rc_data(x);
  float *op = rc_data(out);
  for (int64_t o = 0; o < p.outer; o++)
    for (int64_t j = 0; j < p.inner; j++) {
      double acc = 1;
      for (int64_t k = 0; k < p.n; k++) {
        acc *= xp[AT(p, o, k, j)];
        op[AT(p, o, k, j)] = (float)acc;
      }
    }
  rc_release(x);
  rc_node *nd;
  if (rc_record(c, "CumprodBackward", cumprod_backward, &a, 1, &out, &nd)) return NULL;
  if (nd) {
    nd->i[0] = d;
    rc_node_save(nd, 0, a);
  }
  return out;
}

/* ---- linspace, logspace ---- */

static rc_tensor *space(rc_ctx *c, const char *fn, double start, double stop, int64_t n, int log,
                        double base) {
  if (n < 0 || n > RC_MAX_NUMEL)
    return rc_error_null(c, "%s: the number of points must be between 0 and 2^40, got %lld", fn,
                         (long long)n);
  if (rc_charge(c, fn, (uint64_t)n / 16 + 1)) return NULL;
  rc_tensor *t = rc_empty(c, 1, &n);
  if (!t) return NULL;
  float *p = rc_data(t);
  double step = n > 1 ? (stop - start) / (double)(n - 1) : 0.0;
  int64_t half = n / 2;
  for (int64_t i = 0; i < n; i++) { /* from both ends, as PyTorch: both are exact */
    double v = i < half ? start + step * (double)i : stop - step * (double)(n - 1 - i);
    if (n == 1) v = start;
    p[i] = (float)(log ? pow(base, v) : v);
  }
  return t;
}

rc_tensor *rc_linspace(rc_ctx *c, double start, double stop, int64_t n) {
  return space(c, "linspace", start, stop, n, 0, 0);
}

rc_tensor *rc_logspace(rc_ctx *c, double start, double stop, int64_t n, double base) {
  return space(c, "logspace", start, stop, n, 1, base);
}
