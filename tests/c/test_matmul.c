/* rc_matmul / rc_gemm_into on strided views (row-major, padded, transposed, and layouts BLAS
 * cannot read), against a naive loop that reads the views element by element. Storage
 * outside the views is filled with NaN, so reading through a wrong ld shows up as NaN. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../runtime/ops.h"
#include "test.h"

typedef enum { L_ROW, L_PAD, L_TRANS, L_TPAD, L_ODD, L_COUNT } layout;
static const char *const layout_name[L_COUNT] = {"row", "pad", "trans", "tpad", "odd"};

static float val(int64_t b, int64_t i, int64_t j, int seed) {
  return (float)(((b * 7 + i * 3 + j * 5 + seed * 11) % 13) - 6) * 0.25f;
}

/* A view of logical shape [nb, r, c] (ndim 3) or [r, c] (ndim 2) with layout L, over a
 * NaN-filled storage. */
static rc_tensor *build_p(rc_ctx *c, int ndim, int64_t nb, int64_t r, int64_t cc, layout L,
                          int seed, int64_t bpad) {
  int64_t rs = 0, cs = 0, span = 0;
  switch (L) {
  case L_ROW:
    rs = cc, cs = 1, span = r * cc;
    break;
  case L_PAD:
    rs = cc + 3, cs = 1, span = r * (cc + 3);
    break;
  case L_TRANS:
    rs = 1, cs = r, span = r * cc;
    break;
  case L_TPAD:
    rs = 1, cs = r + 2, span = cc * (r + 2);
    break;
  default:
    rs = 2 * cc, cs = 2, span = 2 * r * cc;
    break;
  }
  int64_t bs = span + bpad, off = 1;
  int64_t total = off + (ndim == 3 ? nb : 1) * bs + 8;
  rc_tensor *base = rc_full(c, 1, &total, NAN);
  int64_t size[3], stride[3];
  if (ndim == 3) {
    size[0] = nb, size[1] = r, size[2] = cc;
    stride[0] = bs, stride[1] = rs, stride[2] = cs;
  } else {
    size[0] = r, size[1] = cc;
    stride[0] = rs, stride[1] = cs;
  }
  rc_tensor *v = rc_raw_view(base, ndim, size, stride, off);
  v->is_view = 0;
  rc_release(base);
  int64_t n3 = ndim == 3 ? nb : 1;
  for (int64_t b = 0; b < n3; b++)
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < cc; j++) {
        int64_t idx[3] = {b, i, j};
        *rc_ptr(v, ndim == 3 ? idx : idx + 1) = val(b, i, j, seed);
      }
  return v;
}

static rc_tensor *build(rc_ctx *c, int ndim, int64_t nb, int64_t r, int64_t cc, layout L,
                        int seed) {
  return build_p(c, ndim, nb, r, cc, L, seed, 5);
}

/* A 1-D view of length n with element stride s. */
static rc_tensor *build1(rc_ctx *c, int64_t n, int64_t s, int seed) {
  int64_t total = 2 + n * s + 3;
  rc_tensor *base = rc_full(c, 1, &total, NAN);
  int64_t size[1] = {n}, stride[1] = {s};
  rc_tensor *v = rc_raw_view(base, 1, size, stride, 2);
  v->is_view = 0;
  rc_release(base);
  for (int64_t i = 0; i < n; i++) *rc_ptr(v, &i) = val(0, i, 0, seed);
  return v;
}

/* matmul semantics, written out independently: element (b, i, k) of a, (b, k, j) of b. */
static void aidx(const rc_tensor *a, int64_t b, int64_t i, int64_t k, int64_t *idx) {
  if (a->ndim == 1)
    idx[0] = k;
  else if (a->ndim == 2)
    idx[0] = i, idx[1] = k;
  else
    idx[0] = a->size[0] == 1 ? 0 : b, idx[1] = i, idx[2] = k;
}
static void bidx(const rc_tensor *t, int64_t b, int64_t k, int64_t j, int64_t *idx) {
  if (t->ndim == 1)
    idx[0] = k;
  else if (t->ndim == 2)
    idx[0] = k, idx[1] = j;
  else
    idx[0] = t->size[0] == 1 ? 0 : b, idx[1] = k, idx[2] = j;
}
static int oidx(const rc_tensor *a, const rc_tensor *t, int64_t b, int64_t i, int64_t j,
                int64_t *idx) {
  int n = 0;
  if (a->ndim == 3 || t->ndim == 3) idx[n++] = b;
  if (a->ndim > 1) idx[n++] = i;
  if (t->ndim > 1) idx[n++] = j;
  return n;
}
static int64_t flat(const int64_t *size, int n, const int64_t *idx) {
  int64_t f = 0;
  for (int d = 0; d < n; d++) f = f * size[d] + idx[d];
  return f;
}

