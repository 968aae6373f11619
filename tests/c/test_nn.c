/* The nn runtime at the C level: the fused linear against a naive product, parameter arenas
 * (identity kept, values moved, gradients in the flat buffer), an optimizer step by hand, and a
 * safetensors round trip with a corruption. (Its tanh, sigmoid and exp are the kernel floor's,
 * swept in tests/c/test_kernels_math.c.) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runtime/nn.h"
#include "../../runtime/kernels_math.h"
#include "../../runtime/nn_internal.h"
#include "../../runtime/optim.h"
#include "../../runtime/safetensors.h"
#include "test.h"

static void test_linear(rc_ctx *c) {
  int64_t xs[2] = {3, 4}, ws[2] = {2, 4}, bs[1] = {2};
  float xd[12], wd[8], bd[2] = {0.5f, -1.0f};
  for (int i = 0; i < 12; i++) xd[i] = (float)(i % 5) - 1.5f;
  for (int i = 0; i < 8; i++) wd[i] = 0.25f * (float)(i - 3);
  rc_tensor *x = rc_from_data(c, 2, xs, xd), *w = rc_from_data(c, 2, ws, wd),
            *b = rc_from_data(c, 1, bs, bd);
  rc_tensor *y = rc_linear(x, w, b);
  CHECK(y && y->ndim == 2 && y->size[0] == 3 && y->size[1] == 2);
  if (y) {
    for (int r = 0; r < 3; r++)
      for (int o = 0; o < 2; o++) {
        double s = bd[o];
        for (int k = 0; k < 4; k++) s += (double)xd[r * 4 + k] * wd[o * 4 + k];
        CHECK_NEAR(rc_data(y)[r * 2 + o], s, 1e-5);
      }
  }
  /* shape errors name the shapes */
  int64_t bad[2] = {3, 5};
  rc_tensor *x5 = rc_zeros(c, 2, bad);
  CHECK(rc_linear(x5, w, b) == NULL);
  CHECK(strstr(c->err, "linear: input shape [3, 5] does not match weight shape [2, 4]") != NULL);
  rc_release(x5);
  rc_release(x);
  rc_release(w);
  rc_release(b);
  rc_release(y);
}

static void test_pack(rc_ctx *c) {
  int64_t s1[2] = {2, 3}, s2[1] = {4};
  rc_tensor *a = rc_param_new(c, 2, s1), *b = rc_param_new(c, 1, s2);
  CHECK(a && b && a->requires_grad && !a->embedded);
  for (int i = 0; i < 6; i++) rc_data(a)[i] = (float)i;
  for (int i = 0; i < 4; i++) rc_data(b)[i] = 10.0f + (float)i;
  rc_tensor *g = rc_full(c, 1, s2, 7.0f); /* an existing gradient of b is kept */
  b->grad = g;
  rc_tensor *p[2] = {a, b}, *flat, *grad;
  CHECK(rc_params_pack(c, p, 2, 1, &flat, &grad) == 0);
  CHECK(flat && grad && flat->size[0] == 10 && grad->size[0] == 10);
  if (flat && grad) {
    CHECK(a->storage == flat->storage && b->storage == flat->storage);
    CHECK(rc_data(b) == rc_data(flat) + 6);
    for (int i = 0; i < 6; i++) CHECK(rc_data(flat)[i] == (float)i);
    CHECK(rc_data(flat)[6] == 10.0f && rc_data(flat)[9] == 13.0f);
    CHECK(a->grad && a->grad->storage == grad->storage && rc_data(grad)[0] == 0.0f);
    CHECK(rc_data(grad)[6] == 7.0f && rc_data(b->grad) == rc_data(grad) + 6);
    /* a second pack moves nothing */
    rc_tensor *f2, *g2;
    float *before = rc_data(a);
    CHECK(rc_params_pack(c, p, 2, 1, &f2, &g2) == 0 && rc_data(a) == before);
    CHECK(f2 && f2->storage == flat->storage);
    rc_release(f2);
    rc_release(g2);
    /* the sub-list {b} is a slice: nothing moves, its flat is a view of the arena */
    CHECK(rc_params_pack(c, &b, 1, 1, &f2, &g2) == 0 && f2 && f2->storage == flat->storage &&
          rc_data(f2) == rc_data(flat) + 6);
    rc_release(f2);
    rc_release(g2);
    /* a dropped gradient is put back in its slot */
    rc_zero_grad(a);
    CHECK(rc_params_pack(c, p, 2, 1, &f2, &g2) == 0 && a->grad && rc_data(a->grad) == rc_data(g2));
    rc_release(f2);
    rc_release(g2);
  }
  rc_tensor *dup[2] = {a, a};
  rc_tensor *f3, *g3;
  CHECK(rc_params_pack(c, dup, 2, 1, &f3, &g3) == -1 && strstr(c->err, "appears twice"));
  rc_release(flat);
  rc_release(grad);
  rc_release(a);
  rc_release(b);
}

