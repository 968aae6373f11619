/* Parameter arenas (one flat buffer of values and one of gradients per model), the
 * orthogonal initializer and gradient clipping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "nn_internal.h"

rc_tensor *rc_param_from(rc_tensor *base) {
  if (!base) return NULL;
  /* a separate header over the same storage: unlike base's header (which lives inside the
   * storage block when base was made by rc_empty / rc_zeros / rc_rand ...), this one can be
   * pointed at another storage later */
  rc_tensor *p = rc_raw_view(base, base->ndim, base->size, base->stride, base->offset);
  rc_release(base);
  if (!p) return NULL;
  p->is_view = 0;
  p->requires_grad = 1;
  return p;
}

rc_tensor *rc_param_new(rc_ctx *c, int ndim, const int64_t *size) {
  return rc_param_from(rc_zeros(c, ndim, size));
}

int rc_is_param(const rc_tensor *t) {
  return t && !t->embedded && !t->is_view && !t->grad_fn;
}

/* Points t at storage `to` (retained) from element offset off, contiguous, and drops its
 * reference to the old storage (through a temporary header: storages have no public
 * release). tmp is a header made beforehand by rc_raw_view(t, ...), so nothing can fail. */
static void move_to(rc_tensor *t, rc_tensor *to, int64_t off, rc_tensor *tmp) {
  t->storage->refcount--; /* t's reference now belongs to tmp (which holds one too) */
  t->storage = to->storage;
  to->storage->refcount++;
  t->offset = off;
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    t->stride[i] = st;
    st *= t->size[i];
  }
  rc_release(tmp); /* frees the old storage when nobody else holds it */
}

static rc_tensor *flat_view(rc_tensor *base, int64_t off, int64_t n) {
  int64_t st = 1;
  return rc_raw_view(base, 1, &n, &st, off);
}

int rc_params_pack(rc_ctx *c, rc_tensor **p, int n, rc_tensor **flat, rc_tensor **flat_grad) {
  *flat = *flat_grad = NULL;
  if (n < 0) return rc_error(c, "pack_parameters: negative parameter count %d", n);
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    rc_tensor *t = p[i];
    if (t->grad_fn)
      return rc_error(c, "pack_parameters: parameter %d is not a leaf (it has autograd history)",
                      i + 1);
    if (t->embedded)
      return rc_error(c,
                      "pack_parameters: parameter %d was not created as a parameter and cannot "
                      "be moved into a flat buffer (register it with Module:parameter)",
                      i + 1);
    for (int k = 0; k < i; k++)
      if (p[k] == t)
        return rc_error(c, "pack_parameters: parameter %d appears twice (%d and %d)", i + 1, k + 1,
                        i + 1);
    total += rc_numel(t);
  }
  /* is the layout already right? The values: consecutive in one storage. The gradients: each
   * one in its slot of one gradient arena (slots of dropped gradients are refilled) */
  int data_ok = 1, grad_ok = 1, same_storage = 1, missing = 0;
  int64_t off = 0;
  rc_storage *gs = NULL;
  int64_t gbase = 0;
  for (int i = 0; i < n; i++) {
    rc_tensor *t = p[i];
    if (t->storage != p[0]->storage) same_storage = 0;
    if (!rc_is_contiguous(t) || t->storage != p[0]->storage || t->offset != p[0]->offset + off)
      data_ok = 0;
    if (t->grad && !gs) {
      gs = t->grad->storage;
      gbase = t->grad->offset - off;
    }
    off += rc_numel(t);
  }
  if (!gs || gbase < 0 || gbase + total > gs->n) grad_ok = 0;
  off = 0;
  for (int i = 0; i < n && grad_ok; i++) {
    rc_tensor *g = p[i]->grad;
    if (!g)
      missing++;
    else if (!rc_is_contiguous(g) || !rc_same_shape(g, p[i]) || g->storage != gs ||
             g->offset != gbase + off)
      grad_ok = 0;
    off += rc_numel(p[i]);
  }
  if (grad_ok && missing) {
    /* refill the empty slots of the existing gradient arena (so a flat gradient buffer held
     * by the caller stays the one backward writes into) */
    rc_tensor **v = calloc((size_t)n, sizeof *v);
    if (!v) return rc_error(c, "pack_parameters: out of memory");
    rc_tensor *holder = NULL;
    for (int i = 0; i < n && !holder; i++)
      if (p[i]->grad) holder = p[i]->grad;
    off = 0;
    int fail = 0;
    for (int i = 0; i < n && !fail; i++) {
      if (!p[i]->grad) {
        int64_t st[RC_MAX_DIM], s = 1;
        for (int d = p[i]->ndim - 1; d >= 0; d--) {
          st[d] = s;
          s *= p[i]->size[d];
        }
        v[i] = rc_raw_view(holder, p[i]->ndim, p[i]->size, st, gbase + off);
        if (!v[i])
          fail = 1;
        else
          v[i]->is_view = 0;
      }
      off += rc_numel(p[i]);
    }
    if (fail) {
      for (int i = 0; i < n; i++) rc_release(v[i]);
      free(v);
      return -1;
    }
    for (int i = 0; i < n; i++)
      if (v[i]) {
        int64_t k = rc_numel(v[i]);
        if (k) memset(rc_data(v[i]), 0, (size_t)k * sizeof(float));
        rc_bump_version(v[i]);
        p[i]->grad = v[i];
      }
    free(v);
  }
  if (n == 0) {
    rc_tensor *e = rc_empty(c, 1, &total);
    rc_tensor *eg = e ? rc_empty(c, 1, &total) : NULL;
    if (!eg) {
      rc_release(e);
      return -1;
    }
    *flat = e;
    *flat_grad = eg;
    return 0;
  }
  if (!data_ok && same_storage && n > 1) {
    /* already in one arena, not in this order (tied parameters): leave everything where it
     * is (the caller then works parameter by parameter) */
    return 0;
  }
  rc_tensor *F = NULL, *G = NULL;
  /* tmp[2i]: header that takes over p[i]'s old storage; tmp[2i+1]: p[i]'s new gradient */
  rc_tensor **tmp = calloc((size_t)n * 2, sizeof *tmp);
  if (!tmp) return rc_error(c, "pack_parameters: out of memory");
  if (!data_ok && !(F = rc_empty(c, 1, &total))) goto fail;
  if (!grad_ok && !(G = rc_zeros(c, 1, &total))) goto fail;
  off = 0;
  for (int i = 0; i < n; i++) {
    rc_tensor *t = p[i];
    if (F && !(tmp[2 * i] = rc_raw_view(t, 0, NULL, NULL, 0))) goto fail;
    if (G) {
      int64_t st[RC_MAX_DIM], s = 1;
      for (int d = t->ndim - 1; d >= 0; d--) {
        st[d] = s;
        s *= t->size[d];
      }
      if (!(tmp[2 * i + 1] = rc_raw_view(G, t->ndim, t->size, st, off))) goto fail;
      tmp[2 * i + 1]->is_view = 0;
    }
    off += rc_numel(t);
  }
  {
    rc_tensor *fb = F ? F : p[0];
    rc_tensor *gb = G ? G : p[0]->grad; /* every gradient is in its slot when G is NULL */
    int64_t f0 = F ? 0 : p[0]->offset, g0 = G ? 0 : gbase;
    if (!(*flat = flat_view(fb, f0, total))) goto fail;
    if (!(*flat_grad = flat_view(gb, g0, total))) goto fail;
  }
  /* everything that can fail has been done: now move */
  off = 0;
  for (int i = 0; i < n; i++) {
    rc_tensor *t = p[i];
    if (F) {
      rc_read_floats(t, rc_data(F) + off);
      move_to(t, F, off, tmp[2 * i]);
    }
    if (G) {
      rc_tensor *g = t->grad;
      if (g && rc_same_shape(g, t)) rc_read_floats(g, rc_data(G) + off);
      rc_release(t->grad);
      t->grad = tmp[2 * i + 1];
    }
    off += rc_numel(t);
  }
  free(tmp);
  rc_release(F);
  rc_release(G);
  return 0;
