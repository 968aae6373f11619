/* Views and shape ops: O(1) results that share storage with their input (is_view = 1),
 * plus the copies (reshape of an incompatible layout, contiguous, clone). Every op records
 * an autograd node whose backward maps the gradient back to the input's shape. */
#include <stdio.h>
#include <string.h>

#include "ops.h"

/* ---- helpers ---- */

static void contiguous_strides(int ndim, const int64_t *size, int64_t *stride) {
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    stride[i] = st;
    st *= size[i];
  }
}

static rc_shape make_shape(int ndim, const int64_t *size) {
  rc_shape s;
  memset(&s, 0, sizeof s);
  s.ndim = ndim;
  for (int i = 0; i < ndim && i < RC_MAX_DIM; i++) s.size[i] = size[i];
  return s;
}

/* Records a one-input node for out (or nothing when no grad is needed). On failure releases
 * out and returns NULL; *node gets the node (NULL if none). */
static rc_tensor *record(rc_tensor *a, rc_tensor *out, const char *name, rc_backward_fn bw,
                         rc_node **node) {
  rc_node *n;
  if (rc_record(a->ctx, name, bw, &a, 1, &out, &n)) return NULL;
  if (node) *node = n;
  /* A view with history shares memory with its base: an in-place write to the base under
   * autograd would leave the view's history stale, so ops_elementwise.c refuses it. */
  if (n && out->storage == a->storage) out->storage->grad_views = 1;
  return out;
}

/* Resolves a requested shape (one size may be -1) against a's element count into out. */
static int infer_shape(rc_ctx *c, const char *fn, const rc_tensor *a, int ndim, const int64_t *size,
                       int64_t *out) {
  char s1[160], s2[160];
  if (ndim < 0 || ndim > RC_MAX_DIM)
    return rc_error(c, "%s: %d dimensions requested, at most %d are supported", fn, ndim,
                    RC_MAX_DIM);
  rc_shape req = make_shape(ndim, size);
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < ndim; i++) {
    if (size[i] == -1) {
      if (infer >= 0)
        return rc_error(c, "%s: only one dimension can be inferred (-1), got shape %s", fn,
                        rc_shape_str2(&req, s1, sizeof s1));
      infer = i;
    } else if (size[i] < 0) {
      return rc_error(c, "%s: size %lld of dimension %d is negative", fn, (long long)size[i],
                      i + 1);
    } else {
      if (size[i] > RC_MAX_NUMEL || (size[i] > 0 && known > RC_MAX_NUMEL / size[i]))
        return rc_error(c, "%s: shape %s is too large (more than 2^40 elements)", fn,
                        rc_shape_str2(&req, s1, sizeof s1));
      known *= size[i];
    }
    out[i] = size[i];
  }
  int64_t numel = rc_numel(a);
  if (infer >= 0) {
    if (known == 0 && numel == 0)
      return rc_error(c,
                      "%s: cannot infer dimension %d of shape %s for a tensor of shape %s with "
                      "0 elements: the size -1 is ambiguous",
                      fn, infer + 1, rc_shape_str2(&req, s1, sizeof s1),
                      rc_shape_str(a, s2, sizeof s2));
    if (known == 0 || numel % known != 0)
      return rc_error(c, "%s: shape %s is invalid for a tensor of shape %s with %lld elements", fn,
                      rc_shape_str2(&req, s1, sizeof s1), rc_shape_str(a, s2, sizeof s2),
                      (long long)numel);
    out[infer] = numel / known;
  } else if (known != numel) {
    return rc_error(c,
                    "%s: shape %s (%lld elements) is invalid for a tensor of shape %s with "
                    "%lld elements",
                    fn, rc_shape_str2(&req, s1, sizeof s1), (long long)known,
                    rc_shape_str(a, s2, sizeof s2), (long long)numel);
  }
  return 0;
}

