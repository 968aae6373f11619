/* Kernels of the nn layer shared by its files (nn_kernels.c); not part of the API. The loops
 * that other floors share too are in kernels.h. */
#ifndef RECUR_NN_INTERNAL_H
#define RECUR_NN_INTERNAL_H

#include <stdint.h>

#include "nn.h"

void rc_relu_kernel(const float *x, float *y, int64_t n);
void rc_act_backward_kernel(rc_act act, const float *y, const float *g, float *out, int64_t n);

#endif
