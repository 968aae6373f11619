/* Lua bindings for autograd: requires_grad, backward, grad mode, detach, and
 * recur.Function (differentiable ops written in Lua that share the C tape). */
#include <stdlib.h>
#include <string.h>

#include "bind.h"

static const char FNREFS_KEY = 'f'; /* registry: table of live Lua-op records */

static void push_fnrefs(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &FNREFS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &FNREFS_KEY);
  }
}

/* Releases the records of Lua ops whose nodes died (they cannot touch Lua themselves). */
static void drain_deferred(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  if (!c->n_deferred) return;
  push_fnrefs(L);
  for (size_t i = 0; i < c->n_deferred; i++) luaL_unref(L, -1, c->deferred[i]);
  c->n_deferred = 0;
  lua_pop(L, 1);
}

/* t:requires_grad() asks; t:requires_grad(flag) sets and returns t;
 * t:requires_grad_([flag]) sets (default true) and returns t, like PyTorch. */
static int m_requires_grad_(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (rc_set_requires_grad(t, lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2))) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

static int m_requires_grad(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  if (lua_gettop(L) == 1) {
    lua_pushboolean(L, rc_tensor_needs_grad(t));
    return 1;
  }
  if (rc_set_requires_grad(t, lua_toboolean(L, 2))) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

static int m_zero_grad(lua_State *L) {
  rc_zero_grad(rb_check(L, 1));
  lua_settop(L, 1);
  return 1;
}

static int m_detach(lua_State *L) {
  return rb_push(L, rc_detach(rb_check(L, 1)));
}

/* t:backward([grad], [{retain_graph = bool}]) */
static int m_backward(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  rc_tensor *g = NULL;
  int opts = 0;
  if (rb_is_tensor(L, 2)) {
    g = rb_check(L, 2);
    opts = 3;
  } else if (lua_istable(L, 2)) {
    opts = 2;
  } else if (!lua_isnoneornil(L, 2)) {
    return rb_error(L,
                    "backward: argument #2 must be a gradient tensor or an options table, "
                    "got %s",
                    luaL_typename(L, 2));
  }
  int retain = opts ? rb_opt_bool_field(L, opts, "retain_graph", 0) : 0;
  rc_ctx *c = rb_ctx(L);
  void *prev = c->host;
  c->host = L;
  int rc = rc_backward(c, &t, &g, 1, retain);
  c->host = prev;
  drain_deferred(L);
  if (rc) return rb_raise(L);
  return 0;
}

/* recur.backward({roots}, {grads}) for several roots at once */
static int f_backward_many(lua_State *L) {
  rb_check_table(L, 1);
  int n = (int)luaL_len(L, 1);
  if (n < 1 || n > 64) return rb_error(L, "backward: between 1 and 64 roots, got %d", n);
  rc_tensor *roots[64], *grads[64];
  for (int i = 0; i < n; i++) {
    lua_geti(L, 1, i + 1);
    roots[i] = rb_check(L, -1);
    lua_pop(L, 1);
    grads[i] = NULL;
    if (lua_istable(L, 2)) {
      lua_geti(L, 2, i + 1);
      if (!lua_isnil(L, -1)) grads[i] = rb_check(L, -1);
      lua_pop(L, 1);
    }
  }
  int retain = rb_opt_bool_field(L, 3, "retain_graph", 0);
  rc_ctx *c = rb_ctx(L);
  void *prev = c->host;
  c->host = L;
  int rc = rc_backward(c, roots, grads, n, retain);
  c->host = prev;
  drain_deferred(L);
  if (rc) return rb_raise(L);
  return 0;
}

/* recur.no_grad(fn, ...): runs fn with gradient recording off; returns its results. */
static int f_no_grad(lua_State *L) {
  rb_check_function(L, 1);
  rc_ctx *c = rb_ctx(L);
  int prev = c->grad_enabled;
  c->grad_enabled = 0;
  int base = 0;
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  c->grad_enabled = prev;
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L) - base;
}

static int f_enable_grad(lua_State *L) {
  rb_check_function(L, 1);
  rc_ctx *c = rb_ctx(L);
  int prev = c->grad_enabled;
  c->grad_enabled = 1;
  int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
  c->grad_enabled = prev;
  if (rc != LUA_OK) return lua_error(L);
  return lua_gettop(L);
}

static int f_is_grad_enabled(lua_State *L) {
  lua_pushboolean(L, rb_ctx(L)->grad_enabled);
  return 1;
}

static int f_set_grad_enabled(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  int prev = c->grad_enabled;
  c->grad_enabled = lua_toboolean(L, 1);
  lua_pushboolean(L, prev);
  return 1;
}

/* ---- recur.Function ---- */

