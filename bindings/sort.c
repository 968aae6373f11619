/* Lua bindings: sort, argsort, topk (1-based indices), any, all, isnan, isinf, isfinite.
 * Dimensions are 1-based (negative from the end); the runtime is 0-based. */
#include "../runtime/ops.h"
#include "bind.h"

/* An optional boolean at idx (nil: def). */
static int opt_bool(lua_State *L, int idx, int def, const char *what) {
  if (lua_isnoneornil(L, idx)) return def;
  if (!lua_isboolean(L, idx))
    rb_error(L, "%s: argument #%d (%s) must be a boolean, got %s", rb_fname(L), idx, what,
             luaL_typename(L, idx));
  return lua_toboolean(L, idx);
}

/* Runtime indices (0-based values) as 1-based ones, in a new tensor (autograd may have saved
 * the 0-based one). Takes over ix. */
static rc_tensor *one_based(rc_tensor *ix) {
  if (!ix) return NULL;
  rc_tensor *r = rc_binary_scalar(RC_ADD, ix, 1.0f, 0);
  rc_release(ix);
  return r;
}

static int push_pair(lua_State *L, int rc, rc_tensor *v, rc_tensor *ix) {
  if (rc) return rb_raise(L);
  if (!(ix = one_based(ix))) {
    rc_release(v);
    return rb_raise(L);
  }
  rc_tensor *both[2] = {v, ix};
  return rb_push_n(L, both, 2, 0, 0);
}

/* t:sort(dim = -1, descending = false) -> values, indices */
static int l_sort(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int dim = rb_opt_dim(L, 2, t->ndim, t->ndim ? t->ndim - 1 : 0);
  int desc = opt_bool(L, 3, 0, "descending");
  rc_tensor *v, *ix;
  int rc = rc_sort(t, dim, desc, &v, &ix);
  return push_pair(L, rc, v, ix);
}

/* t:argsort(dim = -1, descending = false) -> indices */
static int l_argsort(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int dim = rb_opt_dim(L, 2, t->ndim, t->ndim ? t->ndim - 1 : 0);
  int desc = opt_bool(L, 3, 0, "descending");
  return rb_push(L, one_based(rc_argsort(t, dim, desc)));
}

/* t:topk(k, dim = -1, largest = true) -> values, indices */
static int l_topk(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  int64_t k = rb_check_int(L, 2);
  int dim = rb_opt_dim(L, 3, t->ndim, t->ndim ? t->ndim - 1 : 0);
  int largest = opt_bool(L, 4, 1, "largest");
  rc_tensor *v, *ix;
  int rc = rc_topk(t, k, dim, largest, &v, &ix);
  return push_pair(L, rc, v, ix);
}

/* t:any(dim, keepdim = false), t:all(...): dim omitted: over all elements */
static int any_all(lua_State *L, int is_all) {
  rc_tensor *t = rb_check(L, 1);
  int dim = rb_opt_dim(L, 2, t->ndim, RC_ALL);
  int keepdim = opt_bool(L, 3, 0, "keepdim");
  return rb_push(L, rc_any_all(t, dim, keepdim, is_all));
}

static int l_any(lua_State *L) {
  return any_all(L, 0);
}
static int l_all(lua_State *L) {
  return any_all(L, 1);
}

static int l_isnan(lua_State *L) {
  return rb_push(L, rc_isclass(rb_check(L, 1), RC_ISNAN));
}
static int l_isinf(lua_State *L) {
  return rb_push(L, rc_isclass(rb_check(L, 1), RC_ISINF));
}
static int l_isfinite(lua_State *L) {
  return rb_push(L, rc_isclass(rb_check(L, 1), RC_ISFINITE));
}

static const luaL_Reg funcs[] = {{"sort", l_sort},   {"argsort", l_argsort},   {"topk", l_topk},
                                 {"any", l_any},     {"all", l_all},           {"isnan", l_isnan},
                                 {"isinf", l_isinf}, {"isfinite", l_isfinite}, {NULL, NULL}};

void rb_open_sort(lua_State *L, int methods, int module) {
  rb_register(L, methods, module, funcs, funcs);
}
