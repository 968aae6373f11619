/* The binding toolkit (bind.h): the per-state runtime context, pushing tensors to Lua and
 * reporting their bytes to the collector, error formatting, argument checks, and the
 * registration that lets every message name its function. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"

static const char CTX_KEY = 'c'; /* registry key: address of this byte */
#define RB_PENDING 4

typedef struct {
  unsigned magic;
  rc_ctx *ctx;
  size_t live_after_full; /* live bytes after the last full collection we forced (or the
                           * lowest since, without a memory limit) */
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

void rb_push_state(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &CTX_KEY);
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

/* Functions registered by rb_setfuncs carry the tensor metatable as upvalue 2, so the check
 * is one raw comparison. */
rb_tensor *rb_to_tensor(lua_State *L, int idx) {
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
 * was allocated, and a full collection when live tensor memory has grown by a quarter since
 * the lowest point after the last one we forced, by at least 16 MB and by 8 times the Lua
 * heap. Without this a loop that makes big tensors grows until someone calls
 * collectgarbage(), since Lua only sees the small userdata. The incremental steps alone free
 * little (a char-RNN step leaves its Lua-held outputs behind), and waiting for live memory
 * to double let a training loop's peak RSS carry up to its own size again in garbage
 * (bench/README.md, "Peak RSS").
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
    /* the base follows live memory down (a full collection in the middle of a training
     * step would otherwise set it at the step's peak of activations) */
    if (c->live_bytes < s->live_after_full) s->live_after_full = c->live_bytes;
    /* a full collection costs in proportion to the Lua heap: wait for 8 times its size in
     * new tensor bytes, so that a host with a large heap does not pay it every step */
    size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT) << 10;
    size_t grow = s->live_after_full / 4;
    if (grow < ((size_t)16 << 20)) grow = (size_t)16 << 20;
    if (grow < 8 * heap) grow = 8 * heap;
    size_t threshold = s->live_after_full + grow;
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
  return rb_to_tensor(L, idx) != NULL;
}

rc_tensor *rb_test(lua_State *L, int idx) {
  rb_tensor *u = rb_to_tensor(L, idx);
  return u ? u->t : NULL;
}

rc_tensor *rb_check(lua_State *L, int idx) {
  rb_tensor *u = rb_to_tensor(L, idx);
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
