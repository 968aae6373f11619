/* Linear algebra: matmul (1-D, 2-D, batched 3-D with broadcasting), mm, bmm, mv, dot, outer
 * and the allocation-free gemm_into. Every product goes through rc_sgemm (runtime/gemm.c: recur's
 * own kernel for large products where OpenBLAS's core lacks AVX-512, else cblas_sgemm).
 *
 * Each operand is described as a batch of matrices (a `mat`: base pointer, batch/rows/cols
 * and their strides). A matrix whose column stride is 1 is handed to BLAS as row-major
 * (lda = row stride); one whose row stride is 1 (a transposed view) is handed over with
 * CblasTrans (lda = column stride). Only when neither holds (or an ld would be invalid, e.g.
 * a stride of 0 from expand) is the operand copied to contiguous memory. Transposing a
 * `mat` swaps rows and columns without touching memory, which is how the backward passes
 * get aᵀ and bᵀ for free. */
#include <cblas.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"
#include "ops.h"

/* Largest value a blasint can hold (int in the LP64 build, 64-bit otherwise). */
#define BLAS_MAX ((int64_t)(sizeof(blasint) >= 8 ? INT64_MAX : INT_MAX))

typedef struct {
  rc_ctx *ctx;            /* whose trace records the products (runtime/gemm.h) */
  float *p;               /* element (0, 0) of batch 0 */
  int64_t nb, rows, cols; /* batch count (1: no batch / broadcast), matrix shape */
  int64_t bs, rs, cs;     /* strides in elements; bs unused when nb == 1 */
} mat;

/* Which tensor dim holds the batch, the rows and the columns of a `mat` (-1: size 1). */
typedef struct {
  int d[3];
} dmap;

static int64_t imax(int64_t a, int64_t b) {
  return a > b ? a : b;
}

/* How BLAS can read a rows x cols matrix with strides rs, cs (row-major interface):
 * 1 with *tr, *ld set, or 0 when it cannot (the caller copies). A dim of size 1 has no
 * meaningful stride and never prevents a mapping, nor does an empty matrix. */
static int map_blas(int64_t rows, int64_t cols, int64_t rs, int64_t cs, CBLAS_TRANSPOSE *tr,
                    blasint *ld) {
  if (rows == 0 || cols == 0) { /* never reaches BLAS (bgemm returns first): no copy */
    *tr = CblasNoTrans;
    *ld = 1;
    return 1;
  }
  if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= imax(1, cols))) {
    int64_t l = rows <= 1 ? imax(1, cols) : rs;
    if (l > BLAS_MAX) return 0;
    *tr = CblasNoTrans;
    *ld = (blasint)l;
    return 1;
  }
  if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= imax(1, rows))) {
    int64_t l = cols <= 1 ? imax(1, rows) : cs;
    if (l > BLAS_MAX) return 0;
    *tr = CblasTrans;
    *ld = (blasint)l;
    return 1;
  }
  return 0;
}

static int mat_ok(const mat *m) {
  CBLAS_TRANSPOSE tr;
  blasint ld;
  return map_blas(m->rows, m->cols, m->rs, m->cs, &tr, &ld);
}

static mat mat_t(mat m) {
  int64_t t = m.rows;
  m.rows = m.cols;
  m.cols = t;
  t = m.rs;
  m.rs = m.cs;
  m.cs = t;
  return m;
}

static int64_t dsize(const rc_tensor *t, int d) {
  return d < 0 ? 1 : t->size[d];
}
static int64_t dsize_s(const rc_shape *s, int d) {
  return d < 0 ? 1 : s->size[d];
}

static mat mat_of(rc_tensor *t, dmap m) {
  mat r;
  r.ctx = t->ctx;
  r.p = rc_data(t);
  r.nb = dsize(t, m.d[0]);
  r.rows = dsize(t, m.d[1]);
  r.cols = dsize(t, m.d[2]);
  r.bs = m.d[0] < 0 ? 0 : t->stride[m.d[0]];
  r.rs = m.d[1] < 0 ? 0 : t->stride[m.d[1]];
  r.cs = m.d[2] < 0 ? 0 : t->stride[m.d[2]];
  return r;
}

/* The `mat` view of t; if BLAS cannot read t's layout, of a contiguous copy (a new
 * reference in *hold, NULL otherwise). -1 on allocation failure. */
static int mat_prep(rc_tensor *t, dmap m, mat *out, rc_tensor **hold) {
  *hold = NULL;
  *out = mat_of(t, m);
  if (mat_ok(out)) return 0;
  *hold = rc_copy_contiguous(t);
  if (!*hold) return -1;
  *out = mat_of(*hold, m);
  return 0;
}

