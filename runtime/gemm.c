/* The runtime's one entry point for matrix products (rc_sgemm), with recur's own AVX-512
 * kernel for the large ones.
 *
 * Why a kernel of our own: OpenBLAS picks its kernels by the core it detects or by
 * OPENBLAS_CORETYPE, and a machine can run it with a core below what the CPU has (on the AMD
 * EPYC Zen 5 of the bench, OPENBLAS_CORETYPE=Haswell gives the AVX2 kernel: a 1536^3 sgemm at
 * 105 GFLOP/s on one thread, against 197-201 with the SkylakeX / Cooperlake ones). Where the
 * CPU has AVX-512F and OpenBLAS's core is not an AVX-512 one, products of at least GEMM_MIN
 * multiply-adds run here. The rule depends on the CPU, OpenBLAS's core and the environment
 * only (never on timings), so which kernel computed a result is known in advance.
 *
 * The kernel is the usual cache-blocked one (Goto; BLIS's loop order): for each block of NC
 * columns and KC inner indices, op(B) is packed into panels of NR = 32 columns ([k][32], zero
 * padded); for each block of MC rows, op(A) is packed into panels of MR = 12 rows ([k][12],
 * zero padded, alpha folded in; an unscaled A^T's whole panels are read in place); a 12 x 32 tile
 * of C is accumulated in 24 registers over the KC block, one fused multiply-add per term in k
 * order, and added to C (scaled by beta on the first block: beta 0 never reads C). A B panel (KC x
 * 32, 32 KB) stays in L1 while the A panels of the row block (MC x KC, 288 KB) stream from L2.
 *
 * Two threads: with more than one BLAS thread, a product of at least GEMM_SPLIT_MIN
 * multiply-adds is split by columns (rows when it has few columns), the second half on the
 * runtime context's helper thread (runtime/team.c; a thread of its own for a product without
 * a context). Each half packs its own operands, and every element is summed in the same
 * order either way, so the split does not change the result; while the helper keeps coming
 * late (another process holds the other core), products run on one thread. The packing
 * buffers belong to the runtime context and are kept for its next product (rc_ctx's
 * gemm_buf: two, for the two products the layer wavefront runs at once). */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "team.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GM_X86 1
#endif

#define MR 12
#define NR 32
#ifndef KC
#define KC 256
#endif
#ifndef MC
#define MC 288 /* a multiple of MR */
#endif
#ifndef NC
#define NC 4096 /* a multiple of NR */
#endif
/* multiply-adds from which recur's kernel runs (below, packing costs more than it saves) */
#define GEMM_MIN (1 << 15)
/* ... and from which it is split over two threads: handing half to the context's helper
 * costs a few microseconds (a char-RNN H = 128 readout, 13M multiply-adds, gains at 2^23;
 * with a thread started per product, at ~20-50 us, the line was 2^24) */
#define GEMM_SPLIT_MIN (1 << 23)

/* ---- which kernel ---- */

/* OpenBLAS cores with AVX-512 kernels of their own (lower case) */
static int core_has_avx512(const char *core) {
  static const char *const names[] = {"skylakex", "cooperlake", "sapphirerapids"};
  char low[64];
  size_t i = 0;
  for (; core && core[i] && i + 1 < sizeof low; i++)
    low[i] = (char)(core[i] >= 'A' && core[i] <= 'Z' ? core[i] - 'A' + 'a' : core[i]);
  low[i] = '\0';
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
    if (strstr(low, names[k])) return 1;
  return 0;
}

static int cpu_avx512(void) {
#ifdef GM_X86
  return __builtin_cpu_supports("avx512f");
#else
  return 0;
#endif
}

/* recur's kernel for large products? A few checks per product (no global may cache them). */
static int own_wanted(void) {
  if (!cpu_avx512() || core_has_avx512(openblas_get_corename())) return 0;
  const char *want = getenv("RECUR_GEMM_KERNEL");
  return !(want &&
           (strcmp(want, "blas") == 0 || strcmp(want, "plain") == 0 || strcmp(want, "avx2") == 0));
}

