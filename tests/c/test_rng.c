/* The generator and the random ops at the C level: pinned first numbers for fixed seeds
 * (reference values from an independent Python implementation of splitmix64 + xoshiro256**),
 * independence of two contexts, and the state export/import. */
#include <string.h>

#include "../../runtime/ops.h"
#include "test.h"

static int same_rng(const rc_rng *x, const rc_rng *y) {
  return memcmp(x->s, y->s, sizeof x->s) == 0 && x->has_spare == y->has_spare &&
         (!x->has_spare || x->spare == y->spare);
}

static void test_pinned(void) {
  rc_rng r;
  rc_rng_seed(&r, 0);
  CHECK(r.s[0] == 0xe220a8397b1dcdafULL); /* splitmix64's well-known first output */
  rc_rng_seed(&r, 42);
  CHECK(rc_rng_next(&r) == 0x15780b2e0c2ec716ULL);
  CHECK(rc_rng_next(&r) == 0x6104d9866d113a7eULL);
  CHECK(rc_rng_next(&r) == 0xae17533239e499a1ULL);
  CHECK(rc_rng_next(&r) == 0xecb8ad4703b360a1ULL);
  rc_rng_seed(&r, 42); /* reseeding restarts the stream */
  CHECK(rc_rng_next(&r) == 0x15780b2e0c2ec716ULL);
}

static void test_ops_pinned(void) {
  rc_ctx *c = rc_ctx_new();
  int64_t n = 4;
  rc_rng_seed(&c->rng, 42);
  rc_tensor *u = rc_rand(c, 1, &n, 0.0f, 1.0f);
  CHECK(u != NULL);
  if (u) {
    const float want[4] = {0.08386296033859253f, 0.37898021936416626f, 0.6800433993339539f,
                           0.9246929287910461f};
    for (int i = 0; i < 4; i++) CHECK(rc_data(u)[i] == want[i]);
    rc_release(u);
  }
  rc_rng_seed(&c->rng, 42);
  int64_t five = 5;
  rc_tensor *z = rc_randn(c, 1, &five, 0.0f, 1.0f);
  CHECK(z != NULL);
  if (z) {
    const double want[5] = {-1.6132237911224365, 1.5344873666763306, 0.7816920280456543,
                            -0.4001934826374054, 0.01587129384279251};
    for (int i = 0; i < 5; i++) CHECK_NEAR(rc_data(z)[i], want[i], 1e-6);
    CHECK(c->rng.has_spare == 1); /* 5 normals: the sixth is pending */
    rc_release(z);
  }
  rc_rng_seed(&c->rng, 7);
  rc_tensor *p = rc_randperm(c, 6);
  CHECK(p != NULL);
  if (p) {
    const float want[6] = {3, 5, 1, 2, 4, 0};
    for (int i = 0; i < 6; i++) CHECK(rc_data(p)[i] == want[i]);
    rc_release(p);
  }
  rc_rng_seed(&c->rng, 3);
  int64_t eight = 8;
  rc_tensor *ri = rc_randint(c, 1, &eight, -2, 5);
  CHECK(ri != NULL);
  if (ri) {
    const float want[8] = {-2, 4, -1, 0, 0, 1, 4, 4};
    for (int i = 0; i < 8; i++) CHECK(rc_data(ri)[i] == want[i]);
    rc_release(ri);
  }
  rc_ctx_release(c);
}

static void test_independent_contexts(void) {
  rc_ctx *a = rc_ctx_new(), *b = rc_ctx_new();
  /* the default seed is the same for every context */
  rc_rng ra = a->rng, rb = b->rng;
  CHECK(rc_rng_next(&ra) == 0xef33f17055244b74ULL);
  CHECK(rc_rng_next(&rb) == 0xef33f17055244b74ULL);
  rc_rng_seed(&a->rng, 42);
  rc_rng_seed(&b->rng, 42);
  int64_t n = 1000;
  rc_tensor *x = rc_rand(a, 1, &n, 0.0f, 1.0f); /* advances a only */
  rc_tensor *y = rc_randn(a, 1, &n, 0.0f, 1.0f);
  int64_t one = 1;
  rc_tensor *first = rc_rand(b, 1, &one, 0.0f, 1.0f);
  CHECK(x && y && first);
  if (x && first) CHECK(rc_data(first)[0] == rc_data(x)[0]);
  CHECK(b->rng.has_spare == 0);
  /* and b's draws or reseeding leave a's state alone */
  rc_rng snap = a->rng;
  rc_rng_seed(&b->rng, 99);
  rc_tensor *w = rc_randn(b, 1, &n, 0.0f, 1.0f);
  CHECK(w != NULL);
  rc_release(w);
  CHECK(same_rng(&snap, &a->rng));
  CHECK(!same_rng(&snap, &b->rng));
  rc_release(x);
  rc_release(y);
  rc_release(first);
  rc_ctx_release(a);
  rc_ctx_release(b);
}

