/* Joining, splitting and indexing: cat, stack, split, chunk, gather, index_select,
 * scatter_add, masked_fill, one_hot, and the conversion of host index tensors.
 *
 * Index tensors are float tensors holding integer values. Every op checks every index
 * (integral, in range) before it allocates or writes anything.
 *
 * split and chunk return views that share storage with their input (like PyTorch). When
 * the input needs grad, all pieces are the outputs of one SplitBackward node whose
 * backward places each piece's gradient into its slice of the input's gradient. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "ops.h"

/* ---- helpers ---- */

/* Advances a multi-index over `size`; returns 0 once it wraps around. */
static int next_index(int64_t *idx, const int64_t *size, int ndim) {
  for (int d = ndim - 1; d >= 0; d--) {
    if (++idx[d] < size[d]) return 1;
    idx[d] = 0;
  }
  return 0;
}

/* Raw view of t restricted to [start, start + len) along dim (no autograd). */
static rc_tensor *narrow_raw(rc_tensor *t, int dim, int64_t start, int64_t len) {
  int64_t size[RC_MAX_DIM];
  memcpy(size, t->size, sizeof size);
  size[dim] = len;
  return rc_raw_view(t, t->ndim, size, t->stride, t->offset + start * t->stride[dim]);
}

/* Raw view of t at position i along dim, that dim removed (no autograd). */
static rc_tensor *select_raw(rc_tensor *t, int dim, int64_t i) {
  int64_t size[RC_MAX_DIM], stride[RC_MAX_DIM];
  int k = 0;
  for (int d = 0; d < t->ndim; d++) {
    if (d == dim) continue;
    size[k] = t->size[d];
    stride[k] = t->stride[d];
    k++;
  }
  return rc_raw_view(t, t->ndim - 1, size, stride, t->offset + i * t->stride[dim]);
}

/* "[i, j]": the position idx in the given base, written like a shape. */
static char *pos_str(const int64_t *idx, int ndim, int64_t base, char *buf, size_t len) {
  rc_shape s;
  memset(&s, 0, sizeof s);
  s.ndim = ndim;
  for (int i = 0; i < ndim; i++) s.size[i] = idx[i] + base;
  return rc_shape_str2(&s, buf, len);
}

/* Checks that every value of index is an integer in [base, base + n) (n < 0: no upper
 * bound). Messages report values and positions in the index's own base. */
static int check_indices(rc_ctx *c, const char *fn, rc_tensor *index, int64_t base, int64_t n,
                         const char *what) {
  int64_t numel = rc_numel(index);
  int64_t idx[RC_MAX_DIM] = {0};
  char ps[160];
  for (int64_t k = 0; k < numel; k++) {
    float v = *rc_ptr(index, idx);
    if (!isfinite(v) || v != floorf(v))
      return rc_error(c, "%s: index %.9g at position %s is not an integer", fn, (double)v,
                      pos_str(idx, index->ndim, base, ps, sizeof ps));
    if (v < (double)base || (n >= 0 && (double)v >= (double)base + (double)n)) {
      if (n > 0)
        return rc_error(c,
                        "%s: index %.15g at position %s is out of range for %s (valid: "
                        "%lld..%lld)",
                        fn, (double)v, pos_str(idx, index->ndim, base, ps, sizeof ps), what,
                        (long long)base, (long long)(n - 1 + base)); /* base + n overflows */
      if (n == 0)
        return rc_error(c,
                        "%s: index %.15g at position %s is out of range for %s (which is "
                        "empty)",
                        fn, (double)v, pos_str(idx, index->ndim, base, ps, sizeof ps), what);
      return rc_error(c, "%s: index %.15g at position %s is out of range (must be at least %lld)",
                      fn, (double)v, pos_str(idx, index->ndim, base, ps, sizeof ps),
                      (long long)base);
    }
    next_index(idx, index->size, index->ndim);
  }
  return 0;
}

