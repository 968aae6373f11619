/* The embedding API (include/recur.h): a runtime is one Lua state with recur loaded, a
 * memory limit (a lua_Alloc that counts Lua's heap and tensor storage together), an
 * instruction budget (a count hook plus the runtime's work counter), and a sandbox.
 *
 * Everything that touches Lua runs under lua_pcall: a Lua error never reaches the host as a
 * longjmp, and the state's panic function is never reached. The API functions that only read
 * values off the stack use calls that cannot raise. */
#include <cblas.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../include/recur.h"
#include "bind.h"

int luaopen_recur(lua_State *L);
/* bindings/sandbox_str.c: string.find/match/gmatch/gsub that charge the work budget. */
void rb_sandbox_strings(lua_State *L, int string_table);
/* bindings/sandbox_lib.c: the rest of the standard library, charging what it touches. */
void rb_sandbox_lib(lua_State *L);
/* bindings/module.c: pushes the compiled chunk of an embedded Lua module. */
int rb_load_embedded(lua_State *L, const char *name);

#define HOOK_COUNT 1000           /* instructions between budget checks */
#define ERR_MAX ((size_t)1 << 16) /* longest error message kept */

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

/* ---- memory ---- */

/* Everything the runtime holds besides the Lua heap: tensor data and headers, autograd nodes
 * and the other structures of rc_mem_alloc (recur_stats.tensor_bytes). */
static size_t tensor_bytes(const recur_runtime *rt) {
  return rt->ctx ? rt->ctx->live_bytes + rt->ctx->meta_bytes + rt->ctx->aux_bytes : 0;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* The budget sees the bytes Lua allocates (one unit per 32, a growing block's whole new size,
 * which it copies): a string made by concatenation or string.rep, a table filled by
 * table.pack, a chunk's code. The allocator cannot raise; once the budget is spent it makes
 * the main thread's count hook fire at its next instruction, and the C functions of the
 * sandbox check on their own (a coroutine's hook fires within HOOK_COUNT instructions). */
static void charge_alloc(recur_runtime *rt, size_t bytes) {
  rc_ctx *c = rt->ctx;
  c->work_used += bytes / 32 + 1;
  if (c->work_limit && c->work_used > c->work_limit && !rt->budget_hit)
    lua_sethook(rt->L, budget_hook, LUA_MASKCOUNT, 1);
}

/* Lua's allocator: refuses growth past the limit (tensor storage counts too). Lua then runs an
 * emergency collection, retries, and raises "not enough memory", which the pcall wrappers and
 * the host report as "memory limit exceeded". */
static void *rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  recur_runtime *rt = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    rt->lua_bytes -= old;
    if (rt->ctx) rt->ctx->host_bytes = rt->lua_bytes + rt->lent_bytes;
    return NULL;
  }
  if (nsize > old && rt->limit) {
    size_t used = rt->lua_bytes + rt->lent_bytes + tensor_bytes(rt);
    if (used >= rt->limit || nsize - old > rt->limit - used) {
      rt->limit_hit = 1;
      /* Lua runs a full collection before it gives up: a walk of the heap, charged like
       * collectgarbage() (one unit per 64 bytes here, twice the allocator's rate) */
      if (rt->ctx) charge_alloc(rt, rt->lua_bytes / 2);
      return NULL;
    }
  }
  void *p = realloc(ptr, nsize);
  if (!p) return nsize <= old ? ptr : NULL; /* Lua assumes shrinking never fails */
  rt->lua_bytes = rt->lua_bytes - old + nsize;
  if (rt->ctx) {
    rt->ctx->host_bytes = rt->lua_bytes + rt->lent_bytes;
    if (nsize > old) charge_alloc(rt, nsize);
  }
  return p;
}

static recur_runtime *runtime_of(lua_State *L) {
  void *ud = NULL;
  lua_getallocf(L, &ud);
  return ud;
}

/* ---- instruction budget ---- */

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Count hook (inherited by coroutines): adds the instructions since the last check to the
 * work counter that tensor ops charge too, and checks the call's deadline. Once the budget or
 * the time is spent it fires at every instruction, so a script that catches the error with
 * pcall cannot run on. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  recur_runtime *rt = runtime_of(L);
  rc_ctx *c = rt->ctx;
  int count = lua_gethookcount(L);
  c->work_used += (uint64_t)count;
  if (!rt->budget_hit && rt->deadline && now_ms() >= rt->deadline) rt->time_hit = 1;
  if (rt->time_hit || (c->work_limit && c->work_used > c->work_limit)) {
    rt->budget_hit = 1;
    rt->hook_raised_in = L;
    if (count != 1) lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
    /* preallocated: cannot fail */
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->time_hit ? rt->timemsg : rt->budgetmsg);
    lua_error(L);
  }
  if (count != rt->hook_count) lua_sethook(L, budget_hook, LUA_MASKCOUNT, rt->hook_count);
}

static void reset_budget(recur_runtime *rt) {
  rt->budget_hit = 0;
  rt->time_hit = 0;
  rt->hook_raised_in = NULL;
  rt->output_used = 0;
  rt->deadline = rt->time_limit ? now_ms() + rt->time_limit : 0;
  rt->limit_hit = 0;
  rt->ctx->work_used = 0;
  rt->ctx->work_limit = rt->budget;
  /* Installed even without a budget: coroutines copy the hook when they are made, so one made
   * now must still count if the host sets a budget later. */
  lua_sethook(rt->L, budget_hook, LUA_MASKCOUNT, rt->hook_count);
}

/* ---- errors ---- */

static void set_error_str(recur_runtime *rt, const char *msg, size_t len) {
  if (len > ERR_MAX) len = ERR_MAX;
  char *e = malloc(len + 1);
  if (!e) return; /* keep the previous message rather than fail */
  memcpy(e, msg, len);
  e[len] = 0;
  free(rt->err);
  rt->err = e;
}

