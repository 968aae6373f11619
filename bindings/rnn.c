/* Lua bindings for the fused recurrent cells (runtime/rnn.h): the cell userdata.
 *
 *   recur._rnn_cell(kind, input, hidden, reset_after) -> cell   (recur.rnn.Cell wraps it)
 *   cell:_forward(x, s1, s2, lengths) -> y, s1', [s2']         (recur.rnn adds :forward)
 *   cell:_step(x, s1, s2) -> y, s1', [s2']
 *   cell:parameters() -> { {name, tensor}, ... } in a fixed order, the same tensors every call
 *   cell.kind, cell.input, cell.hidden, cell.reset_after, cell.state_names, cell.n_states
 *   cell:flops(T, B) -> GEMM FLOPs of one forward + backward
 * lengths: nil, a list of integers or a 1-D tensor of B integers, each in 0..T.
 * The methods table is recur._rnn_cell_methods: the Lua half adds methods to it. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "../runtime/rnn.h"
#include "../runtime/team.h"
#include "bind.h"

#define RNN_CELL_MT "recur.RNNCell"

typedef struct {
  rc_cell *cell;
} rb_cell;

static rc_cell *check_cell(lua_State *L, int idx) {
  rb_cell *u = luaL_testudata(L, idx, RNN_CELL_MT);
  if (u && !u->cell) rb_error(L, "%s: argument #%d is a closed rnn cell", rb_fname(L), idx);
  if (!u)
    rb_error(L, "%s: argument #%d must be an rnn cell, got %s", rb_fname(L), idx,
             luaL_typename(L, idx));
  return u->cell;
}

static int cell_gc(lua_State *L) {
  rb_cell *u = luaL_testudata(L, 1, RNN_CELL_MT);
  if (u && u->cell) { /* closed before the release, as liolib's aux_close */
    rc_cell *c = u->cell;
    u->cell = NULL;
    rc_cell_release(c);
  }
  return 0;
}

rc_cell *rb_check_cell(lua_State *L, int idx) {
  return check_cell(L, idx);
}

/* recur._rnn_cell_types() -> a new list of the fused cells' kinds (runtime/rnn_cells.h) */
static int f_rnn_cell_types(lua_State *L) {
  int n = rc_cell_kind_count();
  lua_createtable(L, n, 0);
  for (int k = 0; k < n; k++) {
    lua_pushstring(L, rc_cell_kind_name(k));
    lua_rawseti(L, -2, k + 1);
  }
  return 1;
}

/* recur._rnn_cell(kind, input, hidden, reset_after) */
static int f_rnn_cell(lua_State *L) {
  const char *kind = rb_check_string(L, 1);
  if (rc_cell_kind_of(kind) < 0) {
    luaL_Buffer b; /* the list of kinds, from the table of cells */
    luaL_buffinit(L, &b);
    for (int k = 0; k < rc_cell_kind_count(); k++) {
      if (k) luaL_addstring(&b, ", ");
      luaL_addstring(&b, rc_cell_kind_name(k));
    }
    luaL_pushresult(&b);
    return rb_error(L, "rnn cell: unknown cell type '%s' (%s)", kind, lua_tostring(L, -1));
  }
  int64_t input = rb_check_int(L, 2), hidden = rb_check_int(L, 3);
  int reset_after = lua_toboolean(L, 4);
  rb_cell *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->cell = NULL;
  luaL_setmetatable(L, RNN_CELL_MT);
  int ud = lua_gettop(L);
  u->cell = rc_cell_new(rb_ctx(L), kind, input, hidden, reset_after);
  if (!u->cell) return rb_raise(L);
  /* the parameters' userdata, made once so they keep their identity */
  int np = rc_cell_n_params(u->cell);
  lua_createtable(L, np, 0);
  for (int p = 0; p < np; p++) {
    rc_tensor *t = rc_cell_param(u->cell, p);
    rc_retain(t);
    rb_push(L, t);
    lua_rawseti(L, -2, p + 1);
  }
  lua_setiuservalue(L, ud, 1);
  lua_settop(L, ud);
  return 1;
}

