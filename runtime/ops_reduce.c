/* Reductions (sum, mean, max, min, prod, var, std, logsumexp, norm), max/argmax with
 * indices, softmax, log_softmax and cumsum, with their backward passes.
 *
 * Every op works on a contiguous copy of its input (the input itself when it is already
 * contiguous) seen as [outer, n, inner]: n is the size of the reduced dimension (or the
 * element count for RC_ALL), outer the product of the sizes before it, inner of those
 * after it. inner == 1 walks contiguous rows; inner > 1 walks whole rows of `inner`
 * elements at once into per-column accumulators, so the innermost loop is always over
 * contiguous memory. Sums, means, products and variances accumulate in double.
 *
 * Gradient conventions for ties:
 *   - rc_reduce(RC_MAX / RC_MIN) (all elements or along a dim, like torch.amax/amin and
 *     torch.max(t)): the gradient is split evenly among all elements equal to the result.
 *   - rc_max_dim (values + indices): the whole gradient goes to the selected index, which
 *     is the first occurrence of the extreme value.
 *   - rc_norm with p = +-inf: split evenly among the elements whose |x| equals the norm.
 * NaN propagates through max/min (the first NaN is selected). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_math.h"
#include "ops.h"

static const char *const redop_name[RC_REDOP_COUNT] = {"sum", "mean", "max", "min", "prod"};

typedef struct {
  int dim; /* 0-based reduced dimension, or -1: all elements */
  int keepdim;
  int64_t outer, n, inner;
  rc_shape out; /* the reduced shape */
} plan_t;

/* Validates dim against shape s and computes the plan. For a 0-d tensor a dim of 0 or -1 is
 * accepted (as in PyTorch) and means all elements. */
static int make_plan(rc_ctx *c, const char *fn, const rc_shape *s, int dim, int keepdim,
                     plan_t *p) {
  memset(p, 0, sizeof *p);
  p->keepdim = keepdim ? 1 : 0;
  int d = -1;
  if (dim != RC_ALL) {
    if (rc_wrap_dim(c, fn, dim, s->ndim, &d)) return -1;
    if (s->ndim == 0) d = -1;
  }
  p->dim = d;
  p->outer = 1;
  p->inner = 1;
  p->n = 1;
  int64_t numel = 1;
  for (int i = 0; i < s->ndim; i++) numel *= s->size[i];
  if (rc_charge(c, fn, (uint64_t)numel / 16 + 1)) return -1;
  if (d < 0) {
    for (int i = 0; i < s->ndim; i++) p->n *= s->size[i];
    p->out.ndim = keepdim ? s->ndim : 0;
    for (int i = 0; i < p->out.ndim; i++) p->out.size[i] = 1;
    return 0;
  }
  for (int i = 0; i < d; i++) p->outer *= s->size[i];
  p->n = s->size[d];
  for (int i = d + 1; i < s->ndim; i++) p->inner *= s->size[i];
  int k = 0;
  for (int i = 0; i < s->ndim; i++) {
    if (i == d) {
      if (keepdim) p->out.size[k++] = 1;
    } else {
      p->out.size[k++] = s->size[i];
    }
  }
  p->out.ndim = k;
  return 0;
}

/* The plan a backward pass needs: recomputed from the node's input shape and parameters
 * i[1] (dim, or -1 for all) and i[2] (keepdim). */
static int node_plan(rc_node *nd, plan_t *p) {
  int dim = nd->i[1] < 0 ? RC_ALL : (int)nd->i[1];
  return make_plan(nd->ctx, nd->name, &nd->in_shape[0], dim, (int)nd->i[2], p);
}

static void node_set_plan(rc_node *nd, const plan_t *p) {
  nd->i[1] = p->dim;
  nd->i[2] = p->keepdim;
}

static int empty_error(rc_ctx *c, const char *fn, const rc_shape *s, const plan_t *p) {
  char buf[128];
  rc_shape_str2(s, buf, sizeof buf);
  if (p->dim < 0)
    return rc_error(c,
                    "%s: cannot reduce an empty tensor of shape %s (the operation has no "
                    "identity)",
                    fn, buf);
  return rc_error(c,
                  "%s: cannot reduce dimension %d of shape %s, which has size 0 (the "
                  "operation has no identity)",
                  fn, p->dim + 1, buf);
}

static void *oom_null(rc_ctx *c, const char *fn) {
  return rc_error_null(c, "%s: out of memory for a work buffer", fn);
}

/* malloc of count elements of sz bytes; never asks for 0 bytes (count may be 0). */
static void *work_alloc(int64_t count, size_t sz) {
  return malloc((size_t)(count > 0 ? count : 1) * sz);
}

/* Allocates a tensor of shape s (a new reference) or NULL. */
static rc_tensor *empty_shape(rc_ctx *c, const rc_shape *s) {
  return rc_empty(c, s->ndim, s->size);
}

/* Index of the element at slice (o, j), position k. */
#define AT(p, o, k, j) ((((o) * (p)->n) + (k)) * (p)->inner + (j))

/* Loop headers over every element of plan P's [outer, n, inner] layout; the statement after
 * it is the body, with o, k and j in scope, e = AT(P, o, k, j) (the element's offset in the
 * input) and s = o * inner + j (its slot in the reduced output). The innermost loop is j. */
