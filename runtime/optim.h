/* Optimizers: SGD (momentum, Nesterov, weight decay), Adagrad, RMSProp, Adam, AdamW over any
 * list of parameters (leaf tensors; their .grad is read, their values updated in place).
 *
 * The formulas are PyTorch's (torch.optim, 1.13); TensorFlow's conventions are options:
 *   SGD      d = g + wd p; b = first ? d : momentum b + (1 - dampening) d;
 *            p -= lr (nesterov ? d + momentum b : b)       (momentum 0: p -= lr d)
 *   Adagrad  a += d^2; p -= clr d / (sqrt(a) + eps), clr = lr / (1 + (t - 1) lr_decay)
 *            TensorFlow: initial_accumulator = 0.1, eps = 0 (then there is no eps at all)
 *   RMSProp  s = alpha s + (1 - alpha) d^2; (centered: ga = alpha ga + (1 - alpha) d,
 *            s - ga^2 replaces s); den = sqrt(s) + eps; momentum: b = momentum b + d / den,
 *            p -= lr b; else p -= lr d / den.
 *            TensorFlow (tf.train.RMSPropOptimizer): eps_in_sqrt (den = sqrt(s + eps)),
 *            initial_square_avg = 1, alpha = decay = 0.9, eps = 1e-10.
 *   Adam     m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d^2;
 *            p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW    the same with p *= 1 - lr wd first and no wd in d.
 * t counts the steps in which that parameter had a gradient. A parameter without a gradient
 * (grad is nil) is skipped, its state untouched. */
#ifndef RECUR_OPTIM_H
#define RECUR_OPTIM_H

#include "tensor.h"

typedef enum { RC_SGD, RC_ADAGRAD, RC_RMSPROP, RC_ADAM, RC_ADAMW, RC_OPTIM_COUNT } rc_optim_kind;
extern const char *const rc_optim_name[RC_OPTIM_COUNT];

typedef struct {
  double lr, weight_decay;
  double momentum, dampening;           /* SGD, RMSProp (momentum) */
  int nesterov;                         /* SGD */
  double lr_decay, initial_accumulator; /* Adagrad */
  double alpha, initial_square_avg;     /* RMSProp */
  int centered;                         /* RMSProp */
  double beta1, beta2;                  /* Adam(W) */
  double eps;                           /* Adagrad, RMSProp, Adam(W) */
  int eps_in_sqrt;                      /* Adagrad, RMSProp: TensorFlow's placement */
} rc_optim_opts;

/* Up to three state tensors per parameter ("slots"), named per kind:
 * SGD: momentum_buffer (when momentum != 0); Adagrad: sum; RMSProp: square_avg,
 * momentum_buffer (momentum != 0), grad_avg (centered); Adam(W): exp_avg, exp_avg_sq. */
#define RC_OPTIM_SLOTS 3

typedef struct rc_optim {
  rc_ctx *ctx;
  rc_optim_kind kind;
  rc_optim_opts o;
  int n;
  rc_tensor **params;               /* retained */
  rc_tensor **slot[RC_OPTIM_SLOTS]; /* n each, NULL arrays for unused slots */
  int64_t *steps;                   /* per parameter */
  int64_t step;                     /* calls to rc_optim_step */
} rc_optim;

/* Defaults for a kind (PyTorch's): lr as given by the caller (no default). */
void rc_optim_defaults(rc_optim_kind kind, rc_optim_opts *o);
/* Validates options and parameters (leaves, contiguous, no duplicates), then allocates the
 * state (zeros; Adagrad's sum = initial_accumulator; RMSProp's square_avg =
 * initial_square_avg). */
rc_optim *rc_optim_new(rc_ctx *c, rc_optim_kind kind, const rc_optim_opts *o, rc_tensor **params,
                       int n);
void rc_optim_free(rc_optim *opt);
/* The name of slot k for this optimizer, or NULL when unused. */
const char *rc_optim_slot_name(const rc_optim *opt, int k);
/* One update of every parameter that has a gradient. */
int rc_optim_step(rc_optim *opt);
/* Validates the options for kind (messages name `fn`). */
int rc_optim_check(rc_ctx *c, const char *fn, rc_optim_kind kind, const rc_optim_opts *o);

#endif