typedef struct {
  int ref; /* record in the fnrefs table: {def = ..., ctx = ..., pos = {...}, nargs = n} */
  rc_ctx *ctx;
} fn_ext;

static void fn_ext_free(void *p) {
  fn_ext *e = p;
  rc_defer_release(e->ctx, e->ref);
  rc_mem_free(e->ctx, e);
}

typedef struct {
  rc_node *n;
  rc_tensor **gout, **gin;
} bw_call;

/* Runs inside lua_pcall so that no Lua error can cross the runtime's engine. */
static int fn_backward_call(lua_State *L) {
  bw_call *bc = lua_touserdata(L, 1);
  rc_node *n = bc->n;
  fn_ext *e = n->ext;
  push_fnrefs(L);
  lua_rawgeti(L, -1, e->ref); /* record */
  int rec = lua_gettop(L);
  lua_getfield(L, rec, "def");
  lua_getfield(L, -1, "backward");
  if (!lua_isfunction(L, -1))
    return rb_error(L, "recur.Function: the definition has no backward function");
  lua_getfield(L, rec, "ctx");
  for (int k = 0; k < n->n_out; k++) {
    rc_retain(bc->gout[k]);
    rb_push(L, bc->gout[k]);
  }
  lua_getfield(L, rec, "nargs");
  int nargs = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  int base = lua_gettop(L) - n->n_out - 2;
  lua_call(L, 1 + n->n_out, nargs);
  /* results: one per forward argument; pick those at tensor positions */
  lua_getfield(L, rec, "pos");
  int pos_idx = lua_gettop(L);
  for (int k = 0; k < n->n_in; k++) {
    lua_geti(L, pos_idx, k + 1);
    int p = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    int idx = base + p;
    if (lua_isnil(L, idx)) continue;
    rc_tensor *g = rb_test(L, idx);
    if (!g)
      return rb_error(L, "recur.Function backward: result %d must be a tensor or nil, got %s", p,
                      luaL_typename(L, idx));
    rc_retain(g);
    bc->gin[k] = g;
  }
  return 0;
}

static int fn_backward(rc_node *n, rc_tensor **gout, rc_tensor **gin) {
  lua_State *L = n->ctx->host;
  if (!L) return rc_error(n->ctx, "backward: a Lua-defined op needs the Lua state that runs it");
  bw_call bc = {n, gout, gin};
  int top = lua_gettop(L);
  lua_pushcfunction(L, fn_backward_call);
  lua_pushlightuserdata(L, &bc);
  int rc = lua_pcall(L, 1, 0, 0);
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    rc_error(n->ctx, "%s", msg ? msg : "error in a Lua-defined backward");
    lua_settop(L, top);
    for (int k = 0; k < n->n_in; k++) {
      rc_release(gin[k]);
      gin[k] = NULL;
    }
    return -1;
  }
  lua_settop(L, top);
  return 0;
}