/* The gradient buffer is lazy: packing without want_grad allocates none; the first backward
 * that reaches a packed parameter makes it and accumulates into the parameter's slot; a
 * dropped gradient's slot reads as zeros; an optimizer attaches every slot. */
static void test_lazy_grad(rc_ctx *c) {
  int64_t s1[2] = {2, 3}, s2[1] = {4};
  rc_tensor *a = rc_param_new(c, 2, s1), *b = rc_param_new(c, 1, s2);
  for (int i = 0; i < 6; i++) rc_data(a)[i] = (float)i;
  rc_tensor *p[2] = {a, b}, *flat = NULL, *grad = NULL;
  size_t live0 = c->live_bytes;
  CHECK(rc_params_pack(c, p, 2, 0, &flat, &grad) == 0 && flat && !grad);
  CHECK(a->packed && b->packed && !a->grad && !b->grad && !a->storage->grad_twin);
  /* the arena replaced the two storages: 10 floats, no gradient memory */
  CHECK(c->live_bytes == live0);
  rc_tensor *l = rc_reduce(RC_SUM, a, RC_ALL, 0);
  size_t live1 = c->live_bytes;
  CHECK(l && rc_backward(c, &l, (rc_tensor *[]){NULL}, 1, 1) == 0);
  rc_tensor *tw = a->storage->grad_twin;
  CHECK(tw && rc_numel(tw) == 10 && c->live_bytes == live1 + 10 * sizeof(float));
  CHECK(a->grad && a->grad->storage == tw->storage && rc_data(a->grad) == rc_data(tw));
  CHECK(!b->grad); /* not reached: no slot attached, its span reads as zeros */
  if (tw) {
    for (int i = 0; i < 6; i++) CHECK(rc_data(tw)[i] == 1.0f);
    for (int i = 6; i < 10; i++) CHECK(rc_data(tw)[i] == 0.0f);
  }
  CHECK(rc_backward(c, &l, (rc_tensor *[]){NULL}, 1, 0) == 0); /* accumulates in place */
  if (tw) CHECK(rc_data(tw)[5] == 2.0f && rc_data(a->grad) == rc_data(tw));
  rc_zero_grad(a); /* dropped: the slot reads as zeros */
  CHECK(!a->grad);
  if (tw) CHECK(rc_data(tw)[0] == 0.0f && rc_data(tw)[5] == 0.0f);
  /* asked for: the same buffer, every gradient its slot */
  rc_tensor *f2 = NULL, *g2 = NULL;
  CHECK(rc_params_pack(c, p, 2, 1, &f2, &g2) == 0 && g2 && tw && g2->storage == tw->storage);
  CHECK(a->grad && b->grad && rc_data(b->grad) == rc_data(g2) + 6);
  rc_release(f2);
  rc_release(g2);
  /* a parameter packed alone gets its slot when an optimizer is built over it */
  rc_tensor *d = rc_param_new(c, 1, s2), *df = NULL, *dg = NULL;
  CHECK(rc_params_pack(c, &d, 1, 0, &df, &dg) == 0 && df && !dg && !d->grad);
  rc_optim_opts o;
  rc_optim_defaults(rc_optim_find("SGD"), &o);
  o.lr = 0.1;
  rc_optim *opt = rc_optim_new(c, rc_optim_find("SGD"), &o, &d, 1);
  CHECK(opt && d->grad && d->storage->grad_twin &&
        d->grad->storage == d->storage->grad_twin->storage && rc_data(d->grad)[3] == 0.0f);
  rc_optim_free(opt);
  rc_release(df);
  rc_release(d);
  rc_release(l);
  rc_release(flat);
  rc_release(a);
  rc_release(b);
}

