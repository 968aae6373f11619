/* Lua bindings (internal, for bench/charrnn.lua): the trace of the matrix products and their
 * replay (runtime/gemm_trace.c), and which kernel a product's sizes get.
 *
 *   recur._gemm_trace(true)         starts a trace (dropping any previous one)
 *   recur._gemm_trace(false)        stops it; returns the calls, a list of
 *                                   {op = "gemm" | "packed" | "pack", m, n, k, ta, tb, threads,
 *                                    kernel} (ta, tb booleans; kernel an integer)
 *   recur._gemm_replay(calls [, reps])  runs those calls alone on scratch data, reps times
 *                                   (default 5); returns the best pass's seconds
 *   recur._gemm_route(m, n, k)      "blas", "recur" or "recur2" (recur's kernel on 2 threads) */
#include <stdlib.h>
#include <string.h>

#include "../runtime/gemm.h"
#include "bind.h"

static const char *const op_names[] = {"gemm", "packed", "pack", NULL};

static int f_gemm_trace(lua_State *L) {
  if (lua_type(L, 1) != LUA_TBOOLEAN)
    return luaL_error(L, "_gemm_trace: argument #1 must be a boolean (got %s)",
                      luaL_typename(L, 1));
  if (lua_toboolean(L, 1)) {
    rc_gemm_trace_start(rb_ctx(L));
    return 0;
  }
  size_t n = 0;
  int lost = 0;
  rc_gemm_call *c = rc_gemm_trace_stop(rb_ctx(L), &n, &lost);
  if (lost) {
    free(c);
    return luaL_error(L, "_gemm_trace: out of memory while tracing");
  }
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 8);
    lua_pushstring(L, op_names[c[i].op]);
    lua_setfield(L, -2, "op");
    lua_pushinteger(L, (lua_Integer)c[i].M);
    lua_setfield(L, -2, "m");
    lua_pushinteger(L, (lua_Integer)c[i].N);
    lua_setfield(L, -2, "n");
    lua_pushinteger(L, (lua_Integer)c[i].K);
    lua_setfield(L, -2, "k");
    lua_pushboolean(L, c[i].ta);
    lua_setfield(L, -2, "ta");
    lua_pushboolean(L, c[i].tb);
    lua_setfield(L, -2, "tb");
    lua_pushinteger(L, c[i].threads);
    lua_setfield(L, -2, "threads");
    lua_pushinteger(L, c[i].kernel);
    lua_setfield(L, -2, "kernel");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(c);
  return 1;
}

/* field k of the call table at the top: an integer in lo .. hi */
static int64_t int_field(lua_State *L, size_t i, const char *k, int64_t lo, int64_t hi) {
  lua_getfield(L, -1, k);
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isint);
  if (!isint || v < lo || v > hi)
    luaL_error(L, "_gemm_replay: calls[%d].%s must be an integer in %d .. %d", (int)i + 1, k,
               (int)lo, (int)hi);
  lua_pop(L, 1);
  return (int64_t)v;
}

static int bool_field(lua_State *L, size_t i, const char *k) {
  lua_getfield(L, -1, k);
  if (lua_type(L, -1) != LUA_TBOOLEAN)
    luaL_error(L, "_gemm_replay: calls[%d].%s must be a boolean", (int)i + 1, k);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* each size at most 2^20 and each operand at most 2^28 floats: the replay allocates them */
#define REPLAY_DIM (1 << 20)
#define REPLAY_FLOATS ((int64_t)1 << 28)

static int f_gemm_replay(lua_State *L) {
  /* a measurement tool: its scratch operands (up to 1 GB each) are not tensors and its loops
   * charge nothing, so a runtime with a memory limit or a work budget (a sandboxed or embedded
   * script) does not get it */
  rc_ctx *ctx = rb_ctx(L);
  if (ctx->limit_bytes || ctx->work_limit)
    return luaL_error(L, "_gemm_replay: not available with a memory limit or a work budget");
  rb_check_table(L, 1);
  lua_Integer reps = 5;
  if (!lua_isnoneornil(L, 2)) {
    int isint = 0;
    reps = lua_tointegerx(L, 2, &isint);
    if (!isint || reps < 1 || reps > 1000)
      return luaL_error(L, "_gemm_replay: argument #2 (reps) must be an integer in 1 .. 1000");
  }
  size_t n = (size_t)luaL_len(L, 1);
  rc_gemm_call *c = lua_newuserdatauv(L, (n ? n : 1) * sizeof *c, 0); /* freed by the GC */
  for (size_t i = 0; i < n; i++) {
    if (lua_rawgeti(L, 1, (lua_Integer)i + 1) != LUA_TTABLE)
      return luaL_error(L, "_gemm_replay: calls[%d] must be a table", (int)i + 1);
    lua_getfield(L, -1, "op");
    const char *op = lua_tostring(L, -1);
    int o = -1;
    for (int k = 0; op && op_names[k]; k++)
      if (strcmp(op, op_names[k]) == 0) o = k;
    if (o < 0)
      return luaL_error(L, "_gemm_replay: calls[%d].op must be \"gemm\", \"packed\" or \"pack\"",
                        (int)i + 1);
    lua_pop(L, 1);
    c[i].op = o;
    c[i].M = int_field(L, i, "m", 1, REPLAY_DIM);
    c[i].N = int_field(L, i, "n", 1, REPLAY_DIM);
    c[i].K = int_field(L, i, "k", 0, REPLAY_DIM);
    c[i].ta = bool_field(L, i, "ta");
    c[i].tb = bool_field(L, i, "tb");
    c[i].threads = (int)int_field(L, i, "threads", 1, 256);
    c[i].kernel = (int)int_field(L, i, "kernel", 0, 2);
    if (c[i].M * c[i].K > REPLAY_FLOATS || c[i].K * c[i].N > REPLAY_FLOATS ||
        c[i].M * c[i].N > REPLAY_FLOATS)
      return luaL_error(L, "_gemm_replay: calls[%d] is too large (%d x %d x %d)", (int)i + 1,
                        (int)c[i].M, (int)c[i].N, (int)c[i].K);
    lua_pop(L, 1);
  }
  double t = rc_gemm_replay(c, n, (int)reps);
  if (t < 0) return luaL_error(L, "_gemm_replay: out of memory");
  lua_pushnumber(L, t);
  return 1;
}

static int f_gemm_route(lua_State *L) {
  int64_t s[3];
  for (int i = 0; i < 3; i++) {
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, i + 1, &isint);
    if (!isint || v < 0)
      return luaL_error(L, "_gemm_route: argument #%d must be a non-negative integer", i + 1);
    s[i] = (int64_t)v;
  }
  static const char *const names[] = {"blas", "recur", "recur2"};
  lua_pushstring(L, names[rc_gemm_route(s[0], s[1], s[2])]);
  return 1;
}

void rb_open_gemm_trace(lua_State *L, int methods, int module) {
  static const luaL_Reg functions[] = {{"_gemm_trace", f_gemm_trace},
                                       {"_gemm_replay", f_gemm_replay},
                                       {"_gemm_route", f_gemm_route},
                                       {NULL, NULL}};
  rb_register(L, methods, module, NULL, functions);
}
