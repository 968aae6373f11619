/* Elementwise ops with NumPy broadcasting, their backward passes, and in-place forms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "kernels_math.h"
#include "ops.h"

/* The binary ops come from runtime/ops_binary.h, the unary ones from runtime/ops_unary.h;
 * these expand their columns. */
enum { SAVES_NONE, SAVES_X, SAVES_Y, SAVES_XY, SAVES_XYZ };
#define OP_NAME(NAME, name, ...) #name,
const char *const rc_binop_name[RC_BINOP_COUNT] = {RC_BINARY_OPS(OP_NAME)
                                                       RC_COMPARISON_OPS(OP_NAME)};
const char *const rc_unop_name[RC_UNOP_COUNT] = {RC_UNARY_OPS(OP_NAME)};
#undef OP_NAME

/* the ops with a gradient: the rows of RC_BINARY_OPS, before the comparisons */
#define BIN_ONE(...) +1
enum { BINOP_GRAD_COUNT = 0 RC_BINARY_OPS(BIN_ONE) };
#undef BIN_ONE

/* exp, tanh and sigmoid are the kernel floor's scalar forms: the same bits as its loops */
#define UN_FORWARD(NAME, name, Node, forward, ...)                                                 \
  case RC_##NAME:                                                                                  \
    return (forward);
static inline float unop_apply(rc_unop op, float x) {
  switch (op) {
    RC_UNARY_OPS(UN_FORWARD)
  default:
    return 0;
  }
}
#undef UN_FORWARD

/* The loops. out has the result shape; a and b are read through broadcast strides.
 * out may alias a (in-place ops): each element is read before it is written. One loop per
 * row, with the row's forward. */
#define BIN_ROW(NAME, name, Node, forward, ...)                                                    \
  case RC_##NAME:                                                                                  \
    for (int64_t k = 0; k < n; k++) {                                                              \
      const float x = ap[k * as], y = bp[k * bs];                                                  \
      op_[k * os] = (forward);                                                                     \
    }                                                                                              \
    break;
#define CMP_ROW(NAME, name, forward)                                                               \
  case RC_##NAME:                                                                                  \
    for (int64_t k = 0; k < n; k++) {                                                              \
      const float x = ap[k * as], y = bp[k * bs];                                                  \
      op_[k * os] = (float)(forward);                                                              \
    }                                                                                              \
    break;
static void bin_row(rc_binop op, float *op_, int64_t os, const float *ap, int64_t as,
                    const float *bp, int64_t bs, int64_t n) {
  switch (op) {
    RC_BINARY_OPS(BIN_ROW)
    RC_COMPARISON_OPS(CMP_ROW)
  default:
    break;
  }
}
#undef BIN_ROW
#undef CMP_ROW

static void bin_kernel(rc_binop op, rc_tensor *out, rc_tensor *a, rc_tensor *b) {
  int n = out->ndim;
  int64_t numel = rc_numel(out);
  if (numel == 0) return;
  float *od = out->storage->data;
  const float *ad = a->storage->data, *bd = b->storage->data;
  if (rc_is_contiguous(out) && rc_is_contiguous(a) && rc_same_shape(a, out)) {
    if (rc_is_contiguous(b) && rc_same_shape(b, out)) {
      bin_row(op, od + out->offset, 1, ad + a->offset, 1, bd + b->offset, 1, numel);
      return;
    }
    if (rc_numel(b) == 1) {
      bin_row(op, od + out->offset, 1, ad + a->offset, 1, bd + b->offset, 0, numel);
      return;
    }
  }
  int64_t ast[RC_MAX_DIM], bst[RC_MAX_DIM];
  rc_broadcast_strides(a, n, out->size, ast);
  rc_broadcast_strides(b, n, out->size, bst);
  int64_t idx[RC_MAX_DIM] = {0};
  int64_t inner = n ? out->size[n - 1] : 1;
  int64_t oo = out->offset, ao = a->offset, bo = b->offset;
  for (int64_t done = 0; done < numel; done += inner) {
    bin_row(op, od + oo, n ? out->stride[n - 1] : 1, ad + ao, n ? ast[n - 1] : 0, bd + bo,
            n ? bst[n - 1] : 0, inner);
    for (int d = n - 2; d >= 0; d--) {
      idx[d]++;
      oo += out->stride[d];
      ao += ast[d];
      bo += bst[d];
      if (idx[d] < out->size[d]) break;
      oo -= out->stride[d] * out->size[d];
      ao -= ast[d] * out->size[d];
      bo -= bst[d] * out->size[d];
      idx[d] = 0;
    }
  }
}