static float *mat_at(const mat *m, int64_t b) {
  return m->p + (m->nb > 1 ? b * m->bs : 0);
}

static void sgemm1(const mat *A, const float *pa, const mat *B, const float *pb, float *pc,
                   blasint ldc, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  CBLAS_TRANSPOSE ta, tb;
  blasint lda, ldb;
  map_blas(A->rows, A->cols, A->rs, A->cs, &ta, &lda);
  map_blas(B->rows, B->cols, B->rs, B->cs, &tb, &ldb);
  rc_sgemm(A->ctx, ta == CblasTrans, tb == CblasTrans, M, N, K, alpha, pa, lda, pb, ldb, beta, pc,
           ldc);
}

/* C = beta * C over a [nb, rows, cols] row-major output (beta 0 writes zeros, even over NaN). */
static void scale_c(const mat *C, int64_t nb, float beta) {
  for (int64_t b = 0; b < nb; b++) {
    float *pc = mat_at(C, b);
    for (int64_t i = 0; i < C->rows; i++) {
      float *row = pc + i * C->rs;
      for (int64_t j = 0; j < C->cols; j++)
        row[j * C->cs] = beta == 0.0f ? 0.0f : beta * row[j * C->cs];
    }
  }
}

/* Stacks a batched mat's matrices along rows ([nb*rows, cols]) when its layout allows. */
static int stack_rows(const mat *m, mat *out) {
  if (m->nb <= 1) return 0;
  *out = *m;
  out->nb = 1;
  if (m->rows != 1 && m->bs != m->rows * m->rs) return 0;
  if (m->rows == 1) out->rs = m->bs;
  if (m->rows > BLAS_MAX / m->nb) return 0;
  out->rows = m->nb * m->rows;
  return mat_ok(out);
}

/* Same along columns ([rows, nb*cols]). */
static int stack_cols(const mat *m, mat *out) {
  mat t = mat_t(*m), s;
  if (!stack_rows(&t, &s)) return 0;
  *out = mat_t(s);
  return 1;
}

/* The workhorse. A: [nb|1, M, K], B: [nb|1, K, N], both readable by BLAS (mat_ok).
 * C: row-major ([nb, M, N], or [M, N] when reduce) with cs 1 (or N <= 1).
 * reduce = 0: C[b] = alpha A[b] B[b] + beta C[b] for each b < nb (a batch of 1 broadcasts).
 * reduce = 1: C = alpha sum_b A[b] B[b] + beta C (the gradient of a broadcast operand). */
static void bgemm(const mat *A, const mat *B, const mat *C, int64_t nb, int reduce, float alpha,
                  float beta) {
  int64_t M = A->rows, K = A->cols, N = B->cols;
  if (M == 0 || N == 0) return;
  if (K == 0 || nb == 0) { /* empty sums: BLAS must not see K = 0 with its ld rules */
    scale_c(C, reduce ? 1 : nb, beta);
    return;
  }
  blasint ldc = (blasint)(M <= 1 ? imax(1, N) : C->rs);
  mat sa, sb, sc;
  if (nb == 1) {
    sgemm1(A, A->p, B, B->p, C->p, ldc, M, N, K, alpha, beta);
  } else if (!reduce && B->nb == 1 && C->nb > 1 && stack_rows(A, &sa) && stack_rows(C, &sc)) {
    /* [nb, M, K] x [K, N]: one [nb*M, K] x [K, N] product */
    blasint ld = (blasint)(sc.rows <= 1 ? imax(1, N) : sc.rs);
    sgemm1(&sa, sa.p, B, B->p, sc.p, ld, sc.rows, N, K, alpha, beta);
  } else if (reduce && stack_cols(A, &sa) && stack_rows(B, &sb)) {
    /* sum_b A[b] B[b] = [A0 A1 ...] [B0; B1; ...]: one product with inner size nb*K */
    sgemm1(&sa, sa.p, &sb, sb.p, C->p, ldc, M, N, sa.cols, alpha, beta);
  } else {
    for (int64_t b = 0; b < nb; b++) {
      float *pc = reduce ? C->p : mat_at(C, b);
      float bt = reduce && b > 0 ? 1.0f : beta;
      sgemm1(A, mat_at(A, b), B, mat_at(B, b), pc, ldc, M, N, K, alpha, bt);
    }
  }
}

/* ---- the differentiable op ---- */

