/* Products with a packed weight for the per-step recurrences of the fused cells.
 *
 * Every step of a cell multiplies a small [B, K] matrix (B = the batch, typically 32) by the
 * same weight op(W_h) [K, N]. cblas_sgemm re-packs that weight on every call (for a 512-unit
 * LSTM, 4 MB per step, forward and backward), which costs more than the arithmetic at these
 * shapes. rn_pack copies op(W) once per sequence into column panels of RN_NR floats (panel
 * p holds columns p*NR .. p*NR+NR-1 of every row k, zero-padded), and rn_pgemm runs a
 * register-blocked kernel over it: for each panel, for each block of RN_MR rows of A, an
 * [MR, NR] tile of C is accumulated in registers over all of K (A is read in place).
 *
 * Kernels: AVX-512 (NR = 32, MR = 8: 16 accumulators) and AVX2 + FMA (NR = 16, MR = 6: 12
 * accumulators), chosen at run time. A single row (M = 1: a batch-1 step, generation) goes
 * to rn_vecmat, which reads W in place with the same arithmetic per row. Elsewhere (or for a
 * single use, or a transposed weight at M = 1) rn_pack records the plain matrix and rn_pgemm
 * calls rn_gemm, which the cells also call directly for their whole-sequence products: the
 * runtime's one entry point for products, rc_sgemm (runtime/gemm.c, recur's own cache-blocked
 * kernel for large products where OpenBLAS's core lacks AVX-512, else BLAS).
 * Every kernel sums over k in order with one fused multiply-add per term, so results match
 * BLAS to float rounding (not bit for bit). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu, sched_setaffinity */
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "gemm.h"
#include "rnn_impl.h"

/* ---- the plain product: whole-sequence products, and per-step ones packing skips ---- */

void rn_gemm(rc_ctx *ctx, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
             const float *B, int64_t ldb, int tb, float *C, int64_t ldc, float alpha, float beta) {
  rc_sgemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- packed products ---- */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RG_X86 1
#endif

enum { KIND_PLAIN = 0, KIND_AVX512 = 1, KIND_AVX2 = 2 };
#define RN_MC 128

/* The best kernel this CPU runs; RECUR_GEMM_KERNEL=avx2 or plain asks for a lesser one (for
 * tests and comparisons). */
#ifdef RG_X86
static int cpu_kind(void) {
  const char *want = getenv("RECUR_GEMM_KERNEL");
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (want && strcmp(want, "plain") == 0) return KIND_PLAIN;
  if (want && strcmp(want, "avx2") == 0) return avx2 ? KIND_AVX2 : KIND_PLAIN;
  if (__builtin_cpu_supports("avx512f")) return KIND_AVX512;
  if (avx2) return KIND_AVX2;
  return KIND_PLAIN;
}
#else
static int cpu_kind(void) {
  return KIND_PLAIN;
}
#endif

static int nr_of(int kind) {
  return kind == KIND_AVX512 ? 32 : 16;
}

int64_t rn_pack_floats(int64_t K, int64_t N) {
  /* the larger panel width bounds both layouts */
  return K * ((N + 31) / 32) * 32 + 16;
}

int rn_pack_wanted(int64_t M, int64_t uses) {
  return M >= 2 && uses >= 2 && cpu_kind() != KIND_PLAIN;
}

void rn_pack(rn_pmat *m, float *dst, const float *W, int64_t ldw, int trans, int64_t K, int64_t N) {
  m->w = W;
  m->ldw = ldw;
  m->trans = trans;
  m->K = K;
  m->N = N;
  m->p = NULL;
  m->kind = KIND_PLAIN;
  m->team = NULL;
  m->ctx = NULL;
  if (!dst) return;
  int kind = cpu_kind();
  if (kind == KIND_PLAIN) return;
  int nr = nr_of(kind);
  int64_t panels = (N + nr - 1) / nr;
  /* 64-byte alignment for the panels */
  float *p = (float *)(((uintptr_t)dst + 63) & ~(uintptr_t)63);
  for (int64_t q = 0; q < panels; q++) {
    int64_t n0 = q * nr, nc = N - n0 < nr ? N - n0 : nr;
    float *dp = p + q * K * nr;
    if (!trans) {
      for (int64_t k = 0; k < K; k++) {
        const float *src = W + k * ldw + n0;
        float *d = dp + k * nr;
        memcpy(d, src, (size_t)nc * sizeof(float));
        for (int64_t c = nc; c < nr; c++) d[c] = 0.0f;
      }
    } else { /* op(W)[k][n] = W[n][k] */
      for (int64_t k = 0; k < K; k++) {
        float *d = dp + k * nr;
        for (int64_t c = 0; c < nc; c++) d[c] = W[(n0 + c) * ldw + k];
        for (int64_t c = nc; c < nr; c++) d[c] = 0.0f;
      }
    }
  }
  m->p = p;
  m->kind = kind;
}

#ifdef RG_X86
#define T512 __attribute__((target("avx512f")))
#define T256 __attribute__((target("avx2,fma")))

/* C[mr, 32] = A[mr, K] P[K, 32] (+ add: C itself with ald = ldc, or a bias row with ald = 0);
 * nc <= 32 columns are stored. */
#define K512(MR)                                                                                   \
  T512 static void k512_##MR(int64_t K, const float *A, int64_t lda, const float *P, float *C,     \
                             int64_t ldc, const float *add, int64_t ald, __mmask16 m0,             \
                             __mmask16 m1) {                                                       \
    __m512 c0[MR], c1[MR];                                                                         \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                                         \
      c0[r] = _mm512_setzero_ps();                                                                 \
      c1[r] = _mm512_setzero_ps();                                                                 \
    }                                                                                              \
    for (int64_t k = 0; k < K; k++) {                                                              \
      __m512 b0 = _mm512_load_ps(P + k * 32), b1 = _mm512_load_ps(P + k * 32 + 16);                \
      _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                                       \
        __m512 a = _mm512_set1_ps(A[r * lda + k]);                                                 \
        c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);                                                     \
        c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);                                                     \
      }                                                                                            \
    }                                                                                              \
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {                                         \
      float *c = C + r * ldc;                                                                      \
      if (add) {                                                                                   \
        c0[r] = _mm512_add_ps(c0[r], _mm512_maskz_loadu_ps(m0, add + r * ald));                    \
        c1[r] = _mm512_add_ps(c1[r], _mm512_maskz_loadu_ps(m1, add + r * ald + 16));               \
      }                                                                                            \
      _mm512_mask_storeu_ps(c, m0, c0[r]);                                                         \
      _mm512_mask_storeu_ps(c + 16, m1, c1[r]);                                                    \
    }                                                                                              \
  }
