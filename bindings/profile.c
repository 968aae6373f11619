/* Lua binding (internal, for tools/profile_step.lua) of the runtime's profile
 * (runtime/profile.h):
 *
 *   recur._profile(true)    starts a profile (dropping one in progress)
 *   recur._profile(false)   stops it; returns nil when none was running, else
 *     { backward = { {name =, seconds =, calls =}, ... } (slowest first),
 *       lost = calls of nodes past the table's room,
 *       wave = { forward = W, backward = W },
 *       split = { forward = runs, backward = runs } (the batch split's, runtime/rnn_split.c),
 *       generate = { calls =, steps =, helper_calls =, chunks = {caller, helper} } (batch-1
 *         generation, runtime/rnn_generate.c: the recurrent products' column chunks each
 *         thread computed) }
 *   where W, the layer wavefront's two-thread runs (runtime/rnn_stack.c), times summed over
 *   the runs: { runs =, late_runs =, seconds =, wait = {caller, helper},
 *               done = {caller, helper} (recurrences done, from each run's start),
 *               products = {caller, helper} (backward: the products after them done) } */
#include <stdlib.h>

#include "../runtime/profile.h"
#include "bind.h"

static int cmp_seconds(const void *a, const void *b) {
  double x = ((const rc_profile_node *)a)->seconds, y = ((const rc_profile_node *)b)->seconds;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* a list {caller, helper} of v[0], v[1] */
static void push_pair(lua_State *L, const double *v) {
  lua_createtable(L, 2, 0);
  for (int k = 0; k < 2; k++) {
    lua_pushnumber(L, v[k]);
    lua_rawseti(L, -2, k + 1);
  }
}

/* t[k] = v, t on the top of the stack */
static void set_int(lua_State *L, const char *k, long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static void push_wave(lua_State *L, const rc_profile_wave *w, int backward) {
  lua_createtable(L, 0, 7);
  set_int(L, "runs", w->runs);
  set_int(L, "late_runs", w->late_runs);
  lua_pushnumber(L, w->seconds);
  lua_setfield(L, -2, "seconds");
  push_pair(L, w->wait);
  lua_setfield(L, -2, "wait");
  push_pair(L, w->done);
  lua_setfield(L, -2, "done");
  if (backward) {
    push_pair(L, w->products);
    lua_setfield(L, -2, "products");
  }
}

static int f_profile(lua_State *L) {
  if (lua_type(L, 1) != LUA_TBOOLEAN)
    return rb_error(L, "_profile: argument #1 must be a boolean (got %s)", luaL_typename(L, 1));
  rc_ctx *c = rb_ctx(L);
  if (lua_toboolean(L, 1)) {
    if (rc_profile_start(c)) return rb_raise(L);
    return 0;
  }
  rc_profile *stopped = rc_profile_stop(c);
  if (!stopped) {
    lua_pushnil(L);
    return 1;
  }
  /* a copy on the stack, the block freed before any table is made (making one may raise) */
  rc_profile copy = *stopped, *p = &copy;
  rc_profile_free(c, stopped);
  qsort(p->node, (size_t)p->n_nodes, sizeof p->node[0], cmp_seconds);
  lua_createtable(L, 0, 3);
  lua_createtable(L, p->n_nodes, 0);
  for (int i = 0; i < p->n_nodes; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, p->node[i].name);
    lua_setfield(L, -2, "name");
    lua_pushnumber(L, p->node[i].seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushinteger(L, p->node[i].calls);
    lua_setfield(L, -2, "calls");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "backward");
  lua_pushinteger(L, p->lost);
  lua_setfield(L, -2, "lost");
  lua_createtable(L, 0, 2);
  push_wave(L, &p->wave[0], 0);
  lua_setfield(L, -2, "forward");
  push_wave(L, &p->wave[1], 1);
  lua_setfield(L, -2, "backward");
  lua_setfield(L, -2, "wave");
  lua_createtable(L, 0, 2);
  set_int(L, "forward", p->split_runs[0]);
  set_int(L, "backward", p->split_runs[1]);
  lua_setfield(L, -2, "split");
  lua_createtable(L, 0, 4);
  set_int(L, "calls", p->gen_calls);
  set_int(L, "steps", p->gen_steps);
  set_int(L, "helper_calls", p->gen_helper_calls);
  lua_createtable(L, 2, 0);
  for (int k = 0; k < 2; k++) {
    lua_pushinteger(L, p->gen_chunks[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "chunks");
  lua_setfield(L, -2, "generate");
  return 1;
}

void rb_open_profile(lua_State *L, int methods, int module) {
  static const luaL_Reg functions[] = {{"_profile", f_profile}, {NULL, NULL}};
  rb_register(L, methods, module, NULL, functions);
}
