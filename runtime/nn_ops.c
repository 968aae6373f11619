/* Fused layer ops: linear, activations, dropout, layer norm, cross-entropy / nll. Each is one
 * tape node with a hand-written backward (the Lua compositions of primitive ops give the same
 * numbers; the specs check both against finite differences). */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "kernels.h"
#include "nn.h"
#include "nn_internal.h"

const char *const rc_act_name[RC_ACT_COUNT] = {"identity", "tanh", "sigmoid", "relu"};

/* A contiguous [rows, cols] view of t's elements (a copy when t is not contiguous). */
static rc_tensor *as_matrix(rc_tensor *t, int64_t rows, int64_t cols) {
  rc_tensor *c = rc_raw_contiguous(t);
  if (!c) return NULL;
  int64_t size[2] = {rows, cols}, stride[2] = {cols, 1};
  rc_tensor *v = rc_raw_view(c, 2, size, stride, c->offset);
  rc_release(c);
  return v;
}

static int64_t leading(const rc_tensor *t) {
  int64_t r = 1;
  for (int i = 0; i + 1 < t->ndim; i++) r *= t->size[i];
  return r;
}

/* c [m, n] = op(a) op(b) + beta c, row-major and contiguous, with k the inner size (op(a) is
 * [m, k], the transpose of a when ta; op(b) [k, n]). BLAS is not called for empty sizes: with
 * k == 0 the product is zero, so c is zeroed (beta == 0) or kept. */
static void gemm(rc_ctx *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a,
                 const float *b, float beta, float *c) {
  if (m <= 0 || n <= 0) return;
  if (k > 0)
    rc_sgemm(ctx, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, beta, c, n);
  else if (beta == 0.0f)
    memset(c, 0, (size_t)(m * n) * sizeof(float));
}

/* x's contiguous data (*xc) and a new tensor *y of x's shape: 0, or -1 holding nothing. */
static int unary_begin(rc_tensor *x, rc_tensor **xc, rc_tensor **y) {
  *xc = rc_raw_contiguous(x);
  *y = *xc ? rc_empty(x->ctx, x->ndim, x->size) : NULL;
  if (*y) return 0;
  rc_release(*xc);
  *xc = NULL;
  return -1;
}

/* In a backward pass: the contiguous output gradient (*g) and a new tensor *gx of input 0's
 * shape for its gradient: 0, or -1 holding nothing. */
static int grad_begin(rc_node *n, rc_tensor *gout, rc_tensor **g, rc_tensor **gx) {
  *g = rc_raw_contiguous(gout);
  *gx = *g ? rc_empty(n->ctx, n->in_shape[0].ndim, n->in_shape[0].size) : NULL;
  if (*gx) return 0;
  rc_release(*g);
  *g = NULL;
  return -1;
}

/* ---- linear ---- */

static int linear_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_ctx *c = n->ctx;
  rc_tensor *x = rc_node_saved(n, 0), *w = rc_node_saved(n, 1);
  if (!x || !w) return -1;
  int64_t rows = x->size[0], in = x->size[1], out = w->size[0];
  rc_tensor *g = as_matrix(gout[0], rows, out);
  if (!g) return -1;
  const float *gd = rc_data(g);
  int rc = -1;
  if (n->next[0].fn) {
    rc_tensor *gx = rc_empty(c, n->in_shape[0].ndim, n->in_shape[0].size);
    if (!gx) goto done;
    gin[0] = gx;
    gemm(c, 0, 0, rows, in, out, gd, rc_data(w), 0.0f, rc_data(gx)); /* g w */
  }
  if (n->next[1].fn) {
    rc_tensor *gw = rc_empty(c, 2, n->in_shape[1].size);
    if (!gw) goto done;
    gin[1] = gw;
    gemm(c, 1, 0, out, in, rows, gd, rc_data(x), 0.0f, rc_data(gw)); /* g^T x */
  }
  if (n->n_in == 3 && n->next[2].fn) {
    rc_tensor *gb = rc_zeros(c, 1, &out);
    if (!gb) goto done;
    gin[2] = gb;
    rc_colsum_add(gd, rows, out, rc_data(gb));
  }
  rc = 0;
done:
  rc_release(g);
  return rc;
}