#define FOR_EACH_ELEM(P)                                                                           \
  for (int64_t o = 0; o < (P)->outer; o++)                                                         \
    for (int64_t k = 0; k < (P)->n; k++)                                                           \
      for (int64_t j = 0, e = AT(P, o, k, 0), s = o * (P)->inner; j < (P)->inner; j++, e++, s++)

/* The forward pass's contiguous input and a new output of shape s: 0, or -1 holding nothing. */
static int fw_begin(rc_tensor *a, const rc_shape *s, rc_tensor **x, rc_tensor **out) {
  *x = rc_raw_contiguous(a);
  *out = *x ? empty_shape(a->ctx, s) : NULL;
  if (*out) return 0;
  rc_release(*x);
  *x = NULL;
  return -1;
}

/* A forward kernel: y from the contiguous x under plan p (arg: the op's variant); 0, or -1 with
 * the message. */
typedef int (*kernel_fn)(rc_ctx *c, const char *fn, const float *x, float *y, const plan_t *p,
                         int arg);

/* fw_run is inlined into every caller so that the kernel it is given is inlined there too:
 * called through the pointer, the row sums of a [64, 128] tensor took 10-20% longer. */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

/* Runs k from a's contiguous data into a new tensor of shape s: the tensor, or NULL. */
static ALWAYS_INLINE rc_tensor *fw_run(rc_tensor *a, const char *fn, const rc_shape *s,
                                       const plan_t *p, kernel_fn k, int arg) {
  rc_tensor *x, *out;
  if (fw_begin(a, s, &x, &out)) return NULL;
  int rc = k(a->ctx, fn, rc_data(x), rc_data(out), p, arg);
  rc_release(x);
  if (rc) {
    rc_release(out);
    return NULL;
  }
  return out;
}

/* Records the backward of a one-input op that produced out with plan p (dim and keepdim in the
 * node's i[1] and i[2]). 0 with *nd the node (NULL when no gradient is needed), or -1 after
 * releasing out when the node cannot be made. */
static int fw_record(rc_ctx *c, const char *name, rc_backward_fn bw, rc_tensor *a, rc_tensor *out,
                     const plan_t *p, rc_node **nd) {
  if (rc_record(c, name, bw, &a, 1, &out, nd)) return -1;
  if (*nd) node_set_plan(*nd, p);
  return 0;
}

/* What a backward pass works with: the plan, the node's first `nsaved` saved tensors made
 * contiguous (saved[]), the contiguous output gradient g and the new input gradient r. */
typedef struct {
  plan_t p;
  rc_tensor *saved[2], *g, *r;
} bw_t;

/* Hands r to gin[0] when rc is 0, releases what b holds and returns rc. */
static int bw_end(bw_t *b, rc_tensor **gin, int rc) {
  if (rc == 0) {
    gin[0] = b->r;
    b->r = NULL;
  }
  rc_release(b->r);
  rc_release(b->g);
  rc_release(b->saved[0]);
  rc_release(b->saved[1]);
  return rc;
}

/* Fills b for node nd (r zero-filled when zero, else uninitialized): 0, or -1 holding nothing. */
static int bw_begin(rc_node *nd, rc_tensor *gout, int nsaved, int zero, bw_t *b) {
  memset(b, 0, sizeof *b);
  if (node_plan(nd, &b->p)) return -1;
  rc_tensor *saved[2] = {NULL, NULL};
  for (int i = 0; i < nsaved; i++)
    if (!(saved[i] = rc_node_saved(nd, i))) return -1;
  for (int i = 0; i < nsaved; i++)
    if (!(b->saved[i] = rc_raw_contiguous(saved[i]))) return bw_end(b, NULL, -1);
  const rc_shape *s = &nd->in_shape[0];
  if (!(b->g = rc_raw_contiguous(gout)) ||
      !(b->r = zero ? rc_zeros(nd->ctx, s->ndim, s->size) : empty_shape(nd->ctx, s)))
    return bw_end(b, NULL, -1);
  return 0;
}

/* A work buffer for a backward pass, or NULL with the message. */
static void *bw_work(rc_node *nd, int64_t count, size_t sz) {
  void *w = work_alloc(count, sz);
  if (!w) oom_null(nd->ctx, nd->name);
  return w;
}

/* ---- forward kernels (x contiguous, outputs contiguous with outer * inner elements) ---- */

