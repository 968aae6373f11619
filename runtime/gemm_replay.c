/* The replay of a context's traced matrix products alone (the trace itself is kept by
 * runtime/gemm.c): the floor that bench/charrnn.lua divides a training step's time by (step
 * time / time of the same products on scratch data, same kernels, same threads). It sits
 * above both kinds of product it replays: rc_sgemm (runtime/gemm.c) and the packed per-step
 * products (runtime/rnn_gemm.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "rnn_impl.h"

/* ---- replay ---- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t imax(int64_t a, int64_t b) {
  return a > b ? a : b;
}

/* small values that stay far from overflow and denormals over long sums */
static void fill(float *p, int64_t n, unsigned seed) {
  for (int64_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (float)((seed >> 9) & 0x3FF) / 16384.0f - 0.03f;
  }
}

/* the packed weights the products of the trace use, one per distinct (K, N, kernel), packed
 * before the timing (their packing is timed where the trace has it: the RC_GEMM_PACK calls) */
typedef struct {
  int64_t K, N;
  int kernel;
  float *buf;
  rn_pmat m;
} packed_w;

double rc_gemm_replay(const rc_gemm_call *calls, size_t n, int reps) {
  int64_t a = 1, b = 1, c = 1, pk = 1;
  size_t np = 0;
  for (size_t i = 0; i < n; i++) {
    const rc_gemm_call *q = &calls[i];
    a = imax(a, q->M * q->K);
    b = imax(b, q->K * q->N);
    c = imax(c, q->M * q->N);
    if (q->op != RC_GEMM_CALL) pk = imax(pk, rn_pack_floats(q->K, q->N));
    if (q->op == RC_GEMM_PACKED) np++;
  }
  float *A = malloc((size_t)a * sizeof(float)), *B = malloc((size_t)b * sizeof(float));
  float *C = malloc((size_t)c * sizeof(float)), *P = malloc((size_t)pk * sizeof(float));
  packed_w *w = calloc(np ? np : 1, sizeof *w);
  rc_team *team = NULL;
  rc_ctx *ctx = rc_ctx_new(); /* holds the packing buffers, as a runtime's does */
  size_t nw = 0;
  double best = -1.0;
  if (!A || !B || !C || !P || !w || !ctx) goto done;
  fill(A, a, 1u);
  fill(B, b, 2u);
  fill(C, c, 3u);
  for (size_t i = 0; i < n; i++) {
    const rc_gemm_call *q = &calls[i];
    if (q->op != RC_GEMM_PACKED) continue;
    if (q->threads > 1 && !team && !(team = rc_ctx_team(ctx))) goto done;
    size_t k = 0;
    while (k < nw && !(w[k].K == q->K && w[k].N == q->N && w[k].kernel == q->kernel)) k++;
    if (k < nw) continue;
    w[nw].K = q->K;
    w[nw].N = q->N;
    w[nw].kernel = q->kernel;
    if (!(w[nw].buf = malloc((size_t)rn_pack_floats(q->K, q->N) * sizeof(float)))) goto done;
    rn_pack(&w[nw].m, w[nw].buf, B, q->N, 0, q->K, q->N);
    nw++;
  }
  /* one pass untimed first: it grows the context's packing buffers and warms the caches */
  for (int r = -1; r < (reps > 0 ? reps : 1); r++) {
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
      const rc_gemm_call *q = &calls[i];
      if (q->op == RC_GEMM_CALL) {
        int64_t lda = q->ta ? q->M : q->K, ldb = q->tb ? q->K : q->N;
        if (q->kernel)
          rc_sgemm_own(ctx, q->ta, q->tb, q->M, q->N, q->K, 1.0f, A, imax(1, lda), B, imax(1, ldb),
                       0.0f, C, q->N, q->threads);
        else
          rc_sgemm(ctx, q->ta, q->tb, q->M, q->N, q->K, 1.0f, A, imax(1, lda), B, imax(1, ldb),
                   0.0f, C, q->N);
      } else if (q->op == RC_GEMM_PACK) {
        rn_pmat m;
        rn_pack(&m, P, B, q->tb ? q->K : q->N, q->tb, q->K, q->N);
      } else {
        size_t k = 0;
        while (!(w[k].K == q->K && w[k].N == q->N && w[k].kernel == q->kernel)) k++;
        w[k].m.team = q->threads > 1 ? team : NULL;
        rn_pgemm(&w[k].m, q->M, A, q->K, C, q->N, 0.0f);
      }
    }
    double t = now_s() - t0;
    if (r >= 0 && (best < 0 || t < best)) best = t;
  }
done:
  for (size_t k = 0; k < nw; k++) free(w[k].buf);
  rc_ctx_release(ctx); /* and its helper */
  free(w);
  free(A);
  free(B);
  free(C);
  free(P);
  return best;
}
