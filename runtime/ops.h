/* Differentiable tensor operations. Each returns a new reference (or NULL with a message in
 * ctx->err naming the op, the argument and the shapes), records an autograd node when grad is
 * enabled and an input needs grad, and validates everything before it allocates.
 * Dimensions and indices are 0-based here; negative dims count from the end. */
#ifndef RECUR_OPS_H
#define RECUR_OPS_H

#include "autograd.h"
#include "tensor.h"
#include "ops_binary.h"
#include "ops_unary.h"

/* ---- elementwise (ops_elementwise.c) ---- */
/* RC_ADD, RC_SUB, ...: one per row of runtime/ops_binary.h, the comparisons (0/1 results, no
 * gradient) last */
#define RC_BINOP_ENUM(NAME, name, ...) RC_##NAME,
typedef enum {
  RC_BINARY_OPS(RC_BINOP_ENUM) RC_COMPARISON_OPS(RC_BINOP_ENUM) RC_BINOP_COUNT
} rc_binop;
#undef RC_BINOP_ENUM

/* RC_NEG, RC_EXP, ...: one per row of runtime/ops_unary.h */
#define RC_UNOP_ENUM(NAME, name, ...) RC_##NAME,
typedef enum { RC_UNARY_OPS(RC_UNOP_ENUM) RC_UNOP_COUNT } rc_unop;
#undef RC_UNOP_ENUM

extern const char *const rc_binop_name[RC_BINOP_COUNT];
extern const char *const rc_unop_name[RC_UNOP_COUNT];

/* NumPy broadcasting between a and b. */
rc_tensor *rc_binary(rc_binop op, rc_tensor *a, rc_tensor *b);
/* a op s (or s op a when scalar_first). */
rc_tensor *rc_binary_scalar(rc_binop op, rc_tensor *a, float s, int scalar_first);
rc_tensor *rc_unary(rc_unop op, rc_tensor *a);
rc_tensor *rc_clamp(rc_tensor *a, float lo, float hi); /* NAN bound = none */
rc_tensor *rc_where(rc_tensor *cond, rc_tensor *a, rc_tensor *b);

/* In place (a is modified, version bumped; grad rules in rc_check_inplace).
 * b is broadcast to a's shape. Returns 0 or -1. */
int rc_binary_(rc_binop op, rc_tensor *a, rc_tensor *b);
int rc_binary_scalar_(rc_binop op, rc_tensor *a, float s);
int rc_unary_(rc_unop op, rc_tensor *a);
int rc_clamp_(rc_tensor *a, float lo, float hi);
int rc_fill_(rc_tensor *a, float v);
int rc_copy_(rc_tensor *dst, rc_tensor *src); /* src broadcast to dst */
/* a += alpha * b (the optimizer workhorse) */
int rc_axpy_(rc_tensor *a, float alpha, rc_tensor *b);

/* ---- views and shape (ops_view.c): O(1), share storage ---- */
rc_tensor *rc_view(rc_tensor *a, int ndim, const int64_t *size);    /* -1 infers one size */
rc_tensor *rc_reshape(rc_tensor *a, int ndim, const int64_t *size); /* copies if it must */
rc_tensor *rc_transpose(rc_tensor *a, int d0, int d1);
rc_tensor *rc_permute(rc_tensor *a, const int *perm);
rc_tensor *rc_narrow(rc_tensor *a, int dim, int64_t start, int64_t length);
rc_tensor *rc_select(rc_tensor *a, int dim, int64_t index);
rc_tensor *rc_expand(rc_tensor *a, int ndim, const int64_t *size); /* -1 keeps a size */
rc_tensor *rc_squeeze(rc_tensor *a, int dim);                      /* dim -100: all */
rc_tensor *rc_unsqueeze(rc_tensor *a, int dim);
rc_tensor *rc_contiguous(rc_tensor *a); /* a itself (retained) when already contiguous */
rc_tensor *rc_clone(rc_tensor *a);      /* always a copy, differentiable */
rc_tensor *rc_flatten(rc_tensor *a, int start, int end);

