/* Random tensors drawn from the context's generator (ctx->rng, xoshiro256**).
 * Nothing here records autograd nodes: samples are not differentiable.
 * Draw order is fixed (row-major over the result), so a seed gives the same numbers on every
 * run and every machine (rand, randint, randperm, bernoulli and multinomial with replacement
 * use integer and IEEE double arithmetic only; randn, truncated_normal and multinomial without
 * replacement also use libm's log/sin/cos). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* float32 holds every integer up to 2^24 exactly: bounds for indices and randint values. */
#define EXACT_INT ((int64_t)1 << 24)

/* Uniform in [0, 1) on a grid of 2^-24: every value is an exact float below 1. */
static inline double uniform24(rc_rng *r) {
  return (double)(rc_rng_next(r) >> 40) * 0x1.0p-24;
}

/* Uniform in (0, 1) with 53 bits (for logarithms). */
static inline double uniform_open(rc_rng *r) {
  double u;
  do u = rc_rng_uniform(r);
  while (u <= 0.0);
  return u;
}

/* Work units per element drawn, besides the allocation's 1 per 16 (context.h: a few ns a
 * unit): a 64-bit draw and a conversion is about 5 ns, a normal (logarithm, sine) about 25. */
#define UNITS_UNIFORM 1
#define UNITS_NORMAL 4

static int charge_draws(rc_ctx *c, const char *fn, int64_t n, int per_element) {
  return rc_charge(c, fn, n > 0 ? (uint64_t)n * (uint64_t)per_element : 1);
}

static rc_tensor *new_result(rc_ctx *c, const char *fn, int ndim, const int64_t *size,
                             int per_element) {
  if (rc_check_shape(c, fn, ndim, size)) return NULL;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= size[i];
  if (charge_draws(c, fn, n, per_element)) return NULL;
  return rc_empty(c, ndim, size);
}

rc_tensor *rc_rand(rc_ctx *c, int ndim, const int64_t *size, float lo, float hi) {
  if (!isfinite(lo) || !isfinite(hi) || lo > hi)
    return rc_error_null(c, "uniform: bounds must be finite with lo <= hi, got lo = %g, hi = %g",
                         (double)lo, (double)hi);
  rc_tensor *t = new_result(c, "rand", ndim, size, UNITS_UNIFORM);
  if (!t) return NULL;
  float *d = rc_data(t);
  int64_t n = rc_numel(t);
  double width = (double)hi - (double)lo;
  if (lo == hi) {
    for (int64_t i = 0; i < n; i++) d[i] = lo;
    return t;
  }
  for (int64_t i = 0; i < n; i++) {
    float v;
    do v = (float)((double)lo + width * uniform24(&c->rng));
    while (v >= hi); /* rounding to float can reach hi; lo itself is always possible */
    d[i] = v;
  }
  return t;
}

static int check_normal(rc_ctx *c, const char *fn, float mean, float std) {
  if (!isfinite(mean) || !isfinite(std) || std < 0)
    return rc_error(c, "%s: mean must be finite and std finite and >= 0, got mean = %g, std = %g",
                    fn, (double)mean, (double)std);
  return 0;
}

rc_tensor *rc_randn(rc_ctx *c, int ndim, const int64_t *size, float mean, float std) {
  if (check_normal(c, "normal", mean, std)) return NULL;
  rc_tensor *t = new_result(c, "randn", ndim, size, UNITS_NORMAL);
  if (!t) return NULL;
  float *d = rc_data(t);
  int64_t n = rc_numel(t);
  for (int64_t i = 0; i < n; i++) d[i] = (float)((double)mean + std * rc_rng_normal(&c->rng));
  return t;
}

/* TensorFlow's truncated normal: a draw more than 2 std from the mean is dropped and re-drawn. */
rc_tensor *rc_truncated_normal(rc_ctx *c, int ndim, const int64_t *size, float mean, float std) {
  if (check_normal(c, "truncated_normal", mean, std)) return NULL;
  rc_tensor *t = new_result(c, "truncated_normal", ndim, size, UNITS_NORMAL);
  if (!t) return NULL;
  float *d = rc_data(t);
  int64_t n = rc_numel(t);
  for (int64_t i = 0; i < n; i++) {
    double z;
    do z = rc_rng_normal(&c->rng);
    while (fabs(z) > 2.0);
    d[i] = (float)((double)mean + std * z);
  }
  return t;
}

rc_tensor *rc_bernoulli(rc_tensor *p) {
  rc_ctx *c = p->ctx;
  rc_tensor *pc = rc_raw_contiguous(p);
  if (!pc) return NULL;
  const float *pd = rc_data(pc);
  int64_t n = rc_numel(pc);
  for (int64_t i = 0; i < n; i++) {
    if (!(pd[i] >= 0.0f && pd[i] <= 1.0f)) { /* also catches NaN */
      char s[128];
      rc_error(c, "bernoulli: p must hold probabilities in [0, 1], found %g in p of shape %s",
               (double)pd[i], rc_shape_str(p, s, sizeof s));
      rc_release(pc);
      return NULL;
    }
  }
  if (charge_draws(c, "bernoulli", rc_numel(p), UNITS_UNIFORM)) {
    rc_release(pc);
    return NULL;
  }
  rc_tensor *t = rc_empty(c, p->ndim, p->size);
  if (t) {
    float *d = rc_data(t);
    for (int64_t i = 0; i < n; i++) d[i] = rc_rng_uniform(&c->rng) < (double)pd[i] ? 1.0f : 0.0f;
  }
  rc_release(pc);
  return t;
}