static void test_optim(rc_ctx *c) {
  int64_t n = 2;
  rc_tensor *p = rc_param_new(c, 1, &n);
  rc_data(p)[0] = 1.0f;
  rc_data(p)[1] = -2.0f;
  p->grad = rc_full(c, 1, &n, 0.5f);
  rc_optim_opts o;
  rc_optim_defaults(rc_optim_find("Adam"), &o);
  o.lr = 0.1;
  rc_optim *opt = rc_optim_new(c, rc_optim_find("Adam"), &o, &p, 1);
  CHECK(opt != NULL);
  if (opt) {
    CHECK(rc_optim_step(opt) == 0);
    /* first Adam step: m = 0.05, v = 0.00025, update = lr * 1 / (1 + eps / 0.5) ~ 0.1 */
    CHECK_NEAR(rc_data(p)[0], 1.0 - 0.1 / (1.0 + 1e-8 / 0.5), 1e-6);
    CHECK_NEAR(rc_data(opt->slot[0][0])[0], 0.05, 1e-7);
    CHECK_NEAR(rc_data(opt->slot[1][0])[1], 0.00025, 1e-9);
    CHECK(opt->steps[0] == 1 && opt->step == 1);
    rc_optim_free(opt);
  }
  o.lr = -1;
  CHECK(rc_optim_new(c, rc_optim_find("Adam"), &o, &p, 1) == NULL &&
        strstr(c->err, "Adam: lr must be"));
  rc_release(p);
}

/* The runtime's counted heap (rc_mem_*): sizes that would wrap around are refused; a block
 * grows and shrinks with its accounting. */
static void test_mem(rc_ctx *c) {
  size_t aux0 = c->aux_bytes;
  char *p = rc_mem_alloc(c, 100);
  CHECK(p != NULL);
  if (!p) return;
  memset(p, 7, 100);
  CHECK(rc_mem_alloc(c, SIZE_MAX - 4) == NULL && strstr(c->err, "out of memory"));
  /* a realloc whose size plus the block's prefix wraps must fail, not shrink the block */
  CHECK(rc_mem_realloc(c, p, SIZE_MAX - 4) == NULL && strstr(c->err, "out of memory"));
  char *q = rc_mem_realloc(c, p, 200);
  CHECK(q != NULL && q[99] == 7);
  if (q) p = q;
  CHECK(c->aux_bytes > aux0 + 200);
  rc_mem_free(c, p);
  CHECK(c->aux_bytes == aux0);
}

/* An optimizer that cannot make the parameters' gradient buffer (the memory limit) says so
 * under its own name. */
static void test_optim_limit(rc_ctx *c) {
  int64_t n = 1 << 16;
  rc_tensor *p = rc_param_new(c, 1, &n), *flat = NULL, *grad = NULL;
  CHECK(rc_params_pack(c, &p, 1, 0, &flat, &grad) == 0 && flat && !grad);
  c->limit_bytes = rc_used_bytes(c) + 1024; /* no room for 256 KB of gradients */
  rc_optim_opts o;
  rc_optim_defaults(rc_optim_find("SGD"), &o);
  o.lr = 0.1;
  CHECK(rc_optim_new(c, rc_optim_find("SGD"), &o, &p, 1) == NULL);
  CHECK(strncmp(c->err, "SGD: memory limit exceeded", 26) == 0);
  if (strncmp(c->err, "SGD: ", 5) != 0) fprintf(stderr, "message: %s\n", c->err);
  c->limit_bytes = 0;
  rc_release(flat);
  rc_release(p);
}

/* orthogonal's scratch (m * k doubles and the output's floats) is counted by the memory limit:
 * too large a one is refused under the limit, holding nothing, and smaller ones still work. */
