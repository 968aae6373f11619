/* Lua bindings: system facilities: BLAS threads, build configuration, memory accounting,
 * the numerics check flag. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "bind.h"

#define RB_MAX_THREADS 256

/* recur.threads([n]): sets the BLAS thread count when n is given; returns the current one. */
static int f_threads(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    int isint = 0;
    lua_Integer n = lua_type(L, 1) == LUA_TNUMBER ? lua_tointegerx(L, 1, &isint) : 0;
    if (!isint)
      return luaL_error(L, "threads: argument #1 must be an integer, got %s",
                        lua_type(L, 1) == LUA_TNUMBER ? lua_tostring(L, 1) : luaL_typename(L, 1));
    if (n < 1 || n > RB_MAX_THREADS)
      return luaL_error(L, "threads: argument #1 must be between 1 and %d, got %I", RB_MAX_THREADS,
                        n);
    openblas_set_num_threads((int)n);
  }
  lua_pushinteger(L, openblas_get_num_threads());
  return 1;
}

/* The version number in openblas_get_config() ("OpenBLAS 0.3.21 ..."), or "unknown". */
static void push_blas_version(lua_State *L, const char *config) {
  const char *p = config ? strstr(config, "OpenBLAS ") : NULL;
  if (p) {
    p += strlen("OpenBLAS ");
    size_t n = strspn(p, "0123456789.");
    if (n > 0) {
      lua_pushlstring(L, p, n);
      return;
    }
  }
  lua_pushliteral(L, "unknown");
}

/* recur.config(): version strings and the BLAS configuration (upvalue 1: the module). */
static int f_config(lua_State *L) {
  const char *config = openblas_get_config();
  const char *core = openblas_get_corename();
  lua_createtable(L, 0, 3);
  lua_getfield(L, lua_upvalueindex(1), "_VERSION");
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushliteral(L, "recur 0.1.0");
  }
  lua_setfield(L, -2, "version");
  lua_pushliteral(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  lua_createtable(L, 0, 5);
  lua_pushliteral(L, "OpenBLAS");
  lua_setfield(L, -2, "vendor");
  push_blas_version(L, config);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, config ? config : "");
  lua_setfield(L, -2, "config");
  lua_pushstring(L, core ? core : "unknown");
  lua_setfield(L, -2, "core");
  lua_pushinteger(L, openblas_get_num_threads());
  lua_setfield(L, -2, "threads");
  lua_setfield(L, -2, "blas");
  return 1;
}

/* recur.memory(): tensor storage accounting of this Lua state's runtime context, plus the
 * bytes of tensor headers and of the runtime's other structures (autograd graph, ...). */
static int f_memory(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)c->meta_bytes);
  lua_setfield(L, -2, "headers");
  lua_pushinteger(L, (lua_Integer)c->aux_bytes);
  lua_setfield(L, -2, "runtime");
  lua_pushinteger(L, (lua_Integer)c->live_bytes);
  lua_setfield(L, -2, "live");
  lua_pushinteger(L, (lua_Integer)c->peak_bytes);
  lua_setfield(L, -2, "peak");
  lua_pushinteger(L, (lua_Integer)c->alloc_count);
  lua_setfield(L, -2, "allocations");
  return 1;
}

/* recur.reset_peak_memory(): the peak restarts from what is live now. */
static int f_reset_peak_memory(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  c->peak_bytes = c->live_bytes;
  return 0;
}

/* recur.check_numerics([flag]): NaN/Inf at backward's root becomes an error when on.
 * Returns the previous setting (without an argument: only returns the current one). */
static int f_check_numerics(lua_State *L) {
  if (lua_isnone(L, 1)) {
    lua_pushboolean(L, rb_ctx(L)->check_numerics);
    return 1;
  }
  if (lua_type(L, 1) != LUA_TBOOLEAN)
    return luaL_error(L, "check_numerics: argument #1 must be a boolean (got %s)",
                      luaL_typename(L, 1));
  rc_ctx *c = rb_ctx(L);
  int old = c->check_numerics;
  c->check_numerics = lua_toboolean(L, 1);
  lua_pushboolean(L, old);
  return 1;
}

/* recur.rnn_helper([on]): whether fused cells share their per-step work with a helper thread
 * when there is more than one BLAS thread (default true); returns the previous setting. */
static int f_rnn_helper(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  int old = !c->no_rnn_helper;
  if (!lua_isnoneornil(L, 1)) {
    if (lua_type(L, 1) != LUA_TBOOLEAN)
      return luaL_error(L, "rnn_helper: argument #1 must be a boolean (got %s)",
                        luaL_typename(L, 1));
    c->no_rnn_helper = !lua_toboolean(L, 1);
  }
  lua_pushboolean(L, old);
  return 1;
}

void rb_open_system(lua_State *L, int methods, int module) {
  static const luaL_Reg functions[] = {{"threads", f_threads},
                                       {"memory", f_memory},
                                       {"reset_peak_memory", f_reset_peak_memory},
                                       {"check_numerics", f_check_numerics},
                                       {"rnn_helper", f_rnn_helper},
                                       {NULL, NULL}};
  rb_register(L, methods, module, NULL, functions);
  /* config reads the module's _VERSION when called (the Lua half sets it later). */
  lua_pushvalue(L, module);
  lua_pushcclosure(L, f_config, 1);
  lua_setfield(L, module, "config");
}