/* sum (scale 1), mean (scale 1/n) or product (op: RC_SUM, RC_MEAN or RC_PROD) */
static int sum_kernel(rc_ctx *c, const char *fn, const float *x, float *out, const plan_t *p,
                      int op) {
  const int64_t n = p->n, inner = p->inner;
  const int prod = op == RC_PROD, mean = op == RC_MEAN;
  double scale = 1.0;
  if (mean) scale = n ? 1.0 / (double)n : NAN; /* mean of nothing: NaN, as PyTorch */
  if (inner == 1) {
    for (int64_t o = 0; o < p->outer; o++) {
      const float *r = x + o * n;
      if (prod) {
        double a = 1.0;
        for (int64_t k = 0; k < n; k++) a *= r[k];
        out[o] = (float)a;
      } else {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int64_t k = 0;
        for (; k + 4 <= n; k += 4) {
          a0 += r[k];
          a1 += r[k + 1];
          a2 += r[k + 2];
          a3 += r[k + 3];
        }
        for (; k < n; k++) a0 += r[k];
        double s = (a0 + a1) + (a2 + a3);
        out[o] = (float)(scale == 1.0 ? s : s * scale);
      }
    }
    return 0;
  }
  double *acc = work_alloc(inner, sizeof(double));
  if (!acc) return oom_null(c, fn), -1;
  for (int64_t o = 0; o < p->outer; o++) {
    for (int64_t j = 0; j < inner; j++) acc[j] = prod ? 1.0 : 0.0;
    for (int64_t k = 0; k < n; k++) {
      const float *r = x + AT(p, o, k, 0);
      if (prod)
        for (int64_t j = 0; j < inner; j++) acc[j] *= r[j];
      else
        for (int64_t j = 0; j < inner; j++) acc[j] += r[j];
    }
    float *dst = out + o * inner;
    for (int64_t j = 0; j < inner; j++) dst[j] = (float)(acc[j] * scale);
  }
  free(acc);
  return 0;
}

/* v beats best for max (is_min = 0) or min; a NaN beats everything but an earlier NaN. */
static inline int beats(float v, float best, int is_min) {
  if (isnan(v)) return !isnan(best);
  return is_min ? v < best : v > best;
}

/* max or min per slice into vals, with 0-based first indices into idx (may be NULL). n > 0. */
static void minmax_kernel(const float *x, float *vals, float *idx, const plan_t *p, int is_min) {
  const int64_t n = p->n, inner = p->inner;
  if (inner == 1) {
    for (int64_t o = 0; o < p->outer; o++) {
      const float *r = x + o * n;
      float best = r[0];
      int64_t bi = 0;
      if (is_min) {
        for (int64_t k = 1; k < n; k++)
          if (r[k] < best || (isnan(r[k]) && !isnan(best))) best = r[k], bi = k;
      } else {
        for (int64_t k = 1; k < n; k++)
          if (r[k] > best || (isnan(r[k]) && !isnan(best))) best = r[k], bi = k;
      }
      vals[o] = best;
      if (idx) idx[o] = (float)bi;
    }
    return;
  }
  for (int64_t o = 0; o < p->outer; o++) {
    float *bv = vals + o * inner;
    float *bi = idx ? idx + o * inner : NULL;
    memcpy(bv, x + AT(p, o, 0, 0), (size_t)inner * sizeof(float));
    if (bi)
      for (int64_t j = 0; j < inner; j++) bi[j] = 0.0f;
    for (int64_t k = 1; k < n; k++) {
      const float *r = x + AT(p, o, k, 0);
      for (int64_t j = 0; j < inner; j++) {
        if (beats(r[j], bv[j], is_min)) {
          bv[j] = r[j];
          if (bi) bi[j] = (float)k;
        }
      }
    }
  }
}

/* max (is_min = 0) or min as a kernel_fn; n > 0. */
static int extreme_kernel(rc_ctx *c, const char *fn, const float *x, float *y, const plan_t *p,
                          int is_min) {
  (void)c, (void)fn;
  if (p->outer * p->inner > 0) minmax_kernel(x, y, NULL, p, is_min);
  return 0;
}

/* ---- rc_reduce ---- */

static int reduce_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  rc_redop op = (rc_redop)nd->i[0];
  int extreme = op == RC_MAX || op == RC_MIN;
  bw_t b;
  if (bw_begin(nd, gout[0], extreme ? 2 : op == RC_PROD, 0, &b)) return -1;
  const plan_t *p = &b.p;
  const float *g = rc_data(b.g), *xp = b.saved[0] ? rc_data(b.saved[0]) : NULL;
  float *o_ = rc_data(b.r);
  const int64_t n = p->n, inner = p->inner;
  double *buf = NULL;
  if (op == RC_SUM || op == RC_MEAN) {
    float scale = op == RC_MEAN ? (float)(1.0 / (double)(n ? n : 1)) : 1.0f;
    FOR_EACH_ELEM(p) o_[e] = g[s] * scale;
  } else if (op == RC_PROD) {
    /* d/dx_k = product of the others: prefix * suffix products, exact with zeros */
    if (!(buf = bw_work(nd, n, sizeof(double)))) return bw_end(&b, gin, -1);
    for (int64_t o = 0; o < p->outer; o++)
      for (int64_t j = 0; j < inner; j++) {
        double pre = 1.0, suf = 1.0, gv = g[o * inner + j];
        for (int64_t k = 0; k < n; k++) {
          buf[k] = pre;
          pre *= xp[AT(p, o, k, j)];
        }
        for (int64_t k = n - 1; k >= 0; k--) {
          o_[AT(p, o, k, j)] = (float)(gv * buf[k] * suf);
          suf *= xp[AT(p, o, k, j)];
        }
      }
  } else if (extreme) {
    /* split evenly among the elements equal to the result */
    const float *yp = rc_data(b.saved[1]);
    if (!(buf = bw_work(nd, inner, sizeof(double)))) return bw_end(&b, gin, -1);
    for (int64_t o = 0; o < p->outer; o++) {
      const float *yo = yp + o * inner;
      for (int64_t j = 0; j < inner; j++) buf[j] = 0;
      for (int64_t k = 0; k < n; k++) {
        const float *xr = xp + AT(p, o, k, 0);
        for (int64_t j = 0; j < inner; j++)
          buf[j] += (xr[j] == yo[j] || (isnan(xr[j]) && isnan(yo[j])));
      }
      for (int64_t k = 0; k < n; k++) {
        const float *xr = xp + AT(p, o, k, 0);
        float *dst = o_ + AT(p, o, k, 0);
        for (int64_t j = 0; j < inner; j++)
          dst[j] = (xr[j] == yo[j] || (isnan(xr[j]) && isnan(yo[j])))
                       ? (float)(g[o * inner + j] / buf[j])
                       : 0.0f;
      }
    }
  }
  free(buf);
  return bw_end(&b, gin, 0);
}

