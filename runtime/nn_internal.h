/* Kernels shared by the nn files of the runtime (nn_kernels.c); not part of the API. */
#ifndef RECUR_NN_INTERNAL_H
#define RECUR_NN_INTERNAL_H

#include <stdint.h>

#include "nn.h"

void rc_relu_kernel(const float *x, float *y, int64_t n);
void rc_act_backward_kernel(rc_act act, const float *y, const float *g, float *out, int64_t n);
void rc_colsum_add(const float *g, int64_t rows, int64_t cols, float *out);

void rc_k_sgd(float *p, const float *g, float *buf, int64_t n, float lr, float momentum, float keep,
              float wd, int nesterov, int first);
void rc_k_adagrad(float *p, const float *g, float *acc, int64_t n, float clr, float wd, float eps,
                  int eps_in_sqrt);
void rc_k_rmsprop(float *p, const float *g, float *sq, float *mom, float *gavg, int64_t n, float lr,
                  float alpha, float one_m, float eps, float wd, float momentum, int eps_in_sqrt);
void rc_k_adam(float *p, const float *g, float *m, float *v, int64_t n, float beta1, float one_m_b1,
               float beta2, float one_m_b2, float eps, float wd, int decoupled, float decay,
               float step, float sbc2);
double rc_k_sumsq(const float *g, int64_t n);
void rc_k_scale(float *g, int64_t n, float s);
void rc_k_clamp(float *g, int64_t n, float lo, float hi);
void rc_k_add(float *a, const float *b, int64_t n);

#endif
