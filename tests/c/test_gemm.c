/* recur's own matrix product (runtime/gemm.c) against cblas_sgemm: all four transpose cases,
 * every size 1..70 in each dimension (the others varied with it), a few large products that
 * cross every cache block, row strides larger than the widths, alpha and beta (beta 0 with NaN
 * in C, which must be overwritten), on one thread and split over two; the columns beyond N
 * left untouched. The tolerance scales with the magnitude of the sum (no bitwise comparison:
 * the two kernels sum in different orders). Then the entry point rc_sgemm (whichever path it
 * takes), the degenerate sizes, the context's two packing buffers, and the trace and its
 * replay. */
#include <cblas.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/context.h"
#include "../../runtime/gemm.h"
#include "test.h"

static rc_ctx *g_ctx; /* half the products keep their packing buffers in it */

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* 0: recur's kernel on 1 thread, 1: on 2, 2: the entry point rc_sgemm */
static int run(int how, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, float beta,
               unsigned seed) {
  int64_t pad = seed % 5;
  int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  int64_t lda = ac + pad, ldb = bc + 2 * pad, ldc = N + 3;
  float *A = malloc(sizeof(float) * (size_t)(ar * lda + 1));
  float *B = malloc(sizeof(float) * (size_t)(br * ldb + 1));
  float *C = malloc(sizeof(float) * (size_t)(M * ldc));
  float *R = malloc(sizeof(float) * (size_t)(M * ldc));
  float *C0 = malloc(sizeof(float) * (size_t)(M * ldc));
  for (int64_t i = 0; i < ar * lda; i++) A[i] = frand(&seed);
  for (int64_t i = 0; i < br * ldb; i++) B[i] = frand(&seed);
  for (int64_t i = 0; i < M * ldc; i++) C0[i] = frand(&seed);
  if (beta == 0.0f)
    for (int64_t i = 0; i < M * ldc; i++)
      if (i % ldc < N) C0[i] = NAN;
  memcpy(C, C0, sizeof(float) * (size_t)(M * ldc));
  memcpy(R, C0, sizeof(float) * (size_t)(M * ldc));
  if (beta == 0.0f) /* OpenBLAS's reference: zeros where the NaN were (it may scale them) */
    for (int64_t i = 0; i < M; i++) memset(R + i * ldc, 0, sizeof(float) * (size_t)N);
  int rc = 0;
  if (how == 2)
    rc_sgemm(NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    rc = rc_sgemm_own(seed % 2 ? g_ctx : NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                      how + 1);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb,
              beta == 0.0f ? 1.0f : beta, R, (blasint)ldc);
  int ok = rc == 0;
  for (int64_t i = 0; i < M && ok; i++)
    for (int64_t j = 0; j < ldc && ok; j++) {
      float c = C[i * ldc + j];
      if (j >= N) { /* beyond N: untouched */
        if (memcmp(&c, &C0[i * ldc + j], sizeof c) != 0) ok = 0;
        continue;
      }
      double mag = beta == 0.0f ? 0.0 : fabs((double)beta * C0[i * ldc + j]);
      for (int64_t k = 0; k < K; k++) {
        double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
        mag += fabs((double)alpha * a * b);
      }
      double tol = 2.0 * (double)(K + 2) * FLT_EPSILON * mag + 1e-30;
      if (!(fabs((double)c - (double)R[i * ldc + j]) <= tol)) ok = 0;
    }
  if (!ok)
    fprintf(stderr, "how=%d ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g failed\n", how, ta,
            tb, (long long)M, (long long)N, (long long)K, (double)alpha, (double)beta);
  free(A);
  free(B);
  free(C);
  free(R);
  free(C0);
  return ok;
}

static const float alphas[] = {1.0f, -0.5f, 2.0f}, betas[] = {0.0f, 1.0f, 0.5f};

/* rc_sgemm_bias against the bias copied into every row of C and rc_sgemm with beta 1, bit for
 * bit (both take the same path for the same sizes and threads), with `threads` BLAS threads;
 * the columns beyond N untouched */
