/* The packed-weight products of the per-step recurrences (runtime/rnn_gemm.c): rn_pgemm
 * against a naive double-precision product for every row count 1..19, column counts that are
 * and are not multiples of the panel widths, both layouts of W, row strides larger than the
 * widths, beta 0 (which overwrites NaN) and beta 1, the plain fallback (no packing buffer),
 * and the columns beyond N left untouched; rn_pgemm_bias bit for bit against the bias copied
 * into C and beta 1. */
#include <stdlib.h>
#include <string.h>

#include "../../runtime/rnn_impl.h"
#include "test.h"

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xFFFF) / 65536.0f - 0.5f;
}

/* one case: C [M, N] (ldc = N + 3) = A [M, K] (lda = K + 2) op(W) + beta C */
static rc_team *g_team; /* when set, products are shared with this helper thread */

static int run_case(int64_t M, int64_t N, int64_t K, int trans, float beta, int pack,
                    unsigned seed) {
  int64_t lda = K + 2, ldc = N + 3, ldw = trans ? K + 5 : N + 5;
  int64_t wrows = trans ? N : K;
  float *A = malloc(sizeof(float) * (size_t)(M * lda));
  float *W = malloc(sizeof(float) * (size_t)(wrows * ldw));
  float *C = malloc(sizeof(float) * (size_t)(M * ldc));
  float *C0 = malloc(sizeof(float) * (size_t)(M * ldc));
  float *buf = malloc(sizeof(float) * (size_t)rn_pack_floats(K, N));
  for (int64_t i = 0; i < M * lda; i++) A[i] = frand(&seed);
  for (int64_t i = 0; i < wrows * ldw; i++) W[i] = frand(&seed);
  for (int64_t i = 0; i < M * ldc; i++) C0[i] = C[i] = frand(&seed);
  if (beta == 0.0f)
    for (int64_t i = 0; i < M; i++) C0[i * ldc] = C[i * ldc] = NAN;
  rn_pmat m;
  rn_pack(&m, pack ? buf : NULL, W, ldw, trans, K, N);
  m.team = g_team;
  rn_pgemm(&m, M, A, lda, C, ldc, beta);
  int ok = 1;
  for (int64_t i = 0; i < M && ok; i++)
    for (int64_t j = 0; j < ldc && ok; j++) {
      if (j >= N) { /* padding columns untouched */
        if (memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(float)) != 0) ok = 0;
        continue;
      }
      double s = beta == 0.0f ? 0.0 : (double)C0[i * ldc + j];
      for (int64_t k = 0; k < K; k++) {
        double w = trans ? W[j * ldw + k] : W[k * ldw + j];
        s += (double)A[i * lda + k] * w;
      }
      if (!(fabs(s - (double)C[i * ldc + j]) <= 1e-5 * (1.0 + (double)K))) ok = 0;
    }
  /* the bias form: the same bits as the bias copied into every row and beta 1, and the
   * padding columns untouched */
  float *bias = malloc(sizeof(float) * (size_t)N), *D = malloc(sizeof(float) * (size_t)(M * ldc));
  float *E = malloc(sizeof(float) * (size_t)(M * ldc));
  for (int64_t j = 0; j < N; j++) bias[j] = frand(&seed);
  memcpy(D, C0, sizeof(float) * (size_t)(M * ldc));
  memcpy(E, C0, sizeof(float) * (size_t)(M * ldc));
  for (int64_t i = 0; i < M; i++) memcpy(D + i * ldc, bias, sizeof(float) * (size_t)N);
  rn_pgemm(&m, M, A, lda, D, ldc, 1.0f);
  rn_pgemm_bias(&m, M, A, lda, bias, E, ldc);
  if (memcmp(D, E, sizeof(float) * (size_t)(M * ldc)) != 0) ok = 0;
  free(bias);
  free(D);
  free(E);
  if (!ok)
    fprintf(stderr, "case M=%lld N=%lld K=%lld trans=%d beta=%g pack=%d failed\n", (long long)M,
            (long long)N, (long long)K, trans, (double)beta, pack);
  free(A);
  free(W);
  free(C);
  free(C0);
  free(buf);
  return ok;
}

static int sweep(void) {
  static const int64_t Ns[] = {1, 7, 16, 17, 31, 32, 33, 48, 64, 100, 129};
  static const int64_t Ks[] = {1, 3, 16, 37, 64};
  unsigned seed = 1;
  int all = 1;
  for (int64_t M = 1; M <= 19; M++)
    for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
      for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
        for (int trans = 0; trans < 2; trans++)
          for (int b = 0; b < 2; b++) all &= run_case(M, Ns[n], Ks[k], trans, (float)b, 1, seed++);
  return all;
}

int main(void) {
  /* the best kernel of this CPU, then the AVX2 one (where the CPU has it), then plain */
  CHECK(sweep());
  setenv("RECUR_GEMM_KERNEL", "avx2", 1);
  CHECK(sweep());
  CHECK(run_case(32, 512, 128, 0, 1.0f, 1, 5));
  /* a helper thread takes half of the panels: the same results, many hand-overs */
  g_team = rc_team_new();
  CHECK(g_team != NULL);
  unsetenv("RECUR_GEMM_KERNEL");
  CHECK(sweep());
  CHECK(run_case(32, 2048, 512, 0, 1.0f, 1, 13));
  CHECK(run_case(32, 512, 2048, 1, 0.0f, 1, 14));
  setenv("RECUR_GEMM_KERNEL", "avx2", 1);
  CHECK(run_case(17, 300, 64, 1, 1.0f, 1, 15));
  rc_team_free(g_team);
  g_team = NULL;
  rc_team_free(NULL);
  setenv("RECUR_GEMM_KERNEL", "plain", 1);
  CHECK(sweep());
  unsetenv("RECUR_GEMM_KERNEL");
  /* larger shapes of the recurrences (H = 128: N = 4H and its transpose) */
  CHECK(run_case(32, 512, 128, 0, 1.0f, 1, 7));
  CHECK(run_case(32, 128, 512, 1, 0.0f, 1, 8));
  CHECK(run_case(5, 300, 100, 1, 1.0f, 1, 9));
  /* without a buffer: the plain path (cblas) gives the same */
  CHECK(run_case(4, 33, 17, 0, 1.0f, 0, 10));
  CHECK(run_case(4, 33, 17, 1, 0.0f, 0, 11));
  CHECK(run_case(1, 40, 9, 1, 1.0f, 0, 12));
  /* packing is wanted only for repeated products with more than one row */
  CHECK(!rn_pack_wanted(1, 50));
  CHECK(!rn_pack_wanted(32, 1));
  return TEST_SUMMARY();
}