static int fail(recur_runtime *rt, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(recur_runtime *rt, int status, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (rt) set_error_str(rt, buf, strlen(buf));
  return status;
}

/* Message handler: the message with a traceback. */
static int msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* ---- protected jobs ---- */

typedef struct job job;
struct job {
  recur_runtime *rt;
  int (*fn)(lua_State *L, job *j);
  int status; /* set by a job before it raises an error of a known kind */
  const char *name, *src, *chunk;
  size_t len;
  int nargs;
  const recur_value *args;
  recur_ref ref;
  recur_ref *out_ref;
  const recur_value *value;
  float *buf;
  size_t count;
  int copy;
  int flags; /* recur_load_checkpoint_flags */
  int *ndim;
  int64_t *shape;
};

static int job_entry(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  lua_remove(L, 1);
  return j->fn(L, j);
}

/* Raises an error of a known kind from inside a job. */
static int job_error(lua_State *L, job *j, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int job_error(lua_State *L, job *j, int status, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  j->status = status;
  lua_pushstring(L, buf);
  return lua_error(L);
}

static int classify(recur_runtime *rt, job *j, int st, const char *msg) {
  rc_ctx *c = rt->ctx;
  if (rt->budget_hit || (c->work_limit && c->work_used > c->work_limit)) return RECUR_ERR_BUDGET;
  if (st == LUA_ERRMEM || (rt->limit_hit && st == LUA_ERRERR)) return RECUR_ERR_MEMORY;
  if (j->status) return j->status;
  if (msg && strstr(msg, "memory limit exceeded")) return RECUR_ERR_MEMORY;
  return RECUR_ERR_SCRIPT;
}

/* Records the error at the top of the stack. */
static int record_error(recur_runtime *rt, job *j, int st) {
  lua_State *L = rt->L;
  size_t len = 0;
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  int code = classify(rt, j, st, msg);
  if (code == RECUR_ERR_MEMORY && (st == LUA_ERRMEM || st == LUA_ERRERR)) {
    if (rt->limit_hit)
      fail(rt, code,
           "memory limit exceeded (limit %zu bytes: Lua heap %zu, tensors and runtime %zu)",
           rt->limit, rt->lua_bytes, tensor_bytes(rt));
    else
      fail(rt, code, "out of memory");
  } else if (code == RECUR_ERR_BUDGET && rt->time_hit) {
    fail(rt, code, "time limit exceeded (%llu ms per call)", (unsigned long long)rt->time_limit);
  } else if (code == RECUR_ERR_BUDGET && (!msg || !strstr(msg, "budget"))) {
    fail(rt, code, "instruction budget exceeded (%llu per call)%s%s",
         (unsigned long long)rt->budget, msg ? ": " : "", msg ? msg : "");
  } else if (msg) {
    set_error_str(rt, msg, len);
  } else {
    fail(rt, code, "error (status %d)", st);
  }
  return code;
}

/* A lent array counts against the memory limit while it is lent: if the script keeps it, the
 * runtime must copy it when the call ends, and that copy must fit. */
static void set_lent_bytes(recur_runtime *rt, size_t bytes) {
  rt->lent_bytes = bytes;
  rt->ctx->host_bytes = rt->lua_bytes + bytes;
}

static int lend_bytes(recur_runtime *rt, size_t bytes) {
  if (rt->limit) {
    size_t used = rt->lua_bytes + rt->lent_bytes + tensor_bytes(rt);
    if (used >= rt->limit || bytes > rt->limit - used) return -1;
  }
  set_lent_bytes(rt, rt->lent_bytes + bytes);
  return 0;
}

/* Ends the loan of host arrays: closes the userdata the script got and, if anything else
 * still uses the memory (a view, a saved tensor, a result), copies it into the runtime. */
static void end_lent(recur_runtime *rt) {
  for (int k = 0; k < rt->nlent; k++) {
    rb_tensor *u = rt->lent[k].u;
    rc_tensor *t = rt->lent[k].t;
    if (u->t == t) {
      u->t = NULL;
      rc_release(t);
    }
    if ((t->refcount > 1 || t->storage->refcount > 1) && rc_unborrow(t->storage))
      rt->broken = 1; /* cannot copy, cannot keep pointing at host memory */
    rc_release(t);
  }
  rt->nlent = 0;
  set_lent_bytes(rt, 0); /* copies took the place their loans held */
}

/* Runs a job that produces results (run, call, load): previous results are dropped, the budget
 * restarts, and the job's results are left at stack slots 1..n. */
static int run_job(recur_runtime *rt, job *j, int *nresults) {
  if (nresults) *nresults = 0;
  if (rt->broken) return fail(rt, RECUR_ERR_BROKEN, "the runtime is broken; free it");
  if (rt->busy) return fail(rt, RECUR_ERR_BUSY, "the runtime is already running a call");
  lua_State *L = rt->L;
  rt->busy = 1;
  lua_settop(L, 0);
  reset_budget(rt);
  if (rt->threads > 0 && openblas_get_num_threads() != rt->threads)
    openblas_set_num_threads(rt->threads);
  lua_pushcfunction(L, msgh);
  lua_pushcfunction(L, job_entry);
  lua_pushlightuserdata(L, j);
  int st = lua_pcall(L, 1, LUA_MULTRET, 1);
  lua_remove(L, 1);
  end_lent(rt);
  int code = RECUR_OK;
  if (st != LUA_OK) {
    code = record_error(rt, j, st);
    lua_settop(L, 0);
  } else if (nresults) {
    *nresults = lua_gettop(L);
  }
  if (lua_checkstack(L, 1)) rb_release_pending(L);
  if (rt->broken && code == RECUR_OK)
    code = fail(rt, RECUR_ERR_BROKEN, "out of memory copying a lent array the script kept");
  rt->busy = 0;
  return code;
}

/* Runs a job above the results, leaving them as they are; value_index (if not 0) is passed to
 * the job as its argument 1. */
static int small_job(recur_runtime *rt, job *j, int value_index) {
  if (rt->broken) return fail(rt, RECUR_ERR_BROKEN, "the runtime is broken; free it");
  if (rt->busy) return fail(rt, RECUR_ERR_BUSY, "the runtime is already running a call");
  lua_State *L = rt->L;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 5)) return fail(rt, RECUR_ERR_MEMORY, "Lua stack overflow");
  rt->busy = 1;
  uint64_t used = rt->ctx->work_used; /* keep the last call's count for recur_get_stats */
  reset_budget(rt);
  lua_pushcfunction(L, msgh);
  lua_pushcfunction(L, job_entry);
  lua_pushlightuserdata(L, j);
  if (value_index) lua_pushvalue(L, value_index);
  int st = lua_pcall(L, value_index ? 2 : 1, 0, top + 1);
  int code = st == LUA_OK ? RECUR_OK : record_error(rt, j, st);
  lua_settop(L, top);
  rt->ctx->work_used = used;
  rt->busy = 0;
  return code;
}

/* ---- values ---- */

/* Pushes the value at a dotted global name ("model.step"); RECUR_ERR_NOT_FOUND if a part
 * is missing. */
static void push_path(lua_State *L, job *j, const char *name) {
  if (!name || !*name) job_error(L, j, RECUR_ERR_ARGUMENT, "empty name");
  lua_pushglobaltable(L);
  const char *p = name;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (n == 0) job_error(L, j, RECUR_ERR_ARGUMENT, "bad name '%s'", name);
    int t = lua_type(L, -1);
    if (t != LUA_TTABLE && t != LUA_TUSERDATA)
      job_error(L, j, RECUR_ERR_NOT_FOUND, "'%s' not found ('%.*s' is %s)", name,
                (int)(p - name) - 1, name, lua_typename(L, t));
    lua_pushlstring(L, p, n);
    lua_gettable(L, -2);
    lua_remove(L, -2);
    if (!dot) break;
    p = dot + 1;
  }
  if (lua_isnil(L, -1)) job_error(L, j, RECUR_ERR_NOT_FOUND, "'%s' not found", name);
}

static void push_ref(lua_State *L, job *j, recur_ref ref) {
  recur_runtime *rt = j->rt;
  if (ref.id <= 0) job_error(L, j, RECUR_ERR_ARGUMENT, "invalid reference %d", ref.id);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->refs);
  int t = lua_rawgeti(L, -1, ref.id);
  lua_remove(L, -2);
  /* free slots of luaL_ref hold integers (the free list): never a live reference's value */
  if (t == LUA_TNIL || t == LUA_TNUMBER)
    job_error(L, j, RECUR_ERR_ARGUMENT, "invalid or freed reference %d", ref.id);
}

static int64_t checked_numel(lua_State *L, job *j, int k, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > RECUR_MAX_DIM)
    job_error(L, j, RECUR_ERR_ARGUMENT, "argument %d: ndim %d is out of range (0 to %d)", k, ndim,
              RECUR_MAX_DIM);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      job_error(L, j, RECUR_ERR_ARGUMENT, "argument %d: size %lld of dimension %d is negative", k,
                (long long)shape[i], i + 1);
    if (shape[i] > RC_MAX_NUMEL || (shape[i] > 0 && n > RC_MAX_NUMEL / shape[i]))
      job_error(L, j, RECUR_ERR_ARGUMENT, "argument %d: shape is too large", k);
    n *= shape[i];
  }
  return n;
}

/* Pushes argument k (1-based, for messages). Lent tensors are anchored in the table at
 * `anchors` so that their userdata outlive the call. */