/* "dimension 2 of size 3" (1-based dimension, like every message) */
static const char *dim_what(char *buf, size_t len, int dim, int64_t size) {
  snprintf(buf, len, "dimension %d of size %lld", dim + 1, (long long)size);
  return buf;
}

rc_tensor *rc_index_rebase(rc_tensor *index, int64_t base, int64_t n, const char *fn,
                           const char *what) {
  if (check_indices(index->ctx, fn, index, base, n, what ? what : "the indexed dimension"))
    return NULL;
  rc_tensor *r = rc_copy_contiguous(index);
  if (!r) return NULL;
  float *d = rc_data(r);
  for (int64_t k = 0, m = rc_numel(r); k < m; k++) d[k] = (float)((double)d[k] - (double)base);
  return r;
}

static int64_t index_at(rc_tensor *index, const int64_t *idx) {
  return (int64_t)*rc_ptr(index, idx);
}

/* Records the node of an op on ins[0..n) that made out along dim d, saving `saved` (a tensor
 * its backward needs, or NULL) in slot 0: out, or NULL after releasing it. */
static rc_tensor *record_dim(rc_ctx *c, const char *name, rc_backward_fn bw, rc_tensor *const *ins,
                             int n, rc_tensor *out, int d, rc_tensor *saved) {
  rc_node *node;
  if (rc_record(c, name, bw, ins, n, &out, &node)) return NULL;
  if (node) {
    node->i[0] = d;
    if (saved) rc_node_save(node, 0, saved);
  }
  return out;
}

/* ---- cat and stack ---- */

/* Piece k of t along dim: the slice [off, off + len) (cat) or, for stack, position k with
 * the dimension removed (no autograd). */
static rc_tensor *piece_raw(rc_tensor *t, int dim, int stack, int k, int64_t off, int64_t len) {
  return stack ? select_raw(t, dim, k) : narrow_raw(t, dim, off, len);
}

/* Each input's gradient: a contiguous copy of its piece of the output's gradient. */
static int join_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin, int stack) {
  int dim = (int)n->i[0];
  int64_t off = 0;
  for (int k = 0; k < n->n_in; k++) {
    int64_t len = stack ? 1 : n->in_shape[k].size[dim];
    if (n->next[k].fn) {
      rc_tensor *v = piece_raw(gout[0], dim, stack, k, off, len);
      gin[k] = v ? rc_copy_contiguous(v) : NULL;
      rc_release(v);
      if (!gin[k]) return -1;
    }
    off += len;
  }
  return 0;
}

static int cat_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  return join_backward(n, gout, gin, 0);
}

static int stack_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  return join_backward(n, gout, gin, 1);
}

/* Copies each ts[k] into its piece of out (a new tensor) along d and records the node: out,
 * or NULL after releasing it. */
static rc_tensor *join_finish(rc_ctx *c, rc_tensor *const *ts, int n, rc_tensor *out, int d,
                              int stack) {
  if (!out) return NULL;
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    int64_t len = stack ? 1 : ts[k]->size[d];
    rc_tensor *v = piece_raw(out, d, stack, k, off, len);
    if (!v) {
      rc_release(out);
      return NULL;
    }
    rc_copy_into(v, ts[k]);
    rc_release(v);
    off += len;
  }
  return stack ? record_dim(c, "StackBackward", stack_backward, ts, n, out, d, NULL)
               : record_dim(c, "CatBackward", cat_backward, ts, n, out, d, NULL);
}

static int check_list(rc_ctx *c, const char *fn, rc_tensor *const *ts, int n) {
  if (!ts || n < 1)
    return rc_error(c, "%s: expected a non-empty list of tensors, got %d tensors", fn,
                    n < 0 ? 0 : n);
  for (int k = 0; k < n; k++)
    if (!ts[k]) return rc_error(c, "%s: tensor %d of the list is missing (NULL)", fn, k + 1);
  return 0;
}

