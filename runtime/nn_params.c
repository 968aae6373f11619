/* Parameter arenas (one flat buffer of values per model; its gradient buffer and the slots in
 * it belong to autograd.c), the orthogonal initializer and gradient clipping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "nn.h"

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

int rc_params_pack(rc_ctx *c, rc_tensor **p, int n, int want_grad, rc_tensor **flat,
                   rc_tensor **flat_grad) {
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
  if (n == 0) {
    rc_tensor *e = rc_empty(c, 1, &total);
    rc_tensor *eg = e && want_grad ? rc_empty(c, 1, &total) : NULL;
    if (!e || (want_grad && !eg)) {
      rc_release(e);
      return -1;
    }
    *flat = e;
    *flat_grad = eg;
    return 0;
  }
  /* is the layout already right: every parameter packed, consecutive in one arena? */
  int data_ok = 1, same_storage = 1, any_grad = 0;
  int64_t off = 0;
  for (int i = 0; i < n; i++) {
    rc_tensor *t = p[i];
    if (t->storage != p[0]->storage) same_storage = 0;
    if (!t->packed || !rc_is_contiguous(t) || t->storage != p[0]->storage ||
        t->offset != p[0]->offset + off)
      data_ok = 0;
    if (t->grad) any_grad = 1;
    off += rc_numel(t);
  }
  if (!data_ok && same_storage && n > 1) {
    /* already in one arena, not in this order (tied parameters): leave everything where it
     * is (the caller then works parameter by parameter) */
    return 0;
  }
  /* the gradient buffer is made when asked for, or kept up when some gradient exists */
  int grads = want_grad || any_grad;
  rc_tensor *F = NULL, *TW = NULL, *made = NULL;
  /* tmp[2i]: header that takes over p[i]'s old storage; tmp[2i+1]: p[i]'s new gradient slot */
  rc_tensor **tmp = calloc((size_t)n * 2, sizeof *tmp);
  if (!tmp) return rc_error(c, "pack_parameters: out of memory");
  /* the values' arena: p[0]'s storage when the layout holds, else a new one (its pages are
   * touched only as each parameter is copied in, and each old storage is freed as soon as its
   * last parameter has moved, so packing costs about one parameter's size on top) */
  if (!data_ok && !(F = rc_empty(c, 1, &total))) goto fail;
  rc_storage *S = F ? F->storage : p[0]->storage;
  int64_t base = F ? 0 : p[0]->offset;
  if (grads) {
    TW = F ? NULL : S->grad_twin;
    if (!TW && !(TW = made = rc_zeros(c, 1, &S->n))) goto fail;
  }
  off = 0;
  for (int i = 0; i < n; i++) {
    rc_tensor *t = p[i];
    if (F && !(tmp[2 * i] = rc_raw_view(t, 0, NULL, NULL, 0))) goto fail;
    if (grads && (F || !rc_grad_is_slot(t, t->grad)) &&
        !(tmp[2 * i + 1] = rc_grad_slot_at(TW, t, base + off)))
      goto fail;
    off += rc_numel(t);
  }
  if (!(*flat = flat_view(F ? F : p[0], base, total))) goto fail;
  if (grads && !(*flat_grad = flat_view(TW, base, total))) goto fail;
  /* everything that can fail has been done: now move */
  if (made) S->grad_twin = made; /* S had none (or S is F, new) */
  /* last parameter first: parameters are usually allocated in this order, so freeing them in
   * reverse shrinks the top of the heap as they go and the allocator can give the memory
   * back (freed in order, the resident size would reach both copies) */
  off = total;
  for (int i = n - 1; i >= 0; i--) {
    rc_tensor *t = p[i];
    off -= rc_numel(t);
    if (F) {
      rc_read_floats(t, rc_data(F) + off);
      move_to(t, F, off, tmp[2 * i]);
      t->packed = 1;
    }
    rc_tensor *g = tmp[2 * i + 1];
    if (g) {
      /* a gradient kept elsewhere (the old arena's, autograd's own, one set by hand) is copied
       * into its slot; none reads as zeros */
      if (t->grad && rc_same_shape(t->grad, t))
        rc_read_floats(t->grad, rc_data(g));
      else if (!made)
        rc_grad_slot_zero(g);
      rc_bump_version(g);
      rc_release(t->grad);
      t->grad = g;
    }
  }
  free(tmp);
  rc_release(F);
  return 0;