static void push_value(lua_State *L, job *j, const recur_value *v, int k, int anchors) {
  recur_runtime *rt = j->rt;
  switch (v->type) {
  case RECUR_NIL:
    lua_pushnil(L);
    break;
  case RECUR_BOOLEAN:
    lua_pushboolean(L, v->as.boolean);
    break;
  case RECUR_NUMBER:
    lua_pushnumber(L, v->as.number);
    break;
  case RECUR_INTEGER:
    lua_pushinteger(L, (lua_Integer)v->as.integer);
    break;
  case RECUR_STRING:
    if (!v->as.string.data && v->as.string.len)
      job_error(L, j, RECUR_ERR_ARGUMENT, "argument %d: string data is NULL", k);
    lua_pushlstring(L, v->as.string.data ? v->as.string.data : "", v->as.string.len);
    break;
  case RECUR_REF:
    push_ref(L, j, v->as.ref);
    break;
  case RECUR_TENSOR: {
    int ndim = v->as.tensor.ndim;
    int64_t n = checked_numel(L, j, k, ndim, v->as.tensor.shape);
    float *data = v->as.tensor.data;
    if (n > 0 && !data) job_error(L, j, RECUR_ERR_ARGUMENT, "argument %d: tensor data is NULL", k);
    if ((v->as.tensor.flags & RECUR_COPY) || !anchors) {
      rb_push(L, rc_from_data(rt->ctx, ndim, v->as.tensor.shape, data));
      break;
    }
    if (rt->nlent >= RECUR_MAX_ARGS)
      job_error(L, j, RECUR_ERR_ARGUMENT, "more than %d lent tensors", RECUR_MAX_ARGS);
    size_t bytes = (size_t)n * sizeof(float);
    if (lend_bytes(rt, bytes) && (lua_gc(L, LUA_GCCOLLECT), lend_bytes(rt, bytes)))
      job_error(L, j, RECUR_ERR_MEMORY,
                "argument %d: memory limit exceeded by the lent array (%zu bytes; limit %zu, "
                "%zu in use): a lent array counts while lent, as the runtime copies it if the "
                "script keeps it",
                k, bytes, rt->limit, rt->lua_bytes + rt->lent_bytes + tensor_bytes(rt));
    rc_tensor *t = rc_borrow(rt->ctx, ndim, v->as.tensor.shape, data);
    rb_push(L, t); /* owns t, or released it and raised */
    lua_pushvalue(L, -1);
    lua_rawseti(L, anchors, rt->nlent + 1); /* preallocated array slot: no allocation */
    rc_retain(t);
    rt->lent[rt->nlent].u = lua_touserdata(L, -1);
    rt->lent[rt->nlent].t = t;
    rt->nlent++;
    break;
  }
  default:
    job_error(L, j, RECUR_ERR_ARGUMENT, "argument %d: unknown type %d", k, v->type);
  }
}

/* ---- jobs ---- */

static int job_open(lua_State *L, job *j);

static int job_run(lua_State *L, job *j) {
  recur_runtime *rt = j->rt;
  const char *mode = rt->sandbox ? "t" : "bt";
  int st = j->src ? luaL_loadbufferx(L, j->src, j->len, j->chunk, mode)
                  : luaL_loadfilex(L, j->chunk, mode);
  if (st != LUA_OK) {
    j->status = st == LUA_ERRSYNTAX ? RECUR_ERR_SYNTAX
                : st == LUA_ERRFILE ? RECUR_ERR_FILE
                : st == LUA_ERRMEM  ? RECUR_ERR_MEMORY
                                    : RECUR_ERR_SCRIPT;
    return lua_error(L);
  }
  lua_call(L, 0, LUA_MULTRET);
  return lua_gettop(L);
}

/* Calls the function at the top (below it: the anchors table at index 1) with the job's
 * arguments; results that are lent tensors become tensors of their own. */
static int call_with_args(lua_State *L, job *j) {
  recur_runtime *rt = j->rt;
  int fn = lua_gettop(L);
  if (!lua_isfunction(L, fn) && !luaL_getmetafield(L, fn, "__call"))
    return job_error(L, j, RECUR_ERR_TYPE, "'%s' is a %s, not a function",
                     j->name ? j->name : "reference", luaL_typename(L, fn));
  lua_settop(L, fn);
  luaL_checkstack(L, j->nargs + 8, "too many arguments");
  for (int k = 0; k < j->nargs; k++) push_value(L, j, &j->args[k], k + 1, 1);
  lua_call(L, j->nargs, LUA_MULTRET);
  int top = lua_gettop(L);
  for (int i = 2; i <= top; i++) {
    void *p = lua_touserdata(L, i);
    for (int k = 0; p && k < rt->nlent; k++) {
      if (p == rt->lent[k].u && rt->lent[k].u->t) {
        rc_retain(rt->lent[k].t);
        rb_push(L, rt->lent[k].t);
        lua_replace(L, i);
        break;
      }
    }
  }
  lua_remove(L, 1);
  return top - 1;
}

static int job_call(lua_State *L, job *j) {
  if (j->nargs < 0 || j->nargs > RECUR_MAX_ARGS)
    return job_error(L, j, RECUR_ERR_ARGUMENT, "nargs %d is out of range (0 to %d)", j->nargs,
                     RECUR_MAX_ARGS);
  if (j->nargs > 0 && !j->args) return job_error(L, j, RECUR_ERR_ARGUMENT, "args is NULL");
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->rt->anchors);
  if (j->name)
    push_path(L, j, j->name);
  else
    push_ref(L, j, j->ref);
  return call_with_args(L, j);
}

static int make_loader(lua_State *L, recur_runtime *rt);

static int job_load(lua_State *L, job *j) {
  recur_runtime *rt = j->rt;
  if (!make_loader(L, rt))
    return job_error(L, j, RECUR_ERR_UNSUPPORTED,
                     "recur_load_checkpoint: this build has no checkpoint loader");
  /* Stack use stays far below LUA_MINSTACK: restoring the metatable below cannot fail. */
  lua_pushliteral(L, "");                      /* 1: a string, to reach strings' metatable */
  if (!lua_getmetatable(L, 1)) lua_pushnil(L); /* 2: the one scripts see */
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->loader);
  lua_pushstring(L, j->chunk);
  int nargs = 1;
  if (j->flags & RECUR_LOAD_NO_OPTIMIZER) {
    lua_createtable(L, 0, 1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "optimizer");
    nargs = 2;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->strmeta);
  lua_setmetatable(L, 1);
  /* The host asked for this file: the loader may read exactly it (never write), in the
   * sandbox as elsewhere. */
  rt->ctx->file_read_exception = j->chunk;
  int rc = lua_pcall(L, nargs, 1, 0);
  rt->ctx->file_read_exception = NULL;
  lua_pushvalue(L, 2);
  lua_setmetatable(L, 1);
  if (rc != LUA_OK) return lua_error(L);
  return 1;
}

/* References hold objects; numbers are read as values (and would look like luaL_ref's free
 * list entries). */
static void check_refable(lua_State *L, job *j, int idx) {
  if (lua_type(L, idx) == LUA_TNUMBER || lua_isnil(L, idx))
    job_error(L, j, RECUR_ERR_TYPE, "a reference needs an object, not a %s", luaL_typename(L, idx));
}

static int job_ref_global(lua_State *L, job *j) {
  push_path(L, j, j->name);
  check_refable(L, j, -1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->rt->refs);
  lua_insert(L, -2);
  j->out_ref->id = luaL_ref(L, -2);
  return 0;
}

static int job_result_ref(lua_State *L, job *j) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->rt->refs);
  lua_insert(L, 1);
  check_refable(L, j, 2);
  j->out_ref->id = luaL_ref(L, 1);
  return 0;
}

static int job_ref_free(lua_State *L, job *j) {
  push_ref(L, j, j->ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->rt->refs);
  luaL_unref(L, -1, j->ref.id);
  return 0;
}

/* Arg 1: the result value. */
static int job_result_tensor(lua_State *L, job *j) {
  rc_tensor *t = rb_test(L, 1);
  if (!t) {
    if (rb_is_tensor(L, 1)) return job_error(L, j, RECUR_ERR_TYPE, "result is a closed tensor");
    return job_error(L, j, RECUR_ERR_TYPE, "result is a %s, not a tensor", luaL_typename(L, 1));
  }
  if (j->ndim) *j->ndim = t->ndim;
  if (j->shape)
    for (int i = 0; i < t->ndim; i++) j->shape[i] = t->size[i];
  if (j->copy) {
    int64_t n = rc_numel(t);
    if ((uint64_t)n > (uint64_t)j->count)
      return job_error(L, j, RECUR_ERR_ARGUMENT,
                       "result tensor has %lld elements, the buffer holds %zu", (long long)n,
                       j->count);
    if (n > 0) {
      if (!j->buf) return job_error(L, j, RECUR_ERR_ARGUMENT, "buffer is NULL");
      rc_read_floats(t, j->buf);
    }
  }
  return 0;
}

