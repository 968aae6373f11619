/* Tensors: float32, N-d (up to RC_MAX_DIM), strided views over refcounted storage.
 * Everything here is 0-based; the Lua bindings translate from Lua's 1-based indices.
 * Functions that can fail return NULL (or -1) and leave a message in ctx->err that
 * names the function, the argument and the shapes. */
#ifndef RECUR_TENSOR_H
#define RECUR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"

#define RC_MAX_DIM 8
/* Largest element count one tensor may hold (2^40 floats = 4 TiB): guards overflow. */
#define RC_MAX_NUMEL ((int64_t)1 << 40)

typedef struct rc_node rc_node;

/* What this floor knows of an autograd node (struct rc_node, autograd.h, begins with one): a
 * tensor owns references to the nodes of its history (grad_fn, accum) and drops them when it
 * dies, so the node carries its own release and the tensor floor never calls up into autograd. */
typedef struct rc_node_head {
  void (*release)(rc_node *n); /* rc_node_release */
  /* AccumulateGrad: the leaf it accumulates into (weak pointer, cleared when the leaf dies) */
  struct rc_tensor *leaf;
} rc_node_head;

/* n seen as its head (the first member of struct rc_node, so the same address) */
static inline rc_node_head *rc_node_head_of(rc_node *n) {
  return (rc_node_head *)(void *)n;
}

typedef struct rc_storage {
  float *data;
  int64_t n; /* elements */
  int refcount;
  uint32_t version;   /* bumped by every in-place write; saved tensors check it */
  int grad_views;     /* 1 once a view with autograd history was taken of this memory */
  void *block;        /* what to free: this header, or the tensor header sharing the block */
  size_t block_bytes; /* the block's size (a block reused from the context's cache may be
                         larger than this storage needs) */
  rc_ctx *ctx;
  int flags; /* RC_STORAGE_* */
  /* a parameter arena's gradient buffer (rc_params_pack, nn.h): a 1-D tensor of n elements
   * (owned reference), NULL until a gradient is first needed (rc_grad_slot_attach) */
  struct rc_tensor *grad_twin;
} rc_storage;

/* data is host memory lent for a while (rc_borrow): never freed, not counted in live_bytes */
#define RC_STORAGE_BORROWED 1
/* data was allocated on its own with rc_alloc_bytes (after rc_unborrow) */
#define RC_STORAGE_OWN_DATA 2

typedef struct rc_shape {
  int ndim;
  int64_t size[RC_MAX_DIM];
} rc_shape;

/* A contiguous tensor of shape s seen as [outer, n, inner] around dim (0-d: one element). */
typedef struct {
  int64_t outer, n, inner;
} rc_span;

static inline rc_span rc_span_of(const rc_shape *s, int dim) {
  rc_span p = {1, 1, 1};
  if (s->ndim == 0) return p;
  for (int i = 0; i < dim; i++) p.outer *= s->size[i];
  p.n = s->size[dim];
  for (int i = dim + 1; i < s->ndim; i++) p.inner *= s->size[i];
  return p;
}

typedef struct rc_tensor {
  int refcount;
  int ndim;
  int64_t size[RC_MAX_DIM];
  int64_t stride[RC_MAX_DIM]; /* in elements; 0 on expanded dims */
  int64_t offset;             /* in elements, into storage */
  rc_storage *storage;
  rc_ctx *ctx;
  /* autograd */
  int requires_grad; /* set by the user on leaves; derived tensors have grad_fn */
  int is_view;       /* shares storage with a tensor that has its own history */
  int embedded;      /* header lives in its storage's block (freed with the storage) */
  rc_node *grad_fn;  /* node that produced this tensor (owned reference) */
  int output_nr;     /* which output of grad_fn */
  rc_node *accum;    /* AccumulateGrad node of a leaf (owned reference, lazy) */
  struct rc_tensor *grad;
  int packed; /* placed by rc_params_pack into a parameter arena (its storage): its gradient,
               * once it has one, is the same span of the arena's grad_twin */
} rc_tensor;

/* Lifetime. new/retain/release follow the usual refcount rules: a function that
 * returns rc_tensor* returns a new reference. */