typedef struct {
  int64_t nb, M, K, N;
} dims;

static dims dims_of(const rc_tensor *a, const rc_tensor *b) {
  dims d;
  d.K = a->size[a->ndim - 1];
  d.M = a->ndim > 1 ? a->size[a->ndim - 2] : 1;
  d.N = b->ndim > 1 ? b->size[b->ndim - 1] : 1;
  int64_t ba = a->ndim == 3 ? a->size[0] : 1, bb = b->ndim == 3 ? b->size[0] : 1;
  d.nb = ba == 1 ? bb : ba;
  return d;
}

/* Checks r = a . b element by element; returns 1 when everything matched. */
static int check_product(const char *what, rc_tensor *r, rc_tensor *a, rc_tensor *b) {
  if (!r) {
    fprintf(stderr, "%s: %s\n", what, a->ctx->err);
    CHECK(r != NULL);
    return 0;
  }
  dims d = dims_of(a, b);
  int64_t idx[3];
  int n = oidx(a, b, 0, 0, 0, idx);
  int ok = r->ndim == n;
  int64_t want[3];
  int m = 0;
  if (a->ndim == 3 || b->ndim == 3) want[m++] = d.nb;
  if (a->ndim > 1) want[m++] = d.M;
  if (b->ndim > 1) want[m++] = d.N;
  for (int k = 0; ok && k < n; k++) ok = r->size[k] == want[k];
  for (int64_t bt = 0; ok && bt < d.nb; bt++)
    for (int64_t i = 0; ok && i < d.M; i++)
      for (int64_t j = 0; ok && j < d.N; j++) {
        double s = 0;
        for (int64_t k = 0; k < d.K; k++) {
          int64_t ia[3], ib[3];
          aidx(a, bt, i, k, ia);
          bidx(b, bt, k, j, ib);
          s += (double)*rc_ptr(a, ia) * *rc_ptr(b, ib);
        }
        oidx(a, b, bt, i, j, idx);
        double got = *rc_ptr(r, idx);
        if (!(fabs(got - s) <= 1e-4 * (1 + fabs(s)))) {
          fprintf(stderr, "%s: at (%lld, %lld, %lld) got %g want %g\n", what, (long long)bt,
                  (long long)i, (long long)j, got, s);
          ok = 0;
        }
      }
  CHECK(ok);
  return ok;
}

/* Runs backward through matmul with a fixed output gradient and checks both gradients.
 * expanded: the output gradient is one value broadcast with stride 0 everywhere (as the
 * backward of a sum hands it over), which BLAS cannot read without a copy. */
