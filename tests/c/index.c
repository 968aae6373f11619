/* Runtime-level checks of ops_index.c: 0-based indices and their messages, NULL-safe
 * argument handling, split views, and rc_index_rebase. */
#include <stdlib.h>
#include <string.h>

#include "../../runtime/ops.h"
#include "test.h"

#define HAS(msg, s) CHECK(strstr((msg), (s)) != NULL)

int main(void) {
  rc_ctx *c = rc_ctx_new();
  float av[6] = {0, 1, 2, 3, 4, 5};
  int64_t s23[2] = {2, 3};
  rc_tensor *a = rc_from_data(c, 2, s23, av);

  /* gather with 0-based indices */
  float iv[4] = {2, 0, 1, 1};
  int64_t s22[2] = {2, 2};
  rc_tensor *idx = rc_from_data(c, 2, s22, iv);
  rc_tensor *g = rc_gather(a, 1, idx);
  CHECK(g != NULL);
  if (g) {
    CHECK(rc_data(g)[0] == 2 && rc_data(g)[1] == 0 && rc_data(g)[2] == 4 && rc_data(g)[3] == 4);
    rc_release(g);
  }
  rc_data(idx)[3] = 3; /* out of range for size 3 (0-based) */
  CHECK(rc_gather(a, -1, idx) == NULL);
  HAS(c->err, "gather: index 3 at position [1, 1] is out of range for dimension 2 of size 3 "
              "(valid: 0..2)");

  /* rebase: 1-based -> 0-based copy, original untouched */
  float jv[3] = {1, 3, 2};
  int64_t s3 = 3;
  rc_tensor *j1 = rc_from_data(c, 1, &s3, jv);
  rc_tensor *j0 = rc_index_rebase(j1, 1, 3, "t", "x");
  CHECK(j0 && rc_data(j0)[0] == 0 && rc_data(j0)[1] == 2 && rc_data(j0)[2] == 1);
  CHECK(rc_data(j1)[1] == 3);
  CHECK(rc_index_rebase(j1, 1, 2, "t", "dimension 1 of size 2") == NULL);
  HAS(c->err, "t: index 3 at position [2] is out of range for dimension 1 of size 2 (valid: 1..2)");
  rc_tensor *sel = rc_index_select(a, 1, j0);
  CHECK(sel && sel->size[0] == 2 && sel->size[1] == 3 && rc_data(sel)[1] == 2);
  rc_release(sel);

  /* cat / stack need a list */
  CHECK(rc_cat(NULL, 0, 0) == NULL);
  rc_tensor *pair[2] = {a, NULL};
  CHECK(rc_stack(pair, 2, 0) == NULL);
  HAS(c->err, "stack: tensor 2 of the list is missing");

  /* split: views sharing storage */
  rc_tensor **ps = NULL;
  int n = -1;
  CHECK(rc_split(a, 2, 1, &ps, &n) == 0);
  CHECK(n == 2 && ps && ps[0]->storage == a->storage && ps[1]->size[1] == 1);
  for (int k = 0; k < n; k++) rc_release(ps[k]);
  free(ps);
  CHECK(rc_split(a, 0, 1, &ps, &n) == -1 && ps == NULL && n == 0);
  HAS(c->err, "split: split size must be positive, got 0");
  CHECK(rc_chunk(a, 2, 5, &ps, &n) == -1);
  HAS(c->err, "chunk: dimension 6 is out of range");

  /* one_hot with inferred classes */
  rc_tensor *oh = rc_one_hot(j0, -1);
  CHECK(oh && oh->size[1] == 3 && rc_data(oh)[0] == 1 && rc_data(oh)[5] == 1);
  rc_release(oh);

  rc_release(j0);
  rc_release(j1);
  rc_release(idx);
  rc_release(a);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
