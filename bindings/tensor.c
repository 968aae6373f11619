/* The tensor userdata: lifetime, argument checks, constructors, introspection, printing. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/nn.h"
#include "bind.h"

static const char CTX_KEY = 'c'; /* registry key: address of this byte */
#define RB_PENDING 4

typedef struct {
  unsigned magic;
  rc_ctx *ctx;
  size_t live_after_full; /* live bytes right after the last full collection we forced */
  const void *mt;         /* the tensor metatable: identity check without a string lookup */
  /* Tensors that rb_push has not yet handed to a userdata, with the frame address of that
   * rb_push: see rb_push. */
  struct {
    rc_tensor *t;
    uintptr_t frame;
  } pending[RB_PENDING];
} rb_state;

static void release_pending(rb_state *s, int from) {
  for (int k = from; k < RB_PENDING; k++) {
    rc_tensor *t = s->pending[k].t;
    s->pending[k].t = NULL;
    rc_release(t);
  }
}

static int state_gc(lua_State *L) {
  rb_state *s = lua_touserdata(L, 1);
  release_pending(s, 0);
  if (s->ctx) rc_ctx_release(s->ctx);
  s->ctx = NULL;
  return 0;
}

#define RB_STATE_MAGIC 0x72656375u /* "recu" */

/* The per-state data: every function registered through rb_register carries it as upvalue 1
 * (fast path); anything else finds it in the registry. */
static rb_state *state(lua_State *L) {
  rb_state *u = lua_touserdata(L, lua_upvalueindex(1));
  if (u && lua_rawlen(L, lua_upvalueindex(1)) == sizeof(rb_state) && u->magic == RB_STATE_MAGIC)
    return u;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  rb_state *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

rc_ctx *rb_ctx(lua_State *L) {
  return state(L)->ctx;
}

/* Creates the per-state context once (idempotent). */
void rb_state_init(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  int have = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (have) return;
  rb_state *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->magic = RB_STATE_MAGIC;
  lua_newtable(L);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  s->ctx = rc_ctx_new();
  if (!s->ctx) rb_error(L, "recur: out of memory creating the runtime context");
  luaL_getmetatable(L, RECUR_TENSOR_MT);
  s->mt = lua_topointer(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, s->mt);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
}

/* The userdata at idx if it is a tensor (closed or not), else NULL. Functions registered by
 * rb_setfuncs carry the tensor metatable as upvalue 2, so the check is one raw comparison. */
static rb_tensor *to_tensor(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return NULL;
  int ok = lua_rawequal(L, -1, lua_upvalueindex(2));
  if (!ok) ok = lua_topointer(L, -1) == state(L)->mt; /* functions without the upvalue */
  lua_pop(L, 1);
  return ok && lua_type(L, idx) == LUA_TUSERDATA ? (rb_tensor *)lua_touserdata(L, idx) : NULL;
}

int rb_error(lua_State *L, const char *fmt, ...) {
  char buf[RC_ERR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  luaL_where(L, 1);
  lua_pushstring(L, buf);
  lua_concat(L, 2);
  return lua_error(L);
}

int rb_raise(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  return rb_error(L, "%s", c->err[0] ? c->err : "recur: unknown error");
}

/* Tells Lua's collector about tensor bytes: an incremental step in proportion to what
 * was allocated, and a full collection when live tensor memory has doubled since the
 * last one we forced (and is past 64 MB). Without this a loop that makes big tensors
 * grows until someone calls collectgarbage(), since Lua only sees the small userdata.
 * Under a memory limit (which counts tensors and the host's Lua heap together) the steps
 * come sooner, and a full collection runs once half of the room left after the previous one
 * is used, so that garbage does not make an allocation fail. */
static void report_memory(lua_State *L, rb_state *s) {
  rc_ctx *c = s->ctx;
  size_t step = (size_t)1 << 20, limit = c->limit_bytes;
  if (limit && limit / 16 < step) step = limit / 16;
  if (c->pending_bytes < step) return;
  size_t kb = c->pending_bytes >> 10;
  c->pending_bytes = 0;
  int full;
  if (limit) {
    size_t used = rc_used_bytes(c);
    size_t base = s->live_after_full < limit ? s->live_after_full : limit;
    full = used > base + (limit - base) / 2;
  } else {
    size_t threshold = s->live_after_full * 2;
    if (threshold < ((size_t)64 << 20)) threshold = (size_t)64 << 20;
    full = c->live_bytes > threshold;
  }
  if (full) {
    lua_gc(L, LUA_GCCOLLECT);
    s->live_after_full = limit ? rc_used_bytes(c) : c->live_bytes;
  } else {
    lua_gc(L, LUA_GCSTEP, (int)(kb > 1u << 20 ? 1u << 20 : kb));
  }
}

/* A closed tensor userdata (t = NULL) with the metatable; arg 1: the metatable's address. */
static int new_tensor_ud(lua_State *L) {
  const void *mt = lua_touserdata(L, 1);
  rb_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->t = NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, mt);
  lua_setmetatable(L, -2);
  return 1;
}

/* Looks the state up in the registry only (callable from a host, outside any C function);
 * needs one free stack slot. */
void rb_release_pending(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  rb_state *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (s) release_pending(s, 0);
}

/* lua_newuserdatauv raises "not enough memory" when it fails (routine under a memory limit),
 * and t, not yet owned by Lua, would leak. So t waits in s->pending while the userdata is
 * made. After a failure the entry stays behind; it is released by the next rb_push that can
 * prove it stale, by rb_release_pending (a host between calls) or with the state.
 * An entry is proven stale when its frame address is not above the current one: a push still
 * in progress is an ancestor of this frame (the stack grows down, and Lua runs finalizers and
 * coroutines on the same C stack), so only pushes that have ended can sit at or below it.
 * Pushes nest only in a finalizer run by the collector inside lua_newuserdatauv (finalizers do
 * not nest further), so a few entries suffice; when all are taken the userdata is made under
 * lua_pcall instead. */
int rb_push(lua_State *L, rc_tensor *t) {
  if (!t) return rb_raise(L);
  rb_state *s = state(L);
  uintptr_t frame = (uintptr_t)__builtin_frame_address(0);
  int k = 0;
  for (; k < RB_PENDING && s->pending[k].t; k++) {
    if (s->pending[k].frame <= frame) { /* left behind by a push that failed */
      rc_release(s->pending[k].t);
      break;
    }
  }
  rb_tensor *u;
  if (k < RB_PENDING) {
    s->pending[k].t = t;
    s->pending[k].frame = frame;
    u = lua_newuserdatauv(L, sizeof *u, 0);
    s->pending[k].t = NULL;
    if (k + 1 < RB_PENDING && s->pending[k + 1].t) release_pending(s, k + 1); /* nested, done */
    u->t = t;
    lua_rawgetp(L, LUA_REGISTRYINDEX, s->mt); /* the metatable, keyed by its own address */
    lua_setmetatable(L, -2);
  } else {
    if (!lua_checkstack(L, 3)) {
      rc_release(t);
      return luaL_error(L, "stack overflow (creating a tensor)");
    }
    lua_pushcfunction(L, new_tensor_ud);
    lua_pushlightuserdata(L, (void *)s->mt);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      rc_release(t);
      return lua_error(L);
    }
    u = lua_touserdata(L, -1);
    u->t = t;
  }
  report_memory(L, s);
  return 1;
}