int rc_gemm_route(int64_t M, int64_t N, int64_t K) {
  /* at least one whole tile each way, and columns that fill most of their 32-wide panels (33
   * to 63 columns, or fewer than 12 rows, or K < 8, ran at 30-90% of OpenBLAS's Haswell
   * kernel) */
  if (M < MR || K < 8 || N < NR || (N < 2 * NR && N != NR)) return 0;
  double madds = (double)M * (double)N * (double)K;
  if (madds < GEMM_MIN || !own_wanted()) return 0;
  return madds >= GEMM_SPLIT_MIN && openblas_get_num_threads() > 1 ? 2 : 1;
}

/* ---- the kernel ---- */

#ifdef GM_X86
#define T512 __attribute__((target("avx512f")))

/* C[mr, nc] = alpha-scaled sums (already in A) + beta add (add NULL: nothing), from the panels
 * Ap [kc][MR] with row stride as (MR packed, lda where op(A) = A^T is read in place) and Bp
 * [kc][NR]; add is C itself (add_ld = ldc) or a bias row for every row (add_ld = 0); m0, m1
 * mask the columns of the two halves. `half` (a constant in each instance below): the first
 * half only, for a last panel of at most 16 columns, the same sums (a char-RNN readout's 65
 * columns are two panels and one column; its product took 0.22 ms with the third panel
 * whole, 0.17 with it half). */
T512 static inline __attribute__((always_inline)) void
tile_k(int64_t kc, const float *restrict Ap, int64_t as, const float *restrict Bp, float *C,
       int64_t ldc, int mr, __mmask16 m0, __mmask16 m1, const float *add, int64_t add_ld,
       float beta, int half) {
  __m512 c0[MR], c1[MR];
  /* C's lines are fetched while the sums run (a 12 x 32 tile whose rows are 8 KB apart, as
   * at N = 2048, otherwise waits for each of them at the end) */
  for (int r = 0; r < mr; r++) {
    _mm_prefetch((const char *)(C + r * ldc), _MM_HINT_T1);
    if (!half) _mm_prefetch((const char *)(C + r * ldc + 31), _MM_HINT_T1);
  }
  _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
    c0[r] = _mm512_setzero_ps();
    c1[r] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; k++) {
    __m512 b0 = _mm512_load_ps(Bp + k * NR), b1 = half ? b0 : _mm512_load_ps(Bp + k * NR + 16);
    _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
      __m512 a = _mm512_set1_ps(Ap[k * as + r]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      if (!half) c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
  __m512 vb = _mm512_set1_ps(beta);
  _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {
    if (r >= mr) break;
    float *c = C + r * ldc;
    if (add) {
      const float *a = add + r * add_ld;
      c0[r] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, a), c0[r]);
      if (!half) c1[r] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, a + 16), c1[r]);
    }
    _mm512_mask_storeu_ps(c, m0, c0[r]);
    if (!half) _mm512_mask_storeu_ps(c + 16, m1, c1[r]);
  }
}

T512 static void tile(int64_t kc, const float *restrict Ap, int64_t as, const float *restrict Bp,
                      float *C, int64_t ldc, int mr, __mmask16 m0, __mmask16 m1, const float *add,
                      int64_t add_ld, float beta) {
  tile_k(kc, Ap, as, Bp, C, ldc, mr, m0, m1, add, add_ld, beta, 0);
}

T512 static void tile_half(int64_t kc, const float *restrict Ap, int64_t as,
                           const float *restrict Bp, float *C, int64_t ldc, int mr, __mmask16 m0,
                           const float *add, int64_t add_ld, float beta) {
  tile_k(kc, Ap, as, Bp, C, ldc, mr, m0, 0, add, add_ld, beta, 1);
}
#endif

/* ---- the packing (AVX-512, like the kernel: elsewhere rc_sgemm_own never runs) ---- */

#ifdef GM_X86
/* r[i][j] -> r[j][i] for a 16 x 16 block in registers (unrolled, else the arrays live on the
 * stack) */
T512 static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
  __m512 t[16];
  _Pragma("GCC unroll 8") for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  _Pragma("GCC unroll 4") for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++) {
    int i = q / 4 * 8 + q % 4; /* 0 .. 3, 8 .. 11 */
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
  }
  _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

/* dst[k][W] = scale src[l][k] (lines l < n, 0 up to W; k < kc), W 12 or 32: panels from a
 * matrix stored across them (op(A) rows from A, op(B) columns from B^T), 16 x 16 blocks at a
 * time, so that every row is read in runs of 16 floats; `scaled` 0 copies (alpha 1, or B) */
