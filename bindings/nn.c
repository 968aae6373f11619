/* Lua bindings of the nn runtime (runtime/nn.h), in the internal table recur._nn; the public
 * surface (recur.nn, recur.nn.functional) is the Lua half, lib/recur/nn.lua and lib/recur/nn/. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "../runtime/nn.h"
#include "bind.h"

/* A Lua list of tensors at idx as a C array in Lua-owned memory (pushed on the stack, so an
 * error later leaks nothing). */
rc_tensor **rb_tensor_list(lua_State *L, int idx, int *n, const char *fn, const char *what) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE)
    rb_error(L, "%s: %s must be a list of tensors, got %s", fn, what, luaL_typename(L, idx));
  lua_Integer len = luaL_len(L, idx);
  if (len > (1 << 24)) rb_error(L, "%s: %s has too many entries", fn, what);
  rc_tensor **a = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *a, 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, idx, i);
    rc_tensor *t = rb_test(L, -1);
    if (!t) {
      if (rb_is_tensor(L, -1))
        rb_error(L, "%s: entry %d of %s is a closed tensor", fn, (int)i, what);
      rb_error(L, "%s: entry %d of %s must be a tensor, got %s", fn, (int)i, what,
               luaL_typename(L, -1));
    }
    a[i - 1] = t;
    lua_pop(L, 1);
  }
  *n = (int)len;
  return a;
}

static rc_tensor *opt_tensor(lua_State *L, int idx, const char *fn, const char *what) {
  if (lua_isnoneornil(L, idx)) return NULL;
  rc_tensor *t = rb_test(L, idx);
  if (!t) rb_error(L, "%s: %s must be a tensor or nil, got %s", fn, what, luaL_typename(L, idx));
  return t;
}

/* linear(x, w [, b]) */
static int f_linear(lua_State *L) {
  rc_tensor *x = rb_check(L, 1), *w = rb_check(L, 2);
  rc_tensor *b = opt_tensor(L, 3, "linear", "bias (argument #3)");
  return rb_push(L, rc_linear(x, w, b));
}

/* activation(x, name) */
static int f_activation(lua_State *L) {
  rc_tensor *x = rb_check(L, 1);
  const char *name = rb_check_string(L, 2);
  for (int a = 0; a < RC_ACT_COUNT; a++)
    if (strcmp(name, rc_act_name[a]) == 0) return rb_push(L, rc_activation(x, (rc_act)a));
  return rb_error(L, "activation: unknown activation '%s' (tanh, sigmoid, relu, identity)", name);
}

static float check_float(lua_State *L, int idx, const char *fn, const char *what) {
  if (lua_type(L, idx) != LUA_TNUMBER)
    rb_error(L, "%s: %s must be a number, got %s", fn, what, luaL_typename(L, idx));
  return (float)lua_tonumber(L, idx);
}

/* dropout(x, p) */
static int f_dropout(lua_State *L) {
  rc_tensor *x = rb_check(L, 1);
  float p = check_float(L, 2, "dropout", "p (argument #2)");
  return rb_push(L, rc_dropout(x, p));
}

/* layer_norm(x, weight|nil, bias|nil, eps) */
static int f_layer_norm(lua_State *L) {
  rc_tensor *x = rb_check(L, 1);
  rc_tensor *g = opt_tensor(L, 2, "layer_norm", "weight (argument #2)");
  rc_tensor *b = opt_tensor(L, 3, "layer_norm", "bias (argument #3)");
  float eps = lua_isnoneornil(L, 4) ? 1e-5f : check_float(L, 4, "layer_norm", "eps (argument #4)");
  return rb_push(L, rc_layer_norm(x, g, b, eps));
}

static rc_reduction check_reduction(lua_State *L, int idx, const char *fn) {
  if (lua_isnoneornil(L, idx)) return RC_REDUCE_MEAN;
  const char *r = lua_tostring(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    if (strcmp(r, "mean") == 0) return RC_REDUCE_MEAN;
    if (strcmp(r, "sum") == 0) return RC_REDUCE_SUM;
    if (strcmp(r, "none") == 0) return RC_REDUCE_NONE;
  }
  rb_error(L, "%s: reduction must be \"mean\", \"sum\" or \"none\", got %s", fn,
           lua_type(L, idx) == LUA_TSTRING ? r : luaL_typename(L, idx));
  return RC_REDUCE_MEAN;
}