fail:
  for (int i = 0; i < 2 * n; i++) rc_release(tmp[i]);
  free(tmp);
  rc_release(F);
  rc_release(G);
  rc_release(*flat);
  rc_release(*flat_grad);
  *flat = *flat_grad = NULL;
  return -1;
}

/* ---- orthogonal initialization ---- */

int rc_orthogonal_(rc_tensor *t, float gain) {
  rc_ctx *c = t->ctx;
  char s[160];
  if (t->ndim < 2)
    return rc_error(c, "orthogonal: the tensor must have at least 2 dimensions, got shape %s",
                    rc_shape_str(t, s, sizeof s));
  if (!isfinite(gain)) return rc_error(c, "orthogonal: gain must be finite, got %g", (double)gain);
  int64_t rows = t->size[0], cols = rc_numel(t) / (rows ? rows : 1);
  if (rows == 0 || cols == 0) return 0;
  if (rows > (1 << 20) || cols > (1 << 20) || rows * cols > ((int64_t)1 << 28))
    return rc_error(c, "orthogonal: shape %s is too large", rc_shape_str(t, s, sizeof s));
  /* QR of the tall orientation (m >= k): A is m x k, columns orthonormalized by modified
   * Gram-Schmidt applied twice (numerically orthogonal to double precision), which equals
   * Q of the QR decomposition with R's diagonal made positive -- the sign correction
   * TensorFlow and PyTorch apply. */
  int tall = rows >= cols;
  int64_t m = tall ? rows : cols, k = tall ? cols : rows;
  double *a = malloc((size_t)(m * k) * sizeof(double));
  float *out = malloc((size_t)(rows * cols) * sizeof(float));
  if (!a || !out) {
    free(a);
    free(out);
    return rc_error(c, "orthogonal: out of memory");
  }
  for (int64_t i = 0; i < m * k; i++) a[i] = rc_rng_normal(&c->rng); /* a[i*k + j]: row i, col j */
  for (int64_t j = 0; j < k; j++) {
    for (int pass = 0; pass < 2; pass++) {
      for (int64_t q = 0; q < j; q++) {
        double dot = 0;
        for (int64_t i = 0; i < m; i++) dot += a[i * k + q] * a[i * k + j];
        for (int64_t i = 0; i < m; i++) a[i * k + j] -= dot * a[i * k + q];
      }
    }
    double nrm = 0;
    for (int64_t i = 0; i < m; i++) nrm += a[i * k + j] * a[i * k + j];
    nrm = sqrt(nrm);
    if (nrm < 1e-12) nrm = 1; /* a degenerate draw (probability zero) */
    for (int64_t i = 0; i < m; i++) a[i * k + j] /= nrm;
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t q = 0; q < cols; q++)
      out[r * cols + q] = (float)(gain * (tall ? a[r * k + q] : a[q * k + r]));
  /* write through t's strides (t viewed as rows x cols in row-major element order) */
  int64_t idx[RC_MAX_DIM] = {0};
  for (int64_t e = 0, ne = rows * cols; e < ne; e++) {
    *rc_ptr(t, idx) = out[e];
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->size[d]) break;
      idx[d] = 0;
    }
  }
  free(a);
  free(out);
  rc_bump_version(t);
  return 0;
}