/* Reads optional state arguments at idx, idx+1 (nil or tensors). fn names what the user
 * called (recur.rnn checks first; these catch direct calls of _forward/_step). */
static void check_states(lua_State *L, rc_cell *cell, int idx, rc_tensor **st, const char *fn) {
  int ns = rc_cell_n_states(cell);
  st[0] = st[1] = NULL;
  for (int k = 0; k < 2; k++) {
    if (lua_isnoneornil(L, idx + k)) continue;
    if (k >= ns)
      rb_error(L, "%s: a %s cell has one state, but a second one was given", fn,
               rc_cell_kind(cell));
    if (!rb_is_tensor(L, idx + k))
      rb_error(L, "%s: initial state %d (%s) must be a tensor or nil, got %s", fn, k + 1,
               rc_cell_state_name(cell, k), luaL_typename(L, idx + k));
    st[k] = rb_check(L, idx + k);
  }
}

/* lengths at idx: nil, a list or a tensor. Returns NULL for nil; otherwise B values in a
 * Lua-owned buffer (left on the stack). */
static const int64_t *check_lengths(lua_State *L, int idx, int64_t B, const char *fn) {
  if (lua_isnoneornil(L, idx)) return NULL;
  int64_t *len = lua_newuserdatauv(L, (size_t)(B ? B : 1) * sizeof(int64_t), 0);
  if (rb_is_tensor(L, idx)) {
    rc_tensor *t = rb_check(L, idx);
    char s[128];
    if (t->ndim != 1 || t->size[0] != B)
      rb_error(L, "%s: lengths must be a 1-D tensor of %lld values (one per sequence), got %s", fn,
               (long long)B, rc_shape_str(t, s, sizeof s));
    for (int64_t b = 0; b < B; b++) {
      float v = *rc_ptr(t, &b);
      if (v != (float)(int64_t)v)
        rb_error(L, "%s: lengths[%lld] = %g is not an integer", fn, (long long)b + 1, (double)v);
      len[b] = (int64_t)v;
    }
    return len;
  }
  if (!lua_istable(L, idx))
    rb_error(L, "%s: lengths must be a list of integers or a tensor, got %s", fn,
             luaL_typename(L, idx));
  lua_Integer n = luaL_len(L, idx);
  if (n != B)
    rb_error(L, "%s: lengths has %lld entries, expected %lld (one per sequence)", fn, (long long)n,
             (long long)B);
  for (int64_t b = 0; b < B; b++) {
    lua_geti(L, idx, b + 1);
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint)
      rb_error(L, "%s: lengths[%lld] must be an integer, got %s", fn, (long long)b + 1,
               lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    lua_pop(L, 1);
    len[b] = (int64_t)v;
  }
  return len;
}

static int push_results(lua_State *L, rc_cell *cell, rc_tensor *y, rc_tensor **st) {
  int ns = rc_cell_n_states(cell);
  /* push every result before anything can raise: Lua owns them all */
  rb_push(L, y);
  for (int k = 0; k < ns; k++) rb_push(L, st[k]);
  return 1 + ns;
}

/* cell:_forward(x, s1, s2, lengths) */
static int m_forward(lua_State *L) {
  rc_cell *cell = check_cell(L, 1);
  if (!rb_is_tensor(L, 2))
    return rb_error(L, "rnn forward: x must have shape [T, B, %lld], got %s",
                    (long long)rc_cell_input(cell), luaL_typename(L, 2));
  rc_tensor *x = rb_check(L, 2);
  rc_tensor *st[2];
  check_states(L, cell, 3, st, "rnn forward");
  int64_t B = x->ndim == 3 ? x->size[1] : 0;
  if (x->ndim != 3) {
    char s[128];
    return rb_error(L, "rnn forward: x must have shape [T, B, %lld], got %s",
                    (long long)rc_cell_input(cell), rc_shape_str(x, s, sizeof s));
  }
  const int64_t *len = check_lengths(L, 5, B, "rnn forward");
  rc_tensor *y, *out[2];
  if (rc_cell_forward(cell, x, st, len, &y, out)) return rb_raise(L);
  return push_results(L, cell, y, out);
}