/* Userdata for rb_push_n, made under lua_pcall: args (metatable address, n, as_list). */
static int new_tensor_uds(lua_State *L) {
  const void *mt = lua_touserdata(L, 1);
  int n = (int)lua_tointeger(L, 2), as_list = lua_toboolean(L, 3);
  lua_settop(L, 0);
  luaL_checkstack(L, n + 2, "too many tensors");
  if (as_list) lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    rb_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = NULL;
    lua_rawgetp(L, LUA_REGISTRYINDEX, mt);
    lua_setmetatable(L, -2);
    if (as_list) lua_rawseti(L, 1, k + 1);
  }
  return as_list ? 1 : n;
}

int rb_push_n(lua_State *L, rc_tensor **ts, int n, int as_list, int free_ts) {
  rb_state *s = state(L);
  int nres = as_list ? 1 : n;
  int room = lua_checkstack(L, nres + 4);
  int st = LUA_ERRMEM;
  if (room) {
    lua_pushcfunction(L, new_tensor_uds);
    lua_pushlightuserdata(L, (void *)s->mt);
    lua_pushinteger(L, n);
    lua_pushboolean(L, as_list);
    st = lua_pcall(L, 3, nres, 0);
  }
  if (st != LUA_OK) {
    for (int k = 0; k < n; k++) rc_release(ts[k]);
    if (free_ts) free(ts);
    if (!room) return luaL_error(L, "stack overflow (%d tensors)", n);
    return lua_error(L);
  }
  int top = lua_gettop(L);
  for (int k = 0; k < n; k++) {
    rb_tensor *u;
    if (as_list) {
      lua_rawgeti(L, top, k + 1);
      u = lua_touserdata(L, -1);
      lua_pop(L, 1);
    } else {
      u = lua_touserdata(L, top - n + 1 + k);
    }
    u->t = ts[k];
  }
  if (free_ts) free(ts);
  report_memory(L, s);
  return nres;
}

static const char MODULE_KEY = 'm', METHODS_KEY = 't', NAMES_KEY = 'n';

void rb_set_tables(lua_State *L, int methods, int module) {
  lua_pushvalue(L, methods);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &METHODS_KEY);
  lua_pushvalue(L, module);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &MODULE_KEY);
}