K512(1)
K512(2)
K512(3)
K512(4)
K512(5)
K512(6)
K512(7)
K512(8)

T512 static void pgemm512(const rn_pmat *m, int64_t M, const float *A, int64_t lda, float *C,
                          int64_t ldc, int beta, const float *bias, int64_t q0, int64_t q1) {
  int64_t K = m->K, N = m->N;
  for (int64_t q = q0; q < q1; q++) {
    int64_t n0 = q * 32, nc = N - n0 < 32 ? N - n0 : 32;
    __mmask16 m0 = (__mmask16)(nc >= 16 ? 0xFFFF : (1u << nc) - 1);
    __mmask16 m1 = (__mmask16)(nc >= 32 ? 0xFFFF : nc > 16 ? (1u << (nc - 16)) - 1 : 0);
    const float *P = m->p + q * K * 32;
    for (int64_t i = 0; i < M; i += 8) {
      int64_t mr = M - i < 8 ? M - i : 8;
      const float *a = A + i * lda;
      float *c = C + i * ldc + n0;
      const float *add = bias ? bias + n0 : beta ? c : NULL;
      int64_t ald = bias ? 0 : ldc;
      switch (mr) {
      case 8:
        k512_8(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      case 7:
        k512_7(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      case 6:
        k512_6(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      case 5:
        k512_5(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      case 4:
        k512_4(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      case 3:
        k512_3(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      case 2:
        k512_2(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      default:
        k512_1(K, a, lda, P, c, ldc, add, ald, m0, m1);
        break;
      }
    }
  }
}

/* C[mr, 16] = A[mr, K] P[K, 16] (+ add, as k512); nc <= 16 columns are stored. */
#define K256(MR)                                                                                   \
  T256 static void k256_##MR(int64_t K, const float *A, int64_t lda, const float *P, float *C,     \
                             int64_t ldc, const float *add, int64_t ald, int64_t nc) {             \
    __m256 c0[MR], c1[MR];                                                                         \
    _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                                         \
      c0[r] = _mm256_setzero_ps();                                                                 \
      c1[r] = _mm256_setzero_ps();                                                                 \
    }                                                                                              \
    for (int64_t k = 0; k < K; k++) {                                                              \
      __m256 b0 = _mm256_load_ps(P + k * 16), b1 = _mm256_load_ps(P + k * 16 + 8);                 \
      _Pragma("GCC unroll 6") for (int r = 0; r < MR; r++) {                                       \
        __m256 a = _mm256_broadcast_ss(A + r * lda + k);                                           \
        c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);                                                     \
        c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);                                                     \
      }                                                                                            \
    }                                                                                              \
    for (int r = 0; r < MR; r++) {                                                                 \
      float *c = C + r * ldc;                                                                      \
      if (nc == 16) {                                                                              \
        if (add) {                                                                                 \
          c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(add + r * ald));                            \
          c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(add + r * ald + 8));                        \
        }                                                                                          \
        _mm256_storeu_ps(c, c0[r]);                                                                \
        _mm256_storeu_ps(c + 8, c1[r]);                                                            \
      } else {                                                                                     \
        float buf[16];                                                                             \
        _mm256_storeu_ps(buf, c0[r]);                                                              \
        _mm256_storeu_ps(buf + 8, c1[r]);                                                          \
        for (int64_t j = 0; j < nc; j++) c[j] = add ? add[r * ald + j] + buf[j] : buf[j];          \
      }                                                                                            \
    }                                                                                              \
  }
K256(1)
K256(2)
K256(3)
K256(4)
K256(5)
K256(6)

T256 static void pgemm256(const rn_pmat *m, int64_t M, const float *A, int64_t lda, float *C,
                          int64_t ldc, int beta, const float *bias, int64_t q0, int64_t q1) {
  int64_t K = m->K, N = m->N;
  for (int64_t q = q0; q < q1; q++) {
    int64_t n0 = q * 16, nc = N - n0 < 16 ? N - n0 : 16;
    const float *P = m->p + q * K * 16;
    for (int64_t i = 0; i < M; i += 6) {
      int64_t mr = M - i < 6 ? M - i : 6;
      const float *a = A + i * lda;
      float *c = C + i * ldc + n0;
      const float *add = bias ? bias + n0 : beta ? c : NULL;
      int64_t ald = bias ? 0 : ldc;
      switch (mr) {
      case 6:
        k256_6(K, a, lda, P, c, ldc, add, ald, nc);
        break;
      case 5:
        k256_5(K, a, lda, P, c, ldc, add, ald, nc);
        break;
      case 4:
        k256_4(K, a, lda, P, c, ldc, add, ald, nc);
        break;
      case 3:
        k256_3(K, a, lda, P, c, ldc, add, ald, nc);
        break;
      case 2:
        k256_2(K, a, lda, P, c, ldc, add, ald, nc);
        break;
      default:
        k256_1(K, a, lda, P, c, ldc, add, ald, nc);
        break;
      }
    }
  }
}
#endif

/* ---- one row: rn_vecmat ----
 * A product of one row reads each weight once, so packing it would cost as much as the
 * product: these kernels read W [K, N] in place, a block of columns at a time (8 vectors: as
 * many independent chains as the FMA units keep busy, or 16: 4% faster than 8 on a Zen 4 at
 * [128 x 512], from L2), each column summed over k in order. */

#ifdef RG_X86
/* c[0 .. 16 NV) (the last vector's lanes by `last`) = a W (+ add) */
#define V512(NV)                                                                                   \
  T512 static void v512_##NV(int64_t K, const float *a, const float *W, int64_t ldw,               \
                             const float *add, float *c, __mmask16 last) {                         \
    __m512 acc[NV];                                                                                \
    _Pragma("GCC unroll 16") for (int i = 0; i < NV; i++) acc[i] = _mm512_setzero_ps();            \
    for (int64_t k = 0; k < K; k++) {                                                              \
      __m512 ak = _mm512_set1_ps(a[k]);                                                            \
      const float *w = W + k * ldw;                                                                \
      _Pragma("GCC unroll 16") for (int i = 0; i < NV; i++) acc[i] = _mm512_fmadd_ps(              \
          ak, _mm512_maskz_loadu_ps(i == NV - 1 ? last : 0xFFFF, w + 16 * i), acc[i]);             \
    }                                                                                              \
    _Pragma("GCC unroll 16") for (int i = 0; i < NV; i++) {                                        \
      __mmask16 mk = i == NV - 1 ? last : 0xFFFF;                                                  \
      if (add) acc[i] = _mm512_add_ps(acc[i], _mm512_maskz_loadu_ps(mk, add + 16 * i));            \
      _mm512_mask_storeu_ps(c + 16 * i, mk, acc[i]);                                               \
    }                                                                                              \
  }