rc_tensor *rc_reduce(rc_redop op, rc_tensor *a, int dim, int keepdim) {
  rc_ctx *c = a->ctx;
  if ((unsigned)op >= RC_REDOP_COUNT) return rc_error_null(c, "reduce: unknown op %d", (int)op);
  const char *fn = redop_name[op];
  int extreme = op == RC_MAX || op == RC_MIN;
  rc_shape s = rc_shape_of(a);
  plan_t p;
  if (make_plan(c, fn, &s, dim, keepdim, &p)) return NULL;
  if (extreme && p.n == 0) return empty_error(c, fn, &s, &p), NULL;
  rc_tensor *out = extreme ? fw_run(a, fn, &p.out, &p, extreme_kernel, op == RC_MIN)
                           : fw_run(a, fn, &p.out, &p, sum_kernel, op);
  if (!out) return NULL;
  static const char *names[RC_REDOP_COUNT] = {"SumBackward", "MeanBackward", "MaxBackward",
                                              "MinBackward", "ProdBackward"};
  rc_node *nd;
  if (fw_record(c, names[op], reduce_backward, a, out, &p, &nd)) return NULL;
  if (nd) {
    nd->i[0] = op;
    if (op == RC_PROD || extreme) rc_node_save(nd, 0, a);
    if (extreme) rc_node_save(nd, 1, out);
  }
  return out;
}

/* ---- max / min with indices, argmax ---- */

static int max_dim_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  bw_t b;
  if (bw_begin(nd, gout[0], 1, 1, &b)) return -1;
  const plan_t *p = &b.p;
  const float *ip = rc_data(b.saved[0]), *g = rc_data(b.g);
  float *o_ = rc_data(b.r);
  for (int64_t o = 0; o < p->outer; o++)
    for (int64_t j = 0; j < p->inner; j++) {
      float kf = ip[o * p->inner + j];
      if (!(kf >= 0 && kf < (float)p->n)) continue; /* cannot happen: saved indices are checked */
      o_[AT(p, o, (int64_t)kf, j)] = g[o * p->inner + j];
    }
  return bw_end(&b, gin, 0);
}

/* values and indices of max/min along dim (RC_ALL: flat index). *values may be NULL-requested
 * by passing values == NULL (argmax). Indices are floats: a reduced count past 2^24 is
 * refused. */
static int max_dim_impl(rc_tensor *a, int dim, int keepdim, int is_min, rc_tensor **values,
                        rc_tensor **indices, const char *fn) {
  rc_ctx *c = a->ctx;
  rc_shape s = rc_shape_of(a);
  plan_t p;
  rc_tensor *x, *v;
  if (values) *values = NULL;
  *indices = NULL;
  if (make_plan(c, fn, &s, dim, keepdim, &p)) return -1;
  if (p.n == 0) return empty_error(c, fn, &s, &p);
  if (p.n > ((int64_t)1 << 24)) { /* as sort, topk, randperm and multinomial */
    char buf[128];
    if (p.dim < 0)
      return rc_error(c,
                      "%s: shape %s has %lld elements, more than 2^24, the largest count whose "
                      "indices float32 holds exactly",
                      fn, rc_shape_str(a, buf, sizeof buf), (long long)p.n);
    return rc_error(c,
                    "%s: dimension %d of shape %s has %lld elements, more than 2^24, the largest "
                    "count whose indices float32 holds exactly",
                    fn, p.dim + 1, rc_shape_str(a, buf, sizeof buf), (long long)p.n);
  }
  if (fw_begin(a, &p.out, &x, &v)) return -1;
  rc_tensor *ix = empty_shape(c, &p.out);
  if (!ix) {
    rc_release(x);
    rc_release(v);
    return -1;
  }
  if (p.outer * p.inner > 0) minmax_kernel(rc_data(x), rc_data(v), rc_data(ix), &p, is_min);
  rc_release(x);
  if (values) {
    rc_node *nd;
    if (fw_record(c, is_min ? "MinDimBackward" : "MaxDimBackward", max_dim_backward, a, v, &p,
                  &nd)) {
      rc_release(ix);
      return -1;
    }
    if (nd) rc_node_save(nd, 0, ix);
    *values = v;
  } else {
    rc_release(v);
  }
  *indices = ix;
  return 0;
}