/* Finds the key under which table `key`'s value holds the function at the top. */
static const char *find_in(lua_State *L, const void *key) {
  const char *found = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_rawequal(L, -1, -4) && lua_type(L, -2) == LUA_TSTRING) {
      found = lua_tostring(L, -2); /* interned: stays valid while the table holds it */
      lua_pop(L, 2);
      break;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return found;
}

/* The name of the running C function: from the call site when Lua knows it, else by
 * looking the function up in the method and module tables (calls through pcall). */
const char *rb_fname(lua_State *L) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar)) return "?";
  lua_getinfo(L, "nf", &ar);
  if (ar.name) {
    lua_pop(L, 1);
    return ar.name;
  }
  /* every function registered with rb_setfuncs (internal tables and userdata methods too) */
  const char *n = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &NAMES_KEY) == LUA_TTABLE) {
    lua_pushvalue(L, -2);
    if (lua_rawget(L, -2) == LUA_TSTRING) n = lua_tostring(L, -1); /* interned, kept by the table */
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (!n) n = find_in(L, &METHODS_KEY);
  if (!n) n = find_in(L, &MODULE_KEY);
  lua_pop(L, 1);
  return n ? n : "?";
}

const char *rb_check_string(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    rb_error(L, "%s: argument #%d must be a string, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
  return lua_tostring(L, idx);
}

double rb_check_number(lua_State *L, int idx) {
  int isnum = 0;
  double v = (double)lua_tonumberx(L, idx, &isnum);
  if (!isnum)
    rb_error(L, "%s: argument #%d must be a number, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
  return v;
}

void rb_check_table(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE)
    rb_error(L, "%s: argument #%d must be a table, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
}

void rb_check_function(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TFUNCTION)
    rb_error(L, "%s: argument #%d must be a function, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
}

int rb_is_tensor(lua_State *L, int idx) {
  return to_tensor(L, idx) != NULL;
}

rc_tensor *rb_test(lua_State *L, int idx) {
  rb_tensor *u = to_tensor(L, idx);
  return u ? u->t : NULL;
}

rc_tensor *rb_check(lua_State *L, int idx) {
  rb_tensor *u = to_tensor(L, idx);
  if (!u)
    return (rc_tensor *)(rb_error(L, "%s: argument #%d must be a tensor, got %s", rb_fname(L), idx,
                                  luaL_typename(L, idx)),
                         NULL);
  if (!u->t)
    return (rc_tensor *)(rb_error(L, "%s: argument #%d is a closed tensor", rb_fname(L), idx),
                         NULL);
  return u->t;
}

/* A number argument becomes a 0-d tensor userdata that replaces it on the stack, so Lua owns
 * it and a later argument error cannot leak it (*owned is always NULL: nothing to release). */
rc_tensor *rb_check_tensor_or_number(lua_State *L, int idx, rc_tensor **owned) {
  *owned = NULL;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TNUMBER) {
    rc_tensor *t = rc_scalar(rb_ctx(L), (float)lua_tonumber(L, idx));
    rb_push(L, t);
    lua_replace(L, idx);
    return t;
  }
  if (!rb_is_tensor(L, idx))
    rb_error(L, "%s: argument #%d must be a tensor or a number, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
  return rb_check(L, idx);
}

int64_t rb_check_int(lua_State *L, int idx) {
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, idx, &isnum);
  if (!isnum) {
    if (lua_type(L, idx) == LUA_TNUMBER)
      rb_error(L, "%s: argument #%d must be an integer, got %s", rb_fname(L), idx,
               lua_tostring(L, idx));
    rb_error(L, "%s: argument #%d must be an integer, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
  }
  return (int64_t)v;
}

int rb_check_dim(lua_State *L, int idx, int ndim) {
  return rb_dim_value(L, rb_check_int(L, idx), ndim);
}

int rb_dim_value(lua_State *L, int64_t d, int ndim) {
  int n = ndim ? ndim : 1;
  if (d == 0 || d > n || d < -n)
    rb_error(L,
             "%s: dimension %lld is out of range for a tensor with %d dimensions "
             "(dimensions are 1-based; -1 is the last)",
             rb_fname(L), (long long)d, ndim);
  return (int)(d > 0 ? d - 1 : d + n);
}

int rb_opt_dim(lua_State *L, int idx, int ndim, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  return rb_check_dim(L, idx, ndim);
}

int rb_check_shape(lua_State *L, int idx, int64_t *size) {
  int n = 0;
  if (lua_type(L, idx) == LUA_TTABLE) {
    lua_Integer len = luaL_len(L, idx);
    if (len > RC_MAX_DIM)
      rb_error(L, "%s: %d dimensions requested, at most %d are supported", rb_fname(L), (int)len,
               RC_MAX_DIM);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_geti(L, idx, i);
      int isnum = 0;
      lua_Integer v = lua_tointegerx(L, -1, &isnum);
      if (!isnum)
        rb_error(L, "%s: shape entry %d must be an integer, got %s", rb_fname(L), (int)i,
                 luaL_typename(L, -1));
      lua_pop(L, 1);
      size[n++] = v;
    }
  } else {
    int top = lua_gettop(L);
    for (int i = idx; i <= top; i++) {
      if (lua_type(L, i) != LUA_TNUMBER) break;
      if (n == RC_MAX_DIM)
        rb_error(L, "%s: more than %d dimensions requested, at most %d are supported", rb_fname(L),
                 RC_MAX_DIM, RC_MAX_DIM);
      size[n++] = rb_check_int(L, i);
    }
  }
  for (int i = 0; i < n; i++) {
    if (size[i] < 0)
      rb_error(L, "%s: size %lld of dimension %d is negative", rb_fname(L), (long long)size[i],
               i + 1);
    if (size[i] > RC_MAX_NUMEL)
      rb_error(L, "%s: size %lld of dimension %d is too large", rb_fname(L), (long long)size[i],
               i + 1);
  }
  return n;
}

int rb_opt_bool_field(lua_State *L, int idx, const char *k, int def) {
  if (lua_type(L, idx) != LUA_TTABLE) return def;
  lua_getfield(L, idx, k);
  int r = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}

void rb_setfuncs(lua_State *L, const luaL_Reg *l) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  luaL_getmetatable(L, RECUR_TENSOR_MT);
  luaL_setfuncs(L, l, 2);
  /* remember every function's name for rb_fname (function -> name) */
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &NAMES_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &NAMES_KEY);
  }
  for (; l->name; l++) {
    lua_getfield(L, -2, l->name);
    lua_pushstring(L, l->name);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
}