/* cross_entropy(input, target, mask|nil, reduction, log_probs) with 1-based class indices */
static int f_cross_entropy(lua_State *L) {
  int log_probs = lua_toboolean(L, 5);
  const char *fn = log_probs ? "nll" : "cross_entropy";
  rc_tensor *x = rb_check(L, 1);
  if (!rb_is_tensor(L, 2))
    return rb_error(L, "%s: target (argument #2) must be a tensor, got %s", fn,
                    luaL_typename(L, 2));
  rc_tensor *t = rb_check(L, 2);
  rc_tensor *m = opt_tensor(L, 3, fn, "mask");
  rc_reduction r = check_reduction(L, 4, fn);
  return rb_push(L, rc_cross_entropy(x, t, 1, m, r, log_probs));
}

/* linear_cross_entropy(x, w, b|nil, target, mask|nil, reduction) with 1-based class indices */
static int f_linear_cross_entropy(lua_State *L) {
  const char *fn = "linear_cross_entropy";
  rc_tensor *x = rb_check(L, 1);
  rc_tensor *w = rb_check(L, 2);
  rc_tensor *b = opt_tensor(L, 3, fn, "bias (argument #3)");
  if (!rb_is_tensor(L, 4))
    return rb_error(L, "%s: target (argument #4) must be a tensor, got %s", fn,
                    luaL_typename(L, 4));
  rc_tensor *t = rb_check(L, 4);
  rc_tensor *m = opt_tensor(L, 5, fn, "mask");
  rc_reduction r = check_reduction(L, 6, fn);
  return rb_push(L, rc_linear_cross_entropy(x, w, b, t, 1, m, r));
}

/* param(shape) */
static int f_param(lua_State *L) {
  int64_t size[RC_MAX_DIM];
  int n = rb_check_shape(L, 1, size);
  rc_ctx *c = rb_ctx(L);
  if (rc_check_shape(c, "parameter", n, size)) return rb_raise(L);
  return rb_push(L, rc_param_new(c, n, size));
}

/* is_param(t) -> can t be packed into a flat buffer (rc_is_param)? */
static int f_is_param(lua_State *L) {
  lua_pushboolean(L, rc_is_param(rb_check(L, 1)));
  return 1;
}

/* pack(list, want_grad) -> flat, flat_grad (nil, nil when the parameters are tied across
 * modules; flat_grad nil when no gradient buffer exists and want_grad is false) */
static int f_pack(lua_State *L) {
  int n;
  rc_tensor **p = rb_tensor_list(L, 1, &n, "pack_parameters", "the parameter list");
  int want_grad = lua_toboolean(L, 2);
  rc_tensor *flat, *grad;
  if (rc_params_pack(rb_ctx(L), p, n, want_grad, &flat, &grad)) return rb_raise(L);
  if (!flat) {
    lua_pushnil(L);
    lua_pushnil(L);
    return 2;
  }
  rb_push(L, flat);
  if (grad)
    rb_push(L, grad);
  else
    lua_pushnil(L);
  return 2;
}