T512 static inline __attribute__((always_inline)) void pack_across(const float *src, int64_t ld,
                                                                   int64_t n, int64_t kc, int W,
                                                                   int scaled, float scale,
                                                                   float *restrict dst) {
  __m512 vs = _mm512_set1_ps(scale);
  for (int64_t lr = 0; lr < n; lr += W, src += W * ld, dst += W * kc) {
    int64_t nl = n - lr;
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      int kn = (int)(kc - k0 < 16 ? kc - k0 : 16);
      __mmask16 km = (__mmask16)(kn == 16 ? 0xFFFF : (1u << kn) - 1);
      /* 4 blocks ahead, or into the next panel: the rows are far apart and each is read in
       * short runs */
      int64_t pk = k0 + 64 < kc ? k0 + 64 : k0 + 64 - kc, pl = k0 + 64 < kc ? 0 : W;
      if (pk >= kc) pk = kc - 1;
      for (int g = 0; g < W; g += 16) {
        __m512 r[16];
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) {
          if (g + i >= W || g + i + pl >= nl) continue;
          _mm_prefetch((const char *)(src + (g + i + pl) * ld + pk), _MM_HINT_T0);
        }
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) {
          r[i] = _mm512_setzero_ps();
          if (g + i >= W || g + i >= nl) continue;
          r[i] = _mm512_maskz_loadu_ps(km, src + (g + i) * ld + k0);
          if (scaled) r[i] = _mm512_mul_ps(vs, r[i]);
        }
        transpose16(r);
        float *d = dst + k0 * W + g;
        if (W == 12 && kn == 16) {
          /* 16 rows of 12 are 12 whole vectors: 4 rows make 3 */
          const __m512i i0 =
              _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19);
          const __m512i i1 =
              _mm512_setr_epi32(4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23);
          const __m512i i2 =
              _mm512_setr_epi32(8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27);
          _Pragma("GCC unroll 4") for (int q = 0; q < 16; q += 4) {
            _mm512_storeu_ps(d + q * 12, _mm512_permutex2var_ps(r[q], i0, r[q + 1]));
            _mm512_storeu_ps(d + q * 12 + 16, _mm512_permutex2var_ps(r[q + 1], i1, r[q + 2]));
            _mm512_storeu_ps(d + q * 12 + 32, _mm512_permutex2var_ps(r[q + 2], i2, r[q + 3]));
          }
          continue;
        }
        __mmask16 wm = (__mmask16)(W - g >= 16 ? 0xFFFF : (1u << (W - g)) - 1);
        _Pragma("GCC unroll 16") for (int kk = 0; kk < 16; kk++) {
          if (kk < kn) _mm512_mask_storeu_ps(d + kk * W, wm, r[kk]);
        }
      }
    }
  }
}

/* rows packed at a time: 8 read streams, whole lines written */
#define KB 8
/* dst[k][W] = scale src[k][l] (lines l < n, 0 up to W; k < kc), W 12 or 32: panels from a
 * matrix stored along them (op(A) rows from A^T, op(B) columns from B), KB rows at a time
 * (a memcpy per row and panel, compiled to rep movsq, ran at a quarter to a half of this speed) */
T512 static inline __attribute__((always_inline)) void pack_down(const float *src, int64_t ld,
                                                                 int64_t n, int64_t kc, int W,
                                                                 int scaled, float scale,
                                                                 float *restrict dst) {
  __m512 vs = _mm512_set1_ps(scale);
  for (int64_t k0 = 0; k0 < kc; k0 += KB) {
    int64_t kb = kc - k0 < KB ? kc - k0 : KB;
    for (int64_t lr = 0; lr < n; lr += W) {
      int64_t nl = n - lr;
      __mmask16 m0 = (__mmask16)(nl >= 16 ? 0xFFFF : (1u << nl) - 1);
      __mmask16 m1 = (__mmask16)(nl >= 32 ? 0xFFFF : nl > 16 ? (1u << (nl - 16)) - 1 : 0);
      if (W == 12) m0 &= 0x0FFF;
      for (int64_t k = k0; k < k0 + kb; k++) {
        const float *s = src + k * ld + lr;
        float *d = dst + lr * kc + k * W;
        __m512 x0 = _mm512_maskz_loadu_ps(m0, s);
        if (scaled) x0 = _mm512_maskz_mul_ps(m0, vs, x0);
        if (W == 12) {
          _mm512_mask_storeu_ps(d, 0x0FFF, x0);
        } else {
          __m512 x1 = _mm512_maskz_loadu_ps(m1, s + 16);
          if (scaled) x1 = _mm512_maskz_mul_ps(m1, vs, x1);
          _mm512_storeu_ps(d, x0);
          _mm512_storeu_ps(d + 16, x1);
        }
      }
    }
  }
}