rc_tensor *rc_cat(rc_tensor *const *ts, int n, int dim) {
  if (!ts || n < 1 || !ts[0]) return NULL; /* no context to report into: see check_list */
  rc_ctx *c = ts[0]->ctx;
  if (check_list(c, "cat", ts, n)) return NULL;
  rc_tensor *first = ts[0];
  if (first->ndim == 0)
    return rc_error_null(c, "cat: tensor 1 is 0-d (a scalar); cat needs tensors with at "
                            "least one dimension");
  int d;
  if (rc_wrap_dim(c, "cat", dim, first->ndim, &d)) return NULL;
  int64_t size[RC_MAX_DIM];
  memcpy(size, first->size, sizeof size);
  size[d] = 0;
  char s1[128], s2[128];
  for (int k = 0; k < n; k++) {
    rc_tensor *t = ts[k];
    int ok = t->ndim == first->ndim;
    for (int i = 0; ok && i < t->ndim; i++)
      if (i != d && t->size[i] != first->size[i]) ok = 0;
    if (!ok)
      return rc_error_null(c,
                           "cat: tensor %d has shape %s but tensor 1 has shape %s; shapes "
                           "must match except in dimension %d",
                           k + 1, rc_shape_str(t, s1, sizeof s1),
                           rc_shape_str(first, s2, sizeof s2), d + 1);
    size[d] += t->size[d];
    if (size[d] > RC_MAX_NUMEL)
      return rc_error_null(c, "cat: result is too large along dimension %d", d + 1);
  }
  return join_finish(c, ts, n, rc_empty(c, first->ndim, size), d, 0);
}

rc_tensor *rc_stack(rc_tensor *const *ts, int n, int dim) {
  if (!ts || n < 1 || !ts[0]) return NULL; /* no context to report into */
  rc_ctx *c = ts[0]->ctx;
  if (check_list(c, "stack", ts, n)) return NULL;
  rc_tensor *first = ts[0];
  char s1[128], s2[128];
  for (int k = 1; k < n; k++)
    if (!rc_same_shape(ts[k], first))
      return rc_error_null(c,
                           "stack: tensor %d has shape %s but tensor 1 has shape %s; "
                           "stack needs tensors of equal shape",
                           k + 1, rc_shape_str(ts[k], s1, sizeof s1),
                           rc_shape_str(first, s2, sizeof s2));
  if (first->ndim + 1 > RC_MAX_DIM)
    return rc_error_null(c,
                         "stack: the result would have %d dimensions, at most %d are "
                         "supported",
                         first->ndim + 1, RC_MAX_DIM);
  int d;
  if (rc_wrap_dim(c, "stack", dim, first->ndim + 1, &d)) return NULL;
  int64_t size[RC_MAX_DIM];
  for (int i = 0, j = 0; i <= first->ndim; i++) size[i] = i == d ? n : first->size[j++];
  return join_finish(c, ts, n, rc_empty(c, first->ndim + 1, size), d, 1);
}

/* ---- split and chunk: views sharing storage ---- */

static int split_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  int dim = (int)n->i[0];
  rc_tensor *g = rc_empty(n->ctx, n->in_shape[0].ndim, n->in_shape[0].size);
  if (!g) return -1;
  int64_t off = 0;
  for (int k = 0; k < n->n_out; k++) {
    int64_t len = n->out_shape[k].size[dim];
    rc_tensor *v = narrow_raw(g, dim, off, len);
    if (!v) {
      rc_release(g);
      return -1;
    }
    rc_copy_into(v, gout[k]);
    rc_release(v);
    off += len;
  }
  gin[0] = g;
  return 0;
}

/* More pieces than this is surely a mistake (each is a tensor header). */
#define MAX_PIECES (1 << 20)