/* orthogonal_(t, gain) */
static int f_orthogonal_(lua_State *L) {
  rc_tensor *t = rb_check(L, 1);
  float gain = lua_isnoneornil(L, 2) ? 1.0f : check_float(L, 2, "orthogonal", "gain");
  if (rc_orthogonal_(t, gain)) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

/* clip_grad_norm(list, max_norm) and clip_grad_value(list, clip) -> the norm before clipping;
 * what names the limit argument. */
static int clip_grads(lua_State *L, const char *fn, const char *what,
                      int (*clip)(rc_tensor **p, int n, double limit, double *norm)) {
  int n;
  rc_tensor **p = rb_tensor_list(L, 1, &n, fn, "the parameter list");
  double limit = check_float(L, 2, fn, what);
  double norm;
  if (clip(p, n, limit, &norm)) return rb_raise(L);
  lua_pushnumber(L, norm);
  return 1;
}

static int f_clip_grad_norm(lua_State *L) {
  return clip_grads(L, "clip_grad_norm", "max_norm (argument #2)", rc_clip_grad_norm);
}

static int f_clip_grad_value(lua_State *L) {
  return clip_grads(L, "clip_grad_value", "clip (argument #2)", rc_clip_grad_value);
}

static int f_grad_norm(lua_State *L) {
  int n;
  rc_tensor **p = rb_tensor_list(L, 1, &n, "grad_norm", "the parameter list");
  double norm;
  if (rc_grad_norm(p, n, &norm)) return rb_raise(L);
  lua_pushnumber(L, norm);
  return 1;
}

/* clip_norm_(g, max_norm) -> the L2 norm of g before scaling it in place to at most max_norm;
 * clip_norm_(g) -> the norm only. g: a gradient tensor itself (a flat gradient buffer) */
static int f_clip_norm_(lua_State *L) {
  rc_tensor *g = rb_check(L, 1);
  if (lua_isnoneornil(L, 2)) {
    double norm;
    if (rc_norm2(g, &norm)) return rb_raise(L);
    lua_pushnumber(L, norm);
    return 1;
  }
  double norm, max = check_float(L, 2, "clip_grad_norm", "max_norm (argument #2)");
  if (rc_clip_norm_(g, max, &norm)) return rb_raise(L);
  lua_pushnumber(L, norm);
  return 1;
}

/* zero_(t): t filled with zeros in place (memset when contiguous; no autograd) */
static int f_zero_(lua_State *L) {
  if (rc_zero_fill(rb_check(L, 1))) return rb_raise(L);
  lua_settop(L, 1);
  return 1;
}

/* zero_grads(list): fills every existing gradient with zeros in place */
static int f_zero_grads(lua_State *L) {
  int n;
  rc_tensor **p = rb_tensor_list(L, 1, &n, "zero_grad", "the parameter list");
  for (int i = 0; i < n; i++)
    if (p[i]->grad && rc_zero_fill(p[i]->grad)) return rb_raise(L);
  return 0;
}

/* recur.now(): seconds of a monotonic wall clock (for rates and ETAs; os.clock is CPU time,
 * which counts every BLAS thread) */
static int f_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
  return 1;
}

/* method_arity(f) -> n, vararg when f is a Lua function whose first parameter is named self
 * (function Class:name(...) makes one): n the number of parameters after self, vararg whether
 * it takes `...`; nil for anything else. recur._methods checks such methods' self (works
 * without the debug library: lua_getlocal reads a function's parameter names). */
static int f_method_arity(lua_State *L) {
  lua_settop(L, 1);
  if (lua_type(L, 1) != LUA_TFUNCTION || lua_iscfunction(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  const char *name = lua_getlocal(L, NULL, 1); /* the function on the top; nothing pushed */
  if (!name || strcmp(name, "self") != 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_Debug ar;
  lua_getinfo(L, ">u", &ar); /* pops the function */
  lua_pushinteger(L, ar.nparams - 1);
  lua_pushboolean(L, ar.isvararg);
  return 2;
}

void rb_open_nn(lua_State *L, int methods, int module) {
  (void)methods;
  static const luaL_Reg fns[] = {{"linear", f_linear},
                                 {"activation", f_activation},
                                 {"dropout", f_dropout},
                                 {"layer_norm", f_layer_norm},
                                 {"cross_entropy", f_cross_entropy},
                                 {"linear_cross_entropy", f_linear_cross_entropy},
                                 {"param", f_param},
                                 {"pack", f_pack},
                                 {"is_param", f_is_param},
                                 {"clip_norm_", f_clip_norm_},
                                 {"orthogonal_", f_orthogonal_},
                                 {"clip_grad_norm", f_clip_grad_norm},
                                 {"clip_grad_value", f_clip_grad_value},
                                 {"grad_norm", f_grad_norm},
                                 {"zero_grads", f_zero_grads},
                                 {"zero_", f_zero_},
                                 {"method_arity", f_method_arity},
                                 {NULL, NULL}};
  lua_newtable(L);
  rb_setfuncs(L, fns);
  lua_setfield(L, module, "_nn");
  lua_pushcfunction(L, f_now);
  lua_setfield(L, module, "now");
}