rc_tensor *rc_linear(rc_tensor *x, rc_tensor *w, rc_tensor *b) {
  rc_ctx *c = x->ctx;
  char s1[160], s2[160], s3[160];
  if (w->ndim != 2)
    return rc_error_null(c, "linear: weight must be 2-D [out, in], got shape %s",
                         rc_shape_str(w, s1, sizeof s1));
  if (x->ndim < 1)
    return rc_error_null(c, "linear: input must have at least one dimension, got a 0-d tensor");
  int64_t in = w->size[1], out = w->size[0];
  if (x->size[x->ndim - 1] != in)
    return rc_error_null(c,
                         "linear: input shape %s does not match weight shape %s (%lld vs %lld "
                         "input features)",
                         rc_shape_str(x, s1, sizeof s1), rc_shape_str(w, s2, sizeof s2),
                         (long long)x->size[x->ndim - 1], (long long)in);
  if (b && (b->ndim != 1 || b->size[0] != out))
    return rc_error_null(
        c, "linear: bias shape %s does not match weight shape %s (expected [%lld])",
        rc_shape_str(b, s3, sizeof s3), rc_shape_str(w, s2, sizeof s2), (long long)out);
  int64_t rows = leading(x);
  if (rows > INT_MAX || in > INT_MAX || out > INT_MAX)
    return rc_error_null(c, "linear: input shape %s with weight %s is too large for BLAS",
                         rc_shape_str(x, s1, sizeof s1), rc_shape_str(w, s2, sizeof s2));
  if (rc_charge(c, "linear", rc_mac_units((double)rows * (double)in * (double)out))) return NULL;
  int64_t osize[RC_MAX_DIM];
  for (int i = 0; i + 1 < x->ndim; i++) osize[i] = x->size[i];
  osize[x->ndim - 1] = out;
  rc_tensor *x2 = as_matrix(x, rows, in);
  rc_tensor *w2 = x2 ? as_matrix(w, out, in) : NULL;
  rc_tensor *y = w2 ? rc_empty(c, x->ndim, osize) : NULL;
  if (!y) {
    rc_release(x2);
    rc_release(w2);
    return NULL;
  }
  float *yd = rc_data(y);
  rc_tensor *bc = b && rows > 0 && out > 0 ? rc_raw_contiguous(b) : NULL;
  if (b && rows > 0 && out > 0 && !bc) {
    rc_release(x2);
    rc_release(w2);
    rc_release(y);
    return NULL;
  }
  if (bc) /* x w^T + b */
    rc_sgemm_bias(c, 0, 1, rows, out, in, rc_data(x2), in, rc_data(w2), in, rc_data(bc), yd, out);
  else
    gemm(c, 0, 1, rows, out, in, rc_data(x2), rc_data(w2), 0.0f, yd); /* x w^T */
  rc_release(bc);
  rc_tensor *inputs[3] = {x, w, b};
  rc_node *n;
  if (!rc_record(c, "LinearBackward", linear_backward, inputs, b ? 3 : 2, &y, &n) && n) {
    rc_node_save(n, 0, x2);
    rc_node_save(n, 1, w2);
  }
  rc_release(x2);
  rc_release(w2);
  return y;
}

/* ---- activations ---- */

static int act_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *y = rc_node_saved(n, 0), *g, *gx;
  if (!y || grad_begin(n, gout[0], &g, &gx)) return -1;
  rc_act_backward_kernel((rc_act)n->i[0], rc_data(y), rc_data(g), rc_data(gx), rc_numel(gx));
  rc_release(g);
  gin[0] = gx;
  return 0;
}

static const char *const act_node_name[RC_ACT_COUNT] = {"IdentityBackward", "TanhBackward",
                                                        "SigmoidBackward", "ReluBackward"};

rc_tensor *rc_activation(rc_tensor *x, rc_act act) {
  rc_ctx *c = x->ctx;
  if ((int)act < 0 || act >= RC_ACT_COUNT)
    return rc_error_null(c, "activation: unknown activation %d", (int)act);
  if (act == RC_ACT_IDENTITY) {
    rc_retain(x);
    return x;
  }
  rc_tensor *xc, *y;
  if (unary_begin(x, &xc, &y)) return NULL;
  int64_t n = rc_numel(x);
  if (act == RC_ACT_TANH)
    rc_k_tanh(rc_data(xc), rc_data(y), n);
  else if (act == RC_ACT_SIGMOID)
    rc_k_sigmoid(rc_data(xc), rc_data(y), n);
  else
    rc_relu_kernel(rc_data(xc), rc_data(y), n);
  rc_release(xc);
  rc_node *node;
  if (rc_record(c, act_node_name[act], act_backward, &x, 1, &y, &node)) return NULL;
  if (node) {
    node->i[0] = act;
    rc_node_save(node, 0, y);
  }
  return y;
}

/* ---- dropout ---- */

static int mul_saved_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *m = rc_node_saved(n, 0), *g, *gx;
  if (!m || grad_begin(n, gout[0], &g, &gx)) return -1;
  const float *gd = rc_data(g), *md = rc_data(m);
  float *o = rc_data(gx);
  for (int64_t i = 0, k = rc_numel(gx); i < k; i++) o[i] = gd[i] * md[i];
  rc_release(g);
  gin[0] = gx;
  return 0;
}

rc_tensor *rc_dropout(rc_tensor *x, float p) {
  rc_ctx *c = x->ctx;
  if (!(p >= 0.0f && p <= 1.0f))
    return rc_error_null(c, "dropout: p must be in [0, 1], got %g", (double)p);
  if (p == 0.0f) {
    rc_retain(x);
    return x;
  }
  rc_tensor *xc, *y, *m = NULL;
  if (unary_begin(x, &xc, &y) || !(m = rc_empty(c, x->ndim, x->size))) {
    rc_release(xc);
    rc_release(y);
    return NULL;
  }
  float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const float *xd = rc_data(xc);
  float *yd = rc_data(y), *md = rc_data(m);
  /* xoshiro256** inlined on a local copy of the state (the same stream as rc_rng_next, which
   * as a call per element cost more than the rest of the layer) */
  uint64_t s0 = c->rng.s[0], s1 = c->rng.s[1], s2 = c->rng.s[2], s3 = c->rng.s[3];
  double threshold = (double)p * 16777216.0; /* u = k 2^-24 >= p  <=>  k >= p 2^24 */
  for (int64_t i = 0, n = rc_numel(x); i < n; i++) {
    uint64_t r = s1 * 5;
    r = ((r << 7) | (r >> 57)) * 9;
    uint64_t t = s1 << 17;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 45) | (s3 >> 19);
    float k = (double)(r >> 40) >= threshold ? scale : 0.0f; /* [0, 1) on a 2^-24 grid */
    md[i] = k;
    yd[i] = xd[i] * k;
  }
  c->rng.s[0] = s0;
  c->rng.s[1] = s1;
  c->rng.s[2] = s2;
  c->rng.s[3] = s3;
  rc_release(xc);
  rc_node *node;
  if (!rc_record(c, "DropoutBackward", mul_saved_backward, &x, 1, &y, &node) && node)
    rc_node_save(node, 0, m);
  rc_release(m);
  return y;
}

