#include "tensor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* One block holds the storage header and the 64-byte-aligned data after it; a fresh tensor
 * (rc_empty) also puts its own header in front, so making a tensor costs one malloc (small
 * ops are dominated by allocation). Plain malloc, not posix_memalign, which fragmented the
 * heap for large sizes. */
#define STORAGE_PAD 64
/* a tensor header rounded so that the storage header after it stays aligned */
#define TENSOR_HSIZE ((sizeof(rc_tensor) + 15) & ~(size_t)15)
/* what a fresh tensor's block holds besides its data (and the padding) */
#define STORAGE_META (TENSOR_HSIZE + sizeof(rc_storage))

static inline int64_t shape_numel(int ndim, const int64_t *size) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= size[i];
  return n;
}

/* Fills the storage header s of the block raw (n floats at data); meta: the block's bytes
 * besides the data, counted in the context (headers are memory too). */
static inline void storage_init(rc_storage *s, rc_ctx *c, void *raw, float *data, int64_t n,
                                int flags, size_t meta) {
  *s = (rc_storage){.data = data, .n = n, .refcount = 1, .block = raw, .ctx = c, .flags = flags};
  rc_ctx_retain(c);
  c->meta_bytes += meta;
  c->pending_bytes += meta;
}

/* Fills the header t, embedded in the block of s, as a contiguous tensor over all of s. */
static inline void header_init(rc_tensor *t, rc_storage *s, int ndim, const int64_t *size) {
  memset(t, 0, sizeof *t);
  t->refcount = 1;
  t->ndim = ndim;
  t->storage = s;
  t->ctx = s->ctx;
  t->embedded = 1;
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->size[i] = size[i];
    t->stride[i] = st;
    st *= size[i];
  }
}

/* Blocks from this size up are kept in the context's cache when freed (glibc serves them with
 * fresh pages: mmap above its threshold, or heap it trims on free; from 256 KB, a GRU H = 128
 * step still paid 50 page faults for its 196 KB weight gradients, 4.4% of its time); a
 * cached block is reused for a request it exceeds by at most a quarter. The cache holds at most the
 * context's peak of live tensor bytes plus 64 MB, so a program's tensor memory stays within about
 * twice its own peak. */
#define CACHE_MIN ((size_t)64 << 10)
#define CACHE_EXTRA ((size_t)64 << 20)

/* The small blocks' size classes: 1 KB times 2^(k/4), rounded up to 64 bytes (a block is
 * at most a fifth larger than its request), up to where the large cache takes over. A request
 * between the last class and CACHE_MIN is served as a CACHE_MIN block. */
#define SMALL_MIN ((size_t)1 << 10)
static const size_t small_bytes[RC_SMALL_CLASSES] = {
    1024, 1280, 1472,  1728,  2048,  2496,  2944,  3456,  4096,  4928,  5824,  6912,
    8192, 9792, 11648, 13824, 16384, 19520, 23232, 27584, 32768, 38976, 46400, 55168};

/* the class of a block of `bytes` (the smallest that holds it), or -1 outside the classes */
static int small_class(size_t bytes) {
  if (bytes < SMALL_MIN || bytes > small_bytes[RC_SMALL_CLASSES - 1]) return -1;
  int k = 0;
  while (small_bytes[k] < bytes) k++;
  return k;
}

/* A freed block of class k, or NULL. Its first bytes held the list's link, the rest stayed
 * poisoned (AddressSanitizer) while it was kept. */
static void *small_take(rc_ctx *c, int k) {
  void *p = c->small_head[k];
  if (!p) return NULL;
  RC_UNPOISON(p, small_bytes[k]);
  memcpy(&c->small_head[k], p, sizeof(void *));
  c->cache_bytes -= small_bytes[k];
  return p;
}

/* A cached block of at least `bytes` (its size in *got), or NULL. */
static void *cache_take(rc_ctx *c, size_t bytes, size_t *got) {
  if (bytes < CACHE_MIN || !c->cache_bytes) return NULL;
  int best = -1;
  for (int i = 0; i < RC_CACHE_SLOTS; i++) {
    size_t sz = c->cache_size[i];
    if (c->cache_block[i] && sz >= bytes && sz - bytes <= bytes / 4 &&
        (best < 0 || sz < c->cache_size[best]))
      best = i;
  }
  if (best < 0) return NULL;
  void *p = c->cache_block[best];
  *got = c->cache_size[best];
  c->cache_block[best] = NULL;
  c->cache_bytes -= *got;
  RC_UNPOISON(p, *got);
  return p;
}