/* Pieces k = 0..count-1 of length `piece` (clipped at the end) along dim. */
static int split_impl(rc_tensor *a, int dim, int64_t piece, int64_t count, const char *name,
                      rc_tensor ***out, int *n) {
  rc_ctx *c = a->ctx;
  if (count > MAX_PIECES)
    return rc_error(c, "%s: %lld pieces is too many (at most %d)", name, (long long)count,
                    MAX_PIECES);
  rc_tensor **ps = calloc((size_t)count, sizeof *ps);
  if (!ps) return rc_error(c, "%s: out of memory for %lld pieces", name, (long long)count);
  int64_t total = a->size[dim];
  for (int64_t k = 0; k < count; k++) {
    int64_t start = k * piece < total ? k * piece : total;
    int64_t len = total - start < piece ? total - start : piece;
    ps[k] = narrow_raw(a, dim, start, len);
    if (!ps[k]) goto fail;
  }
  if (rc_needs_grad(c, &a, 1)) {
    rc_node *node = rc_node_new(c, strcmp(name, "chunk") == 0 ? "ChunkBackward" : "SplitBackward",
                                split_backward, &a, 1, (int)count);
    if (!node) goto fail;
    node->i[0] = dim;
    for (int64_t k = 0; k < count; k++) rc_node_set_output(node, (int)k, ps[k]);
    rc_node_release(node); /* the pieces own it */
  }
  *out = ps;
  *n = (int)count;
  return 0;
fail:
  for (int64_t k = 0; k < count; k++) rc_release(ps[k]);
  free(ps);
  return -1;
}

static int split_prepare(rc_tensor *a, int dim, const char *name, int *d, rc_tensor ***out,
                         int *n) {
  if (out) *out = NULL;
  if (n) *n = 0;
  if (!out || !n) return rc_error(a->ctx, "%s: no place for the result (NULL out or n)", name);
  if (a->ndim == 0) return rc_error(a->ctx, "%s: cannot split a 0-d tensor (a scalar)", name);
  return rc_wrap_dim(a->ctx, name, dim, a->ndim, d);
}

int rc_split(rc_tensor *a, int64_t size, int dim, rc_tensor ***out, int *n) {
  int d;
  if (split_prepare(a, dim, "split", &d, out, n)) return -1;
  if (size < 1)
    return rc_error(a->ctx, "split: split size must be positive, got %lld", (long long)size);
  int64_t total = a->size[d];
  int64_t count = total == 0 ? 1 : total / size + (total % size != 0); /* total + size overflows */
  return split_impl(a, d, size, count, "split", out, n);
}

int rc_chunk(rc_tensor *a, int chunks, int dim, rc_tensor ***out, int *n) {
  int d;
  if (split_prepare(a, dim, "chunk", &d, out, n)) return -1;
  if (chunks < 1)
    return rc_error(a->ctx, "chunk: number of chunks must be positive, got %d", chunks);
  int64_t total = a->size[d];
  if (total == 0) return split_impl(a, d, 0, chunks, "chunk", out, n); /* like PyTorch */
  int64_t piece = (total + chunks - 1) / chunks;
  return split_impl(a, d, piece, (total + piece - 1) / piece, "chunk", out, n);
}

/* ---- gather and scatter_add ---- */

/* For every position p of index, with q = p but q[dim] = index[p]: dst[p] = src[q] (gather),
 * or, with scatter, dst[q] += src[p] (scatter_add). */
static void gather_kernel(rc_tensor *dst, rc_tensor *src, int dim, rc_tensor *index, int scatter) {
  int64_t numel = rc_numel(index);
  int64_t idx[RC_MAX_DIM] = {0}, q[RC_MAX_DIM];
  for (int64_t k = 0; k < numel; k++) {
    memcpy(q, idx, sizeof q);
    q[dim] = index_at(index, idx);
    if (scatter)
      *rc_ptr(dst, q) += *rc_ptr(src, idx);
    else
      *rc_ptr(dst, idx) = *rc_ptr(src, q);
    next_index(idx, index->size, index->ndim);
  }
}

