/* The runtime context: everything that would otherwise be a C global.
 * One context per Lua state (or per host runtime); two contexts never share anything. */
#ifndef RECUR_CONTEXT_H
#define RECUR_CONTEXT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define RC_ERR_MAX 1024

#define RC_CACHE_SLOTS 64
#define RC_SMALL_CLASSES 24

/* Under AddressSanitizer a cached block is poisoned, so a use after its storage was released
 * is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define RC_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define RC_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define RC_POISON(p, n) ((void)(p), (void)(n))
#define RC_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct rc_ctx {
  int refcount;         /* the owner holds one; every live storage holds one */
  size_t live_bytes;    /* tensor storage now allocated */
  size_t peak_bytes;    /* high-water mark of live_bytes */
  size_t limit_bytes;   /* 0 = unlimited; else allocations past it fail */
  size_t pending_bytes; /* allocated since the owner last told its collector */
  uint64_t alloc_count; /* storages allocated, ever */
  int grad_enabled;     /* 0 inside no_grad */
  int check_numerics;   /* 1: NaN/Inf in backward's root is an error */
  int no_rnn_helper;    /* 1: fused cells never share work with a helper thread (a test
                         * compares helper on and off at one BLAS thread count) */
  int rnn_wave;         /* stacks of fused cells as a layer wavefront (rnn_stack.c): 0 when
                         * it pays (more than one BLAS thread), 1 always (tests), -1 never */
  int rnn_split;        /* stacks of cells whose rows are apart split the batch between two
                         * threads (rnn_split.c): 0 for one layer with a small W_h (more than
                         * one BLAS thread), 1 always (tests), -1 never */
  int rnn_wave_rows;    /* 0: the wavefront's hand-over rows follow the threads' speeds; n > 0:
                         * the caller's thread computes n - 1 of each step's (tests) */
  int rnn_proj_whole;   /* 1: a fused cell run layer by layer projects x W_x + b for every step
                         * before the first, never ahead of the steps (runtime/rnn_common.c;
                         * tests compare the two) */
  rc_rng rng;
  char err[RC_ERR_MAX]; /* message of the last failure */
  /* Set by a host language before it runs backward, so that ops defined in that language
   * can reach their interpreter (the Lua bindings store the calling lua_State). */
  void *host;
  /* Host handles that autograd let go of and the host must release when it next can
   * (the Lua bindings: registry references of Lua-defined ops). */
  int *deferred;
  size_t n_deferred, cap_deferred;
  /* Embedding (include/recur.h). Bytes the host counts against limit_bytes besides tensor
   * storage (the Lua heap), so that one limit covers both. */
  size_t host_bytes;
  /* Tensor and storage headers (not in live_bytes, which counts data); counted by the limit. */
  size_t meta_bytes;
  /* The runtime's own heap memory besides tensors (rc_mem_alloc): autograd nodes and edges,
   * RNN sequence records, optimizer tables, scratch buffers; counted by the limit. */
  size_t aux_bytes;
  /* Work budget: ops charge units (rc_charge) to work_used; past work_limit (0 = none) they
   * fail with "instruction budget exceeded". The host resets work_used per call. */
  uint64_t work_used;
  uint64_t work_limit;
  /* 1: file system access is refused (rc_check_file_access), as in a sandboxed host. */
  int files_denied;
  /* While files are denied, the one path the host itself asked to read (a checkpoint it
   * loads for the script); reading it is allowed, writing never. */
  const char *file_read_exception;
  /* Freed large tensor blocks kept for reuse (runtime/tensor.c): glibc serves a block
   * above its mmap threshold (up to 32 MB) with fresh pages and unmaps it on free, so every
   * large tensor paid its page faults again. Not counted as live or used bytes; only kept
   * while no memory limit is set. */
  void *cache_block[RC_CACHE_SLOTS];
  size_t cache_size[RC_CACHE_SLOTS];
  uint64_t cache_stamp[RC_CACHE_SLOTS]; /* when each was put: the oldest goes first */
  uint64_t cache_clock;
  size_t cache_bytes; /* the large blocks' and the small ones' below */
  /* Freed smaller tensor blocks (1 KB up to the large ones), by size class, each list linked
   * through the blocks' first bytes (runtime/tensor.c): a graph freed by the collector at once
   * left glibc's heap a free top that it trimmed, and the next step faulted the pages in again
   * (a Lua-scripted LSTM step spent 30% of its time in brk and page faults). */
  void *small_head[RC_SMALL_CLASSES];
  /* The trace of matrix products (runtime/gemm.c, replayed by runtime/gemm_replay.c for
   * bench/charrnn.lua's GEMM floor): while gemm_tracing, each product appends an rc_gemm_call to
   * gemm_calls (malloc'ed); gemm_lost is set when one could not be stored. */
  int gemm_tracing, gemm_lost;
  void *gemm_calls;
  size_t gemm_n, gemm_cap;
  /* recur's matrix product's packing buffers (runtime/gemm.c), kept for the next product: a
   * block malloc'ed and freed per product would raise glibc's mmap threshold, after which
   * freed tensors would then stay in the heap, and pays its page faults every time. Two: the
   * layer wavefront (runtime/rnn_stack.c) runs two layers' products at once, one on each
   * thread (with one buffer, the second product's fresh block cost a 2-layer LSTM H = 128
   * step 65-170 page faults, ~1 ms on the bench's VM). Not counted, like cache_block. */
  void *gemm_buf[2];
  size_t gemm_buf_bytes[2];
  /* Held while one thread uses gemm_buf[i], and while one appends to the trace. */
  atomic_int gemm_buf_busy[2], gemm_trace_busy;
  /* The helper thread that takes half of every split job (runtime/team.c), created by
   * rc_ctx_team on first use, joined when the context goes. */
  struct rc_team *team;
  int team_failed; /* it could not start: jobs run whole */
  /* While recur._profile runs (runtime/profile.h): backward's nodes and the layer wavefront
   * add their times here; NULL otherwise. */
  struct rc_profile *profile;
} rc_ctx;