int rc_max_dim(rc_tensor *a, int dim, int keepdim, int is_min, rc_tensor **values,
               rc_tensor **indices) {
  return max_dim_impl(a, dim, keepdim, is_min, values, indices, is_min ? "min" : "max");
}

rc_tensor *rc_argmax(rc_tensor *a, int dim, int keepdim, int is_min) {
  rc_tensor *ix;
  if (max_dim_impl(a, dim, keepdim, is_min, NULL, &ix, is_min ? "argmin" : "argmax")) return NULL;
  return ix;
}

/* ---- var and std ---- */

/* Per-slice means (double) of contiguous x into mean[outer * inner] and, when m2 is not
 * NULL, the sums of squared deviations from them (two passes: exact for large means). */
static void moments_kernel(const float *x, double *restrict mean, double *restrict m2,
                           const plan_t *p) {
  const int64_t n = p->n, inner = p->inner;
  if (inner == 1) {
    for (int64_t o = 0; o < p->outer; o++) {
      const float *r = x + o * n;
      double a0 = 0, a1 = 0;
      int64_t k = 0;
      for (; k + 2 <= n; k += 2) a0 += r[k], a1 += r[k + 1];
      if (k < n) a0 += r[k];
      double mu = n ? (a0 + a1) / (double)n : 0.0;
      mean[o] = mu;
      if (!m2) continue;
      a0 = a1 = 0;
      for (k = 0; k + 2 <= n; k += 2) {
        double d0 = r[k] - mu, d1 = r[k + 1] - mu;
        a0 += d0 * d0;
        a1 += d1 * d1;
      }
      if (k < n) a0 += (r[k] - mu) * (r[k] - mu);
      m2[o] = a0 + a1;
    }
    return;
  }
  for (int64_t o = 0; o < p->outer; o++) {
    double *restrict m = mean + o * inner;
    for (int64_t j = 0; j < inner; j++) m[j] = 0;
    for (int64_t k = 0; k < n; k++) {
      const float *r = x + AT(p, o, k, 0);
      for (int64_t j = 0; j < inner; j++) m[j] += r[j];
    }
    if (n)
      for (int64_t j = 0; j < inner; j++) m[j] /= (double)n;
    if (!m2) continue;
    double *restrict so = m2 + o * inner;
    for (int64_t j = 0; j < inner; j++) so[j] = 0;
    for (int64_t k = 0; k < n; k++) {
      const float *r = x + AT(p, o, k, 0);
      for (int64_t j = 0; j < inner; j++) {
        double d = (double)r[j] - m[j];
        so[j] += d * d;
      }
    }
  }
}

static int var_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  int is_std = (int)nd->i[3];
  bw_t b;
  if (bw_begin(nd, gout[0], is_std ? 2 : 1, 0, &b)) return -1;
  const plan_t *p = &b.p;
  double denom = (double)p->n - (double)nd->i[4];
  double *mean = bw_work(nd, p->outer * p->inner, sizeof(double));
  if (!mean) return bw_end(&b, gin, -1);
  const float *xp = rc_data(b.saved[0]), *g = rc_data(b.g);
  const float *yp = is_std ? rc_data(b.saved[1]) : NULL;
  float *o_ = rc_data(b.r);
  moments_kernel(xp, mean, NULL, p);
  FOR_EACH_ELEM(p) {
    double d = (double)xp[e] - mean[s];
    if (is_std) /* d std = d var / (2 std); 0 where std == 0, like PyTorch */
      o_[e] = yp[s] == 0.0f ? 0.0f : (float)(g[s] * d / (denom * yp[s]));
    else
      o_[e] = (float)(g[s] * 2.0 * d / denom);
  }
  free(mean);
  return bw_end(&b, gin, 0);
}

static rc_tensor *var_impl(rc_tensor *a, int dim, int keepdim, int unbiased, int is_std) {
  rc_ctx *c = a->ctx;
  const char *fn = is_std ? "std" : "var";
  rc_shape s = rc_shape_of(a);
  plan_t p;
  rc_tensor *x, *out;
  if (make_plan(c, fn, &s, dim, keepdim, &p)) return NULL;
  int64_t m = p.outer * p.inner;
  double *mean = work_alloc(2 * m, sizeof(double));
  if (!mean) return oom_null(c, fn);
  double *m2 = mean + m;
  if (fw_begin(a, &p.out, &x, &out)) {
    free(mean);
    return NULL;
  }
  float *o_ = rc_data(out);
  double denom = (double)p.n - (unbiased ? 1.0 : 0.0);
  moments_kernel(rc_data(x), mean, m2, &p);
  for (int64_t k = 0; k < m; k++) {
    double v = denom > 0 ? m2[k] / denom : NAN; /* n <= ddof: NaN, like PyTorch */
    o_[k] = (float)(is_std ? sqrt(v) : v);
  }
  free(mean);
  rc_release(x);
  rc_node *nd;
  if (fw_record(c, is_std ? "StdBackward" : "VarBackward", var_backward, a, out, &p, &nd))
    return NULL;
  if (nd) {
    nd->i[3] = is_std;
    nd->i[4] = unbiased ? 1 : 0;
    rc_node_save(nd, 0, a);
    if (is_std) rc_node_save(nd, 1, out);
  }
  return out;
}