/* Panels of W lines (MR rows of op(A), or NR columns of op(B)), [k][W], zero padded: lines
 * l0 .. l0 + n, inner indices p0 .. p0 + kc of a matrix stored with stride ld, scaled by
 * `scale`. `across`: line l is stored row l (inner index along it); else stored row k holds
 * inner index k of every line. Both read the stored matrix along its rows: walking down a
 * column of a wide matrix would touch a new page at every step. */
T512 static void pack_panels(int across, const float *M, int64_t ld, float scale, int64_t l0,
                             int64_t n, int64_t p0, int64_t kc, int W, float *restrict dst) {
  /* each case its own copy of the loops, with W and the scaling known */
  if (across) {
    const float *src = M + l0 * ld + p0;
    if (W == NR) /* B: never scaled */
      pack_across(src, ld, n, kc, NR, 0, 1.0f, dst);
    else if (scale == 1.0f)
      pack_across(src, ld, n, kc, MR, 0, 1.0f, dst);
    else
      pack_across(src, ld, n, kc, MR, 1, scale, dst);
    return;
  }
  const float *src = M + p0 * ld + l0;
  if (W == NR)
    pack_down(src, ld, n, kc, NR, 0, 1.0f, dst);
  else if (scale == 1.0f)
    pack_down(src, ld, n, kc, MR, 0, 1.0f, dst);
  else
    pack_down(src, ld, n, kc, MR, 1, scale, dst);
}

/* alpha op(A)[i0 .. i0 + mc, p0 .. p0 + kc] into panels of MR rows */
T512 static void pack_a(int ta, const float *A, int64_t lda, float alpha, int64_t i0, int64_t mc,
                        int64_t p0, int64_t kc, float *restrict dst) {
  pack_panels(!ta, A, lda, alpha, i0, mc, p0, kc, MR, dst);
}

/* op(B)[p0 .. p0 + kc, j0 .. j0 + nc] into panels of NR columns */
T512 static void pack_b(int tb, const float *B, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
                        int64_t nc, float *restrict dst) {
  pack_panels(tb, B, ldb, 1.0f, j0, nc, p0, kc, NR, dst);
}

#endif

/* One product on the calling thread, over the columns j_lo .. j_hi and rows i_lo .. i_hi of
 * C; abuf holds MC * KC floats, bbuf KC * min(NC, columns) (both 64-byte aligned). */
typedef struct {
  int ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  const float *A, *B;
  const float *bias; /* a row added to every row of C on the first block (beta then unused) */
  int64_t lda, ldb, ldc;
  float *C;
  float *abuf[2], *bbuf[2];
  int split_rows; /* the two threads split rows (else columns) */
} gm_job;