static void test_orthogonal_limit(rc_ctx *c) {
  int64_t big[2] = {512, 256}, small[2] = {3, 2};
  rc_tensor *t = rc_empty(c, 2, big), *u = rc_empty(c, 2, small);
  CHECK(t && u);
  if (!t || !u) return;
  size_t aux0 = c->aux_bytes;
  c->limit_bytes = rc_used_bytes(c) + 64 * 1024; /* the scratch needs 1.5 MB */
  CHECK(rc_orthogonal_(t, 1) == -1);
  CHECK(strncmp(c->err, "orthogonal: memory limit exceeded", 33) == 0);
  if (strncmp(c->err, "orthogonal: ", 12) != 0) fprintf(stderr, "message: %s\n", c->err);
  CHECK(c->aux_bytes == aux0);
  CHECK(rc_orthogonal_(u, 2) == 0); /* still usable: columns of norm 2, orthogonal */
  const float *d = rc_data(u);
  double n0 = 0, n1 = 0, dot = 0;
  for (int r = 0; r < 3; r++) {
    n0 += (double)d[2 * r] * d[2 * r];
    n1 += (double)d[2 * r + 1] * d[2 * r + 1];
    dot += (double)d[2 * r] * d[2 * r + 1];
  }
  CHECK(fabs(n0 - 4) < 1e-5 && fabs(n1 - 4) < 1e-5 && fabs(dot) < 1e-5);
  CHECK(c->aux_bytes == aux0);
  c->limit_bytes = 0;
  CHECK(rc_orthogonal_(t, 1) == 0);
  rc_release(t);
  rc_release(u);
}

static void test_safetensors(rc_ctx *c) {
  char path[] = "/tmp/recur_test_nn_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);
  int64_t s[2] = {2, 3};
  float d[6] = {1, 2, 3, 4, 5, -6.5f};
  rc_tensor *t = rc_from_data(c, 2, s, d), *e = rc_scalar(c, 3.25f);
  const char *names[2] = {"w", "scalar"};
  rc_tensor *ts[2] = {t, e};
  const char *k[1] = {"note"}, *v[1] = {"quote \" and \\ and \n"};
  CHECK(rc_st_write(c, path, 2, names, ts, 1, k, v) == 0);
  rc_st_file *f = rc_st_read(c, path);
  CHECK(f != NULL);
  if (f) {
    CHECK(f->n == 2 && strcmp(f->names[0], "w") == 0 && strcmp(f->names[1], "scalar") == 0);
    CHECK(f->tensors[0]->ndim == 2 && rc_data(f->tensors[0])[5] == -6.5f);
    CHECK(f->tensors[1]->ndim == 0 && rc_data(f->tensors[1])[0] == 3.25f);
    CHECK(f->n_meta == 1 && strcmp(f->meta_values[0], v[0]) == 0);
    rc_st_free(f);
  }
  /* truncate the data: refused with a message naming the file */
  CHECK(truncate(path, 30) == 0);
  CHECK(rc_st_read(c, path) == NULL && strstr(c->err, "truncated") && strstr(c->err, path));
  unlink(path);
  rc_release(t);
  rc_release(e);
}

/* The softmax row kernels of nn.linear_cross_entropy against plain loops, at lengths around
 * their 16-lane and 1024-element blocks, with -inf and NaN entries for the maximum. */
