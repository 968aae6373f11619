/* Optimizers (formulas in optim.h): the state, its checks, and the arithmetic, one vectorized
 * loop per parameter. The Makefile compiles this file with the kernel flags (-O3
 * -fno-math-errno -fno-trapping-math, see runtime/nn_kernels.c), which change no result. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "kernels.h"

const char *const rc_optim_name[RC_OPTIM_COUNT] = {"SGD", "Adagrad", "RMSProp", "Adam", "AdamW"};

void rc_optim_defaults(rc_optim_kind kind, rc_optim_opts *o) {
  memset(o, 0, sizeof *o);
  o->lr = NAN;
  o->alpha = 0.99;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = kind == RC_ADAGRAD ? 1e-10 : 1e-8;
  o->weight_decay = kind == RC_ADAMW ? 1e-2 : 0.0;
}

static const char *const slot_names[RC_OPTIM_COUNT][RC_OPTIM_SLOTS] = {
    {"momentum_buffer", NULL, NULL},
    {"sum", NULL, NULL},
    {"square_avg", "momentum_buffer", "grad_avg"},
    {"exp_avg", "exp_avg_sq", NULL},
    {"exp_avg", "exp_avg_sq", NULL}};

static int slot_used(rc_optim_kind kind, const rc_optim_opts *o, int k) {
  if (!slot_names[kind][k]) return 0;
  if (kind == RC_SGD) return o->momentum != 0.0;
  if (kind == RC_RMSPROP && k == 1) return o->momentum != 0.0;
  if (kind == RC_RMSPROP && k == 2) return o->centered;
  return 1;
}

const char *rc_optim_slot_name(const rc_optim *opt, int k) {
  if (k < 0 || k >= RC_OPTIM_SLOTS || !opt->slot[k]) return NULL;
  return slot_names[opt->kind][k];
}

static int bad(rc_ctx *c, const char *fn, const char *what, double v, const char *need) {
  return rc_error(c, "%s: %s must be %s, got %g", fn, what, need, v);
}

int rc_optim_check(rc_ctx *c, const char *fn, rc_optim_kind kind, const rc_optim_opts *o) {
  if ((int)kind < 0 || kind >= RC_OPTIM_COUNT) return rc_error(c, "%s: unknown optimizer", fn);
  if (!(o->lr >= 0) || isinf(o->lr)) return bad(c, fn, "lr", o->lr, "a finite number >= 0");
  if (!(o->weight_decay >= 0) || isinf(o->weight_decay))
    return bad(c, fn, "weight_decay", o->weight_decay, "a finite number >= 0");
  if (!(o->eps >= 0) || isinf(o->eps)) return bad(c, fn, "eps", o->eps, "a finite number >= 0");
  if (!(o->momentum >= 0) || isinf(o->momentum))
    return bad(c, fn, "momentum", o->momentum, "a finite number >= 0");
  if (!(o->dampening >= 0 && o->dampening <= 1))
    return bad(c, fn, "dampening", o->dampening, "in [0, 1]");
  if (kind == RC_SGD && o->nesterov && (o->momentum <= 0 || o->dampening != 0))
    return rc_error(c,
                    "%s: nesterov needs momentum > 0 and dampening 0 (got momentum %g, "
                    "dampening %g)",
                    fn, o->momentum, o->dampening);
  if (!(o->lr_decay >= 0) || isinf(o->lr_decay))
    return bad(c, fn, "lr_decay", o->lr_decay, "a finite number >= 0");
  if (!(o->initial_accumulator >= 0) || isinf(o->initial_accumulator))
    return bad(c, fn, "initial_accumulator", o->initial_accumulator, "a finite number >= 0");
  if (!(o->initial_square_avg >= 0) || isinf(o->initial_square_avg))
    return bad(c, fn, "initial_square_avg", o->initial_square_avg, "a finite number >= 0");
  if (!(o->alpha >= 0 && o->alpha <= 1)) return bad(c, fn, "alpha", o->alpha, "in [0, 1]");
  if (!(o->beta1 >= 0 && o->beta1 < 1)) return bad(c, fn, "beta1", o->beta1, "in [0, 1)");
  if (!(o->beta2 >= 0 && o->beta2 < 1)) return bad(c, fn, "beta2", o->beta2, "in [0, 1)");
  if ((kind == RC_ADAGRAD || kind == RC_RMSPROP || kind == RC_ADAM || kind == RC_ADAMW) &&
      o->eps == 0 && !(kind == RC_ADAGRAD && o->initial_accumulator > 0) &&
      !(kind == RC_RMSPROP && o->initial_square_avg > 0))
    return rc_error(c, "%s: eps must be > 0 (a zero gradient would divide 0 by 0)", fn);
  return 0;
}

void rc_optim_free(rc_optim *opt) {
  if (!opt) return;
  for (int i = 0; i < opt->n; i++) {
    rc_release(opt->params ? opt->params[i] : NULL);
    for (int k = 0; k < RC_OPTIM_SLOTS; k++)
      if (opt->slot[k]) rc_release(opt->slot[k][i]);
  }
  rc_ctx *c = opt->ctx;
  for (int k = 0; k < RC_OPTIM_SLOTS; k++) rc_mem_free(c, opt->slot[k]);
  rc_mem_free(c, opt->params);
  rc_mem_free(c, opt->steps);
  rc_mem_free(c, opt);
  rc_ctx_release(c);
}

rc_optim *rc_optim_new(rc_ctx *c, rc_optim_kind kind, const rc_optim_opts *o, rc_tensor **params,
                       int n) {
  const char *fn = (int)kind >= 0 && kind < RC_OPTIM_COUNT ? rc_optim_name[kind] : "optim";
  if (rc_optim_check(c, fn, kind, o)) return NULL;
  if (n < 0) return rc_error_null(c, "%s: negative parameter count", fn);
  char s[160];
  for (int i = 0; i < n; i++) {
    rc_tensor *p = params[i];
    if (p->grad_fn)
      return rc_error_null(c,
                           "%s: parameter %d is not a leaf (it was computed from other "
                           "tensors); optimize the leaves it came from",
                           fn, i + 1);
    if (!rc_is_contiguous(p))
      return rc_error_null(c, "%s: parameter %d (shape %s) is not contiguous", fn, i + 1,
                           rc_shape_str(p, s, sizeof s));
    if (p->ctx != c)
      return rc_error_null(c, "%s: parameter %d belongs to another runtime", fn, i + 1);
    for (int k = 0; k < i; k++)
      if (params[k] == p)
        return rc_error_null(c, "%s: parameter %d is the same tensor as parameter %d", fn, i + 1,
                             k + 1);
  }
  /* packed parameters get their gradient slots now (the arena's gradient buffer is made when
   * first needed: an optimizer needs it), zeros until a backward reaches them */
  for (int i = 0; i < n; i++)
    if (rc_grad_slot_attach(params[i])) {
      rc_error_prefix(c, fn);
      return NULL;
    }
  rc_optim *opt = rc_mem_calloc(c, 1, sizeof *opt);
  if (!opt) return NULL;
  opt->ctx = c;
  rc_ctx_retain(c);
  opt->kind = kind;
  opt->o = *o;
  opt->n = n;
  size_t cnt = (size_t)(n ? n : 1);
  opt->params = rc_mem_calloc(c, cnt, sizeof *opt->params);
  opt->steps = rc_mem_calloc(c, cnt, sizeof *opt->steps);
  if (!opt->params || !opt->steps) goto oom;
  for (int k = 0; k < RC_OPTIM_SLOTS; k++) {
    if (!slot_used(kind, o, k)) continue;
    opt->slot[k] = rc_mem_calloc(c, cnt, sizeof(rc_tensor *));
    if (!opt->slot[k]) goto oom;
  }
  for (int i = 0; i < n; i++) {
    rc_tensor *p = params[i];
    rc_retain(p);
    opt->params[i] = p;
    for (int k = 0; k < RC_OPTIM_SLOTS; k++) {
      if (!opt->slot[k]) continue;
      float init = 0.0f;
      if (kind == RC_ADAGRAD && k == 0) init = (float)o->initial_accumulator;
      if (kind == RC_RMSPROP && k == 0) init = (float)o->initial_square_avg;
      opt->slot[k][i] = rc_full(c, p->ndim, p->size, init);
      if (!opt->slot[k][i]) {
        rc_optim_free(opt);
        return NULL; /* message from rc_full */
      }
    }
  }
  return opt;