static void run_block(const gm_job *j, int64_t i_lo, int64_t i_hi, int64_t j_lo, int64_t j_hi,
                      float *abuf, float *bbuf) {
#ifdef GM_X86
  for (int64_t jc = j_lo; jc < j_hi; jc += NC) {
    int64_t nc = j_hi - jc < NC ? j_hi - jc : NC;
    for (int64_t pc = 0; pc < j->K; pc += KC) {
      int64_t kc = j->K - pc < KC ? j->K - pc : KC;
      int first = pc == 0, bias = first && j->bias;
      int load = !first || j->beta != 0.0f || bias;
      float beta = first && !bias ? j->beta : 1.0f;
      pack_b(j->tb, j->B, j->ldb, pc, kc, jc, nc, bbuf);
      for (int64_t ic = i_lo; ic < i_hi; ic += MC) {
        int64_t mc = i_hi - ic < MC ? i_hi - ic : MC;
        /* op(A) = A^T with alpha 1: the kernel reads its whole panels in place (rows of A, as
         * packed, but lda apart), which saves their copy (128 x 512 x 1600 tn: +1-6% on one
         * thread, +11-17% on two, each of which packed all of A) */
        int64_t direct = j->ta && j->alpha == 1.0f ? mc / MR * MR : 0;
        if (direct < mc)
          pack_a(j->ta, j->A, j->lda, j->alpha, ic + direct, mc - direct, pc, kc,
                 abuf + direct * kc);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          int64_t nr = nc - jr < NR ? nc - jr : NR;
          __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
          __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
          const float *bp = bbuf + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            int mr = (int)(mc - ir < MR ? mc - ir : MR);
            const float *ap = ir < direct ? j->A + pc * j->lda + ic + ir : abuf + ir * kc;
            float *c = j->C + (ic + ir) * j->ldc + jc + jr;
            const float *add = !load ? NULL : bias ? j->bias + jc + jr : c;
            if (m1)
              tile(kc, ap, ir < direct ? j->lda : MR, bp, c, j->ldc, mr, m0, m1, add,
                   bias ? 0 : j->ldc, beta);
            else
              tile_half(kc, ap, ir < direct ? j->lda : MR, bp, c, j->ldc, mr, m0, add,
                        bias ? 0 : j->ldc, beta);
          }
        }
      }
    }
  }
#else
  (void)j, (void)i_lo, (void)i_hi, (void)j_lo, (void)j_hi, (void)abuf, (void)bbuf;
#endif
}

/* a share of the product: [lo, hi) is 0 .. cut (the caller) or cut .. end (the helper) */
static void job_fn(void *arg, int64_t lo, int64_t hi) {
  const gm_job *j = arg;
  int h = lo > 0;
  if (j->split_rows)
    run_block(j, lo, hi, 0, j->N, j->abuf[h], j->bbuf[h]);
  else
    run_block(j, 0, j->M, lo, hi, j->abuf[h], j->bbuf[h]);
}

/* the helper's share of a split product */
typedef struct {
  gm_job *j;
  int64_t lo, hi;
} gm_share;

static void *helper_main(void *arg) {
  gm_share *h = arg;
  job_fn(h->j, h->lo, h->hi);
  return NULL;
}

static int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}

/* `floats` floats, 64-byte aligned: one of ctx's two buffers that no other thread holds
 * (grown when needed; *held set to its index + 1: release it with release_scratch), or a new
 * block in *own when there is no ctx or both are held */
static float *scratch(rc_ctx *ctx, size_t floats, float **own, int *held) {
  size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
  *own = NULL;
  *held = 0;
  int i = 0;
  while (ctx && i < 2 && atomic_exchange_explicit(&ctx->gemm_buf_busy[i], 1, memory_order_acquire))
    i++;
  if (!ctx || i == 2) return *own = aligned_alloc(64, bytes);
  *held = i + 1;
  if (ctx->gemm_buf_bytes[i] < bytes) {
    free(ctx->gemm_buf[i]);
    ctx->gemm_buf[i] = aligned_alloc(64, bytes);
    ctx->gemm_buf_bytes[i] = ctx->gemm_buf[i] ? bytes : 0;
  }
  return ctx->gemm_buf[i];
}

static void release_scratch(rc_ctx *ctx, int held) {
  if (held) atomic_store_explicit(&ctx->gemm_buf_busy[held - 1], 0, memory_order_release);
}