/* The contiguous loops: the kernel floor's where the row names one, else the row's forward in
 * a loop of its own. */
#define NO_LOOP NULL
#define UN_CONTIGUOUS(NAME, name, Node, forward, derivative, saves, weight, loop)                  \
  case RC_##NAME: {                                                                                \
    void (*const loop_)(const float *, float *, int64_t) = loop;                                   \
    if (loop_)                                                                                     \
      loop_(x, o, numel);                                                                          \
    else                                                                                           \
      for (int64_t k = 0; k < numel; k++) o[k] = unop_apply(RC_##NAME, x[k]);                      \
    break;                                                                                         \
  }

/* o[k] = op(x[k]) over n contiguous floats */
static void un_run(rc_unop op, float *o, const float *x, int64_t numel) {
  switch (op) {
    RC_UNARY_OPS(UN_CONTIGUOUS)
  default:
    break;
  }
}

/* Contiguous operands in one run; otherwise row by row along the last dimension, each row
 * through the same loop when both rows are contiguous (a narrowed gate block of a Lua cell:
 * [B, H] rows of a [B, 4H] product), else element by element. */
static void un_kernel(rc_unop op, rc_tensor *out, rc_tensor *a) {
  int n = out->ndim;
  int64_t numel = rc_numel(out);
  if (numel == 0) return;
  if (n == 0 || (rc_is_contiguous(out) && rc_is_contiguous(a))) {
    un_run(op, rc_data(out), rc_data(a), numel);
    return;
  }
  int64_t inner = out->size[n - 1], os = out->stride[n - 1], as = a->stride[n - 1];
  float *od = out->storage->data;
  const float *ad = a->storage->data;
  int64_t idx[RC_MAX_DIM] = {0};
  int64_t oo = out->offset, ao = a->offset;
  for (int64_t done = 0; done < numel; done += inner) {
    if (os == 1 && as == 1)
      un_run(op, od + oo, ad + ao, inner);
    else
      for (int64_t k = 0; k < inner; k++) od[oo + k * os] = unop_apply(op, ad[ao + k * as]);
    for (int d = n - 2; d >= 0; d--) {
      idx[d]++;
      oo += out->stride[d];
      ao += a->stride[d];
      if (idx[d] < out->size[d]) break;
      oo -= out->stride[d] * out->size[d];
      ao -= a->stride[d] * out->size[d];
      idx[d] = 0;
    }
  }
}
#undef UN_CONTIGUOUS
#undef NO_LOOP

/* ---- budget ---- */

/* Work units per 16 elements of a kernel (runtime/context.h): 1 for a cheap op; libm's
 * transcendentals and pow take 5 to 20 ns an element, the strided clamp a few. Out-of-place
 * ops are charged 1 for their allocation, in-place ops 1 in inplace_mode; the rest here. */
#define UN_WEIGHT(NAME, name, Node, forward, derivative, saves, weight, loop) weight,
static const int unop_weights[RC_UNOP_COUNT] = {RC_UNARY_OPS(UN_WEIGHT)};
#undef UN_WEIGHT
static int unop_weight(rc_unop op) {
  return unop_weights[op];
}
#define BIN_WEIGHT(NAME, name, Node, forward, grad_x, grad_y, saves, weight, forms) weight,
#define CMP_WEIGHT(NAME, name, forward) 1,
static const int binop_weights[RC_BINOP_COUNT] = {RC_BINARY_OPS(BIN_WEIGHT)
                                                      RC_COMPARISON_OPS(CMP_WEIGHT)};
#undef BIN_WEIGHT
#undef CMP_WEIGHT
static int binop_weight(rc_binop op) {
  return binop_weights[op];
}

