/* The trace of the matrix products a piece of work runs, and their replay alone: the floor
 * that bench/charrnn.lua divides a training step's time by (step time / time of the same
 * products on scratch data, same kernels, same threads).
 *
 * rc_sgemm (runtime/gemm.c), rn_pgemm (runtime/rnn_gemm.c) and rn_prepare's packing
 * (runtime/rnn_common.c) record their calls in their runtime context while its trace is on;
 * off, that costs one predictable branch per call. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"
#include "rnn_impl.h"

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
  rn_team *team = NULL;
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
    if (q->threads > 1 && !team && !(team = rn_team_new())) goto done;
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
  rn_team_free(team);
  rc_ctx_release(ctx);
  free(w);
  free(A);
  free(B);
  free(C);
  free(P);
  return best;
}