/* ---- reductions (ops_reduce.c) ---- */
typedef enum { RC_SUM, RC_MEAN, RC_MAX, RC_MIN, RC_PROD, RC_REDOP_COUNT } rc_redop;
/* dim < 0 after wrapping means "over all elements" (pass RC_ALL). */
#define RC_ALL (-1000)
rc_tensor *rc_reduce(rc_redop op, rc_tensor *a, int dim, int keepdim);
/* max/min along dim with 0-based argument indices (as float values) */
int rc_max_dim(rc_tensor *a, int dim, int keepdim, int is_min, rc_tensor **values,
               rc_tensor **indices);
rc_tensor *rc_argmax(rc_tensor *a, int dim, int keepdim, int is_min); /* RC_ALL: flat index */
rc_tensor *rc_var(rc_tensor *a, int dim, int keepdim, int unbiased);
rc_tensor *rc_std(rc_tensor *a, int dim, int keepdim, int unbiased);
rc_tensor *rc_logsumexp(rc_tensor *a, int dim, int keepdim);
rc_tensor *rc_norm(rc_tensor *a, float p, int dim, int keepdim);
rc_tensor *rc_softmax(rc_tensor *a, int dim);
rc_tensor *rc_log_softmax(rc_tensor *a, int dim);
rc_tensor *rc_cumsum(rc_tensor *a, int dim);

/* ---- linear algebra (ops_linalg.c) ---- */
/* 1-D, 2-D and batched 3-D (with broadcasting of a 2-D operand), through rc_sgemm with
 * strided views mapped onto BLAS transposes. */
rc_tensor *rc_matmul(rc_tensor *a, rc_tensor *b);
/* Strict forms of matmul: mm 2-D x 2-D, bmm 3-D x 3-D (equal batch), mv 2-D x 1-D. */
rc_tensor *rc_mm(rc_tensor *a, rc_tensor *b);
rc_tensor *rc_bmm(rc_tensor *a, rc_tensor *b);
rc_tensor *rc_mv(rc_tensor *a, rc_tensor *b);
/* out = beta*out + alpha*op(a) op(b) for 2-D tensors (op = transpose when ta / tb), no
 * autograd, no allocation (except a copy of an operand whose strides BLAS cannot read).
 * out must be row-major (column stride 1) and must not overlap a or b. */
int rc_gemm_into(rc_tensor *out, rc_tensor *a, int ta, rc_tensor *b, int tb, float alpha,
                 float beta);
rc_tensor *rc_outer(rc_tensor *a, rc_tensor *b);
rc_tensor *rc_dot(rc_tensor *a, rc_tensor *b);

/* ---- joining, splitting, indexing (ops_index.c). Indices are float tensors holding
 * 0-based integer values (the bindings convert from/to 1-based). ---- */
/* cat/stack need n >= 1 (with n < 1 there is no context to put a message in: NULL, ctx->err
 * untouched; callers check first). */
rc_tensor *rc_cat(rc_tensor *const *ts, int n, int dim);
rc_tensor *rc_stack(rc_tensor *const *ts, int n, int dim);
/* split into pieces of `size` along dim (last may be smaller); *out is malloc'ed */
int rc_split(rc_tensor *a, int64_t size, int dim, rc_tensor ***out, int *n);
int rc_chunk(rc_tensor *a, int chunks, int dim, rc_tensor ***out, int *n);
rc_tensor *rc_gather(rc_tensor *a, int dim, rc_tensor *index);
rc_tensor *rc_index_select(rc_tensor *a, int dim, rc_tensor *index);
rc_tensor *rc_scatter_add(rc_tensor *a, int dim, rc_tensor *index, rc_tensor *src);
rc_tensor *rc_masked_fill(rc_tensor *a, rc_tensor *mask, float v);
rc_tensor *rc_one_hot(rc_tensor *index, int64_t classes); /* classes < 0: max index + 1 */
/* A host's index tensor holding `base`-based integers (Lua: 1) -> a new contiguous 0-based
 * copy, after checking every value is an integer in [base, base + n) (n < 0: no upper
 * bound). Messages name fn and the range `what` ("dimension 2 of size 3") in base terms. */
rc_tensor *rc_index_rebase(rc_tensor *index, int64_t base, int64_t n, const char *fn,
                           const char *what);