static void check_grads_g(const char *what, rc_ctx *c, rc_tensor *a, rc_tensor *b, int expanded) {
  rc_set_requires_grad(a, 1);
  rc_set_requires_grad(b, 1);
  rc_zero_grad(a);
  rc_zero_grad(b);
  rc_tensor *r = rc_matmul(a, b);
  CHECK(r != NULL);
  if (!r) return;
  int64_t nr = rc_numel(r);
  float *gv = malloc(sizeof(float) * (size_t)(nr ? nr : 1));
  for (int64_t k = 0; k < nr; k++) gv[k] = expanded ? 0.75f : (float)((k * 5 % 7) - 3) * 0.5f;
  rc_tensor *g;
  if (expanded) {
    rc_tensor *one = rc_scalar(c, 0.75f);
    int64_t zero[3] = {0, 0, 0};
    g = rc_raw_view(one, r->ndim, r->size, zero, 0);
    rc_release(one);
  } else {
    g = rc_from_data(c, r->ndim, r->size, gv);
  }
  int rc = rc_backward(c, &r, &g, 1, 0);
  CHECK(rc == 0);
  if (rc) fprintf(stderr, "%s: backward: %s\n", what, c->err);
  dims d = dims_of(a, b);
  int64_t na = rc_numel(a), nbn = rc_numel(b);
  double *ga = calloc((size_t)(na + 1), sizeof(double));
  double *gb = calloc((size_t)(nbn + 1), sizeof(double));
  for (int64_t bt = 0; bt < d.nb; bt++)
    for (int64_t i = 0; i < d.M; i++)
      for (int64_t j = 0; j < d.N; j++) {
        int64_t io[3];
        int no = oidx(a, b, bt, i, j, io);
        double gg = gv[flat(r->size, no, io)];
        for (int64_t k = 0; k < d.K; k++) {
          int64_t ia[3], ib[3];
          aidx(a, bt, i, k, ia);
          bidx(b, bt, k, j, ib);
          ga[flat(a->size, a->ndim, ia)] += gg * *rc_ptr(b, ib);
          gb[flat(b->size, b->ndim, ib)] += gg * *rc_ptr(a, ia);
        }
      }
  int ok = 1;
  rc_tensor *ts[2] = {a, b};
  double *ws[2] = {ga, gb};
  for (int w = 0; w < 2; w++) {
    rc_tensor *gt = ts[w]->grad;
    int64_t n = rc_numel(ts[w]);
    if (!gt || !rc_same_shape(gt, ts[w])) {
      ok = 0;
      continue;
    }
    float *buf = malloc(sizeof(float) * (size_t)(n + 1));
    rc_read_floats(gt, buf);
    for (int64_t k = 0; k < n; k++)
      if (!(fabs(buf[k] - ws[w][k]) <= 1e-4 * (1 + fabs(ws[w][k])))) {
        fprintf(stderr, "%s: grad %d element %lld got %g want %g\n", what, w, (long long)k, buf[k],
                ws[w][k]);
        ok = 0;
        break;
      }
    free(buf);
  }
  CHECK(ok);
  free(ga);
  free(gb);
  free(gv);
  rc_release(g);
  rc_release(r);
  rc_zero_grad(a);
  rc_zero_grad(b);
  rc_set_requires_grad(a, 0);
  rc_set_requires_grad(b, 0);
}

static void check_grads(const char *what, rc_ctx *c, rc_tensor *a, rc_tensor *b) {
  check_grads_g(what, c, a, b, 0);
  char w2[200];
  snprintf(w2, sizeof w2, "%s (expanded gradient)", what);
  check_grads_g(w2, c, a, b, 1);
}

static int mappable(layout L) {
  return L != L_ODD;
}

static void test_2d(rc_ctx *c) {
  static const int64_t shapes[][3] = {{3, 5, 4}, {1, 5, 4}, {3, 1, 4}, {3, 5, 1}, {1, 1, 1},
                                      {6, 2, 7}, {0, 3, 4}, {3, 0, 4}, {3, 4, 0}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int la = 0; la < L_COUNT; la++)
      for (int lb = 0; lb < L_COUNT; lb++) {
        int64_t M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        rc_tensor *a = build(c, 2, 1, M, K, (layout)la, 1);
        rc_tensor *b = build(c, 2, 1, K, N, (layout)lb, 2);
        char what[128];
        snprintf(what, sizeof what, "2d [%lld,%lld]x[%lld,%lld] %s x %s", (long long)M,
                 (long long)K, (long long)K, (long long)N, layout_name[la], layout_name[lb]);
        uint64_t before = c->alloc_count;
        rc_tensor *r = rc_matmul(a, b);
        uint64_t allocs = c->alloc_count - before;
        check_product(what, r, a, b);
        /* no copy: only the output is allocated when BLAS can read both layouts */
        if (mappable((layout)la) && mappable((layout)lb)) CHECK(allocs == 1);
        if (!mappable((layout)la) && M > 1 && K > 1) CHECK(allocs >= 2);
        rc_release(r);
        check_grads(what, c, a, b);
        rc_release(a);
        rc_release(b);
      }
}

