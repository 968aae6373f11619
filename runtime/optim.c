/* Optimizers (formulas in optim.h): the state, its checks, and the arithmetic, one vectorized
 * loop per parameter (or per stretch of one, when a step is shared between two threads). The
 * Makefile compiles this file with the kernel flags (-O3 -fno-math-errno -fno-trapping-math,
 * see runtime/nn_kernels.c), which change no result. */
#include "optim.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "kernels.h"

#define OPTION(f, is_bool)                                                                         \
  { #f, is_bool, offsetof(rc_optim_opts, f) }
const rc_optim_option rc_optim_options[] = {OPTION(weight_decay, 0), OPTION(momentum, 0),
                                            OPTION(dampening, 0),    OPTION(nesterov, 1),
                                            OPTION(lr_decay, 0),     OPTION(initial_accumulator, 0),
                                            OPTION(alpha, 0),        OPTION(initial_square_avg, 0),
                                            OPTION(centered, 1),     OPTION(beta1, 0),
                                            OPTION(beta2, 0),        OPTION(eps, 0),
                                            OPTION(eps_in_sqrt, 1),  {NULL, 0, 0}};
#undef OPTION

const rc_optim_desc *rc_optim_find(const char *name) {
  for (int k = 0; rc_optims[k]; k++)
    if (strcmp(rc_optims[k]->name, name) == 0) return rc_optims[k];
  return NULL;
}

int rc_optim_has_option(const rc_optim_desc *d, const char *name) {
  if (strcmp(name, "lr") == 0 || strcmp(name, "weight_decay") == 0) return 1;
  for (int k = 0; k < RC_OPTIM_MAX_OPTIONS && d->options[k]; k++)
    if (strcmp(d->options[k], name) == 0) return 1;
  return 0;
}

void rc_optim_defaults(const rc_optim_desc *d, rc_optim_opts *o) {
  memset(o, 0, sizeof *o);
  o->lr = NAN;
  o->alpha = 0.99;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->weight_decay = 0.0;
  if (d && d->defaults) d->defaults(o);
}

int rc_optim_slot_used(const rc_optim_desc *d, const rc_optim_opts *o, int k) {
  if (k < 0 || k >= RC_OPTIM_SLOTS || !d->slots[k]) return 0;
  return d->slot_used ? d->slot_used(o, k) : 1;
}

const char *rc_optim_slot_name(const rc_optim *opt, int k) {
  if (k < 0 || k >= RC_OPTIM_SLOTS || !opt->slot[k]) return NULL;
  return opt->desc->slots[k];
}

static int bad(rc_ctx *c, const char *fn, const char *what, double v, const char *need) {
  return rc_error(c, "%s: %s must be %s, got %g", fn, what, need, v);
}

int rc_optim_check(rc_ctx *c, const char *fn, const rc_optim_desc *d, const rc_optim_opts *o) {
  if (!d) return rc_error(c, "%s: unknown optimizer", fn);
  if (!(o->lr >= 0) || isinf(o->lr)) return bad(c, fn, "lr", o->lr, "a finite number >= 0");
  if (!(o->weight_decay >= 0) || isinf(o->weight_decay))
    return bad(c, fn, "weight_decay", o->weight_decay, "a finite number >= 0");
  if (!(o->eps >= 0) || isinf(o->eps)) return bad(c, fn, "eps", o->eps, "a finite number >= 0");
  if (!(o->momentum >= 0) || isinf(o->momentum))
    return bad(c, fn, "momentum", o->momentum, "a finite number >= 0");
  if (!(o->dampening >= 0 && o->dampening <= 1))
    return bad(c, fn, "dampening", o->dampening, "in [0, 1]");
  if (!(o->lr_decay >= 0) || isinf(o->lr_decay))
    return bad(c, fn, "lr_decay", o->lr_decay, "a finite number >= 0");
  if (!(o->initial_accumulator >= 0) || isinf(o->initial_accumulator))
    return bad(c, fn, "initial_accumulator", o->initial_accumulator, "a finite number >= 0");
  if (!(o->initial_square_avg >= 0) || isinf(o->initial_square_avg))
    return bad(c, fn, "initial_square_avg", o->initial_square_avg, "a finite number >= 0");
  if (!(o->alpha >= 0 && o->alpha <= 1)) return bad(c, fn, "alpha", o->alpha, "in [0, 1]");
  if (!(o->beta1 >= 0 && o->beta1 < 1)) return bad(c, fn, "beta1", o->beta1, "in [0, 1)");
  if (!(o->beta2 >= 0 && o->beta2 < 1)) return bad(c, fn, "beta2", o->beta2, "in [0, 1)");
  return d->check ? d->check(c, fn, o) : 0;
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

rc_optim *rc_optim_new(rc_ctx *c, const rc_optim_desc *d, const rc_optim_opts *o,
                       rc_tensor **params, int n) {
  const char *fn = d ? d->name : "optim";
  if (rc_optim_check(c, fn, d, o)) return NULL;
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
  opt->desc = d;
  opt->o = *o;
  opt->n = n;
  size_t cnt = (size_t)(n ? n : 1);
  opt->params = rc_mem_calloc(c, cnt, sizeof *opt->params);
  opt->steps = rc_mem_calloc(c, cnt, sizeof *opt->steps);
  if (!opt->params || !opt->steps) goto oom;
  for (int k = 0; k < RC_OPTIM_SLOTS; k++) {
    if (!rc_optim_slot_used(d, o, k)) continue;
    opt->slot[k] = rc_mem_calloc(c, cnt, sizeof(rc_tensor *));
    if (!opt->slot[k]) goto oom;
  }
  for (int i = 0; i < n; i++) {
    rc_tensor *p = params[i];
    rc_retain(p);
    opt->params[i] = p;
    for (int k = 0; k < RC_OPTIM_SLOTS; k++) {
      if (!opt->slot[k]) continue;
      float init = d->slot_init ? d->slot_init(o, k) : 0.0f;
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

/* rc_optim_step's parameters laid end to end: parameter i's floats are [start, start + n) */
typedef struct {
  int i;
  int64_t start, n, t;
  float *p;
  const float *g;
  float *slot[RC_OPTIM_SLOTS];
  rc_tensor *gc; /* the contiguous gradient g points into */
} step_part;

typedef struct {
  const rc_optim *opt;
  const step_part *part;
  int np;
} step_job;

/* the updates of floats [lo, hi) of the stretch */
static void step_range(void *arg, int64_t lo, int64_t hi) {
  const step_job *j = arg;
  for (int k = 0; k < j->np; k++) {
    const step_part *q = &j->part[k];
    int64_t a = lo > q->start ? lo - q->start : 0, b = hi < q->start + q->n ? hi - q->start : q->n;
    if (a >= b) continue;
    float *slot[RC_OPTIM_SLOTS];
    for (int s = 0; s < RC_OPTIM_SLOTS; s++) slot[s] = q->slot[s] ? q->slot[s] + a : NULL;
    j->opt->desc->update(&j->opt->o, q->t, q->p + a, q->g + a, slot, b - a);
  }
}

int rc_optim_step(rc_optim *opt) {
  rc_ctx *c = opt->ctx;
  const rc_optim_opts *o = &opt->o;
  const char *fn = opt->desc->name;
  char s1[160], s2[160];
  /* validate everything first: no parameter is updated when one of them is wrong */
  if (rc_optim_check(c, fn, opt->desc, o)) return -1;
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
  /* every parameter with a gradient as one stretch of floats, shared with the context's
   * helper (rc_ctx_rows) when it is long enough: each float's update reads only its own
   * parameter, gradient and state, so the split changes no result */
  step_part *part = rc_mem_calloc(c, (size_t)(opt->n > 0 ? opt->n : 1), sizeof *part);
  if (!part) return rc_error_prefix(c, fn);
  int np = 0, rc = 0;
  int64_t total = 0;
  for (int i = 0; i < opt->n && rc == 0; i++) {
    rc_tensor *p = opt->params[i];
    if (!p->grad) continue;
    step_part *q = &part[np];
    if (!(q->gc = rc_raw_contiguous(p->grad))) {
      rc = -1;
      break;
    }
    np++;
    q->i = i;
    q->start = total;
    q->n = rc_numel(p);
    q->p = rc_data(p);
    q->g = rc_data(q->gc);
    for (int k = 0; k < RC_OPTIM_SLOTS; k++)
      q->slot[k] = opt->slot[k] ? rc_data(opt->slot[k][i]) : NULL;
    total += q->n;
  }
  if (rc == 0) {
    opt->step++;
    for (int k = 0; k < np; k++) part[k].t = ++opt->steps[part[k].i];
    step_job j = {opt, part, np};
    rc_ctx_rows(c, step_range, &j, total, total * touched);
    for (int k = 0; k < np; k++) {
      rc_bump_version(opt->params[part[k].i]);
      for (int s = 0; s < RC_OPTIM_SLOTS; s++)
        if (opt->slot[s]) rc_bump_version(opt->slot[s][part[k].i]);
    }
  }
  for (int k = 0; k < np; k++) rc_release(part[k].gc);
  rc_mem_free(c, part);
  return rc;
}

/* ---- the optimizers: each one's update, checks and descriptor (a row of optim_table.h) ---- */

static int check_eps(rc_ctx *c, const char *fn, const rc_optim_opts *o, int starts_positive) {
  if (o->eps == 0 && !starts_positive)
    return rc_error(c, "%s: eps must be > 0 (a zero gradient would divide 0 by 0)", fn);
  return 0;
}

static void sgd_update(const rc_optim_opts *o, int64_t t, float *p, const float *g,
                       float *const *slot, int64_t n) {
  rc_k_sgd(p, g, slot[0], n, (float)o->lr, (float)o->momentum, (float)(1.0 - o->dampening),
           (float)o->weight_decay, o->nesterov, t == 1);
}
static int sgd_slot_used(const rc_optim_opts *o, int k) {
  (void)k;
  return o->momentum != 0.0;
}
static int sgd_check(rc_ctx *c, const char *fn, const rc_optim_opts *o) {
  if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
    return rc_error(c,
                    "%s: nesterov needs momentum > 0 and dampening 0 (got momentum %g, "
                    "dampening %g)",
                    fn, o->momentum, o->dampening);
  return 0;
}
const rc_optim_desc rc_optim_sgd = {
    .name = "SGD",
    .slots = {"momentum_buffer"},
    .options = {"momentum", "dampening", "nesterov"},
    .slot_used = sgd_slot_used,
    .check = sgd_check,
    .update = sgd_update,
};

static void adagrad_update(const rc_optim_opts *o, int64_t t, float *p, const float *g,
                           float *const *slot, int64_t n) {
  double clr = o->lr / (1.0 + (double)(t - 1) * o->lr_decay);
  rc_k_adagrad(p, g, slot[0], n, (float)clr, (float)o->weight_decay, (float)o->eps, o->eps_in_sqrt);
}
static void adagrad_defaults(rc_optim_opts *o) {
  o->eps = 1e-10;
}
static float adagrad_init(const rc_optim_opts *o, int k) {
  (void)k;
  return (float)o->initial_accumulator;
}
static int adagrad_check(rc_ctx *c, const char *fn, const rc_optim_opts *o) {
  return check_eps(c, fn, o, o->initial_accumulator > 0);
}
const rc_optim_desc rc_optim_adagrad = {
    .name = "Adagrad",
    .slots = {"sum"},
    .options = {"lr_decay", "initial_accumulator", "eps", "eps_in_sqrt"},
    .defaults = adagrad_defaults,
    .slot_init = adagrad_init,
    .check = adagrad_check,
    .update = adagrad_update,
};

static void rmsprop_update(const rc_optim_opts *o, int64_t t, float *p, const float *g,
                           float *const *slot, int64_t n) {
  (void)t;
  rc_k_rmsprop(p, g, slot[0], slot[1], slot[2], n, (float)o->lr, (float)o->alpha,
               (float)(1.0 - o->alpha), (float)o->eps, (float)o->weight_decay, (float)o->momentum,
               o->eps_in_sqrt);
}
static int rmsprop_slot_used(const rc_optim_opts *o, int k) {
  return k == 0 || (k == 1 && o->momentum != 0.0) || (k == 2 && o->centered);
}
static float rmsprop_init(const rc_optim_opts *o, int k) {
  return k == 0 ? (float)o->initial_square_avg : 0.0f;
}
static int rmsprop_check(rc_ctx *c, const char *fn, const rc_optim_opts *o) {
  return check_eps(c, fn, o, o->initial_square_avg > 0);
}
const rc_optim_desc rc_optim_rmsprop = {
    .name = "RMSProp",
    .slots = {"square_avg", "momentum_buffer", "grad_avg"},
    .options = {"momentum", "alpha", "initial_square_avg", "centered", "eps", "eps_in_sqrt"},
    .slot_used = rmsprop_slot_used,
    .slot_init = rmsprop_init,
    .check = rmsprop_check,
    .update = rmsprop_update,
};

static void adam_any(const rc_optim_opts *o, int64_t t, float *p, const float *g,
                     float *const *slot, int64_t n, int decoupled) {
  double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
  rc_k_adam(p, g, slot[0], slot[1], n, (float)o->beta1, (float)(1.0 - o->beta1), (float)o->beta2,
            (float)(1.0 - o->beta2), (float)o->eps, (float)o->weight_decay, decoupled,
            (float)(1.0 - o->lr * o->weight_decay), (float)(o->lr / bc1), (float)sqrt(bc2));
}
static void adam_update(const rc_optim_opts *o, int64_t t, float *p, const float *g,
                        float *const *slot, int64_t n) {
  adam_any(o, t, p, g, slot, n, 0);
}
static void adamw_update(const rc_optim_opts *o, int64_t t, float *p, const float *g,
                         float *const *slot, int64_t n) {
  adam_any(o, t, p, g, slot, n, 1);
}
static void adamw_defaults(rc_optim_opts *o) {
  o->weight_decay = 1e-2;
}
static int adam_check(rc_ctx *c, const char *fn, const rc_optim_opts *o) {
  return check_eps(c, fn, o, 0);
}
const rc_optim_desc rc_optim_adam = {
    .name = "Adam",
    .slots = {"exp_avg", "exp_avg_sq"},
    .options = {"beta1", "beta2", "eps"},
    .check = adam_check,
    .update = adam_update,
};
const rc_optim_desc rc_optim_adamw = {
    .name = "AdamW",
    .slots = {"exp_avg", "exp_avg_sq"},
    .options = {"beta1", "beta2", "eps"},
    .defaults = adamw_defaults,
    .check = adam_check,
    .update = adamw_update,
};