/* Keeps a freed block for reuse when it is large, making room by freeing the blocks put longest
 * ago: a loop reuses what it freed last, and blocks of sizes it no longer asks for would
 * otherwise fill the cache for good (then every block of the new sizes paid its page faults
 * again: an LN-LSTM forward after four other cells in one process ran 3.7x slower). */
static void cache_put(rc_ctx *c, void *p, size_t bytes) {
  size_t cap = c->peak_bytes + CACHE_EXTRA;
  int k = bytes < CACHE_MIN ? small_class(bytes) : -1;
  if (k >= 0 && small_bytes[k] == bytes && c->limit_bytes == 0 && c->cache_bytes + bytes <= cap) {
    memcpy(p, &c->small_head[k], sizeof(void *));
    c->small_head[k] = p;
    c->cache_bytes += bytes;
    RC_POISON((char *)p + sizeof(void *), bytes - sizeof(void *));
    return;
  }
  if (bytes < CACHE_MIN || c->limit_bytes != 0 || bytes > cap) {
    free(p);
    return;
  }
  for (;;) {
    int slot = -1, oldest = -1;
    for (int i = 0; i < RC_CACHE_SLOTS; i++) {
      if (!c->cache_block[i]) {
        if (slot < 0) slot = i;
      } else if (oldest < 0 || c->cache_stamp[i] < c->cache_stamp[oldest]) {
        oldest = i;
      }
    }
    if (slot >= 0 && c->cache_bytes + bytes <= cap) {
      c->cache_block[slot] = p;
      c->cache_size[slot] = bytes;
      c->cache_stamp[slot] = ++c->cache_clock;
      c->cache_bytes += bytes;
      RC_POISON(p, bytes);
      return;
    }
    /* no room: the oldest large block goes; with none (the small blocks hold the rest of the
     * bound) this one is freed */
    if (oldest < 0) {
      free(p);
      return;
    }
    RC_UNPOISON(c->cache_block[oldest], c->cache_size[oldest]);
    free(c->cache_block[oldest]);
    c->cache_bytes -= c->cache_size[oldest];
    c->cache_block[oldest] = NULL;
  }
}

static rc_storage *storage_new_with(rc_ctx *c, int64_t n, size_t prefix, void **prefix_out) {
  size_t bytes = (size_t)n * sizeof(float);
  if (bytes > SIZE_MAX - prefix - sizeof(rc_storage) - STORAGE_PAD)
    return rc_error_null(c, "out of memory allocating %zu bytes", bytes);
  if (rc_account_alloc(c, bytes)) return NULL;
  if (rc_charge(c, "alloc", (uint64_t)n / 16 + 1)) {
    rc_account_free(c, bytes);
    return NULL;
  }
  size_t need = prefix + sizeof(rc_storage) + STORAGE_PAD + bytes;
  int k = small_class(need);
  if (k >= 0)
    need = small_bytes[k];
  else if (need > small_bytes[RC_SMALL_CLASSES - 1] && need < CACHE_MIN)
    need = CACHE_MIN;
  size_t got = need;
  char *raw = k >= 0 ? small_take(c, k) : cache_take(c, need, &got);
  if (!raw) raw = malloc(need);
  if (!raw) {
    rc_account_free(c, bytes);
    return rc_error_null(c, "out of memory allocating %zu bytes", bytes);
  }
  rc_storage *s = (rc_storage *)(raw + prefix);
  uintptr_t a = ((uintptr_t)(s + 1) + STORAGE_PAD - 1) & ~(uintptr_t)(STORAGE_PAD - 1);
  storage_init(s, c, raw, (float *)a, n, 0, prefix + sizeof(rc_storage) + STORAGE_PAD);
  s->block_bytes = got;
  if (prefix_out) *prefix_out = raw;
  return s;
}

/* Frees the block when the last reference goes; an embedded tensor header in the block
 * has released its reference by then, so nothing else points into it. */
static void storage_release(rc_storage *s) {
  if (!s || --s->refcount > 0) return;
  rc_ctx *c = s->ctx;
  rc_release(s->grad_twin); /* a parameter arena's gradient buffer */
  size_t bytes = (size_t)s->n * sizeof(float);
  if (s->flags & RC_STORAGE_OWN_DATA) {
    rc_free_bytes(c, s->data, bytes);
    c->meta_bytes -= STORAGE_META;
  } else if (s->flags & RC_STORAGE_BORROWED) {
    c->meta_bytes -= STORAGE_META;
  } else {
    rc_account_free(c, bytes);
    c->meta_bytes -= STORAGE_META + STORAGE_PAD;
  }
  if (s->block_bytes)
    cache_put(c, s->block, s->block_bytes);
  else
    free(s->block);
  rc_ctx_release(c);
}