void rb_register(lua_State *L, int methods_idx, int module_idx, const luaL_Reg *methods,
                 const luaL_Reg *functions) {
  if (methods) {
    lua_pushvalue(L, methods_idx);
    rb_setfuncs(L, methods);
    lua_pop(L, 1);
  }
  if (functions) {
    lua_pushvalue(L, module_idx);
    rb_setfuncs(L, functions);
    lua_pop(L, 1);
  }
}

/* ---- lifetime ---- */

/* __gc and __close: one idempotent release that never raises. */
static int t_release(lua_State *L) {
  rb_tensor *u = to_tensor(L, 1);
  if (u && u->t) {
    rc_tensor *t = u->t;
    u->t = NULL;
    rc_release(t);
  }
  return 0;
}

static int t_is_closed(lua_State *L) {
  rb_tensor *u = to_tensor(L, 1);
  if (!u)
    return rb_error(L, "%s: argument #1 must be a tensor, got %s", rb_fname(L),
                    luaL_typename(L, 1));
  lua_pushboolean(L, u->t == NULL);
  return 1;
}

/* ---- constructors ---- */

static int new_filled(lua_State *L, int idx, int kind, float v) {
  int64_t size[RC_MAX_DIM];
  int n = rb_check_shape(L, idx, size);
  rc_ctx *c = rb_ctx(L);
  if (rc_check_shape(c, rb_fname(L), n, size)) return rb_raise(L);
  if (kind == 0) return rb_push(L, rc_empty(c, n, size));
  if (kind == 1) return rb_push(L, rc_zeros(c, n, size));
  return rb_push(L, rc_full(c, n, size, v));
}

static int f_empty(lua_State *L) {
  return new_filled(L, 1, 0, 0);
}
static int f_zeros(lua_State *L) {
  return new_filled(L, 1, 1, 0);
}
static int f_ones(lua_State *L) {
  return new_filled(L, 1, 2, 1.0f);
}

static int f_full(lua_State *L) {
  int64_t size[RC_MAX_DIM];
  if (lua_type(L, 1) != LUA_TTABLE)
    return rb_error(L, "full: argument #1 must be a shape table, got %s", luaL_typename(L, 1));
  int n = rb_check_shape(L, 1, size);
  float v = (float)rb_check_number(L, 2);
  if (rc_check_shape(rb_ctx(L), "full", n, size)) return rb_raise(L);
  return rb_push(L, rc_full(rb_ctx(L), n, size, v));
}

static int like(lua_State *L, float v, int zero) {
  rc_tensor *t = rb_check(L, 1);
  rc_tensor *r = zero ? rc_zeros_like(t) : rc_full(t->ctx, t->ndim, t->size, v);
  return rb_push(L, r);
}
static int f_zeros_like(lua_State *L) {
  return like(L, 0, 1);
}
static int f_ones_like(lua_State *L) {
  return like(L, 1.0f, 0);
}
static int f_full_like(lua_State *L) {
  return like(L, (float)rb_check_number(L, 2), 0);
}

/* arange(n) = 1..n? No: like PyTorch's values, arange(stop) gives 0..stop-1 and
 * arange(start, stop[, step]) gives start, start+step, ... < stop. Values, not indices. */