/* Strides that present a's elements (in row-major order) with the shape `size`, without a
 * copy; 0 when a's layout does not allow it. The algorithm of PyTorch's computeStride: a's
 * dims split into chunks that are contiguous among themselves, and every chunk must map onto
 * a run of whole new dims. */
static int view_strides(const rc_tensor *a, int ndim, const int64_t *size, int64_t *stride) {
  if (a->ndim == 0 || rc_numel(a) == 0) {
    contiguous_strides(ndim, size, stride);
    return 1;
  }
  int view_d = ndim - 1;
  int64_t chunk = a->stride[a->ndim - 1], tn = 1, vn = 1;
  for (int td = a->ndim - 1; td >= 0; td--) {
    tn *= a->size[td];
    if (td == 0 || (a->size[td - 1] != 1 && a->stride[td - 1] != tn * chunk)) {
      while (view_d >= 0 && (vn < tn || size[view_d] == 1)) {
        stride[view_d] = vn * chunk;
        vn *= size[view_d];
        view_d--;
      }
      if (vn != tn) return 0;
      if (td > 0) {
        chunk = a->stride[td - 1];
        tn = 1;
        vn = 1;
      }
    }
  }
  return view_d == -1;
}

/* ---- backward passes ---- */

/* view, reshape, squeeze, unsqueeze, flatten: the gradient takes the input's shape back. */
static int reshape_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  gin[0] = rc_reshape(gout[0], n->in_shape[0].ndim, n->in_shape[0].size);
  return gin[0] ? 0 : -1;
}

static int identity_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  (void)n;
  rc_retain(gout[0]);
  gin[0] = gout[0];
  return 0;
}

static int transpose_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  gin[0] = rc_transpose(gout[0], (int)n->i[0], (int)n->i[1]);
  return gin[0] ? 0 : -1;
}

static int permute_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  int inv[RC_MAX_DIM];
  int nd = n->in_shape[0].ndim;
  for (int k = 0; k < nd; k++) inv[n->i[k]] = k;
  gin[0] = rc_permute(gout[0], inv);
  return gin[0] ? 0 : -1;
}

static int expand_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  gin[0] = rc_sum_to_shape(gout[0], &n->in_shape[0]);
  return gin[0] ? 0 : -1;
}

/* narrow / select: zeros of the input's shape with g written into the slice. */
static int slice_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  rc_shape *s = &n->in_shape[0];
  rc_tensor *z = rc_zeros(n->ctx, s->ndim, s->size);
  if (!z) return -1;
  rc_tensor *slice = n->i[0] == 0 ? rc_narrow(z, (int)n->i[1], n->i[2], n->i[3])
                                  : rc_select(z, (int)n->i[1], n->i[2]);
  if (!slice) {
    rc_release(z);
    return -1;
  }
  rc_copy_into(slice, gout[0]);
  rc_release(slice);
  gin[0] = z;
  return 0;
}

/* ---- view and reshape ---- */

static rc_tensor *reshape_impl(rc_tensor *a, int ndim, const int64_t *size, const char *fn,
                               const char *node_name, int allow_copy) {
  rc_ctx *c = a->ctx;
  int64_t sz[RC_MAX_DIM], st[RC_MAX_DIM];
  if (infer_shape(c, fn, a, ndim, size, sz)) return NULL;
  rc_tensor *out;
  if (view_strides(a, ndim, sz, st)) {
    out = rc_raw_view(a, ndim, sz, st, a->offset);
  } else if (allow_copy) {
    out = rc_empty(c, ndim, sz);
    if (out) rc_read_floats(a, rc_data(out));
  } else {
    char s1[160], s2[160], s3[160];
    rc_shape req = make_shape(ndim, sz), str = make_shape(a->ndim, a->stride);
    return rc_error_null(c,
                         "%s: cannot view a tensor of shape %s with strides %s as shape %s "
                         "without copying (its layout is not compatible); use reshape() or "
                         "call contiguous() first",
                         fn, rc_shape_str(a, s1, sizeof s1), rc_shape_str2(&str, s2, sizeof s2),
                         rc_shape_str2(&req, s3, sizeof s3));
  }
  if (!out) return NULL;
  return record(a, out, node_name, reshape_backward, NULL);
}