static void test_softmax_rows(void) {
  static float z[3000], z2[3000], b[3000], acc[3000];
  int64_t lens[] = {1, 15, 16, 17, 1023, 1024, 1025, 2049, 3000};
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    int64_t n = lens[li];
    for (int64_t i = 0; i < n; i++) {
      z[i] = (float)((i * 7919) % 997) / 100.0f - 5.0f;
      b[i] = (float)(i % 13) * 0.125f - 0.5f;
    }
    memcpy(z2, z, sizeof z);
    float want = -INFINITY;
    for (int64_t i = 0; i < n; i++) want = z[i] + b[i] > want ? z[i] + b[i] : want;
    float m = rc_row_bias_max(z2, b, n);
    CHECK(m == want);
    int biased = 1;
    for (int64_t i = 0; i < n; i++) biased &= z2[i] == z[i] + b[i];
    CHECK(biased);
    double want_s = 0;
    for (int64_t i = 0; i < n; i++) want_s += exp((double)z2[i] - m);
    double s = rc_row_exp_sum(z2, m, n);
    CHECK_NEAR(s / want_s, 1.0, 1e-6);
    double err = 0;
    for (int64_t i = 0; i < n; i++)
      err = fmax(err, fabs(z2[i] - exp((double)z[i] + b[i] - m)) / exp((double)z[i] + b[i] - m));
    CHECK(err < 1e-6);
    /* scale and the bias gradient's sum */
    for (int64_t i = 0; i < n; i++) acc[i] = 1.0f;
    rc_row_scale_acc(z2, n, 0.5f, acc);
    int scaled = 1;
    for (int64_t i = 0; i < n; i++) scaled &= acc[i] == 1.0f + z2[i];
    CHECK(scaled);
    /* the backward's one pass: s exp(z + b - lse) */
    memcpy(z2, z, sizeof z);
    for (int64_t i = 0; i < n; i++) acc[i] = 0.0f;
    rc_row_softmax_scaled(z2, b, m, 2.0f, n, acc);
    err = 0;
    for (int64_t i = 0; i < n; i++) {
      double e = 2.0 * exp((double)z[i] + b[i] - m);
      err = fmax(err, fabs(z2[i] - e) / e);
      CHECK(acc[i] == z2[i]);
    }
    CHECK(err < 1e-6);
  }
  /* without a bias; -inf entries; a NaN is skipped by the maximum */
  float r[20];
  for (int i = 0; i < 20; i++) r[i] = -INFINITY;
  CHECK(rc_row_bias_max(r, NULL, 20) == -INFINITY);
  r[3] = 2.0f;
  r[17] = NAN;
  r[18] = 1.0f;
  CHECK(rc_row_bias_max(r, NULL, 20) == 2.0f);
  r[19] = 7.0f; /* in the tail past the last 16 */
  CHECK(rc_row_bias_max(r, NULL, 20) == 7.0f);
}

/* nn.cross_entropy's row kernels against the plain one-row loop they replaced, bit for bit: row
 * counts around their groups of 16, columns around the 16 lanes and the 256-column blocks, and
 * rows with infinities and NaNs. */
static float lse_plain(const float *x, int64_t C) {
  float m = x[0];
  for (int64_t k = 1; k < C; k++) m = x[k] > m ? x[k] : m;
  if (isinf(m)) m = 0.0f;
  double s = 0;
  for (int64_t k = 0; k < C; k++) s += rc_expf(x[k] - m);
  return m + (float)log(s);
}

static int same_float(float a, float b) {
  return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static void test_logsumexp_rows(void) {
  int64_t rows[] = {1, 2, 15, 16, 17, 40}, cols[] = {1, 5, 16, 31, 33, 256, 257, 600};
  static float x[40 * 600], tmp[16 * 256], lse[40], g[600];
  for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
    for (size_t ci = 0; ci < sizeof cols / sizeof cols[0]; ci++) {
      int64_t R = rows[ri], C = cols[ci];
      for (int64_t i = 0; i < R * C; i++) x[i] = (float)((i * 7919) % 1009) / 40.0f - 12.0f;
      if (R > 2) { /* row 1: all -inf; row 2: +inf and a NaN (one in the lanes, one in the tail) */
        for (int64_t k = 0; k < C; k++) x[C + k] = -INFINITY;
        x[2 * C + C / 2] = INFINITY;
        x[2 * C + C - 1] = NAN;
      }
      rc_rows_logsumexp(x, R, C, tmp, lse);
      int same = 1;
      for (int64_t r = 0; r < R; r++) same &= same_float(lse[r], lse_plain(x + r * C, C));
      CHECK(same);
      /* a gradient row: exp(x - lse) s */
      rc_row_exp_scaled(x, lse[0], 0.25f, C, g);
      same = 1;
      for (int64_t k = 0; k < C; k++) same &= same_float(g[k], rc_expf(x[k] - lse[0]) * 0.25f);
      CHECK(same);
    }
}

int main(void) {
  test_softmax_rows();
  test_logsumexp_rows();
  rc_ctx *c = rc_ctx_new();
  test_linear(c);
  test_pack(c);
  test_lazy_grad(c);
  test_optim(c);
  test_mem(c);
  test_optim_limit(c);
  test_orthogonal_limit(c);
  test_safetensors(c);
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