static int charge_extra(rc_ctx *c, const char *fn, int64_t n, int weight) {
  return weight > 1 ? rc_charge_elems(c, fn, n * (weight - 1)) : 0;
}

#define CLAMP_WEIGHT 4

/* ---- backward ---- */

/* which binary ops' backward needs the inputs (x, y) and the output (z) */
#define BIN_SAVES(NAME, name, Node, forward, grad_x, grad_y, saves, ...) saves,
static const unsigned char binop_saves[BINOP_GRAD_COUNT] = {RC_BINARY_OPS(BIN_SAVES)};
#undef BIN_SAVES

/* Is the gradient of input i (0: x, 1: y) g itself? Then backward passes g on without a copy
 * (add, sub's x). Read from the row's text: a gradient written `g`. */
#define BIN_GRAD_TEXT(NAME, name, Node, forward, grad_x, grad_y, ...) {#grad_x, #grad_y},
static int grad_is_g(rc_binop op, int i) {
  static const char *const text[BINOP_GRAD_COUNT][2] = {RC_BINARY_OPS(BIN_GRAD_TEXT)};
  return strcmp(text[op][i], "g") == 0;
}
#undef BIN_GRAD_TEXT

/* The rows' gradients over one row of the output: g and z (the output) contiguous, x and y
 * through strides (never read where the row saves nothing: they are then 0); gx or gy NULL
 * where that input needs no gradient. */
#define BIN_GRAD_ROW(NAME, name, Node, forward, grad_x, grad_y, saves, ...)                        \
  case RC_##NAME:                                                                                  \
    for (int64_t k = 0; k < n; k++) {                                                              \
      const float g = gp[k];                                                                       \
      const float x = saves != SAVES_NONE ? xp[k * xs] : 0.0f;                                     \
      const float y = saves != SAVES_NONE ? yp[k * ys] : 0.0f;                                     \
      const float z = saves == SAVES_XYZ ? zp[k] : 0.0f;                                           \
      (void)g, (void)x, (void)y, (void)z;                                                          \
      if (gx) gx[k] = (grad_x);                                                                    \
      if (gy) gy[k] = (grad_y);                                                                    \
    }                                                                                              \
    break;
static void bin_grad_row(rc_binop op, float *gx, float *gy, const float *gp, const float *xp,
                         int64_t xs, const float *yp, int64_t ys, const float *zp, int64_t n) {
  switch (op) {
    RC_BINARY_OPS(BIN_GRAD_ROW)
  default:
    break;
  }
}
#undef BIN_GRAD_ROW

/* gx, gy (either may be NULL) over g's shape, the output's: g and z contiguous, a and b (NULL
 * when not saved) broadcast to it. */
static void bin_grad(rc_binop op, float *gx, float *gy, rc_tensor *g, rc_tensor *a, rc_tensor *b,
                     rc_tensor *z) {
  int64_t numel = rc_numel(g);
  if (numel == 0) return;
  const float *gp = rc_data(g), *zp = z ? rc_data(z) : NULL;
  if (!a) {
    bin_grad_row(op, gx, gy, gp, NULL, 0, NULL, 0, zp, numel);
    return;
  }
  const float *ad = a->storage->data, *bd = b->storage->data;
  if (rc_is_contiguous(a) && rc_same_shape(a, g)) {
    if (rc_is_contiguous(b) && rc_same_shape(b, g)) {
      bin_grad_row(op, gx, gy, gp, ad + a->offset, 1, bd + b->offset, 1, zp, numel);
      return;
    }
    if (rc_numel(b) == 1) {
      bin_grad_row(op, gx, gy, gp, ad + a->offset, 1, bd + b->offset, 0, zp, numel);
      return;
    }
  }
  int n = g->ndim;
  int64_t ast[RC_MAX_DIM], bst[RC_MAX_DIM];
  rc_broadcast_strides(a, n, g->size, ast);
  rc_broadcast_strides(b, n, g->size, bst);
  int64_t idx[RC_MAX_DIM] = {0};
  int64_t inner = n ? g->size[n - 1] : 1;
  int64_t ao = a->offset, bo = b->offset;
  for (int64_t done = 0; done < numel; done += inner) {
    bin_grad_row(op, gx ? gx + done : NULL, gy ? gy + done : NULL, gp + done, ad + ao,
                 n ? ast[n - 1] : 0, bd + bo, n ? bst[n - 1] : 0, zp ? zp + done : NULL, inner);
    for (int d = n - 2; d >= 0; d--) {
      idx[d]++;
      ao += ast[d];
      bo += bst[d];
      if (idx[d] < g->size[d]) break;
      ao -= ast[d] * g->size[d];
      bo -= bst[d] * g->size[d];
      idx[d] = 0;
    }
  }
}