rc_tensor *rc_view(rc_tensor *a, int ndim, const int64_t *size) {
  return reshape_impl(a, ndim, size, "view", "ViewBackward", 0);
}

rc_tensor *rc_reshape(rc_tensor *a, int ndim, const int64_t *size) {
  return reshape_impl(a, ndim, size, "reshape", "ReshapeBackward", 1);
}

rc_tensor *rc_flatten(rc_tensor *a, int start, int end) {
  rc_ctx *c = a->ctx;
  if (a->ndim == 0) {
    int s, e;
    if (rc_wrap_dim(c, "flatten", start, 0, &s) || rc_wrap_dim(c, "flatten", end, 0, &e))
      return NULL;
    int64_t one = 1;
    return reshape_impl(a, 1, &one, "flatten", "FlattenBackward", 1);
  }
  int s, e;
  if (rc_wrap_dim(c, "flatten", start, a->ndim, &s) || rc_wrap_dim(c, "flatten", end, a->ndim, &e))
    return NULL;
  if (s > e)
    return rc_error_null(c, "flatten: start dimension %d comes after end dimension %d", s + 1,
                         e + 1);
  int64_t sz[RC_MAX_DIM];
  int nd = 0;
  for (int i = 0; i < s; i++) sz[nd++] = a->size[i];
  int64_t p = 1;
  for (int i = s; i <= e; i++) p *= a->size[i];
  sz[nd++] = p;
  for (int i = e + 1; i < a->ndim; i++) sz[nd++] = a->size[i];
  return reshape_impl(a, nd, sz, "flatten", "FlattenBackward", 1);
}

/* ---- dimension shuffles ---- */

rc_tensor *rc_transpose(rc_tensor *a, int d0, int d1) {
  rc_ctx *c = a->ctx;
  int x, y;
  if (rc_wrap_dim(c, "transpose", d0, a->ndim, &x) || rc_wrap_dim(c, "transpose", d1, a->ndim, &y))
    return NULL;
  int64_t sz[RC_MAX_DIM], st[RC_MAX_DIM];
  for (int i = 0; i < a->ndim; i++) {
    sz[i] = a->size[i];
    st[i] = a->stride[i];
  }
  if (a->ndim > 0) {
    sz[x] = a->size[y];
    st[x] = a->stride[y];
    sz[y] = a->size[x];
    st[y] = a->stride[x];
  }
  rc_tensor *out = rc_raw_view(a, a->ndim, sz, st, a->offset);
  if (!out) return NULL;
  rc_node *n = NULL;
  if (!record(a, out, "TransposeBackward", transpose_backward, &n)) return NULL;
  if (n) {
    n->i[0] = x;
    n->i[1] = y;
  }
  return out;
}

rc_tensor *rc_permute(rc_tensor *a, const int *perm) {
  rc_ctx *c = a->ctx;
  int nd = a->ndim, p[RC_MAX_DIM], seen[RC_MAX_DIM] = {0};
  for (int i = 0; i < nd; i++) {
    if (rc_wrap_dim(c, "permute", perm[i], nd, &p[i])) return NULL;
    if (seen[p[i]]++) {
      char buf[128];
      size_t k = 0;
      for (int j = 0; j < nd && k < sizeof buf; j++)
        k += (size_t)snprintf(buf + k, sizeof buf - k, j ? ", %d" : "%d",
                              (perm[j] < 0 ? perm[j] + nd : perm[j]) + 1);
      return rc_error_null(c,
                           "permute: dimension %d appears more than once in the permutation "
                           "(%s) of a tensor with %d dimensions",
                           p[i] + 1, buf, nd);
    }
  }
  int64_t sz[RC_MAX_DIM], st[RC_MAX_DIM];
  for (int i = 0; i < nd; i++) {
    sz[i] = a->size[p[i]];
    st[i] = a->stride[p[i]];
  }
  rc_tensor *out = rc_raw_view(a, nd, sz, st, a->offset);
  if (!out) return NULL;
  rc_node *n = NULL;
  if (!record(a, out, "PermuteBackward", permute_backward, &n)) return NULL;
  if (n)
    for (int i = 0; i < nd; i++) n->i[i] = p[i];
  return out;
}