/* Node parameters: i[0..2] dmap of a, i[3..5] of b, i[6..8] of the output. */
static void put_map(rc_node *n, int k, dmap m) {
  for (int j = 0; j < 3; j++) n->i[k * 3 + j] = m.d[j];
}
static dmap get_map(const rc_node *n, int k) {
  dmap m;
  for (int j = 0; j < 3; j++) m.d[j] = (int)n->i[k * 3 + j];
  return m;
}

/* An empty tensor of shape s viewed through m, contiguous. */
static rc_tensor *alloc_like_shape(rc_ctx *c, const rc_shape *s, dmap m, mat *out) {
  rc_tensor *t = rc_empty(c, s->ndim, s->size);
  if (t) *out = mat_of(t, m);
  return t;
}

static int matmul_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  dmap am = get_map(n, 0), bm = get_map(n, 1), om = get_map(n, 2);
  int64_t nb = dsize_s(&n->out_shape[0], om.d[0]);
  rc_tensor *hg = NULL, *ha = NULL, *hb = NULL;
  mat G, A, B, R;
  int rc = 0;
  if (mat_prep(gout[0], om, &G, &hg)) return -1;
  if (n->next[0].fn) { /* grad_a [Ba, M, K] = G [nb, M, N] . B^T [Bb, N, K] */
    rc_tensor *b = rc_node_saved(n, 1);
    if (!b || mat_prep(b, bm, &B, &hb)) {
      rc = -1;
      goto done;
    }
    gin[0] = alloc_like_shape(n->ctx, &n->in_shape[0], am, &R);
    if (!gin[0]) {
      rc = -1;
      goto done;
    }
    mat Bt = mat_t(B);
    bgemm(&G, &Bt, &R, nb, R.nb != nb, 1.0f, 0.0f);
  }
  if (n->next[1].fn) { /* grad_b [Bb, K, N] = A^T [Ba, K, M] . G [nb, M, N] */
    rc_tensor *a = rc_node_saved(n, 0);
    if (!a || mat_prep(a, am, &A, &ha)) {
      rc = -1;
      goto done;
    }
    gin[1] = alloc_like_shape(n->ctx, &n->in_shape[1], bm, &R);
    if (!gin[1]) {
      rc = -1;
      goto done;
    }
    mat At = mat_t(A);
    bgemm(&At, &G, &R, nb, R.nb != nb, 1.0f, 0.0f);
  }
done:
  rc_release(hg);
  rc_release(ha);
  rc_release(hb);
  return rc;
}

/* out (shape osize, viewed through om) = a (through am) . b (through bm), batch nb.
 * Shapes are validated by the callers. */
static rc_tensor *mm_op(const char *node_name, rc_tensor *a, dmap am, rc_tensor *b, dmap bm,
                        int ondim, const int64_t *osize, dmap om, int64_t nb) {
  rc_ctx *c = a->ctx;
  rc_tensor *out = rc_empty(c, ondim, osize);
  if (!out) return NULL;
  rc_tensor *ha = NULL, *hb = NULL;
  mat A, B, C = mat_of(out, om);
  if (mat_prep(a, am, &A, &ha) || mat_prep(b, bm, &B, &hb)) {
    rc_release(ha);
    rc_release(out);
    return NULL;
  }
  bgemm(&A, &B, &C, nb, 0, 1.0f, 0.0f);
  rc_release(ha);
  rc_release(hb);
  rc_tensor *ins[2] = {a, b};
  rc_node *n;
  if (rc_record(c, node_name, matmul_backward, ins, 2, &out, &n)) return NULL;
  if (n) {
    put_map(n, 0, am);
    put_map(n, 1, bm);
    put_map(n, 2, om);
    if (n->next[1].fn) rc_node_save(n, 0, a); /* grad_b needs a */
    if (n->next[0].fn) rc_node_save(n, 1, b); /* grad_a needs b */
  }
  return out;
}

/* Work units of a GEMM for the budget (rc_charge): one per 64 multiply-adds. */
static uint64_t gemm_units(int64_t nb, int64_t m, int64_t n, int64_t k) {
  double u = (double)nb * (double)m * (double)n * (double)k / 64.0;
  return u > 1e18 ? (uint64_t)1e18 : (uint64_t)u + 1;
}

static int check_blas_size(rc_ctx *c, const char *fn, const rc_tensor *a, const rc_tensor *b,
                           int64_t M, int64_t N, int64_t K) {
  if (M > BLAS_MAX || N > BLAS_MAX || K > BLAS_MAX) {
    char s1[128], s2[128];
    return rc_error(c, "%s: shapes %s and %s are too large for BLAS", fn,
                    rc_shape_str(a, s1, sizeof s1), rc_shape_str(b, s2, sizeof s2));
  }
  return 0;
}