rc_tensor *rc_var(rc_tensor *a, int dim, int keepdim, int unbiased) {
  return var_impl(a, dim, keepdim, unbiased, 0);
}

rc_tensor *rc_std(rc_tensor *a, int dim, int keepdim, int unbiased) {
  return var_impl(a, dim, keepdim, unbiased, 1);
}

/* ---- logsumexp ---- */

/* Per-column work buffers of `inner` floats and doubles (for the max and a sum): 0, or -1
 * with the message and nothing held. */
static int work_pair(rc_ctx *c, const char *fn, int64_t inner, float **mx, double **acc) {
  *mx = work_alloc(inner, sizeof(float));
  *acc = work_alloc(inner, sizeof(double));
  if (*mx && *acc) return 0;
  free(*mx);
  free(*acc);
  return oom_null(c, fn), -1;
}

/* mx[j] = the max of slice (o, j) of x (-inf when n is 0; NaN wins, see beats). */
static void slice_max(const float *x, const plan_t *p, int64_t o, float *mx) {
  for (int64_t j = 0; j < p->inner; j++) mx[j] = -INFINITY;
  for (int64_t k = 0; k < p->n; k++) {
    const float *r = x + AT(p, o, k, 0);
    for (int64_t j = 0; j < p->inner; j++)
      if (beats(r[j], mx[j], 0)) mx[j] = r[j];
  }
}

/* y = logsumexp over each slice of x (contiguous), with work buffers for inner > 1. */
static int lse_kernel(rc_ctx *c, const char *fn, const float *x, float *y, const plan_t *p,
                      int arg) {
  (void)arg;
  const int64_t n = p->n, inner = p->inner;
  float *mx;
  double *acc;
  if (work_pair(c, fn, inner, &mx, &acc)) return -1;
  for (int64_t o = 0; o < p->outer; o++) {
    slice_max(x, p, o, mx);
    for (int64_t j = 0; j < inner; j++) acc[j] = 0;
    for (int64_t k = 0; k < n; k++) {
      const float *r = x + AT(p, o, k, 0);
      for (int64_t j = 0; j < inner; j++)
        if (isfinite(mx[j])) acc[j] += (double)rc_expf(r[j] - mx[j]);
    }
    float *dst = y + o * inner;
    for (int64_t j = 0; j < inner; j++)
      dst[j] = isfinite(mx[j]) ? (float)((double)mx[j] + log(acc[j])) : mx[j];
  }
  free(mx);
  free(acc);
  return 0;
}

static int lse_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  bw_t b;
  if (bw_begin(nd, gout[0], 2, 0, &b)) return -1;
  const float *xp = rc_data(b.saved[0]), *yp = rc_data(b.saved[1]), *g = rc_data(b.g);
  float *o_ = rc_data(b.r);
  FOR_EACH_ELEM(&b.p) o_[e] = xp[e] == -INFINITY ? 0.0f : g[s] * rc_expf(xp[e] - yp[s]);
  return bw_end(&b, gin, 0);
}

rc_tensor *rc_logsumexp(rc_tensor *a, int dim, int keepdim) {
  rc_ctx *c = a->ctx;
  rc_shape s = rc_shape_of(a);
  plan_t p;
  if (make_plan(c, "logsumexp", &s, dim, keepdim, &p)) return NULL;
  rc_tensor *out = fw_run(a, "logsumexp", &p.out, &p, lse_kernel, 0);
  rc_node *nd;
  if (!out || fw_record(c, "LogsumexpBackward", lse_backward, a, out, &p, &nd)) return NULL;
  if (nd) {
    rc_node_save(nd, 0, a);
    rc_node_save(nd, 1, out);
  }
  return out;
}

/* ---- norm ---- */

static int norm_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  double pv = nd->d[0];
  bw_t b;
  if (bw_begin(nd, gout[0], 2, 0, &b)) return -1;
  const plan_t *p = &b.p;
  int64_t m = p->outer * p->inner;
  double *cnt = NULL;
  if (isinf(pv) && !(cnt = bw_work(nd, m, sizeof(double)))) return bw_end(&b, gin, -1);
  const float *xp = rc_data(b.saved[0]), *yp = rc_data(b.saved[1]), *g = rc_data(b.g);
  float *o_ = rc_data(b.r);
  if (cnt) {
    for (int64_t k = 0; k < m; k++) cnt[k] = 0;
    FOR_EACH_ELEM(p) cnt[s] += fabsf(xp[e]) == yp[s];
  }
  FOR_EACH_ELEM(p) {
    double v = xp[e], sg = (v > 0) - (v < 0), nv = yp[s], d;
    if (pv == 0.0 || v == 0.0)
      d = 0.0;
    else if (pv == 1.0)
      d = sg;
    else if (isinf(pv))
      d = fabs(v) == nv ? sg / cnt[s] : 0.0;
    else if (nv == 0.0)
      d = 0.0;
    else if (pv == 2.0)
      d = v / nv;
    else
      d = sg * pow(fabs(v) / nv, pv - 1.0);
    o_[e] = (float)(g[s] * d);
  }
  free(cnt);
  return bw_end(&b, gin, 0);
}