/* ---- borrowed host memory ---- */

rc_tensor *rc_borrow(rc_ctx *c, int ndim, const int64_t *size, float *data) {
  if (rc_check_shape(c, "borrow", ndim, size)) return NULL;
  int64_t n = shape_numel(ndim, size);
  if (n > 0 && !data)
    return rc_error_null(c, "borrow: data is NULL for %lld elements", (long long)n);
  char *raw = malloc(STORAGE_META);
  if (!raw) return rc_error_null(c, "out of memory allocating a tensor header");
  rc_tensor *t = (rc_tensor *)raw;
  rc_storage *s = (rc_storage *)(raw + TENSOR_HSIZE);
  storage_init(s, c, raw, data, n, RC_STORAGE_BORROWED, STORAGE_META);
  header_init(t, s, ndim, size);
  return t;
}

int rc_unborrow(rc_storage *s) {
  if (!(s->flags & RC_STORAGE_BORROWED)) return 0;
  rc_ctx *c = s->ctx;
  size_t limit = c->limit_bytes;
  c->limit_bytes = 0; /* the bytes exist already: moving them must not fail on the limit */
  float *d = rc_alloc_bytes(c, (size_t)s->n * sizeof(float));
  c->limit_bytes = limit;
  if (!d) return -1;
  if (s->n) memcpy(d, s->data, (size_t)s->n * sizeof(float));
  s->data = d;
  s->flags = RC_STORAGE_OWN_DATA;
  return 0;
}

int64_t rc_numel(const rc_tensor *t) {
  return shape_numel(t->ndim, t->size);
}

int rc_check_shape(rc_ctx *c, const char *fn, int ndim, const int64_t *size) {
  if (ndim < 0 || ndim > RC_MAX_DIM)
    return rc_error(c, "%s: %d dimensions requested, at most %d are supported", fn, ndim,
                    RC_MAX_DIM);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (size[i] < 0)
      return rc_error(c, "%s: size %lld of dimension %d is negative", fn, (long long)size[i],
                      i + 1);
    if (size[i] > RC_MAX_NUMEL || (size[i] > 0 && n > RC_MAX_NUMEL / size[i]))
      return rc_error(c, "%s: shape is too large (more than 2^40 elements)", fn);
    n *= size[i];
  }
  return 0;
}

rc_tensor *rc_empty(rc_ctx *c, int ndim, const int64_t *size) {
  if (rc_check_shape(c, "empty", ndim, size)) return NULL;
  /* header first, rounded so the storage header after it stays aligned */
  rc_storage *s = storage_new_with(c, shape_numel(ndim, size), TENSOR_HSIZE, NULL);
  if (!s) return NULL;
  rc_tensor *t = (rc_tensor *)s->block;
  header_init(t, s, ndim, size);
  return t;
}

rc_tensor *rc_zeros(rc_ctx *c, int ndim, const int64_t *size) {
  rc_tensor *t = rc_empty(c, ndim, size);
  if (t) memset(t->storage->data, 0, (size_t)t->storage->n * sizeof(float));
  return t;
}

rc_tensor *rc_full(rc_ctx *c, int ndim, const int64_t *size, float v) {
  rc_tensor *t = rc_empty(c, ndim, size);
  if (!t) return NULL;
  float *d = t->storage->data;
  for (int64_t i = 0; i < t->storage->n; i++) d[i] = v;
  return t;
}

rc_tensor *rc_empty_like(rc_tensor *t) {
  return rc_empty(t->ctx, t->ndim, t->size);
}
rc_tensor *rc_zeros_like(rc_tensor *t) {
  return rc_zeros(t->ctx, t->ndim, t->size);
}
rc_tensor *rc_scalar(rc_ctx *c, float v) {
  return rc_full(c, 0, NULL, v);
}

rc_tensor *rc_from_data(rc_ctx *c, int ndim, const int64_t *size, const float *data) {
  rc_tensor *t = rc_empty(c, ndim, size);
  if (t && t->storage->n) memcpy(t->storage->data, data, (size_t)t->storage->n * sizeof(float));
  return t;
}

void rc_retain(rc_tensor *t) {
  if (t) t->refcount++;
}