/* ---- layer norm ---- */

static int layer_norm_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_ctx *c = n->ctx;
  rc_tensor *x = rc_node_saved(n, 0), *st = rc_node_saved(n, 2);
  rc_tensor *gamma = n->saved[1] ? rc_node_saved(n, 1) : NULL;
  if (!x || !st || (n->saved[1] && !gamma)) return -1;
  int64_t R = x->size[0], D = x->size[1];
  rc_tensor *g = as_matrix(gout[0], R, D);
  if (!g) return -1;
  rc_tensor *gx = NULL, *gg = NULL, *gb = NULL;
  if (n->next[0].fn && !(gx = rc_empty(c, n->in_shape[0].ndim, n->in_shape[0].size))) goto fail;
  if (n->next[1].fn && !(gg = rc_zeros(c, 1, &D))) goto fail;
  if (n->next[2].fn && !(gb = rc_zeros(c, 1, &D))) goto fail;
  const float *xd = rc_data(x), *sd = rc_data(st), *gd = rc_data(g);
  const float *ga = gamma ? rc_data(gamma) : NULL;
  for (int64_t r = 0; r < R; r++) {
    const float *xr = xd + r * D, *grow = gd + r * D;
    float mean = sd[2 * r], rstd = sd[2 * r + 1];
    if (gx) {
      double m1 = 0, m2 = 0;
      for (int64_t j = 0; j < D; j++) {
        double dy = (double)grow[j] * (ga ? ga[j] : 1.0f);
        double xh = ((double)xr[j] - mean) * rstd;
        m1 += dy;
        m2 += dy * xh;
      }
      m1 /= (double)D;
      m2 /= (double)D;
      float *o = rc_data(gx) + r * D;
      for (int64_t j = 0; j < D; j++) {
        double dy = (double)grow[j] * (ga ? ga[j] : 1.0f);
        double xh = ((double)xr[j] - mean) * rstd;
        o[j] = (float)(rstd * (dy - m1 - xh * m2));
      }
    }
    if (gg) {
      float *o = rc_data(gg);
      for (int64_t j = 0; j < D; j++) o[j] += grow[j] * ((xr[j] - mean) * rstd);
    }
    if (gb) rc_colsum_add(grow, 1, D, rc_data(gb));
  }
  rc_release(g);
  gin[0] = gx;
  gin[1] = gg;
  gin[2] = gb;
  return 0;
fail:
  rc_release(g);
  rc_release(gx);
  rc_release(gg);
  rc_release(gb);
  return -1;
}

rc_tensor *rc_layer_norm(rc_tensor *x, rc_tensor *gamma, rc_tensor *beta, float eps) {
  rc_ctx *c = x->ctx;
  char s1[160], s2[160];
  if (x->ndim < 1)
    return rc_error_null(c, "layer_norm: input must have at least one dimension, got a 0-d tensor");
  int64_t D = x->size[x->ndim - 1];
  rc_tensor *aff[2] = {gamma, beta};
  const char *aname[2] = {"weight", "bias"};
  for (int k = 0; k < 2; k++)
    if (aff[k] && (aff[k]->ndim != 1 || aff[k]->size[0] != D))
      return rc_error_null(
          c, "layer_norm: %s shape %s does not match input shape %s (expected [%lld])", aname[k],
          rc_shape_str(aff[k], s1, sizeof s1), rc_shape_str(x, s2, sizeof s2), (long long)D);
  if (!(eps >= 0.0f) || isinf(eps))
    return rc_error_null(c, "layer_norm: eps must be a finite number >= 0, got %g", (double)eps);
  int64_t R = leading(x);
  int64_t ssize[2] = {R, 2};
  rc_tensor *x2 = as_matrix(x, R, D);
  rc_tensor *gc = x2 && gamma ? rc_raw_contiguous(gamma) : NULL;
  rc_tensor *bc = x2 && beta ? rc_raw_contiguous(beta) : NULL;
  rc_tensor *st = x2 ? rc_empty(c, 2, ssize) : NULL;
  rc_tensor *y = st ? rc_empty(c, x->ndim, x->size) : NULL;
  if (!y || (gamma && !gc) || (beta && !bc)) {
    rc_release(x2);
    rc_release(gc);
    rc_release(bc);
    rc_release(st);
    rc_release(y);
    return NULL;
  }
  const float *xd = rc_data(x2), *gd = gc ? rc_data(gc) : NULL, *bd = bc ? rc_data(bc) : NULL;
  float *yd = rc_data(y), *sd = rc_data(st);
  for (int64_t r = 0; r < R; r++) {
    const float *xr = xd + r * D;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < D; j++) mean += xr[j];
    mean = D ? mean / (double)D : 0.0;
    for (int64_t j = 0; j < D; j++) var += ((double)xr[j] - mean) * ((double)xr[j] - mean);
    var = D ? var / (double)D : 0.0;
    float rstd = (float)(1.0 / sqrt(var + (double)eps));
    float fm = (float)mean;
    sd[2 * r] = fm;
    sd[2 * r + 1] = rstd;
    float *yr = yd + r * D;
    for (int64_t j = 0; j < D; j++) {
      float v = (xr[j] - fm) * rstd;
      if (gd) v *= gd[j];
      if (bd) v += bd[j];
      yr[j] = v;
    }
  }
  rc_tensor *inputs[3] = {x, gamma, beta};
  rc_node *n;
  if (!rc_record(c, "LayerNormBackward", layer_norm_backward, inputs, 3, &y, &n) && n) {
    rc_node_save(n, 0, x2);
    if (gc) rc_node_save(n, 1, gc);
    rc_node_save(n, 2, st);
  }
  rc_release(x2);
  rc_release(gc);
  rc_release(bc);
  rc_release(st);
  return y;
}