static void test_batched(rc_ctx *c) {
  /* {ndim a, nb a, ndim b, nb b, M, K, N} */
  static const int64_t cases[][7] = {
      {3, 3, 3, 3, 4, 5, 2}, {3, 3, 3, 1, 4, 5, 2}, {3, 1, 3, 3, 4, 5, 2}, {3, 3, 2, 0, 4, 5, 2},
      {2, 0, 3, 3, 4, 5, 2}, {3, 2, 3, 2, 1, 3, 1}, {3, 0, 3, 0, 2, 3, 4}, {3, 0, 3, 1, 2, 3, 4},
      {3, 2, 3, 2, 2, 0, 3}, {3, 4, 2, 0, 1, 3, 2}, {3, 2, 3, 1, 3, 2, 0}};
  /* batch strides tight (matrices back to back: the stacked single-gemm paths) or padded */
  for (int64_t bpad = 0; bpad <= 5; bpad += 5)
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++)
      for (int la = 0; la < L_COUNT; la++)
        for (int lb = 0; lb < L_COUNT; lb++) {
          const int64_t *k = cases[s];
          rc_tensor *a = build_p(c, (int)k[0], k[1], k[4], k[5], (layout)la, 3, bpad);
          rc_tensor *b = build_p(c, (int)k[2], k[3], k[5], k[6], (layout)lb, 4, bpad);
          char what[160];
          snprintf(what, sizeof what, "batched case %zu pad %lld %s x %s", s, (long long)bpad,
                   layout_name[la], layout_name[lb]);
          uint64_t before = c->alloc_count;
          rc_tensor *r = rc_matmul(a, b);
          uint64_t allocs = c->alloc_count - before;
          check_product(what, r, a, b);
          if (mappable((layout)la) && mappable((layout)lb)) CHECK(allocs == 1);
          rc_release(r);
          check_grads(what, c, a, b);
          rc_release(a);
          rc_release(b);
        }
}

static void test_vectors(rc_ctx *c) {
  for (int64_t sa = 1; sa <= 3; sa += 2)
    for (int lb = 0; lb < L_COUNT; lb++) {
      char what[128];
      rc_tensor *v = build1(c, 5, sa, 5), *w = build1(c, 5, 4 - sa, 6);
      rc_tensor *m = build(c, 2, 1, 5, 3, (layout)lb, 7);  /* [5, 3] */
      rc_tensor *mt = build(c, 2, 1, 3, 5, (layout)lb, 8); /* [3, 5] */
      rc_tensor *bt = build(c, 3, 2, 5, 3, (layout)lb, 9); /* [2, 5, 3] */
      rc_tensor *at = build(c, 3, 2, 3, 5, (layout)lb, 9); /* [2, 3, 5] */
      rc_tensor *pairs[][2] = {{v, w}, {v, m}, {mt, v}, {v, bt}, {at, v}};
      for (int p = 0; p < 5; p++) {
        snprintf(what, sizeof what, "vector case %d stride %lld %s", p, (long long)sa,
                 layout_name[lb]);
        uint64_t before = c->alloc_count;
        rc_tensor *r = rc_matmul(pairs[p][0], pairs[p][1]);
        if (mappable((layout)lb)) CHECK(c->alloc_count - before == 1);
        check_product(what, r, pairs[p][0], pairs[p][1]);
        rc_release(r);
        check_grads(what, c, pairs[p][0], pairs[p][1]);
      }
      rc_tensor *d = rc_dot(v, w);
      CHECK(d && d->ndim == 0);
      check_product("dot", d, v, w);
      rc_release(d);
      /* outer: [5] x [5] against the naive loop */
      rc_tensor *o = rc_outer(v, w);
      int ok = o && o->ndim == 2 && o->size[0] == 5 && o->size[1] == 5;
      for (int64_t i = 0; ok && i < 5; i++)
        for (int64_t j = 0; j < 5; j++) {
          int64_t ij[2] = {i, j};
          if (*rc_ptr(o, ij) != *rc_ptr(v, &i) * *rc_ptr(w, &j)) ok = 0;
        }
      CHECK(ok);
      rc_release(o);
      rc_release(v);
      rc_release(w);
      rc_release(m);
      rc_release(mt);
      rc_release(bt);
      rc_release(at);
    }
}

