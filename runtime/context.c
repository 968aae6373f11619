#define _POSIX_C_SOURCE 200809L
#include "context.h"

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

void rc_ctx_retain(rc_ctx *c) { c->refcount++; }

void rc_ctx_release(rc_ctx *c) {
  if (c && --c->refcount == 0) {
    free(c->deferred);
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

/* 1 when `bytes` more would pass the limit; tensor storage and the host's bytes (a Lua heap)
 * count together. */
static int over_limit(const rc_ctx *c, size_t bytes) {
  if (!c->limit_bytes) return 0;
  size_t used = c->live_bytes + c->meta_bytes + c->host_bytes;
  if (used < c->live_bytes || used >= c->limit_bytes) return 1;
  return bytes > c->limit_bytes - used;
}

static int limit_error(rc_ctx *c, size_t bytes) {
  return rc_error(c,
                  "memory limit exceeded (%zu bytes requested; %zu in tensors and %zu in the "
                  "interpreter of %zu allowed)",
                  bytes, c->live_bytes + c->meta_bytes, c->host_bytes, c->limit_bytes);
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

void rc_account_free(rc_ctx *c, size_t bytes) { c->live_bytes -= bytes; }

int rc_check_limit(rc_ctx *c, size_t bytes) { return over_limit(c, bytes) ? limit_error(c, bytes) : 0; }