/* ---- cross-entropy and nll ---- */

/* A mask (NULL: none) must have the target positions' shape; 0 after setting the error. */
static int mask_fits(rc_ctx *c, const char *fn, const rc_tensor *mask, const rc_shape *rows_shape) {
  if (!mask) return 1;
  rc_shape ms = rc_shape_of(mask);
  if (rc_shape_eq(&ms, rows_shape)) return 1;
  char s1[160], s2[160];
  rc_error(c, "%s: mask shape %s does not match the target positions %s", fn,
           rc_shape_str(mask, s1, sizeof s1), rc_shape_str2(rows_shape, s2, sizeof s2));
  return 0;
}

/* saved: 0 input [R, C], 1 target ([R] or [R, C]), 2 weights [R] or none, 3 lse [R]
 * i[0] reduction, i[1] soft, i[2] log_probs; d[0] the mean's denominator */
/* The loss tensor of a cross-entropy: the per-row losses for RC_REDUCE_NONE, else their sum or
 * their sum over `count` (the rows, or the mask's sum). NULL when out of memory. */
static rc_tensor *xent_result(rc_ctx *c, rc_reduction reduction, const rc_shape *rows_shape,
                              const float *lossd, int64_t R, double total, double count) {
  if (reduction == RC_REDUCE_NONE) {
    rc_tensor *y = rc_empty(c, rows_shape->ndim, rows_shape->size);
    if (y) memcpy(rc_data(y), lossd, (size_t)R * sizeof(float));
    return y;
  }
  return rc_scalar(c, (float)(reduction == RC_REDUCE_SUM ? total : total / count));
}

/* every row's log-sum-exp over a share of the rows (rc_ctx_rows), each share with its own
 * scratch (whole cache lines: two threads never write one line) */
typedef struct {
  const float *x;
  int64_t C;
  float *tmp, *lse; /* tmp: 2 x rc_rows_logsumexp_tmp(C) */
} xent_lse_job;

static void xent_lse_rows(void *arg, int64_t lo, int64_t hi) {
  const xent_lse_job *j = arg;
  rc_rows_logsumexp(j->x + lo * j->C, hi - lo, j->C,
                    j->tmp + (lo > 0) * rc_rows_logsumexp_tmp(j->C), j->lse + lo);
}

/* the input gradient's rows lo .. hi of a cross-entropy (rc_ctx_rows) */
typedef struct {
  const float *x, *t, *lse, *g, *w;
  float *o;
  int64_t C;
  int red, soft, log_probs;
  double denom;
} xent_grad_job;

static void xent_grad_rows(void *arg, int64_t lo, int64_t hi) {
  const xent_grad_job *j = arg;
  int64_t C = j->C;
  for (int64_t r = lo; r < hi; r++) {
    float *orow = j->o + r * C;
    float wr = j->w ? j->w[r] : 1.0f;
    if (wr == 0.0f) {
      memset(orow, 0, (size_t)C * sizeof(float));
      continue;
    }
    float s = (float)((double)(j->red == RC_REDUCE_NONE ? j->g[r] : j->g[0]) * wr / j->denom);
    const float *xr = j->x + r * C;
    if (!j->log_probs) {
      if (j->soft) {
        rc_row_exp_scaled(xr, j->lse[r], 1.0f, C, orow);
        const float *tr = j->t + r * C;
        double tsum = 0;
        for (int64_t k = 0; k < C; k++) tsum += tr[k];
        for (int64_t k = 0; k < C; k++) orow[k] = s * (orow[k] * (float)tsum - tr[k]);
      } else {
        rc_row_exp_scaled(xr, j->lse[r], s, C, orow);
        orow[(int64_t)j->t[r]] -= s;
      }
    } else if (j->soft) {
      const float *tr = j->t + r * C;
      for (int64_t k = 0; k < C; k++) orow[k] = -s * tr[k];
    } else {
      memset(orow, 0, (size_t)C * sizeof(float));
      orow[(int64_t)j->t[r]] = -s;
    }
  }
}