static int bias_case(int ta, int tb, int64_t M, int64_t N, int64_t K, int threads, unsigned seed) {
  int before = openblas_get_num_threads();
  openblas_set_num_threads(threads);
  int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 2, ldc = N + 3;
  size_t na = (size_t)((ta ? K : M) * lda + 1), nb = (size_t)((tb ? N : K) * ldb + 1);
  float *A = malloc(sizeof(float) * na), *B = malloc(sizeof(float) * nb);
  float *bias = malloc(sizeof(float) * (size_t)N), *D = malloc(sizeof(float) * (size_t)(M * ldc));
  float *E = malloc(sizeof(float) * (size_t)(M * ldc));
  for (size_t i = 0; i < na; i++) A[i] = frand(&seed);
  for (size_t i = 0; i < nb; i++) B[i] = frand(&seed);
  for (int64_t j = 0; j < N; j++) bias[j] = frand(&seed);
  for (int64_t i = 0; i < M * ldc; i++) D[i] = E[i] = frand(&seed);
  for (int64_t i = 0; i < M; i++) memcpy(D + i * ldc, bias, sizeof(float) * (size_t)N);
  rc_sgemm(g_ctx, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, D, ldc);
  rc_sgemm_bias(g_ctx, ta, tb, M, N, K, A, lda, B, ldb, bias, E, ldc);
  int ok = memcmp(D, E, sizeof(float) * (size_t)(M * ldc)) == 0;
  if (!ok)
    fprintf(stderr, "bias ta=%d tb=%d M=%lld N=%lld K=%lld threads=%d failed\n", ta, tb,
            (long long)M, (long long)N, (long long)K, threads);
  free(A);
  free(B);
  free(bias);
  free(D);
  free(E);
  openblas_set_num_threads(before);
  return ok;
}

