/* The context's cache of freed tensor blocks (runtime/tensor.c): a loop that moves on to
 * other sizes gets them cached too, the blocks put longest ago making room, and the cache
 * never holds more than the peak of live bytes plus its margin. Smaller blocks (1 KB up) are
 * kept by size class and handed back to requests of their class; tiny ones go to malloc. */
#include <stdio.h>

#include "../../runtime/context.h"
#include "../../runtime/tensor.h"
#include "test.h"

static int cached(const rc_ctx *c) {
  int n = 0;
  for (int i = 0; i < RC_CACHE_SLOTS; i++) n += c->cache_block[i] != NULL;
  return n;
}

/* whether a block of at least n floats, and within a quarter of it, is cached */
static int holds(const rc_ctx *c, int64_t n) {
  size_t want = (size_t)n * sizeof(float);
  for (int i = 0; i < RC_CACHE_SLOTS; i++)
    if (c->cache_block[i] && c->cache_size[i] >= want && c->cache_size[i] - want <= want / 4)
      return 1;
  return 0;
}

/* makes and frees `count` tensors of n floats, all alive at once */
static void churn(rc_ctx *c, int64_t n, int count) {
  rc_tensor *t[RC_CACHE_SLOTS + 8];
  for (int i = 0; i < count; i++) t[i] = rc_empty(c, 1, &n);
  for (int i = 0; i < count; i++) rc_release(t[i]);
}

int main(void) {
  rc_ctx *c = rc_ctx_new();
  CHECK(c != NULL);
  if (!c) return TEST_SUMMARY();
  /* fill every slot with blocks of one size (1 MB) */
  churn(c, 1 << 18, RC_CACHE_SLOTS);
  CHECK(cached(c) == RC_CACHE_SLOTS);
  CHECK(holds(c, 1 << 18));
  CHECK(!holds(c, 3 << 18));
  /* a loop on another size: its blocks are kept, the oldest 1 MB ones make room */
  churn(c, 3 << 18, 4);
  CHECK(holds(c, 3 << 18));
  CHECK(cached(c) == RC_CACHE_SLOTS);
  /* and reused: the next round of that size finds them (the cache does not grow) */
  size_t before = c->cache_bytes;
  churn(c, 3 << 18, 4);
  CHECK(c->cache_bytes == before);
  /* the bound: never more than the peak of live bytes plus the margin */
  CHECK(c->cache_bytes <= c->peak_bytes + ((size_t)64 << 20));
  /* smaller blocks go to their class's list, not to the slots, and come back for a request
   * of the same class: a [32, 100] tensor's block serves a [32, 99] one */
  int n0 = cached(c);
  size_t b0 = c->cache_bytes;
  churn(c, 1024, 4);
  CHECK(cached(c) == n0);
  CHECK(c->cache_bytes > b0);
  int64_t sz = 3200;
  rc_tensor *t = rc_empty(c, 1, &sz);
  void *block = t->storage->block;
  rc_release(t);
  sz = 3168;
  t = rc_empty(c, 1, &sz);
  CHECK(t->storage->block == block);
  /* written over whole: the list's link is gone from it */
  for (int64_t i = 0; i < sz; i++) rc_data(t)[i] = 1.0f;
  rc_release(t);
  /* a tiny tensor's block is not kept */
  size_t b1 = c->cache_bytes;
  sz = 16;
  rc_release(rc_empty(c, 1, &sz));
  CHECK(c->cache_bytes == b1);
  /* under a memory limit nothing new is kept */
  c->limit_bytes = (size_t)1 << 30;
  sz = 5000;
  rc_release(rc_empty(c, 1, &sz));
  sz = 7000;
  rc_release(rc_empty(c, 1, &sz));
  CHECK(c->cache_bytes == b1);
  c->limit_bytes = 0;
  rc_ctx_release(c); /* frees the lists (ASan's leak check) */

  /* the bound shared: small blocks holding most of it, then a large block with no large one
   * cached to make room for it is freed, not kept */
  c = rc_ctx_new();
  CHECK(c != NULL);
  if (!c) return TEST_SUMMARY();
  enum { N_SMALL = 5600 };
  static rc_tensor *many[N_SMALL];
  int64_t small_n = 3200; /* 12.8 KB: 70 MB in all */
  for (int i = 0; i < N_SMALL; i++) many[i] = rc_empty(c, 1, &small_n);
  for (int i = 0; i < N_SMALL; i++) rc_release(many[i]);
  CHECK(c->cache_bytes > ((size_t)64 << 20));
  int64_t big_n = (int64_t)18 << 20; /* 72 MB */
  rc_release(rc_empty(c, 1, &big_n));
  CHECK(cached(c) == 0);
  CHECK(c->cache_bytes <= c->peak_bytes + ((size_t)64 << 20));
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
