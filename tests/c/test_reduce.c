/* Reductions from C: strided (non-contiguous) inputs, amax-style backward, RC_ALL with
 * keepdim, flat indices, double accumulation, runtime error messages. */
#include <string.h>

#include "../../runtime/ops.h"
#include "test.h"

static rc_tensor *from(rc_ctx *c, int ndim, const int64_t *size, const float *v) {
  return rc_from_data(c, ndim, size, v);
}

static int has(rc_ctx *c, const char *s) {
  return strstr(c->err, s) != NULL;
}

int main(void) {
  rc_ctx *c = rc_ctx_new();
  /* a = [[1, 5, 3], [4, 2, 6]]; its transpose is a strided [3, 2] view */
  int64_t s23[2] = {2, 3};
  float av[6] = {1, 5, 3, 4, 2, 6};
  rc_tensor *a = from(c, 2, s23, av);
  int64_t ts[2] = {3, 2}, tst[2] = {1, 3};
  rc_tensor *at = rc_raw_view(a, 2, ts, tst, 0);
  CHECK(!rc_is_contiguous(at));

  /* sum over dim 1 of the transpose = row sums of a */
  rc_tensor *s = rc_reduce(RC_SUM, at, 0, 0);
  CHECK(s && s->ndim == 1 && s->size[0] == 2);
  if (s) {
    CHECK_NEAR(rc_data(s)[0], 9, 1e-6);
    CHECK_NEAR(rc_data(s)[1], 12, 1e-6);
  }
  rc_release(s);
  rc_tensor *sm = rc_softmax(at, 0);
  if (sm) {
    float tot = 0;
    for (int i = 0; i < 3; i++) tot += *rc_ptr(sm, (int64_t[]){i, 1});
    CHECK_NEAR(tot, 1, 1e-6);
    /* softmax of column [4, 2, 6] */
    CHECK_NEAR(*rc_ptr(sm, (int64_t[]){2, 1}), 0.86681333f, 1e-6);
  }
  CHECK(sm != NULL);
  rc_release(sm);
  rc_tensor *cs = rc_cumsum(at, 0);
  CHECK(cs && rc_is_contiguous(cs));
  if (cs) CHECK_NEAR(*rc_ptr(cs, (int64_t[]){2, 0}), 9, 1e-6);
  rc_release(cs);

  /* RC_ALL with keepdim keeps every dim as 1; max_dim over all gives a flat index */
  rc_tensor *k = rc_reduce(RC_MEAN, a, RC_ALL, 1);
  CHECK(k && k->ndim == 2 && k->size[0] == 1 && k->size[1] == 1);
  if (k) CHECK_NEAR(rc_data(k)[0], 3.5, 1e-6);
  rc_release(k);
  rc_tensor *v = NULL, *ix = NULL;
  CHECK(rc_max_dim(at, RC_ALL, 0, 0, &v, &ix) == 0);
  if (v && ix) {
    CHECK(v->ndim == 0 && ix->ndim == 0);
    CHECK_NEAR(rc_data(v)[0], 6, 0);
    CHECK_NEAR(rc_data(ix)[0], 5, 0); /* at = [[1, 4], [5, 2], [3, 6]]: 6 is element 5 */
  }
  rc_release(v);
  rc_release(ix);
  rc_tensor *am = rc_argmax(at, 1, 1, 1);
  CHECK(am && am->ndim == 2 && am->size[0] == 3 && am->size[1] == 1);
  if (am) CHECK(rc_data(am)[0] == 0 && rc_data(am)[1] == 1 && rc_data(am)[2] == 0);
  rc_release(am);

  /* amax along a dim (rc_reduce RC_MAX): ties split the gradient evenly */
  float tv[6] = {1, 3, 3, 2, 0, 2};
  rc_tensor *x = from(c, 2, s23, tv);
  rc_set_requires_grad(x, 1);
  rc_tensor *mx = rc_reduce(RC_MAX, x, 1, 0);
  CHECK(mx && mx->grad_fn && strcmp(mx->grad_fn->name, "MaxBackward") == 0);
  rc_tensor *g = rc_full(c, 1, (int64_t[]){2}, 1.0f);
  CHECK(mx && rc_backward(c, &mx, &g, 1, 0) == 0);
  if (x->grad) {
    const float want[6] = {0, 0.5f, 0.5f, 0.5f, 0, 0.5f};
    for (int i = 0; i < 6; i++) CHECK_NEAR(rc_data(x->grad)[i], want[i], 1e-7);
  }
  rc_release(mx);
  rc_release(g);
  rc_release(x);

  /* long sums accumulate in double: 1e6 * 0.1f */
  int64_t big = 1000000;
  rc_tensor *b = rc_full(c, 1, &big, 0.1f);
  rc_tensor *bs = rc_reduce(RC_SUM, b, RC_ALL, 0);
  if (bs) CHECK_NEAR(rc_data(bs)[0], 100000.0015, 0.01);
  rc_tensor *bv = rc_var(b, 0, 0, 1);
  if (bv) CHECK_NEAR(rc_data(bv)[0], 0, 1e-12);
  rc_release(bs);
  rc_release(bv);
  rc_release(b);

  /* errors name the op and leave no result */
  CHECK(rc_reduce(RC_SUM, a, 2, 0) == NULL && has(c, "sum: dimension"));
  CHECK(rc_reduce(RC_REDOP_COUNT, a, 0, 0) == NULL && has(c, "reduce: unknown op"));
  CHECK(rc_softmax(a, RC_ALL) == NULL && has(c, "softmax: a dimension is required"));
  CHECK(rc_cumsum(a, -3) == NULL && has(c, "cumsum: dimension"));
  CHECK(rc_norm(a, NAN, RC_ALL, 0) == NULL && has(c, "norm: p"));
  int64_t z[2] = {2, 0};
  rc_tensor *e = rc_zeros(c, 2, z);
  CHECK(rc_reduce(RC_MIN, e, 1, 0) == NULL && has(c, "min: cannot reduce dimension 2"));
  CHECK(rc_norm(e, INFINITY, 1, 0) == NULL && has(c, "norm: cannot reduce"));
  rc_tensor *e0 = rc_reduce(RC_MAX, e, 0, 0);
  CHECK(e0 && e0->ndim == 1 && e0->size[0] == 0);
  rc_release(e0);
  rc_release(e);

  rc_release(at);
  rc_release(a);
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