rc_tensor *rc_norm(rc_tensor *a, float pf, int dim, int keepdim) {
  rc_ctx *c = a->ctx;
  double pv = pf;
  if (isnan(pv)) return rc_error_null(c, "norm: p must be a number, got nan");
  rc_shape s = rc_shape_of(a);
  plan_t p;
  if (make_plan(c, "norm", &s, dim, keepdim, &p)) return NULL;
  if (isinf(pv) && p.n == 0) return empty_error(c, "norm", &s, &p), NULL;
  int64_t m = p.outer * p.inner;
  double *acc = work_alloc(m, sizeof(double));
  if (!acc) return oom_null(c, "norm");
  rc_tensor *x, *out;
  if (fw_begin(a, &p.out, &x, &out)) {
    free(acc);
    return NULL;
  }
  const float *xp = rc_data(x);
  float *o_ = rc_data(out);
  double init = pv == INFINITY ? 0.0 : pv == -INFINITY ? INFINITY : 0.0;
  for (int64_t k = 0; k < m; k++) acc[k] = init;
  for (int64_t o = 0; o < p.outer; o++)
    for (int64_t k = 0; k < p.n; k++) {
      const float *r = xp + AT(&p, o, k, 0);
      double *ac = acc + o * p.inner;
      if (pv == 2.0) {
        for (int64_t j = 0; j < p.inner; j++) ac[j] += (double)r[j] * r[j];
      } else if (pv == 1.0) {
        for (int64_t j = 0; j < p.inner; j++) ac[j] += fabsf(r[j]);
      } else if (pv == INFINITY) {
        for (int64_t j = 0; j < p.inner; j++)
          if (fabsf(r[j]) > ac[j] || isnan(r[j])) ac[j] = isnan(ac[j]) ? ac[j] : fabsf(r[j]);
      } else if (pv == -INFINITY) {
        for (int64_t j = 0; j < p.inner; j++)
          if (fabsf(r[j]) < ac[j] || isnan(r[j])) ac[j] = isnan(ac[j]) ? ac[j] : fabsf(r[j]);
      } else if (pv == 0.0) {
        for (int64_t j = 0; j < p.inner; j++) ac[j] += r[j] != 0.0f;
      } else {
        for (int64_t j = 0; j < p.inner; j++)
          if (r[j] != 0.0f || pv > 0)
            ac[j] += pow(fabs((double)r[j]), pv);
          else
            ac[j] = INFINITY; /* 0^p with p < 0 */
      }
    }
  for (int64_t k = 0; k < m; k++) {
    double v = acc[k];
    if (pv == 2.0)
      v = sqrt(v);
    else if (!(pv == 1.0 || isinf(pv) || pv == 0.0))
      v = pow(v, 1.0 / pv);
    o_[k] = (float)v;
  }
  free(acc);
  rc_release(x);
  rc_node *nd;
  if (fw_record(c, "NormBackward", norm_backward, a, out, &p, &nd)) return NULL;
  if (nd) {
    nd->d[0] = pv;
    rc_node_save(nd, 0, a);
    rc_node_save(nd, 1, out);
  }
  return out;
}

/* ---- softmax and log_softmax ---- */

/* y = softmax (or log_softmax) of x along the plan's dim; both contiguous, same shape. */
static int softmax_kernel(rc_ctx *c, const char *fn, const float *x, float *y, const plan_t *p,
                          int logsm) {
  const int64_t n = p->n, inner = p->inner;
  if (n == 0) return 0;
  if (inner == 1) {
    for (int64_t o = 0; o < p->outer; o++) {
      const float *r = x + o * n;
      float *d = y + o * n;
      float mx = r[0];
      for (int64_t k = 1; k < n; k++)
        if (beats(r[k], mx, 0)) mx = r[k];
      if (isinf(mx) && mx < 0) mx = 0; /* all -inf: NaN results, as exp(-inf - -inf) */
      double sum = 0;
      if (logsm) {
        for (int64_t k = 0; k < n; k++) sum += rc_expf(r[k] - mx);
        float lse = (float)log(sum);
        for (int64_t k = 0; k < n; k++) d[k] = r[k] - mx - lse;
      } else {
        for (int64_t k = 0; k < n; k++) {
          d[k] = rc_expf(r[k] - mx);
          sum += d[k];
        }
        float inv = (float)(1.0 / sum);
        for (int64_t k = 0; k < n; k++) d[k] *= inv;
      }
    }
    return 0;
  }
  float *mx;
  double *acc;
  if (work_pair(c, fn, inner, &mx, &acc)) return -1;
  for (int64_t o = 0; o < p->outer; o++) {
    slice_max(x, p, o, mx);
    for (int64_t j = 0; j < inner; j++) {
      if (isinf(mx[j]) && mx[j] < 0) mx[j] = 0;
      acc[j] = 0;
    }
    for (int64_t k = 0; k < n; k++) {
      const float *r = x + AT(p, o, k, 0);
      float *d = y + AT(p, o, k, 0);
      for (int64_t j = 0; j < inner; j++) {
        float e = rc_expf(r[j] - mx[j]);
        if (!logsm) d[j] = e;
        acc[j] += e;
      }
    }
    if (logsm)
      for (int64_t j = 0; j < inner; j++) mx[j] += (float)log(acc[j]);
    else
      for (int64_t j = 0; j < inner; j++) acc[j] = 1.0 / acc[j];
    for (int64_t k = 0; k < n; k++) {
      const float *r = x + AT(p, o, k, 0);
      float *d = y + AT(p, o, k, 0);
      if (logsm)
        for (int64_t j = 0; j < inner; j++) d[j] = r[j] - mx[j];
      else
        for (int64_t j = 0; j < inner; j++) d[j] = (float)(d[j] * acc[j]);
    }
  }
  free(mx);
  free(acc);
  return 0;
}