static int binary_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_binop op = (rc_binop)n->i[0];
  int saves = binop_saves[op];
  rc_tensor *a = NULL, *b = NULL, *z = NULL;
  if (saves != SAVES_NONE && (!(a = rc_node_saved(n, 0)) || !(b = rc_node_saved(n, 1)))) return -1;
  if (saves == SAVES_XYZ && !(z = rc_node_saved(n, 2))) return -1;
  rc_tensor *g = gout[0];
  rc_tensor *full[2] = {NULL, NULL}; /* the inputs' gradients over the output's shape */
  int loop[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    if (!n->next[i].fn) continue;
    if (grad_is_g(op, i)) {
      full[i] = g;
      rc_retain(g);
    } else {
      loop[i] = 1;
    }
  }
  int rc = 0;
  if (loop[0] || loop[1]) {
    rc_tensor *gc = rc_raw_contiguous(g), *zc = z ? rc_raw_contiguous(z) : NULL;
    for (int i = 0; i < 2; i++)
      if (loop[i] && gc) full[i] = rc_empty_like(gc);
    if (!gc || (z && !zc) || (loop[0] && !full[0]) || (loop[1] && !full[1]) ||
        charge_extra(n->ctx, rc_binop_name[op], rc_numel(gc), binop_weight(op)))
      rc = -1;
    else
      bin_grad(op, loop[0] ? rc_data(full[0]) : NULL, loop[1] ? rc_data(full[1]) : NULL, gc, a, b,
               zc);
    rc_release(gc);
    rc_release(zc);
  }
  for (int i = 0; i < 2 && !rc; i++) {
    if (!n->next[i].fn) continue;
    gin[i] = rc_sum_to_shape(full[i], &n->in_shape[i]);
    if (!gin[i]) rc = -1;
  }
  rc_release(full[0]);
  rc_release(full[1]);
  return rc;
}

rc_tensor *rc_binary(rc_binop op, rc_tensor *a, rc_tensor *b) {
  rc_ctx *c = a->ctx;
  if ((unsigned)op >= RC_BINOP_COUNT) return rc_error_null(c, "binary: unknown op %d", (int)op);
  rc_tensor *out;
  if (rc_same_shape(a, b)) {
    out = rc_empty(c, a->ndim, a->size);
  } else {
    rc_shape sa = rc_shape_of(a), sb = rc_shape_of(b), so;
    if (rc_broadcast_shape(c, rc_binop_name[op], &sa, &sb, &so)) return NULL;
    out = rc_empty(c, so.ndim, so.size);
  }
  if (!out) return NULL;
  if (charge_extra(c, rc_binop_name[op], rc_numel(out), binop_weight(op))) {
    rc_release(out);
    return NULL;
  }
  bin_kernel(op, out, a, b);
  if ((int)op >= BINOP_GRAD_COUNT) return out; /* comparisons are not differentiable */
  rc_tensor *ins[2] = {a, b};
  rc_node *n;
  if (rc_record(c, "BinaryBackward", binary_backward, ins, 2, &out, &n)) return NULL;
  if (n) {
#define BIN_NODE(NAME, name, Node, ...) #Node "Backward",
    static const char *const names[BINOP_GRAD_COUNT] = {RC_BINARY_OPS(BIN_NODE)};
#undef BIN_NODE
    n->name = names[op];
    n->i[0] = op;
    if (binop_saves[op] != SAVES_NONE) {
      rc_node_save(n, 0, a);
      rc_node_save(n, 1, b);
    }
    if (binop_saves[op] == SAVES_XYZ) rc_node_save(n, 2, out);
  }
  return out;
}

