/* rc_matmul against cblas_sgemm called directly on the same buffers: [1600 x 512] x
 * [512 x 2048], with the left operand contiguous and as a transposed view (strides [1, 1600]
 * over a [512 x 1600] buffer). Best of several runs each; prints GFLOP/s and recur/direct.
 * rc_matmul goes through rc_sgemm (runtime/gemm.c), which runs recur's own AVX-512 kernel
 * where OpenBLAS's core has none (OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU), so the two
 * results agree to float rounding, not bit for bit: the check allows 2 (K + 2) eps max|sum|.
 * Build and run: sh bench/matmul.sh */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../runtime/gemm.h"
#include "../runtime/ops.h"
#include "bench_rows.h"

enum { M = 1600, K = 512, N = 2048, RUNS = 30 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(rc_tensor *t, unsigned seed) {
  float *p = rc_data(t);
  for (int64_t i = 0; i < rc_numel(t); i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
}

static void check(const float *p, const float *ref, double *maxdiff) {
  for (int64_t i = 0; i < (int64_t)M * N; i++) {
    double d = fabs((double)p[i] - ref[i]);
    if (d > *maxdiff) *maxdiff = d;
  }
}

/* Runs direct and recur alternately (so a busy machine slows both alike), one warm-up and
 * RUNS timed calls each; keeps the best time of each and every time in sd, sr. */
static void bench(rc_tensor *a, rc_tensor *b, CBLAS_TRANSPOSE ta, const float *pa, int lda,
                  float *c, double *td, double *tr, double *maxdiff, double *sd, double *sr) {
  *td = *tr = 1e30;
  *maxdiff = 0;
  for (int r = 0; r <= RUNS; r++) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, ta, CblasNoTrans, M, N, K, 1.0f, pa, lda, rc_data(b), N, 0.0f, c, N);
    double t1 = now();
    rc_tensor *out = rc_matmul(a, b);
    double t2 = now();
    if (!out) {
      fprintf(stderr, "rc_matmul: %s\n", a->ctx->err);
      exit(1);
    }
    if (r > 0) sd[r - 1] = t1 - t0, sr[r - 1] = t2 - t1;
    if (r > 0 && t1 - t0 < *td) *td = t1 - t0;
    if (r > 0 && t2 - t1 < *tr) *tr = t2 - t1;
    if (r == RUNS) check(rc_data(out), c, maxdiff);
    rc_release(out);
  }
}

int main(void) {
  rc_ctx *ctx = rc_ctx_new();
  int64_t sa[2] = {M, K}, sat[2] = {K, M}, sb[2] = {K, N}, sc[2] = {M, N};
  rc_tensor *a = rc_empty(ctx, 2, sa), *at = rc_empty(ctx, 2, sat), *b = rc_empty(ctx, 2, sb);
  rc_tensor *c = rc_empty(ctx, 2, sc);
  if (!a || !at || !b || !c) return 1;
  fill(a, 1);
  fill(at, 2);
  fill(b, 3);
  int64_t vs[2] = {M, K}, vst[2] = {1, M};
  rc_tensor *atv = rc_raw_view(at, 2, vs, vst, 0); /* at seen as [M, K]: a transposed view */
  double flop = 2.0 * M * N * K;
  static const char *const route[] = {"OpenBLAS", "recur's AVX-512 kernel",
                                      "recur's AVX-512 kernel on 2 threads"};
  printf("matmul [%d x %d] x [%d x %d], best of %d runs, %d BLAS threads; OpenBLAS core %s; "
         "rc_matmul runs %s\n",
         M, K, K, N, RUNS, openblas_get_num_threads(), openblas_get_corename(),
         route[rc_gemm_route(M, N, K)]);
  /* entries in [-0.5, 0.5): every |sum| is below K / 4 */
  double tol = 2.0 * (K + 2) * FLT_EPSILON * (K / 4.0);
  int fails = 0;
  for (int t = 0; t < 2; t++) {
    double td, tr, diff, sd[RUNS], sr[RUNS];
    if (t)
      bench(atv, b, CblasTrans, rc_data(at), M, rc_data(c), &td, &tr, &diff, sd, sr);
    else
      bench(a, b, CblasNoTrans, rc_data(a), K, rc_data(c), &td, &tr, &diff, sd, sr);
    printf("%-22s direct %7.2f GFLOP/s (%6.2f ms)  recur %7.2f GFLOP/s (%6.2f ms)  "
           "recur/direct %5.1f%%  max|diff| %g\n",
           t ? "left transposed view" : "left contiguous", flop / td * 1e-9, td * 1e3,
           flop / tr * 1e-9, tr * 1e3, 100.0 * td / tr, diff);
    if (!(diff <= tol)) fails++;
    /* GFLOP/s of the best run, its spread over the runs (the slowest run is the min) */
    double lo, med, hi;
    bench_spread(sr, RUNS, &lo, &med, &hi);
    char name[64];
    snprintf(name, sizeof name, "matmul %s %dT", t ? "transposed view" : "contiguous",
             openblas_get_num_threads());
    bench_row("matmul", name, flop / tr * 1e-9, "GFLOP/s", "higher", flop / td * 1e-9,
              "cblas_sgemm", flop / hi * 1e-9, flop / med * 1e-9, flop / lo * 1e-9);
  }
  rc_release(atv);
  rc_release(a);
  rc_release(at);
  rc_release(b);
  rc_release(c);
  rc_ctx_release(ctx);
  return fails ? 1 : 0;
}