static int job_set_global(lua_State *L, job *j) {
  const char *name = j->name;
  if (!name || !*name) return job_error(L, j, RECUR_ERR_ARGUMENT, "empty name");
  const char *last = strrchr(name, '.');
  if (last) {
    lua_pushlstring(L, name, (size_t)(last - name));
    const char *parent = lua_tostring(L, -1);
    push_path(L, j, parent);
    last++;
  } else {
    lua_pushglobaltable(L);
    last = name;
  }
  if (!*last) return job_error(L, j, RECUR_ERR_ARGUMENT, "bad name '%s'", name);
  push_value(L, j, j->value, 1, 0);
  lua_setfield(L, -2, last);
  return 0;
}

static int job_add_module(lua_State *L, job *j) {
  char chunk[256];
  snprintf(chunk, sizeof chunk, "=%s", j->name);
  int st = luaL_loadbufferx(L, j->src, j->len, chunk, "t");
  if (st != LUA_OK) {
    j->status = st == LUA_ERRSYNTAX ? RECUR_ERR_SYNTAX : RECUR_ERR_MEMORY;
    return lua_error(L);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_insert(L, -2);
  lua_setfield(L, -2, j->name);
  return 0;
}

static int job_collect(lua_State *L, job *j) {
  (void)j;
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

/* ---- the sandbox ---- */

/* load(chunk [, chunkname [, mode [, env]]]) with mode forced to text. */
static int sb_load(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (n >= 2)
    lua_pushvalue(L, 2);
  else
    lua_pushnil(L);
  lua_pushliteral(L, "t");
  int na = 3;
  if (n >= 4) {
    lua_pushvalue(L, 4);
    na = 4;
  }
  lua_call(L, na, LUA_MULTRET);
  return lua_gettop(L) - n;
}

/* setmetatable refusing finalizers: they run with hooks off, outside the budget. */
static int sb_setmetatable(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: __gc metamethods are not allowed in the sandbox");
    lua_pop(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sb_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  static const char *const ok[] = {"collect", "count", "step", "isrunning", NULL};
  for (int i = 0; ok[i]; i++) {
    if (strcmp(opt, ok[i]) == 0) {
      lua_pushvalue(L, lua_upvalueindex(1));
      lua_insert(L, 1);
      lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
      return lua_gettop(L);
    }
  }
  return luaL_error(L, "collectgarbage: option '%s' is not available in the sandbox", opt);
}

/* Charges n units to the budget from a Lua library function, raising when it is spent. */
static void sb_charge(lua_State *L, const char *fn, lua_Integer n) {
  rc_ctx *c = runtime_of(L)->ctx;
  if (n > 0 && rc_charge(c, fn, (uint64_t)n / 16 + 1)) luaL_error(L, "%s", c->err);
}

/* string.rep(s, n [, sep]): the result of an empty s and sep is "" without looping n times. */
static int sb_rep(lua_State *L) {
  size_t l, lsep;
  luaL_checklstring(L, 1, &l);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &lsep);
  if (l + lsep == 0 || n <= 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* table.move/insert/remove loop in C over ranges a script chooses (t[2^40] = 1 makes #t
 * 2^40): they charge the elements they move to the budget first. */
static int sb_move(lua_State *L) {
  lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
  if (e >= f) sb_charge(L, "table.move", e - f < LUA_MAXINTEGER ? e - f + 1 : e - f);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sb_shift(lua_State *L, const char *fn) {
  if (lua_gettop(L) >= (strcmp(fn, "table.insert") == 0 ? 3 : 2)) {
    lua_Integer n = luaL_len(L, 1);
    lua_Integer pos = luaL_checkinteger(L, 2);
    if (n > pos) sb_charge(L, fn, n - pos);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}
static int sb_insert(lua_State *L) {
  return sb_shift(L, "table.insert");
}
static int sb_remove(lua_State *L) {
  return sb_shift(L, "table.remove");
}

/* ---- print ----
 * A script's print goes to the host's output callback (stderr by default), charged to the
 * budget by bytes and capped per call, so that a loop of prints cannot flood the host. */

static void put_output(recur_runtime *rt, const char *s, size_t len) {
  if (rt->output)
    rt->output(rt->output_ud, s, len);
  else
    fwrite(s, 1, len, stderr);
}

static int rt_print(lua_State *L) {
  recur_runtime *rt = runtime_of(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    size_t len;
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, &len); /* __tostring and __name run under the budget */
    sb_charge(L, "print", (lua_Integer)len);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  size_t room = len;
  if (rt->output_limit) {
    room = rt->output_used < rt->output_limit ? rt->output_limit - rt->output_used : 0;
    if (room > len) room = len;
  }
  if (room > 0) put_output(rt, s, room);
  if (room < len && (!rt->output_limit || rt->output_used <= rt->output_limit)) {
    char note[128];
    int k = snprintf(note, sizeof note,
                     "%s[recur: print output past %zu bytes in one call is dropped]\n",
                     room > 0 && s[room - 1] != '\n' ? "\n" : "", rt->output_limit);
    put_output(rt, note, (size_t)k);
    rt->output_used = rt->output_limit + 1; /* the note is written once */
  } else {
    rt->output_used += room;
  }
  return 0;
}

/* recur.threads: read-only in the sandbox (the host sets the thread count). */
static int sb_threads(lua_State *L) {
  if (!lua_isnoneornil(L, 1))
    return luaL_error(L, "threads: the host sets the thread count (sandbox)");
  lua_pushinteger(L, openblas_get_num_threads());
  return 1;
}

static int sb_denied(lua_State *L) {
  return luaL_error(L, "%s: file access is disabled in the sandbox%s",
                    lua_tostring(L, lua_upvalueindex(1)), lua_tostring(L, lua_upvalueindex(2)));
}

/* package.searchers[1]: package.preload (the registry's table, which a script cannot swap). */
static int searcher_preload(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  if (lua_getfield(L, -1, name) == LUA_TNIL) {
    lua_pushfstring(L, "\n\tno field package.preload['%s']", name);
    return 1;
  }
  lua_pushliteral(L, ":preload:");
  return 2;
}

/* package.searchers[2]: Lua source files on the host's module path (upvalue 1), names
 * restricted so that they cannot climb out of it. */
static int searcher_host(lua_State *L) {
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  const char *path = lua_tostring(L, lua_upvalueindex(1));
  if (n == 0 || n > 200 || strlen(name) != n || name[0] == '.' || name[0] == '-') goto badname;
  for (size_t i = 0; i < n; i++) {
    char ch = name[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-' || (ch == '.' && name[i + 1] != '.' && name[i + 1] != 0)))
      goto badname;
  }
  if (!path || !*path) {
    lua_pushliteral(L, "\n\tno module path (the host allows none)");
    return 1;
  }
  luaL_Buffer tried;
  luaL_buffinit(L, &tried);
  const char *p = path;
  while (*p) {
    const char *end = strchr(p, ';');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char file[1024];
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < sizeof file; i++) {
      if (p[i] == '?') {
        for (size_t m = 0; m < n && k + 1 < sizeof file; m++)
          file[k++] = name[m] == '.' ? '/' : name[m];
      } else {
        file[k++] = p[i];
      }
    }
    file[k] = 0;
    p += len + (end ? 1 : 0);
    if (k == 0) continue;
    int st = luaL_loadfilex(L, file, "t");
    if (st == LUA_OK) {
      lua_pushstring(L, file);
      return 2;
    }
    if (st != LUA_ERRFILE)
      return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                        lua_tostring(L, -1));
    lua_pop(L, 1);
    luaL_addstring(&tried, "\n\tno file '");
    luaL_addstring(&tried, file);
    luaL_addstring(&tried, "'");
  }
  luaL_pushresult(&tried);
  return 1;
badname:
  lua_pushfstring(L, "\n\tmodule name '%s' is not allowed in the sandbox", name);
  return 1;
}

/* pcall and xpcall (installed in every runtime) that report a refused allocation as "memory
 * limit exceeded" (Lua's own message for any failed allocation is "not enough memory"). */
static int finish_pcall(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    recur_runtime *rt = runtime_of(L);
    if (status == LUA_ERRMEM && rt->limit_hit)
      lua_rawgeti(L, LUA_REGISTRYINDEX, rt->memmsg);
    else
      lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int sb_pcall(lua_State *L) {
  luaL_checkany(L, 1);
  lua_pushboolean(L, 1);
  lua_insert(L, 1);
  int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
  return finish_pcall(L, status, 0);
}

/* xpcall's message handler, guarded: an error raised by the budget hook reaches the handler
 * while hooks are off (Lua runs the handler inside the hook call), so a handler that loops
 * could not be stopped. After the budget is spent the handler is skipped. */
static int guarded_handler(lua_State *L) {
  if (runtime_of(L)->budget_hit) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int sb_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, guarded_handler, 1);
  lua_replace(L, 2);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2);
  int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
  return finish_pcall(L, status, 2);
}

/* Replaces t[name] (t at idx) by a closure of f over the old value. */
static void wrap(lua_State *L, int idx, const char *name, lua_CFunction f) {
  lua_getfield(L, idx, name);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, idx, name);
}

/* coroutine.resume (installed in every runtime), which reports an allocation the limit refused
 * inside the coroutine as "memory limit exceeded" too: Lua's own resume returns its
 * preallocated "not enough memory" for any failed allocation, without the status. Lua interns
 * that string, so a script's own error("not enough memory") is the same value: it is translated
 * as well once the limit has refused an allocation during the call. (coroutine.wrap needs
 * nothing: it re-raises that string, which lua_error turns back into LUA_ERRMEM, and pcall or
 * the host translate it.) */
static void translate_memerr(lua_State *L, int idx) {
  recur_runtime *rt = runtime_of(L);
  if (rt->limit_hit && lua_type(L, idx) == LUA_TSTRING &&
      strcmp(lua_tostring(L, idx), "not enough memory") == 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->memmsg);
    lua_replace(L, idx);
  }
}

/* ---- coroutines killed by the hook ----
 *
 * When the budget hook raises its error inside a coroutine that does not catch it, Lua leaves
 * that coroutine's hooks off (they are off while a hook runs, and the error leaves the hook by
 * longjmp). Its pending __close handlers would then run unbudgeted, and endlessly if they loop,
 * when coroutine.wrap or coroutine.close closes it. So resume, wrap and close note the
 * coroutines the hook killed (a weak set, kept across calls) and never run their handlers:
 * wrap re-raises the error, close returns false and "instruction budget exceeded". */

static int mark_dead(lua_State *L) {
  lua_pushboolean(L, 1);
  lua_rawset(L, 1);
  return 0;
}

/* If the coroutine at idx was killed by the hook, adds it to the set. */
static void note_killed(lua_State *L, int idx) {
  recur_runtime *rt = runtime_of(L);
  if (!rt->budget_hit || rt->hook_raised_in != lua_tothread(L, idx)) return;
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 4)) {
    rt->broken = 1; /* cannot keep the note: the runtime must not go on */
    return;
  }
  size_t limit = rt->limit;
  rt->limit = 0; /* a few bytes: must not fail on the limit */
  lua_pushcfunction(L, mark_dead);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->dead);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_pop(L, 1);
    rt->broken = 1;
  }
  rt->limit = limit;
}