/* ---- slicing ---- */

rc_tensor *rc_narrow(rc_tensor *a, int dim, int64_t start, int64_t length) {
  rc_ctx *c = a->ctx;
  char s1[160];
  if (a->ndim == 0) return rc_error_null(c, "narrow: cannot narrow a 0-d tensor");
  int d;
  if (rc_wrap_dim(c, "narrow", dim, a->ndim, &d)) return NULL;
  int64_t n = a->size[d];
  if (start < 0) start += n;
  if (start < 0 || start > n || length < 0 || length > n - start)
    return rc_error_null(c,
                         "narrow: start %lld (0-based) and length %lld are out of range for "
                         "dimension %d of size %lld (tensor of shape %s)",
                         (long long)start, (long long)length, d + 1, (long long)n,
                         rc_shape_str(a, s1, sizeof s1));
  int64_t sz[RC_MAX_DIM];
  for (int i = 0; i < a->ndim; i++) sz[i] = a->size[i];
  sz[d] = length;
  rc_tensor *out = rc_raw_view(a, a->ndim, sz, a->stride, a->offset + start * a->stride[d]);
  if (!out) return NULL;
  rc_node *node = NULL;
  if (!record(a, out, "NarrowBackward", slice_backward, &node)) return NULL;
  if (node) {
    node->i[0] = 0;
    node->i[1] = d;
    node->i[2] = start;
    node->i[3] = length;
  }
  return out;
}

rc_tensor *rc_select(rc_tensor *a, int dim, int64_t index) {
  rc_ctx *c = a->ctx;
  char s1[160];
  if (a->ndim == 0) return rc_error_null(c, "select: cannot select from a 0-d tensor");
  int d;
  if (rc_wrap_dim(c, "select", dim, a->ndim, &d)) return NULL;
  int64_t n = a->size[d];
  int64_t k = index < 0 ? index + n : index;
  if (k < 0 || k >= n)
    return rc_error_null(c,
                         "select: index %lld (0-based) is out of range for dimension %d of "
                         "size %lld (tensor of shape %s)",
                         (long long)index, d + 1, (long long)n, rc_shape_str(a, s1, sizeof s1));
  int64_t sz[RC_MAX_DIM], st[RC_MAX_DIM];
  int nd = 0;
  for (int i = 0; i < a->ndim; i++) {
    if (i == d) continue;
    sz[nd] = a->size[i];
    st[nd++] = a->stride[i];
  }
  rc_tensor *out = rc_raw_view(a, nd, sz, st, a->offset + k * a->stride[d]);
  if (!out) return NULL;
  rc_node *node = NULL;
  if (!record(a, out, "SelectBackward", slice_backward, &node)) return NULL;
  if (node) {
    node->i[0] = 1;
    node->i[1] = d;
    node->i[2] = k;
  }
  return out;
}

/* ---- expand, squeeze, unsqueeze ---- */