static int f_arange(lua_State *L) {
  double start = 0, stop, step = 1;
  if (lua_gettop(L) == 1) {
    stop = rb_check_number(L, 1);
  } else {
    start = rb_check_number(L, 1);
    stop = rb_check_number(L, 2);
    step = (lua_isnoneornil(L, 3) ? 1 : rb_check_number(L, 3));
  }
  if (step == 0 || isnan(step) || isnan(start) || isnan(stop) || isinf(start) || isinf(stop))
    return rb_error(L, "arange: step must be non-zero and bounds finite (got %g, %g, %g)", start,
                    stop, step);
  double cnt = ceil((stop - start) / step);
  if (cnt < 0) cnt = 0;
  if (cnt > (double)RC_MAX_NUMEL) return rb_error(L, "arange: %g elements is too many", cnt);
  int64_t n = (int64_t)cnt;
  rc_tensor *t = rc_empty(rb_ctx(L), 1, &n);
  if (!t) return rb_raise(L);
  float *d = rc_data(t);
  for (int64_t i = 0; i < n; i++) d[i] = (float)(start + (double)i * step);
  return rb_push(L, t);
}

static int f_eye(lua_State *L) {
  int64_t n = rb_check_int(L, 1);
  int64_t m = lua_isnoneornil(L, 2) ? n : rb_check_int(L, 2);
  int64_t size[2] = {n, m};
  rc_tensor *t = rc_zeros(rb_ctx(L), 2, size);
  if (!t) return rb_raise(L);
  float *d = rc_data(t);
  for (int64_t i = 0; i < n && i < m; i++) d[i * m + i] = 1.0f;
  return rb_push(L, t);
}

/* recur.tensor(nested table or number): the shape is read from the first element of each
 * level; every row must agree. */
static void nested_shape(lua_State *L, int idx, int depth, int64_t *size, int *ndim) {
  if (lua_type(L, idx) != LUA_TTABLE) return;
  if (depth >= RC_MAX_DIM) rb_error(L, "tensor: nesting deeper than %d levels", RC_MAX_DIM);
  size[depth] = (int64_t)luaL_len(L, idx);
  *ndim = depth + 1;
  if (size[depth] > 0) {
    lua_geti(L, idx, 1);
    nested_shape(L, lua_gettop(L), depth + 1, size, ndim);
    lua_pop(L, 1);
  }
}

static void nested_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *size, float *out,
                        int64_t *pos) {
  if (depth == ndim) {
    int isnum = 0;
    lua_Number v = lua_tonumberx(L, idx, &isnum);
    if (!isnum) {
      if (lua_isboolean(L, idx)) {
        v = lua_toboolean(L, idx);
      } else {
        rb_error(L, "tensor: element %lld is %s, not a number", (long long)(*pos + 1),
                 luaL_typename(L, idx));
      }
    }
    out[(*pos)++] = (float)v;
    return;
  }
  if (lua_type(L, idx) != LUA_TTABLE || (int64_t)luaL_len(L, idx) != size[depth])
    rb_error(L, "tensor: ragged nested table (level %d should have %lld entries)", depth + 1,
             (long long)size[depth]);
  for (int64_t i = 1; i <= size[depth]; i++) {
    lua_geti(L, idx, i);
    nested_fill(L, lua_gettop(L), depth + 1, ndim, size, out, pos);
    lua_pop(L, 1);
  }
}

static int f_tensor(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER)
    return rb_push(L, rc_scalar(rb_ctx(L), (float)lua_tonumber(L, 1)));
  if (rb_is_tensor(L, 1)) return rb_push(L, rc_copy_contiguous(rb_check(L, 1)));
  if (lua_type(L, 1) != LUA_TTABLE)
    return rb_error(L, "tensor: argument #1 must be a (nested) table of numbers, got %s",
                    luaL_typename(L, 1));
  int64_t size[RC_MAX_DIM] = {0};
  int ndim = 0;
  nested_shape(L, 1, 0, size, &ndim);
  if (rc_check_shape(rb_ctx(L), "tensor", ndim, size)) return rb_raise(L);
  /* Fill a Lua-owned buffer first so that a ragged-table error leaks nothing. */
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= size[i];
  /* a table can be converted again and again: the budget sees each number read */
  if (rc_charge_elems(rb_ctx(L), "tensor", n * 16)) return rb_raise(L);
  float *buf = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof(float), 0);
  int64_t pos = 0;
  nested_fill(L, 1, 0, ndim, size, buf, &pos);
  rc_tensor *t = rc_from_data(rb_ctx(L), ndim, size, buf);
  lua_pop(L, 1);
  return rb_push(L, t);
}

/* ---- introspection ---- */

static int m_size(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    int d = rb_check_dim(L, 2, t->ndim);
    lua_pushinteger(L, t->ndim ? t->size[d] : 1);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->size[i]);
    lua_rawseti(L, -2, i + 1);
  }
  luaL_setmetatable(L, "recur.Size"); /* a plain list that prints as [2, 3] */
  return 1;
}

static int size_tostring(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '[');
  lua_Integer n = luaL_len(L, 1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (i > 1) luaL_addstring(&b, ", ");
    lua_geti(L, 1, i);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, ']');
  luaL_pushresult(&b);
  return 1;
}