static void test_state(void) {
  rc_ctx *c = rc_ctx_new();
  rc_rng_seed(&c->rng, 5);
  int64_t three = 3, four = 4;
  rc_tensor *t = rc_randn(c, 1, &three, 0.0f, 1.0f); /* leaves a spare */
  rc_release(t);
  CHECK(c->rng.has_spare == 1);
  unsigned char st[RC_RNG_STATE_BYTES];
  rc_rng_state_get(c, st);
  CHECK(memcmp(st, "rng1", 4) == 0);
  CHECK(st[44] == 1);
  rc_tensor *a = rc_randn(c, 1, &four, 0.0f, 1.0f);
  CHECK(rc_rng_state_set(c, st, sizeof st) == 0);
  rc_tensor *b = rc_randn(c, 1, &four, 0.0f, 1.0f);
  CHECK(a && b);
  if (a && b) CHECK(memcmp(rc_data(a), rc_data(b), 4 * sizeof(float)) == 0);
  rc_release(a);
  rc_release(b);
  /* bad states are refused and leave the generator untouched */
  rc_rng before = c->rng;
  CHECK(rc_rng_state_set(c, st, 47) == -1);
  CHECK(strstr(c->err, "set_rng_state") != NULL);
  unsigned char bad[RC_RNG_STATE_BYTES];
  memcpy(bad, st, sizeof bad);
  bad[0] = 'x';
  CHECK(rc_rng_state_set(c, bad, sizeof bad) == -1);
  memcpy(bad, st, sizeof bad);
  memset(bad + 4, 0, 32);
  CHECK(rc_rng_state_set(c, bad, sizeof bad) == -1);
  CHECK(strstr(c->err, "all zero") != NULL);
  memcpy(bad, st, sizeof bad);
  bad[44] = 2;
  CHECK(rc_rng_state_set(c, bad, sizeof bad) == -1);
  memcpy(bad, st, sizeof bad);
  memset(bad + 36, 0xff, 8); /* NaN spare */
  CHECK(rc_rng_state_set(c, bad, sizeof bad) == -1);
  CHECK(same_rng(&before, &c->rng));
  rc_ctx_release(c);
}

/* Strided (transposed) inputs are read in logical order. */
static void test_strided_inputs(void) {
  rc_ctx *c = rc_ctx_new();
  const float base[6] = {1, 0, 0, 1, 0, 0}; /* [3, 2] */
  int64_t bs[2] = {3, 2}, ts[2] = {2, 3}, tst[2] = {1, 2};
  rc_tensor *b = rc_from_data(c, 2, bs, base);
  rc_tensor *t = b ? rc_raw_view(b, 2, ts, tst, 0) : NULL; /* [[1, 0, 0], [0, 1, 0]] */
  CHECK(t != NULL && !rc_is_contiguous(t));
  if (t) {
    rc_tensor *m = rc_multinomial(t, 4, 1);
    CHECK(m && m->ndim == 2 && m->size[0] == 2 && m->size[1] == 4);
    if (m)
      for (int j = 0; j < 4; j++) CHECK(rc_data(m)[j] == 0 && rc_data(m)[4 + j] == 1);
    rc_release(m);
    rc_tensor *be = rc_bernoulli(t);
    CHECK(be && be->size[0] == 2 && be->size[1] == 3);
    if (be) {
      const float want[6] = {1, 0, 0, 0, 1, 0};
      CHECK(memcmp(rc_data(be), want, sizeof want) == 0);
    }
    rc_release(be);
    rc_tensor *bad = rc_multinomial(t, 2, 0); /* each row has one non-zero category */
    CHECK(bad == NULL && strstr(c->err, "multinomial: cannot draw 2") != NULL);
  }
  rc_release(t);
  rc_release(b);
  rc_ctx_release(c);
}

int main(void) {
  test_strided_inputs();
  test_pinned();
  test_ops_pinned();
  test_independent_contexts();
  test_state();
  return TEST_SUMMARY();
}