/* Expanded operands (stride 0) must be copied, not handed to BLAS with ld 0. */
static void test_expanded(rc_ctx *c) {
  float row[3] = {1, 2, 3};
  int64_t n3 = 3;
  rc_tensor *base = rc_from_data(c, 1, &n3, row);
  int64_t size[2] = {4, 3}, stride[2] = {0, 1};
  rc_tensor *e = rc_raw_view(base, 2, size, stride, 0); /* [4, 3], every row 1 2 3 */
  int64_t size_t_[2] = {3, 4}, stride_t[2] = {1, 0};
  rc_tensor *et = rc_raw_view(base, 2, size_t_, stride_t, 0); /* [3, 4], every column 1 2 3 */
  rc_tensor *b = build(c, 2, 1, 3, 2, L_TRANS, 10);
  rc_tensor *r = rc_matmul(e, b);
  check_product("expanded rows", r, e, b);
  rc_release(r);
  rc_tensor *b2 = build(c, 2, 1, 4, 2, L_ROW, 11);
  r = rc_matmul(et, b2);
  check_product("expanded cols", r, et, b2);
  rc_release(r);
  int64_t s1[1] = {3}, st1[1] = {0};
  rc_tensor *ev = rc_raw_view(base, 1, s1, st1, 1); /* [3] all 2 */
  r = rc_matmul(ev, b);
  check_product("expanded vector", r, ev, b);
  rc_release(r);
  check_grads("expanded grads", c, e, b);
  rc_release(ev);
  rc_release(e);
  rc_release(et);
  rc_release(b);
  rc_release(b2);
  rc_release(base);
}

static void test_gemm_into(rc_ctx *c) {
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int la = 0; la < L_COUNT; la++) {
        int64_t M = 3, K = 4, N = 5;
        rc_tensor *a =
            ta ? build(c, 2, 1, K, M, (layout)la, 12) : build(c, 2, 1, M, K, (layout)la, 12);
        rc_tensor *b = tb ? build(c, 2, 1, N, K, L_TRANS, 13) : build(c, 2, 1, K, N, L_PAD, 13);
        rc_tensor *out = build(c, 2, 1, M, N, L_PAD, 14);
        float old[15];
        for (int64_t i = 0; i < M; i++)
          for (int64_t j = 0; j < N; j++) {
            int64_t ij[2] = {i, j};
            old[i * N + j] = *rc_ptr(out, ij);
          }
        uint64_t before = c->alloc_count;
        uint32_t ver = out->storage->version;
        CHECK(rc_gemm_into(out, a, ta, b, tb, 0.5f, 2.0f) == 0);
        if (mappable((layout)la)) CHECK(c->alloc_count == before);
        CHECK(out->storage->version == ver + 1);
        int ok = 1;
        for (int64_t i = 0; i < M; i++)
          for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
              int64_t ia[2] = {ta ? k : i, ta ? i : k}, ib[2] = {tb ? j : k, tb ? k : j};
              s += (double)*rc_ptr(a, ia) * *rc_ptr(b, ib);
            }
            int64_t ij[2] = {i, j};
            double want = 0.5 * s + 2.0 * old[i * N + j];
            if (!(fabs(*rc_ptr(out, ij) - want) < 1e-4)) ok = 0;
          }
        CHECK(ok);
        rc_release(a);
        rc_release(b);
        rc_release(out);
      }
  /* beta = 0 overwrites NaN; K = 0 gives beta * out */
  int64_t s23[2] = {2, 3}, s34[2] = {3, 4}, s24[2] = {2, 4}, s20[2] = {2, 0}, s04[2] = {0, 4};
  rc_tensor *a = rc_full(c, 2, s23, 1.0f), *b = rc_full(c, 2, s34, 2.0f);
  rc_tensor *out = rc_full(c, 2, s24, NAN);
  CHECK(rc_gemm_into(out, a, 0, b, 0, 1.0f, 0.0f) == 0);
  CHECK(rc_data(out)[0] == 6.0f && rc_data(out)[7] == 6.0f);
  rc_tensor *a0 = rc_zeros(c, 2, s20), *b0 = rc_zeros(c, 2, s04);
  CHECK(rc_gemm_into(out, a0, 0, b0, 0, 1.0f, 0.5f) == 0);
  CHECK(rc_data(out)[3] == 3.0f);
  rc_fill_(out, NAN);
  CHECK(rc_gemm_into(out, a0, 0, b0, 0, 1.0f, 0.0f) == 0);
  CHECK(rc_data(out)[5] == 0.0f);
  /* errors */
  CHECK(rc_gemm_into(out, a, 1, b, 0, 1.0f, 0.0f) == -1);
  CHECK(strstr(c->err, "gemm_into: shapes [2, 3] (transposed) and [3, 4] do not match") != NULL);
  CHECK(rc_gemm_into(out, b, 0, b, 1, 1.0f, 0.0f) == -1);
  CHECK(strcmp(c->err, "gemm_into: out has shape [2, 4], expected [3, 3]") == 0);
  int64_t st_t[2] = {1, 2};
  rc_tensor *outt = rc_raw_view(out, 2, s24, st_t, 0); /* column-major: refused */
  CHECK(rc_gemm_into(outt, a, 0, b, 0, 1.0f, 0.0f) == -1);
  CHECK(strstr(c->err, "must be contiguous or row-major strided") != NULL);
  rc_tensor *alias = rc_raw_view(out, 2, s23, out->stride, 0);
  CHECK(rc_gemm_into(out, alias, 0, b, 0, 1.0f, 0.0f) == -1);
  CHECK(strcmp(c->err, "gemm_into: out shares memory with a") == 0);
  CHECK(rc_gemm_into(out, a, 0, a0, 0, 1.0f, 0.0f) == -1);
  CHECK(rc_gemm_into(a, b, 0, b0, 0, 1.0f, 0.0f) == -1);
  rc_tensor *v = rc_zeros(c, 1, s23);
  CHECK(rc_gemm_into(out, v, 0, b, 0, 1.0f, 0.0f) == -1);
  CHECK(strstr(c->err, "gemm_into: out, a and b must be 2-D") != NULL);
  rc_release(v);
  rc_release(alias);
  rc_release(outt);
  rc_release(a0);
  rc_release(b0);
  rc_release(a);
  rc_release(b);
  rc_release(out);
}

