/* The context's cache of freed tensor blocks (runtime/tensor.c): a loop that moves on to
 * other sizes gets them cached too, the blocks put longest ago making room, and the cache
 * never holds more than the peak of live bytes plus its margin. */
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
  /* small blocks are left to malloc */
  int n0 = cached(c);
  churn(c, 1024, 4);
  CHECK(cached(c) == n0);
  rc_ctx_release(c);
  return TEST_SUMMARY();
}
