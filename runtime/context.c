#define _POSIX_C_SOURCE 200809L
#include "context.h"
#include "team.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

rc_ctx *rc_ctx_new(void) {
  rc_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->refcount = 1;
  c->grad_enabled = 1;
  rc_rng_seed(&c->rng, 0x5eed);
  return c;
}

rc_team *rc_ctx_team(rc_ctx *c) {
  if (!c->team && !c->team_failed && !(c->team = rc_team_new())) c->team_failed = 1;
  return c->team;
}

/* element operations (an exp, a few adds) from which rows are shared with the helper: the
 * char-RNN's loss over [1600, 65] logits (104,000) takes 0.08 ms on one thread and 0.045 split,
 * and handing half to a helper that is spinning costs a few microseconds */
#define ROWS_SPLIT_MIN ((int64_t)1 << 15)

void rc_ctx_rows(rc_ctx *c, void (*fn)(void *arg, int64_t lo, int64_t hi), void *arg, int64_t n,
                 int64_t work) {
  rc_team *t = NULL;
  if (n >= 2 && work >= ROWS_SPLIT_MIN && openblas_get_num_threads() > 1 &&
      rc_team_usable(rc_ctx_team(c)))
    t = c->team;
  if (t) {
    uint64_t kind = (uint64_t)(uintptr_t)fn * 31 + (uint64_t)n; /* the pass and its rows */
    rc_team_split_learn(t, kind, fn, arg, n, rc_team_cut(t, kind, n, 1));
  } else
    fn(arg, 0, n);
}

void rc_ctx_retain(rc_ctx *c) {
  c->refcount++;
}

void rc_ctx_release(rc_ctx *c) {
  if (c && --c->refcount == 0) {
    for (int i = 0; i < RC_CACHE_SLOTS; i++) {
      RC_UNPOISON(c->cache_block[i], c->cache_size[i]);
      free(c->cache_block[i]);
    }
    for (int k = 0; k < RC_SMALL_CLASSES; k++)
      while (c->small_head[k]) {
        void *p = c->small_head[k];
        RC_UNPOISON(p, sizeof(void *));
        memcpy(&c->small_head[k], p, sizeof(void *));
        free(p);
      }
    free(c->deferred);
    free(c->gemm_calls);
    free(c->gemm_buf[0]);
    free(c->gemm_buf[1]);
    rc_team_free(c->team);
    rc_mem_free(c, c->profile); /* rc_profile_start's block (profile.c, a floor above) */
    free(c);
  }
}

int rc_error(rc_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return -1;
}

void *rc_error_null(rc_ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return NULL;
}

int rc_error_prefix(rc_ctx *c, const char *fn) {
  char msg[RC_ERR_MAX];
  snprintf(msg, sizeof msg, "%s", c->err);
  return rc_error(c, "%s: %s", fn, msg);
}

size_t rc_used_bytes(const rc_ctx *c) {
  return c->live_bytes + c->meta_bytes + c->aux_bytes + c->host_bytes;
}

/* 1 when `bytes` more would pass the limit; tensor storage, the runtime's other memory and the
 * host's bytes (a Lua heap) count together. */
static int over_limit(const rc_ctx *c, size_t bytes) {
  if (!c->limit_bytes) return 0;
  size_t used = rc_used_bytes(c);
  if (used < c->live_bytes || used >= c->limit_bytes) return 1;
  return bytes > c->limit_bytes - used;
}

static int limit_error(rc_ctx *c, size_t bytes) {
  return rc_error(c,
                  "memory limit exceeded (%zu bytes requested; %zu in tensors, %zu in autograd "
                  "and other runtime structures and %zu in the interpreter of %zu allowed)",
                  bytes, c->live_bytes + c->meta_bytes, c->aux_bytes, c->host_bytes,
                  c->limit_bytes);
}

/* ---- the runtime's own heap memory ---- */

#define MEM_PREFIX 16 /* keeps the block's size; a multiple of malloc's alignment */

static void *mem_account(rc_ctx *c, char *raw, size_t bytes) {
  *(size_t *)raw = bytes;
  c->aux_bytes += bytes + MEM_PREFIX;
  c->pending_bytes += bytes + MEM_PREFIX;
  return raw + MEM_PREFIX;
}

static int mem_check(rc_ctx *c, size_t bytes) {
  if (bytes > SIZE_MAX - MEM_PREFIX)
    return rc_error(c, "out of memory allocating %zu bytes", bytes);
  if (over_limit(c, bytes + MEM_PREFIX)) return limit_error(c, bytes + MEM_PREFIX);
  return 0;
}