V512(1)
V512(2)
V512(3)
V512(4)
V512(5)
V512(6)
V512(7)
V512(8)
V512(16)
typedef void (*v512_fn)(int64_t, const float *, const float *, int64_t, const float *, float *,
                        __mmask16);
static const v512_fn v512_n[9] = {NULL,   v512_1, v512_2, v512_3, v512_4,
                                  v512_5, v512_6, v512_7, v512_8}; /* by vectors */

/* blocks of 256 columns (16 vectors), then what is left in up to 8 vectors at a time, the
 * last of them masked */
T512 static void vecmat512(int64_t K, const float *a, const float *W, int64_t ldw, const float *add,
                           float *c, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + 256 <= j1; j += 256) v512_16(K, a, W + j, ldw, add ? add + j : NULL, c + j, 0xFFFF);
  for (; j < j1; j += 128) {
    int64_t n = j1 - j < 128 ? j1 - j : 128;
    int nv = (int)((n + 15) / 16);
    __mmask16 last = (__mmask16)(n % 16 ? (1u << (n % 16)) - 1 : 0xFFFF);
    v512_n[nv](K, a, W + j, ldw, add ? add + j : NULL, c + j, last);
  }
}

/* AVX2: blocks of 64 columns in 8 vectors; the last columns (fewer than 8) one by one with
 * the same fused multiply-adds */