/* softmax: gx = y * (g - sum_k g_k y_k); log_softmax: gx = g - exp(y) * sum_k g_k */
static int softmax_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  int logsm = (int)nd->i[3];
  bw_t b;
  if (bw_begin(nd, gout[0], 1, 0, &b)) return -1;
  const plan_t *p = &b.p;
  double *acc = bw_work(nd, p->inner, sizeof(double));
  if (!acc) return bw_end(&b, gin, -1);
  const float *yp = rc_data(b.saved[0]), *g = rc_data(b.g);
  float *o_ = rc_data(b.r);
  for (int64_t o = 0; o < p->outer; o++) {
    for (int64_t j = 0; j < p->inner; j++) acc[j] = 0;
    for (int64_t k = 0; k < p->n; k++) {
      const float *gr = g + AT(p, o, k, 0), *yr = yp + AT(p, o, k, 0);
      if (logsm)
        for (int64_t j = 0; j < p->inner; j++) acc[j] += gr[j];
      else
        for (int64_t j = 0; j < p->inner; j++) acc[j] += (double)gr[j] * yr[j];
    }
    for (int64_t k = 0; k < p->n; k++) {
      const float *gr = g + AT(p, o, k, 0), *yr = yp + AT(p, o, k, 0);
      float *d = o_ + AT(p, o, k, 0);
      if (logsm)
        for (int64_t j = 0; j < p->inner; j++) d[j] = gr[j] - rc_expf(yr[j]) * (float)acc[j];
      else
        for (int64_t j = 0; j < p->inner; j++) d[j] = yr[j] * (gr[j] - (float)acc[j]);
    }
  }
  free(acc);
  return bw_end(&b, gin, 0);
}

static rc_tensor *softmax_impl(rc_tensor *a, int dim, int logsm) {
  rc_ctx *c = a->ctx;
  const char *fn = logsm ? "log_softmax" : "softmax";
  if (dim == RC_ALL) return rc_error_null(c, "%s: a dimension is required", fn);
  rc_shape s = rc_shape_of(a);
  plan_t p;
  if (make_plan(c, fn, &s, dim, 1, &p)) return NULL;
  rc_tensor *out = fw_run(a, fn, &s, &p, softmax_kernel, logsm);
  rc_node *nd;
  if (!out || fw_record(c, logsm ? "LogSoftmaxBackward" : "SoftmaxBackward", softmax_backward, a,
                        out, &p, &nd))
    return NULL;
  if (nd) {
    nd->i[3] = logsm;
    rc_node_save(nd, 0, out);
  }
  return out;
}

rc_tensor *rc_softmax(rc_tensor *a, int dim) {
  return softmax_impl(a, dim, 0);
}
rc_tensor *rc_log_softmax(rc_tensor *a, int dim) {
  return softmax_impl(a, dim, 1);
}

/* ---- cumsum ---- */

/* Running sums (double) along the plan's dim; reverse: from the end (the backward). */
static int cumsum_kernel(rc_ctx *c, const char *fn, const float *x, float *y, const plan_t *p,
                         int reverse) {
  const int64_t n = p->n, inner = p->inner;
  double *acc = work_alloc(inner, sizeof(double));
  if (!acc) return oom_null(c, fn), -1;
  for (int64_t o = 0; o < p->outer; o++) {
    for (int64_t j = 0; j < inner; j++) acc[j] = 0;
    for (int64_t kk = 0; kk < n; kk++) {
      int64_t k = reverse ? n - 1 - kk : kk;
      const float *r = x + AT(p, o, k, 0);
      float *d = y + AT(p, o, k, 0);
      for (int64_t j = 0; j < inner; j++) {
        acc[j] += r[j];
        d[j] = (float)acc[j];
      }
    }
  }
  free(acc);
  return 0;
}

static int cumsum_backward(rc_node *nd, rc_tensor **gout, rc_tensor **gin) {
  bw_t b;
  if (bw_begin(nd, gout[0], 0, 0, &b)) return -1;
  return bw_end(&b, gin, cumsum_kernel(nd->ctx, "cumsum", rc_data(b.g), rc_data(b.r), &b.p, 1));
}

rc_tensor *rc_cumsum(rc_tensor *a, int dim) {
  rc_ctx *c = a->ctx;
  if (dim == RC_ALL) return rc_error_null(c, "cumsum: a dimension is required");
  rc_shape s = rc_shape_of(a);
  plan_t p;
  if (make_plan(c, "cumsum", &s, dim, 1, &p)) return NULL;
  rc_tensor *out = fw_run(a, "cumsum", &s, &p, cumsum_kernel, 0);
  rc_node *nd;
  if (!out || fw_record(c, "CumsumBackward", cumsum_backward, a, out, &p, &nd)) return NULL;
  return out;
}