static int m_stride(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    int d = rb_check_dim(L, 2, t->ndim);
    lua_pushinteger(L, t->ndim ? t->stride[d] : 1);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) {
    lua_pushinteger(L, t->stride[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_dim(lua_State *L) {
  lua_pushinteger(L, rb_check(L, 1)->ndim);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, rc_numel(rb_check(L, 1)));
  return 1;
}

static int m_is_contiguous(lua_State *L) {
  lua_pushboolean(L, rc_is_contiguous(rb_check(L, 1)));
  return 1;
}

static int m_item(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (rc_numel(t) != 1) {
    char s[128];
    return rb_error(L, "item: tensor of shape %s has %lld elements, not one",
                    rc_shape_str(t, s, sizeof s), (long long)rc_numel(t));
  }
  int64_t idx[RC_MAX_DIM] = {0};
  lua_pushnumber(L, *rc_ptr(t, idx));
  return 1;
}

static void push_nested(lua_State *L, rc_tensor *t, int depth, int64_t off) {
  if (depth == t->ndim) {
    lua_pushnumber(L, t->storage->data[off]);
    return;
  }
  lua_createtable(L, t->size[depth] > INT_MAX ? 0 : (int)t->size[depth], 0); /* a size hint */
  for (int64_t i = 0; i < t->size[depth]; i++) {
    push_nested(L, t, depth + 1, off + i * t->stride[depth]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_totable(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  luaL_checkstack(L, t->ndim + 4, "totable");
  push_nested(L, t, 0, t->offset);
  return 1;
}

/* Reads 1-based indices at stack positions from..from+ndim-1 into a storage offset. */
static int64_t check_index(lua_State *L, rc_tensor *t, int from, const char *fn) {
  int given = lua_gettop(L) - from + 1;
  if (given != t->ndim)
    rb_error(L, "%s: a tensor with %d dimensions needs %d indices, got %d", fn, t->ndim, t->ndim,
             given < 0 ? 0 : given);
  int64_t off = t->offset;
  for (int i = 0; i < t->ndim; i++) {
    int64_t k = rb_check_int(L, from + i);
    if (k < 0) k += t->size[i] + 1;
    if (k < 1 || k > t->size[i])
      rb_error(L, "%s: index %lld is out of range for dimension %d of size %lld (1-based)", fn,
               (long long)rb_check_int(L, from + i), i + 1, (long long)t->size[i]);
    off += (k - 1) * t->stride[i];
  }
  return off;
}

static int m_get(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  lua_pushnumber(L, t->storage->data[check_index(L, t, 2, "get")]);
  return 1;
}

static int m_set(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  float v = (float)rb_check_number(L, 2);
  int64_t off = check_index(L, t, 3, "set");
  if (rc_check_inplace(t, "set")) return rb_raise(L);
  if (t->grad_fn && t->ctx->grad_enabled)
    return rb_error(L, "set: in-place write to a tensor with autograd history; "
                       "use recur.no_grad or clone() first");
  t->storage->data[off] = v;
  rc_bump_version(t);
  lua_settop(L, 1);
  return 1;
}

/* ---- printing (PyTorch style: all values when small, corners when big) ---- */

typedef struct {
  luaL_Buffer *b;
  int prec;
  int width;
  int sci;
} fmt_t;

static void fmt_num(fmt_t *f, float v, char *out, size_t n) {
  if (isnan(v))
    snprintf(out, n, "nan");
  else if (isinf(v))
    snprintf(out, n, v > 0 ? "inf" : "-inf");
  else if (f->sci)
    snprintf(out, n, "%.4e", (double)v);
  else
    snprintf(out, n, "%.*f", f->prec, (double)v);
}

#define EDGE 3
#define SUMMARIZE 1000

static void print_rec(fmt_t *f, rc_tensor *t, int depth, int64_t off, int summarize, int indent) {
  luaL_Buffer *b = f->b;
  if (depth == t->ndim) {
    char s[64];
    fmt_num(f, t->storage->data[off], s, sizeof s);
    char pad[80];
    snprintf(pad, sizeof pad, "%*s", f->width, s);
    luaL_addstring(b, pad);
    return;
  }
  luaL_addchar(b, '[');
  int64_t n = t->size[depth];
  for (int64_t i = 0; i < n; i++) {
    if (summarize && n > 2 * EDGE && i == EDGE) {
      luaL_addstring(b, depth == t->ndim - 1 ? " ...," : "\n");
      if (depth != t->ndim - 1) {
        for (int k = 0; k < indent + 1; k++) luaL_addchar(b, ' ');
        luaL_addstring(b, "...,\n");
        for (int k = 0; k < indent + 1; k++) luaL_addchar(b, ' ');
      }
      i = n - EDGE;
    }
    print_rec(f, t, depth + 1, off + i * t->stride[depth], summarize, indent + 1);
    if (i < n - 1) {
      luaL_addchar(b, ',');
      if (depth == t->ndim - 1) {
        luaL_addchar(b, ' ');
      } else {
        for (int k = 0; k < t->ndim - depth - 1; k++) luaL_addchar(b, '\n');
        for (int k = 0; k < indent + 1; k++) luaL_addchar(b, ' ');
      }
    }
  }
  luaL_addchar(b, ']');
}

static int m_tostring(lua_State *L) {
  rb_tensor *u = to_tensor(L, 1);
  if (!u) return rb_error(L, "tostring: argument #1 must be a tensor, got %s", luaL_typename(L, 1));
  if (!u->t) {
    lua_pushstring(L, "tensor(closed)");
    return 1;
  }
  rc_tensor *t = u->t;
  int64_t numel = rc_numel(t);
  int summarize = numel > SUMMARIZE;
  /* the scan below reads up to 100,000 values (strided): the budget sees them */
  if (rc_charge_elems(t->ctx, "tostring", (numel < 100002 ? numel : 100002) * 4))
    return rb_raise(L);
  /* pick a format from the values that will be shown */
  double amax = 0, amin = INFINITY;
  int all_int = 1;
  int64_t idx[RC_MAX_DIM] = {0};
  for (int64_t k = 0; k < numel; k++) {
    float v = *rc_ptr(t, idx);
    if (isfinite(v)) {
      double a = fabs(v);
      if (a > amax) amax = a;
      if (a > 0 && a < amin) amin = a;
      if (v != floorf(v)) all_int = 0;
    }
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->size[d]) break;
      idx[d] = 0;
    }
    if (k > 100000) break; /* enough to choose a format */
  }
  fmt_t f;
  f.prec = all_int ? 0 : 4;
  f.sci = !all_int && (amax >= 1e8 || (amin < 1e-4 && amin > 0) ||
                       (amax > 0 && amax / (amin > 0 ? amin : 1) > 1e6 && amax >= 1e3));
  if (all_int && amax >= 1e8) f.sci = 1;
  char s[64];
  f.width = 0;
  fmt_num(&f, (float)amax, s, sizeof s);
  f.width = (int)strlen(s) + 1;
  if (all_int && !f.sci) {
    f.width = (int)strlen(s) + 1;
    f.prec = 0;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  f.b = &b;
  luaL_addstring(&b, "tensor(");
  if (t->ndim == 0) {
    f.width = 0;
    print_rec(&f, t, 0, t->offset, 0, 7);
  } else {
    print_rec(&f, t, 0, t->offset, summarize, 7);
  }
  char shape[160];
  snprintf(shape, sizeof shape, ", size=%s", rc_shape_str(t, s, sizeof s));
  luaL_addstring(&b, shape);
  if (t->grad_fn) {
    luaL_addstring(&b, ", grad_fn=");
    luaL_addstring(&b, t->grad_fn->name);
  } else if (t->requires_grad) {
    luaL_addstring(&b, ", requires_grad=true");
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

/* t[i] (Torch7's indexing): the 1-based (negative: from the end) integer key at 2 as a
 * 0-based index into dimension 1. */
static int64_t row_index(lua_State *L, rc_tensor *t) {
  if (t->ndim == 0) rb_error(L, "tensor[i]: a 0-d tensor has no rows (use item())");
  int isint = 0;
  lua_Integer i = lua_tointegerx(L, 2, &isint);
  if (!isint) rb_error(L, "tensor[i]: the index must be an integer, got %s", lua_tostring(L, 2));
  int64_t n = t->size[0], k = i < 0 ? (int64_t)i + n : (int64_t)i - 1;
  if (i == 0 || k < 0 || k >= n)
    rb_error(L,
             "tensor[i]: index %lld is out of range for dimension 1 of size %lld (indices are "
             "1-based; -1 is the last)",
             (long long)i, (long long)n);
  return k;
}

/* t.grad and other properties come through __index after the method table; t[i] is the
 * i-th row (a view, as select(1, i)) or, for a 1-D tensor, the i-th number. */
static int m_index(lua_State *L) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    rc_tensor *t = rb_check(L, 1);
    int64_t k = row_index(L, t);
    if (t->ndim == 1) {
      lua_pushnumber(L, t->storage->data[t->offset + k * t->stride[0]]);
      return 1;
    }
    return rb_push(L, rc_select(t, 0, k));
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  if (!lua_isnil(L, -1)) return 1;
  const char *k = lua_tostring(L, 2);
  if (k && lua_type(L, 2) == LUA_TSTRING) {
    if (strcmp(k, "grad") == 0) {
      rc_tensor *t = rb_check(L, 1);
      if (!t->grad) {
        lua_pushnil(L);
        return 1;
      }
      rc_retain(t->grad);
      return rb_push(L, t->grad);
    }
    if (strcmp(k, "shape") == 0) {
      lua_settop(L, 1);
      return m_size(L);
    }
    if (strcmp(k, "is_leaf") == 0) {
      lua_pushboolean(L, rb_check(L, 1)->grad_fn == NULL);
      return 1;
    }
    if (strcmp(k, "grad_fn") == 0) {
      rc_tensor *t = rb_check(L, 1);
      if (t->grad_fn)
        lua_pushstring(L, t->grad_fn->name);
      else
        lua_pushnil(L);
      return 1;
    }
  }
  return 1; /* nil */
}

/* t.grad = x (or nil); t[i] = v fills row i with the number v or copies the tensor v into
 * it (broadcast), as an in-place op (autograd rules of fill_ and copy_). */
static int m_newindex(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) {
    int64_t k = row_index(L, t);
    rc_tensor *src = NULL;
    float v = 0;
    if (lua_type(L, 3) == LUA_TNUMBER)
      v = (float)lua_tonumber(L, 3);
    else if (!(src = rb_test(L, 3)))
      return rb_error(L, "tensor[i]: the value must be a number or a tensor, got %s",
                      luaL_typename(L, 3));
    rc_tensor *row = rc_select(t, 0, k);
    if (!row) return rb_raise(L);
    int rc = src ? rc_copy_(row, src) : rc_fill_(row, v);
    rc_release(row);
    if (rc) return rb_raise(L);
    return 0;
  }
  const char *k = lua_tostring(L, 2);
  if (k && strcmp(k, "grad") == 0) {
    if (lua_isnil(L, 3)) {
      rc_zero_grad(t);
      return 0;
    }
    rc_tensor *g = rb_check(L, 3);
    if (!rc_same_shape(g, t)) {
      char s1[128], s2[128];
      return rb_error(L, "grad: shape %s does not match the tensor's shape %s",
                      rc_shape_str(g, s1, sizeof s1), rc_shape_str(t, s2, sizeof s2));
    }
    /* a packed parameter's gradient stays its span of the flat gradient buffer: copied in */
    if (rc_set_grad(t, g)) return rb_raise(L);
    return 0;
  }
  return rb_error(L, "tensor: cannot set field '%s' (tensors have no user fields)",
                  k ? k : luaL_typename(L, 2));
}

/* a == b compares identity of the underlying tensor (use eq for values). */
static int m_eqmeta(lua_State *L) {
  rb_tensor *a = to_tensor(L, 1);
  rb_tensor *b = to_tensor(L, 2);
  lua_pushboolean(L, a && b && a->t == b->t);
  return 1;
}

static int m_len(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  lua_pushinteger(L, t->ndim ? t->size[0] : 0);
  return 1;
}

static int f_is_tensor(lua_State *L) {
  lua_pushboolean(L, rb_is_tensor(L, 1));
  return 1;
}

static const luaL_Reg methods[] = {
    {"size", m_size},      {"stride", m_stride}, {"dim", m_dim},
    {"numel", m_numel},    {"item", m_item},     {"totable", m_totable},
    {"get", m_get},        {"set", m_set},       {"is_contiguous", m_is_contiguous},
    {"free", t_release},   {"close", t_release}, {"is_closed", t_is_closed},
    {"nelement", m_numel}, {NULL, NULL}};

static const luaL_Reg functions[] = {{"tensor", f_tensor},
                                     {"empty", f_empty},
                                     {"zeros", f_zeros},
                                     {"ones", f_ones},
                                     {"full", f_full},
                                     {"arange", f_arange},
                                     {"eye", f_eye},
                                     {"zeros_like", f_zeros_like},
                                     {"ones_like", f_ones_like},
                                     {"full_like", f_full_like},
                                     {"is_tensor", f_is_tensor},
                                     {NULL, NULL}};

void rb_open_tensor(lua_State *L, int methods_idx, int module_idx) {
  rb_state_init(L);
  luaL_newmetatable(L, "recur.Size");
  lua_pushcfunction(L, size_tostring);
  lua_setfield(L, -2, "__tostring");
  /* getmetatable(size) shows its name, not the metatable: a __gc added to it would make every
   * later Size finalizable (finalizers run without hooks, outside an embedding's budget) */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "recur.Size");
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
  rb_register(L, methods_idx, module_idx, methods, functions);
  /* metatable: __gc/__close present before any userdata gets it */
  luaL_getmetatable(L, RECUR_TENSOR_MT);
  static const luaL_Reg meta[] = {{"__gc", t_release},
                                  {"__close", t_release},
                                  {"__tostring", m_tostring},
                                  {"__newindex", m_newindex},
                                  {"__eq", m_eqmeta},
                                  {"__len", m_len},
                                  {NULL, NULL}};
  rb_setfuncs(L, meta);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
  lua_pushvalue(L, methods_idx);
  lua_pushcclosure(L, m_index, 2);
  lua_setfield(L, -2, "__index");
  /* scripts cannot reach the metatable (and its __gc) through getmetatable */
  lua_pushliteral(L, RECUR_TENSOR_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}