rc_tensor *rc_binary_scalar(rc_binop op, rc_tensor *a, float s, int scalar_first) {
  rc_tensor *st = rc_scalar(a->ctx, s);
  if (!st) return NULL;
  rc_tensor *r = scalar_first ? rc_binary(op, st, a) : rc_binary(op, a, st);
  rc_release(st);
  return r;
}

/* g * f'(x) in one loop per op; xt is the input, yt the output (NULL where the row's saves
 * leaves them out: its x or y is then 0). */
#define UN_BACKWARD(NAME, name, Node, forward, derivative, saves, weight, loop)                    \
  case RC_##NAME:                                                                                  \
    for (int64_t k = 0; k < n; k++) {                                                              \
      const float x = saves == SAVES_X ? xp[k] : 0.0f, y = saves == SAVES_Y ? yp[k] : 0.0f;        \
      (void)x, (void)y;                                                                            \
      float d = (derivative);                                                                      \
      o[k] = gp[k] * d;                                                                            \
    }                                                                                              \
    break;
static rc_tensor *unary_grad(rc_unop op, rc_tensor *g, rc_tensor *xt, rc_tensor *yt) {
  rc_tensor *gc = rc_raw_contiguous(g);
  rc_tensor *xc = xt ? rc_raw_contiguous(xt) : NULL;
  rc_tensor *yc = yt ? rc_raw_contiguous(yt) : NULL;
  rc_tensor *r = gc ? rc_empty_like(gc) : NULL;
  if (!r || (xt && !xc) || (yt && !yc)) {
    rc_release(gc);
    rc_release(xc);
    rc_release(yc);
    rc_release(r);
    return NULL;
  }
  int64_t n = rc_numel(r);
  float *o = rc_data(r);
  const float *gp = rc_data(gc), *xp = xc ? rc_data(xc) : NULL, *yp = yc ? rc_data(yc) : NULL;
  switch (op) {
    RC_UNARY_OPS(UN_BACKWARD)
  default:
    break;
  }
  rc_release(gc);
  rc_release(xc);
  rc_release(yc);
  return r;
}
#undef UN_BACKWARD

/* which ops' backward needs the input (x) or the output (y) */
#define UN_SAVES(NAME, name, Node, forward, derivative, saves, weight, loop) saves,
static const unsigned char unop_saves[RC_UNOP_COUNT] = {RC_UNARY_OPS(UN_SAVES)};
#undef UN_SAVES
static int needs_x(rc_unop op) {
  return unop_saves[op] == SAVES_X;
}
static int needs_y(rc_unop op) {
  return unop_saves[op] == SAVES_Y;
}

static int unary_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_unop op = (rc_unop)n->i[0];
  rc_tensor *x = NULL, *y = NULL;
  if (needs_x(op) && !(x = rc_node_saved(n, 0))) return -1;
  if (needs_y(op) && !(y = rc_node_saved(n, 1))) return -1;
  gin[0] = unary_grad(op, gout[0], x, y);
  return gin[0] ? 0 : -1;
}

rc_tensor *rc_unary(rc_unop op, rc_tensor *a) {
  rc_ctx *c = a->ctx;
  if ((unsigned)op >= RC_UNOP_COUNT) return rc_error_null(c, "unary: unknown op %d", (int)op);
  if (charge_extra(c, rc_unop_name[op], rc_numel(a), unop_weight(op))) return NULL;
  rc_tensor *out = rc_empty_like(a);
  if (!out) return NULL;
  un_kernel(op, out, a);
  rc_node *n;
  if (rc_record(c, "UnaryBackward", unary_backward, &a, 1, &out, &n)) return NULL;
  if (n) {
#define UN_NODE(NAME, name, Node, ...) #Node "Backward",
    static const char *const names[RC_UNOP_COUNT] = {RC_UNARY_OPS(UN_NODE)};
#undef UN_NODE
    n->name = names[op];
    n->i[0] = op;
    if (needs_x(op)) rc_node_save(n, 0, a);
    if (needs_y(op)) rc_node_save(n, 1, out);
  }
  return out;
}

/* ---- clamp and where ---- */