rc_ctx *rc_ctx_new(void);
/* c's helper thread, started on first use; NULL when it cannot start (jobs then run whole). */
struct rc_team *rc_ctx_team(rc_ctx *c);
/* fn(arg, lo, hi) over rows [0, n) that cost `work` element operations in all: the second half
 * on c's helper when BLAS may use more than one thread, the work is worth the hand-over and
 * the helper is usable, else all on the caller. The rows must touch disjoint memory, so that
 * the result does not depend on the split. */
void rc_ctx_rows(rc_ctx *c, void (*fn)(void *arg, int64_t lo, int64_t hi), void *arg, int64_t n,
                 int64_t work);
void rc_ctx_retain(rc_ctx *c);
void rc_ctx_release(rc_ctx *c);

/* Records a formatted error message in c->err; always returns -1 so callers can
 * write `return rc_error(c, ...)`. */
int rc_error(rc_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, for functions that return a pointer. */
void *rc_error_null(rc_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Puts "fn: " in front of the message already in c->err (e.g. an allocator's); returns -1. */
int rc_error_prefix(rc_ctx *c, const char *fn);

/* Queues a host handle for release (see deferred); -1 on allocation failure. */
int rc_defer_release(rc_ctx *c, int handle);

/* Accounting alone (for allocators that place headers next to the data): -1 with a message
 * when the memory limit would be exceeded. */
int rc_account_alloc(rc_ctx *c, size_t bytes);
void rc_account_free(rc_ctx *c, size_t bytes);
/* The limit check alone: -1 with a message when `bytes` more would pass it. */
int rc_check_limit(rc_ctx *c, size_t bytes);

/* Charges `units` of work (about one per 16 floats touched, one per 64 multiply-adds) to the
 * budget; -1 with "fn: instruction budget exceeded" once past c->work_limit. */
int rc_budget_error(rc_ctx *c, const char *fn);
static inline int rc_charge(rc_ctx *c, const char *fn, uint64_t units) {
  c->work_used += units;
  return (c->work_limit && c->work_used > c->work_limit) ? rc_budget_error(c, fn) : 0;
}

/* Charges the work of touching n floats (one unit per 16): in-place ops, optimizer updates,
 * reductions; anything that reads or writes n elements without allocating them. */
static inline int rc_charge_elems(rc_ctx *c, const char *fn, int64_t n) {
  return rc_charge(c, fn, n > 0 ? (uint64_t)n / 16 + 1 : 1);
}

/* Work units of `macs` multiply-adds (one per 64), saturating. */
static inline uint64_t rc_mac_units(double macs) {
  return macs > 6.4e19 ? (uint64_t)1e18 : (uint64_t)(macs / 64.0) + 1;
}

/* Every runtime function that opens a file calls this first: -1 with a message when the
 * host has denied file access (sandbox). */
int rc_check_file_access(rc_ctx *c, const char *fn, const char *path); /* reading */
int rc_check_file_write(rc_ctx *c, const char *fn, const char *path);

/* Heap memory for the runtime's own structures (not tensor storage): checked against the
 * memory limit like tensor storage and counted in c->aux_bytes while it lives. NULL with a
 * message in c->err ("memory limit exceeded (...)" or "out of memory ...") on failure.
 * Blocks carry their size, so rc_mem_free needs none; they must be freed with the ctx they
 * came from (and only with rc_mem_free). Aligned like malloc's. */
void *rc_mem_alloc(rc_ctx *c, size_t bytes);
void *rc_mem_calloc(rc_ctx *c, size_t n, size_t size);
/* Like realloc: on failure p is untouched (and still owned by the caller). */
void *rc_mem_realloc(rc_ctx *c, void *p, size_t bytes);
void rc_mem_free(rc_ctx *c, void *p);
/* Bytes counted against the limit now: tensor data and headers, aux_bytes and host_bytes. */
size_t rc_used_bytes(const rc_ctx *c);

/* Aligned, accounted allocation for tensor storage (64-byte alignment). */
void *rc_alloc_bytes(rc_ctx *c, size_t bytes);
void rc_free_bytes(rc_ctx *c, void *p, size_t bytes);

#endif
