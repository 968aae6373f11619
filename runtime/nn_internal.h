/* Kernels of the nn layer shared by its files (nn_kernels.c); not part of the API. The loops
 * that other floors share too are in kernels.h. */
#ifndef RECUR_NN_INTERNAL_H
#define RECUR_NN_INTERNAL_H

#include <stdint.h>

#include "nn.h"

void rc_relu_kernel(const float *x, float *y, int64_t n);
void rc_act_backward_kernel(rc_act act, const float *y, const float *g, float *out, int64_t n);

/* Rows of a softmax over n classes (nn.linear_cross_entropy), each one pass over the row:
 * z += b (b may be NULL) and the row's maximum (-inf for an empty row, NaNs ignored); */
float rc_row_bias_max(float *z, const float *b, int64_t n);
/* z = exp(z - shift) and the sum of the new z; */
double rc_row_exp_sum(float *z, float shift, int64_t n);
/* z *= s, then acc += z when acc is not NULL (the bias gradient); */
void rc_row_scale_acc(float *z, int64_t n, float s, float *acc);
/* z = s exp(z + b - lse) (b may be NULL), then acc += z when acc is not NULL. */
void rc_row_softmax_scaled(float *z, const float *b, float lse, float s, int64_t n, float *acc);
/* out = exp(x - lse) * s (a row of nn.cross_entropy's gradient) */
void rc_row_exp_scaled(const float *x, float lse, float s, int64_t n, float *out);
/* lse[r] = log(sum_k exp(x[r, k])) of rows x [R, C] (nn.cross_entropy), computed stably
 * (shifted by the row's maximum) with the sum in double in k order; tmp holds
 * rc_rows_logsumexp_tmp(C) floats. */
void rc_rows_logsumexp(const float *x, int64_t R, int64_t C, float *tmp, float *lse);
static inline int64_t rc_rows_logsumexp_tmp(int64_t C) {
  return 16 * (C < 256 ? C : 256);
}

#endif