static int clamp_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *x = rc_node_saved(n, 0);
  if (!x) return -1;
  rc_tensor *gc = rc_raw_contiguous(gout[0]), *xc = rc_raw_contiguous(x);
  rc_tensor *r = gc ? rc_empty_like(gc) : NULL;
  if (!r || !xc) {
    rc_release(gc);
    rc_release(xc);
    rc_release(r);
    return -1;
  }
  float lo = (float)n->d[0], hi = (float)n->d[1];
  const float *g = rc_data(gc), *xp = rc_data(xc);
  float *o = rc_data(r);
  for (int64_t k = 0, m = rc_numel(r); k < m; k++)
    o[k] = ((isnan(lo) || xp[k] >= lo) && (isnan(hi) || xp[k] <= hi)) ? g[k] : 0.0f;
  rc_release(gc);
  rc_release(xc);
  gin[0] = r;
  return 0;
}

static void clamp_kernel(rc_tensor *out, rc_tensor *a, float lo, float hi) {
  int64_t numel = rc_numel(out);
  int64_t idx[RC_MAX_DIM] = {0};
  for (int64_t k = 0; k < numel; k++) {
    float v = *rc_ptr(a, idx);
    if (!isnan(lo) && v < lo) v = lo;
    if (!isnan(hi) && v > hi) v = hi;
    *rc_ptr(out, idx) = v;
    for (int d = out->ndim - 1; d >= 0; d--) {
      if (++idx[d] < out->size[d]) break;
      idx[d] = 0;
    }
  }
}

rc_tensor *rc_clamp(rc_tensor *a, float lo, float hi) {
  rc_ctx *c = a->ctx;
  if (!isnan(lo) && !isnan(hi) && lo > hi)
    return rc_error_null(c, "clamp: min %g is greater than max %g", (double)lo, (double)hi);
  if (charge_extra(c, "clamp", rc_numel(a), CLAMP_WEIGHT)) return NULL;
  rc_tensor *out = rc_empty_like(a);
  if (!out) return NULL;
  clamp_kernel(out, a, lo, hi);
  rc_node *n;
  if (rc_record(c, "ClampBackward", clamp_backward, &a, 1, &out, &n)) return NULL;
  if (n) {
    n->d[0] = lo;
    n->d[1] = hi;
    rc_node_save(n, 0, a);
  }
  return out;
}

static int where_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *cond = rc_node_saved(n, 0);
  if (!cond) return -1;
  rc_tensor *zero = rc_scalar(n->ctx, 0.0f);
  if (!zero) return -1;
  int rc = 0;
  for (int k = 1; k <= 2 && !rc; k++) {
    if (!n->next[k].fn) continue;
    rc_tensor *full = k == 1 ? rc_where(cond, gout[0], zero) : rc_where(cond, zero, gout[0]);
    gin[k] = full ? rc_sum_to_shape(full, &n->in_shape[k]) : NULL;
    if (!gin[k]) rc = -1;
    rc_release(full);
  }
  rc_release(zero);
  return rc;
}

rc_tensor *rc_where(rc_tensor *cond, rc_tensor *a, rc_tensor *b) {
  rc_ctx *c = a->ctx;
  rc_shape sc = rc_shape_of(cond), sa = rc_shape_of(a), sb = rc_shape_of(b), s1, so;
  if (rc_broadcast_shape(c, "where", &sa, &sb, &s1) ||
      rc_broadcast_shape(c, "where", &sc, &s1, &so))
    return NULL;
  rc_tensor *out = rc_empty(c, so.ndim, so.size);
  if (!out) return NULL;
  int64_t cst[RC_MAX_DIM], ast[RC_MAX_DIM], bst[RC_MAX_DIM];
  rc_broadcast_strides(cond, so.ndim, so.size, cst);
  rc_broadcast_strides(a, so.ndim, so.size, ast);
  rc_broadcast_strides(b, so.ndim, so.size, bst);
  int64_t numel = rc_numel(out), idx[RC_MAX_DIM] = {0};
  float *o = rc_data(out);
  for (int64_t k = 0; k < numel; k++) {
    int64_t co = cond->offset, ao = a->offset, bo = b->offset;
    for (int d = 0; d < so.ndim; d++) {
      co += idx[d] * cst[d];
      ao += idx[d] * ast[d];
      bo += idx[d] * bst[d];
    }
    o[k] = cond->storage->data[co] != 0.0f ? a->storage->data[ao] : b->storage->data[bo];
    for (int d = so.ndim - 1; d >= 0; d--) {
      if (++idx[d] < so.size[d]) break;
      idx[d] = 0;
    }
  }
  rc_tensor *ins[3] = {NULL, a, b}; /* the condition never gets a gradient */
  rc_node *n;
  if (rc_record(c, "WhereBackward", where_backward, ins, 3, &out, &n)) return NULL;
  if (n) rc_node_save(n, 0, cond);
  return out;
}