static int xent_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *x = rc_node_saved(n, 0), *t = rc_node_saved(n, 1), *lse = rc_node_saved(n, 3);
  rc_tensor *w = n->saved[2] ? rc_node_saved(n, 2) : NULL;
  if (!x || !t || !lse || (n->saved[2] && !w)) return -1;
  int64_t R = x->size[0], C = x->size[1];
  rc_tensor *g, *gx;
  if (grad_begin(n, gout[0], &g, &gx)) return -1;
  int red = (int)n->i[0];
  xent_grad_job j = {.x = rc_data(x),
                     .t = rc_data(t),
                     .lse = rc_data(lse),
                     .g = rc_data(g),
                     .w = w ? rc_data(w) : NULL,
                     .o = rc_data(gx),
                     .C = C,
                     .red = red,
                     .soft = (int)n->i[1],
                     .log_probs = (int)n->i[2],
                     .denom = red == RC_REDUCE_MEAN ? n->d[0] : 1.0};
  /* rows shared with the context's helper: each row is one thread's arithmetic, so the
   * split changes no bit (a char-RNN's [1600 x 65]: 0.12 ms on the caller alone beside a
   * spinning helper, 0.07 split, 0.06 on one thread) */
  rc_ctx_rows(n->ctx, xent_grad_rows, &j, R, R * C);
  rc_release(g);
  gin[0] = gx;
  return 0;
}

rc_tensor *rc_cross_entropy(rc_tensor *input, rc_tensor *target, int64_t base, rc_tensor *mask,
                            rc_reduction reduction, int log_probs) {
  rc_ctx *c = input->ctx;
  const char *fn = log_probs ? "nll" : "cross_entropy";
  char s1[160], s2[160], s3[160];
  if (input->ndim < 1)
    return rc_error_null(c, "%s: input must have a class dimension, got a 0-d tensor", fn);
  int64_t C = input->size[input->ndim - 1];
  if (C < 1)
    return rc_error_null(c, "%s: input shape %s has no classes on its last dimension", fn,
                         rc_shape_str(input, s1, sizeof s1));
  if ((int)reduction < RC_REDUCE_NONE || reduction > RC_REDUCE_SUM)
    return rc_error_null(c, "%s: unknown reduction %d", fn, (int)reduction);
  rc_shape rows_shape;
  memset(&rows_shape, 0, sizeof rows_shape);
  rows_shape.ndim = input->ndim - 1;
  for (int i = 0; i + 1 < input->ndim; i++) rows_shape.size[i] = input->size[i];
  rc_shape ts = rc_shape_of(target), is = rc_shape_of(input);
  int soft = rc_shape_eq(&ts, &is);
  if (!soft && !rc_shape_eq(&ts, &rows_shape))
    return rc_error_null(c,
                         "%s: target shape %s does not match input shape %s (expected %s of "
                         "class indices, or %s of probabilities)",
                         fn, rc_shape_str(target, s1, sizeof s1),
                         rc_shape_str(input, s2, sizeof s2),
                         rc_shape_str2(&rows_shape, s3, sizeof s3), s2);
  if (!mask_fits(c, fn, mask, &rows_shape)) return NULL;
  int64_t R = leading(input);
  rc_tensor *x = as_matrix(input, R, C);
  rc_tensor *t = x ? rc_raw_contiguous(target) : NULL;
  rc_tensor *w = t && mask ? rc_raw_contiguous(mask) : NULL;
  rc_tensor *lse = t && (!mask || w) ? rc_empty(c, 1, &R) : NULL;
  int64_t ntmp = 2 * rc_rows_logsumexp_tmp(C);
  rc_tensor *row = lse ? rc_empty(c, 1, &ntmp) : NULL; /* scratch */
  rc_tensor *loss = row ? rc_empty(c, 1, &R) : NULL;
  rc_tensor *y = NULL;
  if (!loss) goto fail;
  const float *xd = rc_data(x), *td = rc_data(t), *wd = w ? rc_data(w) : NULL;
  float *ld = rc_data(lse), *tmp = rc_data(row), *lossd = rc_data(loss);
  /* validate every (unmasked) class index before computing anything */
  if (!soft) {
    for (int64_t r = 0; r < R; r++) {
      if (wd && wd[r] == 0.0f) continue;
      float v = td[r];
      if (!(v == floorf(v)) || v < (float)base || v >= (float)(base + C)) {
        rc_error(c,
                 "%s: target %g at position %lld is not a class index in [%lld, %lld] (the "
                 "input has %lld classes)",
                 fn, (double)v, (long long)(r + base), (long long)base, (long long)(base + C - 1),
                 (long long)C);
        goto fail;
      }
    }
  }
  if (!log_probs) { /* every row's log-sum-exp first */
    xent_lse_job j = {xd, C, tmp, ld};
    rc_ctx_rows(c, xent_lse_rows, &j, R, R * C);
  }
  double total = 0, denom = 0;
  for (int64_t r = 0; r < R; r++) {
    const float *xr = xd + r * C;
    float wr = wd ? wd[r] : 1.0f;
    denom += wr;
    float l = 0.0f;
    if (log_probs) ld[r] = 0.0f;
    if (wr != 0.0f) {
      if (soft) {
        const float *tr = td + r * C;
        double a = 0;
        for (int64_t k = 0; k < C; k++)
          if (tr[k] != 0.0f) a += (double)tr[k] * ((double)ld[r] - xr[k]);
        l = (float)a;
      } else {
        l = ld[r] - xr[(int64_t)td[r] - base];
      }
      l *= wr;
    }
    lossd[r] = l;
    total += l;
  }
  /* the backward reads 0-based indices: rebase in place (t is our own copy or the caller's
   * contiguous tensor, so copy first when it is the caller's) */
  if (!soft && base != 0) {
    rc_tensor *t0 = rc_copy_contiguous(t);
    if (!t0) goto fail;
    rc_release(t);
    t = t0;
    float *d = rc_data(t);
    for (int64_t r = 0; r < R; r++) d[r] = (wd && wd[r] == 0.0f) ? 0.0f : d[r] - (float)base;
  }
  y = xent_result(c, reduction, &rows_shape, lossd, R, total, mask ? denom : (double)R);
  if (!y) goto fail;
  rc_node *n;
  if (rc_record(c, log_probs ? "NllBackward" : "CrossEntropyBackward", xent_backward, &input, 1, &y,
                &n))
    goto fail;
  if (n) {
    rc_node_save(n, 0, x);
    rc_node_save(n, 1, t);
    if (w) rc_node_save(n, 2, w);
    rc_node_save(n, 3, lse);
    n->i[0] = reduction;
    n->i[1] = soft;
    n->i[2] = log_probs;
    n->d[0] = mask ? denom : (double)R;
  }
  goto done;
fail:
  rc_release(y);
  y = NULL;
done:
  rc_release(x);
  rc_release(t);
  rc_release(w);
  rc_release(lse);
  rc_release(row);
  rc_release(loss);
  return y;
}