/* cell:_step(x, s1, s2) */
static int m_step(lua_State *L) {
  rc_cell *cell = check_cell(L, 1);
  if (!rb_is_tensor(L, 2))
    return rb_error(L, "rnn step: x must be a tensor [B, %lld], got %s",
                    (long long)rc_cell_input(cell), luaL_typename(L, 2));
  rc_tensor *x = rb_check(L, 2);
  rc_tensor *st[2];
  check_states(L, cell, 3, st, "rnn step");
  rc_tensor *y, *out[2];
  if (rc_cell_step(cell, x, st, &y, out)) return rb_raise(L);
  return push_results(L, cell, y, out);
}

/* recur._rnn_stack_forward(cells, x, states, lengths) -> false when the stack does not apply
 * (the caller then runs the layers one by one), else y, {{s1, s2}, ...} (one list of final
 * states per layer). cells: a list of L fused cells; states: nil or a list of L entries, each
 * nil or a list {s1, s2} (entries nil = zeros); lengths as for cell:_forward. */
static int f_rnn_stack_forward(lua_State *L) {
  const char *fn = "RNN forward";
  lua_settop(L, 4); /* the scratch userdata below go above the arguments */
  rb_check_table(L, 1);
  lua_Integer nl = luaL_len(L, 1);
  if (nl < 1 || nl > 4096)
    return rb_error(L, "%s: cells must be a list of 1 to 4096 rnn cells, got %lld", fn,
                    (long long)nl);
  int nlay = (int)nl;
  rc_cell **cells = lua_newuserdatauv(L, (size_t)nlay * sizeof *cells, 0);
  for (int l = 0; l < nlay; l++) {
    lua_geti(L, 1, l + 1);
    rb_cell *u = luaL_testudata(L, -1, RNN_CELL_MT);
    if (!u || !u->cell)
      return rb_error(L, "%s: cells[%d] must be an open rnn cell, got %s", fn, l + 1,
                      u ? "a closed one" : luaL_typename(L, -1));
    cells[l] = u->cell;
    lua_pop(L, 1);
  }
  if (!rb_is_tensor(L, 2))
    return rb_error(L, "%s: x must be a tensor [T, B, I], got %s", fn, luaL_typename(L, 2));
  rc_tensor *x = rb_check(L, 2);
  if (x->ndim != 3) {
    char s[128];
    return rb_error(L, "%s: x must have shape [T, B, %lld], got %s", fn,
                    (long long)rc_cell_input(cells[0]), rc_shape_str(x, s, sizeof s));
  }
  rc_tensor **st = lua_newuserdatauv(L, (size_t)nlay * 2 * sizeof *st, 0);
  memset(st, 0, (size_t)nlay * 2 * sizeof *st);
  if (!lua_isnoneornil(L, 3)) {
    rb_check_table(L, 3);
    for (int l = 0; l < nlay; l++) {
      if (lua_geti(L, 3, l + 1) != LUA_TNIL) {
        int li = lua_gettop(L);
        if (!lua_istable(L, li))
          return rb_error(L, "%s: state[%d] must be a list of tensors, got %s", fn, l + 1,
                          luaL_typename(L, li));
        for (int k = 0; k < 2; k++) {
          lua_geti(L, li, k + 1);
          if (!lua_isnil(L, -1)) {
            if (!rb_is_tensor(L, -1) || k >= rc_cell_n_states(cells[l]))
              return rb_error(L, "%s: state[%d][%d] must be a tensor [B, %lld] or nil, got %s", fn,
                              l + 1, k + 1, (long long)rc_cell_hidden(cells[l]),
                              luaL_typename(L, -1));
            st[l * 2 + k] = rb_check(L, -1); /* still referenced by the table at 3 */
          }
          lua_pop(L, 1);
        }
      }
      lua_pop(L, 1);
    }
  }
  const int64_t *len = check_lengths(L, 4, x->size[1], fn);
  rc_tensor *y, **out = lua_newuserdatauv(L, (size_t)nlay * 2 * sizeof *out, 0);
  int rc = rc_cell_stack_forward(cells, nlay, x, st, len, &y, out);
  if (rc < 0) return rb_raise(L);
  if (rc > 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* push every result before anything can raise: Lua owns them all */
  int base = lua_gettop(L);
  rb_push(L, y);
  for (int l = 0; l < nlay; l++)
    for (int k = 0; k < rc_cell_n_states(cells[l]); k++) rb_push(L, out[l * 2 + k]);
  lua_createtable(L, nlay, 0);
  int fin = lua_gettop(L), at = base + 2;
  for (int l = 0; l < nlay; l++) {
    int ns = rc_cell_n_states(cells[l]);
    lua_createtable(L, ns, 0);
    for (int k = 0; k < ns; k++) {
      lua_pushvalue(L, at++);
      lua_rawseti(L, -2, k + 1);
    }
    lua_rawseti(L, fin, l + 1);
  }
  lua_pushvalue(L, base + 1);
  lua_pushvalue(L, fin);
  return 2;
}

/* A test knob's mode, *mode -1 ("off"), 0 ("auto") or 1 ("on"): pushes the previous one and
 * sets argument 1's when given; fn names the knob in the error. */
static int mode_knob(lua_State *L, const char *fn, int *mode) {
  static const char *const names[] = {"off", "auto", "on"};
  const char *old = names[*mode + 1];
  if (!lua_isnoneornil(L, 1)) {
    const char *m = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
    int v = !m                       ? 9
            : strcmp(m, "off") == 0  ? -1
            : strcmp(m, "auto") == 0 ? 0
            : strcmp(m, "on") == 0   ? 1
                                     : 9;
    if (v == 9)
      return rb_error(L, "%s: argument #1 must be \"auto\", \"on\" or \"off\", got %s", fn,
                      m ? m : luaL_typename(L, 1));
    *mode = v;
  }
  lua_pushstring(L, old);
  return 1;
}

/* recur._rnn_wave([mode]): whether stacks of fused cells run as a layer wavefront: "auto"
 * (with more than one BLAS thread: the default), "on" (always, even on one thread: tests) or
 * "off"; returns the previous mode. */
static int f_rnn_wave(lua_State *L) {
  return mode_knob(L, "_rnn_wave", &rb_ctx(L)->rnn_wave);
}

/* recur._rnn_split([mode]): whether stacks of cells whose rows are apart (vanilla, LSTM, GRU)
 * split the batch between two threads: "auto" (one layer, with more than one BLAS thread:
 * the default), "on" (any number of layers, even on one thread: tests) or "off" (never; two
 * layers or more then run as the wavefront); returns the previous mode. */
static int f_rnn_split(lua_State *L) {
  return mode_knob(L, "_rnn_split", &rb_ctx(L)->rnn_split);
}

/* recur._rnn_wave_rows([n]): the rows of each step handed over in the layer wavefront that
 * the calling thread computes: n (0 or more; B beyond the batch) fixed, or "auto" (the
 * default: they follow the two threads' speeds); returns the previous setting. Results do not
 * depend on it: tests compare them. */
static int f_rnn_wave_rows(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  int old = c->rnn_wave_rows;
  if (old)
    lua_pushinteger(L, old - 1);
  else
    lua_pushliteral(L, "auto");
  if (lua_isnoneornil(L, 1)) return 1;
  if (lua_type(L, 1) == LUA_TSTRING && strcmp(lua_tostring(L, 1), "auto") == 0) {
    c->rnn_wave_rows = 0;
    return 1;
  }
  if (!lua_isinteger(L, 1) || lua_tointeger(L, 1) < 0 || lua_tointeger(L, 1) >= INT_MAX)
    return rb_error(L, "_rnn_wave_rows: argument #1 must be \"auto\" or an integer >= 0, got %s",
                    lua_isinteger(L, 1) ? lua_tostring(L, 1) : luaL_typename(L, 1));
  c->rnn_wave_rows = (int)lua_tointeger(L, 1) + 1;
  return 1;
}

/* recur._rnn_project_ahead([mode]): "auto" (the default: a fused cell run layer by layer
 * projects x W_x + b a few steps ahead of the steps that read it when the whole sequence's
 * would not stay in the cache) or "off" (all of it before the first step); returns the
 * previous mode. Results do not depend on it: tests compare them. */
static int f_rnn_project_ahead(lua_State *L) {
  rc_ctx *c = rb_ctx(L);
  lua_pushstring(L, c->rnn_proj_whole ? "off" : "auto");
  if (lua_isnoneornil(L, 1)) return 1;
  const char *m = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
  if (!m || (strcmp(m, "auto") != 0 && strcmp(m, "off") != 0))
    return rb_error(L, "_rnn_project_ahead: argument #1 must be \"auto\" or \"off\", got %s",
                    m ? m : luaL_typename(L, 1));
  c->rnn_proj_whole = strcmp(m, "off") == 0;
  return 1;
}

/* recur._helper_usable(): whether the runtime's helper thread takes the next shared job (false
 * with one BLAS thread, or while it backs off: arriving late, or other processes keeping the
 * cores busy). For tests whose outcome depends on it (the wavefront in "auto" mode). */
static int f_helper_usable(lua_State *L) {
  if (!lua_isnone(L, 1))
    return rb_error(L, "_helper_usable: takes no arguments, got %s as argument #1",
                    luaL_typename(L, 1));
  rc_ctx *c = rb_ctx(L);
  lua_pushboolean(L, openblas_get_num_threads() > 1 && rc_team_usable(rc_ctx_team(c)));
  return 1;
}

/* recur._helper_back_off(): sends the runtime's helper off for a while (0.1 s, twice as long
 * after each back-off that follows closely), as late runs or a busy machine would. For tests
 * of what runs while it is off. */
static int f_helper_back_off(lua_State *L) {
  if (!lua_isnone(L, 1))
    return rb_error(L, "_helper_back_off: takes no arguments, got %s as argument #1",
                    luaL_typename(L, 1));
  rc_team_back_off(rc_ctx_team(rb_ctx(L)));
  return 0;
}

/* cell:parameters() */
static int m_parameters(lua_State *L) {
  rc_cell *cell = check_cell(L, 1);
  int np = rc_cell_n_params(cell);
  lua_getiuservalue(L, 1, 1);
  int ps = lua_gettop(L);
  lua_createtable(L, np, 0);
  for (int p = 0; p < np; p++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, rc_cell_param_name(cell, p));
    lua_rawseti(L, -2, 1);
    lua_rawgeti(L, ps, p + 1);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, p + 1);
  }
  return 1;
}