/* ---- in place ---- */

/* Checks that the in-place op may run; returns 1 if it must go through autograd. Every
 * in-place op passes here first, so this is where they charge the budget for the elements of
 * a they write (they allocate nothing, which is what out-of-place ops are charged for). */
static int inplace_mode(rc_tensor *a, rc_tensor *b, const char *fn, int weight) {
  rc_ctx *c = a->ctx;
  if (rc_charge_elems(c, fn, rc_numel(a) * weight)) return -1;
  if (!c->grad_enabled) return 0;
  int need = rc_tensor_needs_grad(a) || (b && rc_tensor_needs_grad(b));
  if (!need) return 0;
  if (rc_check_inplace(a, fn)) return -1;
  if (a->is_view)
    return rc_error(c,
                    "%s: in-place operation on a view of a tensor while recording "
                    "gradients; clone() the view first or use recur.no_grad",
                    fn);
  if (a->storage->grad_views)
    return rc_error(c,
                    "%s: in-place operation on a tensor whose views take part in autograd "
                    "(their history would go stale); clone() it first or use recur.no_grad",
                    fn);
  return 1;
}

/* Moves r's value and history into a (the in-place result computed out of place). */
static int adopt(rc_tensor *a, rc_tensor *r) {
  rc_copy_into(a, r);
  rc_bump_version(a);
  if (r->grad_fn) {
    rc_node_retain(r->grad_fn);
    if (a->grad_fn) rc_node_release(a->grad_fn);
    a->grad_fn = r->grad_fn;
    a->output_nr = r->output_nr;
    /* the node's output shape is a's shape already (checked by the callers) */
  }
  rc_release(r);
  return 0;
}

static int check_inplace_shape(rc_tensor *a, rc_tensor *b, const char *fn) {
  rc_shape sa = rc_shape_of(a), sb = rc_shape_of(b), so;
  if (rc_broadcast_shape(a->ctx, fn, &sa, &sb, &so)) return -1;
  if (!rc_shape_eq(&so, &sa)) {
    char s1[128], s2[128];
    return rc_error(a->ctx, "%s: in-place result would have shape %s, not the target's %s", fn,
                    rc_shape_str2(&so, s1, sizeof s1), rc_shape_str2(&sa, s2, sizeof s2));
  }
  return 0;
}

int rc_binary_(rc_binop op, rc_tensor *a, rc_tensor *b) {
  const char *fn = rc_binop_name[op];
  if (check_inplace_shape(a, b, fn)) return -1;
  int mode = inplace_mode(a, b, fn, binop_weight(op));
  if (mode < 0) return -1;
  if (mode == 1) {
    rc_tensor *r = rc_binary(op, a, b);
    return r ? adopt(a, r) : -1;
  }
  /* b may share memory with a in a different layout: read it from a copy */
  rc_tensor *bb = b;
  if (b->storage == a->storage && !(b->offset == a->offset && rc_same_shape(a, b) &&
                                    memcmp(a->stride, b->stride, sizeof(int64_t) * a->ndim) == 0)) {
    bb = rc_copy_contiguous(b);
    if (!bb) return -1;
  } else {
    rc_retain(bb);
  }
  bin_kernel(op, a, a, bb);
  rc_release(bb);
  rc_bump_version(a);
  return 0;
}

int rc_binary_scalar_(rc_binop op, rc_tensor *a, float s) {
  rc_tensor *st = rc_scalar(a->ctx, s);
  if (!st) return -1;
  int r = rc_binary_(op, a, st);
  rc_release(st);
  return r;
}