/* ---- linear + log-softmax + nll, fused ---- */

/* Rows per block of logits: the [rows, V] block (at most 16 MB; fewer, shorter products ran
 * slower) is the only logits memory. */
static int64_t lxent_block(int64_t R, int64_t V) {
  int64_t rb = ((int64_t)1 << 22) / (V > 0 ? V : 1);
  rb = rb < 1 ? 1 : rb;
  return rb < R ? rb : (R > 0 ? R : 1);
}

/* z [n, V] = x [n, D] w^T, a plain product (the bias is added by each row's first pass, while
 * the row is in cache) */
static void lxent_logits(rc_ctx *c, int64_t n, int64_t V, int64_t D, const float *x, const float *w,
                         float *z) {
  gemm(c, 0, 1, n, V, D, x, w, 0.0f, z);
}

/* With reduction "none": saved 0 x [R, D], 1 w [V, D], 2 b [V] or none, 3 target [R]
 * (0-based), 4 weights [R] or none, 5 lse [R]; i[0] reduction; d[0] the mean's denominator;
 * backward recomputes each block of logits, turns it into the block of the logits' gradient
 * in place and multiplies it out. With "mean" or "sum" (i[1] = 1) the loss's gradient is a
 * scalar times one made in forward from the block it already had: saved k is the gradient
 * of input k for an upstream gradient of 1 (NULL where input k needs none). */
static int lxent_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_ctx *c = n->ctx;
  if (n->i[1]) { /* gradients made in forward for an upstream gradient of 1: scale them */
    rc_tensor *g = rc_raw_contiguous(gout[0]);
    if (!g) return -1;
    float gs = rc_data(g)[0];
    rc_release(g);
    for (int k = 0; k < n->n_in; k++) {
      if (!n->next[k].fn || !n->saved[k]) continue;
      rc_tensor *sv = rc_node_saved(n, k);
      if (!sv) return -1; /* the engine releases what gin already holds */
      if (gs == 1.0f) {   /* the usual loss.backward(): the saved gradient itself (read only) */
        rc_retain(sv);
        gin[k] = sv;
        continue;
      }
      rc_tensor *o = rc_copy_contiguous(sv);
      if (!o) return -1;
      rc_k_scale(rc_data(o), rc_numel(o), gs);
      gin[k] = o;
    }
    return 0;
  }
  rc_tensor *x = rc_node_saved(n, 0), *w = rc_node_saved(n, 1), *t = rc_node_saved(n, 3);
  rc_tensor *lse = rc_node_saved(n, 5);
  rc_tensor *b = n->saved[2] ? rc_node_saved(n, 2) : NULL;
  rc_tensor *m = n->saved[4] ? rc_node_saved(n, 4) : NULL;
  if (!x || !w || !t || !lse || (n->saved[2] && !b) || (n->saved[4] && !m)) return -1;
  int64_t R = x->size[0], D = x->size[1], V = w->size[0], RB = lxent_block(R, V);
  int red = (int)n->i[0];
  double denom = red == RC_REDUCE_MEAN ? n->d[0] : 1.0;
  int need_b = n->n_in == 3 && n->next[2].fn;
  int64_t zsize[2] = {RB, V};
  rc_tensor *g = rc_raw_contiguous(gout[0]), *z = g ? rc_empty(c, 2, zsize) : NULL;
  rc_tensor *gx = z && n->next[0].fn ? rc_empty(c, n->in_shape[0].ndim, n->in_shape[0].size) : NULL;
  /* the first block's product writes it (beta 0); no rows, no block: zeros */
  rc_tensor *gw = z && n->next[1].fn ? (R > 0 ? rc_empty : rc_zeros)(c, 2, w->size) : NULL;
  rc_tensor *gb = z && need_b ? rc_zeros(c, 1, &V) : NULL;
  if (!z || (n->next[0].fn && !gx) || (n->next[1].fn && !gw) || (need_b && !gb)) {
    rc_release(g);
    rc_release(z);
    rc_release(gx);
    rc_release(gw);
    rc_release(gb);
    return -1;
  }
  const float *xd = rc_data(x), *wd = rc_data(w), *bd = b ? rc_data(b) : NULL;
  const float *td = rc_data(t), *ld = rc_data(lse), *gd = rc_data(g);
  const float *md = m ? rc_data(m) : NULL;
  float *zd = rc_data(z);
  float *gbd = gb ? rc_data(gb) : NULL;
  for (int64_t r0 = 0; r0 < R; r0 += RB) {
    int64_t nr = R - r0 < RB ? R - r0 : RB;
    lxent_logits(c, nr, V, D, xd + r0 * D, wd, zd);
    for (int64_t i = 0; i < nr; i++) {
      int64_t r = r0 + i;
      float *zr = zd + i * V;
      float wr = md ? md[r] : 1.0f;
      if (wr == 0.0f) {
        memset(zr, 0, (size_t)V * sizeof(float));
        continue;
      }
      float s = (float)((double)(red == RC_REDUCE_NONE ? gd[r] : gd[0]) * wr / denom);
      rc_row_softmax_scaled(zr, bd, ld[r], s, V, gbd); /* s softmax, one pass */
      zr[(int64_t)td[r]] -= s;
      if (gbd) gbd[(int64_t)td[r]] -= s;
    }
    if (gx) gemm(c, 0, 0, nr, D, V, zd, wd, 0.0f, rc_data(gx) + r0 * D);             /* dz w */
    if (gw) gemm(c, 1, 0, V, D, nr, zd, xd + r0 * D, r0 ? 1.0f : 0.0f, rc_data(gw)); /* dz^T x */
  }
  rc_release(g);
  rc_release(z);
  gin[0] = gx;
  gin[1] = gw;
  if (n->n_in == 3) gin[2] = gb;
  return 0;
}

