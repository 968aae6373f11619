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

#include <stddef.h>

#include "tensor.h"

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

/* Up to three state tensors per parameter ("slots"), named per optimizer:
 * SGD: momentum_buffer (when momentum != 0); Adagrad: sum; RMSProp: square_avg,
 * momentum_buffer (momentum != 0), grad_avg (centered); Adam(W): exp_avg, exp_avg_sq. */
#define RC_OPTIM_SLOTS 3
#define RC_OPTIM_MAX_OPTIONS 8

/* An option of rc_optim_opts as the bindings see it (recur.optim.X{name = v}, opt:get/set). */
typedef struct {
  const char *name;
  int is_bool; /* an int field (false/true), else a double */
  size_t off;  /* offsetof(rc_optim_opts, field) */
} rc_optim_option;

/* Every option but lr (NULL-terminated); weight_decay, the first, belongs to every optimizer. */
extern const rc_optim_option rc_optim_options[];

/* One optimizer: a row of the table runtime/optim_table.h. Everything the runtime, the
 * bindings (recur.optim.<name>, options, state(), load_state) and checkpoints need. */
typedef struct rc_optim_desc {
  const char *name;                                  /* "RMSProp": recur.optim.RMSProp, messages */
  const char *slots[RC_OPTIM_SLOTS];                 /* the state tensors' names, NULL = none */
  const char *options[RC_OPTIM_MAX_OPTIONS];         /* its options besides lr and weight_decay */
  void (*defaults)(rc_optim_opts *o);                /* after the common ones, or NULL */
  int (*slot_used)(const rc_optim_opts *o, int k);   /* NULL: every named slot */
  float (*slot_init)(const rc_optim_opts *o, int k); /* the state's first value; NULL: 0 */
  /* checks of its own, after the common ones (messages name fn); NULL: none */
  int (*check)(rc_ctx *c, const char *fn, const rc_optim_opts *o);
  /* one update of n floats: p and g, slot[k] (NULL when unused), t the parameter's step;
   * element by element (each float's new values from its own p, g and slots only): a step
   * hands any stretch of a parameter's floats to either of two threads */
  void (*update)(const rc_optim_opts *o, int64_t t, float *p, const float *g, float *const *slot,
                 int64_t n);
} rc_optim_desc;

/* Every optimizer (the rows of runtime/optim_table.h), NULL-terminated; in
 * runtime/optim_table.c, alone in its object so that a test binary can link its own table. */
extern const rc_optim_desc *const rc_optims[];
/* The row named name, or NULL. */
const rc_optim_desc *rc_optim_find(const char *name);
/* Whether desc reads the option called name (lr and weight_decay: always). */
int rc_optim_has_option(const rc_optim_desc *d, const char *name);
/* Whether slot k exists under these options. */
int rc_optim_slot_used(const rc_optim_desc *d, const rc_optim_opts *o, int k);

typedef struct rc_optim {
  rc_ctx *ctx;
  const rc_optim_desc *desc;
  rc_optim_opts o;
  int n;
  rc_tensor **params;               /* retained */
  rc_tensor **slot[RC_OPTIM_SLOTS]; /* n each, NULL arrays for unused slots */
  int64_t *steps;                   /* per parameter */
  int64_t step;                     /* calls to rc_optim_step */
} rc_optim;

/* Defaults (PyTorch's): lr as given by the caller (no default). */
void rc_optim_defaults(const rc_optim_desc *d, rc_optim_opts *o);
/* Validates options and parameters (leaves, contiguous, no duplicates), then allocates the
 * state (zeros, or the desc's slot_init: Adagrad's sum = initial_accumulator, RMSProp's
 * square_avg = initial_square_avg). */
rc_optim *rc_optim_new(rc_ctx *c, const rc_optim_desc *d, const rc_optim_opts *o,
                       rc_tensor **params, int n);
void rc_optim_free(rc_optim *opt);
/* The name of slot k for this optimizer, or NULL when unused. */
const char *rc_optim_slot_name(const rc_optim *opt, int k);
/* One update of every parameter that has a gradient. */
int rc_optim_step(rc_optim *opt);
/* Validates the options for d (messages name `fn`). */
int rc_optim_check(rc_ctx *c, const char *fn, const rc_optim_desc *d, const rc_optim_opts *o);

#endif