T256 static void vecmat256(int64_t K, const float *a, const float *W, int64_t ldw, const float *add,
                           float *c, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + 64 <= j1; j += 64) {
    __m256 acc[8];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
      __m256 ak = _mm256_broadcast_ss(a + k);
      const float *w = W + k * ldw + j;
      _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) acc[i] =
          _mm256_fmadd_ps(ak, _mm256_loadu_ps(w + 8 * i), acc[i]);
    }
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
      if (add) acc[i] = _mm256_add_ps(acc[i], _mm256_loadu_ps(add + j + 8 * i));
      _mm256_storeu_ps(c + j + 8 * i, acc[i]);
    }
  }
  for (; j + 8 <= j1; j += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++)
      acc = _mm256_fmadd_ps(_mm256_broadcast_ss(a + k), _mm256_loadu_ps(W + k * ldw + j), acc);
    if (add) acc = _mm256_add_ps(acc, _mm256_loadu_ps(add + j));
    _mm256_storeu_ps(c + j, acc);
  }
  for (; j < j1; j++) {
    float acc = 0.0f;
    for (int64_t k = 0; k < K; k++) acc = __builtin_fmaf(a[k], W[k * ldw + j], acc);
    c[j] = add ? acc + add[j] : acc;
  }
}
#endif

/* elsewhere: blocks of 16 columns, a multiply and an add for each term (a CPU without FMA
 * units would emulate fmaf in software, 20 times slower; nothing here is compared with the
 * vector kernels, which such a CPU does not run) */
static void vecmat_plain(int64_t K, const float *a, const float *W, int64_t ldw, const float *add,
                         float *c, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 16) {
    int64_t n = j1 - j < 16 ? j1 - j : 16;
    float acc[16] = {0};
    for (int64_t k = 0; k < K; k++) {
      const float *w = W + k * ldw + j;
      float ak = a[k];
      for (int64_t i = 0; i < n; i++) acc[i] += ak * w[i];
    }
    for (int64_t i = 0; i < n; i++) c[j + i] = add ? acc[i] + add[j + i] : acc[i];
  }
}

int rn_vecmat_kind(void) {
  return cpu_kind();
}

void rn_vecmat(int kind, int64_t K, const float *a, const float *W, int64_t ldw, const float *add,
               float *c, int64_t j0, int64_t j1) {
  if (j1 <= j0) return;
#ifdef RG_X86
  if (kind == KIND_AVX512) {
    vecmat512(K, a, W, ldw, add, c, j0, j1);
    return;
  }
  if (kind == KIND_AVX2) {
    vecmat256(K, a, W, ldw, add, c, j0, j1);
    return;
  }
#else
  (void)kind;
#endif
  vecmat_plain(K, a, W, ldw, add, c, j0, j1);
}