typedef struct {
  double key;
  int64_t idx;
} keyed;

static int keyed_desc(const void *a, const void *b) {
  const keyed *x = a, *y = b;
  if (x->key != y->key) return x->key > y->key ? -1 : 1;
  return (x->idx > y->idx) - (x->idx < y->idx);
}

/* One row with replacement: inverse CDF by binary search on cumulative sums (double). */
static void sample_with(rc_rng *r, const float *w, int64_t k, double *cdf, float *out, int64_t n) {
  double acc = 0;
  int64_t last = 0;
  for (int64_t j = 0; j < k; j++) {
    acc += w[j];
    cdf[j] = acc;
    if (w[j] > 0) last = j;
  }
  for (int64_t s = 0; s < n; s++) {
    double x = rc_rng_uniform(r) * acc;
    /* first j with cdf[j] > x: never a zero-weight category */
    int64_t lo = 0, hi = k;
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if (cdf[mid] > x)
        hi = mid;
      else
        lo = mid + 1;
    }
    out[s] = (float)(lo < k ? lo : last); /* lo == k only if x rounded up to the total */
  }
}

/* One row without replacement (Efraimidis-Spirakis): key_j = log(u_j) / w_j; the n largest
 * keys in decreasing order have the law of n successive draws that each remove the chosen
 * category. Zero-weight categories get no key and are never chosen. */
static void sample_without(rc_rng *r, const float *w, int64_t k, keyed *keys, float *out,
                           int64_t n) {
  int64_t m = 0;
  for (int64_t j = 0; j < k; j++) {
    if (w[j] > 0) {
      keys[m].key = log(uniform_open(r)) / (double)w[j];
      keys[m].idx = j;
      m++;
    }
  }
  qsort(keys, (size_t)m, sizeof *keys, keyed_desc);
  for (int64_t s = 0; s < n; s++) out[s] = (float)keys[s].idx;
}

rc_tensor *rc_multinomial(rc_tensor *probs, int64_t n, int replacement) {
  rc_ctx *c = probs->ctx;
  char s[128];
  if (probs->ndim != 1 && probs->ndim != 2)
    return rc_error_null(c, "multinomial: probs must be 1-D or 2-D, got shape %s",
                         rc_shape_str(probs, s, sizeof s));
  int64_t k = probs->size[probs->ndim - 1];
  int64_t rows = probs->ndim == 2 ? probs->size[0] : 1;
  if (k == 0)
    return rc_error_null(c, "multinomial: probs of shape %s has no categories",
                         rc_shape_str(probs, s, sizeof s));
  if (k > EXACT_INT)
    return rc_error_null(c,
                         "multinomial: %lld categories is more than 2^24, the largest "
                         "count whose indices float32 holds exactly",
                         (long long)k);
  if (n < 0)
    return rc_error_null(c, "multinomial: the number of samples must be >= 0, got %lld",
                         (long long)n);
  int64_t osize[2] = {rows, n};
  int ondim = probs->ndim;
  const int64_t *oshape = ondim == 2 ? osize : &osize[1];
  if (rc_check_shape(c, "multinomial", ondim, oshape)) return NULL;
  rc_tensor *pc = rc_raw_contiguous(probs);
  if (!pc) return NULL;
  const float *pd = rc_data(pc);
  for (int64_t i = 0; i < rows; i++) {
    const float *w = pd + i * k;
    double sum = 0;
    int64_t nonzero = 0;
    for (int64_t j = 0; j < k; j++) {
      if (!(w[j] >= 0.0f) || isinf(w[j])) {
        rc_error(c, "multinomial: probs must be finite and >= 0, found %g in probs of shape %s",
                 (double)w[j], rc_shape_str(probs, s, sizeof s));
        goto fail;
      }
      sum += w[j];
      nonzero += w[j] > 0;
    }
    if (sum <= 0) {
      rc_error(c, "multinomial: a row of probs (shape %s) is all zeros",
               rc_shape_str(probs, s, sizeof s));
      goto fail;
    }
    if (!replacement && n > nonzero) {
      rc_error(c,
               "multinomial: cannot draw %lld samples without replacement from a row of "
               "probs (shape %s) with only %lld non-zero categories",
               (long long)n, rc_shape_str(probs, s, sizeof s), (long long)nonzero);
      goto fail;
    }
  }
  /* the budget sees each row's passes over k (and, without replacement, its k logarithms
   * and the sort of k keys) and one unit per bisection step of each sample */
  double lg = ceil(log2((double)k)) + 1, units = (double)k / 8;
  units += replacement ? (double)n * lg : (double)k * (4 + lg);
  units *= (double)rows;
  if (rc_charge(c, "multinomial", units > 1e18 ? (uint64_t)1e18 : (uint64_t)units + 1)) goto fail;
  size_t scratch = replacement ? (size_t)k * sizeof(double) : (size_t)k * sizeof(keyed);
  void *buf = malloc(scratch);
  if (!buf) {
    rc_error(c, "multinomial: out of memory allocating %zu bytes of scratch", scratch);
    goto fail;
  }
  rc_tensor *t = rc_empty(c, ondim, oshape);
  if (t) {
    float *d = rc_data(t);
    for (int64_t i = 0; i < rows; i++) {
      if (replacement)
        sample_with(&c->rng, pd + i * k, k, buf, d + i * n, n);
      else
        sample_without(&c->rng, pd + i * k, k, buf, d + i * n, n);
    }
  }
  free(buf);
  rc_release(pc);
  return t;
fail:
  rc_release(pc);
  return NULL;
}

