/* A host's runtime (the struct behind include/recur.h's opaque recur_runtime), shared by the
 * host API (embed.c) and the guards of the runtime's scripts (sandbox.c), with the entry
 * points of sandbox.c that embed.c calls. Private to bindings/: hosts see only recur.h. */
#ifndef RECUR_HOST_RUNTIME_H
#define RECUR_HOST_RUNTIME_H

#include "../include/recur.h"
#include "bind.h"

#define HOOK_COUNT 1000 /* instructions between budget checks */

struct recur_runtime {
  lua_State *L;
  rc_ctx *ctx;       /* the state's runtime context (one reference held here) */
  size_t lua_bytes;  /* Lua heap in use */
  size_t lent_bytes; /* host arrays lent to the running call (counted by the limit) */
  size_t limit;      /* memory limit, 0 = none */
  int limit_hit;     /* an allocation was refused by the limit during this call */
  uint64_t budget;   /* per call, 0 = none */
  int hook_count;
  int budget_hit;            /* the budget or the time limit is spent: the hook raises at once */
  int time_hit;              /* it was the time limit */
  uint64_t time_limit;       /* ms per call, 0 = none */
  uint64_t deadline;         /* of the running call, in now_ms() time; 0 = none */
  lua_State *hook_raised_in; /* the thread the hook last raised in (this call) */
  int dead;                  /* registry ref: weak set of coroutines killed by the hook */
  int sandbox;
  int threads;
  int busy;
  int broken;
  int refs;       /* registry ref: the table of host references */
  int anchors;    /* registry ref: lent tensor userdata of the running call */
  int memmsg;     /* registry ref: the string "memory limit exceeded" */
  int budgetmsg;  /* registry ref: the string "instruction budget exceeded" */
  int timemsg;    /* registry ref: the string "time limit exceeded" */
  int loader;     /* registry ref: the host's checkpoint loader (made on first use) */
  int loader_env; /* registry ref: its private environment, kept when the runtime was made */
  int strmeta;    /* registry ref: strings' metatable during the host's checkpoint load */
  char *module_path;
  void (*output)(void *ud, const char *text, size_t len); /* print's, NULL: stderr */
  void *output_ud;
  size_t output_limit; /* bytes per call, 0 = no cap */
  size_t output_used;  /* this call */
  int nlent;
  struct {
    rb_tensor *u; /* the userdata the script got (anchored until the next call) */
    rc_tensor *t; /* our own reference */
  } lent[RECUR_MAX_ARGS];
  char *err;
};

/* The runtime a Lua state belongs to (the allocator's user data). */
static inline recur_runtime *runtime_of(lua_State *L) {
  void *ud = NULL;
  lua_getallocf(L, &ud);
  return ud;
}

/* bindings/sandbox.c */

/* Starts a call's budget: the work counter, the deadline, the output cap, the count hook. */
void rb_budget_start(recur_runtime *rt);
/* Charges an allocation of Lua's heap to the budget (from the allocator, which cannot raise). */
void rb_budget_charge_alloc(recur_runtime *rt, size_t bytes);
/* Guards a new runtime's scripts, recur's table at recur_idx: the sandbox when rt->sandbox;
 * in every runtime pcall, xpcall and coroutines that report the limits, print to the host's
 * output, and the private environment of the host's checkpoint loader. */
void rb_guard_open(lua_State *L, recur_runtime *rt, int recur_idx);
/* Sets rt->loader, compiling the private modules on the host's first load; 0 if this build
 * has no Lua checkpoint loader. */
int rb_checkpoint_loader(lua_State *L, recur_runtime *rt);

#endif