fail:
  for (int i = 0; i < 2 * n; i++) rc_release(tmp[i]);
  free(tmp);
  rc_release(F);
  rc_release(made);
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
  /* the work budget sees the two Gram-Schmidt passes (~2 m k^2 multiply-adds), one unit per
   * 64 as a GEMM: the largest accepted shapes would otherwise run for hours in one call */
  double work = 2.0 * (double)m * (double)k * (double)k / 64.0;
  if (rc_charge(c, "orthogonal", work > 1e18 ? (uint64_t)1e18 : (uint64_t)work + 1)) return -1;
  /* scratch counted by the memory limit (up to 3 GB for the largest accepted shapes) */
  double *a = rc_mem_alloc(c, (size_t)(m * k) * sizeof(double));
  float *out = a ? rc_mem_alloc(c, (size_t)(rows * cols) * sizeof(float)) : NULL;
  if (!out) {
    rc_mem_free(c, a);
    return rc_error_prefix(c, "orthogonal");
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
  rc_mem_free(c, a);
  rc_mem_free(c, out);
  rc_bump_version(t);
  return 0;
}

int rc_zero_fill(rc_tensor *t) {
  if (!rc_is_contiguous(t)) return rc_fill_(t, 0.0f);
  if (rc_check_inplace(t, "zero_")) return -1;
  int64_t n = rc_numel(t);
  if (rc_charge_elems(t->ctx, "zero_", n)) return -1;
  if (n) memset(rc_data(t), 0, (size_t)n * sizeof(float));
  rc_bump_version(t);
  return 0;
}

/* ---- gradient clipping ---- */

/* (the callers charge the budget for the elements) */
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

/* Charges a pass over the gradients of p[0..n) (the norm, then a pass that clips them). */
static int charge_grads(rc_tensor **p, int n, const char *fn) {
  for (int i = 0; i < n; i++)
    if (p[i]->grad && rc_charge_elems(p[i]->ctx, fn, rc_numel(p[i]->grad))) return -1;
  return 0;
}

int rc_grad_norm(rc_tensor **p, int n, double *norm) {
  *norm = 0;
  if (charge_grads(p, n, "grad_norm")) return -1;
  double s = 0;
  for (int i = 0; i < n; i++)
    if (p[i]->grad) s += sumsq_of(p[i]->grad);
  *norm = sqrt(s);
  return 0;
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
  double t;
  if (rc_grad_norm(p, n, &t)) return -1;
  *norm = t;
  double coef = max_norm / (t + 1e-6);
  if (coef < 1.0 && charge_grads(p, n, "clip_grad_norm")) return -1;
  if (coef < 1.0)
    for (int i = 0; i < n; i++)
      if (p[i]->grad) each(p[i]->grad, 1, (float)coef, 0);
  return 0;
}

int rc_clip_grad_value(rc_tensor **p, int n, double clip, double *norm) {
  if (n > 0 && !(clip >= 0))
    return rc_error(p[0]->ctx, "clip_grad_value: clip must be >= 0, got %g", clip);
  if (rc_grad_norm(p, n, norm) || charge_grads(p, n, "clip_grad_value")) return -1;
  for (int i = 0; i < n; i++)
    if (p[i]->grad) each(p[i]->grad, 0, (float)-clip, (float)clip);
  return 0;
}

int rc_norm2(rc_tensor *g, double *norm) {
  *norm = 0;
  if (rc_charge_elems(g->ctx, "clip_norm_", rc_numel(g))) return -1;
  *norm = sqrt(sumsq_of(g));
  return 0;
}

int rc_clip_norm_(rc_tensor *g, double max_norm, double *norm) {
  if (!(max_norm > 0))
    return rc_error(g->ctx, "clip_grad_norm: max_norm must be > 0, got %g", max_norm);
  double t;
  if (rc_norm2(g, &t)) return -1;
  *norm = t;
  double coef = max_norm / (t + 1e-6);
  if (coef < 1.0 && rc_charge_elems(g->ctx, "clip_norm_", rc_numel(g))) return -1;
  if (coef < 1.0) each(g, 1, (float)coef, 0);
  return 0;
}