rc_tensor *rc_randperm(rc_ctx *c, int64_t n) {
  if (n < 0) return rc_error_null(c, "randperm: n must be >= 0, got %lld", (long long)n);
  if (n > EXACT_INT)
    return rc_error_null(c,
                         "randperm: n = %lld is more than 2^24, the largest count whose "
                         "indices float32 holds exactly",
                         (long long)n);
  if (charge_draws(c, "randperm", n, UNITS_UNIFORM)) return NULL;
  rc_tensor *t = rc_empty(c, 1, &n);
  if (!t) return NULL;
  float *d = rc_data(t);
  for (int64_t i = 0; i < n; i++) d[i] = (float)i;
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int64_t j = (int64_t)rc_rng_below(&c->rng, (uint64_t)i + 1);
    float tmp = d[i];
    d[i] = d[j];
    d[j] = tmp;
  }
  return t;
}

rc_tensor *rc_randint(rc_ctx *c, int ndim, const int64_t *size, int64_t lo, int64_t hi) {
  if (lo > hi || lo < -EXACT_INT || hi > EXACT_INT)
    return rc_error_null(c,
                         "randint: need lo <= hi within [-2^24, 2^24] (float32 holds those "
                         "integers exactly), got lo = %lld, hi = %lld",
                         (long long)lo, (long long)hi);
  rc_tensor *t = new_result(c, "randint", ndim, size, 2 * UNITS_UNIFORM);
  if (!t) return NULL;
  float *d = rc_data(t);
  int64_t n = rc_numel(t);
  uint64_t span = (uint64_t)(hi - lo) + 1;
  for (int64_t i = 0; i < n; i++) d[i] = (float)(lo + (int64_t)rc_rng_below(&c->rng, span));
  return t;
}

/* ---- generator state ---- */

static const unsigned char STATE_MAGIC[4] = {'r', 'n', 'g', '1'};

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

void rc_rng_state_get(rc_ctx *c, unsigned char out[RC_RNG_STATE_BYTES]) {
  memset(out, 0, RC_RNG_STATE_BYTES);
  memcpy(out, STATE_MAGIC, 4);
  for (int i = 0; i < 4; i++) put_u64(out + 4 + 8 * i, c->rng.s[i]);
  uint64_t bits = 0;
  if (c->rng.has_spare) memcpy(&bits, &c->rng.spare, sizeof bits);
  put_u64(out + 36, bits);
  out[44] = c->rng.has_spare ? 1 : 0;
}

int rc_rng_state_set(rc_ctx *c, const unsigned char *in, size_t len) {
  if (len != RC_RNG_STATE_BYTES)
    return rc_error(c, "set_rng_state: state has %zu bytes, expected %d (from rng_state())", len,
                    RC_RNG_STATE_BYTES);
  if (memcmp(in, STATE_MAGIC, 4) != 0)
    return rc_error(c, "set_rng_state: not a generator state from rng_state() (bad header)");
  uint64_t s[4];
  for (int i = 0; i < 4; i++) s[i] = get_u64(in + 4 + 8 * i);
  if ((s[0] | s[1] | s[2] | s[3]) == 0)
    return rc_error(c, "set_rng_state: the generator words are all zero (invalid state)");
  uint64_t bits = get_u64(in + 36);
  double spare;
  memcpy(&spare, &bits, sizeof spare);
  int flag = in[44];
  if (flag > 1 || in[45] || in[46] || in[47])
    return rc_error(c, "set_rng_state: corrupt state (bad flag or padding bytes)");
  if (flag ? !isfinite(spare) : bits != 0)
    return rc_error(c, "set_rng_state: corrupt state (bad Box-Muller spare)");
  memcpy(c->rng.s, s, sizeof s);
  c->rng.has_spare = flag;
  c->rng.spare = flag ? spare : 0.0;
  return 0;
}