/* ---- random (ops_random.c): draw from ctx->rng ---- */
rc_tensor *rc_rand(rc_ctx *c, int ndim, const int64_t *size, float lo, float hi);
rc_tensor *rc_randn(rc_ctx *c, int ndim, const int64_t *size, float mean, float std);
rc_tensor *rc_truncated_normal(rc_ctx *c, int ndim, const int64_t *size, float mean, float std);
rc_tensor *rc_bernoulli(rc_tensor *p); /* p in [0,1], same shape */
rc_tensor *rc_multinomial(rc_tensor *probs, int64_t n, int replacement); /* 0-based */
rc_tensor *rc_randperm(rc_ctx *c, int64_t n);                            /* 0-based */
/* Integers lo..hi inclusive (|lo|, |hi| <= 2^24 so that float32 holds them exactly). */
rc_tensor *rc_randint(rc_ctx *c, int ndim, const int64_t *size, int64_t lo, int64_t hi);
/* Generator state as RC_RNG_STATE_BYTES portable bytes (header "rng1", the 4 xoshiro words
 * and the Box-Muller spare's bits little-endian, the spare flag, zero padding). set validates
 * everything (length, header, flag, padding, non-zero state, finite spare) before it changes
 * anything; -1 with a message naming set_rng_state otherwise. */
#define RC_RNG_STATE_BYTES 48
void rc_rng_state_get(rc_ctx *c, unsigned char out[RC_RNG_STATE_BYTES]);
int rc_rng_state_set(rc_ctx *c, const unsigned char *in, size_t len);

/* ---- sorting and tests (ops_sort.c). Stable; NaN is greater than every number (last in
 * ascending order, first in descending order and in topk(largest)). Indices are 0-based float
 * values; only the values have a gradient. ---- */
int rc_sort(rc_tensor *a, int dim, int descending, rc_tensor **values, rc_tensor **indices);
/* the k largest (or smallest) along dim, in sorted order; 0 <= k <= size */
int rc_topk(rc_tensor *a, int64_t k, int dim, int largest, rc_tensor **values, rc_tensor **indices);
rc_tensor *rc_argsort(rc_tensor *a, int dim, int descending);
/* 0/1 results, no gradient; NaN counts as nonzero. dim RC_ALL: over all elements. */
rc_tensor *rc_any_all(rc_tensor *a, int dim, int keepdim, int is_all);
typedef enum { RC_ISNAN, RC_ISINF, RC_ISFINITE } rc_fpclass;
rc_tensor *rc_isclass(rc_tensor *a, rc_fpclass what);

/* ---- copies that rearrange elements (ops_shape.c): differentiable ---- */
rc_tensor *rc_flip(rc_tensor *a, int ndims, const int *dims);
/* shifts[i] along dims[i]; ndims == 0: a flattened roll by shifts[0], shape kept */
rc_tensor *rc_roll(rc_tensor *a, int ndims, const int64_t *shifts, const int *dims);
/* the lower (tril) or upper (triu) triangle of the last two dims from diagonal k, rest 0 */
rc_tensor *rc_tri(rc_tensor *a, int64_t k, int upper);
/* 1-D -> 2-D with a on diagonal k; 2-D -> 1-D diagonal k */
rc_tensor *rc_diag(rc_tensor *a, int64_t k);
rc_tensor *rc_trace(rc_tensor *a); /* 2-D: sum of the main diagonal, 0-d */
/* numpy.tile: reps shorter than ndim are padded with leading 1s, longer pad a's shape */
rc_tensor *rc_tile(rc_tensor *a, int nreps, const int64_t *reps);
/* each slice along dim repeated counts[i] times (n_counts == 1: all the same); dim RC_ALL:
 * over the flattened tensor */
rc_tensor *rc_repeat_interleave(rc_tensor *a, int n_counts, const int64_t *counts, int dim);
rc_tensor *rc_cumprod(rc_tensor *a, int dim);
/* n points from start to stop (n >= 0); logspace: base^each */
rc_tensor *rc_linspace(rc_ctx *c, double start, double stop, int64_t n);
rc_tensor *rc_logspace(rc_ctx *c, double start, double stop, int64_t n, double base);

#endif