void rc_release(rc_tensor *t) {
  if (!t || --t->refcount > 0) return;
  if (t->accum) {
    rc_node_head *a = rc_node_head_of(t->accum);
    a->leaf = NULL;
    a->release(t->accum);
  }
  if (t->grad_fn) rc_node_head_of(t->grad_fn)->release(t->grad_fn);
  rc_release(t->grad);
  int embedded = t->embedded;
  rc_ctx *c = t->ctx;
  storage_release(t->storage); /* may free t itself when embedded */
  if (!embedded) {
    c->meta_bytes -= sizeof *t;
    free(t);
  }
}

int rc_is_contiguous(const rc_tensor *t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->size[i] != 1 && t->stride[i] != st) return 0;
    st *= t->size[i];
  }
  return 1;
}

static inline int sizes_eq(int na, const int64_t *a, int nb, const int64_t *b) {
  if (na != nb) return 0;
  for (int i = 0; i < na; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

int rc_same_shape(const rc_tensor *a, const rc_tensor *b) {
  return sizes_eq(a->ndim, a->size, b->ndim, b->size);
}

rc_shape rc_shape_of(const rc_tensor *t) {
  rc_shape s;
  memset(&s, 0, sizeof s);
  s.ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++) s.size[i] = t->size[i];
  return s;
}

int rc_shape_eq(const rc_shape *a, const rc_shape *b) {
  return sizes_eq(a->ndim, a->size, b->ndim, b->size);
}

char *rc_shape_str2(const rc_shape *s, char *buf, size_t len) {
  size_t k = 0;
  k += (size_t)snprintf(buf + k, len - k, "[");
  for (int i = 0; i < s->ndim && k < len; i++)
    k += (size_t)snprintf(buf + k, len - k, i ? ", %lld" : "%lld", (long long)s->size[i]);
  if (k < len) snprintf(buf + k, len - k, "]");
  return buf;
}

char *rc_shape_str(const rc_tensor *t, char *buf, size_t len) {
  rc_shape s = rc_shape_of(t);
  return rc_shape_str2(&s, buf, len);
}

int rc_broadcast_shape(rc_ctx *c, const char *fn, const rc_shape *a, const rc_shape *b,
                       rc_shape *out) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  rc_shape r;
  memset(&r, 0, sizeof r);
  r.ndim = n;
  for (int i = 0; i < n; i++) {
    int ia = a->ndim - n + i, ib = b->ndim - n + i;
    int64_t sa = ia >= 0 ? a->size[ia] : 1, sb = ib >= 0 ? b->size[ib] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      char s1[128], s2[128];
      return rc_error(c, "%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs %lld)",
                      fn, rc_shape_str2(a, s1, sizeof s1), rc_shape_str2(b, s2, sizeof s2), i + 1,
                      (long long)sa, (long long)sb);
    }
    r.size[i] = sa == 1 ? sb : sa;
  }
  *out = r;
  return 0;
}

int rc_wrap_dim(rc_ctx *c, const char *fn, int64_t dim, int ndim, int *out) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  if (d < 0 || d >= (ndim ? ndim : 1))
    return rc_error(c, "%s: dimension %lld is out of range for a tensor with %d dimensions", fn,
                    (long long)(dim < 0 ? dim : dim + 1), ndim);
  *out = (int)d;
  return 0;
}

float *rc_ptr(const rc_tensor *t, const int64_t *idx) {
  int64_t off = t->offset;
  for (int i = 0; i < t->ndim; i++) off += idx[i] * t->stride[i];
  return t->storage->data + off;
}

/* The one strided two-operand loop: walks `shape`, with a at strides ast and b at
 * strides bst (0 on broadcast dims); mode 0: a = b, mode 1: a += b. */