static rc_tensor *matmul_impl(const char *fn, const char *node_name, rc_tensor *a, rc_tensor *b) {
  rc_ctx *c = a->ctx;
  char s1[128], s2[128];
  rc_shape_str(a, s1, sizeof s1);
  rc_shape_str(b, s2, sizeof s2);
  if (a->ndim == 0 || b->ndim == 0)
    return rc_error_null(c,
                         "%s: both arguments must have at least one dimension, got shapes %s "
                         "and %s",
                         fn, s1, s2);
  if (a->ndim > 3 || b->ndim > 3)
    return rc_error_null(c, "%s: shapes %s and %s: only 1-D, 2-D and 3-D tensors are supported", fn,
                         s1, s2);
  static const dmap amaps[4] = {{{0}}, {{-1, -1, 0}}, {{-1, 0, 1}}, {{0, 1, 2}}};
  static const dmap bmaps[4] = {{{0}}, {{-1, 0, -1}}, {{-1, 0, 1}}, {{0, 1, 2}}};
  dmap am = amaps[a->ndim], bm = bmaps[b->ndim];
  int64_t Ka = dsize(a, am.d[2]), Kb = dsize(b, bm.d[1]);
  if (Ka != Kb)
    return rc_error_null(c, "%s: shapes %s and %s do not match (%lld vs %lld)", fn, s1, s2,
                         (long long)Ka, (long long)Kb);
  int64_t Ba = dsize(a, am.d[0]), Bb = dsize(b, bm.d[0]);
  if (Ba != Bb && Ba != 1 && Bb != 1)
    return rc_error_null(c, "%s: batch dimensions of shapes %s and %s do not match (%lld vs %lld)",
                         fn, s1, s2, (long long)Ba, (long long)Bb);
  int64_t M = dsize(a, am.d[1]), N = dsize(b, bm.d[2]), nb = Ba == 1 ? Bb : Ba;
  if (check_blas_size(c, fn, a, b, M, N, Ka)) return NULL;
  if (rc_charge(c, fn, gemm_units(nb, M, N, Ka))) return NULL;
  /* output: [nb] if batched, then M unless a is 1-D, then N unless b is 1-D */
  int64_t osize[3];
  int ondim = 0;
  dmap om = {{-1, -1, -1}};
  if (a->ndim == 3 || b->ndim == 3) {
    om.d[0] = ondim;
    osize[ondim++] = nb;
  }
  if (a->ndim > 1) {
    om.d[1] = ondim;
    osize[ondim++] = M;
  }
  if (b->ndim > 1) {
    om.d[2] = ondim;
    osize[ondim++] = N;
  }
  return mm_op(node_name, a, am, b, bm, ondim, osize, om, nb);
}

rc_tensor *rc_matmul(rc_tensor *a, rc_tensor *b) {
  return matmul_impl("matmul", "MatmulBackward", a, b);
}

static rc_tensor *check_ndims(const char *fn, rc_tensor *a, int na, rc_tensor *b, int nb) {
  if (a->ndim == na && b->ndim == nb) return a;
  char s1[128], s2[128];
  return rc_error_null(a->ctx, "%s: expected a %d-D and a %d-D tensor, got shapes %s and %s", fn,
                       na, nb, rc_shape_str(a, s1, sizeof s1), rc_shape_str(b, s2, sizeof s2));
}

rc_tensor *rc_mm(rc_tensor *a, rc_tensor *b) {
  if (!check_ndims("mm", a, 2, b, 2)) return NULL;
  return matmul_impl("mm", "MmBackward", a, b);
}

rc_tensor *rc_bmm(rc_tensor *a, rc_tensor *b) {
  if (!check_ndims("bmm", a, 3, b, 3)) return NULL;
  if (a->size[0] != b->size[0]) {
    char s1[128], s2[128];
    return rc_error_null(a->ctx, "bmm: batch sizes of shapes %s and %s differ (%lld vs %lld)",
                         rc_shape_str(a, s1, sizeof s1), rc_shape_str(b, s2, sizeof s2),
                         (long long)a->size[0], (long long)b->size[0]);
  }
  return matmul_impl("bmm", "BmmBackward", a, b);
}

rc_tensor *rc_mv(rc_tensor *a, rc_tensor *b) {
  if (!check_ndims("mv", a, 2, b, 1)) return NULL;
  return matmul_impl("mv", "MvBackward", a, b);
}