rc_tensor *rc_expand(rc_tensor *a, int ndim, const int64_t *size) {
  rc_ctx *c = a->ctx;
  char s1[160], s2[160];
  if (ndim < 0 || ndim > RC_MAX_DIM)
    return rc_error_null(c, "expand: %d dimensions requested, at most %d are supported", ndim,
                         RC_MAX_DIM);
  rc_shape req = make_shape(ndim, size);
  if (ndim < a->ndim)
    return rc_error_null(c,
                         "expand: the target shape %s has fewer dimensions than the tensor's "
                         "shape %s",
                         rc_shape_str2(&req, s1, sizeof s1), rc_shape_str(a, s2, sizeof s2));
  int lead = ndim - a->ndim;
  int64_t sz[RC_MAX_DIM], st[RC_MAX_DIM];
  for (int i = 0; i < ndim; i++) {
    int64_t want = size[i];
    if (want < -1)
      return rc_error_null(c, "expand: size %lld of dimension %d is negative", (long long)want,
                           i + 1);
    if (i < lead) {
      if (want == -1)
        return rc_error_null(c,
                             "expand: size -1 is not allowed for the new leading dimension %d "
                             "of target shape %s",
                             i + 1, rc_shape_str2(&req, s1, sizeof s1));
      sz[i] = want;
      st[i] = 0;
      continue;
    }
    int64_t have = a->size[i - lead];
    if (want == -1 || want == have) {
      sz[i] = have;
      st[i] = a->stride[i - lead];
    } else if (have == 1) {
      sz[i] = want;
      st[i] = 0;
    } else {
      return rc_error_null(c,
                           "expand: cannot expand shape %s to %s: dimension %d has size %lld, "
                           "not 1, and cannot become %lld",
                           rc_shape_str(a, s1, sizeof s1), rc_shape_str2(&req, s2, sizeof s2),
                           i + 1, (long long)have, (long long)want);
    }
  }
  if (rc_check_shape(c, "expand", ndim, sz)) return NULL;
  rc_tensor *out = rc_raw_view(a, ndim, sz, st, a->offset);
  if (!out) return NULL;
  return record(a, out, "ExpandBackward", expand_backward, NULL);
}

rc_tensor *rc_squeeze(rc_tensor *a, int dim) {
  rc_ctx *c = a->ctx;
  int64_t sz[RC_MAX_DIM], st[RC_MAX_DIM];
  int nd = 0, d = -1;
  if (dim != -100 && rc_wrap_dim(c, "squeeze", dim, a->ndim, &d)) return NULL;
  for (int i = 0; i < a->ndim; i++) {
    int drop = a->size[i] == 1 && (dim == -100 || i == d);
    if (drop) continue;
    sz[nd] = a->size[i];
    st[nd++] = a->stride[i];
  }
  rc_tensor *out = rc_raw_view(a, nd, sz, st, a->offset);
  if (!out) return NULL;
  return record(a, out, "SqueezeBackward", reshape_backward, NULL);
}

rc_tensor *rc_unsqueeze(rc_tensor *a, int dim) {
  rc_ctx *c = a->ctx;
  int nd = a->ndim;
  if (nd >= RC_MAX_DIM)
    return rc_error_null(c, "unsqueeze: the tensor already has %d dimensions, the most supported",
                         nd);
  int d = dim < 0 ? dim + nd + 1 : dim;
  if (d < 0 || d > nd)
    return rc_error_null(c,
                         "unsqueeze: dimension %d is out of range for a tensor with %d "
                         "dimensions (the new dimension goes at 1..%d)",
                         dim < 0 ? dim : dim + 1, nd, nd + 1);
  int64_t sz[RC_MAX_DIM], st[RC_MAX_DIM];
  for (int i = 0, j = 0; i <= nd; i++) {
    if (i == d) {
      sz[i] = 1;
      st[i] = d < nd ? a->size[d] * a->stride[d] : 1;
    } else {
      sz[i] = a->size[j];
      st[i] = a->stride[j];
      j++;
    }
  }
  rc_tensor *out = rc_raw_view(a, nd + 1, sz, st, a->offset);
  if (!out) return NULL;
  return record(a, out, "UnsqueezeBackward", reshape_backward, NULL);
}

/* ---- copies ---- */

rc_tensor *rc_clone(rc_tensor *a) {
  rc_tensor *out = rc_copy_contiguous(a);
  if (!out) return NULL;
  return record(a, out, "CloneBackward", identity_backward, NULL);
}

rc_tensor *rc_contiguous(rc_tensor *a) {
  if (rc_is_contiguous(a)) {
    rc_retain(a);
    return a;
  }
  return rc_clone(a);
}