static void pair_loop(int n, const int64_t *shape, float *ad, int64_t aoff, const int64_t *ast,
                      const float *bd, int64_t boff, const int64_t *bst, int mode) {
  int64_t numel = 1;
  for (int i = 0; i < n; i++) numel *= shape[i];
  if (numel == 0) return;
  int64_t idx[RC_MAX_DIM] = {0};
  int64_t inner = n ? shape[n - 1] : 1;
  int64_t astep = n ? ast[n - 1] : 0, bstep = n ? bst[n - 1] : 0;
  for (int64_t done = 0; done < numel; done += inner) {
    float *ap = ad + aoff;
    const float *bp = bd + boff;
    if (astep == 1 && bstep == 1) { /* rows of both contiguous: the vectorized forms */
      if (mode == 0)
        memmove(ap, bp, (size_t)inner * sizeof(float));
      else
        rc_k_add(ap, bp, inner);
    } else if (mode == 0)
      for (int64_t k = 0; k < inner; k++) ap[k * astep] = bp[k * bstep];
    else
      for (int64_t k = 0; k < inner; k++) ap[k * astep] += bp[k * bstep];
    for (int d = n - 2; d >= 0; d--) {
      idx[d]++;
      aoff += ast[d];
      boff += bst[d];
      if (idx[d] < shape[d]) break;
      aoff -= ast[d] * shape[d];
      boff -= bst[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/* Strides of t seen as a tensor of `n` dims (t aligned right), 0 where t broadcasts. */
void rc_broadcast_strides(const rc_tensor *t, int n, const int64_t *shape, int64_t *out) {
  for (int i = 0; i < n; i++) {
    int it = t->ndim - n + i;
    out[i] = (it >= 0 && t->size[it] == shape[i]) ? t->stride[it] : 0;
  }
}

int rc_copy_into(rc_tensor *dst, rc_tensor *src) {
  int64_t numel = rc_numel(dst);
  if (numel == 0) return 0;
  if (rc_is_contiguous(dst) && rc_is_contiguous(src) && rc_same_shape(dst, src)) {
    memmove(rc_data(dst), rc_data(src), (size_t)numel * sizeof(float));
    return 0;
  }
  int64_t sst[RC_MAX_DIM];
  rc_broadcast_strides(src, dst->ndim, dst->size, sst);
  pair_loop(dst->ndim, dst->size, dst->storage->data, dst->offset, dst->stride, src->storage->data,
            src->offset, sst, 0);
  return 0;
}

void rc_add_into(rc_tensor *dst, rc_tensor *src) {
  /* the common case (gradient accumulation): one vectorized loop (kernels.c) */
  if (rc_is_contiguous(dst) && rc_is_contiguous(src) && rc_same_shape(dst, src)) {
    rc_k_add(rc_data(dst), rc_data(src), rc_numel(dst));
    return;
  }
  int64_t sst[RC_MAX_DIM];
  rc_broadcast_strides(src, dst->ndim, dst->size, sst);
  pair_loop(dst->ndim, dst->size, dst->storage->data, dst->offset, dst->stride, src->storage->data,
            src->offset, sst, 1);
}

void rc_sum_into(rc_tensor *dst, rc_tensor *src) {
  int64_t dst_st[RC_MAX_DIM];
  rc_broadcast_strides(dst, src->ndim, src->size, dst_st);
  pair_loop(src->ndim, src->size, dst->storage->data, dst->offset, dst_st, src->storage->data,
            src->offset, src->stride, 1);
}

rc_tensor *rc_copy_contiguous(rc_tensor *t) {
  rc_tensor *r = rc_empty(t->ctx, t->ndim, t->size);
  if (!r) return NULL;
  rc_copy_into(r, t);
  return r;
}

void rc_read_floats(const rc_tensor *t, float *out) {
  int64_t numel = rc_numel(t);
  if (rc_is_contiguous(t)) {
    memcpy(out, rc_data(t), (size_t)numel * sizeof(float));
    return;
  }
  int64_t idx[RC_MAX_DIM] = {0};
  for (int64_t k = 0; k < numel; k++) {
    out[k] = *rc_ptr(t, idx);
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->size[d]) break;
      idx[d] = 0;
    }
  }
}

rc_tensor *rc_raw_view(rc_tensor *t, int ndim, const int64_t *size, const int64_t *stride,
                       int64_t offset) {
  rc_ctx *c = t->ctx;
  if (c->limit_bytes) {
    /* Under a memory limit no tensor, view or not, may have more elements than the limit
     * could hold: a view expanded to 2^40 elements would otherwise let one reduction run
     * for hours on a few bytes. */
    int64_t n = shape_numel(ndim, size);
    if ((uint64_t)n > c->limit_bytes / sizeof(float))
      return rc_error_null(c,
                           "memory limit exceeded (a view of %lld elements is larger than the "
                           "%zu-byte limit allows)",
                           (long long)n, c->limit_bytes);
  }
  if (rc_check_limit(c, sizeof(rc_tensor))) return NULL;
  rc_tensor *v = calloc(1, sizeof *v);
  if (!v) return rc_error_null(t->ctx, "out of memory allocating a tensor header");
  c->meta_bytes += sizeof *v;
  c->pending_bytes += sizeof *v;
  v->refcount = 1;
  v->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    v->size[i] = size[i];
    v->stride[i] = stride[i];
  }
  v->offset = offset;
  v->storage = t->storage;
  t->storage->refcount++;
  v->ctx = t->ctx;
  v->is_view = 1;
  return v;
}

rc_tensor *rc_raw_contiguous(rc_tensor *t) {
  if (rc_is_contiguous(t)) {
    rc_retain(t);
    return t;
  }
  return rc_copy_contiguous(t);
}