/* 1 if the coroutine at idx died by the hook's error (its handlers must not run). */
static int killed(lua_State *L, int idx) {
  recur_runtime *rt = runtime_of(L);
  lua_State *co = lua_tothread(L, idx);
  int st = co ? lua_status(co) : LUA_OK;
  if (st == LUA_OK || st == LUA_YIELD) return 0;
  if (rt->budget_hit && rt->hook_raised_in == co) return 1;
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->dead);
  lua_pushvalue(L, idx);
  int dead = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return dead;
}

/* After a resume: once the budget is spent, the resuming thread stops at its next instruction
 * too (the hook only made the coroutine it fired in check at every instruction). */
static void stop_if_spent(lua_State *L) {
  if (runtime_of(L)->budget_hit) lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
}

/* coroutine.resume (upvalue 1: Lua's) */
static int rt_resume(lua_State *L) {
  int n = lua_gettop(L);
  lua_pushvalue(L, 1); /* keep the coroutine below the results */
  lua_insert(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 2);
  lua_call(L, n, LUA_MULTRET);
  if (!lua_toboolean(L, 2) && lua_gettop(L) >= 3) {
    translate_memerr(L, 3);
    note_killed(L, 1);
  }
  stop_if_spent(L);
  return lua_gettop(L) - 1;
}

/* coroutine.close (upvalue 1: Lua's) */
static int rt_close(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  if (killed(L, 1)) {
    lua_pushboolean(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, runtime_of(L)->budgetmsg);
    return 2;
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* The function coroutine.wrap returns (upvalue 1: the coroutine): Lua's, except that it does
 * not close a coroutine the hook killed. */
static int rt_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int narg = lua_gettop(L);
  if (!lua_checkstack(co, narg)) return luaL_error(L, "too many arguments to resume");
  lua_xmove(L, co, narg);
  int nres = 0;
  int st = lua_resume(co, L, narg, &nres);
  stop_if_spent(L);
  if (st == LUA_OK || st == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      return luaL_error(L, "too many results to resume");
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1); /* the error */
  st = lua_status(co);
  if (st != LUA_OK && st != LUA_YIELD) { /* the coroutine died */
    lua_pushvalue(L, lua_upvalueindex(1));
    if (killed(L, -1)) {
      note_killed(L, -1);
      lua_pop(L, 1);
    } else {
      lua_pop(L, 1);
#if LUA_VERSION_RELEASE_NUM >= 50406
      st = lua_closethread(co, L); /* close its to-be-closed variables */
#else
      st = lua_resetthread(co);
#endif
      lua_xmove(co, L, 1);
    }
  }
  if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

/* coroutine.wrap */
static int rt_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, rt_wrapped, 1);
  return 1;
}

static void guard_coroutines(lua_State *L, recur_runtime *rt) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  rt->dead = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getglobal(L, LUA_COLIBNAME);
  if (lua_istable(L, -1)) {
    int co = lua_gettop(L);
    wrap(L, co, "resume", rt_resume);
    wrap(L, co, "close", rt_close);
    lua_pushcfunction(L, rt_wrap);
    lua_setfield(L, co, "wrap");
  }
  lua_pop(L, 1);
}

static void nil_field(lua_State *L, int idx, const char *name) {
  lua_pushnil(L);
  lua_setfield(L, idx, name);
}