rc_tensor *rc_dot(rc_tensor *a, rc_tensor *b) {
  if (!check_ndims("dot", a, 1, b, 1)) return NULL;
  return matmul_impl("dot", "DotBackward", a, b);
}

rc_tensor *rc_outer(rc_tensor *a, rc_tensor *b) {
  if (!check_ndims("outer", a, 1, b, 1)) return NULL;
  if (check_blas_size(a->ctx, "outer", a, b, a->size[0], b->size[0], 1)) return NULL;
  /* a as an [n, 1] column times b as a [1, m] row */
  dmap am = {{-1, 0, -1}}, bm = {{-1, -1, 0}}, om = {{-1, 0, 1}};
  int64_t osize[2] = {a->size[0], b->size[0]};
  return mm_op("OuterBackward", a, am, b, bm, 2, osize, om, 1);
}

/* ---- gemm_into ---- */

/* Address range [lo, hi) that t's elements span (empty when t has none). */
static void span(const rc_tensor *t, const float **lo, const float **hi) {
  const float *p = rc_data(t);
  int64_t mn = 0, mx = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (t->size[i] == 0) {
      *lo = *hi = p;
      return;
    }
    int64_t e = (t->size[i] - 1) * t->stride[i];
    if (e < 0)
      mn += e;
    else
      mx += e;
  }
  *lo = p + mn;
  *hi = p + mx + 1;
}

static int overlaps(const rc_tensor *x, const rc_tensor *y) {
  if (x->storage != y->storage) return 0;
  const float *xl, *xh, *yl, *yh;
  span(x, &xl, &xh);
  span(y, &yl, &yh);
  return xl < xh && yl < yh && xl < yh && yl < xh;
}

int rc_gemm_into(rc_tensor *out, rc_tensor *a, int ta, rc_tensor *b, int tb, float alpha,
                 float beta) {
  rc_ctx *c = out->ctx;
  char s0[128], s1[128], s2[128];
  rc_shape_str(out, s0, sizeof s0);
  rc_shape_str(a, s1, sizeof s1);
  rc_shape_str(b, s2, sizeof s2);
  if (out->ndim != 2 || a->ndim != 2 || b->ndim != 2)
    return rc_error(c, "gemm_into: out, a and b must be 2-D, got shapes %s, %s and %s", s0, s1, s2);
  dmap m2 = {{-1, 0, 1}};
  mat A = mat_of(a, m2), B = mat_of(b, m2), C = mat_of(out, m2);
  if (ta) A = mat_t(A);
  if (tb) B = mat_t(B);
  if (A.cols != B.rows)
    return rc_error(c, "gemm_into: shapes %s%s and %s%s do not match (%lld vs %lld)", s1,
                    ta ? " (transposed)" : "", s2, tb ? " (transposed)" : "", (long long)A.cols,
                    (long long)B.rows);
  if (C.rows != A.rows || C.cols != B.cols)
    return rc_error(c, "gemm_into: out has shape %s, expected [%lld, %lld]", s0, (long long)A.rows,
                    (long long)B.cols);
  if (check_blas_size(c, "gemm_into", a, b, A.rows, B.cols, A.cols)) return -1;
  if (rc_charge(c, "gemm_into", gemm_units(1, A.rows, B.cols, A.cols))) return -1;
  CBLAS_TRANSPOSE tr;
  blasint ld;
  if (!map_blas(C.rows, C.cols, C.rs, C.cs, &tr, &ld) || tr != CblasNoTrans)
    return rc_error(c,
                    "gemm_into: out (shape %s, strides [%lld, %lld]) must be contiguous or "
                    "row-major strided",
                    s0, (long long)out->stride[0], (long long)out->stride[1]);
  if (overlaps(out, a) || overlaps(out, b))
    return rc_error(c, "gemm_into: out shares memory with %s", overlaps(out, a) ? "a" : "b");
  /* copies only for layouts BLAS cannot read (no stride 1, or a stride of 0) */
  rc_tensor *ha = NULL, *hb = NULL;
  if (!mat_ok(&A)) {
    if (!(ha = rc_copy_contiguous(a))) return -1;
    A = mat_of(ha, m2);
    if (ta) A = mat_t(A);
  }
  if (!mat_ok(&B)) {
    if (!(hb = rc_copy_contiguous(b))) {
      rc_release(ha);
      return -1;
    }
    B = mat_of(hb, m2);
    if (tb) B = mat_t(B);
  }
  bgemm(&A, &B, &C, 1, 0, alpha, beta);
  rc_release(ha);
  rc_release(hb);
  rc_bump_version(out);
  return 0;
}