/* t (called name) must have a's number of dimensions. */
static int check_ndim(const char *fn, const char *name, rc_tensor *t, rc_tensor *a) {
  char s1[128], s2[128];
  if (t->ndim == a->ndim) return 0;
  return rc_error(a->ctx, "%s: %s has %d dimensions (shape %s) but the input has %d (shape %s)", fn,
                  name, t->ndim, rc_shape_str(t, s1, sizeof s1), a->ndim,
                  rc_shape_str(a, s2, sizeof s2));
}

/* index must fit inside t (called name, with index's number of dimensions) in every dimension
 * but skip (-1: none). */
static int check_fits(const char *fn, rc_tensor *index, rc_tensor *t, const char *name, int skip) {
  char s1[128], s2[128];
  for (int i = 0; i < t->ndim; i++)
    if (i != skip && index->size[i] > t->size[i])
      return rc_error(t->ctx,
                      "%s: index of shape %s does not fit %s of shape %s in dimension %d "
                      "(%lld > %lld)",
                      fn, rc_shape_str(index, s1, sizeof s1), name, rc_shape_str(t, s2, sizeof s2),
                      i + 1, (long long)index->size[i], (long long)t->size[i]);
  return 0;
}

/* index must have a's number of dims and fit inside a outside dim (and inside src, when
 * given, in every dim); then every value must be a valid position along dim of a. */
static int check_gather_shapes(const char *fn, rc_tensor *a, int dim, rc_tensor *index,
                               rc_tensor *src) {
  char w[96];
  if (check_ndim(fn, "index", index, a) || check_fits(fn, index, a, "the input", dim) ||
      (src && (check_ndim(fn, "src", src, a) || check_fits(fn, index, src, "src", -1))))
    return -1;
  return check_indices(a->ctx, fn, index, 0, a->size[dim],
                       dim_what(w, sizeof w, dim, a->size[dim]));
}

static int index_dim(const char *fn, rc_tensor *a, int dim, int *d) {
  if (a->ndim == 0)
    return rc_error(a->ctx,
                    "%s: argument #1 is 0-d (a scalar); it needs at least one "
                    "dimension",
                    fn);
  return rc_wrap_dim(a->ctx, fn, dim, a->ndim, d);
}

static int gather_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *index = rc_node_saved(n, 0);
  if (!index) return -1;
  rc_tensor *g = rc_zeros(n->ctx, n->in_shape[0].ndim, n->in_shape[0].size);
  if (!g) return -1;
  gather_kernel(g, gout[0], (int)n->i[0], index, 1);
  gin[0] = g;
  return 0;
}

rc_tensor *rc_gather(rc_tensor *a, int dim, rc_tensor *index) {
  rc_ctx *c = a->ctx;
  int d;
  if (!index) return rc_error_null(c, "gather: index is missing (NULL)");
  if (index_dim("gather", a, dim, &d) || check_gather_shapes("gather", a, d, index, NULL))
    return NULL;
  rc_tensor *out = rc_empty(c, index->ndim, index->size);
  if (!out) return NULL;
  gather_kernel(out, a, d, index, 0);
  return record_dim(c, "GatherBackward", gather_backward, &a, 1, out, d, index);
}

static int scatter_add_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  if (n->next[0].fn) {
    rc_retain(gout[0]);
    gin[0] = gout[0];
  }
  if (n->next[1].fn) {
    rc_tensor *index = rc_node_saved(n, 0);
    if (!index) return -1;
    rc_tensor *g = rc_zeros(n->ctx, n->in_shape[1].ndim, n->in_shape[1].size);
    if (!g) return -1;
    gather_kernel(g, gout[0], (int)n->i[0], index, 0); /* zero outside index's extent */
    gin[1] = g;
  }
  return 0;
}

rc_tensor *rc_scatter_add(rc_tensor *a, int dim, rc_tensor *index, rc_tensor *src) {
  rc_ctx *c = a->ctx;
  int d;
  if (!index || !src) return rc_error_null(c, "scatter_add: index or src is missing (NULL)");
  if (index_dim("scatter_add", a, dim, &d) || check_gather_shapes("scatter_add", a, d, index, src))
    return NULL;
  rc_tensor *out = rc_copy_contiguous(a);
  if (!out) return NULL;
  gather_kernel(out, src, d, index, 1);
  rc_tensor *ins[2] = {a, src};
  return record_dim(c, "ScatterAddBackward", scatter_add_backward, ins, 2, out, d, index);
}

