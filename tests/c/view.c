/* Runtime-level checks of ops_view.c: 0-based arguments, error returns, storage sharing. */
#include <string.h>

#include "../../runtime/ops.h"
#include "test.h"

int main(void) {
  rc_ctx *c = rc_ctx_new();
  int64_t s6 = 6, s23[2] = {2, 3};
  rc_tensor *x = rc_empty(c, 1, &s6);
  for (int i = 0; i < 6; i++) rc_data(x)[i] = (float)i;

  rc_tensor *v = rc_view(x, 2, s23);
  CHECK(v && v->is_view && v->storage == x->storage && v->stride[0] == 3);
  rc_tensor *t = rc_transpose(v, 0, -1);
  CHECK(t && t->size[0] == 3 && t->stride[0] == 1 && t->stride[1] == 3);
  /* a non-contiguous tensor cannot be viewed flat; reshape copies */
  CHECK(rc_view(t, 1, &s6) == NULL && strstr(c->err, "view: cannot view") != NULL);
  rc_tensor *r = rc_reshape(t, 1, &s6);
  CHECK(r && !r->is_view && r->storage != x->storage && rc_data(r)[1] == 3.0f);

  /* 0-based narrow and select; negative start and index wrap */
  rc_tensor *n = rc_narrow(v, 1, -2, 2);
  CHECK(n && n->offset == 1 && n->size[1] == 2);
  rc_tensor *s = rc_select(v, 0, -1);
  CHECK(s && s->ndim == 1 && s->offset == 3);
  CHECK(rc_narrow(v, 1, 2, 2) == NULL && strstr(c->err, "narrow:") != NULL);
  CHECK(rc_select(v, 0, 2) == NULL && strstr(c->err, "select: index 2 (0-based)") != NULL);

  int dup[2] = {1, -1};
  CHECK(rc_permute(v, dup) == NULL && strstr(c->err, "appears more than once") != NULL);
  int64_t lead[3] = {-1, 2, 3};
  CHECK(rc_expand(v, 3, lead) == NULL && strstr(c->err, "expand: size -1") != NULL);
  int64_t big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 6};
  CHECK(rc_view(x, 9, big) == NULL && strstr(c->err, "at most 8") != NULL);
  CHECK(rc_expand(x, 9, big) == NULL && strstr(c->err, "at most 8") != NULL);
  CHECK(rc_squeeze(v, 2) == NULL && strstr(c->err, "squeeze: dimension 3") != NULL);
  CHECK(rc_unsqueeze(v, 3) == NULL && strstr(c->err, "unsqueeze: dimension 4") != NULL);
  CHECK(rc_flatten(v, 1, 0) == NULL && strstr(c->err, "flatten: start") != NULL);

  /* contiguous: the same tensor when already contiguous */
  rc_tensor *cc = rc_contiguous(v);
  CHECK(cc == v && v->refcount == 2);
  rc_tensor *ct = rc_contiguous(t);
  CHECK(ct && ct != t && rc_is_contiguous(ct) && rc_data(ct)[1] == 3.0f);

  rc_release(ct);
  rc_release(cc);
  rc_release(s);
  rc_release(n);
  rc_release(r);
  rc_release(t);
  rc_release(v);
  rc_release(x);
  CHECK(c->live_bytes == 0);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