static void apply_sandbox(lua_State *L, recur_runtime *rt, int recur_idx) {
  lua_pushglobaltable(L);
  int g = lua_gettop(L);
  nil_field(L, g, "dofile");
  nil_field(L, g, "loadfile");
  wrap(L, g, "load", sb_load);
  wrap(L, g, "setmetatable", sb_setmetatable);
  wrap(L, g, "collectgarbage", sb_collectgarbage);
  /* string */
  lua_getglobal(L, LUA_STRLIBNAME);
  int s = lua_gettop(L);
  nil_field(L, s, "dump");
  wrap(L, s, "rep", sb_rep);
  rb_sandbox_strings(L, s);
  lua_pop(L, 1);
  /* table */
  lua_getglobal(L, LUA_TABLIBNAME);
  int t = lua_gettop(L);
  wrap(L, t, "move", sb_move);
  wrap(L, t, "insert", sb_insert);
  wrap(L, t, "remove", sb_remove);
  lua_pop(L, 1);
  /* os: clock and time only */
  lua_pushcfunction(L, luaopen_os);
  lua_call(L, 0, 1);
  lua_createtable(L, 0, 2);
  lua_getfield(L, -2, "clock");
  lua_setfield(L, -2, "clock");
  lua_getfield(L, -2, "time");
  lua_setfield(L, -2, "time");
  lua_remove(L, -2);
  lua_pushvalue(L, -1);
  lua_setglobal(L, LUA_OSLIBNAME);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_insert(L, -2);
  lua_setfield(L, -2, LUA_OSLIBNAME);
  lua_pop(L, 1);
  /* package: no C loaders, no file probing; require searches preload and the host's path */
  lua_getglobal(L, LUA_LOADLIBNAME);
  int pk = lua_gettop(L);
  nil_field(L, pk, "loadlib");
  nil_field(L, pk, "searchpath");
  nil_field(L, pk, "cpath");
  lua_pushstring(L, rt->module_path ? rt->module_path : "");
  lua_setfield(L, pk, "path");
  lua_createtable(L, 2, 0);
  lua_pushcfunction(L, searcher_preload);
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, rt->module_path ? rt->module_path : "");
  lua_pushcclosure(L, searcher_host, 1);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, pk, "searchers");
  lua_pop(L, 1);
  /* recur: the thread count belongs to the host; file functions are stubs */
  lua_pushcfunction(L, sb_threads);
  lua_setfield(L, recur_idx, "threads");
  static const char *const denied[] = {"load", "save", NULL};
  for (int i = 0; denied[i]; i++) {
    lua_pushfstring(L, "recur.%s", denied[i]);
    lua_pushstring(L, strcmp(denied[i], "load") == 0
                          ? "; the host loads checkpoints with recur_load_checkpoint()"
                          : "");
    lua_pushcclosure(L, sb_denied, 2);
    lua_setfield(L, recur_idx, denied[i]);
  }
  rt->ctx->files_denied = 1;
  lua_pop(L, 1); /* globals */
  rb_sandbox_lib(L);
}

/* ---- the host's checkpoint loader ----
 *
 * recur_load_checkpoint runs the Lua half of recur.load (checkpoint.lua, json.lua) with the
 * one file the host names readable. None of what it runs may be reachable by a script: a
 * script that replaced require, pcall, table.pack, recur.json.decode, string.match or the
 * checkpoint module's load would otherwise run inside the host's load, with its file access,
 * and could hand the host a result of its choosing. So when the runtime is made, before any
 * script runs, it keeps a private environment: copies of the standard functions and tables and
 * of recur's table, and a require that finds only private modules. The host's first load
 * compiles private copies of the two modules in it (from the library's own text), and while
 * a host load runs, strings' metatable is a private one too (a string's methods are the
 * string table's, which scripts share). */

/* Pushes a shallow copy of the table at idx. */
static void copy_table(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* require in the private environment (upvalue 1: the private modules, 2: the environment):
 * recur's own Lua modules only, compiled in the environment from the library's text. */
static int private_require(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (lua_getfield(L, lua_upvalueindex(1), name) != LUA_TNIL) return 1;
  if (rb_load_embedded(L, name) != LUA_OK)
    return luaL_error(L, "module '%s' is not available to the host's checkpoint loader", name);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_setupvalue(L, -2, 1); /* a main chunk's only upvalue is _ENV */
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, lua_upvalueindex(1), name);
  return 1;
}

static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "json.null");
  return 1;
}

/* package.preload["recur.json"] for scripts: the module with the runtime's json.null
 * (upvalue 2), so that the nulls of a checkpoint the host loaded compare equal to it. */
static int json_preload(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_setfield(L, -2, "null");
  }
  return 1;
}

/* Sets rt->loader_env and rt->strmeta: run when the runtime is made, before any script. */
static void keep_loader_env(lua_State *L, recur_runtime *rt, int recur_idx) {
  int top = lua_gettop(L);
  lua_newtable(L);
  int env = lua_gettop(L);
  lua_pushglobaltable(L);
  lua_pushnil(L);
  while (lua_next(L, env + 1)) { /* the base functions as they are now */
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TFUNCTION) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, env);
    } else {
      lua_pop(L, 1);
    }
  }
  static const char *const libs[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_MATHLIBNAME,
                                     LUA_UTF8LIBNAME, NULL};
  for (int i = 0; libs[i]; i++) {
    if (lua_getfield(L, env + 1, libs[i]) == LUA_TTABLE) {
      copy_table(L, -1);
      lua_setfield(L, env, libs[i]);
    }
    lua_pop(L, 1);
  }
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");
  lua_newtable(L); /* the private modules */
  int mods = lua_gettop(L);
  copy_table(L, recur_idx);
  if (lua_getfield(L, recur_idx, "_safetensors") == LUA_TTABLE) {
    copy_table(L, -1);
    lua_setfield(L, -3, "_safetensors");
  }
  lua_pop(L, 1);
  lua_setfield(L, mods, "recur");
  lua_pushvalue(L, mods);
  lua_pushvalue(L, env);
  lua_pushcclosure(L, private_require, 2);
  lua_setfield(L, env, "require");
  /* json.null, shared by the private json and the scripts' (preload wrapped); its metatable is
   * locked so that no script can give it an __eq or __index the loader would run */
  lua_newtable(L);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  if (lua_getfield(L, -1, "recur.json") == LUA_TFUNCTION) {
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, json_preload, 2);
    lua_setfield(L, -2, "recur.json");
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_setfield(L, env, "json.null"); /* not a name: no module can see it */
  lua_pushvalue(L, env);
  rt->loader_env = luaL_ref(L, LUA_REGISTRYINDEX);
  /* strings' metatable for the load: the current one with the private string table */
  lua_pushliteral(L, "");
  if (lua_getmetatable(L, -1))
    copy_table(L, -1);
  else
    lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->loader_env);
  lua_getfield(L, -1, LUA_STRLIBNAME);
  lua_setfield(L, -3, "__index");
  lua_pop(L, 1);
  rt->strmeta = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
}

/* Pushes the private module name (compiled on first use). */
static void require_private(lua_State *L, int env, const char *name) {
  lua_getfield(L, env, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
}

/* recur.load's wrapper (init.lua), over the private functions it is given. */
static const char load_wrapper[] =
    "local load, pcall, pack, unpack, tostring, error, gsub = ...\n"
    "return function(...)\n"
    "  local r = pack(pcall(load, ...))\n"
    "  if not r[1] then error((gsub(tostring(r[2]), '^[^\\n]-%.lua:%d+: ', '')), 2) end\n"
    "  return unpack(r, 2, r.n)\n"
    "end\n";

/* Sets rt->loader, compiling the private modules on the host's first load; 0 if this build
 * has no Lua checkpoint loader. */
static int make_loader(lua_State *L, recur_runtime *rt) {
  if (rt->loader != LUA_NOREF) return 1;
  if (rt->loader_env == LUA_NOREF) return 0;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->loader_env);
  int env = lua_gettop(L);
  if (rb_load_embedded(L, "recur.checkpoint") != LUA_OK) { /* a build without it */
    lua_settop(L, top);
    return 0;
  }
  lua_pop(L, 1);
  require_private(L, env, "recur.json");
  lua_getfield(L, env, "json.null");
  lua_setfield(L, -2, "null");
  lua_pop(L, 1);
  require_private(L, env, "recur.checkpoint");
  if (luaL_loadbufferx(L, load_wrapper, sizeof load_wrapper - 1, "=recur_load_checkpoint", "t"))
    lua_error(L);
  lua_getfield(L, -2, "load");
  lua_getfield(L, env, "pcall");
  lua_getfield(L, env, LUA_TABLIBNAME);
  lua_getfield(L, -1, "pack");
  lua_getfield(L, -2, "unpack");
  lua_remove(L, -3);
  lua_getfield(L, env, "tostring");
  lua_getfield(L, env, "error");
  lua_getfield(L, env, LUA_STRLIBNAME);
  lua_getfield(L, -1, "gsub");
  lua_remove(L, -2);
  lua_call(L, 7, 1);
  rt->loader = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, top);
  return 1;
}