rc_tensor *rc_linear_cross_entropy(rc_tensor *x, rc_tensor *w, rc_tensor *b, rc_tensor *target,
                                   int64_t base, rc_tensor *mask, rc_reduction reduction) {
  rc_ctx *c = x->ctx;
  const char *fn = "linear_cross_entropy";
  char s1[160], s2[160], s3[160];
  if (w->ndim != 2)
    return rc_error_null(c, "%s: weight must be 2-D [classes, in], got shape %s", fn,
                         rc_shape_str(w, s1, sizeof s1));
  if (x->ndim < 1)
    return rc_error_null(c, "%s: input must have at least one dimension, got a 0-d tensor", fn);
  int64_t D = w->size[1], V = w->size[0];
  if (x->size[x->ndim - 1] != D)
    return rc_error_null(c,
                         "%s: input shape %s does not match weight shape %s (%lld vs %lld "
                         "input features)",
                         fn, rc_shape_str(x, s1, sizeof s1), rc_shape_str(w, s2, sizeof s2),
                         (long long)x->size[x->ndim - 1], (long long)D);
  if (V < 1)
    return rc_error_null(c, "%s: weight shape %s has no classes", fn,
                         rc_shape_str(w, s1, sizeof s1));
  if (b && (b->ndim != 1 || b->size[0] != V))
    return rc_error_null(c, "%s: bias shape %s does not match weight shape %s (expected [%lld])",
                         fn, rc_shape_str(b, s3, sizeof s3), rc_shape_str(w, s2, sizeof s2),
                         (long long)V);
  if ((int)reduction < RC_REDUCE_NONE || reduction > RC_REDUCE_SUM)
    return rc_error_null(c, "%s: unknown reduction %d", fn, (int)reduction);
  rc_shape rows_shape;
  memset(&rows_shape, 0, sizeof rows_shape);
  rows_shape.ndim = x->ndim - 1;
  for (int i = 0; i + 1 < x->ndim; i++) rows_shape.size[i] = x->size[i];
  rc_shape ts = rc_shape_of(target);
  if (!rc_shape_eq(&ts, &rows_shape))
    return rc_error_null(c,
                         "%s: target shape %s does not match input shape %s (expected %s of "
                         "class indices)",
                         fn, rc_shape_str(target, s1, sizeof s1), rc_shape_str(x, s2, sizeof s2),
                         rc_shape_str2(&rows_shape, s3, sizeof s3));
  if (!mask_fits(c, fn, mask, &rows_shape)) return NULL;
  int64_t R = leading(x);
  if (R > INT_MAX || D > INT_MAX || V > INT_MAX)
    return rc_error_null(c, "%s: input shape %s with weight %s is too large for BLAS", fn,
                         rc_shape_str(x, s1, sizeof s1), rc_shape_str(w, s2, sizeof s2));
  rc_tensor *inputs[3] = {x, w, b};
  int nin = b ? 3 : 2;
  /* mean and sum: the gradients are made now, while each block of logits exists */
  int pre = reduction != RC_REDUCE_NONE && rc_needs_grad(c, inputs, nin);
  if (rc_charge(c, fn, rc_mac_units((pre ? 3.0 : 1.0) * (double)R * (double)D * (double)V)))
    return NULL;
  int64_t RB = lxent_block(R, V), zsize[2] = {RB, V};
  rc_tensor *gin[3] = {NULL, NULL, NULL};
  rc_tensor *x2 = as_matrix(x, R, D);
  rc_tensor *w2 = x2 ? as_matrix(w, V, D) : NULL;
  rc_tensor *b2 = w2 && b ? rc_raw_contiguous(b) : NULL;
  rc_tensor *t = w2 && (!b || b2) ? rc_copy_contiguous(target) : NULL; /* rebased below */
  rc_tensor *mw = t && mask ? rc_raw_contiguous(mask) : NULL;
  rc_tensor *lse = t && (!mask || mw) ? rc_empty(c, 1, &R) : NULL;
  rc_tensor *loss = lse ? rc_empty(c, 1, &R) : NULL;
  rc_tensor *z = loss ? rc_empty(c, 2, zsize) : NULL;
  rc_tensor *y = NULL;
  if (!z) goto fail;
  if (pre) {
    if (rc_tensor_needs_grad(x) && !(gin[0] = rc_empty(c, x->ndim, x->size))) goto fail;
    /* the first block's product writes it (beta 0); no rows, no block: zeros */
    if (rc_tensor_needs_grad(w) && !(gin[1] = (R > 0 ? rc_empty : rc_zeros)(c, 2, w2->size)))
      goto fail;
    if (b && rc_tensor_needs_grad(b) && !(gin[2] = rc_zeros(c, 1, &V))) goto fail;
  }
  const float *xd = rc_data(x2), *wd = rc_data(w2), *bd = b2 ? rc_data(b2) : NULL;
  const float *md = mw ? rc_data(mw) : NULL;
  float *td = rc_data(t), *ld = rc_data(lse), *lossd = rc_data(loss), *zd = rc_data(z);
  for (int64_t r = 0; r < R; r++) {
    if (md && md[r] == 0.0f) {
      td[r] = 0.0f; /* not checked, never read */
      continue;
    }
    float v = td[r];
    if (!(v == floorf(v)) || v < (float)base || v >= (float)(base + V)) {
      rc_error(c,
               "%s: target %g at position %lld is not a class index in [%lld, %lld] (the "
               "weight has %lld classes)",
               fn, (double)v, (long long)(r + base), (long long)base, (long long)(base + V - 1),
               (long long)V);
      goto fail;
    }
    td[r] = v - (float)base;
  }
  double total = 0, denom = 0;
  for (int64_t r = 0; r < R; r++) denom += md ? md[r] : 1.0f;
  double gscale = reduction == RC_REDUCE_MEAN ? (mask ? denom : (double)R) : 1.0;
  float *gbd = gin[2] ? rc_data(gin[2]) : NULL;
  for (int64_t r0 = 0; r0 < R; r0 += RB) {
    int64_t nr = R - r0 < RB ? R - r0 : RB;
    lxent_logits(c, nr, V, D, xd + r0 * D, wd, zd);
    for (int64_t i = 0; i < nr; i++) {
      int64_t r = r0 + i;
      float *zr = zd + i * V;
      float wr = md ? md[r] : 1.0f;
      /* cross_entropy's steps in three passes over the row while it is in cache: the bias
       * and the maximum, exp(z - max) and its sum, the gradient's scaling */
      float mx = rc_row_bias_max(zr, bd, V);
      if (isinf(mx)) mx = 0.0f; /* all -inf (or an inf): let the arithmetic give inf/nan */
      float zt = zr[(int64_t)td[r]];
      double s = rc_row_exp_sum(zr, mx, V);
      ld[r] = mx + (float)log(s);
      float l = wr != 0.0f ? (ld[r] - zt) * wr : 0.0f;
      lossd[r] = l;
      total += l;
      if (pre) { /* the row of the logits' gradient: (softmax - onehot) wr / denominator */
        float sr = (float)((double)wr / gscale);
        if (wr == 0.0f) {
          memset(zr, 0, (size_t)V * sizeof(float));
        } else {
          rc_row_scale_acc(zr, V, (float)((double)sr / s), gbd);
          zr[(int64_t)td[r]] -= sr;
          if (gbd) gbd[(int64_t)td[r]] -= sr;
        }
      }
    }
    if (gin[0]) gemm(c, 0, 0, nr, D, V, zd, wd, 0.0f, rc_data(gin[0]) + r0 * D); /* dz w */
    if (gin[1]) /* dz^T x, summed over the blocks */
      gemm(c, 1, 0, V, D, nr, zd, xd + r0 * D, r0 ? 1.0f : 0.0f, rc_data(gin[1]));
  }
  y = xent_result(c, reduction, &rows_shape, lossd, R, total, mask ? denom : (double)R);
  if (!y) goto fail;
  rc_node *n;
  if (rc_record(c, "LinearCrossEntropyBackward", lxent_backward, inputs, nin, &y, &n)) goto fail;
  if (n && pre) {
    n->i[1] = 1;
    for (int k = 0; k < nin; k++)
      if (gin[k]) rc_node_save(n, k, gin[k]);
  } else if (n) {
    rc_node_save(n, 0, x2);
    rc_node_save(n, 1, w2);
    if (b2) rc_node_save(n, 2, b2);
    rc_node_save(n, 3, t);
    if (mw) rc_node_save(n, 4, mw);
    rc_node_save(n, 5, lse);
    n->i[0] = reduction;
    n->d[0] = mask ? denom : (double)R;
  }
  goto done;
fail:
  rc_release(y);
  y = NULL;
done:
  for (int k = 0; k < 3; k++) rc_release(gin[k]);
  rc_release(x2);
  rc_release(w2);
  rc_release(b2);
  rc_release(t);
  rc_release(mw);
  rc_release(lse);
  rc_release(loss);
  rc_release(z);
  return y;
}