/* rc_sgemm_own, with C = alpha op(A) op(B) + bias (broadcast over the rows) when bias */
static int own_product(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                       const float *bias, float *C, int64_t ldc, int threads) {
  if (!cpu_avx512()) return -1;
  if (M <= 0 || N <= 0) return 0;
  gm_job j = {ta, tb, M, N, K, alpha, beta, A, B, bias, lda, ldb, ldc, C, {0}, {0}, 0};
  if (K <= 0 || alpha == 0.0f) { /* no sum: C = beta C, or the bias */
    for (int64_t i = 0; i < M; i++)
      for (int64_t c = 0; c < N; c++)
        C[i * ldc + c] = bias ? bias[c] : beta == 0.0f ? 0.0f : beta * C[i * ldc + c];
    return 0;
  }
  /* the split: by columns in whole panels when there are at least 8, or at least 4 and too
   * few rows for 8 row blocks, else by rows (finer: a char-RNN readout's input gradient,
   * [1600 x 65] x [65 x 128], is 4 panels but 133 row blocks); weighted by the two threads'
   * speeds (rc_team_cut) when the context's helper takes it */
  int64_t cut = 0, n = 0;
  rc_team *team = NULL;
  /* each shape and layout its own kind of job for the learned split */
  uint64_t kind =
      ((((uint64_t)M * 131 + (uint64_t)N) * 131 + (uint64_t)K) * 4 + (uint64_t)(ta * 2 + tb)) * 2 +
      (bias != NULL);
  if (threads > 1 && (N >= 4 * NR || M >= 2 * MR)) {
    team = ctx ? rc_ctx_team(ctx) : NULL;
    if (N >= 8 * NR || (N >= 4 * NR && M < 8 * MR)) {
      n = N;
      cut = team ? rc_team_cut(team, kind, N, NR) : round_up(N / 2, NR);
    } else {
      j.split_rows = 1;
      n = M;
      cut = team ? rc_team_cut(team, kind, M, MR) : round_up(M / 2, MR);
    }
  }
  int parts = cut > 0 && cut < n ? 2 : 1;
  int64_t cols = j.split_rows || parts == 1 ? N : (cut > N - cut ? cut : N - cut);
  size_t afl = (size_t)MC * KC, bfl = (size_t)KC * (size_t)round_up(cols < NC ? cols : NC, NR);
  int held;
  float *own, *mem = scratch(ctx, (afl + bfl) * (size_t)parts, &own, &held);
  if (!mem) {
    release_scratch(ctx, held);
    return -1;
  }
  for (int p = 0; p < parts; p++) {
    j.abuf[p] = mem + (size_t)p * (afl + bfl);
    j.bbuf[p] = j.abuf[p] + afl;
  }
  if (parts < 2) team = NULL;
  pthread_t th;
  gm_share share = {&j, cut, n};
  if (team) {
    rc_team_split_learn(team, kind, job_fn, &j, n, cut);
  } else if (parts == 2 && pthread_create(&th, NULL, helper_main, &share) == 0) {
    job_fn(&j, 0, cut); /* no context: a thread for this product */
    pthread_join(th, NULL);
  } else {
    run_block(&j, 0, M, 0, N, j.abuf[0], j.bbuf[0]);
  }
  release_scratch(ctx, held);
  free(own);
  return 0;
}

int rc_sgemm_own(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc, int threads) {
  return own_product(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc, threads);
}

/* ---- the entry point ---- */

/* multiply-adds from which a product left to OpenBLAS may use its threads: matrix-vector
 * products from 2^20 (below it, 2 threads lost to 1 in batch-1 generation: bench/README.md,
 * "Sampling threads"), matrix products above the word-LM step's [640 x 100] x [100 x 50] */
#define BLAS_GEMV_THREADED_MIN ((int64_t)1 << 20)
#define BLAS_GEMM_THREADED_MIN ((int64_t)1 << 22)

static void blas_product(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc);

static void record(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, int route) {
  rc_gemm_call c = {M, N, K, RC_GEMM_CALL, ta, tb, route, route > 0};
  if (route == 0) c.threads = openblas_get_num_threads();
  rc_gemm_trace_record(ctx, &c);
}