static void test_errors(rc_ctx *c) {
  int64_t s23[2] = {2, 3}, s45[2] = {4, 5}, s234[3] = {2, 3, 4}, s542[3] = {5, 4, 2};
  int64_t s4d[4] = {1, 2, 3, 4}, s3[1] = {3}, s4[1] = {4};
  rc_tensor *a = rc_zeros(c, 2, s23), *b = rc_zeros(c, 2, s45);
  rc_tensor *a3 = rc_zeros(c, 3, s234), *b3 = rc_zeros(c, 3, s542);
  rc_tensor *x4 = rc_zeros(c, 4, s4d), *z = rc_scalar(c, 1.0f);
  rc_tensor *v3 = rc_zeros(c, 1, s3), *v4 = rc_zeros(c, 1, s4);
  uint64_t before = c->alloc_count;
  CHECK(rc_matmul(a, b) == NULL);
  CHECK(strcmp(c->err, "matmul: shapes [2, 3] and [4, 5] do not match (3 vs 4)") == 0);
  CHECK(rc_matmul(a3, b3) == NULL);
  CHECK(strcmp(c->err, "matmul: batch dimensions of shapes [2, 3, 4] and [5, 4, 2] do not match "
                       "(2 vs 5)") == 0);
  CHECK(rc_matmul(z, a) == NULL);
  CHECK(strcmp(c->err, "matmul: both arguments must have at least one dimension, got shapes [] "
                       "and [2, 3]") == 0);
  CHECK(rc_matmul(x4, a) == NULL);
  CHECK(strstr(c->err, "matmul: shapes [1, 2, 3, 4] and [2, 3]: only 1-D, 2-D and 3-D") != NULL);
  CHECK(rc_matmul(v3, v4) == NULL);
  CHECK(strcmp(c->err, "matmul: shapes [3] and [4] do not match (3 vs 4)") == 0);
  CHECK(rc_mm(a, v3) == NULL);
  CHECK(strcmp(c->err, "mm: expected a 2-D and a 2-D tensor, got shapes [2, 3] and [3]") == 0);
  CHECK(rc_bmm(a3, a) == NULL);
  CHECK(strstr(c->err, "bmm: expected a 3-D and a 3-D tensor") != NULL);
  CHECK(rc_mv(a, v4) == NULL);
  CHECK(strcmp(c->err, "mv: shapes [2, 3] and [4] do not match (3 vs 4)") == 0);
  CHECK(rc_dot(v3, a) == NULL);
  CHECK(strstr(c->err, "dot: expected a 1-D and a 1-D tensor") != NULL);
  CHECK(rc_outer(a, v3) == NULL);
  CHECK(strstr(c->err, "outer: expected a 1-D and a 1-D tensor") != NULL);
  CHECK(c->alloc_count == before); /* validation happens before allocation */
  rc_release(a);
  rc_release(b);
  rc_release(a3);
  rc_release(b3);
  rc_release(x4);
  rc_release(z);
  rc_release(v3);
  rc_release(v4);
}

int main(void) {
  rc_ctx *c = rc_ctx_new();
  test_2d(c);
  test_batched(c);
  test_vectors(c);
  test_expanded(c);
  test_gemm_into(c);
  test_errors(c);
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
