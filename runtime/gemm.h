/* The runtime's single entry point for matrix products (runtime/gemm.c), and the trace of the
 * products a piece of work runs, with their replay (runtime/gemm_trace.c). Not a public
 * header. */
#ifndef RECUR_GEMM_H
#define RECUR_GEMM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* C [M, N] (row stride ldc) = alpha op(A) op(B) + beta C, all row-major: op(A) is [M, K] (A
 * stored [M, K] with row stride lda, or [K, M] when ta), op(B) is [K, N] (B stored [K, N], or
 * [N, K] when tb). beta = 0 overwrites C (even NaN); K = 0 or alpha = 0 reads neither A nor B.
 * Large products run recur's own AVX-512 kernel when OpenBLAS's chosen core has none (see
 * rc_gemm_own_wanted), split over a helper thread when there is more than one BLAS thread;
 * the rest go to cblas_sgemm (cblas_sgemv for one row). */
void rc_sgemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The path rc_sgemm takes for a product of these sizes: 0 BLAS, 1 recur's kernel on one
 * thread, 2 recur's kernel split over two. */
int rc_gemm_route(int64_t M, int64_t N, int64_t K);

/* Whether recur's kernel runs at all (the CPU has AVX-512F, OpenBLAS's core is not an AVX-512
 * one, RECUR_GEMM_KERNEL is not blas, plain or avx2); decided once per process. */
int rc_gemm_own_wanted(void);

/* recur's kernel itself, on `threads` (1 or 2) threads, whatever the sizes (for tests and the
 * replay); returns -1 (and does nothing) where the CPU lacks AVX-512F or memory runs out. */
int rc_sgemm_own(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                 int threads);

/* ---- the trace (runtime/gemm_trace.c) ---- */

enum { RC_GEMM_CALL = 0, RC_GEMM_PACKED = 1, RC_GEMM_PACK = 2 };

/* One recorded call: a product through rc_sgemm (route: 0 BLAS, 1/2 recur's kernel on that
 * many threads), a product with a packed weight (rn_pgemm; threads 2 when split with its
 * helper; kernel: the packed kernel's kind), or the packing of a weight (rn_pack: K, N, tb). */
typedef struct {
  int64_t M, N, K;
  int op, ta, tb, threads, kernel;
} rc_gemm_call;

extern atomic_int rc_gemm_tracing;
static inline int rc_gemm_trace_on(void) {
  return atomic_load_explicit(&rc_gemm_tracing, memory_order_relaxed);
}
/* Appends c to the trace (calls it only when rc_gemm_trace_on()). */
void rc_gemm_trace_record(const rc_gemm_call *c);
/* Starts a new trace (dropping any previous one). */
void rc_gemm_trace_start(void);
/* Stops tracing; returns the calls since the start (malloc'ed, the caller frees; NULL with
 * *n = 0 when there were none or memory ran out: *lost is then set when calls were dropped). */
rc_gemm_call *rc_gemm_trace_stop(size_t *n, int *lost);

/* Runs the n calls alone on scratch data with the same kernels and threads, reps times;
 * returns the best time of one pass in seconds, or -1 when memory runs out. */
double rc_gemm_replay(const rc_gemm_call *calls, size_t n, int reps);

#endif