rc_tensor *rc_empty(rc_ctx *c, int ndim, const int64_t *size);
rc_tensor *rc_zeros(rc_ctx *c, int ndim, const int64_t *size);
rc_tensor *rc_full(rc_ctx *c, int ndim, const int64_t *size, float v);
rc_tensor *rc_empty_like(rc_tensor *t);
rc_tensor *rc_zeros_like(rc_tensor *t);
rc_tensor *rc_scalar(rc_ctx *c, float v); /* 0-d tensor */
rc_tensor *rc_from_data(rc_ctx *c, int ndim, const int64_t *size, const float *data);
void rc_retain(rc_tensor *t);
void rc_release(rc_tensor *t);

/* A contiguous tensor over memory the caller owns (no copy). The caller keeps `data` valid and
 * unmoved until the storage is no longer borrowed: either every reference is gone or
 * rc_unborrow has copied the data into memory of the runtime. */
rc_tensor *rc_borrow(rc_ctx *c, int ndim, const int64_t *size, float *data);
/* Ends a loan: copies borrowed data into runtime memory (counted in live_bytes, even past the
 * memory limit, since the bytes already exist) so that every view sees the copy from now on.
 * A no-op on storage that is not borrowed. -1 only if malloc fails. */
int rc_unborrow(rc_storage *s);

/* Shape helpers. */
int64_t rc_numel(const rc_tensor *t);
int rc_is_contiguous(const rc_tensor *t);
int rc_same_shape(const rc_tensor *a, const rc_tensor *b);
rc_shape rc_shape_of(const rc_tensor *t);
int rc_shape_eq(const rc_shape *a, const rc_shape *b);
/* Writes "[2, 3]" into buf; returns buf. */
char *rc_shape_str(const rc_tensor *t, char *buf, size_t len);
char *rc_shape_str2(const rc_shape *s, char *buf, size_t len);
/* Validates a shape (non-negative sizes, ndim in range, numel in range). */
int rc_check_shape(rc_ctx *c, const char *fn, int ndim, const int64_t *size);
/* Broadcast shapes a and b (NumPy rules) into out; -1 with message on mismatch. */
int rc_broadcast_shape(rc_ctx *c, const char *fn, const rc_shape *a, const rc_shape *b,
                       rc_shape *out);
/* Normalizes a 0-based dim that may be negative (-1 = last); -1 on error. */
int rc_wrap_dim(rc_ctx *c, const char *fn, int64_t dim, int ndim, int *out);

/* Strides of t seen with `n` dims of sizes `shape` (t aligned right), 0 where t is
 * broadcast. */
void rc_broadcast_strides(const rc_tensor *t, int n, const int64_t *shape, int64_t *out);
/* A contiguous version of t without autograd: t retained if already contiguous. */
rc_tensor *rc_raw_contiguous(rc_tensor *t);

/* Element pointer for a 0-based multi-index. */
float *rc_ptr(const rc_tensor *t, const int64_t *idx);
static inline float *rc_data(const rc_tensor *t) {
  return t->storage->data + t->offset;
}

/* Copies any strided tensor into a new contiguous one (a new reference even when t is
 * already contiguous: use rc_contiguous for the cheap form). No autograd. */
rc_tensor *rc_copy_contiguous(rc_tensor *t);
/* Raw strided copy src -> dst (same shape, or src broadcastable to dst). No autograd. */
int rc_copy_into(rc_tensor *dst, rc_tensor *src);
/* dst += src, src broadcast to dst's shape. No autograd. */
void rc_add_into(rc_tensor *dst, rc_tensor *src);
/* dst += src summed over the dims where dst has size 1 or is missing (dst zeroed by the
 * caller): the reverse of broadcasting. No autograd. */
void rc_sum_into(rc_tensor *dst, rc_tensor *src);
/* Gathers a contiguous float copy into out (numel floats). */
void rc_read_floats(const rc_tensor *t, float *out);

/* Raw views without autograd (autograd-aware versions live in ops_view.c). */
rc_tensor *rc_raw_view(rc_tensor *t, int ndim, const int64_t *size, const int64_t *stride,
                       int64_t offset);

/* Bumps the storage version: call after any in-place write. */
static inline void rc_bump_version(rc_tensor *t) {
  t->storage->version++;
}

#endif