static int job_open(lua_State *L, job *j) {
  recur_runtime *rt = j->rt;
  if (rt->sandbox) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},          {LUA_LOADLIBNAME, luaopen_package},
        {LUA_COLIBNAME, luaopen_coroutine}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string},   {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},    {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->name; l++) {
      luaL_requiref(L, l->name, l->func, 1);
      lua_pop(L, 1);
    }
  } else {
    luaL_openlibs(L);
  }
  luaL_requiref(L, "recur", luaopen_recur, 1);
  int recur_idx = lua_gettop(L);
  rt->ctx = rb_ctx(L);
  rc_ctx_retain(rt->ctx);
  rt->ctx->host_bytes = rt->lua_bytes;
  rt->ctx->limit_bytes = rt->limit;
  lua_newtable(L);
  rt->refs = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_createtable(L, RECUR_MAX_ARGS, 0);
  for (int i = 1; i <= RECUR_MAX_ARGS; i++) { /* fill the array part now: no later growth */
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
  rt->anchors = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "memory limit exceeded");
  rt->memmsg = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "instruction budget exceeded");
  rt->budgetmsg = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "time limit exceeded");
  rt->timemsg = luaL_ref(L, LUA_REGISTRYINDEX);
  if (rt->sandbox) apply_sandbox(L, rt, recur_idx);
  lua_pushcfunction(L, sb_pcall);
  lua_setglobal(L, "pcall");
  lua_pushcfunction(L, sb_xpcall);
  lua_setglobal(L, "xpcall");
  guard_coroutines(L, rt);
  if (rt->sandbox || rt->output) {
    lua_pushcfunction(L, rt_print);
    lua_setglobal(L, "print");
  }
  keep_loader_env(L, rt, recur_idx);
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}

/* ---- the API ---- */

int recur_options_init(recur_options *opts) {
  if (!opts) return RECUR_ERR_ARGUMENT;
  memset(opts, 0, sizeof *opts);
  opts->sandbox = 1;
  opts->output_limit = (size_t)64 << 10;
  return RECUR_OK;
}

static void destroy(recur_runtime *rt) {
  if (!rt) return;
  if (rt->L) lua_close(rt->L); /* frees every tensor the state holds */
  if (rt->ctx) rc_ctx_release(rt->ctx);
  free(rt->module_path);
  free(rt->err);
  free(rt);
}

int recur_new(const recur_options *opts, recur_runtime **out) {
  if (!out) return RECUR_ERR_ARGUMENT;
  *out = NULL;
  recur_options def;
  if (!opts) {
    recur_options_init(&def);
    opts = &def;
  }
  if (opts->threads < 0 || opts->threads > 256) return RECUR_ERR_ARGUMENT;
  recur_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return RECUR_ERR_MEMORY;
  rt->limit = opts->memory_limit;
  rt->budget = opts->instruction_budget;
  rt->time_limit = opts->time_limit_ms;
  rt->output = opts->output;
  rt->output_ud = opts->output_ud;
  rt->output_limit = opts->output_limit;
  rt->hook_count = rt->budget && rt->budget < HOOK_COUNT ? (int)rt->budget : HOOK_COUNT;
  rt->sandbox = opts->sandbox ? 1 : 0;
  rt->threads = opts->threads;
  rt->refs = rt->anchors = rt->memmsg = rt->budgetmsg = rt->timemsg = rt->dead = rt->loader =
      rt->loader_env = rt->strmeta = LUA_NOREF;
  if (opts->module_path && !(rt->module_path = strdup(opts->module_path))) {
    destroy(rt);
    return RECUR_ERR_MEMORY;
  }
  rt->L = lua_newstate(rt_alloc, rt);
  if (!rt->L) {
    destroy(rt);
    return RECUR_ERR_MEMORY;
  }
  lua_State *L = rt->L;
  job j = {.rt = rt, .fn = job_open};
  lua_pushcfunction(L, job_entry);
  lua_pushlightuserdata(L, &j);
  int st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK || !rt->ctx) {
    int code = st == LUA_ERRMEM || rt->limit_hit ? RECUR_ERR_MEMORY : RECUR_ERR_SCRIPT;
    destroy(rt);
    return code;
  }
  if (rt->threads > 0) openblas_set_num_threads(rt->threads);
  lua_settop(L, 0);
  *out = rt;
  return RECUR_OK;
}

int recur_free(recur_runtime *rt) {
  if (rt && rt->busy) return RECUR_ERR_BUSY;
  destroy(rt);
  return RECUR_OK;
}

int recur_set_budget(recur_runtime *rt, uint64_t budget) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (rt->busy) return fail(rt, RECUR_ERR_BUSY, "the runtime is already running a call");
  rt->budget = budget;
  rt->hook_count = budget && budget < HOOK_COUNT ? (int)budget : HOOK_COUNT;
  return RECUR_OK;
}

int recur_run_string(recur_runtime *rt, const char *code, const char *chunkname) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (!code) return fail(rt, RECUR_ERR_ARGUMENT, "recur_run_string: code is NULL");
  job j = {.rt = rt,
           .fn = job_run,
           .src = code,
           .len = strlen(code),
           .chunk = chunkname ? chunkname : "=string"};
  return run_job(rt, &j, NULL);
}

int recur_run_file(recur_runtime *rt, const char *path) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (!path) return fail(rt, RECUR_ERR_ARGUMENT, "recur_run_file: path is NULL");
  job j = {.rt = rt, .fn = job_run, .chunk = path};
  return run_job(rt, &j, NULL);
}

int recur_call(recur_runtime *rt, const char *name, int nargs, const recur_value *args,
               int *nresults) {
  if (nresults) *nresults = 0;
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (!name) return fail(rt, RECUR_ERR_ARGUMENT, "recur_call: name is NULL");
  job j = {.rt = rt, .fn = job_call, .name = name, .nargs = nargs, .args = args};
  return run_job(rt, &j, nresults);
}

int recur_call_ref(recur_runtime *rt, recur_ref fn, int nargs, const recur_value *args,
                   int *nresults) {
  if (nresults) *nresults = 0;
  if (!rt) return RECUR_ERR_ARGUMENT;
  job j = {.rt = rt, .fn = job_call, .ref = fn, .nargs = nargs, .args = args};
  return run_job(rt, &j, nresults);
}

int recur_load_checkpoint(recur_runtime *rt, const char *path, int *nresults) {
  return recur_load_checkpoint_flags(rt, path, 0, nresults);
}

int recur_load_checkpoint_flags(recur_runtime *rt, const char *path, int flags, int *nresults) {
  if (nresults) *nresults = 0;
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (!path) return fail(rt, RECUR_ERR_ARGUMENT, "recur_load_checkpoint: path is NULL");
  if (flags & ~RECUR_LOAD_NO_OPTIMIZER)
    return fail(rt, RECUR_ERR_ARGUMENT, "recur_load_checkpoint_flags: unknown flags 0x%x",
                (unsigned)(flags & ~RECUR_LOAD_NO_OPTIMIZER));
  job j = {.rt = rt, .fn = job_load, .chunk = path, .flags = flags};
  return run_job(rt, &j, nresults);
}

int recur_add_module(recur_runtime *rt, const char *name, const char *source, size_t len) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (!name || !*name || strlen(name) > 200 || (!source && len))
    return fail(rt, RECUR_ERR_ARGUMENT, "recur_add_module: bad name or source");
  job j = {.rt = rt, .fn = job_add_module, .name = name, .src = source ? source : "", .len = len};
  return small_job(rt, &j, 0);
}

