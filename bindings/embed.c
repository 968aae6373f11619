/* The embedding API (include/recur.h): a runtime is one Lua state with recur loaded, a
 * memory limit (a lua_Alloc that counts Lua's heap and tensor storage together), an
 * instruction budget and a sandbox (both in bindings/sandbox.c).
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

#include "host_runtime.h"

int luaopen_recur(lua_State *L);

#define ERR_MAX ((size_t)1 << 16) /* longest error message kept */

/* ---- memory ---- */

/* Everything the runtime holds besides the Lua heap: tensor data and headers, autograd nodes
 * and the other structures of rc_mem_alloc (recur_stats.tensor_bytes). */
static size_t tensor_bytes(const recur_runtime *rt) {
  return rt->ctx ? rt->ctx->live_bytes + rt->ctx->meta_bytes + rt->ctx->aux_bytes : 0;
}

/* Bytes past the limit that Lua may take while it calls a finalizer. Lua calls a __gc
 * metamethod under a protected call that may need a new call frame or stack; refused, the
 * finalizer never runs ("error in __gc", a warning) and the tensor its userdata held leaks
 * until the process ends (a script filling the heap to the limit met it: an empty tensor and
 * a view of 4 floats lost in 60,000 rounds). The runtime's own finalizers allocate nothing
 * themselves, and sandboxed scripts cannot define any, so the reserve only serves call frames. */
#define RT_FINALIZER_RESERVE (64u << 10)

/* Whether Lua is calling a finalizer now: lua_gc refuses every request (-1) while the
 * collector has stopped itself to run one (Lua 5.4.4, Debian 12's; tests/c/test_embed.c's
 * test_oom_finalizers fails where it does not). */
static int in_finalizer(const recur_runtime *rt) {
  return rt->L && lua_gc(rt->L, LUA_GCISRUNNING) == -1;
}

/* Lua's allocator: refuses growth past the limit (tensor storage counts too), except within
 * RT_FINALIZER_RESERVE while a finalizer is called. Lua then runs an emergency collection,
 * retries, and raises "not enough memory", which the pcall wrappers and the host report as
 * "memory limit exceeded". */
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
    size_t limit = rt->limit;
    if ((used >= limit || nsize - old > limit - used) && in_finalizer(rt))
      limit += RT_FINALIZER_RESERVE;
    if (used >= limit || nsize - old > limit - used) {
      rt->limit_hit = 1;
      /* Lua runs a full collection before it gives up: a walk of the heap, charged like
       * collectgarbage() (one unit per 64 bytes here, twice the allocator's rate) */
      if (rt->ctx) rb_budget_charge_alloc(rt, rt->lua_bytes / 2);
      return NULL;
    }
  }
  void *p = realloc(ptr, nsize);
  if (!p) return nsize <= old ? ptr : NULL; /* Lua assumes shrinking never fails */
  rt->lua_bytes = rt->lua_bytes - old + nsize;
  if (rt->ctx) {
    rt->ctx->host_bytes = rt->lua_bytes + rt->lent_bytes;
    if (nsize > old) rb_budget_charge_alloc(rt, nsize);
  }
  return p;
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
  rb_budget_start(rt);
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
  rb_budget_start(rt);
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

static int job_load(lua_State *L, job *j) {
  recur_runtime *rt = j->rt;
  if (!rb_checkpoint_loader(L, rt))
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
  rb_guard_open(L, rt, recur_idx);
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