int rc_unary_(rc_unop op, rc_tensor *a) {
  int mode = inplace_mode(a, NULL, rc_unop_name[op], unop_weight(op));
  if (mode < 0) return -1;
  if (mode == 1) {
    rc_tensor *r = rc_unary(op, a);
    return r ? adopt(a, r) : -1;
  }
  un_kernel(op, a, a);
  rc_bump_version(a);
  return 0;
}

int rc_clamp_(rc_tensor *a, float lo, float hi) {
  int mode = inplace_mode(a, NULL, "clamp_", CLAMP_WEIGHT);
  if (mode < 0) return -1;
  if (mode == 1) {
    rc_tensor *r = rc_clamp(a, lo, hi);
    return r ? adopt(a, r) : -1;
  }
  if (!isnan(lo) && !isnan(hi) && lo > hi)
    return rc_error(a->ctx, "clamp_: min %g is greater than max %g", (double)lo, (double)hi);
  clamp_kernel(a, a, lo, hi);
  rc_bump_version(a);
  return 0;
}

int rc_fill_(rc_tensor *a, float v) {
  int mode = inplace_mode(a, NULL, "fill_", 1);
  if (mode < 0) return -1;
  rc_tensor *s = rc_scalar(a->ctx, v);
  if (!s) return -1;
  rc_copy_into(a, s);
  rc_release(s);
  rc_bump_version(a);
  if (mode == 1 && a->grad_fn) { /* a no longer depends on its history */
    rc_node_release(a->grad_fn);
    a->grad_fn = NULL;
  }
  return 0;
}

static int copy_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  if (n->next[1].fn) {
    gin[1] = rc_sum_to_shape(gout[0], &n->in_shape[1]);
    if (!gin[1]) return -1;
  }
  return 0;
}

int rc_copy_(rc_tensor *dst, rc_tensor *src) {
  if (check_inplace_shape(dst, src, "copy_")) return -1;
  int mode = inplace_mode(dst, src, "copy_", 1);
  if (mode < 0) return -1;
  rc_tensor *s = src;
  if (src->storage == dst->storage) {
    s = rc_copy_contiguous(src);
    if (!s) return -1;
  } else {
    rc_retain(s);
  }
  rc_copy_into(dst, s);
  rc_release(s);
  rc_bump_version(dst);
  if (mode == 1) {
    /* dst's new history: only src matters (dst's old value was overwritten) */
    rc_node *old = dst->grad_fn;
    int rq = dst->requires_grad;
    dst->grad_fn = NULL;
    dst->requires_grad = 0;
    rc_tensor *ins[2] = {dst, src};
    rc_node *n = rc_node_new(dst->ctx, "CopyBackward", copy_backward, ins, 2, 1);
    dst->requires_grad = rq;
    if (!n) {
      dst->grad_fn = old;
      return -1;
    }
    if (old) rc_node_release(old);
    rc_node_set_output(n, 0, dst);
    rc_node_release(n);
  }
  return 0;
}

int rc_axpy_(rc_tensor *a, float alpha, rc_tensor *b) {
  if (check_inplace_shape(a, b, "axpy_")) return -1;
  int mode = inplace_mode(a, b, "axpy_", 1);
  if (mode < 0) return -1;
  if (mode == 1) {
    rc_tensor *sb = rc_binary_scalar(RC_MUL, b, alpha, 0);
    if (!sb) return -1;
    rc_tensor *r = rc_binary(RC_ADD, a, sb);
    rc_release(sb);
    return r ? adopt(a, r) : -1;
  }
  if (rc_is_contiguous(a) && rc_is_contiguous(b) && rc_same_shape(a, b) &&
      a->storage != b->storage) {
    float *x = rc_data(a);
    const float *y = rc_data(b);
    for (int64_t k = 0, n = rc_numel(a); k < n; k++) x[k] += alpha * y[k];
  } else {
    rc_tensor *sb = rc_binary_scalar(RC_MUL, b, alpha, 0);
    if (!sb) return -1;
    rc_add_into(a, sb);
    rc_release(sb);
  }
  rc_bump_version(a);
  return 0;
}
