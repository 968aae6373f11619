/* The runtime's single entry point for matrix products (runtime/gemm.c), and the trace of the
 * products a piece of work runs, with their replay (runtime/gemm_replay.c). Not a public
 * header. */
#ifndef RECUR_GEMM_H
#define RECUR_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "context.h"

/* C [M, N] (row stride ldc) = alpha op(A) op(B) + beta C, all row-major: op(A) is [M, K] (A
 * stored [M, K] with row stride lda, or [K, M] when ta), op(B) is [K, N] (B stored [K, N], or
 * [N, K] when tb). beta = 0 overwrites C (even NaN); K = 0 or alpha = 0 reads neither A nor B.
 * Large products run recur's own AVX-512 kernel when OpenBLAS's chosen core has none (see
 * rc_gemm_route), split over a second thread when there is more than one BLAS thread; the
 * rest go to cblas_sgemm (cblas_sgemv for one row). ctx (NULL allowed) is the runtime whose
 * trace records the call. */
void rc_sgemm(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);

/* C = op(A) op(B) + bias, the row bias [N] added to every row (nn.Linear, an RNN's input
 * projection): the same bits as C filled with the bias and rc_sgemm with beta 1, without the
 * pass that fills it where recur's kernel runs the product. */
void rc_sgemm_bias(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, const float *A,
                   int64_t lda, const float *B, int64_t ldb, const float *bias, float *C,
                   int64_t ldc);

/* The path rc_sgemm takes for a product of these sizes: 0 BLAS, 1 recur's kernel on one
 * thread, 2 recur's kernel split over two. Recur's kernel runs when the CPU has AVX-512F,
 * OpenBLAS's core is not an AVX-512 one, RECUR_GEMM_KERNEL is not blas, plain or avx2, and
 * the product has at least 2^15 multiply-adds, 12 rows, 8 inner terms and 32 or at least 64
 * columns; a function of these alone (never of timings). */
int rc_gemm_route(int64_t M, int64_t N, int64_t K);

/* recur's kernel itself, on `threads` (1 or 2) threads, whatever the sizes (for tests and the
 * replay); returns -1 (and does nothing) where the CPU lacks AVX-512F or memory runs out. Its
 * packing buffers are ctx's (kept for the next product), or malloc'ed for the call (NULL). */
int rc_sgemm_own(rc_ctx *ctx, int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                 int64_t ldc, int threads);

/* ---- the trace (runtime/gemm.c), kept in the runtime context, and its replay
 * (runtime/gemm_replay.c) ---- */

enum { RC_GEMM_CALL = 0, RC_GEMM_PACKED = 1, RC_GEMM_PACK = 2 };

/* One recorded call: a product through rc_sgemm (kernel 1 when recur's ran it, threads: how
 * many), a product with a packed weight (rn_pgemm; threads 2 when split with its helper;
 * kernel: the packed kernel's kind), or the packing of a weight (rn_pack: K, N, tb). */
typedef struct {
  int64_t M, N, K;
  int op, ta, tb, threads, kernel;
} rc_gemm_call;

/* Appends c to ctx's trace (call it only while ctx->gemm_tracing). */
void rc_gemm_trace_record(rc_ctx *ctx, const rc_gemm_call *c);
/* Records the packing of a [K, N] weight (stored transposed when trans) for kernel `kind`. */
void rc_gemm_trace_pack(rc_ctx *ctx, int64_t K, int64_t N, int trans, int kind);
/* Starts a new trace in ctx (dropping any previous one). */
void rc_gemm_trace_start(rc_ctx *ctx);
/* Stops tracing; returns the calls since the start (malloc'ed, the caller frees; NULL with
 * *n = 0 when there were none; *lost set when some could not be stored). */
rc_gemm_call *rc_gemm_trace_stop(rc_ctx *ctx, size_t *n, int *lost);

/* Runs the n calls alone on scratch data with the same kernels and threads, once untimed (to
 * grow buffers and warm caches) and then reps times; returns the best time of one timed pass
 * in seconds, or -1 when memory runs out. */
double rc_gemm_replay(const rc_gemm_call *calls, size_t n, int reps);

#endif