void *rc_mem_alloc(rc_ctx *c, size_t bytes) {
  if (mem_check(c, bytes)) return NULL;
  char *raw = malloc(bytes + MEM_PREFIX);
  if (!raw) return rc_error_null(c, "out of memory allocating %zu bytes", bytes);
  return mem_account(c, raw, bytes);
}

void *rc_mem_calloc(rc_ctx *c, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size)
    return rc_error_null(c, "out of memory allocating %zu x %zu bytes", n, size);
  size_t bytes = n * size;
  if (mem_check(c, bytes)) return NULL;
  char *raw = calloc(1, bytes + MEM_PREFIX);
  if (!raw) return rc_error_null(c, "out of memory allocating %zu bytes", bytes);
  return mem_account(c, raw, bytes);
}

void *rc_mem_realloc(rc_ctx *c, void *p, size_t bytes) {
  if (!p) return rc_mem_alloc(c, bytes);
  char *raw = (char *)p - MEM_PREFIX;
  size_t old = *(size_t *)raw;
  if (bytes > SIZE_MAX - MEM_PREFIX)
    return rc_error_null(c, "out of memory allocating %zu bytes", bytes);
  if (bytes > old && mem_check(c, bytes - old)) return NULL;
  char *r = realloc(raw, bytes + MEM_PREFIX);
  if (!r) return rc_error_null(c, "out of memory allocating %zu bytes", bytes);
  c->aux_bytes -= old + MEM_PREFIX;
  return mem_account(c, r, bytes);
}

void rc_mem_free(rc_ctx *c, void *p) {
  if (!p) return;
  char *raw = (char *)p - MEM_PREFIX;
  c->aux_bytes -= *(size_t *)raw + MEM_PREFIX;
  free(raw);
}

int rc_budget_error(rc_ctx *c, const char *fn) {
  return rc_error(c, "%s: instruction budget exceeded (%llu allowed per call)", fn,
                  (unsigned long long)c->work_limit);
}

int rc_check_file_access(rc_ctx *c, const char *fn, const char *path) {
  if (c->files_denied && c->file_read_exception && path &&
      strcmp(path, c->file_read_exception) == 0)
    return 0;
  return rc_check_file_write(c, fn, path);
}

int rc_check_file_write(rc_ctx *c, const char *fn, const char *path) {
  if (c->files_denied)
    return rc_error(c, "%s: file access is disabled in this sandbox (path '%s')", fn,
                    path ? path : "?");
  return 0;
}

void *rc_alloc_bytes(rc_ctx *c, size_t bytes) {
  if (over_limit(c, bytes)) {
    limit_error(c, bytes);
    return NULL;
  }
  /* malloc plus manual alignment: glibc's posix_memalign fragments the heap badly for
   * large sizes (a loop of 1 MB tensors grew RSS by gigabytes), plain malloc reuses it. */
  if (bytes > SIZE_MAX - 64 - sizeof(void *)) {
    rc_error(c, "out of memory allocating %zu bytes", bytes);
    return NULL;
  }
  char *raw = malloc(bytes + 64 + sizeof(void *));
  if (!raw) {
    rc_error(c, "out of memory allocating %zu bytes", bytes);
    return NULL;
  }
  uintptr_t a = ((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63;
  void *p = (void *)a;
  ((void **)p)[-1] = raw;
  c->live_bytes += bytes;
  c->pending_bytes += bytes;
  c->alloc_count++;
  if (c->live_bytes > c->peak_bytes) c->peak_bytes = c->live_bytes;
  return p;
}

void rc_free_bytes(rc_ctx *c, void *p, size_t bytes) {
  if (!p) return;
  free(((void **)p)[-1]);
  c->live_bytes -= bytes;
}

int rc_defer_release(rc_ctx *c, int handle) {
  if (c->n_deferred == c->cap_deferred) {
    size_t cap = c->cap_deferred ? c->cap_deferred * 2 : 16;
    int *d = realloc(c->deferred, cap * sizeof *d);
    if (!d) return -1;
    c->deferred = d;
    c->cap_deferred = cap;
  }
  c->deferred[c->n_deferred++] = handle;
  return 0;
}

int rc_account_alloc(rc_ctx *c, size_t bytes) {
  if (over_limit(c, bytes)) return limit_error(c, bytes);
  c->live_bytes += bytes;
  c->pending_bytes += bytes;
  c->alloc_count++;
  if (c->live_bytes > c->peak_bytes) c->peak_bytes = c->live_bytes;
  return 0;
}

void rc_account_free(rc_ctx *c, size_t bytes) {
  c->live_bytes -= bytes;
}

int rc_check_limit(rc_ctx *c, size_t bytes) {
  return over_limit(c, bytes) ? limit_error(c, bytes) : 0;
}