int main(void) {
  unsigned seed = 7;
  g_ctx = rc_ctx_new();
  int have = rc_sgemm_own(NULL, 0, 0, 1, 1, 1, 1.0f, &(float){1}, 1, &(float){1}, 1, 0.0f,
                          &(float){0}, 1, 1) == 0;
  if (!have) printf("no AVX-512F: recur's kernel is not built in; testing the entry point only\n");
  for (int how = have ? 0 : 2; how < 3; how++)
    for (int t = 0; t < 4; t++) {
      int ta = t & 1, tb = t >> 1;
      /* each dimension through 1..70, the other two varied with it */
      for (int64_t s = 1; s <= 70; s++) {
        int64_t o1 = (s * 7) % 70 + 1, o2 = (s * 13) % 70 + 1;
        float al = alphas[s % 3], be = betas[(s / 3) % 3];
        CHECK(run(how, ta, tb, s, o1, o2, al, be, seed++));
        CHECK(run(how, ta, tb, o1, s, o2, al, be, seed++));
        CHECK(run(how, ta, tb, o2, o1, s, al, be, seed++));
      }
      /* every alpha and beta on one odd size */
      for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
          CHECK(run(how, ta, tb, 37, 45, 29, alphas[a], betas[b], seed++));
      /* larger than every block (MC 288, KC 256, panels of 32 and 12 rows), odd everywhere */
      CHECK(run(how, ta, tb, 301, 203, 517, 1.0f, 0.0f, seed++));
      CHECK(run(how, ta, tb, 613, 97, 263, -0.5f, 0.5f, seed++));
    }
  /* the products of a 2-layer char-RNN step (H = 128, batch 32, 50 steps), whose packing
   * takes every path: 12-row panels of A from A (nn, nt) and from A^T (tn, with a partial
   * panel), 32-column panels of B from B (nn, tn) and from B^T (nt, 65 columns) */
  if (have) {
    CHECK(run(0, 1, 0, 128, 512, 1600, -0.5f, 0.5f, seed++));
    CHECK(run(1, 1, 0, 65, 128, 1600, 2.0f, 0.0f, seed++));
    CHECK(run(0, 0, 1, 1600, 65, 128, 1.0f, 1.0f, seed++));
    CHECK(run(1, 0, 1, 1600, 64, 512, 1.0f, 0.0f, seed++));
    CHECK(run(0, 0, 0, 1600, 128, 65, -0.5f, 0.0f, seed++));
    CHECK(run(1, 1, 1, 65, 128, 300, 1.0f, 0.5f, seed++));
  }
  /* one column block boundary (NC = 4096) on one and two threads */
  if (have) {
    CHECK(run(0, 0, 0, 13, 4099, 3, 1.0f, 1.0f, seed++));
    CHECK(run(1, 1, 1, 13, 4099, 3, 1.0f, 0.0f, seed++));
  }

  /* the bias form, on OpenBLAS's path (small), recur's kernel on one and two threads (the
   * char-RNN readout, [1600, 128] x [128, 65]), with K over one block (KC 256), and K = 0 */
  for (int threads = 1; threads <= 2; threads++) {
    CHECK(bias_case(0, 1, 5, 3, 4, threads, seed++));
    CHECK(bias_case(0, 1, 1600, 65, 128, threads, seed++));
    CHECK(bias_case(0, 0, 700, 257, 517, threads, seed++));
    CHECK(bias_case(1, 1, 300, 96, 300, threads, seed++));
    CHECK(bias_case(0, 0, 40, 7, 0, threads, seed++));
  }

  /* degenerate sizes through the entry point: K = 0 and alpha = 0 never read A, B */
  {
    float C[6] = {NAN, NAN, NAN, 1, 2, 3};
    rc_sgemm(NULL, 0, 0, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.0f, C, 3);
    CHECK(C[0] == 0.0f && C[2] == 0.0f && C[3] == 0.0f && C[5] == 0.0f);
    float D[4] = {1, 2, 3, 4}, A[4] = {NAN, NAN, NAN, NAN};
    if (have) {
      CHECK(rc_sgemm_own(NULL, 0, 0, 2, 2, 2, 0.0f, A, 2, A, 2, 0.5f, D, 2, 1) == 0);
      CHECK(D[0] == 0.5f && D[3] == 2.0f);
    }
  }

  /* the packing buffers: a product run while another thread holds the context's first one
   * (the layer wavefront runs a product on each thread) keeps its packing in the second, for
   * the next such product, and releases it; with both held, a block of its own */
  if (have) {
    enum { S = 64 };
    static float A[S * S], B[S * S], C[S * S];
    for (int i = 0; i < S * S; i++) A[i] = B[i] = 1.0f;
    rc_ctx *ctx = rc_ctx_new();
    atomic_store(&ctx->gemm_buf_busy[0], 1); /* "the other thread" */
    C[0] = C[S * S - 1] = 0.0f;
    CHECK(rc_sgemm_own(ctx, 0, 0, S, S, S, 1.0f, A, S, B, S, 0.0f, C, S, 1) == 0);
    CHECK(C[0] == (float)S && C[S * S - 1] == (float)S);
    CHECK(ctx->gemm_buf[0] == NULL && ctx->gemm_buf[1] != NULL);
    CHECK(atomic_load(&ctx->gemm_buf_busy[0]) == 1 && atomic_load(&ctx->gemm_buf_busy[1]) == 0);
    void *second = ctx->gemm_buf[1];
    atomic_store(&ctx->gemm_buf_busy[1], 1); /* both held */
    C[0] = C[S * S - 1] = 0.0f;
    CHECK(rc_sgemm_own(ctx, 1, 1, S, S, S, 1.0f, A, S, B, S, 0.0f, C, S, 1) == 0);
    CHECK(C[0] == (float)S && C[S * S - 1] == (float)S);
    CHECK(ctx->gemm_buf[0] == NULL && ctx->gemm_buf[1] == second);
    CHECK(atomic_load(&ctx->gemm_buf_busy[0]) == 1 && atomic_load(&ctx->gemm_buf_busy[1]) == 1);
    atomic_store(&ctx->gemm_buf_busy[0], 0);
    atomic_store(&ctx->gemm_buf_busy[1], 0);
    CHECK(rc_sgemm_own(ctx, 0, 1, S, S, S, 1.0f, A, S, B, S, 0.0f, C, S, 1) == 0);
    CHECK(ctx->gemm_buf[0] != NULL && atomic_load(&ctx->gemm_buf_busy[0]) == 0);
    rc_ctx_release(ctx);
  }

  /* the trace: a product recorded in its context with its sizes and route, nothing recorded
   * once stopped nor in another context, and a replay of what was recorded */
  {
    int64_t M = 64, N = 96, K = 80;
    float *A = calloc((size_t)(M * K), sizeof(float)), *B = calloc((size_t)(K * N), sizeof(float));
    float *C = calloc((size_t)(M * N), sizeof(float));
    rc_ctx *ctx = rc_ctx_new(), *other = rc_ctx_new();
    rc_gemm_trace_start(ctx);
    rc_sgemm(ctx, 1, 0, M, N, K, 1.0f, A, M, B, N, 0.0f, C, N);
    rc_sgemm(other, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    size_t n = 0;
    int lost = 1;
    rc_gemm_call *c = rc_gemm_trace_stop(ctx, &n, &lost);
    CHECK(n == 1 && !lost && c);
    if (n == 1 && c) {
      CHECK(c[0].op == RC_GEMM_CALL && c[0].M == M && c[0].N == N && c[0].K == K);
      CHECK(c[0].ta == 1 && c[0].tb == 0);
      CHECK(c[0].kernel == (rc_gemm_route(M, N, K) > 0));
      CHECK(rc_gemm_replay(c, n, 2) >= 0.0);
    }
    free(c);
    rc_sgemm(ctx, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    c = rc_gemm_trace_stop(ctx, &n, &lost);
    CHECK(n == 0 && c == NULL);
    /* a trace still on when its context goes is freed with it (the leak check of make asan) */
    rc_gemm_trace_start(other);
    rc_sgemm(other, 0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    rc_ctx_release(other);
    rc_ctx_release(ctx);
    free(A);
    free(B);
    free(C);
  }
  rc_ctx_release(g_ctx);
  return TEST_SUMMARY();
}