/* ---- index_select ---- */

/* For every k, slice index[k] of `indexed` and slice k of `other` along dim: other's slice
 * gets a copy of indexed's (the forward), or, with scatter, indexed's slice gets other's
 * added (the backward). 0 or -1. */
static int index_slices(rc_tensor *indexed, rc_tensor *other, int dim, rc_tensor *index,
                        int scatter) {
  rc_tensor *ic = rc_raw_contiguous(index);
  if (!ic) return -1;
  const float *iv = rc_data(ic);
  int rc = 0;
  if (dim == 0 && rc_is_contiguous(indexed) && rc_is_contiguous(other)) {
    /* whole rows (an embedding's lookup and its gradient): no view per row */
    int64_t row = indexed->size[0] ? rc_numel(indexed) / indexed->size[0] : 0;
    float *a = rc_data(indexed), *o = rc_data(other);
    for (int64_t k = 0, m = rc_numel(ic); k < m; k++) {
      float *ar = a + (int64_t)iv[k] * row, *orow = o + k * row;
      if (scatter)
        rc_k_add(ar, orow, row); /* vectorised (the loop here was scalar: 2x slower at 64) */
      else
        memcpy(orow, ar, (size_t)row * sizeof(float));
    }
    rc_release(ic);
    return 0;
  }
  for (int64_t k = 0, m = rc_numel(ic); k < m && rc == 0; k++) {
    rc_tensor *at = select_raw(indexed, dim, (int64_t)iv[k]);
    rc_tensor *kt = at ? select_raw(other, dim, k) : NULL;
    if (!kt)
      rc = -1;
    else if (scatter)
      rc_add_into(at, kt);
    else
      rc_copy_into(kt, at);
    rc_release(at);
    rc_release(kt);
  }
  rc_release(ic);
  return rc;
}

static int index_select_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *index = rc_node_saved(n, 0);
  if (!index) return -1;
  rc_tensor *g = rc_zeros(n->ctx, n->in_shape[0].ndim, n->in_shape[0].size);
  if (!g || index_slices(g, gout[0], (int)n->i[0], index, 1)) {
    rc_release(g);
    return -1;
  }
  gin[0] = g;
  return 0;
}

rc_tensor *rc_index_select(rc_tensor *a, int dim, rc_tensor *index) {
  rc_ctx *c = a->ctx;
  int d;
  char s1[128], w[96];
  if (!index) return rc_error_null(c, "index_select: index is missing (NULL)");
  if (index_dim("index_select", a, dim, &d)) return NULL;
  if (index->ndim > 1)
    return rc_error_null(c, "index_select: index must be 1-D, got shape %s",
                         rc_shape_str(index, s1, sizeof s1));
  if (check_indices(c, "index_select", index, 0, a->size[d], dim_what(w, sizeof w, d, a->size[d])))
    return NULL;
  int64_t size[RC_MAX_DIM];
  memcpy(size, a->size, sizeof size);
  size[d] = rc_numel(index);
  rc_tensor *out = rc_empty(c, a->ndim, size);
  if (!out || index_slices(a, out, d, index, 0)) {
    rc_release(out);
    return NULL;
  }
  return record_dim(c, "IndexSelectBackward", index_select_backward, &a, 1, out, d, index);
}

/* ---- masked_fill ---- */

/* out[p] = mask[p] != 0 ? v : a[p], mask broadcast to a (backward: a = g, v = 0). */
static void masked_kernel(rc_tensor *out, rc_tensor *a, rc_tensor *mask, float v) {
  int64_t mst[RC_MAX_DIM];
  rc_broadcast_strides(mask, a->ndim, a->size, mst);
  int64_t numel = rc_numel(a), idx[RC_MAX_DIM] = {0};
  const float *md = mask->storage->data;
  for (int64_t k = 0; k < numel; k++) {
    int64_t mo = mask->offset;
    for (int i = 0; i < a->ndim; i++) mo += idx[i] * mst[i];
    *rc_ptr(out, idx) = md[mo] != 0.0f ? v : *rc_ptr(a, idx);
    next_index(idx, a->size, a->ndim);
  }
}