static int m_flops(lua_State *L) {
  rc_cell *cell = check_cell(L, 1);
  lua_pushnumber(L, rc_cell_flops(cell, rb_check_int(L, 2), rb_check_int(L, 3)));
  return 1;
}

static int m_tostring(lua_State *L) {
  rb_cell *u = luaL_testudata(L, 1, RNN_CELL_MT);
  if (!u)
    return rb_error(L, "tostring: argument #1 must be an rnn cell, got %s", luaL_typename(L, 1));
  if (!u->cell) {
    lua_pushliteral(L, "rnn cell (closed)");
    return 1;
  }
  char buf[160];
  snprintf(buf, sizeof buf, "rnn cell %s%s (input %lld, hidden %lld)", rc_cell_kind(u->cell),
           rc_cell_reset_after(u->cell) ? " reset_after" : "", (long long)rc_cell_input(u->cell),
           (long long)rc_cell_hidden(u->cell));
  lua_pushstring(L, buf);
  return 1;
}

/* __index: methods first (upvalue 1), then the read-only fields. */
static int m_index(lua_State *L) {
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  rc_cell *cell = check_cell(L, 1);
  const char *k = lua_tostring(L, 2);
  if (!k || lua_type(L, 2) != LUA_TSTRING) return 0;
  if (strcmp(k, "kind") == 0) {
    lua_pushstring(L, rc_cell_kind(cell));
  } else if (strcmp(k, "input") == 0) {
    lua_pushinteger(L, rc_cell_input(cell));
  } else if (strcmp(k, "hidden") == 0) {
    lua_pushinteger(L, rc_cell_hidden(cell));
  } else if (strcmp(k, "reset_after") == 0) {
    lua_pushboolean(L, rc_cell_reset_after(cell));
  } else if (strcmp(k, "n_states") == 0) {
    lua_pushinteger(L, rc_cell_n_states(cell));
  } else if (strcmp(k, "fused") == 0) {
    lua_pushboolean(L, 1);
  } else if (strcmp(k, "state_names") == 0) {
    int ns = rc_cell_n_states(cell);
    lua_createtable(L, ns, 0);
    for (int s = 0; s < ns; s++) {
      lua_pushstring(L, rc_cell_state_name(cell, s));
      lua_rawseti(L, -2, s + 1);
    }
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int m_newindex(lua_State *L) {
  const char *k = lua_tostring(L, 2);
  return rb_error(L,
                  "rnn cell: cannot set field '%s' (cells have no user fields; copy new "
                  "values into the tensors of cell:parameters() instead)",
                  k ? k : luaL_typename(L, 2));
}

void rb_open_rnn(lua_State *L, int methods_idx, int module_idx) {
  (void)methods_idx;
  static const luaL_Reg cell_methods[] = {{"_forward", m_forward},
                                          {"_step", m_step},
                                          {"parameters", m_parameters},
                                          {"flops", m_flops},
                                          {NULL, NULL}};
  static const luaL_Reg functions[] = {{"_rnn_cell", f_rnn_cell},
                                       {"_rnn_cell_types", f_rnn_cell_types},
                                       {"_rnn_stack_forward", f_rnn_stack_forward},
                                       {"_rnn_project_ahead", f_rnn_project_ahead},
                                       {"_rnn_wave", f_rnn_wave},
                                       {"_rnn_split", f_rnn_split},
                                       {"_helper_usable", f_helper_usable},
                                       {"_helper_back_off", f_helper_back_off},
                                       {"_rnn_wave_rows", f_rnn_wave_rows},
                                       {NULL, NULL}};
  rb_register(L, methods_idx, module_idx, NULL, functions);
  luaL_newmetatable(L, RNN_CELL_MT);
  int mt = lua_gettop(L);
  lua_newtable(L); /* methods */
  rb_setfuncs(L, cell_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, module_idx, "_rnn_cell_methods");
  /* getmetatable(cell) shows the methods but not the metatable (nor its __gc) */
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, RNN_CELL_MT);
  lua_setfield(L, -2, "__name");
  lua_setfield(L, mt, "__metatable");
  lua_pushcclosure(L, m_index, 1);
  lua_setfield(L, mt, "__index");
  static const luaL_Reg meta[] = {{"__gc", cell_gc},
                                  {"__close", cell_gc},
                                  {"__tostring", m_tostring},
                                  {"__newindex", m_newindex},
                                  {NULL, NULL}};
  luaL_setfuncs(L, meta, 0);
  lua_settop(L, mt - 1);
}
