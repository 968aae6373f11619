/* The kernel floor of the runtime: pure loops on raw float arrays, with no tensor, context or
 * error in sight, so that every floor above (tensor, autograd, ops, nn, rnn, optim) can call
 * them. Not part of the API. */
#ifndef RECUR_KERNELS_H
#define RECUR_KERNELS_H

#include <stdint.h>

/* Wider SIMD where the CPU has it: GCC builds an AVX-512, an AVX2 and a baseline version of
 * each hot kernel and picks one at load time. With -std=c11 GCC contracts nothing into FMA and
 * every operation here is correctly rounded IEEE, so all versions give identical bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    !defined(RECUR_NO_CLONES)
#define RC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define RC_CLONES
#endif

/* a[i] += b[i] (gradient accumulation) */
void rc_k_add(float *a, const float *b, int64_t n);
/* g[i] *= s */
void rc_k_scale(float *g, int64_t n, float s);
/* g[i] clamped to [lo, hi] */
void rc_k_clamp(float *g, int64_t n, float lo, float hi);
/* sum of g[i]^2, in 16 float lanes per block of 1024 elements, the blocks added in double
 * (deterministic) */
double rc_k_sumsq(const float *g, int64_t n);
/* out[j] += sum_i g[i * cols + j] (bias gradients) */
void rc_colsum_add(const float *g, int64_t rows, int64_t cols, float *out);
/* y[i] = exp, tanh, sigmoid of x[i] (kernels_math.h: the runtime's only ones, within 1.5 ulp);
 * y may be x */
void rc_k_exp(const float *x, float *y, int64_t n);
void rc_k_tanh(const float *x, float *y, int64_t n);
void rc_k_sigmoid(const float *x, float *y, int64_t n);

#endif