/* F.apply(...): upvalue 1 is the definition table. */
static int fn_apply(lua_State *L) {
  drain_deferred(L);
  int nargs = lua_gettop(L);
  rc_ctx *c = rb_ctx(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  int def = lua_gettop(L);
  /* ctx object: a table with save_for_backward and needs_input_grad */
  lua_newtable(L);
  int ctxi = lua_gettop(L);
  /* recur._function_ctx_mt is an ordinary field a script can replace: refuse a finalizer,
   * which would run outside the embedding's instruction budget (finalizers run without
   * hooks), and anything but a table. */
  if (lua_getfield(L, def, "_ctx_mt") != LUA_TTABLE)
    return rb_error(L, "recur.Function: recur._function_ctx_mt must be a table");
  lua_pushliteral(L, "__gc");
  if (lua_rawget(L, -2) != LUA_TNIL)
    return rb_error(L, "recur.Function: the ctx metatable must not have __gc");
  lua_pop(L, 1);
  lua_setmetatable(L, ctxi);
  lua_newtable(L); /* needs_input_grad */
  for (int i = 1; i <= nargs; i++) {
    rc_tensor *t = rb_test(L, i);
    lua_pushboolean(L, t && rc_tensor_needs_grad(t) && c->grad_enabled);
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, ctxi, "needs_input_grad");
  /* forward with recording off */
  lua_getfield(L, def, "forward");
  if (!lua_isfunction(L, -1)) return rb_error(L, "recur.Function: definition has no forward");
  lua_pushvalue(L, ctxi);
  for (int i = 1; i <= nargs; i++) lua_pushvalue(L, i);
  int prev = c->grad_enabled;
  c->grad_enabled = 0;
  int rc = lua_pcall(L, nargs + 1, LUA_MULTRET, 0);
  c->grad_enabled = prev;
  if (rc != LUA_OK) return lua_error(L);
  int first = ctxi + 1, nout = lua_gettop(L) - ctxi;
  if (nout < 1) return rb_error(L, "recur.Function: forward returned nothing");
  for (int k = 0; k < nout; k++)
    if (!rb_test(L, first + k))
      return rb_error(L, "recur.Function: forward result %d must be a tensor, got %s", k + 1,
                      luaL_typename(L, first + k));
  /* tensor inputs */
  rc_tensor *ins[64];
  int pos[64], nin = 0;
  for (int i = 1; i <= nargs; i++) {
    rc_tensor *t = rb_test(L, i);
    if (!t) continue;
    if (nin == 64) return rb_error(L, "recur.Function: at most 64 tensor arguments");
    ins[nin] = t;
    pos[nin++] = i;
  }
  int record = rc_needs_grad(c, ins, nin);
  /* each output becomes a fresh tensor header (sharing data) that the node owns as output k */
  for (int k = 0; k < nout; k++) {
    rc_tensor *o = rc_detach(rb_test(L, first + k));
    if (!o) return rb_raise(L);
    rb_push(L, o);
    lua_replace(L, first + k);
  }
  if (!record) return nout;
  /* The record {def, ctx, pos, nargs} first: these Lua allocations may raise, and nothing
   * C-owned exists yet (the node and its extension come after). */
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, def);
  lua_setfield(L, -2, "def");
  lua_pushvalue(L, ctxi);
  lua_setfield(L, -2, "ctx");
  lua_createtable(L, nin, 0);
  for (int k = 0; k < nin; k++) {
    lua_pushinteger(L, pos[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "pos");
  lua_pushinteger(L, nargs);
  lua_setfield(L, -2, "nargs");
  push_fnrefs(L);
  lua_insert(L, -2);
  int ref = luaL_ref(L, -2);
  lua_pop(L, 1);
  rc_node *n = rc_node_new(c, "LuaFunctionBackward", fn_backward, ins, nin, nout);
  fn_ext *e = n ? rc_mem_alloc(c, sizeof *e) : NULL;
  if (!e) { /* the message (memory limit or out of memory) is in the context */
    push_fnrefs(L);
    luaL_unref(L, -1, ref);
    lua_pop(L, 1);
    rc_node_release(n);
    return rb_raise(L);
  }
  e->ref = ref;
  e->ctx = c;
  n->ext = e;
  n->ext_free = fn_ext_free;
  for (int k = 0; k < nout; k++) rc_node_set_output(n, k, rb_test(L, first + k));
  rc_node_release(n);
  lua_settop(L, first + nout - 1);
  return nout;
}

/* recur.Function{forward = f, backward = g}: returns F with F.apply(...) and F(...). */
static int f_function(lua_State *L) {
  rb_check_table(L, 1);
  lua_getfield(L, 1, "forward");
  lua_getfield(L, 1, "backward");
  if (!lua_isfunction(L, -2) || !lua_isfunction(L, -1))
    return rb_error(L, "Function: the definition needs forward and backward functions");
  lua_pop(L, 2);
  lua_newtable(L); /* the definition we keep (a copy, so later edits do not matter) */
  int def = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, def);
  }
  /* ctx metatable: methods save_for_backward / saved_tensors */
  lua_getfield(L, lua_upvalueindex(1), "_function_ctx_mt");
  lua_setfield(L, def, "_ctx_mt");
  lua_newtable(L); /* F */
  lua_pushvalue(L, def);
  lua_pushcclosure(L, fn_apply, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "apply");
  /* metatable with __call = function(_, ...) return apply(...) end */
  lua_newtable(L);
  lua_getfield(L, lua_upvalueindex(1), "_function_call");
  lua_pushvalue(L, -3);
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -3);
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg methods[] = {
    {"requires_grad", m_requires_grad}, {"requires_grad_", m_requires_grad_},
    {"zero_grad", m_zero_grad},         {"detach", m_detach},
    {"backward", m_backward},           {NULL, NULL}};

static const luaL_Reg functions[] = {{"no_grad", f_no_grad},
                                     {"enable_grad", f_enable_grad},
                                     {"is_grad_enabled", f_is_grad_enabled},
                                     {"set_grad_enabled", f_set_grad_enabled},
                                     {"backward", f_backward_many},
                                     {NULL, NULL}};

void rb_open_autograd(lua_State *L, int methods_idx, int module_idx) {
  rb_register(L, methods_idx, module_idx, methods, functions);
  lua_pushvalue(L, module_idx);
  lua_pushcclosure(L, f_function, 1);
  lua_setfield(L, module_idx, "Function");
}