int recur_set_global(recur_runtime *rt, const char *name, const recur_value *value) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (!name || !value)
    return fail(rt, RECUR_ERR_ARGUMENT, "recur_set_global: name or value is NULL");
  job j = {.rt = rt, .fn = job_set_global, .name = name, .value = value};
  return small_job(rt, &j, 0);
}

/* The stack slot of result i, or 0 with an error. */
static int result_slot(recur_runtime *rt, int i) {
  if (rt->busy) return 0;
  int n = lua_gettop(rt->L);
  if (i < 1 || i > n) {
    fail(rt, RECUR_ERR_NOT_FOUND, "result %d does not exist (%d results)", i, n);
    return 0;
  }
  return i;
}

#define RESULT_SLOT(rt, i)                                                                         \
  if (!(rt)) return RECUR_ERR_ARGUMENT;                                                            \
  if ((rt)->broken) return fail(rt, RECUR_ERR_BROKEN, "the runtime is broken; free it");           \
  if ((rt)->busy) return fail(rt, RECUR_ERR_BUSY, "the runtime is already running a call");        \
  int slot = result_slot(rt, i);                                                                   \
  if (!slot) return RECUR_ERR_NOT_FOUND

int recur_result_count(recur_runtime *rt, int *n) {
  if (!rt || !n) return RECUR_ERR_ARGUMENT;
  *n = rt->busy ? 0 : lua_gettop(rt->L);
  return RECUR_OK;
}

int recur_result_type(recur_runtime *rt, int i, int *type) {
  RESULT_SLOT(rt, i);
  if (!type) return RECUR_ERR_ARGUMENT;
  lua_State *L = rt->L;
  switch (lua_type(L, slot)) {
  case LUA_TNIL:
    *type = RECUR_NIL;
    break;
  case LUA_TBOOLEAN:
    *type = RECUR_BOOLEAN;
    break;
  case LUA_TNUMBER:
    *type = lua_isinteger(L, slot) ? RECUR_INTEGER : RECUR_NUMBER;
    break;
  case LUA_TSTRING:
    *type = RECUR_STRING;
    break;
  case LUA_TUSERDATA: {
    job j = {.rt = rt, .fn = job_result_tensor};
    *type = small_job(rt, &j, slot) == RECUR_OK ? RECUR_TENSOR : RECUR_OTHER;
    break;
  }
  default:
    *type = RECUR_OTHER;
  }
  return RECUR_OK;
}

int recur_result_number(recur_runtime *rt, int i, double *out) {
  RESULT_SLOT(rt, i);
  if (!out) return RECUR_ERR_ARGUMENT;
  if (lua_type(rt->L, slot) != LUA_TNUMBER)
    return fail(rt, RECUR_ERR_TYPE, "result %d is a %s, not a number", i,
                luaL_typename(rt->L, slot));
  *out = (double)lua_tonumber(rt->L, slot);
  return RECUR_OK;
}

int recur_result_integer(recur_runtime *rt, int i, int64_t *out) {
  RESULT_SLOT(rt, i);
  if (!out) return RECUR_ERR_ARGUMENT;
  int ok = 0;
  lua_Integer v = lua_type(rt->L, slot) == LUA_TNUMBER ? lua_tointegerx(rt->L, slot, &ok) : 0;
  if (!ok)
    return fail(rt, RECUR_ERR_TYPE, "result %d is not an integer (%s)", i,
                luaL_typename(rt->L, slot));
  *out = (int64_t)v;
  return RECUR_OK;
}

int recur_result_boolean(recur_runtime *rt, int i, int *out) {
  RESULT_SLOT(rt, i);
  if (!out) return RECUR_ERR_ARGUMENT;
  if (lua_type(rt->L, slot) != LUA_TBOOLEAN)
    return fail(rt, RECUR_ERR_TYPE, "result %d is a %s, not a boolean", i,
                luaL_typename(rt->L, slot));
  *out = lua_toboolean(rt->L, slot);
  return RECUR_OK;
}

int recur_result_string(recur_runtime *rt, int i, const char **s, size_t *len) {
  RESULT_SLOT(rt, i);
  if (!s) return RECUR_ERR_ARGUMENT;
  if (lua_type(rt->L, slot) != LUA_TSTRING) /* no number conversion: it would allocate */
    return fail(rt, RECUR_ERR_TYPE, "result %d is a %s, not a string", i,
                luaL_typename(rt->L, slot));
  size_t l = 0;
  *s = lua_tolstring(rt->L, slot, &l);
  if (len) *len = l;
  return RECUR_OK;
}

int recur_result_shape(recur_runtime *rt, int i, int *ndim, int64_t shape[RECUR_MAX_DIM]) {
  RESULT_SLOT(rt, i);
  job j = {.rt = rt, .fn = job_result_tensor, .ndim = ndim, .shape = shape};
  return small_job(rt, &j, slot);
}

int recur_result_tensor(recur_runtime *rt, int i, float *buf, size_t count, int *ndim,
                        int64_t shape[RECUR_MAX_DIM]) {
  RESULT_SLOT(rt, i);
  job j = {.rt = rt,
           .fn = job_result_tensor,
           .buf = buf,
           .count = count,
           .ndim = ndim,
           .shape = shape,
           .copy = 1};
  return small_job(rt, &j, slot);
}

int recur_result_ref(recur_runtime *rt, int i, recur_ref *out) {
  RESULT_SLOT(rt, i);
  if (!out) return RECUR_ERR_ARGUMENT;
  out->id = 0;
  job j = {.rt = rt, .fn = job_result_ref, .out_ref = out};
  return small_job(rt, &j, slot);
}

int recur_ref_global(recur_runtime *rt, const char *name, recur_ref *out) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  if (!name || !out) return fail(rt, RECUR_ERR_ARGUMENT, "recur_ref_global: NULL argument");
  out->id = 0;
  job j = {.rt = rt, .fn = job_ref_global, .name = name, .out_ref = out};
  return small_job(rt, &j, 0);
}

int recur_ref_free(recur_runtime *rt, recur_ref ref) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  job j = {.rt = rt, .fn = job_ref_free, .ref = ref};
  return small_job(rt, &j, 0);
}

int recur_last_error(recur_runtime *rt, const char **msg) {
  if (!rt || !msg) return RECUR_ERR_ARGUMENT;
  *msg = rt->err ? rt->err : "";
  return RECUR_OK;
}

int recur_status_string(int status, const char **name) {
  static const char *const names[] = {"RECUR_OK",
                                      "RECUR_ERR_ARGUMENT",
                                      "RECUR_ERR_MEMORY",
                                      "RECUR_ERR_BUDGET",
                                      "RECUR_ERR_SYNTAX",
                                      "RECUR_ERR_FILE",
                                      "RECUR_ERR_SCRIPT",
                                      "RECUR_ERR_TYPE",
                                      "RECUR_ERR_NOT_FOUND",
                                      "RECUR_ERR_UNSUPPORTED",
                                      "RECUR_ERR_BUSY",
                                      "RECUR_ERR_BROKEN"};
  if (!name) return RECUR_ERR_ARGUMENT;
  if (status < 0 || status >= (int)(sizeof names / sizeof names[0])) {
    *name = "RECUR_ERR_UNKNOWN";
    return RECUR_ERR_ARGUMENT;
  }
  *name = names[status];
  return RECUR_OK;
}

int recur_get_stats(recur_runtime *rt, recur_stats *out) {
  if (!rt || !out) return RECUR_ERR_ARGUMENT;
  out->lua_bytes = rt->lua_bytes;
  out->tensor_bytes = tensor_bytes(rt);
  out->memory_limit = rt->limit;
  out->last_work = rt->ctx->work_used;
  return RECUR_OK;
}

int recur_collect(recur_runtime *rt) {
  if (!rt) return RECUR_ERR_ARGUMENT;
  job j = {.rt = rt, .fn = job_collect};
  return small_job(rt, &j, 0);
}