int rc_zero_fill(rc_tensor *t) {
  if (!rc_is_contiguous(t)) return rc_fill_(t, 0.0f);
  if (rc_check_inplace(t, "zero_")) return -1;
  int64_t n = rc_numel(t);
  if (n) memset(rc_data(t), 0, (size_t)n * sizeof(float));
  rc_bump_version(t);
  return 0;
}

/* ---- gradient clipping ---- */

static double sumsq_of(rc_tensor *g) {
  if (rc_is_contiguous(g)) return rc_k_sumsq(rc_data(g), rc_numel(g));
  double s = 0;
  int64_t idx[RC_MAX_DIM] = {0};
  for (int64_t e = 0, n = rc_numel(g); e < n; e++) {
    double v = *rc_ptr(g, idx);
    s += v * v;
    for (int d = g->ndim - 1; d >= 0; d--) {
      if (++idx[d] < g->size[d]) break;
      idx[d] = 0;
    }
  }
  return s;
}

double rc_grad_norm(rc_tensor **p, int n) {
  double s = 0;
  for (int i = 0; i < n; i++)
    if (p[i]->grad) s += sumsq_of(p[i]->grad);
  return sqrt(s);
}

/* applies f to every element of g (strided or not) */
static void each(rc_tensor *g, int scale_mode, float a, float b) {
  if (rc_is_contiguous(g)) {
    if (scale_mode)
      rc_k_scale(rc_data(g), rc_numel(g), a);
    else
      rc_k_clamp(rc_data(g), rc_numel(g), a, b);
  } else {
    int64_t idx[RC_MAX_DIM] = {0};
    for (int64_t e = 0, n = rc_numel(g); e < n; e++) {
      float *v = rc_ptr(g, idx);
      if (scale_mode)
        *v *= a;
      else
        *v = *v < a ? a : (*v > b ? b : *v);
      for (int d = g->ndim - 1; d >= 0; d--) {
        if (++idx[d] < g->size[d]) break;
        idx[d] = 0;
      }
    }
  }
  rc_bump_version(g);
}

int rc_clip_grad_norm(rc_tensor **p, int n, double max_norm, double *norm) {
  if (n > 0 && !(max_norm > 0))
    return rc_error(p[0]->ctx, "clip_grad_norm: max_norm must be > 0, got %g", max_norm);
  double t = rc_grad_norm(p, n);
  *norm = t;
  double coef = max_norm / (t + 1e-6);
  if (coef < 1.0)
    for (int i = 0; i < n; i++)
      if (p[i]->grad) each(p[i]->grad, 1, (float)coef, 0);
  return 0;
}

int rc_clip_grad_value(rc_tensor **p, int n, double clip, double *norm) {
  if (n > 0 && !(clip >= 0))
    return rc_error(p[0]->ctx, "clip_grad_value: clip must be >= 0, got %g", clip);
  *norm = rc_grad_norm(p, n);
  for (int i = 0; i < n; i++)
    if (p[i]->grad) each(p[i]->grad, 0, (float)-clip, (float)clip);
  return 0;
}

double rc_norm2(rc_tensor *g) {
  return sqrt(sumsq_of(g));
}

int rc_clip_norm_(rc_tensor *g, double max_norm, double *norm) {
  if (!(max_norm > 0))
    return rc_error(g->ctx, "clip_grad_norm: max_norm must be > 0, got %g", max_norm);
  double t = rc_norm2(g);
  *norm = t;
  double coef = max_norm / (t + 1e-6);
  if (coef < 1.0) each(g, 1, (float)coef, 0);
  return 0;
}