static int masked_fill_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_tensor *mask = rc_node_saved(n, 0);
  if (!mask) return -1;
  rc_tensor *g = rc_empty_like(gout[0]);
  if (!g) return -1;
  masked_kernel(g, gout[0], mask, 0.0f);
  gin[0] = g;
  return 0;
}

rc_tensor *rc_masked_fill(rc_tensor *a, rc_tensor *mask, float v) {
  rc_ctx *c = a->ctx;
  if (!mask) return rc_error_null(c, "masked_fill: mask is missing (NULL)");
  rc_shape sa = rc_shape_of(a), sm = rc_shape_of(mask), so;
  if (rc_broadcast_shape(c, "masked_fill", &sa, &sm, &so)) return NULL;
  if (!rc_shape_eq(&so, &sa)) {
    char s1[128], s2[128];
    return rc_error_null(c,
                         "masked_fill: mask of shape %s cannot be broadcast to the input's "
                         "shape %s",
                         rc_shape_str(mask, s1, sizeof s1), rc_shape_str(a, s2, sizeof s2));
  }
  rc_tensor *out = rc_empty_like(a);
  if (!out) return NULL;
  masked_kernel(out, a, mask, v);
  return record_dim(c, "MaskedFillBackward", masked_fill_backward, &a, 1, out, 0, mask);
}

/* ---- one_hot ---- */

rc_tensor *rc_one_hot(rc_tensor *index, int64_t classes) {
  rc_ctx *c = index->ctx;
  if (index->ndim + 1 > RC_MAX_DIM)
    return rc_error_null(c,
                         "one_hot: the result would have %d dimensions, at most %d are "
                         "supported",
                         index->ndim + 1, RC_MAX_DIM);
  int64_t numel = rc_numel(index);
  if (classes == 0)
    return rc_error_null(c, "one_hot: number of classes must be positive (or negative to infer "
                            "it), got 0");
  if (classes > RC_MAX_NUMEL)
    return rc_error_null(c, "one_hot: %lld classes is too many", (long long)classes);
  char w[64];
  if (classes < 0) { /* infer: largest index + 1 */
    if (numel == 0)
      return rc_error_null(c, "one_hot: cannot infer the number of classes from an empty index");
    if (check_indices(c, "one_hot", index, 0, -1, NULL)) return NULL;
    int64_t idx[RC_MAX_DIM] = {0};
    float mx = 0;
    for (int64_t k = 0; k < numel; k++) {
      float v = *rc_ptr(index, idx);
      if (v > mx) mx = v;
      next_index(idx, index->size, index->ndim);
    }
    if ((double)mx + 1 > (double)RC_MAX_NUMEL)
      return rc_error_null(c, "one_hot: inferred number of classes %.15g is too large",
                           (double)mx + 1);
    classes = (int64_t)mx + 1;
  } else {
    snprintf(w, sizeof w, "%lld classes", (long long)classes);
    if (check_indices(c, "one_hot", index, 0, classes, w)) return NULL;
  }
  int64_t size[RC_MAX_DIM];
  memcpy(size, index->size, sizeof(int64_t) * (size_t)index->ndim);
  size[index->ndim] = classes;
  rc_tensor *out = rc_zeros(c, index->ndim + 1, size);
  if (!out) return NULL;
  float *o = rc_data(out);
  int64_t idx[RC_MAX_DIM] = {0};
  for (int64_t k = 0; k < numel; k++) {
    o[k * classes + index_at(index, idx)] = 1.0f;
    next_index(idx, index->size, index->ndim);
  }
  return out;
}