/* rc_sgemm, or with bias (beta then unused) rc_sgemm_bias */
static void product(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                    const float *bias, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  int route = rc_gemm_route(M, N, K);
  /* the context's helper backs off while it keeps coming late (another process holds the
   * other core): then the product runs on one thread */
  if (route == 2 && ctx && !rc_team_usable(rc_ctx_team(ctx))) route = 1;
  if (ctx && ctx->gemm_tracing) record(ctx, ta, tb, M, N, K, route);
  if (route > 0 &&
      own_product(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, bias, C, ldc, route) == 0)
    return;
  if (bias) { /* OpenBLAS: the bias in every row first, then C += the product (same bits) */
    for (int64_t i = 0; i < M; i++) memcpy(C + i * ldc, bias, (size_t)N * sizeof(float));
    beta = 1.0f;
  }
  /* beta 0 must overwrite NaN: OpenBLAS's sgemm writes zeros for beta 0, but its sgemv and an
   * empty product scale C instead, so clear C first there */
  if (beta == 0.0f && (M == 1 || K <= 0))
    for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
  if (K <= 0) {
    if (beta != 0.0f && beta != 1.0f)
      for (int64_t i = 0; i < M; i++)
        for (int64_t c = 0; c < N; c++) C[i * ldc + c] *= beta;
    return;
  }
  /* a small product runs OpenBLAS on one thread: a threaded call costs more than it saves at
   * these sizes, and wakes OpenBLAS's other thread, which then spins (sched_yield) for a long
   * while on the core recur's own second thread needs (the word-LM step's one BLAS product,
   * [640 x 100] x [100 x 50], made its 2-thread step slower than its 1-thread one) */
  int threads = openblas_get_num_threads();
  int64_t madds = M * N * K;
  int one = threads > 1 && madds < (M == 1 ? BLAS_GEMV_THREADED_MIN : BLAS_GEMM_THREADED_MIN);
  if (one) openblas_set_num_threads(1);
  blas_product(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (one) openblas_set_num_threads(threads);
}

void rc_sgemm(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc) {
  product(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
}

void rc_sgemm_bias(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                   int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                   int64_t ldc) {
  product(ctx, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, bias, C, ldc);
}

static void blas_product(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                         float *C, int64_t ldc) {
  if (M == 1) {
    /* c = alpha op(B)^T a + beta c, a = row 0 of op(A) (stride lda when A is stored [K, 1]) */
    blasint inca = ta ? (blasint)lda : 1;
    if (!tb) /* B [K, N]: c = B^T a */
      cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)K, (blasint)N, alpha, B, (blasint)ldb, A,
                  inca, beta, C, 1);
    else /* B [N, K]: c = B a */
      cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)N, (blasint)K, alpha, B, (blasint)ldb, A,
                  inca, beta, C, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
              (blasint)ldc);
}

/* ---- the trace, kept in the runtime context ----
 * rc_sgemm, rn_pgemm (runtime/rnn_gemm.c) and rn_prepare's packing (runtime/rnn_common.c)
 * record their calls here while ctx->gemm_tracing; off, that costs one predictable branch per
 * call. runtime/gemm_replay.c replays a trace. */

/* Two threads may record at once (the layer wavefront, runtime/rnn_stack.c): the append takes
 * ctx->gemm_trace_busy, spinning (a trace is a measurement's, never a hot path's). */
void rc_gemm_trace_record(rc_ctx *ctx, const rc_gemm_call *c) {
  while (atomic_exchange_explicit(&ctx->gemm_trace_busy, 1, memory_order_acquire))
    ;
  if (ctx->gemm_n == ctx->gemm_cap) {
    size_t cap = ctx->gemm_cap ? 2 * ctx->gemm_cap : 256;
    rc_gemm_call *p = realloc(ctx->gemm_calls, cap * sizeof *p);
    if (!p) {
      ctx->gemm_lost = 1;
      atomic_store_explicit(&ctx->gemm_trace_busy, 0, memory_order_release);
      return;
    }
    ctx->gemm_calls = p;
    ctx->gemm_cap = cap;
  }
  ((rc_gemm_call *)ctx->gemm_calls)[ctx->gemm_n++] = *c;
  atomic_store_explicit(&ctx->gemm_trace_busy, 0, memory_order_release);
}

void rc_gemm_trace_pack(rc_ctx *ctx, int64_t K, int64_t N, int trans, int kind) {
  rc_gemm_call c = {1, N, K, RC_GEMM_PACK, 0, trans, 1, kind};
  rc_gemm_trace_record(ctx, &c);
}

void rc_gemm_trace_start(rc_ctx *ctx) {
  free(ctx->gemm_calls);
  ctx->gemm_calls = NULL;
  ctx->gemm_n = ctx->gemm_cap = 0;
  ctx->gemm_lost = 0;
  ctx->gemm_tracing = 1;
}

rc_gemm_call *rc_gemm_trace_stop(rc_ctx *ctx, size_t *n, int *lost) {
  rc_gemm_call *c = ctx->gemm_calls;
  *n = c ? ctx->gemm_n : 0;
  *lost = ctx->gemm_lost;
  ctx->gemm_tracing = 0;
  ctx->gemm_calls = NULL;
  ctx->gemm_n = ctx->gemm_cap = 0;
  ctx->gemm_lost = 0;
  return c;
}