/* panels q0 .. q1 - 1 of C = A op(W) + beta C, or + the row bias when bias */
static void pgemm_range(const rn_pmat *m, int64_t M, const float *A, int64_t lda, float *C,
                        int64_t ldc, int beta, const float *bias, int64_t q0, int64_t q1) {
#ifdef RG_X86
  /* many rows (an input projection over all steps): chunks of RN_MC rows, so that a chunk of
   * A stays in L2 while every panel passes over it */
  for (int64_t i0 = 0; i0 < M; i0 += RN_MC) {
    int64_t mc = M - i0 < RN_MC ? M - i0 : RN_MC;
    if (m->kind == KIND_AVX512)
      pgemm512(m, mc, A + i0 * lda, lda, C + i0 * ldc, ldc, beta, bias, q0, q1);
    else
      pgemm256(m, mc, A + i0 * lda, lda, C + i0 * ldc, ldc, beta, bias, q0, q1);
  }
#else
  (void)m, (void)M, (void)A, (void)lda, (void)C, (void)ldc, (void)beta, (void)bias, (void)q0,
      (void)q1;
#endif
}

/* a packed product as a job over column panels */
typedef struct {
  const rn_pmat *m;
  int64_t M;
  const float *A;
  int64_t lda;
  float *C;
  int64_t ldc;
  int beta;
  const float *bias;
} pg_job;

static void pg_fn(void *arg, int64_t q0, int64_t q1) {
  const pg_job *j = arg;
  pgemm_range(j->m, j->M, j->A, j->lda, j->C, j->ldc, j->beta, j->bias, q0, q1);
}

/* rn_pgemm and rn_pgemm_bias */
static void pgemm_any(const rn_pmat *m, int64_t M, const float *A, int64_t lda, float *C,
                      int64_t ldc, float beta, const float *bias) {
  if (M <= 0 || m->N <= 0) return;
  if (m->p && m->K > 0 && (beta == 0.0f || beta == 1.0f)) {
    int nr = nr_of(m->kind), b = beta != 0.0f;
    int64_t panels = (m->N + nr - 1) / nr;
    if (m->ctx && m->ctx->gemm_tracing) {
      rc_gemm_call c = {
          M, m->N, m->K, RC_GEMM_PACKED, 0, m->trans, m->team && panels >= 2 ? 2 : 1, m->kind};
      rc_gemm_trace_record(m->ctx, &c);
    }
    if (m->team && panels >= 2) {
      pg_job j = {m, M, A, lda, C, ldc, b, bias};
      /* a kind per packed matrix and row count (a cell's recurrent product, its input
       * projection, each with its own operands) */
      uint64_t kind = (uint64_t)(uintptr_t)m * 31 + (uint64_t)M;
      rc_team_split_learn(m->team, kind, pg_fn, &j, panels, rc_team_cut(m->team, kind, panels, 1));
      return;
    }
    pgemm_range(m, M, A, lda, C, ldc, b, bias, 0, panels);
    return;
  }
  if (M == 1 && !m->trans && (beta == 0.0f || beta == 1.0f)) {
    rn_vecmat(cpu_kind(), m->K, A, m->w, m->ldw, bias ? bias : beta != 0.0f ? C : NULL, C, 0, m->N);
    return;
  }
  if (bias) {
    rc_sgemm_bias(m->ctx, 0, m->trans, M, m->N, m->K, A, lda, m->w, m->ldw, bias, C, ldc);
    return;
  }
  rn_gemm(m->ctx, M, m->N, m->K, A, lda, 0, m->w, m->ldw, m->trans, C, ldc, 1.0f, beta);
}

void rn_pgemm(const rn_pmat *m, int64_t M, const float *A, int64_t lda, float *C, int64_t ldc,
              float beta) {
  pgemm_any(m, M, A, lda, C, ldc, beta, NULL);
}

void rn_pgemm_bias(const rn_pmat *m, int64_t M, const float *A, int64_t lda, const float *bias,
                   float *C, int64_t ldc) {
  pgemm_any(m, M, A, lda, C, ldc, 1.0f, bias);
}