oom: /* the allocator's message: the memory limit or a failed malloc */
  rc_optim_free(opt);
  rc_error_prefix(c, fn);
  return NULL;
}

/* ---- the updates: one call per parameter, all arrays of length n ---- */

static RC_CLONES void rc_k_sgd(float *p, const float *g, float *buf, int64_t n, float lr,
                               float momentum, float keep, float wd, int nesterov, int first) {
  if (momentum == 0.0f) {
    if (wd == 0.0f) {
      for (int64_t i = 0; i < n; i++) p[i] -= lr * g[i];
    } else {
      for (int64_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
    }
    return;
  }
  if (first) {
    for (int64_t i = 0; i < n; i++) buf[i] = g[i] + wd * p[i];
  } else {
    for (int64_t i = 0; i < n; i++) buf[i] = momentum * buf[i] + keep * (g[i] + wd * p[i]);
  }
  if (nesterov) {
    for (int64_t i = 0; i < n; i++) p[i] -= lr * ((g[i] + wd * p[i]) + momentum * buf[i]);
  } else {
    for (int64_t i = 0; i < n; i++) p[i] -= lr * buf[i];
  }
}

/* eps_in_sqrt = 0: p -= lr g / (sqrt(acc) + eps) (PyTorch); 1: p -= lr g / sqrt(acc + eps)
 * (TensorFlow, where eps = 0 and the accumulator starts at 0.1). */
static RC_CLONES void rc_k_adagrad(float *p, const float *g, float *acc, int64_t n, float clr,
                                   float wd, float eps, int eps_in_sqrt) {
  if (eps_in_sqrt) {
    for (int64_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float a = acc[i] + d * d;
      acc[i] = a;
      p[i] -= clr * d / sqrtf(a + eps);
    }
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float a = acc[i] + d * d;
    acc[i] = a;
    p[i] -= clr * d / (sqrtf(a) + eps);
  }
}

/* one loop per combination of options, so that each one vectorizes */
#define RMSPROP_LOOP(CENTERED, MOMENTUM, IN_SQRT)                                                  \
  for (int64_t i = 0; i < n; i++) {                                                                \
    float d = g[i] + wd * p[i];                                                                    \
    float s = alpha * sq[i] + one_m * d * d;                                                       \
    sq[i] = s;                                                                                     \
    float v = s;                                                                                   \
    if (CENTERED) {                                                                                \
      float ga = alpha * gavg[i] + one_m * d;                                                      \
      gavg[i] = ga;                                                                                \
      v = s - ga * ga;                                                                             \
    }                                                                                              \
    float den = IN_SQRT ? sqrtf(v + eps) : sqrtf(v) + eps;                                         \
    if (MOMENTUM) {                                                                                \
      float b = momentum * mom[i] + d / den;                                                       \
      mom[i] = b;                                                                                  \
      p[i] -= lr * b;                                                                              \
    } else {                                                                                       \
      p[i] -= lr * d / den;                                                                        \
    }                                                                                              \
  }

static RC_CLONES void rc_k_rmsprop(float *p, const float *g, float *sq, float *mom, float *gavg,
                                   int64_t n, float lr, float alpha, float one_m, float eps,
                                   float wd, float momentum, int eps_in_sqrt) {
  int variant = (gavg ? 4 : 0) | (mom ? 2 : 0) | (eps_in_sqrt ? 1 : 0);
  switch (variant) {
  case 0:
    RMSPROP_LOOP(0, 0, 0) break;
  case 1:
    RMSPROP_LOOP(0, 0, 1) break;
  case 2:
    RMSPROP_LOOP(0, 1, 0) break;
  case 3:
    RMSPROP_LOOP(0, 1, 1) break;
  case 4:
    RMSPROP_LOOP(1, 0, 0) break;
  case 5:
    RMSPROP_LOOP(1, 0, 1) break;
  case 6:
    RMSPROP_LOOP(1, 1, 0) break;
  default:
    RMSPROP_LOOP(1, 1, 1) break;
  }
}
#undef RMSPROP_LOOP

/* Adam (decoupled = 0: weight decay added to the gradient) and AdamW (decoupled = 1:
 * p *= decay = 1 - lr wd first). PyTorch's formula: p -= step * m / (sqrt(v) / sbc2 + eps)
 * with step = lr / (1 - beta1^t), sbc2 = sqrt(1 - beta2^t). The caller computes the scalars
 * (and 1 - beta) in double, as PyTorch does in Python, so that the float32 results agree. */
static RC_CLONES void rc_k_adam(float *p, const float *g, float *m, float *v, int64_t n,
                                float beta1, float one_m_b1, float beta2, float one_m_b2, float eps,
                                float wd, int decoupled, float decay, float step, float sbc2) {
  float cwd = decoupled ? 0.0f : wd;
  if (!decoupled) decay = 1.0f;
  for (int64_t i = 0; i < n; i++) {
    float pi = p[i] * decay;
    float d = g[i] + cwd * p[i];
    float mi = beta1 * m[i] + one_m_b1 * d;
    float vi = beta2 * v[i] + one_m_b2 * d * d;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * mi / (sqrtf(vi) / sbc2 + eps);
  }
}

int rc_optim_step(rc_optim *opt) {
  rc_ctx *c = opt->ctx;
  const rc_optim_opts *o = &opt->o;
  const char *fn = rc_optim_name[opt->kind];
  char s1[160], s2[160];
  /* validate everything first: no parameter is updated when one of them is wrong */
  if (rc_optim_check(c, fn, opt->kind, o)) return -1;
  int touched = 2; /* the parameter and its gradient, and each moment slot in use */
  for (int k = 0; k < RC_OPTIM_SLOTS; k++) touched += opt->slot[k] != NULL;
  for (int i = 0; i < opt->n; i++) {
    rc_tensor *p = opt->params[i], *g = p->grad;
    /* charged while validating: a spent budget updates nothing either */
    if (g && rc_charge_elems(c, fn, rc_numel(p) * touched)) return -1;
    if (!rc_is_contiguous(p))
      return rc_error(c, "%s: parameter %d (shape %s) is no longer contiguous", fn, i + 1,
                      rc_shape_str(p, s1, sizeof s1));
    if (g && !rc_same_shape(g, p))
      return rc_error(c, "%s: the gradient of parameter %d has shape %s, the parameter %s", fn,
                      i + 1, rc_shape_str(g, s1, sizeof s1), rc_shape_str(p, s2, sizeof s2));
  }
  opt->step++;
  for (int i = 0; i < opt->n; i++) {
    rc_tensor *p = opt->params[i];
    if (!p->grad) continue;
    rc_tensor *gc = rc_raw_contiguous(p->grad);
    if (!gc) return -1;
    int64_t t = ++opt->steps[i];
    int64_t n = rc_numel(p);
    float *pd = rc_data(p);
    const float *gd = rc_data(gc);
    float *s0 = opt->slot[0] ? rc_data(opt->slot[0][i]) : NULL;
    float *s1p = opt->slot[1] ? rc_data(opt->slot[1][i]) : NULL;
    float *s2p = opt->slot[2] ? rc_data(opt->slot[2][i]) : NULL;
    switch (opt->kind) {
    case RC_SGD:
      rc_k_sgd(pd, gd, s0, n, (float)o->lr, (float)o->momentum, (float)(1.0 - o->dampening),
               (float)o->weight_decay, o->nesterov, t == 1);
      break;
    case RC_ADAGRAD: {
      double clr = o->lr / (1.0 + (double)(t - 1) * o->lr_decay);
      rc_k_adagrad(pd, gd, s0, n, (float)clr, (float)o->weight_decay, (float)o->eps,
                   o->eps_in_sqrt);
      break;
    }
    case RC_RMSPROP:
      rc_k_rmsprop(pd, gd, s0, s1p, s2p, n, (float)o->lr, (float)o->alpha, (float)(1.0 - o->alpha),
                   (float)o->eps, (float)o->weight_decay, (float)o->momentum, o->eps_in_sqrt);
      break;
    case RC_ADAM:
    case RC_ADAMW: {
      double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
      rc_k_adam(pd, gd, s0, s1p, n, (float)o->beta1, (float)(1.0 - o->beta1), (float)o->beta2,
                (float)(1.0 - o->beta2), (float)o->eps, (float)o->weight_decay,
                opt->kind == RC_ADAMW, (float)(1.0 - o->lr * o->weight_decay), (float)(o->lr / bc1),
                (float)sqrt(bc2));
      break;
    }
    default:
      break;
    }
    rc_release(gc);
    rc_bump_version(p);
    for (int k = 0; k < RC_OPTIM_SLOTS; k++)
      if (opt->slot[k]) rc_bump_version(opt->slot[k][i]);
  }
  return 0;
}
